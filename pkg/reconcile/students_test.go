package reconcile_test

import (
	"strings"
	"testing"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
)

// TestATeacherRestartsOneStudentAndCollectsAnother: a restart makes one
// student's sandbox again (its work volumes kept, the others untouched),
// once; a hand-in collects one student's work as a run of kind student,
// stopping nothing, once per request.
func TestATeacherRestartsOneStudentAndCollectsAnother(t *testing.T) {
	e := newEnv(t)
	e.putClass(api.PhaseUp, "alice", "bob")
	if _, err := e.pass(); err != nil {
		t.Fatal(err)
	}
	e.mustConverge()
	alice, _ := e.docker.container(cname("alice"))
	bob, _ := e.docker.container(cname("bob"))
	aliceVolumes := alice.mounts

	at := e.now()
	e.store.edit(classID, func(c *api.Class) {
		c.PerStudent = map[string]api.StudentDesire{"alice": {RestartAt: &at}}
	})
	res, err := e.pass()
	if err != nil {
		t.Fatal(err)
	}
	want := "stop-container alice (homeroom-cs101-alice)\nreplace-container alice (homeroom-cs101-alice)\nstart-container alice (homeroom-cs101-alice)\n"
	if res.Plan.String() != want {
		t.Fatalf("plan for a restart:\n%s\nwant:\n%s", res.Plan, want)
	}
	again, _ := e.docker.container(cname("alice"))
	if again.id == alice.id || again.state != "running" || len(again.mounts) == 0 {
		t.Fatalf("alice after the restart: %+v", again)
	}
	for target, vol := range aliceVolumes {
		if again.mounts[target] != vol {
			t.Errorf("alice's new sandbox mounts %q at %s, want her volume %q", again.mounts[target], target, vol)
		}
	}
	if b, _ := e.docker.container(cname("bob")); b.id != bob.id {
		t.Error("bob's sandbox was made again too")
	}
	if res := e.mustConverge(); len(res.Plan) != 0 {
		t.Fatalf("a restart was repeated:\n%s", res.Plan)
	}
	if got := e.class().Status.Restarted["alice"]; !got.Equal(at) {
		t.Errorf("status.restarted = %v, want the request %v", got, at)
	}

	e.store.edit(classID, func(c *api.Class) {
		now := e.now()
		c.PerStudent = map[string]api.StudentDesire{"alice": {RestartAt: &at}, "bob": {CollectAt: &now}}
	})
	res, err = e.pass()
	if err != nil {
		t.Fatal(err)
	}
	if res.Plan.String() != "hand-in bob (homeroom-cs101-bob)\n" {
		t.Fatalf("plan for a hand-in:\n%s", res.Plan)
	}
	c := e.class()
	h, ok := c.Status.HandIns["bob"]
	if !ok || h.RunID == "" || !h.RequestedAt.Equal(*c.PerStudent["bob"].CollectAt) {
		t.Fatalf("status.handIns = %+v", c.Status.HandIns)
	}
	idx, ok := e.runIndex(h.RunID)
	if !ok || idx.Kind != artifacts.RunKindStudent || len(idx.Students) != 1 || idx.Students[0].StudentID != "bob" || idx.Students[0].Outcome != artifacts.OutcomeCollected {
		t.Fatalf("hand-in index %+v (stored %v)", idx, ok)
	}
	if b, _ := e.docker.container(cname("bob")); b.state != "running" || b.id != bob.id {
		t.Errorf("bob's sandbox after the hand-in: %+v", b)
	}
	if res := e.mustConverge(); len(res.Plan) != 0 {
		t.Fatalf("a hand-in was repeated:\n%s", res.Plan)
	}
}

