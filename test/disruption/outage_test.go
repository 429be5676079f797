package disruption

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/homeroom/homeroom/internal/embeddedstore"
	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
	"github.com/homeroom/homeroom/pkg/controller"
	"github.com/homeroom/homeroom/pkg/dockerx"
	"github.com/homeroom/homeroom/pkg/policy"
	"github.com/homeroom/homeroom/pkg/reconcile"
	"github.com/homeroom/homeroom/pkg/store"
	"go.uber.org/zap/zaptest"
)

// gatedArtifacts holds the first upload of a collected file until the test
// opens the gate, so that the test can break something while a Down is surely in
// flight.
type gatedArtifacts struct {
	*artifacts.Store
	once    sync.Once
	entered chan struct{}
	gate    chan struct{}
}

func gated(s *artifacts.Store) *gatedArtifacts {
	return &gatedArtifacts{Store: s, entered: make(chan struct{}), gate: make(chan struct{})}
}

func (g *gatedArtifacts) PutStream(ctx context.Context, key string, r io.Reader, size int64, contentType string) (artifacts.Object, error) {
	if strings.Contains(key, "/files/") {
		first := false
		g.once.Do(func() { first = true })
		if first {
			close(g.entered)
			<-g.gate
		}
	}
	return g.Store.PutStream(ctx, key, r, size, contentType)
}

type world struct {
	d   *dockerx.Client
	st  *store.Store
	s3  *testenv.S3Server
	art *artifacts.Store
	up  *gatedArtifacts
}

// runController runs the real controller loop in the test process, with
// short retry and resync periods so that recovery is quick to observe.
func runController(t *testing.T, st *store.Store) *world {
	t.Helper()
	if st == nil {
		st = testenv.Store(t)
	}
	w := &world{d: testenv.Docker(t), st: st, s3: testenv.StartS3(t)}
	art, err := artifacts.New(context.Background(), w.s3.Config())
	if err != nil {
		t.Fatal(err)
	}
	w.art, w.up = art, gated(art)
	log := zaptest.NewLogger(t)
	rec := reconcile.New(w.st, w.d, w.up, policy.Default(), reconcile.Options{TraefikContainer: "hr-disruption-no-router"}, log)
	ctl := controller.New(rec, w.st, w.d, controller.Options{
		PollInterval: 100 * time.Millisecond, ResyncInterval: 2 * time.Second, RetryMax: 2 * time.Second,
	}, log, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ctl.Run(ctx); close(done) }()
	t.Cleanup(func() {
		close(w.gateOnce())
		cancel()
		<-done
	})
	return w
}

// gateOnce returns the gate if it is still closed to uploads, or a fresh
// channel to close, so that cleanup never closes it twice.
func (w *world) gateOnce() chan struct{} {
	select {
	case <-w.up.gate:
		return make(chan struct{})
	default:
		return w.up.gate
	}
}

func (w *world) classUp(t *testing.T, id string, students []string) map[string]work {
	t.Helper()
	testenv.CleanupClass(t, w.d, id)
	if _, _, err := w.st.PutSpec(context.Background(), id, api.ClassSpec{Subject: "cs", Template: "sandbox", Students: students}); err != nil {
		t.Fatal(err)
	}
	testenv.SetPhase(t, w.st, id, api.PhaseUp)
	testenv.WaitPhase(t, w.st, id, api.PhaseUp, 2*time.Minute)
	return saveWork(t, w.d, id, students, 2)
}

