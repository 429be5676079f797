package apiserver_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/apiserver"
	"github.com/homeroom/homeroom/pkg/policy"
	"github.com/homeroom/homeroom/pkg/store"
)

// countingStore counts the polls of long polls (reads of the write counts)
// and their looks at the classes' versions.
type countingStore struct {
	*store.Store
	polls, looks atomic.Int64
}

func (c *countingStore) AllChanges(ctx context.Context) (store.ChangeCounts, error) {
	c.polls.Add(1)
	return c.Store.AllChanges(ctx)
}

func (c *countingStore) VersionsOf(ctx context.Context, ids []string) (map[string]int64, error) {
	c.looks.Add(1)
	return c.Store.VersionsOf(ctx, ids)
}

const (
	testMaxWait = 2 * time.Second
	testPoll    = 50 * time.Millisecond
	testPerKey  = 40
	// slow bounds what should be quick, generously: these tests share a
	// small machine with others, under -race. Waits are 30s, so an answer
	// within slow is an answer to the change, not a timeout.
	slow = 5 * time.Second
)

func newWaitEnv(t *testing.T) (*env, *countingStore) {
	var cs *countingStore
	e := newEnvWrapped(t, policy.Default(), func(s *store.Store) apiserver.Store {
		cs = &countingStore{Store: s}
		return cs
	}, apiserver.WithLongPoll(testMaxWait, testPoll, testPerKey))
	return e, cs
}

// waitFor is GET class?wait=…&resourceVersion=v, timed.
func (e *env) waitFor(tok, id, wait string, v int64) (response, time.Duration) {
	e.t.Helper()
	start := time.Now()
	r := e.doAs(tok, "GET", fmt.Sprintf("/api/v1/classes/%s?wait=%s&resourceVersion=%d", id, wait, v), "")
	return r, time.Since(start)
}

func TestWaitForAChange(t *testing.T) {
	e, _ := newWaitEnv(t)
	ctx := context.Background()
	c := e.class(e.ok2Body(201, "PUT", "/api/v1/classes/c", spec))

	t.Run("a version already different answers at once", func(t *testing.T) {
		r, took := e.waitFor(token, "c", "30s", c.Version-1)
		if r.code != 200 || e.class(r).Version != c.Version || took > slow {
			t.Errorf("%d in %v: %s", r.code, took, r.body)
		}
	})

	t.Run("a write by another client ends the wait", func(t *testing.T) {
		// The controller writes status through a store client of its own;
		// only polling can see it.
		other := make(chan error, 1)
		go func() {
			time.Sleep(300 * time.Millisecond)
			_, err := e.store.UpdateStatus(ctx, "c", c.Version, api.ClassStatus{Phase: api.PhaseProvisioning})
			other <- err
		}()
		r, took := e.waitFor(token, "c", "30s", c.Version)
		if err := <-other; err != nil {
			t.Fatal(err)
		}
		got := e.class(r)
		if r.code != 200 || got.Version != c.Version+1 || got.Status.Phase != api.PhaseProvisioning {
			t.Errorf("%d: %s", r.code, r.body)
		}
		if took < 250*time.Millisecond || took > slow {
			t.Errorf("answered after %v; the write was at 300ms", took)
		}
		c = got
	})

	t.Run("a write through the API ends it without waiting for a poll", func(t *testing.T) {
		go func() {
			time.Sleep(200 * time.Millisecond)
			e.do("POST", "/api/v1/classes/c/up", "")
		}()
		r, took := e.waitFor(token, "c", "30s", c.Version)
		if got := e.class(r); got.DesiredPhase != api.PhaseUp || took > slow {
			t.Errorf("after %v: %s", took, r.body)
		}
		c = e.class(r)
	})

	t.Run("no change: the class as it is at the timeout", func(t *testing.T) {
		r, took := e.waitFor(token, "c", "400ms", c.Version)
		if r.code != 200 || e.class(r).Version != c.Version || took < 400*time.Millisecond || took > slow {
			t.Errorf("%d after %v: %s", r.code, took, r.body)
		}
	})

	t.Run("the wait is bounded", func(t *testing.T) {
		for _, w := range []string{"1h", "3600"} {
			r, took := e.waitFor(token, "c", w, c.Version)
			if r.code != 200 || took < testMaxWait-100*time.Millisecond || took > testMaxWait+slow {
				t.Errorf("wait=%s: %d after %v, want the maximum %v", w, r.code, took, testMaxWait)
			}
		}
	})

	t.Run("deleted while waiting", func(t *testing.T) {
		e.ok(202, "POST", "/api/v1/classes/c/down", "")
		cur, _ := e.store.Get(ctx, "c")
		cur, err := e.store.UpdateStatus(ctx, "c", cur.Version, api.ClassStatus{Phase: api.PhaseDown, ObservedGeneration: cur.Generation})
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			time.Sleep(200 * time.Millisecond)
			e.store.Delete(ctx, "c", nil)
		}()
		if r, took := e.waitFor(token, "c", "30s", cur.Version); r.code != http.StatusNotFound || took > slow {
			t.Errorf("%d after %v: %s", r.code, took, r.body)
		}
	})

	t.Run("bad parameters", func(t *testing.T) {
		e.ok(201, "PUT", "/api/v1/classes/c", spec)
		for _, q := range []string{
			"wait=soon&resourceVersion=1", "wait=-1s&resourceVersion=1", "wait=-5&resourceVersion=1", "wait=10s",
			"resourceVersion=1", "wait=10s&resourceVersion=x", "wait=10s&resourceVersion=-1",
			"wait=1s&wait=2s&resourceVersion=1", "wait=1s&resourceVersion=1&resourceVersion=2",
			"wait=99999999999999999999&resourceVersion=1",
		} {
			r := e.do("GET", "/api/v1/classes/c?"+q, "")
			if r.code != 400 || errorOf(t, r).Code != "invalid_wait" {
				t.Errorf("?%s: %d %s", q, r.code, r.body)
			}
		}
		// wait=0 is no wait.
		if r, took := e.waitFor(token, "c", "0", 1); r.code != 200 || took > slow {
			t.Errorf("wait=0: %d after %v", r.code, took)
		}
	})
}

