// Package hardening attacks a student's sandbox from the inside, as the
// student's own program could, against the real Docker daemon: a fork bomb,
// a memory hog and attempts to write outside the workspace. The container's
// limits must hold, the host and the other students must not notice, and
// the student's saved work must survive the sandbox being killed.
//
// The attacks are the lab image's /stress endpoints (cmd/sandbox/stress.go):
// run `make images` first so that the image has them.
package hardening

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
	"github.com/homeroom/homeroom/pkg/dockerx"
	"github.com/homeroom/homeroom/pkg/policy"
	"github.com/homeroom/homeroom/pkg/reconcile"
	"github.com/homeroom/homeroom/pkg/store"
	"go.uber.org/zap/zaptest"
)

// The default template's limits. The attacks below are sized against them
// (a 1000-process fork bomb, a 512 MiB hog), so the test first checks that
// the built-in policy still says this.
const (
	wantPIDs      = 64
	wantMemoryMiB = 128
	wantNanoCPUs  = 500_000_000
	wantUser      = "65534:65534"
)

// rig is a controller's worth of real parts, as in pkg/reconcile's
// integration tests: the Docker daemon, an embedded FerretDB, a versitygw.
type rig struct {
	t      *testing.T
	docker *dockerx.Client
	store  *store.Store
	rec    *reconcile.Reconciler
	tmpl   *policy.Template
}

func newRig(t *testing.T) *rig {
	t.Helper()
	d := testenv.Docker(t)
	s3 := testenv.StartS3(t)
	art, err := artifacts.New(context.Background(), s3.Config())
	if err != nil {
		t.Fatalf("artifacts: %v", err)
	}
	pol := policy.Default()
	tmpl, ok := pol.Template("sandbox")
	if !ok {
		t.Fatal("the default policy has no sandbox template")
	}
	if tmpl.PIDs != wantPIDs || tmpl.MemoryMiB != wantMemoryMiB || int64(tmpl.CPUs*1e9) != wantNanoCPUs ||
		tmpl.User != wantUser || !tmpl.ReadOnlyRootFS {
		t.Fatalf("the default sandbox template changed (pids %d, memory %d MiB, cpus %v, user %q, read-only %v): "+
			"resize the attacks in this test to the new limits", tmpl.PIDs, tmpl.MemoryMiB, tmpl.CPUs, tmpl.User, tmpl.ReadOnlyRootFS)
	}
	r := &rig{t: t, docker: d, store: testenv.Store(t), tmpl: tmpl}
	r.rec = reconcile.New(r.store, d, art, pol, reconcile.Options{
		Domain: "lab.test",
		// No router: these tests reach the sandboxes by address, and must
		// not attach a Traefik someone runs on the same daemon.
		TraefikContainer: fmt.Sprintf("hr-hardening-no-router-%d", time.Now().UnixNano()),
		CollectTimeout:   30 * time.Second,
	}, zaptest.NewLogger(t))
	return r
}

// up declares a class with a unique id, brings it Up with one pass of the
// controller and returns its id.
func (r *rig) up(prefix string, students ...string) string {
	r.t.Helper()
	id := fmt.Sprintf("%s-%06x", prefix, rand.Uint32()&0xffffff)
	testenv.CleanupClass(r.t, r.docker, id)
	ctx := context.Background()
	if _, _, err := r.store.PutSpec(ctx, id, api.ClassSpec{Subject: "cs", Template: "sandbox", Students: students}); err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.store.SetDesiredPhase(ctx, id, api.PhaseUp); err != nil {
		r.t.Fatal(err)
	}
	r.pass(id)
	return id
}

// pass runs one pass of the controller and wants it converged.
func (r *rig) pass(id string) reconcile.Result {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := r.rec.Reconcile(ctx, id)
	if err != nil {
		r.t.Fatalf("pass: %v", err)
	}
	if !res.Converged {
		r.t.Fatalf("pass did not converge; plan was:\n%s", res.Plan)
	}
	return res
}

func (r *rig) inspect(classID, student string) container.InspectResponse {
	r.t.Helper()
	info, err := r.docker.InspectContainer(context.Background(), api.ContainerName(classID, student))
	if err != nil {
		r.t.Fatal(err)
	}
	return info
}

