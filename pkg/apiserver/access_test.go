package apiserver_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/labstack/echo/v4"
)

// servedRoutes lists what the server routes, as "METHOD /path/:param".
func (e *env) servedRoutes() []*echo.Route {
	e.t.Helper()
	ec, ok := e.api.Handler().(*echo.Echo)
	if !ok {
		e.t.Fatalf("Handler is a %T, not *echo.Echo", e.api.Handler())
	}
	var out []*echo.Route
	for _, r := range ec.Routes() {
		if r.Method != echo.RouteNotFound {
			out = append(out, r)
		}
	}
	return out
}

// fill puts values into a route's parameters.
func fill(path string, params map[string]string) string {
	parts := strings.Split(path, "/")
	for i, p := range parts {
		if v, ok := params[p]; ok {
			parts[i] = v
		}
	}
	return strings.Join(parts, "/")
}

// A valid body for each route that takes one, so that a refusal is about
// who asks, not what they sent.
func bodyFor(method, path, classID string) string {
	switch method + " " + path {
	case "PUT /api/v1/classes/:id":
		return `{"subject": "cs101", "template": "sandbox", "students": ["al"]}`
	case "POST /room/up-class":
		return `{"classId": "` + classID + `", "subject": "cs101", "students": ["al"]}`
	case "POST /room/down-class":
		return `{"classId": "` + classID + `"}`
	case "PUT /api/v1/rosters/:id":
		return `{"subject": "cs101", "students": ["al"]}`
	case "POST /api/v1/rosters/import":
		return "class,subject,student\n" + classID + ",cs101,al\n"
	case "PUT /api/v1/users/:name":
		return `{"role": "admin"}`
	case "PUT /api/v1/subjects/:subject":
		return `{"title": "mine now"}`
	case "POST /api/v1/users/:name/tokens":
		return `{}`
	}
	return ""
}

// TestNothingWithoutAToken: every route but health, readiness and metrics
// answers 401, and writes nothing, to a request without a valid token;
// unknown paths too, so that nobody learns which exist.
func TestNothingWithoutAToken(t *testing.T) {
	e := newEnv(t)
	s := e.school()
	e.ok(201, "PUT", "/api/v1/classes/cs-a", `{"subject": "cs101", "template": "sandbox", "students": ["al"]}`)
	before := e.world()
	params := map[string]string{":id": "cs-a", ":run": runA, ":student": "al", "*": "logs/container.log",
		":subject": "cs101", ":name": "ada", ":token": s.adaID}
	open := []string{"/healthz", "/readyz", "/metrics"}
	routes := e.servedRoutes()
	for _, rt := range routes {
		// The teacher pages are files every browser must load before
		// anyone signs in; TestUIServedWithoutToken covers them.
		// The sign-in check answers Traefik, which knows its secret path;
		// without it: 404 (TestSignInWithALink).
		if slices.Contains(open, rt.Path) || rt.Path == "/" || rt.Path == "/ui" || strings.HasPrefix(rt.Path, "/ui/") ||
			strings.HasPrefix(rt.Path, "/signin/check/") {
			continue
		}
		path := fill(rt.Path, params)
		for _, auth := range []string{"", "Bearer ", "Bearer nope", "Bearer " + s.ada + "x", "Basic YWRtaW46YWRtaW4=", "bearer" + token} {
			r := e.do(rt.Method, path, bodyFor(rt.Method, rt.Path, "cs-a"), "Authorization", auth)
			if r.code != http.StatusUnauthorized || errorOf(t, r).Code != "unauthorized" || r.header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s with %q: %d %s, want 401", rt.Method, path, auth, r.code, r.body)
			}
		}
	}
	for _, p := range []string{"/api/v1/nope", "/nope", "/api/v2/classes", "/room/nope"} {
		if r := e.do("GET", p, "", "Authorization", ""); r.code != http.StatusUnauthorized {
			t.Errorf("unknown path %s without a token: %d, want 401", p, r.code)
		}
	}
	for _, p := range open {
		if r := e.do("GET", p, "", "Authorization", ""); r.code != http.StatusOK {
			t.Errorf("%s without a token: %d", p, r.code)
		}
	}
	e.unchanged(before, "requests without a valid token")
	if len(routes) < 35 {
		t.Errorf("only %d routes served; the test should see them all", len(routes))
	}
}

