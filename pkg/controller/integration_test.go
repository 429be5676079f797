package controller_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
	"github.com/homeroom/homeroom/pkg/controller"
	"github.com/homeroom/homeroom/pkg/policy"
	"github.com/homeroom/homeroom/pkg/reconcile"
	"go.uber.org/zap/zaptest"
)

// With store polling and the resync both far apart, only the Docker events
// stream can bring back a container removed by hand, or one that died.
func TestDockerEventsRepairDrift(t *testing.T) {
	d := testenv.Docker(t)
	st := testenv.Store(t)
	art, err := artifacts.New(context.Background(), testenv.S3(t))
	if err != nil {
		t.Fatal(err)
	}
	const id = "it-events"
	testenv.CleanupClass(t, d, id)
	log := zaptest.NewLogger(t)
	rec := reconcile.New(st, d, art, policy.Default(), reconcile.Options{TraefikContainer: "hr-it-no-router"}, log)
	ctx, cancel := context.WithCancel(context.Background())
	if _, _, err := st.PutSpec(ctx, id, api.ClassSpec{Subject: "cs", Template: "sandbox", Students: []string{"hana", "ivan"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SetDesiredPhase(ctx, id, api.PhaseUp); err != nil {
		t.Fatal(err)
	}
	// The class exists before the controller starts, so its first poll finds
	// it; after that neither polling nor the resync comes round again.
	ctl := controller.New(rec, st, d, controller.Options{PollInterval: time.Hour, ResyncInterval: time.Hour}, log, nil)
	done := make(chan struct{})
	go func() { ctl.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	waitFor(t, "class Up", func() bool {
		c, err := st.Get(ctx, id)
		return err == nil && c.Status.Phase == api.PhaseUp
	})
	f := filters.NewArgs(filters.Arg("label", api.LabelClass+"="+id), filters.Arg("label", api.LabelStudent+"=ivan"))
	list := func() []container.Summary {
		cs, err := d.API().ContainerList(ctx, container.ListOptions{All: true, Filters: f})
		if err != nil {
			t.Fatal(err)
		}
		return cs
	}
	old := list()
	if len(old) != 1 {
		t.Fatalf("%d containers for ivan", len(old))
	}
	if err := d.API().ContainerRemove(ctx, old[0].ID, container.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	removed := time.Now()
	waitFor(t, "ivan's container recreated and running", func() bool {
		cs := list()
		return len(cs) == 1 && cs[0].ID != old[0].ID && cs[0].State == "running"
	})
	// Measured, not asserted: timings belong to benchmarks on a shared machine.
	t.Logf("back %v after removal, with polling and resync an hour apart", time.Since(removed).Round(10*time.Millisecond))

	// A sandbox killed (its program crashed, say) is held for its restart
	// pause, which the status says, and then the same container starts
	// again. Docker announces the death before its container list shows
	// it, so the die event alone cannot be the pass that sees it.
	hana := api.ContainerName(id, "hana")
	before, err := d.InspectContainer(ctx, hana)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.API().ContainerKill(ctx, hana, "KILL"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the restart pause in the status", func() bool {
		c, err := st.Get(ctx, id)
		if err != nil {
			return false
		}
		ready := api.FindCondition(c.Status.Conditions, api.ConditionReady)
		return ready != nil && ready.Reason == "SandboxesRestarting" &&
			strings.Contains(ready.Message, "hana's sandbox stopped (exit code 137) and starts again at")
	})
	waitFor(t, "hana's sandbox running again", func() bool {
		info, err := d.InspectContainer(ctx, hana)
		return err == nil && info.State.Running && info.State.StartedAt != before.State.StartedAt
	})
	if after, _ := d.InspectContainer(ctx, hana); after.ID != before.ID {
		t.Errorf("hana's container was replaced, not restarted")
	}
	waitFor(t, "class Up again", func() bool {
		c, err := st.Get(ctx, id)
		return err == nil && c.Status.Phase == api.PhaseUp
	})

	if _, err := st.SetDesiredPhase(ctx, id, api.PhaseDown); err != nil {
		t.Fatal(err)
	}
	ctl.Enqueue(id) // what the next poll would do
	waitFor(t, "class Down", func() bool {
		c, err := st.Get(ctx, id)
		return err == nil && c.Status.Phase == api.PhaseDown
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}
