// Package controller drives reconcile passes: a deduplicating, rate-limited
// work queue of class ids fed by three triggers (store polling, Docker
// events, a periodic resync). Triggers are hints; every pass re-reads the
// truth, so a missed or duplicated hint costs at most one pass.
package controller

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/reconcile"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/time/rate"
	"k8s.io/client-go/util/workqueue"
)

// Reconciler runs one pass for a class.
type Reconciler interface {
	Reconcile(ctx context.Context, classID string) (reconcile.Result, error)
}

// WorkspaceMeasurer measures students' work volumes, seldom: the
// reconciler keeps the sizes for its passes and returns the classes whose
// sizes changed.
type WorkspaceMeasurer interface {
	MeasureWorkspaces(ctx context.Context) ([]string, error)
}

// StagingSweeper removes what crashes left in the object store outside
// any class: the swarm runtime's staging objects, copies of students' work
// on their way between a node and the controller.
type StagingSweeper interface {
	SweepStaging(ctx context.Context, now time.Time) (int, error)
}

// JobSweeper removes the one-shot jobs (the swarm runtime's) that a
// controller stopped while they ran left behind.
type JobSweeper interface {
	SweepJobs(ctx context.Context) (int, error)
}

// NetworkPool keeps networks made ahead of an Up (the swarm runtime's).
// Only the leader hands them out: one that stops leading drops its list.
type NetworkPool interface {
	KeepNetworkPool(ctx context.Context) (int, error)
	DropNetworkPool()
}

// SweepInterval is how often, at most, the controller sweeps what crashes
// left (staging objects, jobs), from when it first leads.
const SweepInterval = time.Hour

// ChangeCounter counts the class writes the controller must act on. A
// store that has one is read every ChangeInterval, cheaply, and a change
// starts a full poll at once: without change streams (FerretDB) that is how
// a teacher's Up reaches the controller in a fraction of a second.
type ChangeCounter interface {
	Changes(ctx context.Context) (int64, error)
}

// Lister tells which classes exist and their versions, cheaply.
type Lister interface {
	Versions(ctx context.Context) (map[string]int64, error)
}

// EventSource streams Docker events about Homeroom's objects and the start
// of the router container.
type EventSource interface {
	Events(ctx context.Context, router string) (<-chan events.Message, <-chan error)
}

// ChangeWatcher streams the ids of classes as the store changes them. The
// store implements it where the server has change streams; polling runs
// regardless, as the floor.
type ChangeWatcher interface {
	WatchChanges(ctx context.Context) (<-chan string, error)
}

// ClassFinder lists the classes Docker holds labelled resources of; the
// resync passes over those gone from the store, which are orphans.
// The event source implements it when it can (dockerx.Client does).
type ClassFinder interface {
	ManagedClasses(ctx context.Context) ([]string, error)
}

// Options tune the loop.
type Options struct {
	Workers      int
	PollInterval time.Duration
	// ChangeInterval is how often the store's change count is read, when
	// the lister has one (default 100 ms).
	ChangeInterval time.Duration
	ResyncInterval time.Duration
	RetryBase      time.Duration
	RetryMax       time.Duration
	// Router is the Traefik container's name: when it starts, every class is
	// reconciled so that it is attached to every class network again.
	Router string
	// Elector, when set, makes this controller act only while it holds the
	// lease; nil acts always (one controller).
	Elector *Elector
	// ShutdownGrace bounds how long a stop waits for the steps in flight.
	ShutdownGrace time.Duration
	// Grading, when set, has a pass every GradingInterval (default 1 s)
	// while this controller leads, beside the classes' passes.
	Grading         Grading
	GradingInterval time.Duration
}

// Grading grades the runs that have a grading open (grading.Grader).
type Grading interface {
	// Pass starts what is to be done and does not wait for it. It
	// reports whether a grading is open, which asks for the next pass
	// within GradingInterval rather than at the next wake or resync.
	Pass(ctx context.Context) (open bool, err error)
	// Wait waits for what the passes started to stop.
	Wait()
	// Wake has a value when a pass before the next tick would find work.
	Wake() <-chan struct{}
}

