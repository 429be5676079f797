package reconcile_test

import (
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
	"github.com/homeroom/homeroom/pkg/policy"
	"github.com/homeroom/homeroom/pkg/reconcile"
	"go.uber.org/zap/zaptest"
)

func TestTTLExpiryAgainstTheDaemon(t *testing.T) {
	r := newRig(t, nil)
	const id = "it-ttl"
	testenv.CleanupClass(t, r.docker, id)
	ctx := context.Background()
	if _, _, err := r.store.PutSpec(ctx, id, api.ClassSpec{Subject: "cs", Template: "sandbox", Students: []string{"tia"}, TTLSeconds: 2}); err != nil {
		t.Fatal(err)
	}
	r.phase(id, api.PhaseUp)
	res, err := r.pass(id)
	if err != nil {
		t.Fatal(err)
	}
	if res.RequeueAfter <= 0 || res.RequeueAfter > 2*time.Second {
		t.Errorf("RequeueAfter = %v, want the time left of a 2 s TTL", res.RequeueAfter)
	}
	net := api.NetworkName(id)
	sandboxRequest(t, http.MethodPut, "http://"+r.ipOf(api.ContainerName(id, "tia"), net)+":8080/files/draft.txt", []byte("unfinished"))
	time.Sleep(res.RequeueAfter)
	r.converge(id)
	c := r.get(id)
	if c.DesiredPhase != api.PhaseDown || c.DownReason != api.ReasonTTLExpired || c.Status.Phase != api.PhaseDown {
		t.Fatalf("after the TTL: desired %s (%q), phase %s", c.DesiredPhase, c.DownReason, c.Status.Phase)
	}
	if n := r.counter("homeroom_ttl_expiries_total"); n != 1 {
		t.Errorf("homeroom_ttl_expiries_total = %v, want 1", n)
	}
	if ready := condition(c, api.ConditionReady); ready.Reason != api.ReasonTTLExpired {
		t.Errorf("Ready = %+v", ready)
	}
	if _, err := r.art.LatestFile(ctx, id, "tia", "files/workspace/draft.txt"); err != nil {
		t.Errorf("tia's draft was not collected before the expiry removed her sandbox: %v", err)
	}
	if cs, ns := r.labelled(id); len(cs)+len(ns) != 0 {
		t.Errorf("left after expiry: %d containers, %d networks", len(cs), len(ns))
	}
}

func TestRosterChangeAgainstTheDaemon(t *testing.T) {
	r := newRig(t, nil)
	const id = "it-roster"
	r.class(id, api.PhaseUp, "uma", "vic")
	r.converge(id)
	before, _ := r.labelled(id)
	net := api.NetworkName(id)
	sandboxRequest(t, http.MethodPut, "http://"+r.ipOf(api.ContainerName(id, "vic"), net)+":8080/files/final.txt", []byte("vic's last work"))

	if _, _, err := r.store.PutSpec(context.Background(), id, api.ClassSpec{Subject: "cs", Template: "sandbox", Students: []string{"uma", "wes"}}); err != nil {
		t.Fatal(err)
	}
	r.converge(id)
	after, _ := r.labelled(id)
	if after["uma"].ID != before["uma"].ID {
		t.Error("uma's sandbox was replaced by a roster change that did not concern her")
	}
	if _, ok := after["vic"]; ok {
		t.Error("vic's container is still there")
	}
	if w, ok := after["wes"]; !ok || w.State != "running" {
		t.Errorf("wes has no running sandbox: %+v", w)
	}
	item, err := r.art.LatestFile(context.Background(), id, "vic", "files/workspace/final.txt")
	if err != nil {
		t.Fatalf("vic's work was not collected before his container went: %v", err)
	}
	if c := r.get(id); c.Status.Phase != api.PhaseUp || c.Status.Run == nil || c.Status.Run.ID != item.RunID {
		t.Errorf("status after the roster change: phase %s run %+v (vic's run %s)", c.Status.Phase, c.Status.Run, item.RunID)
	}
	r.phase(id, api.PhaseDown)
	r.converge(id)
}