// TestWaitPollsOncePerInterval: however many requests wait, on however many
// classes, the store is polled once per interval for all of them, and not
// at all when nobody waits; the classes themselves are read only when a
// waiter is new, as nothing is written meanwhile.
func TestWaitPollsOncePerInterval(t *testing.T) {
	e, cs := newWaitEnv(t)
	const classes, perClass = 5, 6
	for i := range classes {
		e.ok(201, "PUT", fmt.Sprintf("/api/v1/classes/c%d", i), spec)
	}
	time.Sleep(2 * testPoll)
	if n := cs.polls.Load(); n != 0 {
		t.Fatalf("%d polls with nobody waiting", n)
	}
	const wait = time.Second
	start := time.Now()
	var wg sync.WaitGroup
	for i := range classes {
		for range perClass {
			wg.Go(func() {
				r := e.do("GET", fmt.Sprintf("/api/v1/classes/c%d?wait=%s&resourceVersion=1", i, wait), "")
				if r.code != 200 {
					t.Errorf("%d %s", r.code, r.body)
				}
			})
		}
	}
	wg.Wait()
	took := time.Since(start)
	polls := cs.polls.Load()
	// One poll per interval, give or take the first and the last.
	if max := int64(took/testPoll) + 3; polls > max || polls < 3 {
		t.Errorf("%d waits over %v polled the store %d times; want about %d", classes*perClass, took, polls, took/testPoll)
	}
	if looks := cs.looks.Load(); looks < 1 || looks > 6 {
		t.Errorf("%d looks at the classes' versions with nothing written, want one or a few as the waiters came", looks)
	}
	time.Sleep(3 * testPoll)
	if n := cs.polls.Load(); n > polls+1 {
		t.Errorf("polling went on after the waits: %d → %d", polls, n)
	}
}

