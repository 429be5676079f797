// Package signin checks students' sign-in end to end: the apiserver and the
// controller as `make run` runs them, a real Traefik on the host's network,
// real sandboxes, headless Chromium, and a probe container on a class
// network playing a student who tries to get around the check.
package signin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/docker/docker/api/types/network"
	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/signin"
)

const classID = "signin-e2e"

type link struct{ Student, Holder, URL string }

func host(student string) string { return api.Host(classID, student, "lab.localhost") }

// signIn follows a link through Traefik and returns the session cookie.
func signIn(t *testing.T, tr *testenv.Traefik, l link) string {
	t.Helper()
	code, h, body := testenv.Through(t, tr.Addr, "GET", l.URL, "", "")
	if code != http.StatusFound || h.Get("Location") != "/" {
		t.Fatalf("following %s: %d %v %s", l.URL, code, h, body)
	}
	for _, ck := range (&http.Response{Header: h}).Cookies() {
		if ck.Name == signin.CookieName {
			return ck.Name + "=" + ck.Value
		}
	}
	t.Fatalf("no session cookie: %v", h)
	return ""
}

func waitPhase(t *testing.T, sys *testenv.System, phase api.Phase) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		var c api.Class
		if sys.Call(t, sys.AdminToken, "GET", "/api/v1/classes/"+classID, nil, &c) == http.StatusOK &&
			c.Status.Phase == phase && c.Status.ObservedGeneration == c.Generation {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("class never reached %s", phase)
}

func issue(t *testing.T, sys *testenv.System, tok string, body any) map[string]link {
	t.Helper()
	var out struct{ Items []link }
	if code := sys.Call(t, tok, "POST", "/api/v1/classes/"+classID+"/links", body, &out); code != http.StatusOK {
		t.Fatalf("issue links: %d", code)
	}
	m := map[string]link{}
	for _, l := range out.Items {
		m[l.Student] = l
	}
	return m
}

