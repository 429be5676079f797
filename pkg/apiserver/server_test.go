package apiserver_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/internal/versitygw"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/apiserver"
	"github.com/homeroom/homeroom/pkg/artifacts"
	"github.com/homeroom/homeroom/pkg/policy"
	"github.com/homeroom/homeroom/pkg/store"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"
)

const token = "test-admin-token"

type env struct {
	t       *testing.T
	srv     *httptest.Server
	api     *apiserver.Server
	store   *store.Store
	art     *artifacts.Store
	uri, db string // the store's server and database, for tests that read it raw
	logs    *observer.ObservedLogs
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, policy.Default())
}

func newEnvWithPolicy(t *testing.T, pol *policy.Policy) *env {
	t.Helper()
	return newEnvWith(t, pol)
}

// newEnvWith serves the API over a store and an artifact store of the
// test's own. Rate limits are high unless opts set them: most tests fire
// requests as fast as they can.
func newEnvWith(t *testing.T, pol *policy.Policy, opts ...apiserver.Option) *env {
	t.Helper()
	return newEnvWrapped(t, pol, nil, opts...)
}

// newEnvWrapped is newEnvWith with the store the API sees wrapped, for tests
// that count or disturb its calls.
func newEnvWrapped(t *testing.T, pol *policy.Policy, wrap func(*store.Store) apiserver.Store, opts ...apiserver.Option) *env {
	t.Helper()
	uri, db := testenv.StoreURI(t)
	st := testenv.OpenStore(t, uri, db)
	emb, err := versitygw.StartEmbedded(context.Background(), t.TempDir(), "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emb.Stop(context.Background()) })
	art, err := artifacts.New(context.Background(), emb.Config("homeroom"))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	opts = append([]apiserver.Option{apiserver.WithRateLimit(10000, 10000), apiserver.WithAuthFailureLimit(10000, 10000)}, opts...)
	var apiStore apiserver.Store = st
	if wrap != nil {
		apiStore = wrap(st)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	log := zaptest.NewLogger(t).WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return zapcore.NewTee(c, core) }))
	s := apiserver.New(apiStore, art, pol, token, log, reg, reg, opts...)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(s.Close)
	return &env{t: t, srv: srv, api: s, store: st, art: art, uri: uri, db: db, logs: logs}
}

type response struct {
	code   int
	body   []byte
	header http.Header
}

// do sends a request with the bootstrap admin token; hdr are header
// name/value pairs, an empty value deleting the header.
func (e *env) do(method, path, body string, hdr ...string) response {
	e.t.Helper()
	return e.doAs(token, method, path, body, hdr...)
}