// dieSettle is how long after a container's die event its class is looked
// at again. The daemon announces a death before it records the container as
// stopped, so the pass the event itself brings may still see it running.
const dieSettle = time.Second

// Controller owns the queue and its triggers.
type Controller struct {
	rec     Reconciler
	lister  Lister
	events  EventSource
	opts    Options
	log     *zap.Logger
	metrics *metrics
	queue   workqueue.TypedRateLimitingInterface[string]
	limiter workqueue.TypedRateLimiter[string]

	// retryAt holds, for a class whose last pass failed, when its retry is
	// due. Hints that arrive sooner (the events and status writes of the
	// failing pass itself) wait for it, so a failure is retried with
	// backoff instead of in a loop that feeds itself.
	mu      sync.Mutex
	retryAt map[string]time.Time
	// ownVersion is, by class, the version the last pass left it at.
	ownVersion map[string]int64

	measuring atomic.Bool // a workspace measurement is in flight
	sweeping  atomic.Bool // a sweep of staging is in flight
	pooling   atomic.Bool // a round of the network pool is in flight
	lastSweep time.Time   // read and written by the poll loop only

	// gradingWake has a value when the store's change count moved: a
	// grading may have been opened or asked again.
	gradingWake chan struct{}
}

// New builds a controller; reg receives its metrics (nil: none).
func New(rec Reconciler, lister Lister, ev EventSource, opts Options, log *zap.Logger, reg prometheus.Registerer) *Controller {
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = time.Second
	}
	if opts.ChangeInterval <= 0 {
		opts.ChangeInterval = 100 * time.Millisecond
	}
	if opts.ResyncInterval <= 0 {
		opts.ResyncInterval = 30 * time.Second
	}
	if opts.RetryBase <= 0 {
		opts.RetryBase = 500 * time.Millisecond
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = time.Minute
	}
	if opts.ShutdownGrace <= 0 {
		opts.ShutdownGrace = 30 * time.Second
	}
	if opts.GradingInterval <= 0 {
		opts.GradingInterval = time.Second
	}
	limiter := workqueue.NewTypedMaxOfRateLimiter(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](opts.RetryBase, opts.RetryMax),
		&workqueue.TypedBucketRateLimiter[string]{Limiter: rate.NewLimiter(rate.Limit(20), 200)},
	)
	q := workqueue.NewTypedRateLimitingQueueWithConfig(limiter, workqueue.TypedRateLimitingQueueConfig[string]{Name: "classes"})
	c := &Controller{rec: rec, lister: lister, events: ev, opts: opts, log: log, queue: q,
		limiter: limiter, retryAt: map[string]time.Time{}, ownVersion: map[string]int64{}, gradingWake: make(chan struct{}, 1)}
	c.metrics = newMetrics(reg, q)
	return c
}

// Enqueue asks for a pass over a class.
func (c *Controller) Enqueue(classID string) { c.queue.Add(classID) }

// Run works until ctx ends. Then it takes no new work, lets the steps in
// flight finish (up to ShutdownGrace), and gives up its lease.
func (c *Controller) Run(ctx context.Context) error {
	// Passes run on a context of their own, so that a stop lets the step in
	// flight finish instead of cutting a Docker call or an upload in half;
	// they are told to stop between steps.
	work, hardStop := context.WithCancel(context.WithoutCancel(ctx))
	defer hardStop()
	work = reconcile.WithStop(work, func() bool { return ctx.Err() != nil || !c.leading() })

	var triggers, workers sync.WaitGroup
	if e := c.opts.Elector; e != nil {
		triggers.Add(1)
		go func() { defer triggers.Done(); e.run(ctx, func() { c.enqueueAll(ctx) }) }()
	}
	for i := 0; i < c.opts.Workers; i++ {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for c.processNext(ctx, work) {
			}
		}()
	}
	if c.opts.Grading != nil {
		triggers.Add(1)
		go func() { defer triggers.Done(); c.grade(ctx) }()
	}
	triggers.Add(3)
	go func() { defer triggers.Done(); c.poll(ctx) }()
	go func() { defer triggers.Done(); c.watchStore(ctx) }()
	go func() { defer triggers.Done(); c.watchEvents(ctx) }()
	<-ctx.Done()

	done := make(chan struct{})
	go func() {
		// Workers take what is still queued and skip it; the drain ends when
		// the passes in flight have finished their current steps.
		c.queue.ShutDownWithDrain()
		workers.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(c.opts.ShutdownGrace):
		c.log.Warn("steps still running after the shutdown grace; cancelling them")
		hardStop()
		<-done
	}
	triggers.Wait()
	if e := c.opts.Elector; e != nil {
		e.release()
	}
	return nil
}

