package reconcile_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
	"github.com/homeroom/homeroom/pkg/policy"
	"github.com/homeroom/homeroom/pkg/reconcile"
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
	e, until := downWithAliceExtended(t)
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

// TestALateHandInRestoresTheWorkAndMakesItsOwnRun: after a Down, a late
// hand-in makes the student's sandbox again with the work the Down
// collected in it (owned by the sandbox's user), keeps the network for it,
// and at its end collects it into a run of kind late and removes it; the
// Down's run is left as it was.
func TestALateHandInRestoresTheWorkAndMakesItsOwnRun(t *testing.T) {
	e := newEnv(t)
	e.putClass(api.PhaseUp, "alice", "bob")
	if _, err := e.pass(); err != nil {
		t.Fatal(err)
	}
	e.mustConverge()
	downAt := e.now()
	e.store.edit(classID, func(c *api.Class) { c.DesiredPhase, c.DesiredAt = api.PhaseDown, &downAt })
	e.mustConverge()
	c := e.class()
	if c.Status.Phase != api.PhaseDown {
		t.Fatalf("phase %s after the Down", c.Status.Phase)
	}
	downRun := c.Status.Run.ID

	e.advance(time.Minute)
	lateAt, until := e.now(), e.now().Add(30*time.Minute)
	e.store.edit(classID, func(c *api.Class) {
		c.PerStudent = map[string]api.StudentDesire{"alice": {LateAt: &lateAt, LateUntil: &until}}
	})
	res, err := e.pass()
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []string{"create-network", "create-container alice", "restore-work alice", "start-container alice"} {
		if !strings.Contains(res.Plan.String(), step) {
			t.Fatalf("plan for a late hand-in:\n%s\nwant a step %q", res.Plan, step)
		}
	}
	if strings.Contains(res.Plan.String(), "bob") {
		t.Fatalf("the late hand-in of alice touched bob:\n%s", res.Plan)
	}
	a, ok := e.docker.container(cname("alice"))
	if !ok || a.state != "running" || a.labels[api.LabelLate] == "" {
		t.Fatalf("alice's late sandbox: %+v %v", a, ok)
	}
	for p, body := range work("alice") {
		if a.files[p] != body {
			t.Errorf("restored %s = %q, want the collected %q", p, a.files[p], body)
		}
		if uid := e.docker.owner(cname("alice"), p); uid != fakeSandboxUID {
			t.Errorf("restored %s is uid %d's, want the sandbox user's %d", p, uid, fakeSandboxUID)
		}
	}
	if res := e.mustConverge(); res.RequeueAfter <= 0 || res.RequeueAfter > until.Sub(e.now()) {
		t.Errorf("RequeueAfter %s, want at most %s (the late hand-in's end)", res.RequeueAfter, until.Sub(e.now()))
	}
	c = e.class()
	if r := cond(c, api.ConditionReady); c.Status.Phase != api.PhaseDown || r.Reason != "LateHandIns" || !strings.Contains(r.Message, "alice until") {
		t.Errorf("during the late hand-in: phase %s, Ready = %+v; want Down, alice's sandbox being hers", c.Status.Phase, r)
	}
	if ep := studentStatus(c, "alice").Endpoint; ep == "" {
		t.Error("alice's status gives no address for her late sandbox")
	}
	if c.Status.Run.ID != downRun || c.Status.Run.CompletedAt == nil {
		t.Errorf("the Down's run is %+v, want %s complete", c.Status.Run, downRun)
	}

	// Alice finishes her essay late.
	e.docker.write(cname("alice"), "workspace/notes/todo.md", "- done, late\n")
	e.advance(until.Sub(e.now()) + time.Second)
	e.mustConverge()
	c = e.class()
	if c.Status.Phase != api.PhaseDown {
		t.Fatalf("phase %s after the late hand-in", c.Status.Phase)
	}
	h, ok := c.Status.Late["alice"]
	if !ok || !h.RequestedAt.Equal(lateAt) || h.RunID == downRun {
		t.Fatalf("status.late = %+v", c.Status.Late)
	}
	idx, ok := e.runIndex(h.RunID)
	if !ok || idx.Kind != artifacts.RunKindLate || len(idx.Students) != 1 || idx.Students[0].StudentID != "alice" || idx.Students[0].Outcome != artifacts.OutcomeCollected {
		t.Fatalf("late hand-in index %+v (stored %v)", idx, ok)
	}
	key := artifacts.FilesKey(api.ArtifactPrefix(classID, h.RunID, "alice"), "workspace/notes/todo.md")
	if b, _ := e.art.object(key); string(b) != "- done, late\n" {
		t.Errorf("the late run holds %q at %s, want the late work", b, key)
	}
	if _, ok := e.docker.container(cname("alice")); ok {
		t.Error("alice's late sandbox is still there")
	}
	if _, ok := e.docker.network(netName); ok {
		t.Error("the class network is still there")
	}
	if c.Status.Run.ID != downRun {
		t.Errorf("the late hand-in replaced the Down's run %s with %s", downRun, c.Status.Run.ID)
	}
	if res := e.mustConverge(); len(res.Plan) != 0 {
		t.Fatalf("the late hand-in was repeated:\n%s", res.Plan)
	}
}