func TestWaitLimits(t *testing.T) {
	const perKey = 4
	e := newEnvWith(t, policy.Default(), apiserver.WithLongPoll(time.Minute, testPoll, perKey))
	s := e.school()
	e.okAs(s.ada, 201, "PUT", "/api/v1/classes/cs-a", `{"subject": "cs101", "template": "sandbox", "students": ["al"]}`)

	// A token holds at most perKey waits; another token is not
	// affected, and a wait that ends frees its place.
	var wg sync.WaitGroup
	for range perKey {
		wg.Go(func() {
			if r, _ := e.waitFor(s.ada, "cs-a", "50s", 1); r.code != 200 {
				t.Errorf("a wait: %d %s", r.code, r.body)
			}
		})
	}
	// The gauge says when all of them wait.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		m := e.do("GET", "/metrics", "")
		if strings.Contains(string(m.body), fmt.Sprintf("homeroom_http_waits_in_flight %d\n", perKey)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the waits never all waited:\n%s", m.body)
		}
	}
	r, _ := e.waitFor(s.ada, "cs-a", "10ms", 1)
	if r.code != http.StatusTooManyRequests || errorOf(t, r).Code != "rate_limited" || r.header.Get("Retry-After") == "" {
		t.Errorf("one wait too many: %d %s", r.code, r.body)
	}
	if r, _ := e.waitFor(token, "cs-a", "100ms", 1); r.code != 200 {
		t.Errorf("another token: %d %s", r.code, r.body)
	}
	// The waits end when the class changes, and their places are free.
	e.okAs(s.ada, 202, "POST", "/api/v1/classes/cs-a/up", "")
	wg.Wait()
	if m := e.do("GET", "/metrics", ""); !strings.Contains(string(m.body), "homeroom_http_waits_in_flight 0\n") {
		t.Errorf("waits in flight after they ended:\n%s", m.body)
	}
	if r, _ := e.waitFor(s.ada, "cs-a", "100ms", 1); r.code != 200 {
		t.Errorf("after the waits ended: %d %s", r.code, r.body)
	}

	// Close answers the waits in flight at once, with the class as it is.
	done := make(chan response, 1)
	go func() {
		r, _ := e.waitFor(s.ada, "cs-a", "30s", 1)
		done <- r
	}()
	time.Sleep(200 * time.Millisecond)
	e.api.Close()
	select {
	case r := <-done:
		if r.code != 200 {
			t.Errorf("a wait when the server closes: %d %s", r.code, r.body)
		}
	case <-time.After(2 * time.Second):
		t.Error("Close did not end the wait")
	}
}

// ok2Body performs a request as the admin that must answer code.
func (e *env) ok2Body(code int, method, path, body string) response {
	e.t.Helper()
	return e.okAs(token, code, method, path, body)
}

// A wait whose client went away (a page closed, a script stopped) is no
// fault of the server: it is logged as a request the client closed (499),
// never as an internal error, which an operator would chase.
func TestAWaitItsClientLeftIsNoInternalError(t *testing.T) {
	var cs *countingStore
	e := newEnvWrapped(t, policy.Default(), func(s *store.Store) apiserver.Store {
		cs = &countingStore{Store: s}
		return cs
	}, apiserver.WithLongPoll(time.Minute, testPoll, testPerKey))
	if r := e.do("PUT", "/api/v1/classes/cs-a", spec); r.code != http.StatusCreated {
		t.Fatalf("create: %d %s", r.code, r.body)
	}
	cur, err := e.store.Get(context.Background(), "cs-a")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/api/v1/classes/cs-a?wait=60s&resourceVersion=%d", e.srv.URL, cur.Version), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	before := cs.polls.Load()
	go func() {
		// Gone once the server waits: it polls the store's changes.
		for cs.polls.Load() < before+2 {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
	}()
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the wait answered %d before its client left", resp.StatusCode)
	}
	var logged []int64
	for deadline := time.Now().Add(slow); len(logged) == 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, l := range e.logs.FilterMessage("request").All() {
			if f := l.ContextMap(); f["route"] == "/api/v1/classes/:id" && f["method"] == "GET" {
				logged = append(logged, f["code"].(int64))
			}
		}
	}
	if len(logged) != 1 || logged[0] != 499 {
		t.Errorf("the wait's request logged with codes %v, want one 499", logged)
	}
	for _, l := range e.logs.FilterMessage("internal error").All() {
		t.Errorf("logged: internal error %v", l.ContextMap())
	}
}