// grade runs the grading passes while this controller leads.
func (c *Controller) grade(ctx context.Context) {
	g := c.opts.Grading
	defer g.Wait()
	for {
		// While a grading is open, or this controller does not lead, a
		// pass every GradingInterval; at rest only a wake (a grading
		// opened: the store's change count moved) or a sweep is needed.
		every := c.opts.GradingInterval
		if c.leading() {
			open, err := g.Pass(ctx)
			if err != nil && ctx.Err() == nil {
				c.log.Warn("grading pass", zap.Error(err))
			}
			if !open {
				every = c.opts.ResyncInterval
			}
		}
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-g.Wake():
		case <-c.gradingWake:
		}
		t.Stop()
	}
}

// wakeGrading asks for a grading pass before the next tick.
func (c *Controller) wakeGrading() {
	select {
	case c.gradingWake <- struct{}{}:
	default:
	}
}

func (c *Controller) leading() bool {
	return c.opts.Elector == nil || c.opts.Elector.IsLeader()
}

func (c *Controller) processNext(ctx, work context.Context) bool {
	id, shutdown := c.queue.Get()
	if shutdown {
		return false
	}
	defer c.queue.Done(id)
	if ctx.Err() != nil {
		return true
	}
	if !c.leading() {
		// The leader does this work; on becoming leader we enqueue all.
		c.queue.Forget(id)
		return true
	}
	if c.backingOff(id) {
		return true // its retry is scheduled
	}
	start := time.Now()
	res, err := c.rec.Reconcile(work, id)
	c.mu.Lock()
	if res.Version > 0 {
		c.ownVersion[id] = res.Version
	} else {
		delete(c.ownVersion, id)
	}
	c.mu.Unlock()
	var terminal *reconcile.TerminalError
	result := "success"
	switch {
	case errors.Is(err, reconcile.ErrStopped):
		result = "stopped"
		c.queue.Forget(id)
	case errors.As(err, &terminal):
		// Retrying cannot fix it; the status says why, and the periodic
		// resync looks again in case an operator fixed it by hand.
		result = "terminal"
		c.queue.Forget(id)
		c.log.Warn("pass failed, not retrying", zap.String("classId", id), zap.Error(err))
	case err != nil:
		result = "error"
		delay := c.limiter.When(id)
		c.mu.Lock()
		c.retryAt[id] = time.Now().Add(delay)
		c.mu.Unlock()
		c.queue.AddAfter(id, delay)
		c.metrics.retries.Inc()
		c.log.Info("pass failed, will retry", zap.String("classId", id), zap.Error(err),
			zap.Int("attempt", c.limiter.NumRequeues(id)), zap.Duration("in", delay))
	case !res.Converged:
		c.queue.Forget(id)
		c.queue.AddAfter(id, time.Second)
	default:
		c.queue.Forget(id)
		if res.RequeueAfter > 0 {
			c.queue.AddAfter(id, res.RequeueAfter)
		}
	}
	if result != "error" {
		c.mu.Lock()
		delete(c.retryAt, id)
		c.mu.Unlock()
	}
	c.metrics.passes.WithLabelValues(result).Inc()
	c.metrics.duration.WithLabelValues(result).Observe(time.Since(start).Seconds())
	return true
}