// TestALateHandInAskedBeforeADownDoesNotHoldALaterOne: a late hand-in
// belongs to the Down it was asked in.
func TestALateHandInAskedBeforeADownDoesNotHoldALaterOne(t *testing.T) {
	e := newEnv(t)
	e.putClass(api.PhaseUp, "alice")
	if _, err := e.pass(); err != nil {
		t.Fatal(err)
	}
	e.mustConverge()
	lateAt, until := e.now(), e.now().Add(time.Hour)
	e.advance(time.Minute)
	downAt := e.now()
	e.store.edit(classID, func(c *api.Class) {
		c.PerStudent = map[string]api.StudentDesire{"alice": {LateAt: &lateAt, LateUntil: &until}}
		c.DesiredPhase, c.DesiredAt = api.PhaseDown, &downAt
	})
	e.mustConverge()
	if c := e.class(); c.Status.Phase != api.PhaseDown {
		t.Fatalf("phase %s: a late hand-in from before the Down held the class", c.Status.Phase)
	}
}

// TestAnExtendedSandboxThatStopsIsStartedAgain: during extra time past the
// Down, the student's sandbox is kept like an Up class's, not collected
// because it stopped.
func TestAnExtendedSandboxThatStopsIsStartedAgain(t *testing.T) {
	e, _ := downWithAliceExtended(t)
	e.mustConverge()
	e.frozen.Store(true) // the pause is measured against a clock that holds still
	e.docker.exit(cname("alice"), e.now())
	res, err := e.pass()
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Plan) != 0 || res.RequeueAfter <= 0 || res.RequeueAfter > reconcile.RestartPause {
		t.Fatalf("right after alice's sandbox stopped: plan\n%s\nrequeue after %s, want nothing until its restart pause is over", res.Plan, res.RequeueAfter)
	}
	e.advance(reconcile.RestartPause)
	res, err = e.pass()
	if err != nil {
		t.Fatal(err)
	}
	if res.Plan.String() != "start-container alice (homeroom-cs101-alice)\n" {
		t.Fatalf("plan for alice's stopped sandbox during her extra time:\n%s", res.Plan)
	}
	if a, _ := e.docker.container(cname("alice")); a.state != "running" {
		t.Fatalf("alice's sandbox is %s", a.state)
	}
}

// exit stops a sandbox as a crash would, at the time given.
func (d *fakeDocker) exit(name string, at time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.lookup(name)
	c.state, c.exitCode, c.finishedAt = "exited", 1, at
}

// owner is the uid CopyTo wrote a file as, -1 when it did not write it.
func (d *fakeDocker) owner(name, path string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if uid, ok := d.owners[name+":"+path]; ok {
		return uid
	}
	return -1
}

// TestALateHandInOverQuotaWaits: a late hand-in's sandbox counts against
// the subject's quota like any other (itself, not the class's roster);
// over it, nothing is made, the class says why, and the sandbox comes once
// there is room.
func TestALateHandInOverQuotaWaits(t *testing.T) {
	e := newEnv(t)
	pol, err := policy.Parse([]byte(`templates:
  - {name: sandbox, image: homeroom/sandbox:dev, port: 8080, collectPaths: [/workspace], memoryMiB: 128, cpus: 0.5, pids: 64, readOnlyRootFS: true}
subjects:
  cs: {maxContainers: 3}
`))
	if err != nil {
		t.Fatal(err)
	}
	e.rec = reconcile.New(e.store, e.docker, e.art, pol, reconcile.Options{
		Domain: domain, TraefikContainer: traefikName, CollectTimeout: 10 * time.Second, Now: e.now,
	}, zaptest.NewLogger(t))
	// Five students, of whom only alice's sandbox is made again.
	e.putClass(api.PhaseDown, "alice", "bob", "carol", "dan", "eve")
	e.store.put(api.Class{ID: "other", Spec: api.ClassSpec{Subject: "cs", Template: "sandbox", Students: []string{"x", "y", "z"}},
		DesiredPhase: api.PhaseUp, Generation: 1, Version: 1, Status: api.ClassStatus{Phase: api.PhaseUp}})
	lateAt, until := e.now(), e.now().Add(time.Hour)
	e.store.edit(classID, func(c *api.Class) {
		c.PerStudent = map[string]api.StudentDesire{"alice": {LateAt: &lateAt, LateUntil: &until}}
	})
	if _, err := e.pass(); !errors.As(err, new(*policy.QuotaError)) {
		t.Fatalf("pass over quota: %v, want the quota's error", err)
	}
	if _, ok := e.docker.container(cname("alice")); ok {
		t.Fatal("a late sandbox was made over the subject's quota")
	}
	if s := cond(e.class(), api.ConditionSynced); s.Status != "False" || s.Reason != "QuotaExceeded" || !strings.Contains(s.Message, "maxContainers") {
		t.Errorf("Synced = %+v, want the quota named", s)
	}
	e.store.edit("other", func(c *api.Class) { c.DesiredPhase = api.PhaseDown })
	e.mustConverge()
	if a, ok := e.docker.container(cname("alice")); !ok || a.state != "running" {
		t.Fatalf("alice's late sandbox once there is room: %+v %v", a, ok)
	}
}

// downWithAliceExtended brings a class of alice and bob Up, then Down with
// 30 minutes of extra time for alice, and returns its end; no pass has
// seen the Down yet.
func downWithAliceExtended(t *testing.T) (*env, time.Time) {
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
	return e, until
}
