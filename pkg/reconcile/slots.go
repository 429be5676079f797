package reconcile

import (
	"context"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"
)

// slots is the limit on Docker steps in flight that every pass shares,
// whichever worker runs it. Past it the daemon gains nothing (it serializes
// network endpoint creation behind its own locks), so steps wait here, in
// order, instead of piling up there.
type slots struct {
	sem      *semaphore.Weighted
	inFlight atomic.Int64
	waiting  atomic.Int64
}

func newSlots(n int, reg prometheus.Registerer) *slots {
	s := &slots{sem: semaphore.NewWeighted(int64(n))}
	if reg != nil {
		reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "homeroom_steps_in_flight", Help: "Docker steps of reconcile passes running now, across all classes (at most -global-parallel).",
			}, func() float64 { return float64(s.inFlight.Load()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "homeroom_steps_waiting", Help: "Docker steps of reconcile passes waiting for a slot of -global-parallel.",
			}, func() float64 { return float64(s.waiting.Load()) }),
		)
	}
	return s
}

// acquire waits for a slot, or for ctx to end.
func (s *slots) acquire(ctx context.Context) error {
	s.waiting.Add(1)
	err := s.sem.Acquire(ctx, 1)
	s.waiting.Add(-1)
	if err != nil {
		return err
	}
	s.inFlight.Add(1)
	return nil
}

func (s *slots) release() {
	s.inFlight.Add(-1)
	s.sem.Release(1)
}
