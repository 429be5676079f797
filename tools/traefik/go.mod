// Traefik, built from the Go module proxy: no registry can be reached here,
// so the routing container's binary is compiled locally (see
// scripts/ensure-traefik.sh). The replace and exclude lines are Traefik's own.
module github.com/homeroom/homeroom/tools/traefik

go 1.26.8

require github.com/traefik/traefik/v3 v3.6.12

replace (
	github.com/abbot/go-http-auth => github.com/containous/go-http-auth v0.4.1-0.20200324110947-a37a7636d23e
	github.com/gorilla/mux => github.com/containous/mux v0.0.0-20250523120546-41b6ec3aed59
	github.com/mailgun/minheap => github.com/containous/minheap v0.0.0-20190809180810-6e71eb837595
)

exclude github.com/tencentcloud/tencentcloud-sdk-go v3.0.83+incompatible
