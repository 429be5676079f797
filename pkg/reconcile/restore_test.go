package reconcile_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
	"github.com/homeroom/homeroom/pkg/policy"
)

const lostWhy = "the node it was on, hr-node-3 (n3), has been down since 2026-12-01T09:00:00Z"

// upWithTwoAutosaves brings alice and bob Up and autosaves twice: the first
// holds alice's essay, the second could not reach her (her node went
// down), so only the first holds her work. It returns the first's run id.
func upWithTwoAutosaves(e *env) string {
	e.t.Helper()
	e.upNow("alice", "bob")
	interval := policy.Default().Templates[0].AutosaveInterval()
	e.docker.write(cname("alice"), "workspace/essay.txt", "draft 1")
	e.advance(interval)
	e.mustConverge()
	first := e.class().Status.Autosave
	if first == nil || first.Collected != 2 {
		e.t.Fatalf("first autosave: %+v", first)
	}
	e.docker.fail("Archive", cname("alice"), -1)
	e.advance(interval)
	e.mustConverge()
	second := e.class().Status.Autosave
	if second.RunID == first.RunID || second.Collected != 1 || second.Failed != 1 {
		e.t.Fatalf("second autosave: %+v", second)
	}
	e.docker.clear()
	return first.RunID
}

// checkRestored checks that alice's new sandbox holds the essay of run,
// restored before it started, and that her status says so.
func checkRestored(e *env, run string) {
	e.t.Helper()
	c, ok := e.docker.container(cname("alice"))
	if !ok || c.state != "running" || c.files["workspace/essay.txt"] != "draft 1" {
		e.t.Errorf("alice's new sandbox: %v, %s, essay %q; want it running with her essay", ok, c.state, c.files["workspace/essay.txt"])
	}
	r := e.class().Status.Restored["alice"]
	if r.Pending || r.RunID != run || r.Files != 3 || r.Reason != lostWhy {
		e.t.Errorf("alice's restore: %+v; want run %s's 3 files, because of her node", r, run)
	}
}

// A sandbox lost with its node after an autosave that could not reach it
// gets back the work of the autosave before, the latest run that collected
// the student, rather than nothing from the latest run.
func TestALostSandboxGetsTheLatestRunThatHoldsItsWork(t *testing.T) {
	e := newEnv(t)
	run := upWithTwoAutosaves(e)
	e.docker.lose("alice", lostWhy)
	e.mustConverge()
	checkRestored(e, run)
}

// A controller stopped while it makes a lost sandbox again, whether before
// the new sandbox is made or before the work is put back, leaves the
// restore pending in the status; the next pass finishes it before the new
// sandbox first starts.
func TestAnInterruptedReplacementStillRestores(t *testing.T) {
	for _, stop := range []struct{ desc, op string }{
		{"after the lost sandbox is removed", "CreateContainer"},
		{"after the new sandbox is made", "CopyTo"},
	} {
		t.Run(stop.desc, func(t *testing.T) {
			e := newEnv(t)
			run := upWithTwoAutosaves(e)
			e.docker.lose("alice", lostWhy)
			e.docker.fail(stop.op, cname("alice"), 1)
			if _, err := e.pass(); err == nil {
				t.Fatalf("the pass did not stop at %s", stop.op)
			}
			if r := e.class().Status.Restored["alice"]; !r.Pending || r.Reason != lostWhy {
				t.Fatalf("after the stop, alice's restore is %+v; want it pending, because of her node", r)
			}
			if c, ok := e.docker.container(cname("alice")); ok && c.state == "running" {
				t.Fatal("alice's new sandbox started before her work was put back")
			}
			e.mustConverge()
			checkRestored(e, run)
		})
	}
}

// A sandbox lost before anything of this Up collected its student starts
// from the template: the work of an earlier Up (its Down's run) is not put
// into a session that began without it.
func TestALostSandboxGetsNothingFromAnEarlierUp(t *testing.T) {
	e := newEnv(t)
	e.upNow("alice", "bob")
	e.docker.write(cname("alice"), "workspace/essay.txt", "last week's")
	e.putClass(api.PhaseDown, "alice", "bob")
	e.mustConverge()
	if r := e.class().Status.Run; r == nil || r.CompletedAt == nil {
		t.Fatalf("the Down's run: %+v", r)
	}
	e.advance(time.Hour)
	e.upNow("alice", "bob")
	e.docker.lose("alice", lostWhy)
	e.mustConverge()
	c, _ := e.docker.container(cname("alice"))
	if got, ok := c.files["workspace/essay.txt"]; ok {
		t.Errorf("alice's new sandbox has last week's essay %q", got)
	}
	if r := e.class().Status.Restored["alice"]; r.RunID != "" || r.Files != 0 || r.Pending || r.Reason != lostWhy {
		t.Errorf("alice's restore: %+v; want none, because of her node", r)
	}
}

