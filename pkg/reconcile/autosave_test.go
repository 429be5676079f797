package reconcile_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
	"github.com/homeroom/homeroom/pkg/policy"
	"github.com/homeroom/homeroom/pkg/reconcile"
	"go.uber.org/zap/zaptest"
)

func (e *env) runIndex(runID string) (artifacts.RunIndex, bool) {
	e.t.Helper()
	raw, ok := e.art.object(artifacts.RunIndexKey(classID, runID))
	var idx artifacts.RunIndex
	if ok {
		if err := json.Unmarshal(raw, &idx); err != nil {
			e.t.Fatal(err)
		}
	}
	return idx, ok
}

// upNow brings the class Up at the clock's time, which stands still from
// then on: autosaves fall due as the test advances it.
func (e *env) upNow(students ...string) {
	e.t.Helper()
	e.putClass(api.PhaseUp, students...)
	e.frozen.Store(true)
	up := e.now()
	e.store.edit(classID, func(c *api.Class) { c.UpSince = &up })
	e.mustConverge()
}

// While a class is Up its work is collected every autosaveMinutes, without
// stopping anything, as a run of kind autosave; only the latest is kept.
func TestAutosaveWhileUp(t *testing.T) {
	e := newEnv(t)
	e.upNow("alice", "bob")
	interval := policy.Default().Templates[0].AutosaveInterval()

	e.advance(interval - time.Second)
	if res := e.mustConverge(); len(res.Plan) != 0 {
		t.Fatalf("autosave before it was due:\n%s", res.Plan)
	}
	if res, _ := e.pass(); res.RequeueAfter <= 0 || res.RequeueAfter > time.Second {
		t.Errorf("the next pass is asked for in %v, want the autosave's due time (1s)", res.RequeueAfter)
	}

	e.advance(time.Second)
	if res := e.mustConverge(); res.Plan.String() != "autosave\n" {
		t.Fatalf("plan when due:\n%s", res.Plan)
	}
	first := e.class().Status.Autosave
	if first == nil || first.Collected != 2 || first.Failed != 0 {
		t.Fatalf("status.autosave = %+v", first)
	}
	idx, ok := e.runIndex(first.RunID)
	if !ok || idx.Kind != artifacts.RunKindAutosave || idx.Subject != "cs" || len(idx.Students) != 2 || idx.Students[0].Outcome != artifacts.OutcomeCollected {
		t.Fatalf("autosave index %+v (stored %v)", idx, ok)
	}
	for _, s := range []string{"alice", "bob"} {
		if c, _ := e.docker.container(cname(s)); c.state != "running" {
			t.Errorf("%s's sandbox is %s after an autosave", s, c.state)
		}
		if _, ok := e.art.object(artifacts.FilesKey(api.ArtifactPrefix(classID, first.RunID, s), "workspace/main.py")); !ok {
			t.Errorf("%s's work missing from the autosave", s)
		}
	}
	if c := e.class(); c.Status.Run != nil {
		t.Errorf("an autosave opened a Down run: %+v", c.Status.Run)
	}

	e.advance(interval)
	e.docker.write(cname("alice"), "workspace/later.txt", "written after the first autosave")
	if res := e.mustConverge(); res.Plan.String() != "autosave\n" {
		t.Fatalf("second plan:\n%s", res.Plan)
	}
	second := e.class().Status.Autosave
	if second.RunID == first.RunID {
		t.Fatal("the second autosave reused the first's run")
	}
	if _, ok := e.art.object(artifacts.FilesKey(api.ArtifactPrefix(classID, second.RunID, "alice"), "workspace/later.txt")); !ok {
		t.Error("the second autosave lacks what was written after the first")
	}
	if _, ok := e.runIndex(first.RunID); ok {
		t.Error("the superseded autosave was kept")
	}
	for k := range e.art.objects {
		if strings.Contains(k, first.RunID) {
			t.Errorf("object of the superseded autosave left: %s", k)
		}
	}

	// Down still makes the final run; the last autosave stays.
	e.store.edit(classID, func(c *api.Class) { c.DesiredPhase = api.PhaseDown })
	e.mustConverge()
	c := e.class()
	if c.Status.Run == nil || c.Status.Run.CompletedAt == nil {
		t.Fatalf("Down run %+v", c.Status.Run)
	}
	if idx, ok := e.runIndex(c.Status.Run.ID); !ok || idx.Kind != "" {
		t.Errorf("Down run index %+v", idx)
	}
	if _, ok := e.runIndex(second.RunID); !ok {
		t.Error("the last autosave was deleted by the Down")
	}
}