// wrote tells whether version v of class id is the one a pass left it at
// (its own status write): nothing changed that a pass has not seen. Without
// this, every status write would be followed by a pass that reads the
// class and asks the daemon again, and one whose status changes with time
// (a grading's progress) would pass every poll.
func (c *Controller) wrote(id string, v int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ownVersion[id] == v
}

// backingOff reports whether a failed class's retry is not due yet.
func (c *Controller) backingOff(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	at, ok := c.retryAt[id]
	return ok && time.Now().Before(at)
}

// poll enqueues classes whose version changed; every ResyncInterval it
// enqueues all of them, so drift nobody announced is still repaired. Where
// the store counts its changes, the count is read every ChangeInterval and
// a change polls at once; the full poll every PollInterval stays, so a
// change the count missed is still seen.
func (c *Controller) poll(ctx context.Context) {
	seen := map[string]int64{}
	lastResync := time.Time{}
	t := time.NewTicker(c.opts.PollInterval)
	defer t.Stop()
	var fast <-chan time.Time
	counter, counts := c.lister.(ChangeCounter)
	lastCount := int64(-1)
	if counts {
		ft := time.NewTicker(c.opts.ChangeInterval)
		defer ft.Stop()
		fast = ft.C
	}
	for {
		versions, err := c.lister.Versions(ctx)
		if err != nil {
			if ctx.Err() == nil {
				c.log.Warn("poll store", zap.Error(err))
			}
		} else {
			resync := time.Since(lastResync) >= c.opts.ResyncInterval
			if resync {
				lastResync = time.Now()
			}
			for id, v := range versions {
				if resync || (seen[id] != v && !c.wrote(id, v)) {
					c.queue.Add(id)
				}
			}
			// A deleted class is gone from versions: one more pass lets
			// the reconciler find what it left behind.
			for id := range seen {
				if _, ok := versions[id]; !ok {
					c.queue.Add(id)
				}
			}
			seen = versions
			c.keepNetworkPool(ctx)
			c.sweep(ctx)
			if resync {
				c.enqueueOrphans(ctx, versions)
				c.measureWorkspaces(ctx)
			}
		}
	wait:
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				break wait
			case <-fast:
				n, err := counter.Changes(ctx)
				if err != nil || n == lastCount {
					continue
				}
				first := lastCount < 0
				lastCount = n
				if !first {
					// A grading opened or asked again counts too.
					c.wakeGrading()
					break wait
				}
			}
		}
	}
}