// TestAStudentWithExtraTimeStaysUpAlone: at the class's Down, the others
// are collected and removed while the extended student's sandbox, the
// network and the run stay; at the end of the extra time the student is
// collected in the same run, and the class is Down.
func TestAStudentWithExtraTimeStaysUpAlone(t *testing.T) {
	e := newEnv(t)
	e.putClass(api.PhaseUp, "alice", "bob")
	if _, err := e.pass(); err != nil {
		t.Fatal(err)
	}
	e.mustConverge()
	until := e.now().Add(30 * time.Minute)
	e.store.edit(classID, func(c *api.Class) {
		up := clockStart
		c.UpSince = &up
		c.PerStudent = map[string]api.StudentDesire{"alice": {Until: &until, UntilUp: &up}}
		c.DesiredPhase = api.PhaseDown
	})
	res := e.mustConverge()
	if want := until.Sub(e.now()); res.RequeueAfter <= 0 || res.RequeueAfter > want {
		t.Errorf("RequeueAfter %s, want at most %s (alice's end)", res.RequeueAfter, want)
	}
	c := e.class()
	if _, ok := e.docker.container(cname("bob")); ok {
		t.Error("bob's sandbox is still there")
	}
	if a, ok := e.docker.container(cname("alice")); !ok || a.state != "running" {
		t.Fatalf("alice's sandbox during her extra time: %+v %v", a, ok)
	}
	e.checkCollected(t, c, "bob")
	if c.Status.Phase != api.PhaseCollecting || c.Status.Run == nil || c.Status.Run.CompletedAt != nil {
		t.Fatalf("during the extra time: phase %s run %+v", c.Status.Phase, c.Status.Run)
	}
	if r := cond(c, api.ConditionReady); r.Reason != "StudentsExtended" || !strings.Contains(r.Message, "alice until") {
		t.Errorf("Ready = %+v", r)
	}
	if _, ok := e.docker.network(api.NetworkName(classID)); !ok {
		t.Error("the class network went while alice works")
	}
	run := c.Status.Run.ID

	e.advance(until.Sub(e.now()) + time.Second)
	e.mustConverge()
	c = e.class()
	if c.Status.Phase != api.PhaseDown || c.Status.Run == nil || c.Status.Run.ID != run || c.Status.Run.CompletedAt == nil {
		t.Fatalf("after the extra time: phase %s run %+v, want Down with run %s complete", c.Status.Phase, c.Status.Run, run)
	}
	e.checkCollected(t, c, "alice")
	if _, ok := e.docker.container(cname("alice")); ok {
		t.Error("alice's sandbox is still there")
	}
}

// TestExtraTimeEndsWithItsUp: extra time given in one Up does not hold
// at the Down of a later Up.
func TestExtraTimeEndsWithItsUp(t *testing.T) {
	e := newEnv(t)
	e.putClass(api.PhaseUp, "alice")
	if _, err := e.pass(); err != nil {
		t.Fatal(err)
	}
	e.mustConverge()
	until := e.now().Add(30 * time.Minute)
	earlier, later := clockStart.Add(-time.Hour), clockStart
	e.store.edit(classID, func(c *api.Class) {
		c.UpSince = &later
		c.PerStudent = map[string]api.StudentDesire{"alice": {Until: &until, UntilUp: &earlier}}
		c.DesiredPhase = api.PhaseDown
	})
	e.mustConverge()
	if c := e.class(); c.Status.Phase != api.PhaseDown {
		t.Fatalf("phase %s: extra time of an earlier Up held the class", c.Status.Phase)
	}
}

// TestARestartAskedWhileTheSandboxIsGoneIsAnsweredByItsMaking: a sandbox
// made anew answers the restart; it is not made a second time.
func TestARestartAskedWhileTheSandboxIsGoneIsAnsweredByItsMaking(t *testing.T) {
	e := newEnv(t)
	e.putClass(api.PhaseUp, "alice")
	at := e.now()
	e.store.edit(classID, func(c *api.Class) {
		c.PerStudent = map[string]api.StudentDesire{"alice": {RestartAt: &at}}
	})
	if _, err := e.pass(); err != nil {
		t.Fatal(err)
	}
	if res := e.mustConverge(); len(res.Plan) != 0 {
		t.Fatalf("the new sandbox was made again:\n%s", res.Plan)
	}
	if got := e.class().Status.Restarted["alice"]; !got.Equal(at) {
		t.Errorf("status.restarted = %v, want %v", got, at)
	}
}
