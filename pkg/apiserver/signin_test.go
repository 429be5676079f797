package apiserver_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/apiserver"
	"github.com/homeroom/homeroom/pkg/config"
	"github.com/homeroom/homeroom/pkg/policy"
	"github.com/homeroom/homeroom/pkg/signin"
)

// These tests ask the sign-in check exactly as Traefik's forwardAuth does
// (test/signin does it through a real Traefik and a real browser).

type link struct {
	Student, Holder, URL, ExpiresAt string
}

func (e *env) links(tok, class, body string) []link {
	e.t.Helper()
	r := e.okAs(tok, http.StatusOK, "POST", "/api/v1/classes/"+class+"/links", body)
	var out struct{ Items []link }
	if err := json.Unmarshal(r.body, &out); err != nil {
		e.t.Fatal(err)
	}
	return out.Items
}

// check is one forwardAuth request for method uri on host, with cookies
// (name=value pairs) and from client.
type check struct {
	host, uri, accept, client string
	cookies                   []string
}

func (e *env) check(c check) response {
	e.t.Helper()
	sec, err := e.store.SignInSecrets(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", e.srv.URL+config.SignInCheckPath+sec.ForwardAuth, nil)
	req.Header.Set("X-Forwarded-Host", c.host)
	req.Header.Set("X-Forwarded-Uri", c.uri)
	req.Header.Set("X-Forwarded-Method", "GET")
	req.Header.Set("X-Forwarded-Proto", "http")
	if c.client == "" {
		c.client = "10.0.0.7"
	}
	req.Header.Set("X-Forwarded-For", c.client)
	if c.accept != "" {
		req.Header.Set("Accept", c.accept)
	}
	if len(c.cookies) > 0 {
		req.Header.Set("Cookie", strings.Join(c.cookies, "; "))
	}
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return response{code: resp.StatusCode, body: body, header: resp.Header}
}

// follow signs in with a link's URL as a browser would and returns the
// session cookie set.
func (e *env) follow(l link, client string) string {
	e.t.Helper()
	u, err := url.Parse(l.URL)
	if err != nil {
		e.t.Fatal(err)
	}
	r := e.check(check{host: u.Host, uri: u.RequestURI(), accept: "text/html", client: client})
	if r.code != http.StatusFound || r.header.Get("Location") != "/" {
		e.t.Fatalf("following %s: %d %s %v", l.URL, r.code, r.body, r.header)
	}
	for _, ck := range (&http.Response{Header: r.header}).Cookies() {
		if ck.Name == signin.CookieName {
			if !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.Domain != "" {
				e.t.Errorf("session cookie %+v: want HttpOnly, SameSite=Lax, host-only, Path=/", ck)
			}
			return ck.Name + "=" + ck.Value
		}
	}
	e.t.Fatalf("no session cookie in %v", r.header)
	return ""
}

const aliceHost, bobHost = "alice.cs101-a.lab.localhost", "bob.cs101-a.lab.localhost"

func upClass(e *env) {
	e.t.Helper()
	e.ok(http.StatusCreated, "PUT", "/api/v1/classes/cs101-a", spec)
	e.ok(http.StatusAccepted, "POST", "/api/v1/classes/cs101-a/up", "")
}

func byStudent(ls []link) map[string]link {
	m := map[string]link{}
	for _, l := range ls {
		m[l.Student] = l
	}
	return m
}

func TestSignInWithALink(t *testing.T) {
	e := newEnv(t)
	upClass(e)
	ls := byStudent(e.links(token, "cs101-a", ""))
	if len(ls) != 2 || !strings.HasPrefix(ls["alice"].URL, "http://"+aliceHost+"/.homeroom/signin/hrl_") || ls["alice"].Holder != "alice" {
		t.Fatalf("links %+v", ls)
	}
	alice := e.follow(ls["alice"], "")

	t.Run("her session reaches her sandbox, without Homeroom's cookie", func(t *testing.T) {
		r := e.check(check{host: aliceHost, uri: "/files/x", cookies: []string{"_xsrf=abc", alice, "theme=dark"}})
		if r.code != http.StatusOK {
			t.Fatalf("%d %s", r.code, r.body)
		}
		if got := r.header.Get("Cookie"); got != "_xsrf=abc; theme=dark" {
			t.Errorf("Cookie passed to the sandbox = %q", got)
		}
	})
	t.Run("on bob's host it is refused with 403", func(t *testing.T) {
		r := e.check(check{host: bobHost, uri: "/", accept: "text/html", cookies: []string{alice}})
		if r.code != http.StatusForbidden || !strings.Contains(string(r.body), "not your sandbox") {
			t.Fatalf("%d %s", r.code, r.body)
		}
	})
	t.Run("alice's link followed on bob's host signs nobody in", func(t *testing.T) {
		u, _ := url.Parse(ls["alice"].URL)
		r := e.check(check{host: bobHost, uri: u.RequestURI()})
		if r.code != http.StatusForbidden || r.header.Get("Set-Cookie") != "" {
			t.Fatalf("%d %s %v", r.code, r.body, r.header)
		}
	})
	t.Run("no cookie: a browser gets the sign-in page, a script 401", func(t *testing.T) {
		r := e.check(check{host: aliceHost, uri: "/", accept: "text/html,application/xhtml+xml"})
		if r.code != http.StatusUnauthorized || !strings.Contains(string(r.body), "Ask your teacher for your personal link") ||
			!strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
			t.Fatalf("%d %s", r.code, r.body)
		}
		r = e.check(check{host: aliceHost, uri: "/files/x"})
		if r.code != http.StatusUnauthorized || !strings.Contains(string(r.body), `"unauthorized"`) {
			t.Fatalf("%d %s", r.code, r.body)
		}
	})
	t.Run("tampered, forged and malformed secrets are refused", func(t *testing.T) {
		name, value, _ := strings.Cut(alice, "=")
		flipped := []byte(value)
		flipped[len(flipped)-3] ^= 1
		for _, ck := range []string{
			name + "=" + string(flipped), name + "=" + value[:len(value)-1], name + "=" + strings.Repeat("A", 5000),
			name + "=hrs_" + strings.Repeat("x", 43), name + "=" + strings.Replace(value, "hrs_", "hrl_", 1),
		} {
			if r := e.check(check{host: aliceHost, uri: "/", cookies: []string{ck}}); r.code != http.StatusUnauthorized {
				t.Errorf("cookie %.40s…: %d %s", ck, r.code, r.body)
			}
		}
		for _, uri := range []string{"/.homeroom/signin/", "/.homeroom/signin/hrl_" + strings.Repeat("A", 43),
			"/.homeroom/signin/" + strings.Repeat("%41", 3000), "/.homeroom/signin/../../x", "/.homeroom/whatever"} {
			r := e.check(check{host: aliceHost, uri: uri, client: "10.9.9.9"})
			if r.code < 400 || r.header.Get("Set-Cookie") != "" && !strings.Contains(r.header.Get("Set-Cookie"), "Max-Age=0") {
				t.Errorf("%.40s: %d %v", uri, r.code, r.header)
			}
		}
	})
	t.Run("a host that is no student's is refused", func(t *testing.T) {
		for _, h := range []string{"lab.localhost", "x.lab.localhost", "Alice..lab.localhost", "alice.cs101-a.evil.test", ""} {
			if r := e.check(check{host: h, uri: "/", cookies: []string{alice}}); r.code != http.StatusBadRequest {
				t.Errorf("host %q: %d", h, r.code)
			}
		}
	})
	t.Run("the check is not served without Traefik's secret", func(t *testing.T) {
		r := e.doAs("", "GET", config.SignInCheckPath+"guess", "", "X-Forwarded-Host", aliceHost, "X-Forwarded-Uri", "/", "Cookie", alice)
		if r.code != http.StatusNotFound {
			t.Fatalf("%d %s", r.code, r.body)
		}
	})

	t.Run("a re-issued link ends the old link and its sessions", func(t *testing.T) {
		bob := e.follow(ls["bob"], "")
		fresh := e.links(token, "cs101-a", `{"students": ["alice"]}`)
		if len(fresh) != 1 || fresh[0].URL == ls["alice"].URL {
			t.Fatalf("re-issued %+v", fresh)
		}
		if r := e.check(check{host: aliceHost, uri: "/", cookies: []string{alice}}); r.code != http.StatusUnauthorized {
			t.Errorf("old session: %d %s", r.code, r.body)
		}
		u, _ := url.Parse(ls["alice"].URL)
		if r := e.check(check{host: aliceHost, uri: u.RequestURI()}); r.code != http.StatusUnauthorized {
			t.Errorf("old link: %d %s", r.code, r.body)
		}
		if r := e.check(check{host: bobHost, uri: "/", cookies: []string{bob}}); r.code != http.StatusOK {
			t.Errorf("bob's session ended with alice's link: %d %s", r.code, r.body)
		}
		alice = e.follow(fresh[0], "")
		if r := e.check(check{host: aliceHost, uri: "/", cookies: []string{alice}}); r.code != http.StatusOK {
			t.Errorf("new session: %d %s", r.code, r.body)
		}
	})

	t.Run("signing out ends the session and never reaches the sandbox", func(t *testing.T) {
		other := e.follow(ls["bob"], "")
		r := e.check(check{host: bobHost, uri: "/.homeroom/signout", cookies: []string{other}})
		if r.code != http.StatusSeeOther || !strings.Contains(r.header.Get("Set-Cookie"), signin.CookieName+"=;") {
			t.Fatalf("sign out: %d %v", r.code, r.header)
		}
		if r := e.check(check{host: bobHost, uri: "/", cookies: []string{other}}); r.code != http.StatusUnauthorized {
			t.Errorf("after signing out: %d %s", r.code, r.body)
		}
	})

	t.Run("a student taken off the roster is signed out", func(t *testing.T) {
		carolSpec := strings.Replace(spec, `"alice", "bob"`, `"alice", "bob", "carol"`, 1)
		e.ok(http.StatusOK, "PUT", "/api/v1/classes/cs101-a", carolSpec)
		carol := e.follow(e.links(token, "cs101-a", `{"students": ["carol"]}`)[0], "")
		const carolHost = "carol.cs101-a.lab.localhost"
		if r := e.check(check{host: carolHost, uri: "/", cookies: []string{carol}}); r.code != http.StatusOK {
			t.Fatalf("carol signed in: %d %s", r.code, r.body)
		}
		e.ok(http.StatusOK, "PUT", "/api/v1/classes/cs101-a", spec)
		if r := e.check(check{host: carolHost, uri: "/", cookies: []string{carol}}); r.code != http.StatusUnauthorized {
			t.Errorf("carol off the roster: %d %s", r.code, r.body)
		}
		if r := e.check(check{host: aliceHost, uri: "/", cookies: []string{alice}}); r.code != http.StatusOK {
			t.Errorf("alice after carol left: %d %s", r.code, r.body)
		}
	})

	t.Run("thousands of guesses are limited without locking out a real student", func(t *testing.T) {
		limited := 0
		for i := 0; i < 200; i++ {
			r := e.check(check{host: aliceHost, uri: "/.homeroom/signin/hrl_" + strings.Repeat("B", 43), client: "10.6.6.6"})
			if r.code == http.StatusTooManyRequests {
				limited++
			}
		}
		if limited == 0 {
			t.Error("200 forged links from one address were never limited")
		}
		// The same address (a school's NAT) with a real session still gets in.
		if r := e.check(check{host: aliceHost, uri: "/", cookies: []string{alice}, client: "10.6.6.6"}); r.code != http.StatusOK {
			t.Errorf("a real session from a limited address: %d %s", r.code, r.body)
		}
	})
}

