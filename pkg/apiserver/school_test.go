package apiserver_test

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"testing"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/store"
)

// school is a small school set up through the API by the bootstrap admin:
// subjects cs101 and bio; ada teaches cs101 and bob teaches bio, each with a
// token; registered classes cs-a (cs101: al, bo, cy, di) and bio-a (bio: ed,
// fa).
type school struct {
	ada, bob     string // tokens
	adaID, bobID string // their ids
}

func (e *env) school() school {
	e.t.Helper()
	e.ok(http.StatusCreated, "PUT", "/api/v1/subjects/cs101", `{"title": "Intro to CS"}`)
	e.ok(http.StatusCreated, "PUT", "/api/v1/subjects/bio", ``)
	e.ok(http.StatusCreated, "PUT", "/api/v1/users/ada", `{"role": "teacher", "subjects": ["cs101"]}`)
	e.ok(http.StatusCreated, "PUT", "/api/v1/users/bob", `{"subjects": ["bio"]}`)
	e.ok(http.StatusCreated, "PUT", "/api/v1/rosters/cs-a", `{"subject": "cs101", "students": ["al", "bo", "cy", "di"]}`)
	e.ok(http.StatusCreated, "PUT", "/api/v1/rosters/bio-a", `{"subject": "bio", "students": ["ed", "fa"]}`)
	var s school
	s.ada, s.adaID = e.issue("ada")
	s.bob, s.bobID = e.issue("bob")
	return s
}

// issue makes a token for user and returns it and its id.
func (e *env) issue(user string) (string, string) {
	e.t.Helper()
	r := e.do("POST", "/api/v1/users/"+user+"/tokens", `{"description": "test"}`)
	if r.code != http.StatusCreated {
		e.t.Fatalf("issue a token for %s: %d %s", user, r.code, r.body)
	}
	var tok struct{ Token, ID string }
	if err := json.Unmarshal(r.body, &tok); err != nil || tok.Token == "" || tok.ID == "" {
		e.t.Fatalf("issued %s: %v", r.body, err)
	}
	return tok.Token, tok.ID
}

// okAs performs a request as tok that must answer code.
func (e *env) okAs(tok string, code int, method, path, body string) response {
	e.t.Helper()
	r := e.doAs(tok, method, path, body)
	if r.code != code {
		e.t.Fatalf("%s %s: %d %s, want %d", method, path, r.code, r.body, code)
	}
	return r
}

// errorOf decodes an error response.
func errorOf(t *testing.T, r response) apiErrorBody {
	t.Helper()
	var b struct{ Error apiErrorBody }
	if err := json.Unmarshal(r.body, &b); err != nil || b.Error.Code == "" || b.Error.Message == "" {
		t.Fatalf("not an error body: %d %s", r.code, r.body)
	}
	return b.Error
}

type apiErrorBody struct {
	Code    string
	Message string
	Details []struct {
		Line    int
		Value   string
		Message string
	}
}

// world is everything the store holds that a request could change: classes
// (without status and timestamps the controller touches), records, users,
// tokens and the audit trail.
type world struct {
	Classes  []api.Class
	Subjects []api.Subject
	Rosters  []api.Roster
	Users    []api.User
	Tokens   []api.Token
	Audit    []api.AuditEntry
}

func (e *env) world() world {
	e.t.Helper()
	ctx := context.Background()
	var w world
	var err error
	must := func(err error) {
		e.t.Helper()
		if err != nil {
			e.t.Fatal(err)
		}
	}
	w.Classes = e.snapshot()
	w.Subjects, err = e.store.ListSubjects(ctx, nil)
	must(err)
	w.Rosters, err = e.store.ListRosters(ctx, nil)
	must(err)
	w.Users, err = e.store.ListUsers(ctx)
	must(err)
	w.Tokens, err = e.store.ListTokens(ctx, "")
	must(err)
	w.Audit, _, err = e.store.ListAudit(ctx, store.AuditQuery{Limit: store.MaxAuditLimit})
	must(err)
	return w
}

// unchanged fails the test if the store differs from before.
func (e *env) unchanged(before world, what string) {
	e.t.Helper()
	after := e.world()
	if !reflect.DeepEqual(before, after) {
		e.t.Errorf("%s changed the store:\nbefore %+v\nafter  %+v", what, before, after)
	}
}
