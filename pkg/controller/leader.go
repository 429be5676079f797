package controller

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// LeaseStore holds the lease document controllers compete for.
type LeaseStore interface {
	TryAcquire(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	Release(ctx context.Context, name, holder string) error
}

// Elector keeps a lease in the store so that, of several controllers, only
// one acts. It trusts its lease only until the local monotonic clock says
// the lease may have expired, counted from before the write that renewed
// it: a controller that was paused (SIGSTOP, a long GC, a frozen VM) finds
// on waking that it is no longer sure, and steps down before acting.
type Elector struct {
	store LeaseStore
	name  string
	id    string
	ttl   time.Duration
	log   *zap.Logger
	epoch time.Time    // origin of the monotonic readings below
	until atomic.Int64 // nanoseconds since epoch until which we lead
	gauge prometheus.Gauge
}

// NewElector competes for the lease name as id.
func NewElector(s LeaseStore, name, id string, ttl time.Duration, log *zap.Logger, reg prometheus.Registerer) *Elector {
	e := &Elector{store: s, name: name, id: id, ttl: ttl, log: log, epoch: time.Now(),
		gauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "homeroom_leader", Help: "1 while this controller holds the lease and acts, 0 otherwise.",
		})}
	if reg != nil {
		reg.MustRegister(e.gauge)
	}
	return e
}

func (e *Elector) mono() int64 { return int64(time.Since(e.epoch)) }

// IsLeader reports whether this controller may act now.
func (e *Elector) IsLeader() bool { return e.mono() < e.until.Load() }

// run renews the lease every third of its TTL until ctx ends, calling
// onLead each time this controller becomes leader.
func (e *Elector) run(ctx context.Context, onLead func()) {
	// A safety margin below the TTL covers clock drift between the
	// controllers' hosts and the time a renewal write takes.
	margin := e.ttl / 5
	t := time.NewTicker(e.ttl / 3)
	defer t.Stop()
	for {
		start := e.mono()
		was := e.IsLeader()
		ok, err := e.store.TryAcquire(ctx, e.name, e.id, e.ttl)
		switch {
		case err != nil && ctx.Err() == nil:
			e.log.Warn("lease renewal failed", zap.Error(err))
			// Keep what we had: it ends on its own at its deadline.
		case ok:
			e.until.Store(start + int64(e.ttl-margin))
		default:
			e.until.Store(0)
		}
		now := e.IsLeader()
		if now != was {
			if now {
				e.log.Info("became leader", zap.String("id", e.id))
				onLead()
			} else {
				e.log.Info("lost leadership", zap.String("id", e.id))
			}
		}
		if now {
			e.gauge.Set(1)
		} else {
			e.gauge.Set(0)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// release gives up the lease, so that another controller takes over at once.
func (e *Elector) release() {
	e.until.Store(0)
	e.gauge.Set(0)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.store.Release(ctx, e.name, e.id); err != nil {
		e.log.Warn("release lease", zap.Error(err))
		return
	}
	e.log.Info("released the lease", zap.String("id", e.id))
}
