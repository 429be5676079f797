package reconcile_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
	"github.com/homeroom/homeroom/pkg/dockerx"
	"github.com/homeroom/homeroom/pkg/policy"
	"github.com/homeroom/homeroom/pkg/reconcile"
	"github.com/homeroom/homeroom/pkg/store"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"
)

// orphanGrace is short in tests, so that reaping is quick to observe.
const orphanGrace = 2 * time.Second

// rig is one controller's worth of real parts: the Docker daemon, an embedded
// FerretDB and a versitygw process.
type rig struct {
	t       *testing.T
	docker  *dockerx.Client
	store   *store.Store
	art     *artifacts.Store
	s3      *testenv.S3Server
	rec     *reconcile.Reconciler
	traefik string
	reg     *prometheus.Registry
}

func newRig(t *testing.T, pol *policy.Policy, tune ...func(*reconcile.Options)) *rig {
	t.Helper()
	d := testenv.Docker(t)
	s3 := testenv.StartS3(t)
	ctx := context.Background()
	art, err := artifacts.New(ctx, s3.Config())
	if err != nil {
		t.Fatalf("artifacts: %v", err)
	}
	r := &rig{t: t, docker: d, store: testenv.Store(t), art: art, s3: s3,
		traefik: fmt.Sprintf("hr-it-router-%d", time.Now().UnixNano())}
	if pol == nil {
		pol = policy.Default()
	}
	r.reg = prometheus.NewRegistry()
	opts := reconcile.Options{
		Domain: "lab.test", TraefikContainer: r.traefik, CollectTimeout: 30 * time.Second,
		OrphanGrace: orphanGrace, Registerer: r.reg,
	}
	for _, f := range tune {
		f(&opts)
	}
	r.rec = reconcile.New(r.store, d, art, pol, opts, zaptest.NewLogger(t))
	return r
}

// startRouter runs a stand-in for Traefik: an unlabelled container of that
// name, which the controller must attach to class networks and detach again.
func (r *rig) startRouter() string {
	r.t.Helper()
	ctx := context.Background()
	resp, err := r.docker.API().ContainerCreate(ctx, &container.Config{Image: testenv.SandboxImage}, nil, nil, nil, r.traefik)
	if err != nil {
		r.t.Fatalf("create router stand-in: %v", err)
	}
	r.t.Cleanup(func() {
		r.docker.API().ContainerRemove(context.Background(), resp.ID, container.RemoveOptions{Force: true})
	})
	if err := r.docker.API().ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
		r.t.Fatalf("start router stand-in: %v", err)
	}
	return resp.ID
}

func (r *rig) class(id string, phase api.Phase, students ...string) {
	r.t.Helper()
	ctx := context.Background()
	testenv.CleanupClass(r.t, r.docker, id)
	if _, _, err := r.store.PutSpec(ctx, id, api.ClassSpec{Subject: "cs", Template: "sandbox", Students: students}); err != nil {
		r.t.Fatal(err)
	}
	r.phase(id, phase)
}

func (r *rig) phase(id string, phase api.Phase) {
	r.t.Helper()
	if _, err := r.store.SetDesiredPhase(context.Background(), id, phase); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) pass(id string) (reconcile.Result, error) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return r.rec.Reconcile(ctx, id)
}

func (r *rig) converge(id string) {
	r.t.Helper()
	res, err := r.pass(id)
	if err != nil {
		r.t.Fatalf("pass: %v", err)
	}
	if !res.Converged {
		r.t.Fatalf("pass did not converge; plan was:\n%s", res.Plan)
	}
}

func (r *rig) get(id string) *api.Class {
	r.t.Helper()
	c, err := r.store.Get(context.Background(), id)
	if err != nil {
		r.t.Fatal(err)
	}
	return c
}

// labelled lists what Docker holds with the class label, whatever the state.
func (r *rig) labelled(classID string) (map[string]container.Summary, []network.Summary) {
	r.t.Helper()
	ctx := context.Background()
	f := filters.NewArgs(filters.Arg("label", api.LabelClass+"="+classID))
	cs, err := r.docker.API().ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		r.t.Fatal(err)
	}
	ns, err := r.docker.API().NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		r.t.Fatal(err)
	}
	byStudent := map[string]container.Summary{}
	for _, c := range cs {
		byStudent[c.Labels[api.LabelStudent]] = c
	}
	return byStudent, ns
}

