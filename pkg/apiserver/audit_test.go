package apiserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
)

type auditPage struct {
	Items []api.AuditEntry
	Next  string
}

func (e *env) audit(tok, query string) auditPage {
	e.t.Helper()
	var p auditPage
	if err := json.Unmarshal(e.okAs(tok, 200, "GET", "/api/v1/audit"+query, "").body, &p); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// TestAuditTrailOfAFullCycle: every change of desired state in a class's
// life — written, changed, Up, expired by the controller, Up again, Down,
// deleted — is recorded with who, when, what and from → to, and the
// request that made it.
func TestAuditTrailOfAFullCycle(t *testing.T) {
	e := newEnv(t)
	s := e.school()
	ctx := context.Background()
	start := time.Now().Add(-time.Second)
	path := "/api/v1/classes/cs-a"
	requests := map[string]string{} // action → X-Request-Id of the request that made it

	step := func(action, method, path, body string, code int) {
		t.Helper()
		r := e.doAs(s.ada, method, path, body, "X-Request-Id", "req-"+strings.ReplaceAll(action, ".", "-"))
		if r.code != code {
			t.Fatalf("%s: %d %s", action, r.code, r.body)
		}
		requests[action] = r.header.Get("X-Request-Id")
	}
	controllerSees := func(phase api.Phase) {
		t.Helper()
		cur, _ := e.store.Get(ctx, "cs-a")
		if _, err := e.store.UpdateStatus(ctx, "cs-a", cur.Version, api.ClassStatus{Phase: phase, ObservedGeneration: cur.Generation}); err != nil {
			t.Fatal(err)
		}
	}

	step("class.create", "PUT", path, `{"subject": "cs101", "template": "sandbox", "students": ["al"], "ttlSeconds": 60}`, 201)
	step("class.update", "PUT", path, `{"subject": "cs101", "template": "sandbox", "students": ["al", "bo"], "ttlSeconds": 60}`, 200)
	step("class.up", "POST", path+"/up", "", 202)
	controllerSees(api.PhaseUp)
	// The TTL runs out: the controller takes it Down, as pkg/reconcile does.
	cur, _ := e.store.Get(ctx, "cs-a")
	if _, err := e.store.Expire(ctx, "cs-a", *cur.UpSince); err != nil {
		t.Fatal(err)
	}
	controllerSees(api.PhaseDown)
	r := e.doAs(s.ada, "POST", "/room/up-class", `{"classId": "cs-a", "subject": "cs101", "students": ["al", "bo"], "ttlSeconds": 60}`)
	if r.code != 202 {
		t.Fatalf("room up: %d %s", r.code, r.body)
	}
	step("class.down", "POST", path+"/down", "", 202)
	controllerSees(api.PhaseDown)
	step("class.delete", "DELETE", path, "", 204)
	// Repeats that change nothing are not changes.
	e.okAs(s.ada, 201, "PUT", path, `{"subject": "cs101", "template": "sandbox", "students": ["al"]}`)
	e.okAs(s.ada, 200, "PUT", path, `{"subject": "cs101", "template": "sandbox", "students": ["al"]}`)
	e.okAs(s.ada, 202, "POST", path+"/down", "")

	// The class's trail also holds its registration: the roster's entries.
	page := e.audit(s.ada, "?classId=cs-a")
	if last := page.Items[len(page.Items)-1]; last.Action != api.AuditRosterCreate || last.Actor.Name != "admin" {
		t.Errorf("the oldest entry of cs-a: %+v", last)
	}
	page.Items = page.Items[:len(page.Items)-1]
	var got []string
	for i := len(page.Items) - 1; i >= 0; i-- {
		a := page.Items[i]
		line := fmt.Sprintf("%s by %s/%s", a.Action, a.Actor.Name, a.Actor.Role)
		if a.From != nil {
			line += fmt.Sprintf(" from %s g%d %v", a.From.DesiredPhase, a.From.Generation, a.From.Spec.Students)
		}
		if a.To != nil {
			line += fmt.Sprintf(" to %s g%d %v", a.To.DesiredPhase, a.To.Generation, a.To.Spec.Students)
			if a.To.DownReason != "" {
				line += " " + a.To.DownReason
			}
		}
		got = append(got, line)
	}
	want := []string{
		"class.create by ada/teacher to Down g1 [al]",
		"class.update by ada/teacher from Down g1 [al] to Down g2 [al bo]",
		"class.up by ada/teacher from Down g2 [al bo] to Up g3 [al bo]",
		"class.expire by controller/controller from Up g3 [al bo] to Down g4 [al bo] TTLExpired",
		"class.up by ada/teacher from Down g4 [al bo] to Up g5 [al bo]",
		"class.down by ada/teacher from Up g5 [al bo] to Down g6 [al bo]",
		"class.delete by ada/teacher from Down g6 [al bo]",
		"class.create by ada/teacher to Down g1 [al]",
	}
	if !slices.Equal(got, want) {
		t.Errorf("trail:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Who, when and through which request.
	for _, a := range page.Items {
		if a.Time.Before(start) || a.Time.After(time.Now()) || a.Target != "class/cs-a" || a.ClassID != "cs-a" || !slices.Equal(a.Subjects, []string{"cs101"}) {
			t.Errorf("entry %+v", a)
		}
		if a.Actor.Name == "ada" {
			if a.Actor.TokenID != s.adaID || a.Actor.RequestID == "" || !strings.HasPrefix(a.Actor.Via, "P") && !strings.HasPrefix(a.Actor.Via, "D") {
				t.Errorf("ada's entry: %+v", a.Actor)
			}
		} else if a.Actor.TokenID != "" || a.Actor.Via != "" {
			t.Errorf("the controller's entry: %+v", a.Actor)
		}
	}
	for _, a := range page.Items {
		if id, ok := requests[a.Action]; ok && a.Actor.RequestID == id {
			delete(requests, a.Action)
			if a.Action == "class.up" && a.Actor.Via != "POST /api/v1/classes/cs-a/up" {
				t.Errorf("via %q", a.Actor.Via)
			}
		}
	}
	if len(requests) != 0 {
		t.Errorf("no entry with the request id of %v", requests)
	}

	// Filters.
	if p := e.audit(token, "?action=class.expire"); len(p.Items) != 1 || p.Items[0].Actor.Name != api.ControllerActor {
		t.Errorf("action=class.expire: %+v", p.Items)
	}
	if p := e.audit(token, "?actor=controller&classId=cs-a"); len(p.Items) != 1 {
		t.Errorf("actor=controller: %+v", p.Items)
	}
	if p := e.audit(token, "?subject=bio"); len(p.Items) != 2 || p.Items[0].Action != api.AuditRosterCreate || p.Items[1].Action != api.AuditSubjectCreate {
		t.Errorf("subject=bio: %+v", p.Items)
	}
	if p := e.audit(token, "?since="+url.QueryEscape(time.Now().Add(time.Hour).Format(time.RFC3339))); len(p.Items) != 0 {
		t.Errorf("since the future: %+v", p.Items)
	}
	if p := e.audit(token, "?until="+url.QueryEscape(start.Format(time.RFC3339Nano))); len(p.Items) != 0 {
		t.Errorf("until before it all: %+v", p.Items)
	}
	// Paging walks every entry once, newest first.
	all := e.audit(token, "?limit=1000")
	var paged []string
	next := ""
	for {
		q := "?limit=3"
		if next != "" {
			q += "&before=" + next
		}
		p := e.audit(token, q)
		for _, a := range p.Items {
			paged = append(paged, a.ID)
		}
		if p.Next == "" {
			break
		}
		next = p.Next
	}
	var ids []string
	for _, a := range all.Items {
		ids = append(ids, a.ID)
	}
	if !slices.Equal(paged, ids) || len(ids) < 15 || !slices.IsSortedFunc(ids, func(a, b string) int { return strings.Compare(b, a) }) {
		t.Errorf("paged %d entries, listed %d", len(paged), len(ids))
	}
	// The admin's own changes are there, the records' too.
	if p := e.audit(token, "?actor=admin&action=token.issue"); len(p.Items) != 2 {
		t.Errorf("tokens issued by the bootstrap admin: %+v", p.Items)
	}

	for _, q := range []string{
		"?nope=1", "?since=yesterday", "?until=2026-13-01T00:00:00Z", "?limit=0", "?limit=1001", "?limit=x",
		"?action=class.explode", "?before=x", "?classId=CS", "?subject=../etc", "?actor=A%20B", "?limit=1&limit=2",
	} {
		r := e.do("GET", "/api/v1/audit"+q, "")
		if r.code != 400 || errorOf(t, r).Code != "invalid_query" {
			t.Errorf("audit%s: %d %s", q, r.code, r.body)
		}
	}
}
