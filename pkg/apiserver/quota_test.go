package apiserver_test

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/policy"
)

// quotaPolicy makes each limit easy to reach on its own: sandbox is 0.5 CPU
// and 128 MiB a student, heavy 4 CPUs, fat 3000 MiB.
const quotaPolicy = `templates:
  - {name: sandbox, image: homeroom/sandbox:dev, port: 8080, memoryMiB: 128, cpus: 0.5, pids: 64}
  - {name: heavy, image: homeroom/sandbox:dev, port: 8080, memoryMiB: 128, cpus: 4, pids: 64}
  - {name: fat, image: homeroom/sandbox:dev, port: 8080, memoryMiB: 3000, cpus: 0.1, pids: 64}
defaults:
  maxStudentsPerClass: 4
  maxClassesUp: 2
  maxContainers: 6
  maxCPUs: 8
  maxMemoryMiB: 8192
subjects:
  cs101: {maxClassesUp: 1}
`

func newQuotaEnv(t *testing.T) *env {
	t.Helper()
	p, err := policy.Parse([]byte(quotaPolicy))
	if err != nil {
		t.Fatal(err)
	}
	return newEnvWithPolicy(t, p)
}

func classSpec(subject, template string, students ...string) string {
	b, _ := json.Marshal(api.ClassSpec{Subject: subject, Template: template, Students: students})
	return string(b)
}

// ok performs a request that must succeed with code.
func (e *env) ok(code int, method, path, body string) {
	e.t.Helper()
	if r := e.do(method, path, body); r.code != code {
		e.t.Fatalf("%s %s: %d %s", method, path, r.code, r.body)
	}
}

