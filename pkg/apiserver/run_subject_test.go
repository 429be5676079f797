package apiserver_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
)

// collectedUnder stores one student's collection of a run as the controller
// does, its manifest recording the class's subject at the time ("" for a
// collection that recorded none: before subjects were recorded, or an
// orphan's).
func (e *env) collectedUnder(subject, class, run, student string, files map[string]string) {
	e.t.Helper()
	e.collectedWith(subject, class, run, student, 0, files)
}

// indexed writes a run's index as the controller does when the run
// completes, under the class's subject at that time.
func (e *env) indexed(subject, class, run string, students ...string) {
	e.t.Helper()
	started := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	if _, err := e.art.WriteRunIndex(context.Background(), class, run, students, started, started.Add(time.Minute), artifacts.RunInfo{Subject: subject}); err != nil {
		e.t.Fatal(err)
	}
}

// forget takes a class Down as the controller would and deletes it.
func (e *env) forget(class string) {
	e.t.Helper()
	cur, err := e.store.Get(context.Background(), class)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.store.UpdateStatus(context.Background(), class, cur.Version, api.ClassStatus{Phase: api.PhaseDown, ObservedGeneration: cur.Generation}); err != nil {
		e.t.Fatal(err)
	}
	e.ok(http.StatusNoContent, "DELETE", "/api/v1/classes/"+class, "")
}

