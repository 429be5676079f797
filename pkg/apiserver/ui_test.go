package apiserver_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestUIServedWithoutToken: a browser loads the teacher pages before anyone
// has signed in, so they need no token, while the API behind them still does.
func TestUIServedWithoutToken(t *testing.T) {
	e := newEnv(t)

	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, path := range []string{"/", "/ui"} {
		r, err := noFollow.Get(e.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != http.StatusFound || r.Header.Get("Location") != "/ui/" {
			t.Errorf("GET %s: %d to %q, want a redirect to /ui/", path, r.StatusCode, r.Header.Get("Location"))
		}
	}
	page := e.do("GET", "/ui/", "", "Authorization", "")
	if page.code != http.StatusOK || !strings.Contains(string(page.body), `<script type="module" src="app.js">`) {
		t.Fatalf("GET /ui/: %d %.300s", page.code, page.body)
	}
	if csp := page.header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("the page has no strict Content-Security-Policy: %q", csp)
	}
	// A wrong token does not keep anyone from the sign-in page.
	if r := e.do("GET", "/ui/app.js", "", "Authorization", "Bearer wrong"); r.code != http.StatusOK ||
		!strings.Contains(r.header.Get("Content-Type"), "javascript") {
		t.Errorf("GET /ui/app.js with a wrong token: %d %q", r.code, r.header.Get("Content-Type"))
	}
	if r := e.do("GET", "/ui/nothing-here.js", "", "Authorization", ""); r.code != http.StatusNotFound {
		t.Errorf("a file that does not exist: %d", r.code)
	}
	if r := e.do("POST", "/ui/", "{}", "Authorization", ""); r.code == http.StatusOK {
		t.Errorf("POST /ui/ answered 200")
	}
	// The pages open nothing of the API to callers without a token.
	if r := e.do("GET", "/api/v1/classes", "", "Authorization", ""); r.code != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/classes without a token: %d", r.code)
	}
	if r := e.do("GET", "/ui/../api/v1/classes", "", "Authorization", ""); r.code == http.StatusOK && strings.Contains(string(r.body), "items") {
		t.Errorf("a path under /ui/ reached the API without a token: %s", r.body)
	}
}