func TestLinksAfterDown(t *testing.T) {
	e := newEnvWith(t, policy.Default(), apiserver.WithSignInFailureLimit(1000, 1000))
	upClass(e)
	ls := byStudent(e.links(token, "cs101-a", ""))
	alice := e.follow(ls["alice"], "")
	e.ok(http.StatusAccepted, "POST", "/api/v1/classes/cs101-a/down", "")
	// Up again: a new Up, in which the old link and session are no good.
	e.ok(http.StatusAccepted, "POST", "/api/v1/classes/cs101-a/up", "")
	e.ok(http.StatusAccepted, "POST", "/api/v1/classes/cs101-a/down", "")
	if r := e.check(check{host: aliceHost, uri: "/", cookies: []string{alice}}); r.code != http.StatusUnauthorized {
		t.Errorf("session after Down: %d %s", r.code, r.body)
	}
	u, _ := url.Parse(ls["alice"].URL)
	if r := e.check(check{host: aliceHost, uri: u.RequestURI(), accept: "text/html"}); r.code != http.StatusUnauthorized ||
		!strings.Contains(string(r.body), "has ended") {
		t.Errorf("link after Down: %d %s", r.code, r.body)
	}
	r := e.do("POST", "/api/v1/classes/cs101-a/links", "")
	if r.code != http.StatusConflict || !strings.Contains(string(r.body), "not_up") {
		t.Errorf("links for a class that is Down: %d %s", r.code, r.body)
	}
	if r := e.do("GET", "/api/v1/classes/cs101-a/links", ""); r.code != http.StatusOK || string(r.body) != `{"items":[]}`+"\n" {
		t.Errorf("live links of a class that is Down: %d %s", r.code, r.body)
	}
}

