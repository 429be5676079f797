# Homeroom. `make run` starts the whole system; `make test` runs every test.
GO      ?= go
BIN     := bin
SANDBOX_IMAGE ?= homeroom/sandbox:dev
NODEJOB_IMAGE ?= homeroom/nodejob:dev
GOFLAGS_BUILD := -trimpath
FUZZTIME ?= 30s

.PHONY: all build images notebook traefik run test test-unit fuzz docker versitygw promtool vet clean bench bench-all chromium

all: build

build:
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -o $(BIN)/ ./cmd/apiserver ./cmd/controller ./cmd/sandbox ./cmd/homeroomctl ./cmd/grader-file ./cmd/nodejob

docker:
	@scripts/ensure-docker.sh

# The engine has no images and no registry: the lab image is built here,
# FROM scratch, around the static sandbox binary; scripts/ensure-graders.sh
# builds the example grader images.
images: build docker
	rm -rf $(BIN)/image-sandbox && mkdir -p $(BIN)/image-sandbox/workspace
	cp $(BIN)/sandbox images/sandbox/Dockerfile $(BIN)/image-sandbox/
	DOCKER_BUILDKIT=0 docker build -q -t $(SANDBOX_IMAGE) $(BIN)/image-sandbox >/dev/null
	@echo "built $(SANDBOX_IMAGE)"
	rm -rf $(BIN)/image-nodejob && mkdir -p $(BIN)/image-nodejob
	cp $(BIN)/nodejob images/nodejob/Dockerfile $(BIN)/image-nodejob/
	DOCKER_BUILDKIT=0 docker build -q -t $(NODEJOB_IMAGE) $(BIN)/image-nodejob >/dev/null
	@echo "built $(NODEJOB_IMAGE)"
	@scripts/ensure-notebook.sh
	@BIN=$(BIN) GO=$(GO) scripts/ensure-graders.sh

# The notebook template's image, homeroom/notebook:<images/notebook/VERSION>,
# from Debian's packages: its root file system is built once per machine (a few
# minutes) and cached in /var/cache/homeroom; later it is only imported again.
notebook: docker
	@scripts/ensure-notebook.sh

# Traefik is pulled where a registry answers, else built from source once per
# machine (about 5 minutes the first time).
traefik: docker
	@scripts/ensure-traefik.sh

# The apiserver runs versitygw as its embedded artifact store.
run: images traefik versitygw
	HOMEROOM_VERSITYGW=$$(scripts/ensure-versitygw.sh) scripts/run.sh

versitygw:
	@scripts/ensure-versitygw.sh >/dev/null

# promtool checks manifests/prometheus (config, alert rules, rule tests); built
# from the Go module proxy once per machine (tools/promtool, about 4 minutes).
promtool:
	@scripts/ensure-promtool.sh >/dev/null

# internal/failpoint has files only builds with -tags failpoints compile.
vet:
	$(GO) vet ./...
	$(GO) vet -tags failpoints ./internal/failpoint

# Debian's Chromium, for the browser tests of the teacher pages (test/browser).
chromium:
	@scripts/ensure-chromium.sh

# Integration packages share one Docker daemon: -p 1 runs packages one at a time.
test: images traefik versitygw promtool chromium vet
	HOMEROOM_VERSITYGW=$$(scripts/ensure-versitygw.sh) HOMEROOM_PROMTOOL=$$(scripts/ensure-promtool.sh) $(GO) test -race -count=1 -p 1 -timeout 30m ./...
	$(GO) test -race -count=1 -tags failpoints ./internal/failpoint
	$(MAKE) fuzz

# A brief fuzz run over request decoding and validation; `go test` alone runs
# only the seeds. Minimizing new inputs is bounded, or a 30 s run spends most
# of its time minimizing instead of fuzzing.
fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzDecodeRequest -fuzztime=$(FUZZTIME) -fuzzminimizetime=200x ./pkg/apiserver/

test-unit:
	$(GO) test -race -count=1 -short ./...
	$(GO) test -race -count=1 -short -tags failpoints ./internal/failpoint

# Up and Down of classes of 10, 50 and 100 against the daemon's own limit,
# in pairs, plus the Docker calls of a converged pass and the controller's
# memory with 500 containers and its idle CPU; prints tables and PASS/MISS
# per target (docs/benchmarks.md). 12 to 15 minutes on 2 cores.
bench: images traefik versitygw
	HOMEROOM_VERSITYGW=$$(scripts/ensure-versitygw.sh) $(GO) run ./bench -bin $(BIN) $(BENCHFLAGS)

# Every part: before the classes, the sign-in check's cost through Traefik,
# a class of notebooks, grading, a timetable's bell and a class on a swarm of
# three daemons. About 45 minutes on 2 cores.
bench-all: images traefik versitygw
	HOMEROOM_VERSITYGW=$$(scripts/ensure-versitygw.sh) $(GO) run ./bench -bin $(BIN) -only all $(BENCHFLAGS)

clean:
	rm -rf $(BIN)