// An autosave whose object store refuses every student is a failed step:
// nothing is recorded, and the pass is retried.
func TestAutosaveThatSavesNobodyFails(t *testing.T) {
	e := newEnv(t)
	e.upNow("alice")
	e.advance(policy.Default().Templates[0].AutosaveInterval())
	e.art.fail("PutStream", "", -1)
	if _, err := e.pass(); err == nil {
		t.Fatal("an autosave that saved nobody succeeded")
	}
	if a := e.class().Status.Autosave; a != nil {
		t.Errorf("a failed autosave was recorded: %+v", a)
	}
	if s := cond(e.class(), api.ConditionSynced); s.Status != "False" || !strings.Contains(s.Message, "autosave") {
		t.Errorf("Synced = %+v", s)
	}
}

// A sandbox made again between two autosaves (its disk or daemon lost) may
// have lost its work: the autosave before, perhaps its only copy, is kept.
func TestAutosaveKeepsTheOneBeforeWhenASandboxWasMadeAgain(t *testing.T) {
	e := newEnv(t)
	e.upNow("alice", "bob")
	interval := policy.Default().Templates[0].AutosaveInterval()
	e.advance(interval)
	e.mustConverge()
	first := e.class().Status.Autosave

	// bob's sandbox is lost with its volume, and made again empty.
	e.docker.removeByHand(t, cname("bob"))
	e.docker.mu.Lock()
	delete(e.docker.volumes, api.VolumeName(classID, "bob", "/workspace"))
	e.docker.mu.Unlock()
	e.mustConverge()
	e.advance(interval)
	e.mustConverge()
	second := e.class().Status.Autosave
	if second == nil || second.RunID == first.RunID {
		t.Fatalf("no second autosave: %+v", second)
	}
	if _, ok := e.runIndex(first.RunID); !ok {
		t.Error("the autosave holding bob's earlier work was deleted")
	}
	// The next one, with the same sandboxes, supersedes the second.
	e.advance(interval)
	e.mustConverge()
	if _, ok := e.runIndex(second.RunID); ok {
		t.Error("an autosave superseded by one of the same sandboxes was kept")
	}
	if _, ok := e.runIndex(first.RunID); !ok {
		t.Error("the kept autosave was deleted later")
	}
}

// A sandbox whose work volumes pass the template's workspaceMiB is
// autosaved, then stopped, reported, and not started again.
func TestFullWorkspaceIsSavedThenStopped(t *testing.T) {
	e := newEnv(t)
	pol, err := policy.Parse([]byte(`templates:
  - {name: sandbox, image: homeroom/sandbox:dev, port: 8080, collectPaths: [/workspace], memoryMiB: 128, cpus: 0.5, pids: 64, readOnlyRootFS: true, workspaceMiB: 1}
`))
	if err != nil {
		t.Fatal(err)
	}
	e.rec = reconcile.New(e.store, e.docker, e.art, pol, reconcile.Options{
		Domain: domain, TraefikContainer: traefikName, CollectTimeout: 10 * time.Second, Now: e.now,
	}, zaptest.NewLogger(t))
	e.putClass(api.PhaseUp, "alice", "bob")
	up := e.now()
	e.store.edit(classID, func(c *api.Class) { c.UpSince = &up })
	e.mustConverge()
	e.docker.write(cname("bob"), "workspace/huge.bin", strings.Repeat("x", 2<<20))

	changed, err := e.rec.MeasureWorkspaces(context.Background())
	if err != nil || !slices.Contains(changed, classID) {
		t.Fatalf("measure: %v, changed %v", err, changed)
	}
	res := e.mustConverge()
	if got, want := res.Plan.String(), "autosave\nstop-container bob ("+cname("bob")+")\n"; got != want {
		t.Fatalf("plan:\n%s\nwant:\n%s", got, want)
	}
	c := e.class()
	if cd := cond(c, api.ConditionWorkspaceFull); cd.Status != "True" || !strings.Contains(cd.Message, "bob (2 MiB)") || strings.Contains(cd.Message, "alice") {
		t.Errorf("WorkspaceFull = %+v", cd)
	}
	if b := studentStatus(c, "bob").WorkspaceBytes; b == nil || *b < 2<<20 {
		t.Errorf("bob's workspaceBytes = %v", b)
	}
	a := c.Status.Autosave
	if a == nil {
		t.Fatal("no autosave before the stop")
	}
	if _, ok := e.art.object(artifacts.FilesKey(api.ArtifactPrefix(classID, a.RunID, "bob"), "workspace/huge.bin")); !ok {
		t.Error("bob's work was not saved before his sandbox was stopped")
	}
	if bob, _ := e.docker.container(cname("bob")); bob.state != "exited" {
		t.Errorf("bob's sandbox is %s", bob.state)
	}
	if alice, _ := e.docker.container(cname("alice")); alice.state != "running" {
		t.Errorf("alice's sandbox is %s", alice.state)
	}
	// Long after any restart pause, bob's sandbox stays stopped.
	e.advance(time.Hour)
	e.store.edit(classID, func(c *api.Class) { c.Status.Autosave.StartedAt = e.now() })
	if res := e.mustConverge(); len(res.Plan) != 0 {
		t.Errorf("a full sandbox was acted on again:\n%s", res.Plan)
	}
}