// snapshot is what the store holds: every class with its version, spec and
// desired phase.
func (e *env) snapshot() []api.Class {
	e.t.Helper()
	all, err := e.store.List(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	for i := range all {
		all[i].Status, all[i].UpdatedAt = api.ClassStatus{}, all[i].UpdatedAt.UTC()
		all[i].CreatedAt = all[i].CreatedAt.UTC()
	}
	return all
}

// refused performs a request that must be refused with 422 and errCode, a
// message containing want, and no change to the store.
func (e *env) refused(method, path, body, errCode, want string) {
	e.t.Helper()
	before := e.snapshot()
	r := e.do(method, path, body)
	var resp struct {
		Error struct{ Code, Message string }
	}
	json.Unmarshal(r.body, &resp)
	if r.code != http.StatusUnprocessableEntity || resp.Error.Code != errCode || !strings.Contains(resp.Error.Message, want) {
		e.t.Errorf("%s %s: %d %s; want 422 %s with %q", method, path, r.code, r.body, errCode, want)
	}
	if after := e.snapshot(); !reflect.DeepEqual(before, after) {
		e.t.Errorf("%s %s was refused but changed the store:\nbefore %+v\nafter  %+v", method, path, before, after)
	}
}

func TestQuotaLimitsAreEnforcedBeforeWriting(t *testing.T) {
	e := newQuotaEnv(t)

	t.Run("maxStudentsPerClass on a new class", func(t *testing.T) {
		e.refused("PUT", "/api/v1/classes/big", classSpec("bio", "sandbox", "a", "b", "c", "d", "e"), "quota_exceeded",
			"subject bio: 5 students in one class, at most 4 allowed (maxStudentsPerClass)")
	})
	t.Run("maxStudentsPerClass on room up", func(t *testing.T) {
		e.refused("POST", "/room/up-class", `{"classId": "big", "subject": "bio", "students": ["a", "b", "c", "d", "e"]}`, "quota_exceeded",
			"(maxStudentsPerClass)")
	})
	t.Run("a spec over the whole quota is refused while Down", func(t *testing.T) {
		e.refused("PUT", "/api/v1/classes/big", classSpec("art", "heavy", "a", "b", "c"), "quota_exceeded",
			"subject art: 12 CPUs Up, at most 8 allowed (maxCPUs)")
	})

	t.Run("maxClassesUp", func(t *testing.T) {
		e.ok(201, "PUT", "/api/v1/classes/cs-a", classSpec("cs101", "sandbox", "al"))
		e.ok(202, "POST", "/api/v1/classes/cs-a/up", "")
		e.ok(201, "PUT", "/api/v1/classes/cs-b", classSpec("cs101", "sandbox", "bo"))
		e.refused("POST", "/api/v1/classes/cs-b/up", "", "quota_exceeded", "subject cs101: 2 classes Up, at most 1 allowed (maxClassesUp)")
		e.refused("POST", "/room/up-class", `{"classId": "cs-c", "subject": "cs101", "students": ["cy"]}`, "quota_exceeded", "(maxClassesUp)")
		// A new roster for an existing class is not written either.
		e.refused("POST", "/room/up-class", `{"classId": "cs-b", "subject": "cs101", "students": ["bo", "cy"]}`, "quota_exceeded", "(maxClassesUp)")
		// Another subject has its own count.
		e.ok(202, "POST", "/room/up-class", `{"classId": "bio-a", "subject": "bio", "students": ["al"]}`)
		// Up again of the class already Up is admitted: it does not count itself.
		e.ok(202, "POST", "/api/v1/classes/cs-a/up", "")
	})

	t.Run("maxContainers", func(t *testing.T) {
		e.ok(202, "POST", "/room/up-class", `{"classId": "ch-a", "subject": "chem", "students": ["a", "b", "c", "d"]}`)
		e.ok(201, "PUT", "/api/v1/classes/ch-b", classSpec("chem", "sandbox", "e", "f", "g"))
		e.refused("POST", "/api/v1/classes/ch-b/up", "", "quota_exceeded", "subject chem: 7 containers Up, at most 6 allowed (maxContainers)")
	})

	t.Run("maxCPUs", func(t *testing.T) {
		e.ok(202, "POST", "/room/up-class", `{"classId": "art-a", "subject": "art", "template": "heavy", "students": ["a"]}`)
		e.ok(201, "PUT", "/api/v1/classes/art-b", classSpec("art", "heavy", "b", "c"))
		e.refused("POST", "/api/v1/classes/art-b/up", "", "quota_exceeded", "subject art: 12 CPUs Up, at most 8 allowed (maxCPUs)")
	})

	t.Run("maxMemoryMiB", func(t *testing.T) {
		e.ok(202, "POST", "/room/up-class", `{"classId": "geo-a", "subject": "geo", "template": "fat", "students": ["a", "b"]}`)
		e.ok(201, "PUT", "/api/v1/classes/geo-b", classSpec("geo", "fat", "c"))
		e.refused("POST", "/api/v1/classes/geo-b/up", "", "quota_exceeded", "subject geo: 9000 MiB of memory Up, at most 8192 allowed (maxMemoryMiB)")
	})

	t.Run("growing a live roster past quota", func(t *testing.T) {
		// chem has ch-a Up with 4 of its 6 containers.
		e.ok(202, "POST", "/room/up-class", `{"classId": "ch-c", "subject": "chem", "students": ["x", "y"]}`)
		e.refused("PUT", "/api/v1/classes/ch-c", classSpec("chem", "sandbox", "x", "y", "z"), "quota_exceeded",
			"subject chem: 7 containers Up, at most 6 allowed (maxContainers)")
		// Moving a live class into a full subject counts against that subject.
		e.refused("PUT", "/api/v1/classes/bio-a", classSpec("cs101", "sandbox", "al"), "quota_exceeded", "(maxClassesUp)")
		// The same roster, or a smaller one, is fine.
		e.ok(200, "PUT", "/api/v1/classes/ch-c", classSpec("chem", "sandbox", "x"))
		// A class that is Down may grow up to the per-class limits.
		e.ok(200, "PUT", "/api/v1/classes/ch-b", classSpec("chem", "sandbox", "e", "f", "g", "h"))
	})

	t.Run("Down is always allowed and frees the quota", func(t *testing.T) {
		e.ok(202, "POST", "/api/v1/classes/cs-a/down", "")
		e.ok(202, "POST", "/room/down-class", `{"classId": "cs-a"}`)
		e.ok(202, "POST", "/api/v1/classes/cs-b/up", "")
	})

	t.Run("unknown template at Up", func(t *testing.T) {
		// What a class looks like after its template left the policy.
		if _, _, err := e.store.PutSpec(context.Background(), "old", api.ClassSpec{Subject: "bio", Template: "retired", Students: []string{"al"}}); err != nil {
			t.Fatal(err)
		}
		e.refused("POST", "/api/v1/classes/old/up", "", "unknown_template", `template "retired" is not in the allowlist (fat, heavy, sandbox)`)
	})

	t.Run("rejections are counted by limit", func(t *testing.T) {
		r := e.do("GET", "/metrics", "")
		for _, want := range []string{
			`homeroom_quota_rejections_total{limit="maxStudentsPerClass"} 2`,
			`homeroom_quota_rejections_total{limit="maxClassesUp"} 4`,
			`homeroom_quota_rejections_total{limit="maxContainers"} 2`,
			`homeroom_quota_rejections_total{limit="maxCPUs"} 2`,
			`homeroom_quota_rejections_total{limit="maxMemoryMiB"} 1`,
		} {
			if !strings.Contains(string(r.body), want) {
				t.Errorf("metrics lack %s", want)
			}
		}
		if t.Failed() {
			t.Logf("metrics:\n%s", r.body)
		}
	})
}

func TestQuotaMetricStartsAtZero(t *testing.T) {
	e := newQuotaEnv(t)
	r := e.do("GET", "/metrics", "")
	for _, l := range policy.Limits() {
		if want := `homeroom_quota_rejections_total{limit="` + l + `"} 0`; !strings.Contains(string(r.body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	e.ok(201, "PUT", "/api/v1/classes/a", classSpec("cs101", "sandbox", "al"))
	e.refused("PUT", "/api/v1/classes/a", classSpec("cs101", "sandbox", "a", "b", "c", "d", "e"), "quota_exceeded", "(maxStudentsPerClass)")
	r = e.do("GET", "/metrics", "")
	if !strings.Contains(string(r.body), `homeroom_quota_rejections_total{limit="maxStudentsPerClass"} 1`) {
		t.Errorf("the refusal was not counted:\n%s", r.body)
	}
}
