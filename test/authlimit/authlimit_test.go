// Package authlimit runs the real apiserver binary (embedded store and
// artifact store, no Docker; versitygw must be found) and checks the limit on requests without a
// valid token: it slows down whoever keeps failing, one client address at a
// time, and never refuses a valid token, however many failures come from the
// address its owner shares (a school's NAT, the TLS proxy in front of
// Homeroom, compose's port mapping).
package authlimit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/internal/versitygw"
)

// apiserver is one apiserver process of the test's own.
type apiserver struct {
	t     *testing.T
	url   string
	admin string
	proc  *testenv.Process
}

// binary builds the apiserver once for the package's tests.
var binary string

func apiserverBin(t *testing.T) string {
	t.Helper()
	if binary == "" {
		binary = filepath.Join(testenv.BuildBinaries(t, "apiserver"), "apiserver")
		// BuildBinaries builds into the first test's temporary directory.
		b, err := os.ReadFile(binary)
		if err != nil {
			t.Fatal(err)
		}
		dir, err := os.MkdirTemp("", "homeroom-authlimit-")
		if err != nil {
			t.Fatal(err)
		}
		binary = filepath.Join(dir, "apiserver")
		if err := os.WriteFile(binary, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return binary
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binary != "" {
		os.RemoveAll(filepath.Dir(binary))
	}
	os.Exit(code)
}

// env is what every apiserver of these tests runs with: the embedded
// services on addresses of its own, the limits at their defaults.
func env(t *testing.T, extra ...string) []string {
	data := t.TempDir()
	listen := testenv.FreeAddr(t)
	return append([]string{
		"HOMEROOM_DATA_DIR=" + data,
		"HOMEROOM_LISTEN=" + listen,
		"HOMEROOM_EMBEDDED_S3_ADDR=" + testenv.FreeAddr(t),
		"HOMEROOM_MONGO_URI=", "HOMEROOM_S3_ENDPOINT=", "HOMEROOM_ADMIN_TOKEN=",
		"HOMEROOM_RATE_LIMIT=", "HOMEROOM_RATE_BURST=",
		"HOMEROOM_AUTH_FAILURE_LIMIT=", "HOMEROOM_AUTH_FAILURE_BURST=",
		"HOMEROOM_TRUSTED_PROXIES=",
	}, extra...)
}

func valueOf(env []string, k string) string {
	v := ""
	for _, kv := range env {
		if rest, ok := strings.CutPrefix(kv, k+"="); ok {
			v = rest
		}
	}
	return v
}

func start(t *testing.T, extra ...string) *apiserver {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: builds and runs the apiserver")
	}
	// The embedded artifact store the apiserver runs is a versitygw child.
	if _, err := versitygw.Binary(); err != nil {
		testenv.Unavailable(t, "%v", err)
	}
	e := env(t, extra...)
	p := testenv.StartProcess(t, apiserverBin(t), e)
	url := "http://" + valueOf(e, "HOMEROOM_LISTEN")
	testenv.WaitHTTP(t, url+"/readyz")
	tok, err := os.ReadFile(filepath.Join(valueOf(e, "HOMEROOM_DATA_DIR"), "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	return &apiserver{t: t, url: url, admin: strings.TrimSpace(string(tok)), proc: p}
}

type answer struct {
	code       int
	retryAfter string
	body       []byte
}

// call sends a request as token (none when empty), with the header
// name/value pairs hdr, and returns the answer.
func (a *apiserver) call(token, method, path string, body any, hdr ...string) answer {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, a.url+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{code: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), body: b}
}

// teacher makes a teacher and returns a token of hers.
func (a *apiserver) teacher(name string) string {
	a.t.Helper()
	if r := a.call(a.admin, "PUT", "/api/v1/users/"+name, map[string]any{"role": "teacher", "subjects": []string{}}); r.code/100 != 2 {
		a.t.Fatalf("make teacher %s: %d %s", name, r.code, r.body)
	}
	r := a.call(a.admin, "POST", "/api/v1/users/"+name+"/tokens", map[string]any{"description": "laptop"})
	var tok struct{ Token string }
	if r.code/100 != 2 || json.Unmarshal(r.body, &tok) != nil || tok.Token == "" {
		a.t.Fatalf("issue a token to %s: %d %s", name, r.code, r.body)
	}
	return tok.Token
}

// guesses is what a classmate's script tries: well-formed tokens that
// authenticate nobody, garbage, and no token at all.
func guess(i int) string {
	switch i % 3 {
	case 0:
		return fmt.Sprintf("hrt_%016x_%s", i, strings.Repeat("A", 43))
	case 1:
		return "guess-" + strconv.Itoa(i)
	}
	return ""
}

// TestValidTokenOutlastsBadTokens is the issue: 200 requests with bad
// tokens from 127.0.0.1, the address the teacher's own requests come from,
// and her token (and the admin's) still answers 200, while the guesser is
// told to wait.
func TestValidTokenOutlastsBadTokens(t *testing.T) {
	a := start(t)
	ada := a.teacher("ada")
	limited := 0
	for i := range 200 {
		r := a.call(guess(i), "GET", "/api/v1/classes", nil)
		switch r.code {
		case http.StatusUnauthorized:
		case http.StatusTooManyRequests:
			limited++
			if s, err := strconv.Atoi(r.retryAfter); err != nil || s < 1 {
				t.Fatalf("429 without a Retry-After of whole seconds: %q %s", r.retryAfter, r.body)
			}
			if !strings.Contains(string(r.body), `"rate_limited"`) {
				t.Fatalf("429 body: %s", r.body)
			}
		default:
			t.Fatalf("bad token %d: %d %s", i, r.code, r.body)
		}
		// Her requests in between the guesses are never refused either.
		if i%50 == 49 {
			if r := a.call(ada, "GET", "/api/v1/whoami", nil); r.code != http.StatusOK {
				t.Fatalf("after %d bad tokens from her address, the teacher's token: %d %s", i+1, r.code, r.body)
			}
		}
	}
	// The defaults: 5 a second in bursts of 20. 200 requests take far less
	// than 36 seconds, so most are refused.
	if limited < 100 {
		t.Errorf("only %d of 200 bad-token requests were limited", limited)
	}
	if r := a.call(ada, "GET", "/api/v1/classes", nil); r.code != http.StatusOK {
		t.Errorf("after 200 bad tokens from her address, the teacher's token: %d %s", r.code, r.body)
	}
	if r := a.call(a.admin, "GET", "/api/v1/classes", nil); r.code != http.StatusOK {
		t.Errorf("after 200 bad tokens from its address, the admin token: %d %s", r.code, r.body)
	}
	// The guesser is still held to the rate: a token comes back every
	// 200 ms, so however slow the machine was since, a quick burst of
	// guesses meets a 429 within the burst's 20 and a few.
	limitedAgain := false
	for range 40 {
		if r := a.call("guess", "GET", "/api/v1/classes", nil); r.code == http.StatusTooManyRequests {
			limitedAgain = true
			break
		} else if r.code != http.StatusUnauthorized {
			t.Fatalf("a guess after the teacher's requests: %d %s", r.code, r.body)
		}
	}
	if !limitedAgain {
		t.Error("the guesser, 40 bad tokens after the teacher's requests, was never limited again")
	}
	m := a.call("", "GET", "/metrics", nil)
	if !strings.Contains(string(m.body), `homeroom_http_requests_total{code="429",method="GET",route="/api/v1/classes"}`) {
		t.Errorf("429s are not counted by route")
	}
}

// TestTrustedProxy runs the apiserver behind a proxy on 127.0.0.1, as the
// recommended TLS proxy is: the client's address comes from its
// X-Forwarded-For, so one client's failures do not limit the others behind
// the same proxy.
func TestTrustedProxy(t *testing.T) {
	a := start(t, "HOMEROOM_TRUSTED_PROXIES=127.0.0.1, 10.0.0.0/8")
	ada := a.teacher("ada")
	const guesser, other = "198.51.100.7", "203.0.113.9"
	limited := false
	for i := range 60 {
		r := a.call(guess(i), "GET", "/api/v1/classes", nil, "X-Forwarded-For", guesser)
		if r.code == http.StatusTooManyRequests && r.retryAfter != "" {
			limited = true
			break
		}
		if r.code != http.StatusUnauthorized {
			t.Fatalf("bad token %d: %d %s", i, r.code, r.body)
		}
	}
	if !limited {
		t.Fatal("60 bad tokens from one client behind the proxy were never limited")
	}
	// Another client behind the proxy has a limit of its own; so does a
	// client whose address a client-sent header only claims (the proxy
	// appends the address it saw).
	for _, xff := range []string{other, guesser + ", " + other} {
		if r := a.call("guess", "GET", "/api/v1/classes", nil, "X-Forwarded-For", xff); r.code != http.StatusUnauthorized {
			t.Errorf("a bad token from %q: %d %s", xff, r.code, r.body)
		}
	}
	if r := a.call(ada, "GET", "/api/v1/classes", nil, "X-Forwarded-For", guesser); r.code != http.StatusOK {
		t.Errorf("the teacher's token from the guesser's address: %d %s", r.code, r.body)
	}
}

// TestForwardedForIgnoredWithoutTrustedProxies: with no trusted proxies a
// client cannot escape its limit by claiming other addresses.
func TestForwardedForIgnoredWithoutTrustedProxies(t *testing.T) {
	a := start(t)
	for i := range 60 {
		r := a.call(guess(i), "GET", "/api/v1/classes", nil, "X-Forwarded-For", fmt.Sprintf("203.0.113.%d", i+1), "X-Real-IP", fmt.Sprintf("198.51.100.%d", i+1))
		if r.code == http.StatusTooManyRequests {
			return
		}
	}
	t.Fatal("a client sending a new X-Forwarded-For with each bad token was never limited")
}

// TestBadTrustedProxiesRefused: a list that does not parse stops the
// apiserver at startup, naming the variable and the bad entry.
func TestBadTrustedProxiesRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: builds and runs the apiserver")
	}
	for _, bad := range []string{"10.0.0.0/33", "127.0.0.1, proxy.example", "10.0.0.1,,10.0.0.2"} {
		p := testenv.StartProcess(t, apiserverBin(t), env(t, "HOMEROOM_TRUSTED_PROXIES="+bad))
		st := p.Wait(30 * time.Second)
		if st.Success() {
			t.Errorf("HOMEROOM_TRUSTED_PROXIES=%q: the apiserver started", bad)
			continue
		}
		if out := p.Output(); !strings.Contains(out, "HOMEROOM_TRUSTED_PROXIES") {
			t.Errorf("HOMEROOM_TRUSTED_PROXIES=%q: the error does not name it:\n%s", bad, out)
		}
	}
}