// What a student wrote after the autosave stays in the work volumes their
// lost sandbox left on its node. Once the node is back they are collected
// into a run of their own, of kind recovered, verified, and only then
// removed there; the new sandbox's volumes, of the same names, are left
// alone. A failed collection removes nothing.
func TestWorkLeftOnALostNodeIsCollectedWhenItIsBack(t *testing.T) {
	e := newEnv(t)
	run := upWithTwoAutosaves(e)
	e.docker.write(cname("alice"), "workspace/essay.txt", "draft 2") // after the autosave that holds her work
	e.docker.lose("alice", lostWhy)
	e.mustConverge()
	checkRestored(e, run)
	lb := e.class().Status.LeftBehind["alice"]
	if len(lb) != 1 || lb[0].On != lostPlace || lb[0].Reason != lostWhy || lb[0].RunID == "" || lb[0].CollectedAt != nil {
		t.Fatalf("left behind: %+v; want alice's on %s, to collect", lb, lostPlace)
	}
	if res := e.mustConverge(); len(res.Plan) != 0 {
		t.Fatalf("with %s down, the plan:\n%s", lostPlace, res.Plan)
	}

	e.docker.setPlace(lostPlace, true)
	e.docker.fail("Archive", "recovery", 1)
	if _, err := e.pass(); err == nil {
		t.Fatal("a failed collection of the work left behind did not fail the pass")
	}
	if got := e.docker.left(lostPlace)["workspace/essay.txt"]; got != "draft 2" {
		t.Fatalf("after a failed collection, the essay left on %s: %q", lostPlace, got)
	}
	e.mustConverge()
	if lb := e.class().Status.LeftBehind; len(lb) != 0 {
		t.Errorf("left behind after its collection: %+v", lb)
	}
	if left := e.docker.left(lostPlace); len(left) != 0 {
		t.Errorf("still on %s: %v", lostPlace, left)
	}
	idx, ok := e.runIndex(lb[0].RunID)
	if !ok || idx.Kind != artifacts.RunKindRecovered || len(idx.Students) != 1 || idx.Students[0].StudentID != "alice" {
		t.Fatalf("the recovered run's index: %+v, %v", idx, ok)
	}
	m := e.manifestIn(lb[0].RunID, "alice")
	if body := e.fileOf(m, "workspace/essay.txt"); body != "draft 2" {
		t.Errorf("the recovered essay: %q, want the draft written after the autosave", body)
	}
	if c, _ := e.docker.container(cname("alice")); c.files["workspace/essay.txt"] != "draft 1" || c.state != "running" {
		t.Errorf("alice's new sandbox: %s, essay %q; want it running with the restored draft", c.state, c.files["workspace/essay.txt"])
	}
}

// manifestIn is student's manifest in run, as stored.
func (e *env) manifestIn(run, student string) artifacts.Manifest {
	e.t.Helper()
	raw, ok := e.art.object(artifacts.ManifestKey(api.ArtifactPrefix(classID, run, student)))
	if !ok {
		e.t.Fatalf("no manifest of %s in run %s", student, run)
	}
	var m artifacts.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		e.t.Fatal(err)
	}
	return m
}

// fileOf is the stored content of path in m, "" when m has no such file.
func (e *env) fileOf(m artifacts.Manifest, path string) string {
	e.t.Helper()
	for _, f := range m.Files {
		if f.Path == path {
			b, _ := e.art.object(f.Key)
			return string(b)
		}
	}
	return ""
}

// A sandbox lost on a place its earlier sandbox's work was already
// collected from (made there again since, and lost again) has what is
// there now collected anew: the old record's collection does not cover it.
func TestALossWhereWorkWasCollectedBeforeCollectsAgain(t *testing.T) {
	e := newEnv(t)
	e.upNow("alice", "bob")
	at := e.now()
	e.store.edit(classID, func(c *api.Class) {
		c.Status.LeftBehind = map[string][]api.LeftBehind{"alice": {{On: lostPlace, Reason: "earlier", Since: at, RunID: "20300101T000000Z-aaaaaa", CollectedAt: &at, Files: 1}}}
	})
	e.docker.lose("alice", lostWhy)
	e.mustConverge()
	lb := e.class().Status.LeftBehind["alice"]
	if len(lb) != 1 || lb[0].CollectedAt != nil || lb[0].RunID == "20300101T000000Z-aaaaaa" || lb[0].Reason != lostWhy {
		t.Errorf("left behind on %s after the second loss: %+v; want one record, to collect into a new run", lostPlace, lb)
	}
}
