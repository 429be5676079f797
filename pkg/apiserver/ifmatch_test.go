package apiserver_test

import (
	"context"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/homeroom/homeroom/pkg/api"
)

// etag is the ETag a class at version v is sent with.
func etag(v int64) string { return `"` + strconv.FormatInt(v, 10) + `"` }

// staleRefused sends a PUT that must be 412 precondition_failed naming the
// class's current version, and checks that nothing was written: the store,
// the class as stored and the audit trail are as before.
func (e *env) staleRefused(tok, path, body, ifMatch string, current int64) {
	e.t.Helper()
	id := path[strings.LastIndex(path, "/")+1:]
	before := e.world()
	stored, _ := e.store.Get(context.Background(), id)
	r := e.doAs(tok, "PUT", path, body, "If-Match", ifMatch)
	if r.code != http.StatusPreconditionFailed {
		e.t.Fatalf("PUT %s with If-Match %s: %d %s, want 412", path, ifMatch, r.code, r.body)
	}
	eb := errorOf(e.t, r)
	if eb.Code != "precondition_failed" {
		e.t.Errorf("PUT %s with If-Match %s: %s, want precondition_failed", path, ifMatch, r.body)
	}
	if current > 0 {
		cur := strconv.FormatInt(current, 10)
		if !strings.Contains(eb.Message, "resourceVersion "+cur) || len(eb.Details) != 1 || eb.Details[0].Value != cur {
			e.t.Errorf("412 does not name the current resourceVersion %s: %s", cur, r.body)
		}
		if got := r.header.Get("ETag"); got != etag(current) {
			e.t.Errorf("412 ETag %q, want %q", got, etag(current))
		}
	}
	e.unchanged(before, "a PUT with a stale If-Match")
	after, _ := e.store.Get(context.Background(), id)
	if !reflect.DeepEqual(stored, after) {
		e.t.Errorf("a PUT with a stale If-Match wrote the class:\nbefore %+v\nafter  %+v", stored, after)
	}
}