func (r *rig) ipOf(name, net string) string {
	r.t.Helper()
	info, err := r.docker.InspectContainer(context.Background(), name)
	if err != nil {
		r.t.Fatal(err)
	}
	ep := info.NetworkSettings.Networks[net]
	if ep == nil || ep.IPAddress == "" {
		r.t.Fatalf("%s has no address on %s", name, net)
	}
	return ep.IPAddress
}

// counter reads a counter's value from the rig's registry.
func (r *rig) counter(name string) float64 {
	r.t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		r.t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				total += m.GetCounter().GetValue()
			}
		}
	}
	return total
}

func condition(c *api.Class, typ string) api.Condition {
	if cond := api.FindCondition(c.Status.Conditions, typ); cond != nil {
		return *cond
	}
	return api.Condition{}
}

func sandboxRequest(t *testing.T, method, url string, body []byte) []byte {
	t.Helper()
	var resp *http.Response
	var err error
	// The sandbox's server may still be binding its port just after start.
	for i := 0; i < 50; i++ {
		req, _ := http.NewRequest(method, url, bytes.NewReader(body))
		resp, err = (&http.Client{Timeout: 5 * time.Second}).Do(req)
		if err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %s %s", method, url, resp.Status, out)
	}
	return out
}

func TestUpDownCycle(t *testing.T) {
	r := newRig(t, nil)
	ctx := context.Background()
	routerID := r.startRouter()
	const id = "it-cycle"
	students := []string{"alice", "bob", "carol"}
	r.class(id, api.PhaseUp, students...)

	r.converge(id)
	cs, ns := r.labelled(id)
	if len(ns) != 1 || ns[0].Name != "homeroom-"+id || ns[0].Labels[api.LabelManagedBy] != "homeroom" {
		t.Fatalf("networks = %+v, want one labelled homeroom-%s", ns, id)
	}
	for _, s := range students {
		c, ok := cs[s]
		if !ok {
			t.Fatalf("no container for %s", s)
		}
		if c.State != "running" || c.Names[0] != "/homeroom-"+id+"-"+s || c.Labels[api.LabelManagedBy] != "homeroom" || c.Labels[api.LabelClass] != id {
			t.Errorf("container of %s: state %s names %v labels %v", s, c.State, c.Names, c.Labels)
		}
		if _, on := c.NetworkSettings.Networks["homeroom-"+id]; !on {
			t.Errorf("container of %s is not on the class network: %v", s, c.NetworkSettings.Networks)
		}
		if got := c.Labels["traefik.http.routers.homeroom-"+id+"-"+s+".rule"]; got != "Host(`"+s+"."+id+".lab.test`)" {
			t.Errorf("route of %s = %q", s, got)
		}
	}
	cl := r.get(id)
	if cl.Status.Phase != api.PhaseUp || cl.Status.ObservedGeneration != cl.Generation {
		t.Fatalf("status = %s observed %d of %d", cl.Status.Phase, cl.Status.ObservedGeneration, cl.Generation)
	}
	if c := condition(cl, api.ConditionReady); c.Status != "True" || c.Reason != "AllStudentsRunning" {
		t.Errorf("Ready = %+v", c)
	}
	// A router on a bridge is attached, but cannot reach sandboxes that
	// accept no traffic from other containers: the status says so.
	if c := condition(cl, api.ConditionRouting); c.Status != "False" || c.Reason != "TraefikNotHostNetwork" {
		t.Errorf("RoutingAvailable = %+v", c)
	}
	for i, s := range cl.Status.Students {
		if s.ID != students[i] || s.State != "running" || s.Endpoint != "http://"+students[i]+"."+id+".lab.test" {
			t.Errorf("student status %d = %+v", i, s)
		}
	}
	router, _ := r.docker.InspectContainer(ctx, routerID)
	if _, on := router.NetworkSettings.Networks["homeroom-"+id]; !on {
		t.Errorf("router not attached to the class network: %v", router.NetworkSettings.Networks)
	}

	t.Run("hardened", func(t *testing.T) {
		info, err := r.docker.InspectContainer(ctx, cs["alice"].ID)
		if err != nil {
			t.Fatal(err)
		}
		h := info.HostConfig
		if !slices.Equal(h.CapDrop, []string{"ALL"}) || !slices.Contains(h.SecurityOpt, "no-new-privileges:true") ||
			h.Privileged || !h.ReadonlyRootfs || h.PidsLimit == nil || *h.PidsLimit != 64 || h.Memory != 128<<20 ||
			info.Config.User != "65534:65534" || len(h.Binds) != 0 {
			t.Errorf("host config not hardened: capdrop %v secopt %v priv %v ro %v pids %v mem %d user %q binds %v",
				h.CapDrop, h.SecurityOpt, h.Privileged, h.ReadonlyRootfs, h.PidsLimit, h.Memory, info.Config.User, h.Binds)
		}
		for _, m := range info.Mounts {
			if m.Type == "bind" {
				t.Errorf("host mount %+v", m)
			}
		}
	})

	t.Run("a second pass changes nothing", func(t *testing.T) {
		before := r.get(id)
		res, err := r.pass(id)
		if err != nil || len(res.Plan) != 0 {
			t.Fatalf("second pass: plan %q err %v", res.Plan, err)
		}
		after, _ := r.labelled(id)
		for s, c := range cs {
			if after[s].ID != c.ID {
				t.Errorf("container of %s replaced", s)
			}
		}
		if got := r.get(id); got.Version != before.Version {
			t.Errorf("status rewritten by a no-op pass: version %d -> %d", before.Version, got.Version)
		}
	})

	t.Run("a container removed by hand comes back", func(t *testing.T) {
		if err := r.docker.API().ContainerRemove(ctx, cs["bob"].ID, container.RemoveOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
		r.converge(id)
		after, _ := r.labelled(id)
		if b, ok := after["bob"]; !ok || b.ID == cs["bob"].ID || b.State != "running" {
			t.Fatalf("bob after pass: %+v", after["bob"])
		}
		if after["alice"].ID != cs["alice"].ID || after["carol"].ID != cs["carol"].ID {
			t.Errorf("other students' containers were replaced")
		}
	})

	// alice saves work; carol's program crashes with exit code 3.
	net := "homeroom-" + id
	work := []byte("def main():\n    print('hello from alice')\n")
	sandboxRequest(t, http.MethodPut, "http://"+r.ipOf("homeroom-"+id+"-alice", net)+":8080/files/src/main.py", work)
	sandboxRequest(t, http.MethodPost, "http://"+r.ipOf("homeroom-"+id+"-carol", net)+":8080/exit?code=3", nil)
	waitState(t, r.docker, "homeroom-"+id+"-carol", "exited")

	r.phase(id, api.PhaseDown)
	r.converge(id)
	cs, ns = r.labelled(id)
	if len(cs) != 0 || len(ns) != 0 {
		t.Fatalf("left after Down: %d containers, %d networks", len(cs), len(ns))
	}
	router, _ = r.docker.InspectContainer(ctx, routerID)
	if _, on := router.NetworkSettings.Networks[net]; on {
		t.Errorf("router still attached to the removed network")
	}
	cl = r.get(id)
	if cl.Status.Phase != api.PhaseDown || cl.Status.Run == nil || cl.Status.Run.CompletedAt == nil {
		t.Fatalf("status after Down: %+v", cl.Status)
	}
	runID := cl.Status.Run.ID
	for _, s := range cl.Status.Students {
		if s.Artifacts == nil || s.Artifacts.RunID != runID || s.Artifacts.State != api.CollectRemoved || s.Artifacts.ManifestSHA256 == "" {
			t.Errorf("student %s is not checkpointed as collected and removed in run %s: %+v", s.ID, runID, s.Artifacts)
		}
	}

	items, err := r.art.ListClass(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var found *artifacts.Item
	for i := range items {
		if items[i].Student == "alice" && items[i].Path == "files/workspace/src/main.py" {
			found = &items[i]
		}
	}
	if found == nil || found.RunID != runID {
		t.Fatalf("alice's file not in the listing: %+v", items)
	}
	rc, _, err := r.art.Open(ctx, found.Key)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, work) {
		t.Errorf("collected %q, saved %q", got, work)
	}

	var m artifacts.Manifest
	if err := r.art.GetJSON(ctx, artifacts.ManifestKey(api.ArtifactPrefix(id, runID, "carol")), &m); err != nil {
		t.Fatal(err)
	}
	if m.Container.State != "exited" || m.Container.ExitCode == nil || *m.Container.ExitCode != 3 || m.Logs == nil {
		t.Errorf("carol's manifest: %+v logs %+v", m.Container, m.Logs)
	}
	logs, _, err := r.art.Open(ctx, m.Logs.Key)
	if err != nil {
		t.Fatal(err)
	}
	logText, _ := io.ReadAll(logs)
	logs.Close()
	if !strings.Contains(string(logText), "exiting with code 3") {
		t.Errorf("carol's log does not show the crash: %q", logText)
	}

	idx, err := r.art.GetRunIndex(ctx, id, runID)
	if err != nil {
		t.Fatalf("run index: %v", err)
	}
	if len(idx.Students) != 3 {
		t.Fatalf("index lists %d students: %+v", len(idx.Students), idx.Students)
	}
	for _, s := range idx.Students {
		if s.Outcome != artifacts.OutcomeCollected || s.ExitCode == nil {
			t.Errorf("index entry %+v", s)
		}
		if s.StudentID == "carol" && *s.ExitCode != 3 {
			t.Errorf("carol's exit code in the index: %d", *s.ExitCode)
		}
	}

	res, err := r.pass(id)
	if err != nil || len(res.Plan) != 0 {
		t.Errorf("pass on a Down class: plan %q err %v", res.Plan, err)
	}
}

func waitState(t *testing.T, d *dockerx.Client, name, state string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		info, err := d.InspectContainer(context.Background(), name)
		if err == nil && info.State.Status == state {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s never reached state %s", name, state)
}

func TestUpWithoutRouterStillSucceeds(t *testing.T) {
	r := newRig(t, nil)
	const id = "it-norouter"
	r.class(id, api.PhaseUp, "dana")
	r.converge(id)
	cl := r.get(id)
	if cl.Status.Phase != api.PhaseUp {
		t.Fatalf("phase %s", cl.Status.Phase)
	}
	if c := condition(cl, api.ConditionRouting); c.Status != "False" || c.Reason != "TraefikNotFound" {
		t.Errorf("RoutingAvailable = %+v", c)
	}
	r.phase(id, api.PhaseDown)
	r.converge(id)
}

func TestFailingDockerCallIsReportedNotFatal(t *testing.T) {
	pol, err := policy.Parse([]byte(`
templates:
  - name: sandbox
    image: homeroom/no-such-image:0
    port: 8080
    memoryMiB: 64
    cpus: 0.5
    pids: 32
`))
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, pol)
	const id = "it-noimage"
	r.class(id, api.PhaseUp, "erin")
	_, err = r.pass(id)
	var terminal *reconcile.TerminalError
	if err == nil || !strings.Contains(err.Error(), "no-such-image") {
		t.Fatalf("pass error = %v, want one naming the missing image", err)
	}
	if !errorsAs(err, &terminal) {
		t.Errorf("a missing image should not be retried in a tight loop: %T %v", err, err)
	}
	cl := r.get(id)
	if c := condition(cl, api.ConditionSynced); c.Status != "False" || c.Reason != "DockerError" || !strings.Contains(c.Message, "no-such-image") {
		t.Errorf("Synced = %+v", c)
	}
	if cl.Status.Phase != api.PhaseProvisioning {
		t.Errorf("phase %s, want Provisioning", cl.Status.Phase)
	}
	r.phase(id, api.PhaseDown)
	r.converge(id)
	if cs, ns := r.labelled(id); len(cs)+len(ns) != 0 {
		t.Errorf("left after Down: %d containers %d networks", len(cs), len(ns))
	}
}

func TestObjectStoreDownKeepsContainers(t *testing.T) {
	r := newRig(t, nil)
	ctx := context.Background()
	const id = "it-s3down"
	r.class(id, api.PhaseUp, "fay", "gus")
	r.converge(id)
	net := "homeroom-" + id
	sandboxRequest(t, http.MethodPut, "http://"+r.ipOf("homeroom-"+id+"-fay", net)+":8080/files/essay.txt", []byte("my essay"))

	r.s3.Stop()
	r.phase(id, api.PhaseDown)
	if _, err := r.pass(id); err == nil {
		t.Fatal("Down succeeded with the object store stopped")
	}
	cs, _ := r.labelled(id)
	if len(cs) != 2 {
		t.Fatalf("%d containers left while the object store was down, want 2 (nothing removed)", len(cs))
	}
	cl := r.get(id)
	if cl.Status.Phase != api.PhaseCollecting {
		t.Errorf("phase %s, want Collecting", cl.Status.Phase)
	}
	if c := condition(cl, api.ConditionSynced); c.Status != "False" || c.Reason != "CollectFailed" {
		t.Errorf("Synced = %+v", c)
	}

	r.s3.Start()
	r.converge(id)
	cs, ns := r.labelled(id)
	if len(cs)+len(ns) != 0 {
		t.Fatalf("left after Down: %d containers %d networks", len(cs), len(ns))
	}
	item, err := r.art.LatestFile(ctx, id, "fay", "files/workspace/essay.txt")
	if err != nil {
		t.Fatal(err)
	}
	rc, _, err := r.art.Open(ctx, item.Key)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "my essay" {
		t.Errorf("collected %q", b)
	}
	var idx bytes.Buffer
	json.NewEncoder(&idx).Encode(r.get(id).Status.Students)
	if strings.Count(idx.String(), `"runId"`) != 2 {
		t.Errorf("both students should be checkpointed: %s", idx.String())
	}
}

// A student controls their workspace: links pointing out of it must not make
// the collection read, or write, anything outside the student's prefix.
func TestHostileWorkspace(t *testing.T) {
	r := newRig(t, nil)
	ctx := context.Background()
	const id = "it-hostile"
	r.class(id, api.PhaseUp, "mallory")
	r.converge(id)
	name := api.ContainerName(id, "mallory")

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h *tar.Header, body string) {
		h.Size = int64(len(body))
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, body)
	}
	add(&tar.Header{Name: "ok.txt", Typeflag: tar.TypeReg}, "honest work")
	add(&tar.Header{Name: "etc", Typeflag: tar.TypeSymlink, Linkname: "/etc"}, "")
	add(&tar.Header{Name: "passwd", Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"}, "")
	add(&tar.Header{Name: "sub/", Typeflag: tar.TypeDir, Mode: 0o755}, "")
	add(&tar.Header{Name: "sub/up", Typeflag: tar.TypeSymlink, Linkname: ".."}, "")
	add(&tar.Header{Name: "sub/hard", Typeflag: tar.TypeLink, Linkname: "ok.txt"}, "")
	add(&tar.Header{Name: "..looks-like-parent", Typeflag: tar.TypeReg}, "dots in a name are fine")
	tw.Close()
	if err := r.docker.API().CopyToContainer(ctx, name, "/workspace", &buf, container.CopyToContainerOptions{}); err != nil {
		t.Fatalf("plant the workspace: %v", err)
	}

	r.phase(id, api.PhaseDown)
	r.converge(id)
	cl := r.get(id)
	prefix := api.ArtifactPrefix(id, cl.Status.Run.ID, "mallory")
	keys, err := r.art.ListKeys(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if k == artifacts.RunIndexKey(id, cl.Status.Run.ID) {
			continue
		}
		if strings.HasPrefix(k, "classes/"+id+"/") && !strings.HasPrefix(k, prefix) {
			t.Errorf("object %s outside the student's prefix %s", k, prefix)
		}
		if strings.Contains(k, "passwd") || strings.Contains(k, "/etc/") || strings.Contains(k, "/up/") {
			t.Errorf("a link was followed: %s", k)
		}
	}
	var m artifacts.Manifest
	if err := r.art.GetJSON(ctx, artifacts.ManifestKey(prefix), &m); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range m.Files {
		got = append(got, f.Path)
	}
	slices.Sort(got)
	if want := []string{"workspace/..looks-like-parent", "workspace/ok.txt"}; !slices.Equal(got, want) {
		t.Errorf("collected %v, want %v", got, want)
	}
	skipped := map[string]string{}
	for _, s := range m.Skipped {
		skipped[s.Path] = s.Reason
	}
	for _, p := range []string{"workspace/etc", "workspace/passwd", "workspace/sub/up"} {
		if skipped[p] != artifacts.ReasonSymlink {
			t.Errorf("%s: skipped as %q, want %q (all skipped: %v)", p, skipped[p], artifacts.ReasonSymlink, m.Skipped)
		}
	}
	if _, listed := skipped["workspace/sub/hard"]; !listed {
		// Docker may store a hard link as a second regular file; then it is
		// collected like one, which is safe.
		if !slices.Contains(got, "workspace/sub/hard") {
			t.Logf("hard link neither skipped nor collected: %v", m.Skipped)
		}
	}
}

// Docker's default address pools run out at about 31 local networks; class
// networks take subnets from Homeroom's own pool instead.
func TestManyClassesGetTheirOwnSubnets(t *testing.T) {
	pol, err := policy.Parse([]byte(`
templates:
  - {name: sandbox, image: homeroom/sandbox:dev, port: 8080, user: "65534:65534", memoryMiB: 64, cpus: 0.1, pids: 64, readOnlyRootFS: true}
defaults: {maxClassesUp: 50, maxContainers: 50}
`))
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, pol)
	ctx := context.Background()
	// A network Homeroom does not own sits on the pool's first free subnet
	// (the daemon may hold networks of earlier runs it would not remove):
	// it must be left alone, and no class may take its subnet.
	pool := netip.MustParsePrefix("10.200.0.0/15")
	foreign := firstFreeSubnet(t, r.docker, pool)
	lookalike, err := r.docker.API().NetworkCreate(ctx, "homeroom-lookalike", network.CreateOptions{
		IPAM: &network.IPAM{Config: []network.IPAMConfig{{Subnet: foreign.String()}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.docker.API().NetworkRemove(ctx, lookalike.ID)

	const classes = 40
	ids := make([]string, classes)
	for i := range ids {
		ids[i] = fmt.Sprintf("it-many-%02d", i)
		r.class(ids[i], api.PhaseUp, "solo")
	}
	for _, id := range ids {
		r.converge(id)
	}
	seen := map[string]string{}
	for _, id := range ids {
		n, err := r.docker.API().NetworkInspect(ctx, api.NetworkName(id), network.InspectOptions{})
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if len(n.IPAM.Config) != 1 {
			t.Fatalf("%s: IPAM %+v", id, n.IPAM)
		}
		sub := netip.MustParsePrefix(n.IPAM.Config[0].Subnet)
		if !pool.Contains(sub.Addr()) || sub.Bits() != 23 || sub.Overlaps(foreign) {
			t.Errorf("%s on %s: not a free /23 of the pool", id, sub)
		}
		if other, dup := seen[sub.String()]; dup {
			t.Errorf("%s and %s share %s", id, other, sub)
		}
		seen[sub.String()] = id
		if !n.Internal {
			t.Errorf("%s: the sandbox template has no internet access, so its network must be internal", id)
		}
		if cl := r.get(id); cl.Status.Phase != api.PhaseUp {
			t.Errorf("%s is %s", id, cl.Status.Phase)
		}
	}
	if _, err := r.docker.API().NetworkInspect(ctx, lookalike.ID, network.InspectOptions{}); err != nil {
		t.Errorf("the look-alike network was touched: %v", err)
	}
	for _, id := range ids {
		r.phase(id, api.PhaseDown)
		r.converge(id)
	}
}

// firstFreeSubnet is the first /23 of pool that no network on the daemon
// overlaps.
func firstFreeSubnet(t *testing.T, d *dockerx.Client, pool netip.Prefix) netip.Prefix {
	t.Helper()
	nets, err := d.API().NetworkList(context.Background(), network.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var used []netip.Prefix
	for _, n := range nets {
		for _, c := range n.IPAM.Config {
			if p, err := netip.ParsePrefix(c.Subnet); err == nil {
				used = append(used, p)
			}
		}
	}
	for a := pool.Addr(); pool.Contains(a); {
		sub := netip.PrefixFrom(a, 23)
		if !slices.ContainsFunc(used, sub.Overlaps) {
			return sub
		}
		b := a.As4()
		b[2] += 2
		if b[2] == 0 {
			b[1]++
		}
		a = netip.AddrFrom4(b)
	}
	t.Fatalf("no free /23 in %s", pool)
	return netip.Prefix{}
}
