package controller_test

import (
	"context"
	"fmt"
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
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"
)

// Ups that race past the apiserver's check (here: written straight to the
// store, all at once) must still never take a subject over its quota.
func TestConcurrentUpsNeverExceedTheQuota(t *testing.T) {
	d := testenv.Docker(t)
	st := testenv.Store(t)
	art, err := artifacts.New(context.Background(), testenv.S3(t))
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Parse([]byte(`
templates:
  - {name: sandbox, image: homeroom/sandbox:dev, port: 8080, user: "65534:65534", memoryMiB: 64, cpus: 0.1, pids: 64, readOnlyRootFS: true}
subjects:
  race: {maxClassesUp: 2}
`))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ids := make([]string, 5)
	for i := range ids {
		ids[i] = fmt.Sprintf("it-race-%d", i)
		testenv.CleanupClass(t, d, ids[i])
		if _, _, err := st.PutSpec(ctx, ids[i], api.ClassSpec{Subject: "race", Template: "sandbox", Students: []string{"s1", "s2"}}); err != nil {
			t.Fatal(err)
		}
		testenv.SetPhase(t, st, ids[i], api.PhaseUp)
	}
	log := zaptest.NewLogger(t)
	reg := prometheus.NewRegistry()
	rec := reconcile.New(st, d, art, pol, reconcile.Options{TraefikContainer: "hr-it-no-router", Registerer: reg}, log)
	ctl := controller.New(rec, st, d, controller.Options{Workers: 5, PollInterval: 100 * time.Millisecond, ResyncInterval: time.Second}, log, nil)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { ctl.Run(runCtx); close(done) }()
	defer func() { cancel(); <-done }()

	// withContainers counts the classes that have any container in Docker.
	withContainers := func() int {
		n := 0
		for _, id := range ids {
			cs, err := d.API().ContainerList(ctx, container.ListOptions{All: true,
				Filters: filters.NewArgs(filters.Arg("label", api.LabelClass+"="+id))})
			if err != nil {
				t.Fatal(err)
			}
			if len(cs) > 0 {
				n++
			}
		}
		return n
	}
	phases := func() (up, refused []string) {
		for _, id := range ids {
			c, err := st.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			ready := api.FindCondition(c.Status.Conditions, api.ConditionReady)
			switch {
			case c.Status.Phase == api.PhaseUp:
				up = append(up, id)
			case ready != nil && ready.Reason == "QuotaExceeded":
				if !strings.Contains(ready.Message, "maxClassesUp") {
					t.Errorf("%s refused without naming the limit: %s", id, ready.Message)
				}
				refused = append(refused, id)
			}
		}
		return up, refused
	}
	var up, refused []string
	deadline := time.Now().Add(time.Minute)
	for {
		if n := withContainers(); n > 2 {
			t.Fatalf("%d classes of the subject have containers; the quota allows 2", n)
		}
		up, refused = phases()
		if len(up) == 2 && len(refused) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never settled: up %v refused %v", up, refused)
		}
		time.Sleep(100 * time.Millisecond)
	}

	if n := value(t, reg, "homeroom_quota_rejections_total", map[string]string{"limit": "maxClassesUp"}); n < 3 {
		t.Errorf("homeroom_quota_rejections_total{limit=maxClassesUp} = %v, want at least one per refused class", n)
	}

	// A class going Down frees its share: one of the others comes Up.
	testenv.SetPhase(t, st, up[0], api.PhaseDown)
	testenv.WaitPhase(t, st, up[0], api.PhaseDown, time.Minute)
	deadline = time.Now().Add(time.Minute)
	for {
		if n := withContainers(); n > 2 {
			t.Fatalf("%d classes of the subject have containers; the quota allows 2", n)
		}
		now, _ := phases()
		if len(now) == 2 && now[0] != up[0] && now[1] != up[0] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no class came Up after one went Down: %v", now)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, id := range ids {
		testenv.SetPhase(t, st, id, api.PhaseDown)
	}
	for _, id := range ids {
		testenv.WaitPhase(t, st, id, api.PhaseDown, time.Minute)
	}
}