// watchStore turns store changes into passes at once where the server has
// change streams. Without them (FerretDB, a standalone mongod) polling alone
// notices changes, a poll interval later.
func (c *Controller) watchStore(ctx context.Context) {
	w, ok := c.lister.(ChangeWatcher)
	if !ok {
		return
	}
	backoff := time.Second
	for ctx.Err() == nil {
		ids, err := w.WatchChanges(ctx)
		if err != nil {
			c.log.Info("store has no change streams; polling only", zap.Error(err))
			return
		}
		for id := range ids {
			c.queue.Add(id)
			backoff = time.Second
		}
		// The stream ended: changes may have been missed meanwhile.
		c.enqueueAll(ctx)
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

// watchEvents turns Docker events into passes. After any break in the stream
// it re-lists (enqueues everything), since events may have been missed.
func (c *Controller) watchEvents(ctx context.Context) {
	if c.events == nil {
		return
	}
	backoff := time.Second
	for ctx.Err() == nil {
		evctx, cancel := context.WithCancel(ctx)
		msgs, errs := c.events.Events(evctx, c.opts.Router)
		c.enqueueAll(ctx)
	stream:
		for {
			select {
			case <-ctx.Done():
				cancel()
				return
			case m := <-msgs:
				backoff = time.Second
				if id := m.Actor.Attributes[api.LabelClass]; id != "" {
					c.queue.Add(id)
					if m.Type == events.ContainerEventType && m.Action == events.ActionDie {
						// Docker sends die before its container list shows
						// the container stopped: look again once it does.
						c.queue.AddAfter(id, dieSettle)
					}
				} else if c.opts.Router != "" && m.Actor.Attributes["name"] == c.opts.Router {
					c.log.Info("router started; reconciling every class")
					c.enqueueAll(ctx)
				}
			case err := <-errs:
				c.log.Warn("docker events stream broke; re-listing", zap.Error(err))
				break stream
			}
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

// enqueueOrphans finds classes that Docker holds resources of but the store
// does not know, so that they are collected and removed after their grace.
func (c *Controller) enqueueOrphans(ctx context.Context, known map[string]int64) {
	f, ok := c.events.(ClassFinder)
	if !ok {
		return
	}
	ids, err := f.ManagedClasses(ctx)
	if err != nil {
		c.log.Warn("list managed classes", zap.Error(err))
		return
	}
	for _, id := range ids {
		if _, ok := known[id]; !ok {
			c.queue.Add(id)
		}
	}
}

func (c *Controller) enqueueAll(ctx context.Context) {
	versions, err := c.lister.Versions(ctx)
	if err != nil {
		return
	}
	for id := range versions {
		c.queue.Add(id)
	}
}

// sweep asks the runtime, in the background, to remove what crashes left
// behind (staging objects, jobs): as soon as this controller leads, so
// that what the one before it left goes at once, then every SweepInterval.
// Only the leader sweeps: another controller's may be in use.
func (c *Controller) sweep(ctx context.Context) {
	s, staging := c.events.(StagingSweeper)
	j, jobs := c.events.(JobSweeper)
	if !staging && !jobs || !c.leading() || (!c.lastSweep.IsZero() && time.Since(c.lastSweep) < SweepInterval) || !c.sweeping.CompareAndSwap(false, true) {
		return
	}
	c.lastSweep = time.Now()
	go func() {
		defer c.sweeping.Store(false)
		// The jobs first: a job left running may still upload to a
		// staging object.
		if jobs {
			n, err := j.SweepJobs(ctx)
			if err != nil && ctx.Err() == nil {
				c.log.Warn("sweep jobs", zap.Error(err))
			}
			if n > 0 {
				c.log.Info("removed jobs left behind", zap.Int("jobs", n))
			}
		}
		if staging {
			n, err := s.SweepStaging(ctx, time.Now())
			if err != nil && ctx.Err() == nil {
				c.log.Warn("sweep staging", zap.Error(err))
			}
			if n > 0 {
				c.log.Info("removed staging objects left behind", zap.Int("objects", n))
			}
		}
	}()
}

// keepNetworkPool lets the runtime keep its network pool, in the
// background: the runtime decides whether a round is due (it is cheap when
// not). A controller that does not lead drops the pool.
func (c *Controller) keepNetworkPool(ctx context.Context) {
	p, ok := c.events.(NetworkPool)
	if !ok {
		return
	}
	if !c.leading() {
		p.DropNetworkPool()
		return
	}
	if !c.pooling.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer c.pooling.Store(false)
		n, err := p.KeepNetworkPool(ctx)
		if err != nil && ctx.Err() == nil {
			c.log.Warn("keep the network pool", zap.Error(err))
		}
		if n > 0 {
			c.log.Info("made networks ahead of an Up", zap.Int("networks", n))
		}
	}()
}

// measureWorkspaces measures the students' work volumes in the background
// (the daemon can take seconds to answer) and enqueues the classes whose
// sizes changed; a measurement still running when the next resync comes
// is not started again.
func (c *Controller) measureWorkspaces(ctx context.Context) {
	m, ok := c.rec.(WorkspaceMeasurer)
	if !ok || !c.measuring.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer c.measuring.Store(false)
		changed, err := m.MeasureWorkspaces(ctx)
		if err != nil {
			if ctx.Err() == nil {
				c.log.Warn("measure workspaces", zap.Error(err))
			}
			return
		}
		for _, id := range changed {
			c.queue.Add(id)
		}
	}()
}