// TestTeacherCannotReachAnotherTeachersClass: ada (cs101) against every
// route that names a class, for classes of bob's subject (bio) in every
// state — registered and Up, unregistered, registered but gone from the
// store — and for a class that exists nowhere: 403 each time, the same
// answer for all, and nothing written.
func TestTeacherCannotReachAnotherTeachersClass(t *testing.T) {
	e := newEnv(t)
	s := e.school()
	// bob's class, Up, with collected work.
	e.okAs(s.bob, 201, "PUT", "/api/v1/classes/bio-a", `{"subject": "bio", "template": "sandbox", "students": ["ed"]}`)
	e.okAs(s.bob, 202, "POST", "/api/v1/classes/bio-a/up", "")
	e.collectedUnder("bio", "bio-a", runA, "ed", map[string]string{"cells.txt": "mitosis\n"})
	// A bio class an admin made without registering it.
	e.ok(201, "PUT", "/api/v1/classes/bio-x", `{"subject": "bio", "template": "sandbox", "students": ["zz"]}`)
	// A registered bio class not in the store (never created, or deleted).
	e.ok(201, "PUT", "/api/v1/rosters/bio-gone", `{"subject": "bio", "students": ["ed"]}`)
	e.collectedUnder("bio", "bio-gone", runA, "ed", map[string]string{"old.txt": "old\n"})

	before := e.world()
	var classRoutes int
	for _, target := range []string{"bio-a", "bio-x", "bio-gone", "nowhere"} {
		params := map[string]string{":id": target, ":run": runA, ":student": "ed", "*": "logs/container.log"}
		for _, rt := range e.servedRoutes() {
			if !strings.Contains(rt.Path, ":id") && !strings.HasPrefix(rt.Path, "/room/") {
				continue
			}
			classRoutes++
			path := fill(rt.Path, params)
			r := e.doAs(s.ada, rt.Method, path, bodyFor(rt.Method, rt.Path, target))
			if r.code != http.StatusForbidden || errorOf(t, r).Code != "forbidden" {
				t.Errorf("ada %s %s: %d %s, want 403", rt.Method, path, r.code, r.body)
				continue
			}
			if msg := errorOf(t, r).Message; strings.Contains(msg, "exist") || strings.Contains(msg, "regist") {
				t.Errorf("ada %s %s: %q tells more than that it is not hers", rt.Method, path, msg)
			}
		}
		// Waiting on it is no way in either.
		if r := e.doAs(s.ada, "GET", "/api/v1/classes/"+target+"?wait=1s&resourceVersion=1", ""); r.code != http.StatusForbidden {
			t.Errorf("ada waits on %s: %d %s", target, r.code, r.body)
		}
	}
	if classRoutes < 4*14 {
		t.Errorf("only %d class routes tried", classRoutes)
	}

	// The rest of bob's world.
	for _, tc := range []struct{ method, path, body string }{
		{"GET", "/api/v1/subjects/bio", ""},
		{"GET", "/api/v1/audit?subject=bio", ""},
		{"GET", "/api/v1/users/bob/tokens", ""},
		{"DELETE", "/api/v1/tokens/" + s.bobID, ""},
		{"POST", "/api/v1/users/ada/tokens", "{}"},
		{"PUT", "/api/v1/users/ada/subjects/bio", ""},
		{"PUT", "/api/v1/users/ada", `{"subjects": ["cs101", "bio"]}`},
		{"GET", "/api/v1/users", ""},
		{"GET", "/api/v1/users/ada", ""},
		{"DELETE", "/api/v1/users/bob", ""},
		{"PUT", "/api/v1/subjects/bio", `{"title": "mine"}`},
		{"DELETE", "/api/v1/subjects/bio", ""},
		{"POST", "/api/v1/rosters/import", "class,subject,student\nbio-a,bio,al\n"},
		// A class of hers may not be moved into bob's subject.
		{"PUT", "/api/v1/classes/cs-a", `{"subject": "bio", "template": "sandbox", "students": ["ed"]}`},
	} {
		r := e.doAs(s.ada, tc.method, tc.path, tc.body)
		if r.code != http.StatusForbidden || errorOf(t, r).Code != "forbidden" {
			t.Errorf("ada %s %s: %d %s, want 403", tc.method, tc.path, r.code, r.body)
		}
	}
	e.unchanged(before, "ada's refused requests")

	// Listings show ada only what is hers.
	var classes struct{ Items []api.Class }
	json.Unmarshal(e.okAs(s.ada, 200, "GET", "/api/v1/classes", "").body, &classes)
	if len(classes.Items) != 0 {
		t.Errorf("ada lists %+v", classes.Items)
	}
	var rosters struct{ Items []api.Roster }
	json.Unmarshal(e.okAs(s.ada, 200, "GET", "/api/v1/rosters", "").body, &rosters)
	if len(rosters.Items) != 1 || rosters.Items[0].ClassID != "cs-a" {
		t.Errorf("ada lists rosters %+v", rosters.Items)
	}
	var subjects struct{ Items []api.Subject }
	json.Unmarshal(e.okAs(s.ada, 200, "GET", "/api/v1/subjects", "").body, &subjects)
	if len(subjects.Items) != 1 || subjects.Items[0].ID != "cs101" || !slices.Equal(subjects.Items[0].Teachers, []string{"ada"}) {
		t.Errorf("ada lists subjects %+v", subjects.Items)
	}
	var audit struct{ Items []api.AuditEntry }
	json.Unmarshal(e.okAs(s.ada, 200, "GET", "/api/v1/audit", "").body, &audit)
	for _, a := range audit.Items {
		if !slices.Contains(a.Subjects, "cs101") {
			t.Errorf("ada sees audit entry %+v", a)
		}
	}
	if len(audit.Items) == 0 {
		t.Error("ada sees no audit entry of cs101")
	}
	json.Unmarshal(e.okAs(s.ada, 200, "GET", "/api/v1/audit?classId=bio-a", "").body, &audit)
	if len(audit.Items) != 0 {
		t.Errorf("ada sees bio-a's audit: %+v", audit.Items)
	}

	// While bob sees and does all of it.
	json.Unmarshal(e.okAs(s.bob, 200, "GET", "/api/v1/classes", "").body, &classes)
	if len(classes.Items) != 2 || classes.Items[0].ID != "bio-a" || classes.Items[1].ID != "bio-x" {
		t.Errorf("bob lists %+v", classes.Items)
	}
	e.okAs(s.bob, 200, "GET", "/api/v1/classes/bio-a/artifacts/ed/logs/container.log", "")
	e.okAs(s.bob, 200, "GET", "/api/v1/classes/bio-gone/runs", "")
	e.okAs(s.bob, 202, "POST", "/api/v1/classes/bio-a/down", "")
}

