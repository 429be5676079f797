package reconcile

import (
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