func TestListLiveLinks(t *testing.T) {
	e := newEnv(t)
	upClass(e)
	if r := e.do("GET", "/api/v1/classes/cs101-a/links", ""); string(r.body) != `{"items":[]}`+"\n" {
		t.Fatalf("before any link: %d %s", r.code, r.body)
	}
	e.links(token, "cs101-a", `{"students": ["alice"]}`)
	e.links(token, "cs101-a", `{"students": ["alice"], "teacher": true}`)
	r := e.okAs(token, http.StatusOK, "GET", "/api/v1/classes/cs101-a/links", "")
	if strings.Contains(string(r.body), "hrl_") || strings.Contains(string(r.body), "hash") {
		t.Fatalf("the listing shows secrets: %s", r.body)
	}
	var out struct {
		Items []struct{ Student, Holder, IssuedBy, ExpiresAt string }
	}
	if err := json.Unmarshal(r.body, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Items) != 2 || out.Items[0].Student != "alice" || out.Items[0].IssuedBy != "admin" || out.Items[0].ExpiresAt == "" {
		t.Fatalf("live links: %s", r.body)
	}
	holders := []string{out.Items[0].Holder, out.Items[1].Holder}
	if !slices.Contains(holders, "alice") || !slices.Contains(holders, "admin") {
		t.Errorf("holders %v", holders)
	}
}

