package apiserver

import (
	"github.com/homeroom/homeroom/pkg/store"

	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

func TestCheckKeys(t *testing.T) {
	fields := map[string]bool{"subject": true, "students": true}
	for _, tc := range []struct {
		body, err string
	}{
		{`{"subject": "a", "students": ["x", "y"]}`, ""},
		{`{"students": [{"a": 1, "b": {"a": 2}}, {"a": 3}]}`, ""}, // the same key in different objects
		{` {} `, ""},
		{`{"subject": "a", "subject": "b"}`, `duplicate key "subject"`},
		{`{"subject": "a", "Subject": "b"}`, `keys "subject" and "Subject" differ only in case`},
		{`{"students": [{"a": 1, "a": 2}]}`, `duplicate key "a"`},
		{`{"Subject": "a"}`, `unknown field "Subject"`},
		{`{"other": 1}`, `unknown field "other"`},
		{`[]`, "a JSON object is required"},
		{`"x"`, "a JSON object is required"},
		{`null`, "a JSON object is required"},
		{`{} {}`, "data after the JSON object"},
		{`{} x`, "invalid character"},
		{`{"subject": `, "unexpected"},
		{``, "unexpected end"},
		{`{"students": ` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, "nested deeper than 32"},
	} {
		err := checkKeys([]byte(tc.body), fields)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.body, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: %v, want %q", tc.body, err, tc.err)
		}
	}
}

func TestParseRosterCSV(t *testing.T) {
	reg := func(s string) bool { return s == "cs" || s == "bio" }
	rs, bad, total := parseRosterCSV([]byte("class,subject,student\na,cs,x\nb,bio,y\na,cs,z\n"), reg)
	if total != 0 || len(bad) != 0 || len(rs) != 2 || rs[0].ClassID != "a" || strings.Join(rs[0].Students, ",") != "x,z" || rs[1].Subject != "bio" {
		t.Errorf("good file: %+v %+v %d", rs, bad, total)
	}
	// A header only registers nothing, and is no error.
	if rs, bad, total := parseRosterCSV([]byte("class,subject,student\n"), reg); len(rs) != 0 || bad != nil || total != 0 {
		t.Errorf("header only: %+v %+v %d", rs, bad, total)
	}
	// Line numbers count comments and blank lines.
	_, bad, _ = parseRosterCSV([]byte("class,subject,student\n# c\n\na,cs,X\n"), reg)
	if len(bad) != 1 || bad[0].Line != 4 {
		t.Errorf("line numbers: %+v", bad)
	}
}

// fakeClock is a settable clock for limiters.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestLimiters(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	l := newLimiters(2, 3, clk.now)
	for i := range 3 {
		if ok, _ := l.allow("a"); !ok {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	ok, d := l.allow("a")
	if ok || d <= 0 || d > 500*time.Millisecond || retryAfter(d) != 1 {
		t.Errorf("past the burst: %v %v", ok, d)
	}
	if ok, _ := l.allow("b"); !ok {
		t.Error("another key was refused")
	}
	clk.t = clk.t.Add(500 * time.Millisecond)
	if ok, _ := l.allow("a"); !ok {
		t.Error("after half a second at 2/s a request is allowed again")
	}
	// Refilled buckets are dropped by the next sweep; busy ones are kept.
	clk.t = clk.t.Add(2 * sweepEvery)
	l.allow("c")
	l.allow("c")
	if _, kept := l.buckets["a"]; kept || len(l.buckets) != 1 {
		t.Errorf("after a sweep: %d buckets", len(l.buckets))
	}
	// Off.
	off := newLimiters(0, 0, clk.now)
	for range 100 {
		if ok, _ := off.allow("x"); !ok {
			t.Fatal("a disabled limiter refused")
		}
	}
	if retryAfter(1500*time.Millisecond) != 2 || retryAfter(0) != 1 {
		t.Error("retryAfter rounds up, at least 1")
	}
}

// fakeVersions is a version source tests change by hand.
type fakeVersions struct {
	mu       sync.Mutex
	versions map[string]int64
	counts   store.ChangeCounts
	calls    int
	fail     bool
}

func (f *fakeVersions) AllChanges(context.Context) (store.ChangeCounts, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail {
		return store.ChangeCounts{}, errors.New("store down")
	}
	return f.counts, nil
}

func (f *fakeVersions) VersionsOf(_ context.Context, ids []string) (map[string]int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.fail {
		return nil, errors.New("store down")
	}
	out := map[string]int64{}
	for _, id := range ids {
		if v, ok := f.versions[id]; ok {
			out[id] = v
		}
	}
	return out, nil
}

// set changes a class's version as a status write does, counting it.
func (f *fakeVersions) set(id string, v int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.versions[id] = v
	f.counts.Statuses++
}

// TestWatcherReadsVersionsOnlyAfterAWrite: while nothing is written, the
// watcher reads the write counts each tick but the classes' versions only
// for a new waiter; a counted write has it look, and a write whose count
// was lost is seen within fullLookEvery.
func TestWatcherReadsVersionsOnlyAfterAWrite(t *testing.T) {
	src := &fakeVersions{versions: map[string]int64{"a": 1}}
	w := newWatcher(src, 5*time.Millisecond, 2, zap.NewNop(), prometheus.NewGauge(prometheus.GaugeOpts{Name: "w"}))
	defer w.close()
	res := make(chan error, 1)
	go func() { res <- w.wait(context.Background(), "k", "a", 1) }()
	calls := func() int { src.mu.Lock(); defer src.mu.Unlock(); return src.calls }
	for deadline := time.Now().Add(5 * time.Second); calls() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the watcher never looked")
		}
	}
	time.Sleep(100 * time.Millisecond) // twenty ticks with nothing written
	if n := calls(); n != 1 {
		t.Errorf("%d reads of the versions with nothing written, want 1", n)
	}
	src.set("a", 2)
	select {
	case err := <-res:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a counted write did not end the wait")
	}
}

