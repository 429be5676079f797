package reconcile

import (
	"github.com/homeroom/homeroom/pkg/policy"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are what operators watch of the reconciler's work.
type metrics struct {
	expiries        prometheus.Counter
	orphansReaped   prometheus.Counter
	upDuration      prometheus.Histogram
	collects        *prometheus.CounterVec
	autosaves       *prometheus.CounterVec
	workspaceBytes  *prometheus.GaugeVec
	leakedNetworks  prometheus.Gauge
	collectBytes    prometheus.Counter
	collectDuration prometheus.Histogram
	stepDuration    *prometheus.HistogramVec
	driftRepairs    prometheus.Counter
	restarts        prometheus.Counter
	quotaRejections *prometheus.CounterVec
	scheduled       *prometheus.CounterVec
	lateness        prometheus.Histogram
	lateForBell     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		expiries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "homeroom_ttl_expiries_total", Help: "Classes taken Down because their ttlSeconds ran out.",
		}),
		orphansReaped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "homeroom_orphans_reaped_total", Help: "Student containers of classes gone from the store, collected and removed.",
		}),
		scheduled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "homeroom_schedule_changes_total", Help: "Desired phases set by classes' timetables, by phase.",
		}, []string{"phase"}),
		lateness: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "homeroom_schedule_lateness_seconds",
			Help:    "Seconds from a session's start (the bell) to its class being ready; negative when ready early.",
			Buckets: []float64{-600, -300, -120, -60, -30, -10, 0, 10, 30, 60, 120, 300, 600},
		}),
		lateForBell: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "homeroom_classes_late_for_bell", Help: "Classes whose session has started and that are not ready yet.",
		}),
		upDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "homeroom_up_duration_seconds", Help: "Time from an Up request to all of the class's students running.",
			Buckets: prometheus.ExponentialBuckets(0.25, 2, 12),
		}),
		collects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "homeroom_collect_total", Help: "Collections of one student's work, by outcome (success: verified in the object store).",
		}, []string{"outcome"}),
		leakedNetworks: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "homeroom_leaked_networks",
			Help: "Class networks the daemon refuses to remove (\"has active endpoints\") with no container on them; a daemon restart clears them.",
		}),
		workspaceBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "homeroom_workspace_bytes",
			Help: "Bytes a student's work volumes held at the last measurement (every resync).",
		}, []string{"class", "student"}),
		autosaves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "homeroom_autosaves_total",
			Help: "Autosaves of Up classes by result; a failure is one in which no student could be collected.",
		}, []string{"result"}),
		collectBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "homeroom_collect_bytes_total", Help: "Bytes of files and logs uploaded by verified collections.",
		}),
		collectDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "homeroom_collect_duration_seconds", Help: "Time to collect, upload and verify one student's work.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 14),
		}),
		stepDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "homeroom_step_duration_seconds",
			Help:    "Time one step of a plan took once it had its slot (a stop, a collection, a removal with its volumes …), by step kind: where an Up or a Down spends its time.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}, []string{"step"}),
		driftRepairs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "homeroom_drift_repairs_total", Help: "Steps taken to repair a class that was already Up (a container removed or stopped by hand, Traefik detached).",
		}),
		restarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "homeroom_sandbox_restarts_total", Help: "Sandboxes of Up classes started again after they stopped (crashed, killed, stopped by hand), each after its restart pause.",
		}),
		quotaRejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "homeroom_quota_rejections_total", Help: "Ups held back by the controller's quota check, by the limit that would be broken.",
		}, []string{"limit"}),
	}
	m.collects.WithLabelValues("success")
	m.collects.WithLabelValues("failure")
	m.autosaves.WithLabelValues("success")
	m.autosaves.WithLabelValues("failure")
	for _, l := range policy.Limits() {
		m.quotaRejections.WithLabelValues(l)
	}
	if reg != nil {
		reg.MustRegister(m.scheduled, m.lateness, m.lateForBell)
		reg.MustRegister(m.expiries, m.orphansReaped, m.upDuration, m.collects, m.autosaves, m.workspaceBytes, m.leakedNetworks, m.collectBytes,
			m.collectDuration, m.stepDuration, m.driftRepairs, m.restarts, m.quotaRejections)
	}
	return m
}
