package controller_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/controller"
	"github.com/homeroom/homeroom/pkg/reconcile"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"
)

// fakeReconciler records passes and fails them as told.
type fakeReconciler struct {
	mu       sync.Mutex
	calls    map[string]int
	inFlight map[string]int
	overlap  bool
	fail     map[string]error // returned while set
	block    time.Duration
	// write, when set, is the pass's status write: it returns the version
	// the pass left the class at.
	write func(id string) int64
}

func newFakeReconciler() *fakeReconciler {
	return &fakeReconciler{calls: map[string]int{}, inFlight: map[string]int{}, fail: map[string]error{}}
}

func (f *fakeReconciler) Reconcile(ctx context.Context, id string) (reconcile.Result, error) {
	f.mu.Lock()
	f.calls[id]++
	f.inFlight[id]++
	if f.inFlight[id] > 1 {
		f.overlap = true
	}
	err := f.fail[id]
	block := f.block
	f.mu.Unlock()
	time.Sleep(block)
	f.mu.Lock()
	f.inFlight[id]--
	write := f.write
	f.mu.Unlock()
	res := reconcile.Result{Converged: err == nil}
	if write != nil {
		res.Version = write(id)
	}
	return res, err
}

func (f *fakeReconciler) count(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[id]
}

type fakeLister struct {
	mu       sync.Mutex
	versions map[string]int64
}

func (l *fakeLister) Versions(context.Context) (map[string]int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int64{}
	for k, v := range l.versions {
		out[k] = v
	}
	return out, nil
}

func (l *fakeLister) set(id string, v int64) {
	l.mu.Lock()
	l.versions[id] = v
	l.mu.Unlock()
}

type fakeEvents struct{ ch chan events.Message }

func (f fakeEvents) Events(ctx context.Context, router string) (<-chan events.Message, <-chan error) {
	return f.ch, make(chan error)
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("never: %s", what)
}

func run(t *testing.T, rec controller.Reconciler, l controller.Lister, ev controller.EventSource, reg prometheus.Registerer) {
	t.Helper()
	ctl := controller.New(rec, l, ev, controller.Options{
		Workers: 4, PollInterval: 20 * time.Millisecond, ResyncInterval: time.Hour,
		RetryBase: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond,
	}, zaptest.NewLogger(t), reg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ctl.Run(ctx); close(done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("controller did not stop with its context")
		}
	})
}

func TestStoreChangesTriggerPasses(t *testing.T) {
	rec := newFakeReconciler()
	l := &fakeLister{versions: map[string]int64{"a": 1, "b": 1}}
	run(t, rec, l, nil, nil)
	eventually(t, "both classes reconciled at start", func() bool { return rec.count("a") == 1 && rec.count("b") == 1 })
	l.set("a", 2)
	eventually(t, "a changed class reconciled again", func() bool { return rec.count("a") == 2 })
	time.Sleep(100 * time.Millisecond)
	if n := rec.count("b"); n != 1 {
		t.Errorf("an unchanged class was reconciled %d times", n)
	}
}

// A pass's own status write is no change to pass again for; a write by
// anyone else is.
func TestAPassOwnStatusWriteAsksForNoPass(t *testing.T) {
	rec := newFakeReconciler()
	l := &fakeLister{versions: map[string]int64{"a": 1}}
	rec.write = func(id string) int64 {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.versions[id]++
		return l.versions[id]
	}
	run(t, rec, l, nil, nil)
	eventually(t, "the first pass", func() bool { return rec.count("a") == 1 })
	time.Sleep(200 * time.Millisecond) // ten polls
	if n := rec.count("a"); n != 1 {
		t.Fatalf("%d passes after the first one's own status write, want none", n-1)
	}
	l.mu.Lock()
	l.versions["a"] += 5 // a teacher's write
	l.mu.Unlock()
	eventually(t, "a pass for someone else's write", func() bool { return rec.count("a") == 2 })
}