func TestTeacherWorksOnHerOwnClasses(t *testing.T) {
	e := newEnv(t)
	s := e.school()

	who := e.okAs(s.ada, 200, "GET", "/api/v1/whoami", "")
	if string(who.body) != `{"name":"ada","role":"teacher","subjects":["cs101"],"tokenId":"`+s.adaID+`"}`+"\n" {
		t.Errorf("whoami: %s", who.body)
	}
	if r := e.do("GET", "/api/v1/whoami", ""); !strings.Contains(string(r.body), `"name":"admin","role":"admin"`) {
		t.Errorf("whoami with the bootstrap token: %s", r.body)
	}

	// Half the class for a lab.
	r := e.okAs(s.ada, 201, "PUT", "/api/v1/classes/cs-a", `{"subject": "cs101", "template": "sandbox", "students": ["al", "cy"]}`)
	if c := e.class(r); c.Spec.Subject != "cs101" || len(c.Spec.Students) != 2 {
		t.Errorf("created %+v", c)
	}
	e.okAs(s.ada, 202, "POST", "/api/v1/classes/cs-a/up", "")
	e.okAs(s.ada, 200, "GET", "/api/v1/classes/cs-a", "")
	e.okAs(s.ada, 200, "GET", "/api/v1/rosters/cs-a", "")
	e.okAs(s.ada, 200, "GET", "/api/v1/subjects/cs101", "")
	e.okAs(s.ada, 200, "GET", "/api/v1/classes/cs-a/runs", "")
	e.okAs(s.ada, 200, "GET", "/api/v1/templates", "")
	e.okAs(s.ada, 200, "GET", "/api/v1/openapi.json", "")
	e.okAs(s.ada, 202, "POST", "/room/down-class", `{"classId": "cs-a"}`)
	e.okAs(s.ada, 202, "POST", "/room/up-class", `{"classId": "cs-a", "subject": "cs101", "students": ["al", "bo", "cy", "di"]}`)
	e.okAs(s.ada, 202, "POST", "/api/v1/classes/cs-a/down", "")
	cur, _ := e.store.Get(context.Background(), "cs-a")
	if _, err := e.store.UpdateStatus(context.Background(), "cs-a", cur.Version, api.ClassStatus{Phase: api.PhaseDown, ObservedGeneration: cur.Generation}); err != nil {
		t.Fatal(err)
	}
	e.okAs(s.ada, 204, "DELETE", "/api/v1/classes/cs-a", "")

	// Her own tokens: listed without secrets, and hers to revoke.
	r = e.okAs(s.ada, 200, "GET", "/api/v1/users/ada/tokens", "")
	if strings.Contains(string(r.body), "hrt_") || !strings.Contains(string(r.body), s.adaID) {
		t.Errorf("ada's tokens: %s", r.body)
	}
	e.okAs(s.ada, 200, "DELETE", "/api/v1/tokens/"+s.adaID, "")
	if r := e.doAs(s.ada, "GET", "/api/v1/whoami", ""); r.code != http.StatusUnauthorized {
		t.Errorf("after revoking her own token: %d", r.code)
	}
}