func TestWatcher(t *testing.T) {
	src := &fakeVersions{versions: map[string]int64{"a": 1, "b": 1}}
	w := newWatcher(src, 10*time.Millisecond, 2, zap.NewNop(), prometheus.NewGauge(prometheus.GaugeOpts{Name: "w"}))
	defer w.close()
	ctx := context.Background()

	res := make(chan error, 3)
	go func() { res <- w.wait(ctx, "k1", "a", 1) }()
	go func() { res <- w.wait(ctx, "k2", "a", 1) }()
	go func() { res <- w.wait(ctx, "k2", "gone", 1) }() // no such class: answers at once
	if err := <-res; err != nil {
		t.Fatalf("a class that does not exist: %v", err)
	}
	// A third wait of k2 while it holds two... it holds one now.
	if err := w.wait(ctx, "k2", "b", 7); err != nil {
		t.Fatalf("a version already different: %v", err)
	}
	select {
	case err := <-res:
		t.Fatalf("a wait returned with nothing changed: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	// The store fails for a while: waits go on.
	src.mu.Lock()
	src.fail = true
	src.mu.Unlock()
	time.Sleep(30 * time.Millisecond)
	src.mu.Lock()
	src.fail = false
	src.mu.Unlock()
	src.set("a", 2)
	for range 2 {
		select {
		case err := <-res:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(time.Second):
			t.Fatal("a change did not end the waits")
		}
	}

	// The per-caller bound.
	tctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	go func() { res <- w.wait(tctx, "k3", "b", 1) }()
	go func() { res <- w.wait(tctx, "k3", "b", 1) }()
	for deadline := time.Now().Add(900 * time.Millisecond); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		w.mu.Lock()
		n := w.byKey["k3"]
		w.mu.Unlock()
		if n == 2 {
			break
		}
	}
	err := w.wait(tctx, "k3", "b", 1)
	if !errors.Is(err, errTooManyWaits) {
		t.Errorf("a third wait of k3: %v", err)
	}
	for range 2 {
		if err := <-res; !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("a wait at its deadline: %v", err)
		}
	}

	// Nobody waits: the poller stops.
	time.Sleep(30 * time.Millisecond)
	src.mu.Lock()
	calls := src.calls
	src.mu.Unlock()
	time.Sleep(50 * time.Millisecond)
	src.mu.Lock()
	if src.calls != calls {
		t.Errorf("polled %d times with nobody waiting", src.calls-calls)
	}
	src.mu.Unlock()

	// Close ends waits and refuses new ones.
	go func() { res <- w.wait(ctx, "k1", "b", 1) }()
	time.Sleep(20 * time.Millisecond)
	w.close()
	if err := <-res; !errors.Is(err, errClosing) {
		t.Errorf("a wait at close: %v", err)
	}
	if err := w.wait(ctx, "k1", "b", 1); !errors.Is(err, errClosing) {
		t.Errorf("a wait after close: %v", err)
	}
}
