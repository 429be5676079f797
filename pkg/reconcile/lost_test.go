package reconcile

import (
	"strings"
	"testing"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/policy"
)

// A sandbox whose work volume the runtime reports out of reach for good
// (its swarm node is down) is made again, its last collected work put back
// before it starts; its classmates are left alone.
func TestPlanMakesALostSandboxAgainWithItsWork(t *testing.T) {
	tmpl, _ := policy.Default().Template("sandbox")
	obs := Observed{Network: classNet, Containers: containers("running", "alice", "bob"), Traefik: &ObservedTraefik{ID: "t", Running: true, Attached: true}}
	c := obs.Containers["alice"]
	c.Lost = "hr-node-3 (n3) is down"
	obs.Containers["alice"] = c
	got := PlanFor(Input{Class: class(api.PhaseUp, "alice", "bob"), Template: tmpl, Observed: obs, Now: time.Unix(100, 0)}).String()
	name := api.ContainerName("cs101", "alice")
	want := "replace-container alice (" + name + ")\nrestore-work alice (" + name + ")\nstart-container alice (" + name + ")\n"
	if got != want {
		t.Errorf("plan:\n%s\nwant:\n%s", got, want)
	}
}

// A restore recorded as pending (a controller stopped after it began making
// a lost sandbox again) is finished before the new sandbox first starts:
// the sandbox is made if it is not there yet, its work put back, and only
// then started. A sandbox that runs already is left alone.
func TestPlanFinishesAPendingRestoreBeforeTheFirstStart(t *testing.T) {
	tmpl, _ := policy.Default().Template("sandbox")
	name := api.ContainerName("cs101", "alice")
	cl := class(api.PhaseUp, "alice", "bob")
	cl.Status.Restored = map[string]api.Restored{"alice": {Reason: "hr-node-3 (n3) is down", Pending: true}}
	for _, tc := range []struct {
		desc, alice, want string
	}{
		{"not made again yet", "", "create-container alice (" + name + ")\nrestore-work alice (" + name + ")\nstart-container alice (" + name + ")\n"},
		{"made, never started (a swarm service of no replica)", "exited", "restore-work alice (" + name + ")\nstart-container alice (" + name + ")\n"},
		{"made, never started", "created", "restore-work alice (" + name + ")\nstart-container alice (" + name + ")\n"},
		{"running", "running", ""},
	} {
		obs := Observed{Network: classNet, Containers: containers("running", "bob"), Traefik: &ObservedTraefik{ID: "t", Running: true, Attached: true}}
		if tc.alice != "" {
			obs.Containers["alice"] = containers(tc.alice, "alice")["alice"]
		}
		got := PlanFor(Input{Class: cl, Template: tmpl, Observed: obs, Now: time.Unix(100, 0)}).String()
		if got != tc.want {
			t.Errorf("%s: plan:\n%s\nwant:\n%s", tc.desc, got, tc.want)
		}
	}
}

// A Down puts a pending restore's work back before it collects the
// sandbox, so that the run holds the student's work rather than an empty
// workspace; once the sandbox is gone with the class, the pending record
// is dropped from the status.
func TestDownFinishesOrDropsAPendingRestore(t *testing.T) {
	tmpl, _ := policy.Default().Template("sandbox")
	name := api.ContainerName("cs101", "alice")
	cl := withRun(class(api.PhaseDown, "alice", "bob"), false)
	cl.Status.Restored = map[string]api.Restored{
		"alice": {Reason: "lost", Pending: true},
		"bob":   {Reason: "lost", RunID: "a1", Files: 2},
	}
	obs := Observed{Network: classNet, Containers: containers("exited", "alice")}
	got := PlanFor(Input{Class: cl, Template: tmpl, Observed: obs, Now: time.Unix(100, 0)}).String()
	want := "restore-work alice (" + name + ")\ncollect alice (" + name + ")\nremove-container alice (" + name + ")\n"
	if !strings.HasPrefix(got, want) {
		t.Errorf("plan:\n%s\nwant it to begin:\n%s", got, want)
	}

	st := buildStatus(&cl, tmpl, obs, nil, Options{}, nil, time.Unix(100, 0))
	if !st.Restored["alice"].Pending {
		t.Errorf("alice's sandbox is still there, her pending restore was dropped: %+v", st.Restored)
	}
	st = buildStatus(&cl, tmpl, Observed{}, nil, Options{}, nil, time.Unix(100, 0))
	if _, ok := st.Restored["alice"]; ok || st.Restored["bob"].RunID != "a1" {
		t.Errorf("with the class down, restored: %+v; want alice's pending restore dropped and bob's record kept", st.Restored)
	}
	if !cl.Status.Restored["alice"].Pending {
		t.Error("the class as read was changed")
	}
}