// TestIfMatch: two teachers editing one class. GET and PUT send the class's
// resourceVersion as its ETag; a PUT with If-Match writes only over that
// version, and a stale one is 412 with nothing written.
func TestIfMatch(t *testing.T) {
	e := newEnv(t)
	const path = "/api/v1/classes/cs101-a"
	const first = `{"subject": "cs101", "template": "sandbox", "students": ["alice", "bob"]}`
	const mine = `{"subject": "cs101", "template": "sandbox", "students": ["alice", "bob", "carol"]}`
	const theirs = `{"subject": "cs101", "template": "sandbox", "students": ["alice"], "ttlSeconds": 3600}`

	r := e.do("PUT", path, first)
	if r.code != http.StatusCreated || r.header.Get("ETag") != etag(e.class(r).Version) {
		t.Fatalf("create: %d ETag %q %s", r.code, r.header.Get("ETag"), r.body)
	}
	// Both teachers load the class.
	r = e.do("GET", path, "")
	loaded := e.class(r)
	if r.code != http.StatusOK || r.header.Get("ETag") != etag(loaded.Version) || loaded.Version != 1 {
		t.Fatalf("GET: %d ETag %q resourceVersion %d", r.code, r.header.Get("ETag"), loaded.Version)
	}

	// The first to save wins: 200, the new version as ETag.
	r = e.do("PUT", path, mine, "If-Match", etag(loaded.Version))
	saved := e.class(r)
	if r.code != http.StatusOK || saved.Version != loaded.Version+1 || saved.Generation != 2 ||
		len(saved.Spec.Students) != 3 || r.header.Get("ETag") != etag(saved.Version) {
		t.Fatalf("fresh If-Match: %d ETag %q %s", r.code, r.header.Get("ETag"), r.body)
	}
	// The second, with what they loaded, is refused and changes nothing.
	e.staleRefused(token, path, theirs, etag(loaded.Version), saved.Version)
	// The quotes may be left out; a stale version is stale all the same.
	e.staleRefused(token, path, theirs, strconv.FormatInt(loaded.Version, 10), saved.Version)
	// Re-sending the very spec that is stored, at a stale version, is
	// refused too: the caller did not see what it is agreeing to.
	e.staleRefused(token, path, mine, etag(loaded.Version), saved.Version)

	// The controller's status writes move the version on as well.
	cur, _ := e.store.Get(context.Background(), "cs101-a")
	st, err := e.store.UpdateStatus(context.Background(), "cs101-a", cur.Version,
		api.ClassStatus{Phase: api.PhaseDown, ObservedGeneration: cur.Generation})
	if err != nil {
		t.Fatal(err)
	}
	e.staleRefused(token, path, theirs, etag(saved.Version), st.Version)
	// With the version the long poll or a GET now gives, the save goes
	// through; the status stays the controller's.
	r = e.do("PUT", path, theirs, "If-Match", etag(st.Version))
	if r.code != http.StatusOK || e.class(r).Version != st.Version+1 || e.class(r).Status.Phase != api.PhaseDown {
		t.Fatalf("If-Match after a status write: %d %s", r.code, r.body)
	}
	latest := e.class(r)

	// Without If-Match the last write wins, as before: scripts keep working.
	r = e.do("PUT", path, first)
	if r.code != http.StatusOK || e.class(r).Version != latest.Version+1 || len(e.class(r).Spec.Students) != 2 {
		t.Fatalf("PUT without If-Match: %d %s", r.code, r.body)
	}
	latest = e.class(r)

	// * means "the class must exist": any version of an existing class...
	r = e.do("PUT", path, mine, "If-Match", "*")
	if r.code != http.StatusOK || len(e.class(r).Spec.Students) != 3 {
		t.Fatalf("If-Match * on an existing class: %d %s", r.code, r.body)
	}
	latest = e.class(r)
	// ...and neither * nor a version creates a class: 412, nothing written.
	for _, im := range []string{"*", etag(1)} {
		e.staleRefused(token, "/api/v1/classes/nobody-yet", first, im, 0)
		if r := e.do("GET", "/api/v1/classes/nobody-yet", ""); r.code != http.StatusNotFound {
			t.Fatalf("If-Match %s created a class: %d %s", im, r.code, r.body)
		}
	}

	// An If-Match that is not one of our ETags is 400, never ignored.
	for _, im := range []string{`W/"` + strconv.FormatInt(latest.Version, 10) + `"`, `"abc"`, `"0"`, `"-1"`,
		etag(latest.Version) + ", " + etag(latest.Version+1), `""`} {
		before := e.world()
		r := e.do("PUT", path, theirs, "If-Match", im)
		if r.code != http.StatusBadRequest || errorOf(t, r).Code != "invalid_if_match" {
			t.Errorf("If-Match %s: %d %s, want 400 invalid_if_match", im, r.code, r.body)
		}
		e.unchanged(before, "If-Match "+im)
	}

	// Up and Down take no precondition: a stale If-Match is ignored there.
	r = e.do("POST", path+"/up", "", "If-Match", etag(1))
	if r.code != http.StatusAccepted || e.class(r).DesiredPhase != api.PhaseUp {
		t.Fatalf("up with an If-Match: %d %s", r.code, r.body)
	}
	r = e.do("POST", path+"/down", "", "If-Match", etag(1))
	if r.code != http.StatusAccepted || e.class(r).DesiredPhase != api.PhaseDown {
		t.Fatalf("down with an If-Match: %d %s", r.code, r.body)
	}
	// ...but they do move the version on, so an edit loaded before them is
	// stale.
	r = e.do("GET", path, "")
	e.staleRefused(token, path, theirs, etag(latest.Version), e.class(r).Version)

	// The long poll's answer carries the ETag too.
	r = e.do("GET", path+"?wait=1s&resourceVersion="+strconv.FormatInt(latest.Version, 10), "")
	if r.code != http.StatusOK || r.header.Get("ETag") != etag(e.class(r).Version) {
		t.Fatalf("GET with wait: %d ETag %q %s", r.code, r.header.Get("ETag"), r.body)
	}
}

