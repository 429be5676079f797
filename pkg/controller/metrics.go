package controller

import (
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/util/workqueue"
)

type metrics struct {
	passes   *prometheus.CounterVec
	duration *prometheus.HistogramVec
	retries  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, q workqueue.TypedRateLimitingInterface[string]) *metrics {
	m := &metrics{
		passes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "homeroom_reconcile_passes_total", Help: "Reconcile passes by result (success, error, terminal).",
		}, []string{"result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "homeroom_reconcile_duration_seconds", Help: "Duration of reconcile passes by result.",
			Buckets: prometheus.ExponentialBuckets(0.005, 3, 10),
		}, []string{"result"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "homeroom_workqueue_retries_total", Help: "Passes requeued with backoff after an error.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.passes, m.duration, m.retries,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "homeroom_workqueue_depth", Help: "Classes waiting for a pass.",
			}, func() float64 { return float64(q.Len()) }))
	}
	return m
}
