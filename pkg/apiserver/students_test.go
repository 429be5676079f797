package apiserver_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/apiserver"
	"github.com/homeroom/homeroom/pkg/policy"
	"github.com/homeroom/homeroom/pkg/store"
)

// TestOneStudentActions: a restart or a hand-in is recorded as desired state
// for a student on the roster of an Up class, audited; anything else is a
// clear 4xx and writes nothing.
func TestOneStudentActions(t *testing.T) {
	e := newEnv(t)
	if r := e.do("PUT", "/api/v1/classes/one", `{"subject": "cs", "template": "sandbox", "students": ["alice", "bob"]}`); r.code != http.StatusCreated {
		t.Fatal(r.code)
	}
	version := func() int64 {
		c, err := e.store.Get(context.Background(), "one")
		if err != nil {
			t.Fatal(err)
		}
		return c.Version
	}
	refused := func(path string, code int, errCode string) {
		t.Helper()
		before := version()
		r := e.do("POST", path, "")
		var body struct {
			Error struct{ Code, Message string }
		}
		json.Unmarshal(r.body, &body)
		if r.code != code || body.Error.Code != errCode || body.Error.Message == "" {
			t.Errorf("POST %s: %d %s, want %d %s", path, r.code, r.body, code, errCode)
		}
		if after := version(); after != before {
			t.Errorf("POST %s wrote the class", path)
		}
	}
	refused("/api/v1/classes/one/students/alice/restart", http.StatusConflict, "class_not_up")
	refused("/api/v1/classes/one/students/alice/collect", http.StatusConflict, "class_not_up")
	if r := e.do("POST", "/api/v1/classes/one/up", ""); r.code != http.StatusAccepted {
		t.Fatal(r.code)
	}
	refused("/api/v1/classes/one/students/mallory/restart", http.StatusUnprocessableEntity, "not_in_class")
	refused("/api/v1/classes/one/students/Alice!/collect", http.StatusBadRequest, "invalid_id")
	refused("/api/v1/classes/ghost/students/alice/collect", http.StatusNotFound, "not_found")

	for _, action := range []string{"restart", "collect"} {
		r := e.do("POST", "/api/v1/classes/one/students/alice/"+action, "")
		var c api.Class
		if err := json.Unmarshal(r.body, &c); r.code != http.StatusAccepted || err != nil {
			t.Fatalf("%s: %d %s", action, r.code, r.body)
		}
		d := c.PerStudent["alice"]
		if (action == "restart" && d.RestartAt == nil) || (action == "collect" && d.CollectAt == nil) {
			t.Errorf("%s: perStudent %+v", action, c.PerStudent)
		}
		if _, ok := c.PerStudent["bob"]; ok {
			t.Errorf("%s of alice touched bob: %+v", action, c.PerStudent)
		}
		entries, _, err := e.store.ListAudit(context.Background(), store.AuditQuery{ClassID: "one", Action: "student." + action})
		if err != nil || len(entries) != 1 || entries[0].Target != "class/one/student/alice" {
			t.Errorf("%s: audit %+v %v", action, entries, err)
		}
	}
}

// TestExtraTimeForOneStudent: a teacher gives one student extra time while
// the class is Up, and may move it while that time runs after the Down;
// bad requests are refused, and after the Down only that student keeps
// signing in to their sandbox.
func TestExtraTimeForOneStudent(t *testing.T) {
	e := newEnvWith(t, policy.Default(), apiserver.WithSignInFailureLimit(1000, 1000))
	upClass(e)
	ls := byStudent(e.links(token, "cs101-a", ""))
	alice, bob := e.follow(ls["alice"], ""), e.follow(ls["bob"], "")
	ext := "/api/v1/classes/cs101-a/students/alice/extend"
	for _, tc := range []struct{ body, code string }{
		{`{}`, "invalid_extension"},
		{`{"minutes": 30, "until": "2030-01-01T00:00:00Z"}`, "invalid_extension"},
		{`{"minutes": -5}`, "invalid_extension"},
		{`{"minutes": 100000}`, "invalid_extension"},
		{`{"until": "2001-01-01T00:00:00Z"}`, "invalid_extension"},
		{`{"until": "tomorrow"}`, "invalid_json"},
	} {
		r := e.do("POST", ext, tc.body)
		if r.code != http.StatusBadRequest || errorOf(t, r).Code != tc.code {
			t.Errorf("extend %s: %d %s, want 400 %s", tc.body, r.code, r.body, tc.code)
		}
	}
	r := e.do("POST", ext, `{"minutes": 30}`)
	var c api.Class
	if err := json.Unmarshal(r.body, &c); r.code != http.StatusAccepted || err != nil || c.PerStudent["alice"].Until == nil {
		t.Fatalf("extend: %d %s", r.code, r.body)
	}
	if d := time.Until(*c.PerStudent["alice"].Until); d < 29*time.Minute || d > 31*time.Minute {
		t.Errorf("alice's extra time ends in %s, want 30 min", d)
	}
	e.ok(http.StatusAccepted, "POST", "/api/v1/classes/cs101-a/down", "")
	if r := e.check(check{host: aliceHost, uri: "/", cookies: []string{alice}}); r.code != http.StatusOK {
		t.Errorf("alice's session during her extra time: %d %s", r.code, r.body)
	}
	if r := e.check(check{host: bobHost, uri: "/", cookies: []string{bob}}); r.code != http.StatusUnauthorized {
		t.Errorf("bob's session after the Down: %d %s", r.code, r.body)
	}
	// Moved while it runs; bob, without extra time, cannot be given any
	// once the class is Down.
	if r := e.do("POST", ext, `{"minutes": 45}`); r.code != http.StatusAccepted {
		t.Errorf("moving alice's extra time: %d %s", r.code, r.body)
	}
	if r := e.do("POST", "/api/v1/classes/cs101-a/students/bob/extend", `{"minutes": 10}`); r.code != http.StatusConflict || errorOf(t, r).Code != "class_not_up" {
		t.Errorf("bob after the Down: %d %s", r.code, r.body)
	}
}

