package controller_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
	"github.com/homeroom/homeroom/pkg/controller"
	"github.com/homeroom/homeroom/pkg/policy"
	"github.com/homeroom/homeroom/pkg/reconcile"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap/zaptest"
)

// value sums the samples of a metric whose labels include want.
func value(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	sample:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue sample
				}
			}
			total += sampleValue(m)
		}
	}
	return total
}

func sampleValue(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

// The metrics operators rely on move when what they count happens.
func TestMetricsMove(t *testing.T) {
	d := testenv.Docker(t)
	st := testenv.Store(t)
	art, err := artifacts.New(context.Background(), testenv.S3(t))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(d.Metrics(), controller.NewStateCollector(st, d))
	log := zaptest.NewLogger(t)
	rec := reconcile.New(st, d, art, policy.Default(), reconcile.Options{TraefikContainer: "hr-it-no-router", Registerer: reg}, log)
	elector := controller.NewElector(st, "metrics-test", "ctl", 10*time.Second, log, reg)
	ctl := controller.New(rec, st, d, controller.Options{PollInterval: 100 * time.Millisecond, ResyncInterval: time.Hour, Elector: elector}, log, reg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ctl.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	const id = "it-metrics"
	testenv.CleanupClass(t, d, id)
	testenv.CreateClass(t, st, id, "mia", "noa")
	testenv.SetPhase(t, st, id, api.PhaseUp)
	testenv.WaitPhase(t, st, id, api.PhaseUp, time.Minute)

	checks := func(stage string, want map[string]func(float64) bool, labels map[string]map[string]string) {
		t.Helper()
		for name, ok := range want {
			if v := value(t, reg, name, labels[name]); !ok(v) {
				t.Errorf("%s: %s%v = %v", stage, name, labels[name], v)
			}
		}
	}
	atLeast := func(n float64) func(float64) bool { return func(v float64) bool { return v >= n } }
	exactly := func(n float64) func(float64) bool { return func(v float64) bool { return v == n } }

	checks("after Up", map[string]func(float64) bool{
		"homeroom_leader":                     exactly(1),
		"homeroom_up_duration_seconds":        exactly(1),
		"homeroom_reconcile_passes_total":     atLeast(1),
		"homeroom_reconcile_duration_seconds": atLeast(1),
		"homeroom_docker_calls_total":         atLeast(2),
		"homeroom_classes":                    exactly(1),
		"homeroom_managed_containers":         atLeast(2),
		"homeroom_managed_networks":           atLeast(1),
	}, map[string]map[string]string{
		"homeroom_reconcile_passes_total": {"result": "success"},
		"homeroom_docker_calls_total":     {"operation": "container_create", "error": ""},
		"homeroom_classes":                {"desired": "Up", "phase": "Up"},
	})

	// Drift: a container removed by hand is a repair.
	if err := d.API().ContainerRemove(ctx, api.ContainerName(id, "noa"), container.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for value(t, reg, "homeroom_drift_repairs_total", nil) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("homeroom_drift_repairs_total never moved after a container was removed by hand")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A sandbox killed is started again after its pause: a restart.
	testenv.WaitPhase(t, st, id, api.PhaseUp, time.Minute)
	if err := d.API().ContainerKill(ctx, api.ContainerName(id, "mia"), "KILL"); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(time.Minute)
	for value(t, reg, "homeroom_sandbox_restarts_total", nil) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("homeroom_sandbox_restarts_total = %v a minute after a sandbox was killed, want 1",
				value(t, reg, "homeroom_sandbox_restarts_total", nil))
		}
		time.Sleep(50 * time.Millisecond)
	}
	testenv.WaitPhase(t, st, id, api.PhaseUp, time.Minute)

	testenv.SetPhase(t, st, id, api.PhaseDown)
	testenv.WaitPhase(t, st, id, api.PhaseDown, time.Minute)
	checks("after Down", map[string]func(float64) bool{
		"homeroom_collect_total":            exactly(2),
		"homeroom_collect_bytes_total":      atLeast(1),
		"homeroom_collect_duration_seconds": exactly(2),
		"homeroom_step_duration_seconds":    exactly(2),
		"homeroom_classes":                  exactly(1),
		"homeroom_docker_calls_total":       atLeast(2),
	}, map[string]map[string]string{
		"homeroom_collect_total":         {"outcome": "success"},
		"homeroom_step_duration_seconds": {"step": "collect"},
		"homeroom_classes":               {"desired": "Down", "phase": "Down"},
		"homeroom_docker_calls_total":    {"operation": "container_remove"},
	})

	// The whole set is exposed in the text format Prometheus scrapes.
	mfs, _ := reg.Gather()
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	for _, want := range []string{"homeroom_workqueue_depth", "homeroom_workqueue_retries_total", "homeroom_ttl_expiries_total",
		"homeroom_orphans_reaped_total", "homeroom_quota_rejections_total"} {
		if !strings.Contains(strings.Join(names, " "), want) {
			t.Errorf("%s not registered", want)
		}
	}
}