// Runs are read by the subject they were collected under, not by the
// subject the class id has now: a class id deleted and registered again
// under another subject does not hand its earlier runs to the new
// subject's teachers. The earlier subject's teachers still read them, and
// a run that records no subject is an admin's alone.
func TestRunsFollowTheirSubjectAcrossReRegistration(t *testing.T) {
	e := newEnv(t)
	const class = "cs101-a"
	const (
		runLegacy   = "20261128T080000Z-01d01d" // before runs recorded a subject
		runCS       = runA                      // cs, complete
		runCSActive = runB                      // cs, still collecting: no index
		runMath     = "20261201T100000Z-ca1c00" // math, after re-registration
	)
	e.ok(http.StatusCreated, "PUT", "/api/v1/subjects/cs", "")
	e.ok(http.StatusCreated, "PUT", "/api/v1/subjects/math", "")
	e.ok(http.StatusCreated, "PUT", "/api/v1/users/cara", `{"role": "teacher", "subjects": ["cs"]}`)
	e.ok(http.StatusCreated, "PUT", "/api/v1/users/max", `{"role": "teacher", "subjects": ["math"]}`)
	cara, _ := e.issue("cara")
	maxT, _ := e.issue("max")

	// The class under cs, with its runs.
	e.ok(http.StatusCreated, "PUT", "/api/v1/rosters/"+class, `{"subject": "cs", "students": ["alice", "bob"]}`)
	e.okAs(cara, http.StatusCreated, "PUT", "/api/v1/classes/"+class, `{"subject": "cs", "template": "sandbox", "students": ["alice", "bob"]}`)
	e.collectedUnder("", class, runLegacy, "alice", map[string]string{"hello.py": "legacy\n"})
	e.indexed("", class, runLegacy, "alice")
	e.collectedUnder("cs", class, runCS, "alice", map[string]string{"hello.py": "cs final\n", "secret.txt": "cs only\n"})
	e.collectedUnder("cs", class, runCS, "bob", map[string]string{"hello.py": "bob\n"})
	e.indexed("cs", class, runCS, "alice", "bob")
	e.collectedUnder("cs", class, runCSActive, "bob", map[string]string{"late.py": "late\n"})
	e.okAs(cara, http.StatusOK, "GET", "/api/v1/classes/"+class+"/runs/"+runCS, "")

	// Deleted, and the id registered and created again under math by an
	// admin, with a run of its own.
	e.forget(class)
	e.ok(http.StatusOK, "PUT", "/api/v1/rosters/"+class, `{"subject": "math", "students": ["alice"]}`)
	e.ok(http.StatusCreated, "PUT", "/api/v1/classes/"+class, `{"subject": "math", "template": "sandbox", "students": ["alice"]}`)
	e.collectedUnder("math", class, runMath, "alice", map[string]string{"hello.py": "math final\n"})
	e.indexed("math", class, runMath, "alice")

	base := "/api/v1/classes/" + class
	runIDs := func(t *testing.T, tok string) []string {
		t.Helper()
		r := e.okAs(tok, http.StatusOK, "GET", base+"/runs", "")
		var ids []string
		for _, run := range decodeJSON[struct{ Items []artifacts.RunSummary }](t, r).Items {
			ids = append(ids, run.RunID+":"+run.Subject)
		}
		return ids
	}
	itemRuns := func(t *testing.T, tok, query string) []string {
		t.Helper()
		r := e.okAs(tok, http.StatusOK, "GET", base+"/artifacts"+query, "")
		var runs []string
		for _, it := range decodeJSON[struct{ Items []artifacts.Item }](t, r).Items {
			if !slices.Contains(runs, it.RunID) {
				runs = append(runs, it.RunID)
			}
		}
		return runs
	}
	refused := func(t *testing.T, tok, path string, code int, wantCode string) response {
		t.Helper()
		r := e.doAs(tok, "GET", path, "")
		if r.code != code || errorOf(t, r).Code != wantCode {
			t.Errorf("GET %s: %d %s, want %d %s", path, r.code, r.body, code, wantCode)
		}
		return r
	}

	// The math teacher: the class is hers now, its earlier runs are not.
	{
		if got := runIDs(t, maxT); !slices.Equal(got, []string{runMath + ":math"}) {
			t.Errorf("runs listed: %v, want only the math run", got)
		}
		if got := itemRuns(t, maxT, ""); !slices.Equal(got, []string{runMath}) {
			t.Errorf("artifacts of runs %v, want only the math run's", got)
		}
		for _, run := range []string{runLegacy, runCS, runCSActive} {
			// Exactly as a run that does not exist.
			r := refused(t, maxT, base+"/runs/"+run, http.StatusNotFound, "not_found")
			unknown := refused(t, maxT, base+"/runs/"+runUnknown, http.StatusNotFound, "not_found")
			if got, want := errorOf(t, r).Message, strings.ReplaceAll(errorOf(t, unknown).Message, runUnknown, run); got != want {
				t.Errorf("run %s refused as %q; an unknown run as %q", run, got, want)
			}
			refused(t, maxT, base+"/artifacts?run="+run, http.StatusNotFound, "not_found")
			refused(t, maxT, base+"/runs/"+run+"/archive", http.StatusNotFound, "not_found")
			refused(t, maxT, base+"/artifacts/alice/files/workspace/hello.py?run="+run, http.StatusNotFound, "not_found")
			refused(t, maxT, base+"/artifacts/bob/logs/container.log?run="+run, http.StatusNotFound, "not_found")
		}
		// The latest of her runs, never an earlier subject's copy.
		r := e.okAs(maxT, http.StatusOK, "GET", base+"/artifacts/alice/files/workspace/hello.py", "")
		if string(r.body) != "math final\n" || r.header.Get("X-Homeroom-Run-Id") != runMath {
			t.Errorf("latest file: %q from run %s", r.body, r.header.Get("X-Homeroom-Run-Id"))
		}
		refused(t, maxT, base+"/artifacts/alice/files/workspace/secret.txt", http.StatusNotFound, "not_found")
		refused(t, maxT, base+"/artifacts/bob/files/workspace/late.py", http.StatusNotFound, "not_found")
		e.okAs(maxT, http.StatusOK, "GET", base+"/runs/"+runMath, "")
	}

	// The cs teacher: the class is no longer hers, the cs runs still are.
	{
		if got := runIDs(t, cara); !slices.Equal(got, []string{runCS + ":cs", runCSActive + ":cs"}) {
			t.Errorf("runs listed: %v, want the cs runs", got)
		}
		if got := itemRuns(t, cara, ""); !slices.Equal(got, []string{runCS, runCSActive}) {
			t.Errorf("artifacts of runs %v, want the cs runs'", got)
		}
		if r := e.okAs(cara, http.StatusOK, "GET", base+"/runs/"+runCS, ""); decodeJSON[artifacts.RunIndex](t, r).Subject != "cs" {
			t.Errorf("cs run's index: %s", r.body)
		}
		if got := itemRuns(t, cara, "?run="+runCSActive); !slices.Equal(got, []string{runCSActive}) {
			t.Errorf("artifacts of the run under way: %v", got)
		}
		if r := e.okAs(cara, http.StatusOK, "GET", base+"/runs/"+runCS+"/archive", ""); r.header.Get("X-Homeroom-Run-Id") != runCS {
			t.Errorf("cs run's archive: %v", r.header)
		}
		r := e.okAs(cara, http.StatusOK, "GET", base+"/artifacts/alice/files/workspace/secret.txt?run="+runCS, "")
		if string(r.body) != "cs only\n" {
			t.Errorf("a cs file: %q", r.body)
		}
		r = e.okAs(cara, http.StatusOK, "GET", base+"/artifacts/alice/files/workspace/hello.py", "")
		if string(r.body) != "cs final\n" || r.header.Get("X-Homeroom-Run-Id") != runCS {
			t.Errorf("latest file: %q from run %s, want the cs run's", r.body, r.header.Get("X-Homeroom-Run-Id"))
		}
		// Neither the class nor these runs are hers: as any class not hers.
		for _, path := range []string{
			base + "/runs/" + runMath, base + "/runs/" + runLegacy, base + "/runs/" + runUnknown,
			base + "/artifacts?run=" + runMath, base + "/artifacts/alice/files/workspace/hello.py?run=" + runMath,
			base + "/runs/" + runMath + "/archive",
		} {
			refused(t, cara, path, http.StatusForbidden, "forbidden")
		}
		// A class with no run of hers is refused as before.
		refused(t, cara, "/api/v1/classes/nowhere/runs", http.StatusForbidden, "forbidden")
	}

	// An admin reads everything, the run without a subject included.
	{
		if got, want := runIDs(t, token), []string{runLegacy + ":", runCS + ":cs", runCSActive + ":cs", runMath + ":math"}; !slices.Equal(got, want) {
			t.Errorf("runs listed: %v, want %v", got, want)
		}
		if got := itemRuns(t, token, ""); len(got) != 4 {
			t.Errorf("artifacts of runs %v, want all four", got)
		}
		r := e.do("GET", base+"/artifacts/alice/files/workspace/hello.py?run="+runLegacy, "")
		if r.code != http.StatusOK || string(r.body) != "legacy\n" {
			t.Errorf("the run without a subject: %d %s", r.code, r.body)
		}
		if r := e.do("GET", base+"/runs/"+runLegacy+"/archive", ""); r.code != http.StatusOK {
			t.Errorf("the archive of the run without a subject: %d %s", r.code, r.body)
		}
	}
}
