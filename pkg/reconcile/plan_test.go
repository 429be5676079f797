package reconcile

import (
	"strings"
	"testing"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/policy"
)

func class(phase api.Phase, students ...string) api.Class {
	return api.Class{
		ID:           "cs101",
		Spec:         api.ClassSpec{Subject: "cs", Template: "sandbox", Students: students},
		DesiredPhase: phase,
		Generation:   2,
	}
}

func containers(state string, students ...string) map[string]ObservedContainer {
	m := map[string]ObservedContainer{}
	for _, s := range students {
		m[s] = ObservedContainer{ID: "id-" + s, Name: api.ContainerName("cs101", s), Student: s, State: state}
	}
	return m
}

func withRun(c api.Class, completed bool, collected ...string) api.Class {
	c.Status.Run = &api.DownRun{ID: "r1", StartedAt: time.Unix(0, 0)}
	if completed {
		t := time.Unix(1, 0)
		c.Status.Run.CompletedAt = &t
	}
	for _, s := range collected {
		c.Status.Students = append(c.Status.Students, api.StudentStatus{ID: s, Artifacts: &api.ArtifactsRef{RunID: "r1"}})
	}
	return c
}

var classNet = &ObservedNetwork{ID: "net1", Name: "homeroom-cs101"}

func TestPlan(t *testing.T) {
	tmpl, _ := policy.Default().Template("sandbox")
	merge := func(ms ...map[string]ObservedContainer) map[string]ObservedContainer {
		out := map[string]ObservedContainer{}
		for _, m := range ms {
			for k, v := range m {
				out[k] = v
			}
		}
		return out
	}
	tests := []struct {
		desc     string
		class    api.Class
		template *policy.Template
		obs      Observed
		now      time.Time
		want     string
	}{{
		desc:  "up from nothing, no traefik",
		class: class(api.PhaseUp, "alice", "bob"),
		want: `create-network (homeroom-cs101)
create-container alice (homeroom-cs101-alice)
start-container alice (homeroom-cs101-alice)
create-container bob (homeroom-cs101-bob)
start-container bob (homeroom-cs101-bob)
`,
	}, {
		desc:  "up from nothing attaches traefik to the new network",
		class: class(api.PhaseUp, "alice"),
		obs:   Observed{Traefik: &ObservedTraefik{ID: "t", Running: true}},
		want: `create-network (homeroom-cs101)
connect-traefik (homeroom-cs101)
create-container alice (homeroom-cs101-alice)
start-container alice (homeroom-cs101-alice)
`,
	}, {
		desc:  "converged up does nothing",
		class: class(api.PhaseUp, "alice", "bob"),
		obs:   Observed{Network: classNet, Containers: containers("running", "alice", "bob"), Traefik: &ObservedTraefik{ID: "t", Running: true, Attached: true}},
		want:  ``,
	}, {
		desc:  "container removed by hand is recreated, only that one",
		class: class(api.PhaseUp, "alice", "bob", "carol"),
		obs:   Observed{Network: classNet, Containers: containers("running", "alice", "carol")},
		want: `create-container bob (homeroom-cs101-bob)
start-container bob (homeroom-cs101-bob)
`,
	}, {
		desc:  "exited and created containers are started, not replaced",
		class: class(api.PhaseUp, "alice", "bob"),
		obs:   Observed{Network: classNet, Containers: merge(containers("exited", "alice"), containers("created", "bob"))},
		want: `start-container alice (homeroom-cs101-alice)
start-container bob (homeroom-cs101-bob)
`,
	}, {
		desc:  "a sandbox that just stopped waits out its restart pause",
		class: class(api.PhaseUp, "alice", "bob"),
		obs: Observed{Network: classNet, Containers: merge(containers("running", "alice"), map[string]ObservedContainer{
			"bob": {ID: "id-bob", Name: "homeroom-cs101-bob", Student: "bob", State: "exited", FinishedAt: time.Unix(100, 0)},
		})},
		now:  time.Unix(104, 0),
		want: ``,
	}, {
		desc:  "a sandbox whose restart pause is over is started",
		class: class(api.PhaseUp, "alice", "bob"),
		obs: Observed{Network: classNet, Containers: merge(containers("running", "alice"), map[string]ObservedContainer{
			"bob": {ID: "id-bob", Name: "homeroom-cs101-bob", Student: "bob", State: "exited", FinishedAt: time.Unix(100, 0)},
		})},
		now: time.Unix(105, 0),
		want: `start-container bob (homeroom-cs101-bob)
`,
	}, {
		desc:  "the pause doubles with each restart in a row",
		class: class(api.PhaseUp, "alice", "bob"),
		obs: Observed{Network: classNet, Containers: merge(containers("running", "alice"), map[string]ObservedContainer{
			"bob": {ID: "id-bob", Name: "homeroom-cs101-bob", Student: "bob", State: "exited", FinishedAt: time.Unix(100, 0), Restarts: 2},
		})},
		now:  time.Unix(119, 0),
		want: ``,
	}, {
		desc:  "a stopped sandbox is collected at Down without waiting",
		class: class(api.PhaseDown, "bob"),
		obs: Observed{Network: classNet, Containers: map[string]ObservedContainer{
			"bob": {ID: "id-bob", Name: "homeroom-cs101-bob", Student: "bob", State: "exited", FinishedAt: time.Unix(100, 0)},
		}},
		now: time.Unix(101, 0),
		want: `begin-run
collect bob (homeroom-cs101-bob)
remove-container bob (homeroom-cs101-bob)
remove-network (homeroom-cs101)
complete-run
`,
	}, {
		desc:  "traefik detached while up is reattached",
		class: class(api.PhaseUp, "alice"),
		obs:   Observed{Network: classNet, Containers: containers("running", "alice"), Traefik: &ObservedTraefik{ID: "t", Running: true}},
		want: `connect-traefik (homeroom-cs101)
`,
	}, {
		desc:     "unknown template plans nothing",
		class:    class(api.PhaseUp, "alice"),
		template: nil,
		want:     ``,
	}, {
		desc:  "up during an interrupted down ends that run first",
		class: withRun(class(api.PhaseUp, "alice"), false, "alice"),
		obs:   Observed{Network: classNet, Containers: containers("running", "alice")},
		want: `complete-run (r1)
`,
	}, {
		desc:  "a student taken off the roster while up is collected, then removed",
		class: class(api.PhaseUp, "alice"),
		obs:   Observed{Network: classNet, Containers: containers("running", "alice", "bob")},
		want: `begin-run
stop-container bob (homeroom-cs101-bob)
collect bob (homeroom-cs101-bob)
remove-container bob (homeroom-cs101-bob)
complete-run
`,
	}, {
		desc:  "a roster that grows and shrinks at once touches only who changed",
		class: class(api.PhaseUp, "alice", "carol"),
		obs:   Observed{Network: classNet, Containers: containers("running", "alice", "bob")},
		want: `begin-run
create-container carol (homeroom-cs101-carol)
start-container carol (homeroom-cs101-carol)
stop-container bob (homeroom-cs101-bob)
collect bob (homeroom-cs101-bob)
remove-container bob (homeroom-cs101-bob)
complete-run
`,
	}, {
		desc:  "a leaver already checkpointed is only removed",
		class: withRun(class(api.PhaseUp, "alice"), false, "bob"),
		obs:   Observed{Network: classNet, Containers: merge(containers("running", "alice"), containers("exited", "bob"))},
		want: `remove-container bob (homeroom-cs101-bob)
complete-run (r1)
`,
	}, {
		desc:  "down collects before removing, then removes routing and network",
		class: class(api.PhaseDown, "alice", "bob"),
		obs:   Observed{Network: classNet, Containers: containers("running", "alice", "bob"), Traefik: &ObservedTraefik{ID: "t", Running: true, Attached: true}},
		want: `begin-run
stop-container alice (homeroom-cs101-alice)
collect alice (homeroom-cs101-alice)
remove-container alice (homeroom-cs101-alice)
stop-container bob (homeroom-cs101-bob)
collect bob (homeroom-cs101-bob)
remove-container bob (homeroom-cs101-bob)
disconnect-traefik (homeroom-cs101)
remove-network (homeroom-cs101)
complete-run
`,
	}, {
		desc:  "down of an exited container collects without stopping",
		class: class(api.PhaseDown, "alice"),
		obs:   Observed{Network: classNet, Containers: containers("exited", "alice")},
		want: `begin-run
collect alice (homeroom-cs101-alice)
remove-container alice (homeroom-cs101-alice)
remove-network (homeroom-cs101)
complete-run
`,
	}, {
		desc:  "resumed down skips students already checkpointed",
		class: withRun(class(api.PhaseDown, "alice", "bob"), false, "alice"),
		obs:   Observed{Network: classNet, Containers: merge(containers("exited", "alice"), containers("running", "bob"))},
		want: `remove-container alice (homeroom-cs101-alice)
stop-container bob (homeroom-cs101-bob)
collect bob (homeroom-cs101-bob)
remove-container bob (homeroom-cs101-bob)
remove-network (homeroom-cs101)
complete-run (r1)
`,
	}, {
		desc:  "checkpoints of a finished run do not count for a new down",
		class: withRun(class(api.PhaseDown, "alice"), true, "alice"),
		obs:   Observed{Network: classNet, Containers: containers("running", "alice")},
		want: `begin-run
stop-container alice (homeroom-cs101-alice)
collect alice (homeroom-cs101-alice)
remove-container alice (homeroom-cs101-alice)
remove-network (homeroom-cs101)
complete-run
`,
	}, {
		desc:  "down resumed after all containers went finishes the run",
		class: withRun(class(api.PhaseDown, "alice"), false, "alice"),
		obs:   Observed{Network: classNet},
		want: `remove-network (homeroom-cs101)
complete-run (r1)
`,
	}, {
		desc:  "a collected student on an unknown template is still removed",
		class: withRun(class(api.PhaseDown, "alice"), false, "alice"),
		obs:   Observed{Containers: containers("exited", "alice")},
		want: `remove-container alice (homeroom-cs101-alice)
complete-run (r1)
`,
	}, {
		desc:  "converged down does nothing",
		class: withRun(class(api.PhaseDown, "alice"), true, "alice"),
		obs:   Observed{Traefik: &ObservedTraefik{ID: "t", Running: true}},
		want:  ``,
	}, {
		desc:  "a class never brought up has nothing to do",
		class: class(api.PhaseDown, "alice"),
		want:  ``,
	}}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			tpl := tmpl
			if strings.HasPrefix(tc.desc, "unknown template") {
				tpl = tc.template
			}
			if tc.obs.Containers == nil {
				tc.obs.Containers = map[string]ObservedContainer{}
			}
			got := PlanFor(Input{Class: tc.class, Template: tpl, Observed: tc.obs, Now: tc.now}).String()
			if got != tc.want {
				t.Errorf("plan:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestRestartPause(t *testing.T) {
	stopped := time.Date(2030, 1, 2, 9, 0, 0, 0, time.UTC)
	for restarts, want := range map[int]time.Duration{
		0: 5 * time.Second, 1: 10 * time.Second, 2: 20 * time.Second, 5: 160 * time.Second,
		6: 5 * time.Minute, 7: 5 * time.Minute, 1000: 5 * time.Minute,
	} {
		c := ObservedContainer{State: "exited", FinishedAt: stopped, Restarts: restarts}
		if got := c.RestartDue().Sub(stopped); got != want {
			t.Errorf("after %d restarts in a row the pause is %s, want %s", restarts, got, want)
		}
	}
	if due := (ObservedContainer{State: "created"}).RestartDue(); !due.IsZero() {
		t.Errorf("a container that never ran waits until %s", due)
	}
}

func TestPausedRestartIsDescribedNoEarlierThanItHappens(t *testing.T) {
	c := ObservedContainer{Student: "bob", State: "exited", ExitCode: 1, FinishedAt: time.Date(2030, 1, 2, 9, 0, 0, 300e6, time.UTC)}
	got := describePaused([]ObservedContainer{c})
	if want := "bob's sandbox stopped (exit code 1) and starts again at 09:00:06 UTC"; got != want {
		t.Errorf("%q, want %q (due 09:00:05.3, said rounded up)", got, want)
	}
}