// url is the base URL of a student's sandbox, by its address on the class
// network, once the sandbox answers.
func (r *rig) url(classID, student string) string {
	r.t.Helper()
	info := r.inspect(classID, student)
	ep := info.NetworkSettings.Networks[api.NetworkName(classID)]
	if ep == nil || ep.IPAddress == "" {
		r.t.Fatalf("%s has no address on %s", info.Name, api.NetworkName(classID))
	}
	base := "http://" + ep.IPAddress + ":" + strconv.Itoa(r.tmpl.Port)
	// The server may still be binding its port just after a start.
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _, err := call(http.MethodGet, base+"/healthz", nil, 2*time.Second)
		if err == nil && code == http.StatusOK {
			return base
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("sandbox of %s never answered at %s: %d %v", student, base, code, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pids asks the daemon how many processes (threads included) the container
// has now, and its limit.
func (r *rig) pids(containerID string) container.PidsStats {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := r.docker.API().ContainerStatsOneShot(ctx, containerID)
	if err != nil {
		r.t.Errorf("stats of %s: %v", containerID, err)
		return container.PidsStats{}
	}
	defer resp.Body.Close()
	var s container.StatsResponse
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		r.t.Errorf("stats of %s: %v", containerID, err)
	}
	return s.PidsStats
}

// call makes one request and returns the status and body; err is a
// transport error (refused, reset, EOF, timeout). Redirects are not followed.
func call(method, url string, body []byte, timeout time.Duration) (int, []byte, error) {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	c := &http.Client{Timeout: timeout, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// must makes a request that has to succeed and decodes its JSON answer.
func must(t *testing.T, method, url string, body []byte, into any) {
	t.Helper()
	code, out, err := call(method, url, body, 30*time.Second)
	if err != nil || code >= 300 {
		t.Fatalf("%s %s: %d %s %v", method, url, code, out, err)
	}
	if into != nil {
		if err := json.Unmarshal(out, into); err != nil {
			t.Fatalf("%s %s: %v: %s", method, url, err, out)
		}
	}
}

type index struct {
	Class, Student string
	Files          []string
}

func readInt(t *testing.T, path string) int64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

type forkResult struct {
	Requested, Started, Crashed, HeldSeconds int
	Error                                    string
}

// A student's program forks without end. The PIDs limit refuses it, the
// container never holds more processes than the limit, and the sandbox, its
// classmate's and the host go on.
func TestForkBombIsStoppedByThePIDsLimit(t *testing.T) {
	r := newRig(t)
	id := r.up("hd-fork", "ann", "ben")
	ann, ben := r.url(id, "ann"), r.url(id, "ben")
	annInfo := r.inspect(id, "ann")
	limit := uint64(r.tmpl.PIDs)

	before := r.pids(annInfo.ID)
	if before.Limit != limit {
		t.Errorf("the daemon reports a PIDs limit of %d, want %d", before.Limit, limit)
	}
	t.Logf("before the bomb: %d pids in use of %d", before.Current, before.Limit)

	// Hold the children 3 s so that the container can be watched at its peak.
	type answer struct {
		code int
		body []byte
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		code, body, err := call(http.MethodPost, ann+"/stress/fork?n=1000&hold=3", nil, 2*time.Minute)
		done <- answer{code, body, err}
	}()
	var peak uint64
	var benDuring error
	askedBen := false
	var got answer
watch:
	for {
		select {
		case got = <-done:
			break watch
		case <-time.After(100 * time.Millisecond):
		}
		now := r.pids(annInfo.ID).Current
		peak = max(peak, now)
		if now > before.Current+limit/2 && !askedBen {
			// ann's bomb is going off: ben's sandbox must not notice.
			askedBen = true
			var code int
			code, _, benDuring = call(http.MethodGet, ben+"/", nil, 5*time.Second)
			if benDuring == nil && code != http.StatusOK {
				benDuring = fmt.Errorf("status %d", code)
			}
		}
	}
	if got.err != nil || got.code != http.StatusOK {
		t.Fatalf("POST /stress/fork: %d %s %v", got.code, got.body, got.err)
	}
	var res forkResult
	if err := json.Unmarshal(got.body, &res); err != nil {
		t.Fatalf("%v: %s", err, got.body)
	}
	t.Logf("fork bomb: %s", got.body)
	t.Logf("peak pids seen by docker stats during the hold: %d (limit %d)", peak, limit)

	if res.Started == 0 {
		t.Errorf("no child started at all: the attempt proves nothing")
	}
	if res.Started >= int(limit) {
		t.Errorf("started %d children under a PIDs limit of %d", res.Started, limit)
	}
	if res.Error == "" || !strings.Contains(res.Error, syscall.EAGAIN.Error()) {
		t.Errorf("the refusal was not EAGAIN from the kernel: %q", res.Error)
	}
	if peak > limit {
		t.Errorf("docker stats saw %d pids in the container, over the limit of %d", peak, limit)
	}
	if peak <= before.Current {
		t.Errorf("docker stats never saw the children (peak %d, before %d): the watch proves nothing", peak, before.Current)
	}
	if !askedBen {
		t.Errorf("docker stats never saw the bomb going off (peak %d)", peak)
	} else if benDuring != nil {
		t.Errorf("ben's sandbox did not answer during ann's fork bomb: %v", benDuring)
	}

	// The kernel's own account, where the cgroup is visible from here: the
	// peak ever reached (sampling can miss it: children that cannot start
	// their threads die, and a dead child's threads free their slots), and
	// how many forks the limit refused.
	if p, ok := testenv.CgroupFile(annInfo.ID, "pids", "pids.peak"); ok {
		v := readInt(t, p)
		t.Logf("%s = %d", p, v)
		if uint64(v) > limit {
			t.Errorf("the cgroup peaked at %d pids, over the limit of %d", v, limit)
		}
		if uint64(v) != limit {
			t.Errorf("the cgroup peaked at %d pids: the bomb never reached the limit of %d", v, limit)
		}
	} else {
		t.Logf("no pids.peak for the container here; relying on docker stats")
	}
	if p, ok := testenv.CgroupFile(annInfo.ID, "pids", "pids.events"); ok {
		b, _ := os.ReadFile(p)
		var refused int
		fmt.Sscanf(strings.TrimSpace(string(b)), "max %d", &refused)
		if refused == 0 {
			t.Errorf("%s = %q: the kernel counted no refused fork", p, b)
		}
		t.Logf("%s: %s", p, strings.TrimSpace(string(b)))
	}

	// Afterwards: the sandbox was not killed or restarted, answers, and has
	// its process slots back (a small fork succeeds in full); ben too.
	after := r.inspect(id, "ann")
	if after.State.Status != "running" || after.State.StartedAt != annInfo.State.StartedAt || after.RestartCount != 0 {
		t.Errorf("ann's sandbox did not survive the attempt: %+v", after.State)
	}
	var idx index
	must(t, http.MethodGet, ann+"/", nil, &idx)
	if idx.Student != "ann" {
		t.Errorf("GET / after the bomb: %+v", idx)
	}
	var again forkResult
	must(t, http.MethodPost, ann+"/stress/fork?n=5", nil, &again)
	if again.Started != 5 || again.Error != "" {
		t.Errorf("the process slots were not given back: %+v", again)
	}
	t.Logf("after: %d pids in use", r.pids(annInfo.ID).Current)
	must(t, http.MethodGet, ben+"/", nil, &idx)
	if idx.Student != "ben" {
		t.Errorf("ben's GET / after the bomb: %+v", idx)
	}
	if b := r.inspect(id, "ben"); b.State.Status != "running" || b.RestartCount != 0 {
		t.Errorf("ben's sandbox was disturbed: %+v", b.State)
	}
}

// A student's program allocates far past the memory limit. The kernel
// OOM-kills it, the classmate is untouched, the controller's next pass
// starts it again, and the work saved before is still in the workspace.
func TestMemoryHogIsOOMKilledAndWorkSurvives(t *testing.T) {
	r := newRig(t)
	id := r.up("hd-oom", "hal", "ivy")
	hal, ivy := r.url(id, "hal"), r.url(id, "ivy")
	halBefore, ivyBefore := r.inspect(id, "hal"), r.inspect(id, "ivy")

	essay := []byte("Memory limits, an essay.\n")
	must(t, http.MethodPut, hal+"/files/notes/essay.txt", essay, nil)

	// A small allocation fits: the endpoint works, the limit is what stops
	// the big one.
	var small struct{ Allocated int }
	must(t, http.MethodPost, hal+"/stress/memory?mib=16", nil, &small)
	if small.Allocated != 16 {
		t.Fatalf("16 MiB: %+v", small)
	}

	start := time.Now()
	code, body, err := call(http.MethodPost, hal+"/stress/memory?mib=512", nil, 2*time.Minute)
	if err == nil {
		t.Fatalf("512 MiB under a 128 MiB limit answered %d %s", code, body)
	}
	t.Logf("POST /stress/memory?mib=512 failed after %s: %v", time.Since(start).Round(time.Millisecond), err)

	var info container.InspectResponse
	deadline := time.Now().Add(30 * time.Second)
	for {
		info = r.inspect(id, "hal")
		if info.State.Status == "exited" || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("hal's state after the hog: status %s, OOMKilled %v, exit code %d", info.State.Status, info.State.OOMKilled, info.State.ExitCode)
	if info.State.Status != "exited" || !info.State.OOMKilled || info.State.ExitCode != 128+int(syscall.SIGKILL) {
		t.Fatalf("hal's sandbox was not OOM-killed: %+v", info.State)
	}

	var idx index
	must(t, http.MethodGet, ivy+"/", nil, &idx)
	if i := r.inspect(id, "ivy"); i.State.Status != "running" || i.State.StartedAt != ivyBefore.State.StartedAt {
		t.Errorf("ivy's sandbox was disturbed: %+v", i.State)
	}

	// The controller's next pass waits out the restart pause and says so;
	// the pass it asks for then starts the same container again.
	stopped, err := time.Parse(time.RFC3339Nano, info.State.FinishedAt)
	if err != nil {
		t.Fatal(err)
	}
	res := r.pass(id)
	if time.Since(stopped) < reconcile.RestartPause-time.Second {
		if res.RequeueAfter <= 0 || res.RequeueAfter > reconcile.RestartPause {
			t.Errorf("a pass during the restart pause asked for the next in %s", res.RequeueAfter)
		}
		c, err := r.store.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		if ready := api.FindCondition(c.Status.Conditions, api.ConditionReady); ready == nil || ready.Reason != "SandboxesRestarting" ||
			!strings.Contains(ready.Message, "hal's sandbox stopped (exit code 137)") {
			t.Errorf("Ready during the restart pause: %+v", ready)
		}
		if s := r.inspect(id, "hal").State.Status; s != "exited" {
			t.Errorf("hal's sandbox is %s during its restart pause", s)
		}
		time.Sleep(res.RequeueAfter)
		r.pass(id)
	}
	info = r.inspect(id, "hal")
	if info.ID != halBefore.ID {
		t.Errorf("hal's container was replaced (%s -> %s), not restarted", halBefore.ID[:12], info.ID[:12])
	}
	if info.State.Status != "running" {
		t.Fatalf("hal's sandbox is %s after the pass", info.State.Status)
	}
	hal = r.url(id, "hal")
	must(t, http.MethodGet, hal+"/", nil, &idx)
	if !slices.Contains(idx.Files, "notes/essay.txt") {
		t.Errorf("the essay saved before the OOM kill is gone: %+v", idx)
	}
	code, got, err := call(http.MethodGet, hal+"/files/notes/essay.txt", nil, 10*time.Second)
	if err != nil || code != http.StatusOK || !bytes.Equal(got, essay) {
		t.Errorf("the essay after the restart: %d %q %v", code, got, err)
	}
	// And the volume holding it is the one from before.
	for _, m := range info.Mounts {
		if m.Destination == "/workspace" {
			for _, old := range halBefore.Mounts {
				if old.Destination == "/workspace" && old.Name != m.Name {
					t.Errorf("/workspace volume changed: %s -> %s", old.Name, m.Name)
				}
			}
		}
	}
}

// A student looks for a way out: the container offers none, and writing
// outside the workspace fails.
func TestNoWayOut(t *testing.T) {
	r := newRig(t)
	id := r.up("hd-escape", "eve")
	info := r.inspect(id, "eve")

	t.Run("container", func(t *testing.T) { testenv.CheckHardened(t, info, r.tmpl) })

	// The kernel's view of the sandbox's process, where its /proc is visible
	// from here (the test on the daemon's machine).
	t.Run("process", func(t *testing.T) {
		pid := info.State.Pid
		cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		if err != nil || !strings.Contains(string(cg), info.ID) {
			t.Skipf("the sandbox's process is not visible from here (pid %d): %v", pid, err)
		}
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			t.Fatal(err)
		}
		fields := map[string]string{}
		for _, line := range strings.Split(string(status), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok {
				fields[k] = strings.Join(strings.Fields(v), " ")
			}
		}
		want := map[string]string{
			"Uid": "65534 65534 65534 65534", "Gid": "65534 65534 65534 65534",
			"CapInh": "0000000000000000", "CapPrm": "0000000000000000", "CapEff": "0000000000000000",
			"CapBnd": "0000000000000000", "CapAmb": "0000000000000000", "NoNewPrivs": "1",
		}
		for k, v := range want {
			if fields[k] != v {
				t.Errorf("%s: %q, want %q", k, fields[k], v)
			}
		}
		t.Logf("sandbox process %d: Uid %s, CapEff %s, CapBnd %s, NoNewPrivs %s, Seccomp %s",
			pid, fields["Uid"], fields["CapEff"], fields["CapBnd"], fields["NoNewPrivs"], fields["Seccomp"])
	})

	eve := r.url(id, "eve")
	t.Run("files outside the workspace", func(t *testing.T) {
		// The sandbox's own file API: every spelling of a way out is refused.
		for _, p := range []string{"../../etc/x", "..%2F..%2Fetc%2Fx", "%2Fetc%2Fx", "a/../../../etc/x"} {
			code, body, err := call(http.MethodPut, eve+"/files/"+p, []byte("pwned"), 10*time.Second)
			if err != nil {
				t.Fatalf("PUT /files/%s: %v", p, err)
			}
			if code < 300 {
				t.Errorf("PUT /files/%s = %d %s, want refused", p, code, body)
			}
			t.Logf("PUT /files/%s: %d %s", p, code, strings.TrimSpace(string(body)))
		}
		ctx := context.Background()
		for _, p := range []string{"/etc/x", "/x", "/workspace/x"} {
			if st, err := r.docker.API().ContainerStatPath(ctx, info.ID, p); err == nil {
				t.Errorf("%s exists in the container: %+v", p, st)
			}
		}
		var idx index
		must(t, http.MethodGet, eve+"/", nil, &idx)
		if len(idx.Files) != 0 {
			t.Errorf("files in the workspace: %v", idx.Files)
		}
	})

	t.Run("writes from the student's program", func(t *testing.T) {
		// As the student's own code, unconfined by the file API: only the
		// workspace volume and the /tmp tmpfs take a write.
		for _, c := range []struct {
			path     string
			writable bool
		}{
			{"/etc/x", false},
			{"/x", false},
			{"/etc/hosts", false},
			{"/etc/resolv.conf", false},
			{"/sandbox", false},
			{"/proc/sys/kernel/hostname", false},
			{"/sys/fs/cgroup/x", false},
			{"/workspace/x", true},
			{"/tmp/x", true},
		} {
			var res struct {
				Path     string
				Writable bool
				Error    string
			}
			must(t, http.MethodPost, eve+"/stress/write?path="+c.path, nil, &res)
			if res.Writable != c.writable {
				t.Errorf("%s: writable %v (%s), want %v", c.path, res.Writable, res.Error, c.writable)
			}
			t.Logf("write %s: writable %v %s", c.path, res.Writable, res.Error)
		}
		var res struct{ Error string }
		must(t, http.MethodPost, eve+"/stress/write?path=/etc/x", nil, &res)
		if !strings.Contains(res.Error, syscall.EROFS.Error()) {
			t.Errorf("/etc/x: %q, want the read-only root to refuse it", res.Error)
		}
	})
}
