package apiserver_test

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/apiserver"
	"github.com/homeroom/homeroom/pkg/policy"
)

// wrongToken is well formed, so that it is looked up, and authenticates
// nobody.
var wrongToken = "hrt_0123456789abcdef_" + strings.Repeat("A", 43)

// teacherToken makes a teacher through the store and returns her token.
func (e *env) teacherToken(name string) string {
	e.t.Helper()
	if _, _, err := e.store.PutUser(e.t.Context(), name, api.RoleTeacher, nil); err != nil {
		e.t.Fatal(err)
	}
	tok, _, err := e.store.IssueToken(e.t.Context(), name, "", nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// exhaust sends bad tokens (hdr as in doAs) until the answer is 429 and
// returns it; the limit of the tests is a burst of 3.
func (e *env) exhaust(hdr ...string) response {
	e.t.Helper()
	for i := range 10 {
		tok := []string{wrongToken, "guess", ""}[i%3]
		r := e.doAs(tok, "GET", "/api/v1/classes", "", hdr...)
		switch r.code {
		case http.StatusTooManyRequests:
			if i < 3 {
				e.t.Fatalf("refused after %d bad tokens, within the burst", i)
			}
			return r
		case http.StatusUnauthorized:
			if r.header.Get("WWW-Authenticate") == "" || errorOf(e.t, r).Code != "unauthorized" {
				e.t.Fatalf("401 without its challenge and error: %v %s", r.header, r.body)
			}
		default:
			e.t.Fatalf("bad token %d: %d %s", i, r.code, r.body)
		}
	}
	e.t.Fatalf("10 bad tokens (%v) were never limited", hdr)
	return response{}
}

// A valid token is checked before the limit on failures: however many bad
// tokens come from its address, it answers as it would have, and its own
// rate limit is the only one it meets.
func TestFailuresNeverLockOutValidTokens(t *testing.T) {
	e := newEnvWith(t, policy.Default(), apiserver.WithAuthFailureLimit(0.5, 3))
	ada := e.teacherToken("ada")

	r := e.exhaust()
	if errorOf(t, r).Code != "rate_limited" {
		t.Errorf("429 body: %s", r.body)
	}
	if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 || s > 2 {
		t.Errorf("Retry-After %q; at one every two seconds the next try is within two", r.header.Get("Retry-After"))
	}
	for range 20 {
		e.okAs(ada, 200, "GET", "/api/v1/whoami", "")
		e.ok2(200, "GET", "/api/v1/classes")
		if r := e.doAs("guess", "GET", "/api/v1/classes", ""); r.code != http.StatusTooManyRequests {
			t.Fatalf("the guesser between valid requests: %d %s", r.code, r.body)
		}
	}
	// No token at all is a failure too.
	if r := e.doAs("", "GET", "/api/v1/classes", ""); r.code != http.StatusTooManyRequests {
		t.Errorf("no token past the limit: %d %s", r.code, r.body)
	}
	// Open paths are never limited.
	for _, p := range []string{"/healthz", "/ui/"} {
		if r := e.doAs("guess", "GET", p, ""); r.code != 200 {
			t.Errorf("%s past the limit: %d", p, r.code)
		}
	}
	m := e.doAs(ada, "GET", "/metrics", "")
	for _, want := range []string{
		`homeroom_http_requests_total{code="429",method="GET",route="/api/v1/classes"}`,
		`homeroom_http_requests_total{code="401",method="GET",route="/api/v1/classes"} 3`,
		`homeroom_http_requests_total{code="200",method="GET",route="/api/v1/whoami"} 20`,
	} {
		if !strings.Contains(string(m.body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// A token revoked is a bad token from then on, counted with the others.
func TestRevokedTokenCountsAsFailure(t *testing.T) {
	e := newEnvWith(t, policy.Default(), apiserver.WithAuthFailureLimit(0.5, 3))
	ada := e.teacherToken("ada")
	e.okAs(ada, 200, "GET", "/api/v1/whoami", "")
	if err := e.store.DeleteUser(t.Context(), "ada"); err != nil {
		t.Fatal(err)
	}
	codes := []int{}
	for range 4 {
		codes = append(codes, e.doAs(ada, "GET", "/api/v1/whoami", "").code)
	}
	if fmt.Sprint(codes) != "[401 401 401 429]" {
		t.Errorf("a deleted user's token, four times: %v", codes)
	}
}

func mustCIDRs(t *testing.T, s ...string) []*net.IPNet {
	t.Helper()
	var nets []*net.IPNet
	for _, c := range s {
		_, n, err := net.ParseCIDR(c)
		if err != nil {
			t.Fatal(err)
		}
		nets = append(nets, n)
	}
	return nets
}

// Behind a trusted proxy (the test's client, on loopback) each client
// named by X-Forwarded-For has a limit of its own; what a client adds to
// the header in front of its address changes nothing.
func TestTrustedProxyLimitsEachClient(t *testing.T) {
	e := newEnvWith(t, policy.Default(), apiserver.WithAuthFailureLimit(0.5, 3),
		apiserver.WithTrustedProxies(mustCIDRs(t, "127.0.0.0/8", "::1/128")))
	ada := e.teacherToken("ada")
	const guesser, other = "198.51.100.7", "203.0.113.9"
	e.exhaust("X-Forwarded-For", guesser)
	for _, xff := range []string{guesser, other + ", " + guesser, "10.0.0.1," + guesser} {
		if r := e.doAs("guess", "GET", "/api/v1/classes", "", "X-Forwarded-For", xff); r.code != http.StatusTooManyRequests {
			t.Errorf("the guesser as %q: %d %s", xff, r.code, r.body)
		}
	}
	// Other clients behind the proxy, and the proxy's own address.
	for _, xff := range []string{other, guesser + ", " + other, ""} {
		if r := e.doAs("guess", "GET", "/api/v1/classes", "", "X-Forwarded-For", xff); r.code != http.StatusUnauthorized {
			t.Errorf("a bad token from %q: %d %s", xff, r.code, r.body)
		}
	}
	e.okAs(ada, 200, "GET", "/api/v1/whoami", "")
	if r := e.doAs(ada, "GET", "/api/v1/whoami", "", "X-Forwarded-For", guesser); r.code != 200 {
		t.Errorf("the teacher from the guesser's address: %d %s", r.code, r.body)
	}
}

// Without trusted proxies the client is the connection's peer: a client
// cannot escape its limit by claiming a new address in each request, nor
// use up someone else's by claiming theirs.
func TestSpoofedForwardedForIgnored(t *testing.T) {
	for name, opt := range map[string]apiserver.Option{
		"none":                apiserver.WithTrustedProxies(nil),
		"the peer not listed": apiserver.WithTrustedProxies(mustCIDRs(t, "10.0.0.0/8", "192.168.0.0/16", "fc00::/7")),
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnvWith(t, policy.Default(), apiserver.WithAuthFailureLimit(0.5, 3), opt)
			for i := range 3 {
				r := e.doAs(wrongToken, "GET", "/api/v1/classes", "",
					"X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i+1), "X-Real-IP", fmt.Sprintf("198.51.100.%d", i+1))
				if r.code != http.StatusUnauthorized {
					t.Fatalf("bad token %d: %d %s", i, r.code, r.body)
				}
			}
			r := e.doAs(wrongToken, "GET", "/api/v1/classes", "", "X-Forwarded-For", "203.0.113.200", "X-Real-IP", "198.51.100.200")
			if r.code != http.StatusTooManyRequests {
				t.Errorf("a fourth claimed address escaped the limit: %d %s", r.code, r.body)
			}
		})
	}
}