// TestIfMatchWhoMayNotSeeLearnsNothing: a teacher of another subject gets
// 403 whatever If-Match says, never a 412 naming the class's version.
func TestIfMatchWhoMayNotSeeLearnsNothing(t *testing.T) {
	e := newEnv(t)
	s := e.school()
	const path = "/api/v1/classes/cs-a"
	const body = `{"subject": "cs101", "template": "sandbox", "students": ["al", "bo"]}`
	r := e.okAs(s.ada, http.StatusCreated, "PUT", path, body)
	v := e.class(r).Version
	for _, im := range []string{etag(v), etag(v + 7), "*"} {
		if eb := e.refusedAs2(s.bob, path, body, im); eb.Code != "forbidden" {
			t.Errorf("bob with If-Match %s: %+v, want forbidden", im, eb)
		}
	}
	// ada, with the version she has, saves.
	r = e.doAs(s.ada, "PUT", path, `{"subject": "cs101", "template": "sandbox", "students": ["al"]}`, "If-Match", etag(v))
	if r.code != http.StatusOK {
		t.Fatalf("ada with a fresh If-Match: %d %s", r.code, r.body)
	}
	e.staleRefused(s.ada, path, body, etag(v), e.class(r).Version)
}

// refusedAs2 sends a PUT with If-Match as tok that must be 403, writing
// nothing, and returns its error.
func (e *env) refusedAs2(tok, path, body, ifMatch string) apiErrorBody {
	e.t.Helper()
	before := e.world()
	r := e.doAs(tok, "PUT", path, body, "If-Match", ifMatch)
	if r.code != http.StatusForbidden || r.header.Get("ETag") != "" {
		e.t.Errorf("PUT %s with If-Match %s: %d ETag %q %s, want 403 without an ETag", path, ifMatch, r.code, r.header.Get("ETag"), r.body)
	}
	e.unchanged(before, "a refused PUT")
	return errorOf(e.t, r)
}

// TestIfMatchRace: teachers saving at the same moment from the same version
// through the real server: exactly one is written, every other is 412, and
// the class holds the winner's spec.
func TestIfMatchRace(t *testing.T) {
	e := newEnv(t)
	const path = "/api/v1/classes/race"
	r := e.do("PUT", path, spec)
	if r.code != http.StatusCreated {
		t.Fatal(r.code)
	}
	for round := range 3 {
		r := e.do("GET", path, "")
		im := r.header.Get("ETag")
		const writers = 6
		codes := make([]int, writers)
		var wg sync.WaitGroup
		for i := range writers {
			wg.Go(func() {
				body := `{"subject": "cs101", "template": "sandbox", "students": ["s` + strconv.Itoa(round) + `-` + strconv.Itoa(i) + `"]}`
				codes[i] = e.do("PUT", path, body, "If-Match", im).code
			})
		}
		wg.Wait()
		winner := -1
		for i, c := range codes {
			switch {
			case c == http.StatusOK && winner < 0:
				winner = i
			case c == http.StatusOK:
				t.Fatalf("round %d: two writers won from %s: %v", round, im, codes)
			case c != http.StatusPreconditionFailed:
				t.Fatalf("round %d: %v, want one 200 and the rest 412", round, codes)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: nobody won: %v", round, codes)
		}
		got := e.class(e.do("GET", path, ""))
		if want := "s" + strconv.Itoa(round) + "-" + strconv.Itoa(winner); len(got.Spec.Students) != 1 || got.Spec.Students[0] != want {
			t.Fatalf("round %d: stored %v, want the winner's %s", round, got.Spec.Students, want)
		}
	}
}