func TestInternetTemplateGetsARouteOut(t *testing.T) {
	pol, err := policy.Parse([]byte(`
templates:
  - {name: sandbox, image: homeroom/sandbox:dev, port: 8080, user: "65534:65534", memoryMiB: 64, cpus: 0.1, pids: 64, readOnlyRootFS: true, internet: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, pol)
	const id = "it-internet"
	r.class(id, api.PhaseUp, "xia")
	r.converge(id)
	n, err := r.docker.API().NetworkInspect(context.Background(), api.NetworkName(id), network.InspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n.Internal {
		t.Error("a template with internet access got an internal network")
	}
	r.phase(id, api.PhaseDown)
	r.converge(id)
}

// Labelled resources of a class gone from the store are collected and
// removed after the grace period; look-alikes without the labels never are.
func TestOrphansAreCollectedThenRemoved(t *testing.T) {
	r := newRig(t, nil)
	ctx := context.Background()
	const id = "it-orphan"
	r.class(id, api.PhaseUp, "yan")
	r.converge(id)
	net := api.NetworkName(id)
	sandboxRequest(t, http.MethodPut, "http://"+r.ipOf(api.ContainerName(id, "yan"), net)+":8080/files/thesis.md", []byte("# chapter one"))

	var lookalikes []string
	for name, labels := range map[string]map[string]string{
		api.ContainerName(id, "mallory"): nil,                                             // the name, no labels
		api.ContainerName(id, "trudy"):   {api.LabelClass: id, api.LabelStudent: "trudy"}, // labels, but not managed-by
	} {
		resp, err := r.docker.API().ContainerCreate(ctx, &container.Config{Image: testenv.SandboxImage, Labels: labels}, nil, nil, nil, name)
		if err != nil {
			t.Fatal(err)
		}
		lookalikes = append(lookalikes, resp.ID)
		defer r.docker.API().ContainerRemove(ctx, resp.ID, container.RemoveOptions{Force: true})
	}

	// The class is deleted behind the controller's back (the API refuses
	// to delete a class that is Up).
	if err := r.store.Delete(ctx, id, func(*api.Class) error { return nil }); err != nil {
		t.Fatal(err)
	}
	res, err := r.pass(id)
	if err != nil {
		t.Fatal(err)
	}
	if cs, _ := r.labelled(id); len(cs) == 0 || res.RequeueAfter <= 0 {
		t.Fatalf("orphans reaped within the grace period (requeue %v)", res.RequeueAfter)
	}
	time.Sleep(res.RequeueAfter)
	r.converge(id)

	cs, ns := r.labelled(id)
	var managed []string
	for s, c := range cs {
		if c.Labels[api.LabelManagedBy] == api.ManagedByValue {
			managed = append(managed, s)
		}
	}
	if len(managed) != 0 || len(ns) != 0 {
		t.Errorf("left after the grace period: containers of %v, %d networks", managed, len(ns))
	}
	for _, lid := range lookalikes {
		if _, err := r.docker.InspectContainer(ctx, lid); err != nil {
			t.Errorf("a look-alike without Homeroom's labels was touched: %v", err)
		}
	}
	if n := r.counter("homeroom_orphans_reaped_total"); n != 1 {
		t.Errorf("homeroom_orphans_reaped_total = %v, want 1", n)
	}
	item, err := r.art.LatestFile(ctx, id, "yan", "files/workspace/thesis.md")
	if err != nil {
		t.Fatalf("the orphan's work was not collected: %v", err)
	}
	runs, err := r.art.ListRuns(ctx, id)
	if err != nil || len(runs) != 1 || runs[0].RunID != item.RunID || !runs[0].Complete {
		t.Errorf("runs %+v (err %v), want one complete run %s", runs, err, item.RunID)
	}
	idx, err := r.art.GetRunIndex(ctx, id, item.RunID)
	if err != nil || !slices.ContainsFunc(idx.Students, func(s artifacts.RunStudent) bool {
		return s.StudentID == "yan" && s.Outcome == artifacts.OutcomeCollected
	}) {
		t.Errorf("index %+v (err %v)", idx, err)
	}
}

// A template changed while a class is Up never replaces running work: the
// status says so, and the next Up uses the new template.
func TestTemplateChangeAgainstTheDaemon(t *testing.T) {
	r := newRig(t, nil)
	const id = "it-template"
	r.class(id, api.PhaseUp, "zed")
	r.converge(id)
	before, _ := r.labelled(id)

	changed, err := policy.Parse([]byte(`
templates:
  - {name: sandbox, image: homeroom/sandbox:dev, port: 8080, user: "65534:65534", memoryMiB: 96, cpus: 0.5, pids: 64, readOnlyRootFS: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	r.rec = reconcile.New(r.store, r.docker, r.art, changed, reconcile.Options{
		Domain: "lab.test", TraefikContainer: r.traefik, CollectTimeout: 30 * time.Second,
	}, zaptest.NewLogger(t))
	r.converge(id)
	after, _ := r.labelled(id)
	if after["zed"].ID != before["zed"].ID {
		t.Fatal("a template change replaced a running sandbox")
	}
	if c := condition(r.get(id), api.ConditionTemplateCurrent); c.Status != "False" || c.Reason != "TemplateChanged" {
		t.Errorf("TemplateCurrent = %+v", c)
	}

	r.phase(id, api.PhaseDown)
	r.converge(id)
	r.phase(id, api.PhaseUp)
	r.converge(id)
	info, err := r.docker.InspectContainer(context.Background(), api.ContainerName(id, "zed"))
	if err != nil {
		t.Fatal(err)
	}
	if info.HostConfig.Memory != 96<<20 {
		t.Errorf("the next Up still uses the old template: memory %d", info.HostConfig.Memory)
	}
	if c := condition(r.get(id), api.ConditionTemplateCurrent); c.Status != "True" {
		t.Errorf("TemplateCurrent after the next Up = %+v", c)
	}
	r.phase(id, api.PhaseDown)
	r.converge(id)
}
