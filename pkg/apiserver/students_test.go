package apiserver_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/homeroom/homeroom/pkg/api"
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
	refused("/api/v1/classes/one/students/mallory/restart", http.StatusNotFound, "not_on_roster")
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