// TestRevocationIsImmediate: a revoked token, a deleted user and a withdrawn
// subject all count from the very next request, a waiting one included.
func TestRevocationIsImmediate(t *testing.T) {
	e := newEnv(t)
	s := e.school()
	e.okAs(s.ada, 201, "PUT", "/api/v1/classes/cs-a", `{"subject": "cs101", "template": "sandbox", "students": ["al"]}`)

	// A second token of ada's keeps working when the first is revoked.
	other, _ := e.issue("ada")
	e.okAs(s.ada, 200, "GET", "/api/v1/classes/cs-a", "")
	r := e.ok2(200, "DELETE", "/api/v1/tokens/"+s.adaID)
	var tok api.Token
	json.Unmarshal(r.body, &tok)
	if tok.RevokedAt == nil || tok.RevokedBy != "admin" {
		t.Errorf("revoked token: %s", r.body)
	}
	for i := 0; i < 3; i++ { // not once, not cached
		if r := e.doAs(s.ada, "GET", "/api/v1/classes/cs-a", ""); r.code != http.StatusUnauthorized {
			t.Fatalf("a revoked token: %d %s", r.code, r.body)
		}
	}
	e.okAs(other, 200, "GET", "/api/v1/classes/cs-a", "")
	// Revoking again changes nothing.
	e.ok2(200, "DELETE", "/api/v1/tokens/"+s.adaID)

	// A subject withdrawn: 403 from the next request.
	e.ok2(200, "DELETE", "/api/v1/users/ada/subjects/cs101")
	if r := e.doAs(other, "GET", "/api/v1/classes/cs-a", ""); r.code != http.StatusForbidden {
		t.Errorf("after the subject was withdrawn: %d", r.code)
	}
	e.ok2(200, "PUT", "/api/v1/users/ada/subjects/cs101")
	e.okAs(other, 200, "GET", "/api/v1/classes/cs-a", "")

	// A token revoked while its request waits gets 401 when it answers.
	cur, _ := e.store.Get(context.Background(), "cs-a")
	done := make(chan response, 1)
	go func() {
		done <- e.doAs(other, "GET", "/api/v1/classes/cs-a?wait=20s&resourceVersion="+itoa(int(cur.Version)), "")
	}()
	time.Sleep(300 * time.Millisecond)
	var toks struct{ Items []api.Token }
	json.Unmarshal(e.ok2(200, "GET", "/api/v1/users/ada/tokens").body, &toks)
	for _, tk := range toks.Items {
		if tk.RevokedAt == nil {
			e.ok2(200, "DELETE", "/api/v1/tokens/"+tk.ID)
		}
	}
	if _, err := e.store.UpdateStatus(context.Background(), "cs-a", cur.Version, api.ClassStatus{Phase: api.PhaseProvisioning}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.code != http.StatusUnauthorized {
			t.Errorf("a wait whose token was revoked meanwhile: %d %s", r.code, r.body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the wait did not return on the change")
	}

	// A deleted user's tokens stop at once, and do not come back with a
	// user of the same name.
	third, _ := e.issue("bob")
	e.okAs(third, 200, "GET", "/api/v1/whoami", "")
	e.ok2(204, "DELETE", "/api/v1/users/bob")
	if r := e.doAs(third, "GET", "/api/v1/whoami", ""); r.code != http.StatusUnauthorized {
		t.Errorf("a deleted user's token: %d", r.code)
	}
	e.ok(201, "PUT", "/api/v1/users/bob", `{"subjects": ["bio"]}`)
	if r := e.doAs(third, "GET", "/api/v1/whoami", ""); r.code != http.StatusUnauthorized {
		t.Errorf("a deleted user's token, after the name was reused: %d", r.code)
	}
}

// ok2 is ok for a request without a body, returning the response.
func (e *env) ok2(code int, method, path string) response {
	e.t.Helper()
	return e.okAs(token, code, method, path, "")
}

func TestAdminsAndUsers(t *testing.T) {
	e := newEnv(t)
	s := e.school()
	// A named admin, with a token of their own, does what the bootstrap
	// token does, and is recorded by name.
	e.ok(201, "PUT", "/api/v1/users/root", `{"role": "admin"}`)
	root, rootID := e.issue("root")
	e.okAs(root, 201, "PUT", "/api/v1/subjects/art", `{"title": "Art"}`)
	e.okAs(root, 200, "GET", "/api/v1/users", "")
	if r := e.okAs(root, 409, "DELETE", "/api/v1/users/root", ""); errorOf(t, r).Code != "self" {
		t.Errorf("self-delete: %s", r.body)
	}
	var audit struct{ Items []api.AuditEntry }
	json.Unmarshal(e.ok2(200, "GET", "/api/v1/audit?actor=root").body, &audit)
	if len(audit.Items) != 1 || audit.Items[0].Action != api.AuditSubjectCreate || audit.Items[0].Actor.TokenID != rootID {
		t.Errorf("root's audit: %+v", audit.Items)
	}

	for _, tc := range []struct {
		desc, method, path, body string
		code                     int
		errCode                  string
	}{
		{"reserved name", "PUT", "/api/v1/users/admin", `{"role": "admin"}`, 400, "invalid_id"},
		{"reserved name controller", "PUT", "/api/v1/users/controller", `{}`, 400, "invalid_id"},
		{"unknown role", "PUT", "/api/v1/users/eve", `{"role": "root"}`, 400, "invalid_user"},
		{"unregistered subject", "PUT", "/api/v1/users/eve", `{"subjects": ["cs101", "alchemy"]}`, 422, "unknown_subject"},
		{"grant of an unregistered subject", "PUT", "/api/v1/users/ada/subjects/alchemy", ``, 422, "unknown_subject"},
		{"grant to nobody", "PUT", "/api/v1/users/nobody/subjects/cs101", ``, 404, "not_found"},
		{"token for nobody", "POST", "/api/v1/users/nobody/tokens", ``, 404, "not_found"},
		{"token lifetime", "POST", "/api/v1/users/ada/tokens", `{"expiresInSeconds": 99999999999}`, 400, "invalid_token"},
		{"revoke unknown token", "DELETE", "/api/v1/tokens/0123456789abcdef", ``, 404, "not_found"},
		{"bad token id", "DELETE", "/api/v1/tokens/xyz", ``, 400, "invalid_id"},
		{"subject in use", "DELETE", "/api/v1/subjects/cs101", ``, 409, "in_use"},
		{"roster of an unregistered subject", "PUT", "/api/v1/rosters/x", `{"subject": "alchemy", "students": []}`, 422, "unknown_subject"},
		{"delete nobody", "DELETE", "/api/v1/users/nobody", ``, 404, "not_found"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			before := e.world()
			r := e.do(tc.method, tc.path, tc.body)
			if r.code != tc.code || errorOf(t, r).Code != tc.errCode {
				t.Errorf("%d %s, want %d %s", r.code, r.body, tc.code, tc.errCode)
			}
			e.unchanged(before, tc.desc)
		})
	}

	// An expiring token.
	r := e.ok2(200, "GET", "/api/v1/users/ada")
	if !strings.Contains(string(r.body), `"subjects":["cs101"]`) {
		t.Errorf("ada: %s", r.body)
	}
	r = e.do("POST", "/api/v1/users/ada/tokens", `{"expiresInSeconds": 3}`)
	var issued struct {
		Token     string
		ExpiresAt *time.Time
	}
	json.Unmarshal(r.body, &issued)
	if r.code != 201 || issued.ExpiresAt == nil || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("issue an expiring token: %d %s", r.code, r.body)
	}
	e.okAs(issued.Token, 200, "GET", "/api/v1/whoami", "")
	time.Sleep(time.Until(*issued.ExpiresAt) + 50*time.Millisecond)
	if r := e.doAs(issued.Token, "GET", "/api/v1/whoami", ""); r.code != http.StatusUnauthorized {
		t.Errorf("an expired token: %d", r.code)
	}
	_ = s
}