func TestFailuresAreRetriedWithBackoffAndTerminalOnesAreNot(t *testing.T) {
	rec := newFakeReconciler()
	rec.fail["flaky"] = errors.New("daemon busy")
	rec.fail["broken"] = &reconcile.TerminalError{Err: errors.New("no such image")}
	l := &fakeLister{versions: map[string]int64{"flaky": 1, "broken": 1}}
	reg := prometheus.NewRegistry()
	run(t, rec, l, nil, reg)
	eventually(t, "flaky retried", func() bool { return rec.count("flaky") >= 3 })
	rec.mu.Lock()
	delete(rec.fail, "flaky")
	rec.mu.Unlock()
	n := rec.count("flaky")
	time.Sleep(300 * time.Millisecond)
	if got := rec.count("flaky"); got > n+1 {
		t.Errorf("a class kept being reconciled after it succeeded: %d -> %d", n, got)
	}
	if got := rec.count("broken"); got != 1 {
		t.Errorf("a terminal failure was retried: %d passes", got)
	}
	if v := counterValue(t, reg, "homeroom_workqueue_retries_total"); v < 2 {
		t.Errorf("retries metric = %v", v)
	}
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

func TestEventsTriggerPassesAndAClassIsNeverWorkedOnTwiceAtOnce(t *testing.T) {
	rec := newFakeReconciler()
	rec.block = 20 * time.Millisecond
	l := &fakeLister{versions: map[string]int64{"c": 1}}
	ev := fakeEvents{ch: make(chan events.Message)}
	run(t, rec, l, ev, nil)
	eventually(t, "initial pass", func() bool { return rec.count("c") >= 1 })
	before := rec.count("c")
	for i := 0; i < 50; i++ {
		ev.ch <- events.Message{Actor: events.Actor{Attributes: map[string]string{api.LabelClass: "c"}}}
	}
	eventually(t, "events triggered a pass", func() bool { return rec.count("c") > before })
	time.Sleep(200 * time.Millisecond)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if rec.overlap {
		t.Error("two passes of one class ran at once")
	}
	// 50 events while a pass is running collapse into a few passes.
	if rec.calls["c"]-before > 10 {
		t.Errorf("%d passes for 50 events: the queue does not deduplicate", rec.calls["c"]-before)
	}
}

// Docker sends a container's die event before its list shows the container
// stopped, so a die also brings a second pass a moment later, when the
// list tells the truth.
func TestADieEventIsLookedAtAgain(t *testing.T) {
	rec := newFakeReconciler()
	l := &fakeLister{versions: map[string]int64{"d": 1}}
	ev := fakeEvents{ch: make(chan events.Message)}
	run(t, rec, l, ev, nil)
	eventually(t, "initial pass", func() bool { return rec.count("d") >= 1 })
	before := rec.count("d")
	ev.ch <- events.Message{Type: events.ContainerEventType, Action: events.ActionDie,
		Actor: events.Actor{Attributes: map[string]string{api.LabelClass: "d"}}}
	eventually(t, "the die event's pass", func() bool { return rec.count("d") >= before+1 })
	eventually(t, "the pass once the daemon recorded the death", func() bool { return rec.count("d") >= before+2 })
}

// Hints about a failing class (its own events and status writes) must not
// retry it ahead of its backoff: that would be a loop feeding itself.
func TestHintsDoNotBypassBackoff(t *testing.T) {
	rec := newFakeReconciler()
	rec.fail["busy"] = errors.New("daemon busy")
	l := &fakeLister{versions: map[string]int64{"busy": 1}}
	ev := fakeEvents{ch: make(chan events.Message)}
	ctl := controller.New(rec, l, ev, controller.Options{
		Workers: 2, PollInterval: time.Hour, ResyncInterval: time.Hour,
		RetryBase: time.Second, RetryMax: time.Second,
	}, zaptest.NewLogger(t), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ctl.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	eventually(t, "first pass", func() bool { return rec.count("busy") >= 1 })
	first := rec.count("busy")
	for i := 0; i < 50; i++ {
		ev.ch <- events.Message{Actor: events.Actor{Attributes: map[string]string{api.LabelClass: "busy"}}}
		time.Sleep(5 * time.Millisecond)
	}
	if n := rec.count("busy") - first; n > 0 {
		t.Errorf("%d passes of a failing class within its 1 s backoff", n)
	}
}

// countingLister is a store that counts its class writes.
type countingLister struct {
	fakeLister
	n atomic.Int64
}

func (l *countingLister) Changes(context.Context) (int64, error) { return l.n.Load(), nil }

// A change the store counts is polled at once, long before the next full
// poll (an hour away here): a teacher's Up does not wait for it.
func TestCountedChangesArePolledAtOnce(t *testing.T) {
	rec := newFakeReconciler()
	l := &countingLister{fakeLister: fakeLister{versions: map[string]int64{"a": 1}}}
	ctl := controller.New(rec, l, nil, controller.Options{
		Workers: 1, PollInterval: time.Hour, ChangeInterval: 5 * time.Millisecond, ResyncInterval: 2 * time.Hour,
	}, zaptest.NewLogger(t), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ctl.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	eventually(t, "reconciled at start", func() bool { return rec.count("a") == 1 })

	l.set("a", 2)
	l.n.Add(1)
	eventually(t, "a counted change reconciled", func() bool { return rec.count("a") == 2 })

	// A change without a count waits for the full poll.
	l.set("a", 3)
	time.Sleep(50 * time.Millisecond)
	if n := rec.count("a"); n != 2 {
		t.Errorf("an uncounted change was polled before the full poll: %d passes", n)
	}
}

// sweepingEvents is a runtime that also sweeps staging and jobs, counting
// sweeps.
type sweepingEvents struct {
	fakeEvents
	sweeps, jobSweeps atomic.Int32
}

func (s *sweepingEvents) SweepStaging(ctx context.Context, now time.Time) (int, error) {
	s.sweeps.Add(1)
	return 0, nil
}

func (s *sweepingEvents) SweepJobs(ctx context.Context) (int, error) {
	s.jobSweeps.Add(1)
	return 0, nil
}

// The sweeps of staging and of jobs run as soon as the controller leads
// and then at most once every SweepInterval, however often it polls.
func TestLeftoversAreSweptOnceWhenLeading(t *testing.T) {
	rec := newFakeReconciler()
	l := &fakeLister{versions: map[string]int64{"a": 1}}
	ev := &sweepingEvents{fakeEvents: fakeEvents{ch: make(chan events.Message)}}
	ctl := controller.New(rec, l, ev, controller.Options{
		Workers: 1, PollInterval: 5 * time.Millisecond, ResyncInterval: 5 * time.Millisecond,
	}, zaptest.NewLogger(t), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { ctl.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	eventually(t, "a sweep", func() bool { return ev.sweeps.Load() > 0 })
	n := rec.count("a")
	eventually(t, "ten more resyncs", func() bool { return rec.count("a") >= n+10 })
	if n := ev.sweeps.Load(); n != 1 {
		t.Errorf("staging swept %d times in ten polls, want once", n)
	}
	if n := ev.jobSweeps.Load(); n != 1 {
		t.Errorf("jobs swept %d times in ten polls, want once", n)
	}
}