func TestTeacherOpensAStudentsSandbox(t *testing.T) {
	e := newEnv(t)
	e.ok(http.StatusCreated, "PUT", "/api/v1/subjects/cs101", `{"title": "Intro to CS"}`)
	e.ok(http.StatusCreated, "PUT", "/api/v1/subjects/bio", ``)
	e.ok(http.StatusCreated, "PUT", "/api/v1/users/ada", `{"role": "teacher", "subjects": ["cs101"]}`)
	e.ok(http.StatusCreated, "PUT", "/api/v1/users/bea", `{"role": "teacher", "subjects": ["bio"]}`)
	e.ok(http.StatusCreated, "PUT", "/api/v1/rosters/cs101-a", `{"subject": "cs101", "students": ["alice", "bob"]}`)
	ada, _ := e.issue("ada")
	bea, _ := e.issue("bea")
	upClass(e)
	students := byStudent(e.links(ada, "cs101-a", ""))

	if r := e.doAs(bea, "POST", "/api/v1/classes/cs101-a/links", `{"teacher": true}`); r.code != http.StatusForbidden {
		t.Fatalf("a teacher of another subject: %d %s", r.code, r.body)
	}
	if r := e.doAs(ada, "POST", "/api/v1/classes/cs101-a/links", `{"students": ["zed"]}`); r.code != http.StatusUnprocessableEntity ||
		!strings.Contains(string(r.body), "not_in_class") {
		t.Fatalf("a student not in the class: %d %s", r.code, r.body)
	}
	for _, body := range []string{`{"students": []}`, `{"students": ["Alice"]}`, `{"students": ["alice", "alice"]}`, `{"student": "alice"}`, `[]`} {
		if r := e.doAs(ada, "POST", "/api/v1/classes/cs101-a/links", body); r.code != http.StatusBadRequest {
			t.Errorf("body %s: %d %s", body, r.code, r.body)
		}
	}

	help := e.links(ada, "cs101-a", `{"students": ["alice"], "teacher": true}`)
	if len(help) != 1 || help[0].Holder != "ada" || help[0].Student != "alice" {
		t.Fatalf("help links %+v", help)
	}
	session := e.follow(help[0], "")
	if r := e.check(check{host: aliceHost, uri: "/", cookies: []string{session}}); r.code != http.StatusOK {
		t.Fatalf("the teacher's session on alice's host: %d %s", r.code, r.body)
	}
	// Her own link still works: the teacher's link is another one.
	alice := e.follow(students["alice"], "")
	if r := e.check(check{host: aliceHost, uri: "/", cookies: []string{alice}}); r.code != http.StatusOK {
		t.Fatalf("alice after the teacher's link: %d %s", r.code, r.body)
	}
	page := e.audit(token, "?action=sandbox.open")
	if len(page.Items) != 1 || page.Items[0].Actor.Name != "ada" || page.Items[0].Target != "class/cs101-a/student/alice" {
		t.Fatalf("audit of the teacher's visit: %+v", page.Items)
	}

	// Withdrawn from the subject, the teacher's session ends at once.
	e.ok(http.StatusOK, "DELETE", "/api/v1/users/ada/subjects/cs101", "")
	if r := e.check(check{host: aliceHost, uri: "/", cookies: []string{session}}); r.code != http.StatusForbidden {
		t.Fatalf("the teacher's session after the subject was withdrawn: %d %s", r.code, r.body)
	}
	if r := e.check(check{host: aliceHost, uri: "/", cookies: []string{alice}}); r.code != http.StatusOK {
		t.Fatalf("alice's session after her teacher's withdrawal: %d %s", r.code, r.body)
	}
}

