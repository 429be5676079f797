package apiserver_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/apiserver"
	"github.com/homeroom/homeroom/pkg/policy"
)

func TestRateLimitPerToken(t *testing.T) {
	e := newEnvWith(t, policy.Default(), apiserver.WithRateLimit(0.5, 3), apiserver.WithAuthFailureLimit(0.5, 3))
	ctx := t.Context()
	// Set up through the store: the admin's own requests are limited too.
	for _, u := range []string{"ada", "bob"} {
		if _, _, err := e.store.PutUser(ctx, u, api.RoleTeacher, nil); err != nil {
			t.Fatal(err)
		}
	}
	ada, _, err := e.store.IssueToken(ctx, "ada", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	bob, _, _ := e.store.IssueToken(ctx, "bob", "", nil)

	// One request every two seconds, three at once: the fourth of a quick
	// series is refused even on a slow machine.
	for range 3 {
		e.okAs(ada, 200, "GET", "/api/v1/classes", "")
	}
	r := e.doAs(ada, "GET", "/api/v1/classes", "")
	if r.code != http.StatusTooManyRequests || errorOf(t, r).Code != "rate_limited" {
		t.Fatalf("past the burst: %d %s", r.code, r.body)
	}
	secs, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || secs < 1 || secs > 2 {
		t.Errorf("Retry-After %q; at one every two seconds the next request is allowed within two", r.header.Get("Retry-After"))
	}
	// Refused requests do not use the bucket up further.
	for range 5 {
		e.doAs(ada, "GET", "/api/v1/classes", "")
	}
	// Other tokens have their own buckets; the bootstrap admin token too.
	e.okAs(bob, 200, "GET", "/api/v1/classes", "")
	e.ok2(200, "GET", "/api/v1/classes")
	// Health and metrics are never limited.
	for range 10 {
		if r := e.doAs(ada, "GET", "/healthz", ""); r.code != 200 {
			t.Fatalf("healthz: %d", r.code)
		}
	}
	time.Sleep(time.Duration(secs)*time.Second + 50*time.Millisecond)
	e.okAs(ada, 200, "GET", "/api/v1/classes", "")

	// Requests without a valid token are limited by client address, after
	// the token has been checked: valid tokens from the same address go on.
	for range 3 {
		if r := e.doAs("hrt_0123456789abcdef_"+strings.Repeat("A", 43), "GET", "/api/v1/classes", ""); r.code != 401 {
			t.Fatalf("a wrong token: %d", r.code)
		}
	}
	r = e.doAs("guess", "GET", "/api/v1/classes", "")
	if r.code != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Errorf("guessing past the limit: %d %s", r.code, r.body)
	}
	e.okAs(bob, 200, "GET", "/api/v1/classes", "")

	m := e.doAs(ada, "GET", "/metrics", "")
	if !strings.Contains(string(m.body), `homeroom_http_requests_total{code="429",method="GET",route="/api/v1/classes"}`) {
		t.Errorf("429s are not counted by route:\n%s", m.body)
	}
}