func TestStudentsSignIn(t *testing.T) {
	d := testenv.Docker(t)
	// Listening on every interface, as a school's Traefik does: a
	// sandbox's program can reach it too, and must get nothing past the check.
	tr := testenv.StartTraefikEverywhere(t, d)
	testenv.CleanupClass(t, d, classID)
	sys := testenv.StartSystem(t, tr.Name)
	admin := sys.AdminToken

	// The school: a subject, a teacher, a registered class.
	for _, c := range []struct{ method, path, body string }{
		{"PUT", "/api/v1/subjects/cs101", `{"title": "Intro"}`},
		{"PUT", "/api/v1/users/ada", `{"role": "teacher", "subjects": ["cs101"]}`},
		{"PUT", "/api/v1/rosters/" + classID, `{"subject": "cs101", "students": ["alice", "bob", "carol"]}`},
	} {
		if code := sys.Call(t, admin, c.method, c.path, json.RawMessage(c.body), nil); code/100 != 2 {
			t.Fatalf("%s %s: %d", c.method, c.path, code)
		}
	}
	var tok struct{ Token string }
	sys.Call(t, admin, "POST", "/api/v1/users/ada/tokens", map[string]any{}, &tok)
	ada := tok.Token
	if code := sys.Call(t, ada, "PUT", "/api/v1/classes/"+classID,
		map[string]any{"subject": "cs101", "template": "sandbox", "students": []string{"alice", "bob", "carol"}}, nil); code/100 != 2 {
		t.Fatalf("put class: %d", code)
	}
	sys.Call(t, ada, "POST", "/api/v1/classes/"+classID+"/up", nil, nil)
	waitPhase(t, sys, api.PhaseUp)
	// Traefik applies new routes a moment after the sandboxes start: wait
	// until each host is routed, that is until the check answers for it.
	for _, s := range []string{"alice", "bob", "carol"} {
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, _, _ := testenv.Through(t, tr.Addr, "GET", "http://"+host(s)+"/", "", "")
			if code == http.StatusUnauthorized {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s's host is not routed to the sign-in check: %d", s, code)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	links := issue(t, sys, ada, nil)

	b := openBrowser(t, "MAP *.lab.localhost "+tr.Addr)

	t.Run("alice follows her link and works in her sandbox", func(t *testing.T) {
		b.do(t, chromedp.Navigate(links["alice"].URL))
		b.waitText(t, `"student":"alice"`)
		if u := b.eval(t, `location.href`); u != "http://"+host("alice")+"/" {
			t.Errorf("after signing in alice is at %q", u)
		}
		status := b.eval(t, `fetch("/files/hello.py", {method: "PUT", body: "print('hello')"}).then(r => String(r.status))`)
		if status != "201" {
			t.Fatalf("saving a file from alice's browser: %s", status)
		}
		b.do(t, chromedp.Navigate("http://"+host("alice")+"/"))
		b.waitText(t, `hello.py`)
		if cookie := b.eval(t, `document.cookie`); strings.Contains(cookie, signin.CookieName) {
			t.Errorf("the session cookie is readable by scripts: %q", cookie)
		}
	})
	t.Run("the same browser on bob's host is refused", func(t *testing.T) {
		b.do(t, chromedp.Navigate("http://"+host("bob")+"/"))
		b.waitText(t, "Ask your teacher for your personal link")
		if strings.Contains(b.eval(t, `document.body.innerText`), `"student"`) {
			t.Error("bob's sandbox answered alice's browser")
		}
	})
	alice := signIn(t, tr, links["alice"])
	t.Run("alice's session replayed on bob's host gets 403", func(t *testing.T) {
		code, _, body := testenv.Through(t, tr.Addr, "PUT", "http://"+host("bob")+"/files/planted.py", alice, "print('not bob')")
		if code != http.StatusForbidden {
			t.Fatalf("%d %s", code, body)
		}
	})
	t.Run("no cookie gets the sign-in page and the sandbox never sees the request", func(t *testing.T) {
		code, h, body := testenv.Through(t, tr.Addr, "PUT", "http://"+host("bob")+"/files/planted.py", "", "print('not bob')")
		if code != http.StatusUnauthorized || strings.Contains(body, "student") {
			t.Fatalf("%d %v %s", code, h, body)
		}
		bob := signIn(t, tr, links["bob"])
		_, _, listing := testenv.Through(t, tr.Addr, "GET", "http://"+host("bob")+"/", bob, "")
		if !strings.Contains(listing, `"student":"bob"`) || strings.Contains(listing, "planted") {
			t.Errorf("bob's sandbox: %s", listing)
		}
	})

	t.Run("from inside the class network there is no way around the check", func(t *testing.T) {
		net := api.NetworkName(classID)
		info, err := d.API().NetworkInspect(context.Background(), net, network.InspectOptions{})
		if err != nil || len(info.IPAM.Config) == 0 {
			t.Fatalf("inspect %s: %v", net, err)
		}
		// The host's address on the class network: the subnet's first.
		gateway := info.IPAM.Config[0].Gateway
		if gateway == "" {
			sub, err := netip.ParsePrefix(info.IPAM.Config[0].Subnet)
			if err != nil {
				t.Fatal(err)
			}
			gateway = sub.Masked().Addr().Next().String()
		}
		_, port, _ := strings.Cut(tr.Addr, ":")
		// Positive control: the probe reaches Traefik, which refuses it.
		if got := testenv.Probe(t, d, net, "http://"+gateway+":"+port+"/", host("alice")); got != 3 {
			t.Errorf("a request to Traefik with alice's Host and no session: probe exit %d, want 3 (refused)", got)
		}
		ctr, err := d.InspectContainer(context.Background(), api.ContainerName(classID, "alice"))
		if err != nil {
			t.Fatal(err)
		}
		ip := ctr.NetworkSettings.Networks[net].IPAddress
		if got := testenv.Probe(t, d, net, "http://"+ip+":8080/", ""); got != 1 {
			t.Errorf("alice's sandbox answered a classmate's program by IP: probe exit %d", got)
		}
		// The sign-in check itself (the apiserver, on loopback) is out of reach.
		_, apiPort, _ := strings.Cut(strings.TrimPrefix(sys.URL, "http://"), ":")
		if got := testenv.Probe(t, d, net, "http://"+gateway+":"+apiPort+"/healthz", ""); got != 1 {
			t.Errorf("a program on the class network reached the apiserver: probe exit %d", got)
		}
	})

	t.Run("a teacher opens alice's sandbox through their own link, audited", func(t *testing.T) {
		help := issue(t, sys, ada, map[string]any{"students": []string{"alice"}, "teacher": true})["alice"]
		if help.Holder != "ada" {
			t.Fatalf("help link %+v", help)
		}
		session := signIn(t, tr, help)
		code, _, body := testenv.Through(t, tr.Addr, "GET", "http://"+host("alice")+"/", session, "")
		if code != http.StatusOK || !strings.Contains(body, "hello.py") {
			t.Fatalf("the teacher on alice's host: %d %s", code, body)
		}
		var audit struct{ Items []api.AuditEntry }
		sys.Call(t, admin, "GET", "/api/v1/audit?action=sandbox.open", nil, &audit)
		if len(audit.Items) != 1 || audit.Items[0].Actor.Name != "ada" || audit.Items[0].ClassID != classID {
			t.Errorf("audit: %+v", audit.Items)
		}
	})

	t.Run("a re-issued link's old URL and old session stop working", func(t *testing.T) {
		fresh := issue(t, sys, ada, map[string]any{"students": []string{"alice"}})["alice"]
		b.do(t, chromedp.Navigate("http://"+host("alice")+"/"))
		b.waitText(t, "This sign-in has ended")
		b.do(t, chromedp.Navigate(links["alice"].URL))
		b.waitText(t, "This sign-in has ended")
		if code, _, _ := testenv.Through(t, tr.Addr, "GET", "http://"+host("alice")+"/", alice, ""); code != http.StatusUnauthorized {
			t.Errorf("old session by script: %d", code)
		}
		b.do(t, chromedp.Navigate(fresh.URL))
		b.waitText(t, `"student":"alice"`)
		links["alice"] = fresh
	})

	t.Run("after Down the link is refused", func(t *testing.T) {
		sys.Call(t, ada, "POST", "/api/v1/classes/"+classID+"/down", nil, nil)
		// At once, while the work is being collected: the check refuses.
		code, h, _ := testenv.Through(t, tr.Addr, "GET", links["carol"].URL, "", "")
		if code/100 == 2 || code/100 == 3 || strings.Contains(h.Get("Set-Cookie"), signin.CookieName+"=hrs_") {
			t.Errorf("carol's link right after Down: %d %v", code, h)
		}
		waitPhase(t, sys, api.PhaseDown)
		code, h, _ = testenv.Through(t, tr.Addr, "GET", links["carol"].URL, "", "")
		if code/100 == 2 || code/100 == 3 || strings.Contains(h.Get("Set-Cookie"), signin.CookieName+"=hrs_") {
			t.Errorf("carol's link after Down: %d %v", code, h)
		}
		var out json.RawMessage
		if code := sys.Call(t, ada, "POST", "/api/v1/classes/"+classID+"/links", nil, &out); code != http.StatusConflict {
			t.Errorf("links for a class that is Down: %d", code)
		}
	})
}

// tab is a headless Chromium.
type tab struct{ ctx context.Context }

func openBrowser(t *testing.T, hostRules string) *tab {
	t.Helper()
	chromium := testenv.Chromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("host-resolver-rules", hostRules),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(cancelBrowser)
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return &tab{ctx: bctx}
}

func (b *tab) do(t *testing.T, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		t.Fatal(err)
	}
}

func (b *tab) eval(t *testing.T, js string) string {
	t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](js, chromedp.EvalAsValue, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return v
}

// waitText waits for the page to show s.
func (b *tab) waitText(t *testing.T, s string) {
	t.Helper()
	js := fmt.Sprintf(`document.body !== null && document.body.innerText.includes(%q)`, s)
	if _, err := chromedp.Run(b.ctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(20*time.Second),
		chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		body, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
		t.Fatalf("the page never showed %q; it shows %q (%v)", s, body, err)
	}
}
