package apiserver

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/homeroom/homeroom/pkg/store"
)

// versionSource is what the watcher polls: the counts of class and status
// writes, and the versions of some classes, a class missing from the result
// being gone.
type versionSource interface {
	AllChanges(ctx context.Context) (store.ChangeCounts, error)
	VersionsOf(ctx context.Context, ids []string) (map[string]int64, error)
}

// fullLookEvery bounds how long the watcher trusts the write counts alone:
// a count that failed to be written delays a waiter at most this long.
const fullLookEvery = 5 * time.Second

// watcher serves long polls (GET /classes/{id}?wait=…). The store has no
// change streams (FerretDB lacks them), so it polls, but once per interval
// for every waiting request together: one read of the store's write counts,
// and only when they moved (or a waiter is new) one query for the versions
// of the classes being waited on, however many requests wait. Reading a
// class's version costs reading the whole class in the embedded store; a
// class of 100 waited on by a teacher's page all lesson long must not cost
// that four times a second. A single goroutine
// does it, started by the first waiter and ending when the last one leaves;
// the apiserver's own writes wake it at once.
type watcher struct {
	src      versionSource
	interval time.Duration
	perKey   int // waits one caller may hold at once
	log      *zap.Logger
	inFlight prometheus.Gauge

	mu      sync.Mutex
	waiters map[string]map[*waiter]struct{} // by class id
	byKey   map[string]int                  // open waits by caller
	running bool
	closed  bool
	fresh   bool // a waiter came since the last look at the versions
	kick    chan struct{}
	done    chan struct{} // closed by close
	wg      sync.WaitGroup
}

type waiter struct {
	version int64
	changed chan struct{} // closed when the class's version differs, or it is gone
}

var (
	errTooManyWaits = errors.New("too many waits")
	errClosing      = errors.New("server closing")
)

func newWatcher(src versionSource, interval time.Duration, perKey int, log *zap.Logger, inFlight prometheus.Gauge) *watcher {
	return &watcher{
		src: src, interval: interval, perKey: perKey, log: log, inFlight: inFlight,
		waiters: map[string]map[*waiter]struct{}{}, byKey: map[string]int{},
		kick: make(chan struct{}, 1), done: make(chan struct{}),
	}
}

// wait returns nil once class id's version differs from version (or the
// class is gone), ctx's error when ctx ends first, errTooManyWaits when key
// (the caller) already holds perKey waits, and errClosing when the server
// shuts down.
func (w *watcher) wait(ctx context.Context, key, id string, version int64) error {
	wt := &waiter{version: version, changed: make(chan struct{})}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return errClosing
	}
	if w.byKey[key] >= w.perKey {
		w.mu.Unlock()
		return errTooManyWaits
	}
	w.byKey[key]++
	w.inFlight.Inc()
	if w.waiters[id] == nil {
		w.waiters[id] = map[*waiter]struct{}{}
	}
	w.waiters[id][wt] = struct{}{}
	w.fresh = true
	if !w.running {
		w.running = true
		w.wg.Add(1)
		go w.run()
	}
	w.mu.Unlock()

	defer func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.inFlight.Dec()
		if w.byKey[key]--; w.byKey[key] == 0 {
			delete(w.byKey, key)
		}
		if ws := w.waiters[id]; ws != nil {
			delete(ws, wt)
			if len(ws) == 0 {
				delete(w.waiters, id)
			}
		}
	}()
	select {
	case <-wt.changed:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-w.done:
		return errClosing
	}
}

// poke makes the poller look now rather than at its next tick: the
// apiserver calls it after its own writes.
func (w *watcher) poke() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// run polls until nobody waits or the watcher is closed.
func (w *watcher) run() {
	defer w.wg.Done()
	t := time.NewTicker(w.interval)
	defer t.Stop()
	var seen store.ChangeCounts
	var looked time.Time
	for {
		w.mu.Lock()
		if len(w.waiters) == 0 || w.closed {
			w.running = false
			w.mu.Unlock()
			return
		}
		ids := make([]string, 0, len(w.waiters))
		for id := range w.waiters {
			ids = append(ids, id)
		}
		w.mu.Unlock()

		ctx, cancel := context.WithTimeout(context.Background(), w.interval+5*time.Second)
		// The counts are read before the versions: a write counted after
		// this read is looked at on the next tick.
		counts, cerr := w.src.AllChanges(ctx)
		w.mu.Lock()
		look := w.fresh || cerr != nil || counts != seen || time.Since(looked) >= fullLookEvery
		w.fresh = false
		w.mu.Unlock()
		var versions map[string]int64
		var err error
		if look {
			versions, err = w.src.VersionsOf(ctx, ids)
			if err == nil && cerr == nil {
				seen, looked = counts, time.Now()
			}
		}
		cancel()
		if !look {
			// Nothing was written since the last look.
		} else if err != nil {
			// Waiters time out on their own; the next tick tries again.
			w.log.Warn("long poll: read versions", zap.Error(err))
		} else {
			w.mu.Lock()
			for _, id := range ids {
				v, exists := versions[id]
				for wt := range w.waiters[id] {
					if !exists || v != wt.version {
						close(wt.changed)
						delete(w.waiters[id], wt)
					}
				}
				if len(w.waiters[id]) == 0 {
					delete(w.waiters, id)
				}
			}
			w.mu.Unlock()
		}

		select {
		case <-t.C:
		case <-w.kick:
		case <-w.done:
		}
	}
}

// close wakes every waiter with errClosing and waits for the poller to end.
func (w *watcher) close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.done)
	}
	w.mu.Unlock()
	w.wg.Wait()
}