func TestLinksAndSessionsExpire(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e := newEnvWith(t, policy.Default(), apiserver.WithSignInClock(clock))
	e.ok(http.StatusCreated, "PUT", "/api/v1/classes/cs101-a", strings.Replace(spec, "7200", "0", 1))
	e.ok(http.StatusAccepted, "POST", "/api/v1/classes/cs101-a/up", "")
	ls := byStudent(e.links(token, "cs101-a", ""))
	if exp, err := time.Parse(time.RFC3339, ls["alice"].ExpiresAt); err != nil || exp.Sub(now) < 12*time.Hour-time.Second || exp.Sub(now) > 12*time.Hour {
		t.Fatalf("a link without a class time limit expires at %s (%v), want 12 hours from now", ls["alice"].ExpiresAt, err)
	}
	alice := e.follow(ls["alice"], "")

	mu.Lock()
	now = now.Add(12*time.Hour + time.Second)
	mu.Unlock()
	if r := e.check(check{host: aliceHost, uri: "/", cookies: []string{alice}}); r.code != http.StatusUnauthorized {
		t.Errorf("an expired session: %d %s", r.code, r.body)
	}
	u, _ := url.Parse(ls["bob"].URL)
	r := e.check(check{host: bobHost, uri: u.RequestURI(), accept: "text/html"})
	if r.code != http.StatusUnauthorized || r.header.Get("Set-Cookie") != "" || !strings.Contains(string(r.body), "has ended") {
		t.Errorf("an expired link: %d %v %s", r.code, r.header, r.body)
	}
	// Each refusal is counted by its reason.
	m := e.do("GET", "/metrics", "")
	for _, want := range []string{`homeroom_signin_refusals_total{reason="expired"} 2`, `homeroom_signins_total{holder="student"} 1`} {
		if !strings.Contains(string(m.body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestALinkExpiresWithTheClassTimeLimit(t *testing.T) {
	e := newEnv(t)
	upClass(e) // ttlSeconds 7200
	l := e.links(token, "cs101-a", `{"students": ["alice"]}`)[0]
	var c api.Class
	if err := json.Unmarshal(e.do("GET", "/api/v1/classes/cs101-a", "").body, &c); err != nil || c.UpSince == nil {
		t.Fatal(err)
	}
	exp, _ := time.Parse(time.RFC3339, l.ExpiresAt)
	if want := c.UpSince.Add(2 * time.Hour); exp.Sub(want).Abs() > time.Second {
		t.Errorf("link expires %s, want the class's end %s", exp, want)
	}
}

// The controller's readiness check through Traefik carries a probe token
// minted with the sign-in key: it reaches that one sandbox, without
// Homeroom's cookies, and no other; a token under another key, or expired,
// is refused like no session at all.
func TestAProbeTokenReachesOneSandbox(t *testing.T) {
	e := newEnv(t)
	upClass(e)
	sec, err := e.store.SignInSecrets(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	probe := func(key []byte, student string, until time.Time) string {
		return signin.ProbeCookieName + "=" + signin.MintProbe(key, "cs101-a", student, until)
	}
	soon := time.Now().Add(signin.ProbeTTL)
	r := e.check(check{host: aliceHost, uri: "/api", cookies: []string{"_xsrf=abc", probe(sec.Key, "alice", soon)}})
	if r.code != http.StatusOK || r.header.Get("Cookie") != "_xsrf=abc" {
		t.Errorf("alice's probe on her host: %d, Cookie passed on %q; want 200 and only the sandbox's own cookie", r.code, r.header.Get("Cookie"))
	}
	for name, c := range map[string]check{
		"alice's probe on bob's host": {host: bobHost, uri: "/api", cookies: []string{probe(sec.Key, "alice", soon)}},
		"a probe under another key":   {host: aliceHost, uri: "/api", cookies: []string{probe([]byte(strings.Repeat("x", signin.KeyBytes)), "alice", soon)}},
		"an expired probe":            {host: aliceHost, uri: "/api", cookies: []string{probe(sec.Key, "alice", time.Now().Add(-time.Second))}},
	} {
		if r := e.check(c); r.code != http.StatusUnauthorized {
			t.Errorf("%s: %d %s, want 401", name, r.code, r.body)
		}
	}
}