// doAs sends a request with tok as the bearer token.
func (e *env) doAs(tok, method, path, body string, hdr ...string) response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			req.Header.Del(hdr[i])
		} else {
			req.Header.Set(hdr[i], hdr[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{code: resp.StatusCode, body: b, header: resp.Header}
}

func (e *env) class(r response) api.Class {
	e.t.Helper()
	var c api.Class
	if err := json.Unmarshal(r.body, &c); err != nil {
		e.t.Fatalf("decode class from %s: %v", r.body, err)
	}
	return c
}

const spec = `{"subject": "cs101", "template": "sandbox", "students": ["alice", "bob"], "ttlSeconds": 7200}`

func TestClassLifecycle(t *testing.T) {
	e := newEnv(t)
	r := e.do("PUT", "/api/v1/classes/cs101-a", spec)
	if r.code != http.StatusCreated {
		t.Fatalf("create: %d %s", r.code, r.body)
	}
	c := e.class(r)
	if c.Generation != 1 || c.DesiredPhase != api.PhaseDown || c.Status.Phase != api.PhasePending || len(c.Spec.Students) != 2 {
		t.Fatalf("created class %+v", c)
	}
	if !strings.Contains(string(r.body), `"students":[]`) || !strings.Contains(string(r.body), `"conditions":[]`) {
		t.Errorf("empty status lists should be [] not null: %s", r.body)
	}
	if r := e.do("PUT", "/api/v1/classes/cs101-a", spec); r.code != http.StatusOK || e.class(r).Generation != 1 {
		t.Errorf("same spec again: %d gen %d", r.code, e.class(r).Generation)
	}
	r = e.do("POST", "/api/v1/classes/cs101-a/up", "")
	if r.code != http.StatusAccepted || e.class(r).DesiredPhase != api.PhaseUp || e.class(r).Generation != 2 {
		t.Fatalf("up: %d %s", r.code, r.body)
	}
	if r := e.do("DELETE", "/api/v1/classes/cs101-a", ""); r.code != http.StatusConflict || !strings.Contains(string(r.body), `"not_down"`) {
		t.Errorf("delete while Up: %d %s", r.code, r.body)
	}
	r = e.do("POST", "/api/v1/classes/cs101-a/down", "")
	if r.code != http.StatusAccepted || e.class(r).DesiredPhase != api.PhaseDown || e.class(r).Generation != 3 {
		t.Fatalf("down: %d %s", r.code, r.body)
	}
	if r := e.do("DELETE", "/api/v1/classes/cs101-a", ""); r.code != http.StatusConflict {
		t.Errorf("delete before the controller saw Down: %d %s", r.code, r.body)
	}
	// What the controller writes once everything is collected and removed.
	cur, _ := e.store.Get(context.Background(), "cs101-a")
	if _, err := e.store.UpdateStatus(context.Background(), "cs101-a", cur.Version,
		api.ClassStatus{Phase: api.PhaseDown, ObservedGeneration: cur.Generation}); err != nil {
		t.Fatal(err)
	}
	r = e.do("GET", "/api/v1/classes", "")
	var l struct{ Items []api.Class }
	json.Unmarshal(r.body, &l)
	if r.code != http.StatusOK || len(l.Items) != 1 || l.Items[0].Status.Phase != api.PhaseDown {
		t.Fatalf("list: %d %s", r.code, r.body)
	}
	if r := e.do("DELETE", "/api/v1/classes/cs101-a", ""); r.code != http.StatusNoContent {
		t.Fatalf("delete when Down: %d %s", r.code, r.body)
	}
	if r := e.do("GET", "/api/v1/classes/cs101-a", ""); r.code != http.StatusNotFound {
		t.Errorf("get after delete: %d", r.code)
	}
}

// The allowlist comes in the policy's order, not sorted: the teacher pages
// offer the first template by default, and the built-in policy's is the
// small sandbox, not the notebook.
func TestTemplatesInPolicyOrder(t *testing.T) {
	e := newEnv(t)
	r := e.do("GET", "/api/v1/templates", "")
	var l struct {
		Items []struct {
			Name               string   `json:"name"`
			CollectExcludeDirs []string `json:"collectExcludeDirs"`
		} `json:"items"`
	}
	if err := json.Unmarshal(r.body, &l); err != nil || r.code != 200 {
		t.Fatalf("templates: %d %s", r.code, r.body)
	}
	if len(l.Items) != 2 || l.Items[0].Name != "sandbox" || l.Items[1].Name != "notebook" {
		t.Fatalf("templates %+v, want sandbox then notebook", l.Items)
	}
	if len(l.Items[1].CollectExcludeDirs) == 0 || l.Items[0].CollectExcludeDirs != nil {
		t.Errorf("collect exclusions: sandbox %v, notebook %v", l.Items[0].CollectExcludeDirs, l.Items[1].CollectExcludeDirs)
	}
}

func TestTemplatesAndRoom(t *testing.T) {
	e := newEnv(t)
	r := e.do("GET", "/api/v1/templates", "")
	if r.code != 200 || !strings.Contains(string(r.body), `"name":"sandbox"`) || !strings.Contains(string(r.body), `"image":"homeroom/sandbox:dev"`) ||
		!strings.Contains(string(r.body), `"internet":false`) || !strings.Contains(string(r.body), `"pinned":false`) {
		t.Errorf("templates: %d %s", r.code, r.body)
	}
	r = e.do("POST", "/room/up-class", `{"classId": "lab1", "students": ["ann", "ben"], "subject": "bio"}`)
	if r.code != http.StatusAccepted || e.class(r).DesiredPhase != api.PhaseUp || e.class(r).Spec.Template != "sandbox" {
		t.Fatalf("room up: %d %s", r.code, r.body)
	}
	r = e.do("POST", "/room/down-class", `{"classId": "lab1"}`)
	if r.code != http.StatusAccepted || e.class(r).DesiredPhase != api.PhaseDown {
		t.Fatalf("room down: %d %s", r.code, r.body)
	}
}

func TestBadInputIsRejectedAndWritesNothing(t *testing.T) {
	e := newEnv(t)
	if r := e.do("PUT", "/api/v1/classes/existing", spec); r.code != http.StatusCreated {
		t.Fatal(r.code)
	}
	before, _ := e.store.Get(context.Background(), "existing")

	many := make([]string, api.MaxStudents+1)
	for i := range many {
		many[i] = "s" + strings.Repeat("x", i%5) + string(rune('a'+i%26)) + "-" + itoa(i)
	}
	huge, _ := json.Marshal(map[string]any{"subject": "cs", "template": "sandbox", "students": many})
	tests := []struct {
		desc, method, path, body string
		hdr                      []string
		code                     int
		errCode                  string
	}{
		{"upper-case class id", "PUT", "/api/v1/classes/CS101", spec, nil, 400, "invalid_id"},
		{"underscore in class id", "PUT", "/api/v1/classes/cs_101", spec, nil, 400, "invalid_id"},
		{"leading dash", "PUT", "/api/v1/classes/-cs", spec, nil, 400, "invalid_id"},
		{"unicode class id", "PUT", "/api/v1/classes/caf%C3%A9", spec, nil, 400, "invalid_id"},
		{"dot-dot class id", "PUT", "/api/v1/classes/..", spec, nil, 400, "invalid_id"},
		{"class id of 64 characters", "PUT", "/api/v1/classes/" + strings.Repeat("a", 64), spec, nil, 400, "invalid_id"},
		{"empty roster", "PUT", "/api/v1/classes/new", `{"subject": "cs", "template": "sandbox", "students": []}`, nil, 400, "invalid_spec"},
		{"missing roster", "PUT", "/api/v1/classes/new", `{"subject": "cs", "template": "sandbox"}`, nil, 400, "invalid_spec"},
		{"duplicated student", "PUT", "/api/v1/classes/new", `{"subject": "cs", "template": "sandbox", "students": ["al", "al"]}`, nil, 400, "invalid_spec"},
		{"path in a student id", "PUT", "/api/v1/classes/new", `{"subject": "cs", "template": "sandbox", "students": ["../al"]}`, nil, 400, "invalid_spec"},
		{"bad subject", "PUT", "/api/v1/classes/new", `{"subject": "CS 101", "template": "sandbox", "students": ["al"]}`, nil, 400, "invalid_spec"},
		{"negative ttl", "PUT", "/api/v1/classes/new", `{"subject": "cs", "template": "sandbox", "students": ["al"], "ttlSeconds": -1}`, nil, 400, "invalid_spec"},
		{"unknown template", "PUT", "/api/v1/classes/new", `{"subject": "cs", "template": "bitcoin-miner", "students": ["al"]}`, nil, 422, "unknown_template"},
		{"roster over the limit", "PUT", "/api/v1/classes/new", string(huge), nil, 400, "invalid_spec"},
		{"schedule in an unknown time zone", "PUT", "/api/v1/classes/new", sched(`{"timezone": "Mars/Olympus"}`), nil, 400, "invalid_schedule"},
		{"schedule ending before its start", "PUT", "/api/v1/classes/new", sched(`{"timezone": "UTC", "weekly": [{"days": ["mon"], "start": "10:30", "end": "09:00"}]}`), nil, 400, "invalid_schedule"},
		{"overlapping sessions", "PUT", "/api/v1/classes/new", sched(`{"timezone": "UTC", "sessions": [{"start": "2030-01-07T09:00:00Z", "end": "2030-01-07T11:00:00Z"}, {"start": "2030-01-07T10:00:00Z", "end": "2030-01-07T12:00:00Z"}]}`), nil, 400, "invalid_schedule"},
		{"schedule past the ttl", "PUT", "/api/v1/classes/new", `{"subject": "cs", "template": "sandbox", "students": ["al"], "ttlSeconds": 3600, "schedule": {"timezone": "UTC", "weekly": [{"days": ["mon"], "start": "09:00", "end": "10:30"}]}}`, nil, 400, "invalid_schedule"},
		{"schedule with a bad session time", "PUT", "/api/v1/classes/new", sched(`{"timezone": "UTC", "sessions": [{"start": "monday 9am", "end": "2030-01-07T11:00:00Z"}]}`), nil, 400, "invalid_json"},
		{"existing class given a bad schedule", "PUT", "/api/v1/classes/existing", sched(`{"timezone": "Europe/Nowhere"}`), nil, 400, "invalid_schedule"},
		{"truncated JSON", "PUT", "/api/v1/classes/new", `{"subject": "cs", "template": "sand`, nil, 400, "invalid_json"},
		{"wrong type", "PUT", "/api/v1/classes/new", `{"subject": "cs", "template": "sandbox", "students": "al"}`, nil, 400, "invalid_json"},
		{"unknown field", "PUT", "/api/v1/classes/new", `{"subject": "cs", "template": "sandbox", "students": ["al"], "image": "evil"}`, nil, 400, "invalid_json"},
		{"two objects", "PUT", "/api/v1/classes/new", spec + spec, nil, 400, "invalid_json"},
		{"not JSON", "PUT", "/api/v1/classes/new", `students=al`, nil, 400, "invalid_json"},
		{"oversized body", "PUT", "/api/v1/classes/new", `{"subject": "` + strings.Repeat("a", 2<<20) + `"}`, nil, 413, "too_large"},
		{"replace existing with bad spec", "PUT", "/api/v1/classes/existing", `{"subject": "cs", "template": "sandbox", "students": []}`, nil, 400, "invalid_spec"},
		{"up of an unknown class", "POST", "/api/v1/classes/ghost/up", "", nil, 404, "not_found"},
		{"down of an unknown class", "POST", "/api/v1/classes/ghost/down", "", nil, 404, "not_found"},
		{"get of an unknown class", "GET", "/api/v1/classes/ghost", "", nil, 404, "not_found"},
		{"delete of an unknown class", "DELETE", "/api/v1/classes/ghost", "", nil, 404, "not_found"},
		{"room up with a bad id", "POST", "/room/up-class", `{"classId": "A!", "students": ["al"], "subject": "cs"}`, nil, 400, "invalid_id"},
		{"room up without students", "POST", "/room/up-class", `{"classId": "new", "subject": "cs"}`, nil, 400, "invalid_spec"},
		{"room down of an unknown class", "POST", "/room/down-class", `{"classId": "ghost"}`, nil, 404, "not_found"},
		{"no token", "PUT", "/api/v1/classes/new", spec, []string{"Authorization", ""}, 401, "unauthorized"},
		{"wrong token", "POST", "/api/v1/classes/existing/up", "", []string{"Authorization", "Bearer nope"}, 401, "unauthorized"},
		{"basic auth", "GET", "/api/v1/classes", "", []string{"Authorization", "Basic YWRtaW46YWRtaW4="}, 401, "unauthorized"},
		{"artifact path escaping", "GET", "/api/v1/classes/existing/artifacts/alice/files/../../x", "", nil, 400, "invalid_path"},
		{"unknown route", "GET", "/api/v1/containers", "", nil, 404, "not_found"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			r := e.do(tc.method, tc.path, tc.body, tc.hdr...)
			if r.code != tc.code {
				t.Fatalf("status %d, want %d: %s", r.code, tc.code, r.body)
			}
			var body struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal(r.body, &body); err != nil || body.Error.Code != tc.errCode || body.Error.Message == "" {
				t.Errorf("error body %s, want code %q and a message", r.body, tc.errCode)
			}
		})
	}
	all, err := e.store.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || all[0].ID != "existing" || all[0].Version != before.Version {
		t.Errorf("bad input changed the store: %d classes, version %d -> %d", len(all), before.Version, all[0].Version)
	}
}

// sched is a valid spec with schedule s.
func sched(s string) string {
	return `{"subject": "cs", "template": "sandbox", "students": ["al"], "schedule": ` + s + `}`
}

func TestAScheduleIsStoredAsWrittenAndOnce(t *testing.T) {
	e := newEnv(t)
	body := sched(`{"timezone": "Europe/Berlin", "weekly": [{"days": ["mon", "wed"], "start": "09:00", "end": "10:30"}],
		"sessions": [{"start": "2027-01-05T10:00:00+01:00", "end": "2027-01-05T12:00:00+01:00"}], "except": ["2029-12-24"], "readyBeforeSeconds": 600}`)
	r := e.do("PUT", "/api/v1/classes/timed", body)
	if r.code != http.StatusCreated {
		t.Fatalf("%d %s", r.code, r.body)
	}
	var c api.Class
	if err := json.Unmarshal(r.body, &c); err != nil {
		t.Fatal(err)
	}
	s := c.Spec.Schedule
	if s == nil || s.Timezone != "Europe/Berlin" || len(s.Weekly) != 1 || len(s.Sessions) != 1 || !s.Sessions[0].Start.Equal(time.Date(2027, 1, 5, 9, 0, 0, 0, time.UTC)) ||
		s.ReadyBefore() != 10*time.Minute || c.ScheduledSince == nil {
		t.Fatalf("stored %+v, scheduledSince %v", s, c.ScheduledSince)
	}
	// The same schedule again (other offsets, same instants) is no change.
	again := strings.ReplaceAll(body, "2027-01-05T10:00:00+01:00", "2027-01-05T09:00:00Z")
	if r := e.do("PUT", "/api/v1/classes/timed", again); r.code != http.StatusOK {
		t.Fatalf("%d %s", r.code, r.body)
	}
	after, err := e.store.Get(context.Background(), "timed")
	if err != nil {
		t.Fatal(err)
	}
	if after.Generation != c.Generation || !after.ScheduledSince.Equal(*c.ScheduledSince) {
		t.Errorf("the same schedule changed the class: generation %d -> %d", c.Generation, after.Generation)
	}
	// The next sessions: two lessons a week at 09:00 in Berlin, each with
	// the time the controller starts bringing the class Up.
	r = e.do("GET", "/api/v1/classes/timed/schedule?days=14", "")
	var view api.ScheduleView
	if err := json.Unmarshal(r.body, &view); r.code != http.StatusOK || err != nil {
		t.Fatalf("%d %s", r.code, r.body)
	}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	if len(view.Sessions) < 3 || len(view.Sessions) > 5 || view.LeadSeconds < 600 {
		t.Fatalf("sessions %+v lead %v", view.Sessions, view.LeadSeconds)
	}
	for _, o := range view.Sessions {
		if l := o.Start.In(berlin); l.Format("15:04") != "09:00" || (l.Weekday() != time.Monday && l.Weekday() != time.Wednesday) ||
			o.Start.Sub(o.UpFrom) != time.Duration(view.LeadSeconds*float64(time.Second)) {
			t.Errorf("session %+v", o)
		}
	}
	for _, q := range []string{"days=0", "days=32", "days=x"} {
		if r := e.do("GET", "/api/v1/classes/timed/schedule?"+q, ""); r.code != http.StatusBadRequest {
			t.Errorf("%s: %d", q, r.code)
		}
	}
	if r := e.do("GET", "/api/v1/classes/ghost/schedule", ""); r.code != http.StatusNotFound {
		t.Errorf("unknown class: %d", r.code)
	}
}

func TestHealthAndMetricsNeedNoToken(t *testing.T) {
	e := newEnv(t)
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if r := e.do("GET", p, "", "Authorization", ""); r.code != 200 {
			t.Errorf("%s: %d %s", p, r.code, r.body)
		}
	}
	e.do("GET", "/api/v1/classes/ghost", "")
	r := e.do("GET", "/metrics", "")
	if !strings.Contains(string(r.body), `homeroom_http_requests_total{code="404",method="GET",route="/api/v1/classes/:id"} 1`) {
		t.Errorf("request metric missing or not by route:\n%s", r.body)
	}
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

// Work a lost node still holds is collected, once the node is back,
// through the class's record of it: deleting the class is refused while
// there is some, with what and where, unless the work is given up on
// purpose.
func TestDeleteKeepsAClassWithWorkOnALostNode(t *testing.T) {
	e := newEnv(t)
	if r := e.do("PUT", "/api/v1/classes/cs101-a", spec); r.code != http.StatusCreated {
		t.Fatalf("create: %d %s", r.code, r.body)
	}
	ctx := context.Background()
	cur, _ := e.store.Get(ctx, "cs101-a")
	since := time.Date(2026, 12, 1, 4, 13, 54, 0, time.UTC)
	if _, err := e.store.UpdateStatus(ctx, "cs101-a", cur.Version, api.ClassStatus{Phase: api.PhaseDown, ObservedGeneration: cur.Generation,
		LeftBehind: map[string][]api.LeftBehind{"bob": {{On: "ytee37jj84wl", Reason: "the node it was on is down", Since: since, RunID: "20261201T041400Z-abcdef"}}}}); err != nil {
		t.Fatal(err)
	}
	r := e.do("DELETE", "/api/v1/classes/cs101-a", "")
	if r.code != http.StatusConflict || !strings.Contains(string(r.body), `"work_left_behind"`) ||
		!strings.Contains(string(r.body), "bob's on node ytee37jj84wl (since 2026-12-01T04:13:54Z)") || !strings.Contains(string(r.body), "abandonLeftBehind=true") {
		t.Fatalf("delete with work on a lost node: %d %s", r.code, r.body)
	}
	if r := e.do("GET", "/api/v1/classes/cs101-a", ""); r.code != http.StatusOK || len(e.class(r).Status.LeftBehind["bob"]) != 1 {
		t.Fatalf("after the refusal: %d %s", r.code, r.body)
	}
	for _, q := range []string{"abandonLeftBehind=yes please", "abandonLeftBehind="} {
		r := e.do("DELETE", "/api/v1/classes/cs101-a?"+strings.ReplaceAll(q, " ", "%20"), "")
		if q == "abandonLeftBehind=" {
			if r.code != http.StatusConflict {
				t.Errorf("%s: %d %s, want the refusal", q, r.code, r.body)
			}
			continue
		}
		if r.code != http.StatusBadRequest || !strings.Contains(string(r.body), `"invalid_query"`) {
			t.Errorf("%s: %d %s, want 400", q, r.code, r.body)
		}
	}
	if r := e.do("DELETE", "/api/v1/classes/cs101-a?abandonLeftBehind=true", ""); r.code != http.StatusNoContent {
		t.Fatalf("delete giving the work up: %d %s", r.code, r.body)
	}
	if r := e.do("GET", "/api/v1/classes/cs101-a", ""); r.code != http.StatusNotFound {
		t.Errorf("after the delete: %d", r.code)
	}
}