// TestALateHandInForOneStudent: after a Down, a teacher gives one student a
// late hand-in; that student, and only that student, gets a new link and
// signs in with it until its end, and the links of the Up do not come back
// to life. Asked again, it moves the end and keeps the sign-in. Bad
// requests are refused and write nothing.
func TestALateHandInForOneStudent(t *testing.T) {
	e := newEnvWith(t, policy.Default(), apiserver.WithSignInFailureLimit(1000, 1000))
	upClass(e)
	ls := byStudent(e.links(token, "cs101-a", ""))
	late := "/api/v1/classes/cs101-a/students/alice/late"
	if r := e.do("POST", late, `{"minutes": 30}`); r.code != http.StatusConflict || errorOf(t, r).Code != "class_up" {
		t.Errorf("late hand-in of an Up class: %d %s", r.code, r.body)
	}
	e.ok(http.StatusAccepted, "POST", "/api/v1/classes/cs101-a/down", "")
	if r := e.do("POST", "/api/v1/classes/cs101-a/links", ""); r.code != http.StatusConflict || errorOf(t, r).Code != "not_up" {
		t.Errorf("links of a Down class without a late hand-in: %d %s", r.code, r.body)
	}
	for _, tc := range []struct{ path, body, code string }{
		{late, `{}`, "invalid_extension"},
		{late, `{"minutes": 100000}`, "invalid_extension"},
		{late, `{"until": "2001-01-01T00:00:00Z"}`, "invalid_extension"},
		{"/api/v1/classes/cs101-a/students/mallory/late", `{"minutes": 30}`, "not_in_class"},
	} {
		before, _ := e.store.Get(context.Background(), "cs101-a")
		r := e.do("POST", tc.path, tc.body)
		if r.code < 400 || r.code > 499 || errorOf(t, r).Code != tc.code {
			t.Errorf("POST %s %s: %d %s, want %s", tc.path, tc.body, r.code, r.body, tc.code)
		}
		if after, _ := e.store.Get(context.Background(), "cs101-a"); after.Version != before.Version {
			t.Errorf("POST %s %s wrote the class", tc.path, tc.body)
		}
	}

	r := e.do("POST", late, `{"minutes": 30}`)
	var c api.Class
	if err := json.Unmarshal(r.body, &c); r.code != http.StatusAccepted || err != nil {
		t.Fatalf("late: %d %s", r.code, r.body)
	}
	d := c.PerStudent["alice"]
	if d.LateAt == nil || d.LateUntil == nil || time.Until(*d.LateUntil) < 29*time.Minute || time.Until(*d.LateUntil) > 31*time.Minute {
		t.Fatalf("alice's late hand-in: %+v", d)
	}
	entries, _, err := e.store.ListAudit(context.Background(), store.AuditQuery{ClassID: "cs101-a", Action: api.AuditStudentLate})
	if err != nil || len(entries) != 1 || entries[0].Target != "class/cs101-a/student/alice" {
		t.Errorf("audit %+v %v", entries, err)
	}
	if r := e.do("POST", "/api/v1/classes/cs101-a/links", `{"students": ["bob"]}`); r.code != http.StatusConflict || errorOf(t, r).Code != "not_up" {
		t.Errorf("a link for bob, who has no late hand-in: %d %s", r.code, r.body)
	}
	fresh := e.links(token, "cs101-a", "")
	exp, _ := time.Parse(time.RFC3339Nano, string(fresh[0].ExpiresAt))
	if len(fresh) != 1 || fresh[0].Student != "alice" || exp.After(d.LateUntil.Add(time.Millisecond)) {
		t.Fatalf("links of the Down class: %+v, want alice's alone, ending with her late hand-in at %s", fresh, d.LateUntil)
	}
	alice := e.follow(fresh[0], "")
	if r := e.check(check{host: aliceHost, uri: "/", cookies: []string{alice}}); r.code != http.StatusOK {
		t.Errorf("alice's session during her late hand-in: %d %s", r.code, r.body)
	}
	u, _ := url.Parse(ls["alice"].URL)
	if r := e.check(check{host: u.Host, uri: u.RequestURI(), accept: "text/html"}); r.code == http.StatusFound {
		t.Error("alice's link from the Up signed her in to her late hand-in")
	}

	// Moved: the same request time, so her sign-in holds.
	r = e.do("POST", late, `{"minutes": 60}`)
	if err := json.Unmarshal(r.body, &c); r.code != http.StatusAccepted || err != nil {
		t.Fatalf("moving the late hand-in: %d %s", r.code, r.body)
	}
	if got := c.PerStudent["alice"]; !got.LateAt.Equal(*d.LateAt) || !got.LateUntil.After(*d.LateUntil) {
		t.Errorf("moved late hand-in %+v, want lateAt %s kept and a later end", got, d.LateAt)
	}
	if r := e.check(check{host: aliceHost, uri: "/", cookies: []string{alice}}); r.code != http.StatusOK {
		t.Errorf("alice's session after her late hand-in moved: %d %s", r.code, r.body)
	}
	// A new Up ends it.
	e.ok(http.StatusAccepted, "POST", "/api/v1/classes/cs101-a/up", "")
	if r := e.check(check{host: aliceHost, uri: "/", cookies: []string{alice}}); r.code != http.StatusUnauthorized {
		t.Errorf("alice's late session after a new Up: %d %s", r.code, r.body)
	}
}