func (w *world) containers(t *testing.T, id string) int {
	t.Helper()
	cs, err := w.d.API().ContainerList(context.Background(), container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", api.LabelClass+"="+id))})
	if err != nil {
		t.Fatal(err)
	}
	return len(cs)
}

func TestDownWaitsForTheObjectStore(t *testing.T) {
	w := runController(t, nil)
	const id = "outage-s3"
	students := []string{"kim", "lou", "max"}
	saved := w.classUp(t, id, students)

	testenv.SetPhase(t, w.st, id, api.PhaseDown)
	<-w.up.entered // the Down is collecting
	w.s3.Stop()
	close(w.up.gate)

	// While the object store is down the controller retries, reports the
	// failure, and removes nothing: watch until the failure is reported and
	// a few seconds of retries more.
	var c *api.Class
	reported := time.Time{}
	deadline := time.Now().Add(2 * time.Minute)
	for reported.IsZero() || time.Since(reported) < 5*time.Second {
		if time.Now().After(deadline) {
			t.Fatalf("the failure was never reported: %+v", c.Status)
		}
		if n := w.containers(t, id); n != len(students) {
			t.Fatalf("%d of %d containers left while the object store was down", n, len(students))
		}
		var err error
		if c, err = w.st.Get(context.Background(), id); err != nil {
			t.Fatal(err)
		}
		synced := api.FindCondition(c.Status.Conditions, api.ConditionSynced)
		if reported.IsZero() && synced != nil && synced.Reason == "CollectFailed" {
			reported = time.Now()
			if c.Status.Phase != api.PhaseCollecting {
				t.Errorf("phase %s while collecting", c.Status.Phase)
			}
			for _, s := range students {
				if !strings.Contains(synced.Message, "collect "+s) {
					t.Errorf("the Synced condition does not name %s: %s", s, synced.Message)
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}

	w.s3.Start()
	c = testenv.WaitPhase(t, w.st, id, api.PhaseDown, 2*time.Minute)
	checkCollected(t, w.d, w.art, c, saved)
}

func TestDownSurvivesDockerRestart(t *testing.T) {
	w := runController(t, nil)
	pid, argv := findDockerd(t)
	const id = "outage-docker"
	students := []string{"ned", "ola", "pia", "quin"}
	saved := w.classUp(t, id, students)

	testenv.SetPhase(t, w.st, id, api.PhaseDown)
	<-w.up.entered // the Down is collecting
	restartDockerd(t, w.d, pid, argv)
	close(w.up.gate)

	c := testenv.WaitPhase(t, w.st, id, api.PhaseDown, 3*time.Minute)
	checkCollected(t, w.d, w.art, c, saved)
}

// findDockerd finds the running daemon and the command line it was started
// with, so that the test can start it again exactly so.
func findDockerd(t *testing.T) (int, []string) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "restarting dockerd needs root")
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, _ := os.ReadFile("/proc/" + e.Name() + "/comm")
		if strings.TrimSpace(string(comm)) != "dockerd" || exited(pid) {
			continue // not it, or a zombie left by an earlier restart
		}
		raw, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		return pid, strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
	}
	testenv.Unavailable(t, "no dockerd process to restart (managed by a service manager?)")
	return 0, nil
}

func restartDockerd(t *testing.T, d *dockerx.Client, pid int, argv []string) {
	t.Helper()
	// Whatever happens below, the daemon is running again when the test
	// ends: every later test needs it.
	t.Cleanup(func() {
		if d.Ping(context.Background()) != nil {
			startDockerd(t, d, argv)
		}
	})
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatalf("stop dockerd: %v", err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for !exited(pid) {
		if time.Now().After(deadline) {
			t.Fatal("dockerd did not stop within 90s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	startDockerd(t, d, argv)
}

// exited reports whether pid is gone. A daemon this test process started
// earlier is its child: once it exits it stays a zombie until reaped, so
// reap it.
func exited(pid int) bool {
	var ws syscall.WaitStatus
	if got, _ := syscall.Wait4(pid, &ws, syscall.WNOHANG, nil); got == pid {
		return true
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// The state follows the command name in parentheses: "pid (comm) S ...".
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] == 'Z'
	}
	return false
}

// startDockerd starts the daemon with the command line it had, detached
// (setsid --fork) so that it is init's child, not this test's, and outlives
// the test as it would have outlived whoever started it first.
func startDockerd(t *testing.T, d *dockerx.Client, argv []string) {
	t.Helper()
	logf, err := os.OpenFile("/var/log/homeroom-dockerd.log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command("setsid", append([]string{"--fork"}, argv...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Run(); err != nil {
		t.Fatalf("start dockerd again: %v", err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for d.Ping(context.Background()) != nil {
		if time.Now().After(deadline) {
			t.Fatal("dockerd did not answer within 90s of its restart")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// The daemon restarted while classes are Up stops their containers; the
// controller notices (its events stream breaks, it re-lists) and starts
// them again: the same containers, with the students' work in them.
func TestUpClassesComeBackAfterDockerRestart(t *testing.T) {
	w := runController(t, nil)
	close(w.up.gate) // no upload is held back here
	pid, argv := findDockerd(t)
	const id = "outage-docker-up"
	students := []string{"rae", "sol", "ted"}
	saved := w.classUp(t, id, students)
	before := containerIDs(t, w.d, id)

	restartDockerd(t, w.d, pid, argv)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		after := containerIDs(t, w.d, id)
		running := 0
		for _, s := range students {
			info, err := w.d.InspectContainer(context.Background(), api.ContainerName(id, s))
			if err == nil && info.State.Running {
				running++
			}
		}
		if running == len(students) {
			for s, cid := range before {
				if after[s] != cid {
					t.Errorf("%s's container was replaced, not restarted", s)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d sandboxes running two minutes after the daemon restarted", running, len(students))
		}
		time.Sleep(200 * time.Millisecond)
	}
	testenv.WaitPhase(t, w.st, id, api.PhaseUp, time.Minute)
	testenv.SetPhase(t, w.st, id, api.PhaseDown)
	c := testenv.WaitPhase(t, w.st, id, api.PhaseDown, 2*time.Minute)
	checkCollected(t, w.d, w.art, c, saved)
}

// While the store is unreachable the controller keeps running, waits, and
// removes nothing; when the store is back it carries on.
func TestStoreOutage(t *testing.T) {
	dir := t.TempDir()
	start := func() *embeddedstore.Server {
		e, err := embeddedstore.Start(context.Background(), filepath.Join(dir, "store"), filepath.Join(dir, "store.sock"), nil)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	emb := start()
	defer func() { emb.Stop() }()
	st := testenv.OpenStore(t, emb.URI, store.DefaultDatabase)
	w := runController(t, st)
	close(w.up.gate) // no upload is held back here
	const id = "outage-store"
	w.classUp(t, id, []string{"uli", "val"})
	before := containerIDs(t, w.d, id)

	emb.Stop()
	// A container removed by hand during the outage: the controller hears
	// of it, cannot read the class, and must not act on a guess.
	if err := w.d.API().ContainerRemove(context.Background(), before["uli"], container.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if after := containerIDs(t, w.d, id); after["val"] != before["val"] {
			t.Fatalf("a container was touched while the store was unreachable: %v -> %v", before, after)
		}
	}

	emb = start()
	deadline := time.Now().Add(time.Minute)
	for {
		after := containerIDs(t, w.d, id)
		if after["uli"] != "" && after["uli"] != before["uli"] && after["val"] == before["val"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the controller did not resume after the store came back: %v", after)
		}
		time.Sleep(200 * time.Millisecond)
	}
	testenv.WaitPhase(t, w.st, id, api.PhaseUp, time.Minute)
	testenv.SetPhase(t, w.st, id, api.PhaseDown)
	testenv.WaitPhase(t, w.st, id, api.PhaseDown, time.Minute)
}
