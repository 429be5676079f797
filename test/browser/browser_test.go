// Package browser tests the teacher pages in a real headless Chromium,
// against the real apiserver and controller binaries, the real Docker daemon
// and the embedded store and artifact store, as a teacher would use them:
// sign in, create a class, bring it up, take it down, download a file.
// A screenshot of each main screen is kept in bin/test-artifacts/browser
// (or $HOMEROOM_TEST_ARTIFACTS/browser).
package browser

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/homeroom/homeroom/internal/testenv"
)

const classID = "cs101-ui"

// system is Homeroom as `make run` runs it, on embedded services.
type system struct {
	*testenv.System
	t     *testing.T
	admin string
}

func start(t *testing.T, traefik string, env ...string) *system {
	sys := testenv.StartSystem(t, traefik, env...)
	return &system{System: sys, t: t, admin: sys.AdminToken}
}

// call sends an API request as tok and decodes a 2xx answer into out.
func (s *system) call(tok, method, path string, body, out any) int {
	s.t.Helper()
	return s.Call(s.t, tok, method, path, body, out)
}

// teacher registers what the school's records would hold: the subject, the
// class's official roster and a teacher of the subject, and returns the
// teacher's token.
func (s *system) teacher() string {
	s.t.Helper()
	if c := s.call(s.admin, "PUT", "/api/v1/subjects/cs101", map[string]any{"title": "Introduction to programming"}, nil); c >= 300 {
		s.t.Fatalf("subject: %d", c)
	}
	if c := s.call(s.admin, "PUT", "/api/v1/rosters/"+classID, map[string]any{
		"subject": "cs101", "students": []string{"alice", "bob", "carol", "dave"}}, nil); c >= 300 {
		s.t.Fatalf("roster: %d", c)
	}
	if c := s.call(s.admin, "PUT", "/api/v1/users/teacher-1", map[string]any{"role": "teacher", "subjects": []string{"cs101"}}, nil); c >= 300 {
		s.t.Fatalf("teacher: %d", c)
	}
	var issued struct {
		Token string `json:"token"`
	}
	if c := s.call(s.admin, "POST", "/api/v1/users/teacher-1/tokens", map[string]any{"description": "browser test"}, &issued); c != http.StatusCreated {
		s.t.Fatalf("token: %d", c)
	}
	return issued.Token
}

func artifactsDir(t *testing.T) string {
	dir := os.Getenv("HOMEROOM_TEST_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "..", "bin", "test-artifacts")
	}
	dir = filepath.Join(dir, "browser")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// screenshot keeps a picture of the whole page as a test artifact.
func screenshot(t *testing.T, dir, name string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		png, err := chromedp.FullScreenshot(100)(ctx, tg)
		if err != nil {
			return err
		}
		p := filepath.Join(dir, name+".png")
		t.Logf("screenshot %s", p)
		return os.WriteFile(p, png, 0o644)
	})
}

// elementShot keeps a picture of one element of the page.
func elementShot(t *testing.T, dir, name, sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		png, err := chromedp.Screenshot(chromedp.CSS(sel))(ctx, tg)
		if err != nil {
			return err
		}
		p := filepath.Join(dir, name+".png")
		t.Logf("screenshot %s", p)
		return os.WriteFile(p, png, 0o644)
	})
}

// waitFor polls a JavaScript condition; on timeout the error says which.
func waitFor(what, js string, timeout time.Duration) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := chromedp.Poll[bool](js, chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(100*time.Millisecond))(ctx, tg); err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		return nil
	})
}

// setValue replaces what a field holds, as pasting over it would, and lets
// the page know (an input event).
func setValue(sel, v string) chromedp.Action[chromedp.Void] {
	js := fmt.Sprintf(`(() => { const el = document.querySelector(%q); el.value = %s; el.dispatchEvent(new Event("input", {bubbles: true})); return el.value; })()`, sel, strconv.Quote(v))
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		got, err := chromedp.Evaluate[string](js)(ctx, tg)
		if err == nil && got != v {
			err = fmt.Errorf("%s holds %q after setting %q", sel, got, v)
		}
		return err
	})
}

func text(sel string) string {
	return fmt.Sprintf(`(document.querySelector(%q)?.textContent || "")`, sel)
}

func TestTeacherBringsAClassUpAndDown(t *testing.T) {
	d := testenv.Docker(t)
	testenv.CleanupClass(t, d, classID)
	tr := testenv.StartTraefik(t, d)
	sys := start(t, tr.Name)
	token := sys.teacher()
	shots := artifactsDir(t)
	downloads := t.TempDir()

	b := openBrowser(t, shots, downloads, "MAP *.lab.localhost "+tr.Addr)
	bctx, run, value := b.ctx, b.run, b.value

	// Sign in, by keyboard. A wrong token is refused in words.
	b.open("open the sign-in page", sys.URL+"/",
		chromedp.WaitVisible(chromedp.CSS("#token")),
		screenshot(t, shots, "01-sign-in"),
		chromedp.SendKeys(chromedp.CSS("#token"), "not-a-token"+kb.Enter),
		waitFor("the refusal", text("#token-error")+`.includes("That token was not accepted")`, 10*time.Second),
		setValue("#token", ""),
		chromedp.SendKeys(chromedp.CSS("#token"), token+kb.Enter),
		waitFor("the empty class list", text("main")+`.includes("No classes yet")`, 10*time.Second),
		waitFor("the teacher's name", text("#who-name")+`.includes("teacher-1")`, time.Second),
	)

	// Create the class: the roster from a CSV file, then bad input.
	csv := filepath.Join(t.TempDir(), "roster.csv")
	if err := os.WriteFile(csv, []byte("class,subject,student\ncs101-ui,cs101,alice\ncs101-b,cs101,zoe\ncs101-ui,cs101,bob\ncs101-ui,cs101,carol\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run("fill in the new class",
		chromedp.Click(chromedp.CSS(`main a[href="#/new"]`)),
		chromedp.WaitVisible(chromedp.CSS("#class-id")),
		chromedp.SendKeys(chromedp.CSS("#class-id"), classID+kb.Tab),
		waitFor("the official roster's note", text("#roster-note")+`.includes("has 4 students")`, 10*time.Second),
		chromedp.SetUploadFiles(chromedp.CSS("#csv"), []string{csv}),
		waitFor("the roster from the file", `document.querySelector("#students").value.includes("carol")`, 10*time.Second),
	)
	students := value(chromedp.Value(chromedp.CSS("#students")))
	// Every control can be found by a screen reader's user: each has a label.
	unlabelled := value(chromedp.Evaluate[string](`[...document.querySelectorAll("input, select, textarea, button")]
		.filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label") && !el.textContent.trim())
		.map((el) => el.outerHTML).join("\n")`))
	if unlabelled != "" {
		t.Errorf("controls without a label:\n%s", unlabelled)
	}
	if students != "alice\nbob\ncarol" {
		t.Errorf("students read from the CSV file: %q, want this class's three", students)
	}
	run("a bad line is refused before sending",
		setValue("#students", "alice\nBob Smith\ncarol"),
		chromedp.Click(chromedp.CSS(`form button[type="submit"]`)),
		waitFor("the line's error", text("#students-error")+`.includes('Line 2: "Bob Smith" is not a student id')`, 5*time.Second),
	)
	run("a student off the roster is refused by the server, by name",
		setValue("#students", "alice\nbob\nmallory"),
		chromedp.Click(chromedp.CSS(`form button[type="submit"]`)),
		waitFor("the server's refusal", text("#form-error")+`.includes("mallory")`, 10*time.Second),
	)
	formError := value(chromedp.Text(chromedp.CSS("#form-error")))
	t.Logf("refusal shown: %s", formError)
	if c := sys.call(token, "GET", "/api/v1/classes/"+classID, nil, nil); c != http.StatusNotFound {
		t.Fatalf("a refused class was written: GET answers %d", c)
	}
	run("create the class",
		setValue("#students", "alice\nbob\ncarol"),
		chromedp.SendKeys(chromedp.CSS("#ttl"), "2"),
		screenshot(t, shots, "02-new-class"),
		chromedp.Click(chromedp.CSS(`form button[type="submit"]`)),
		waitFor("the class page", `location.hash === "#/classes/`+classID+`" && !!document.querySelector("#up")`, 10*time.Second),
		waitFor("the created notice", text("#notice")+`.includes("was created")`, 5*time.Second),
	)
	var spec struct {
		Spec struct {
			Students   []string `json:"students"`
			TTLSeconds int64    `json:"ttlSeconds"`
			Template   string   `json:"template"`
		} `json:"spec"`
	}
	sys.call(token, "GET", "/api/v1/classes/"+classID, nil, &spec)
	if strings.Join(spec.Spec.Students, ",") != "alice,bob,carol" || spec.Spec.TTLSeconds != 7200 || spec.Spec.Template == "" {
		t.Errorf("the class as stored: %+v", spec.Spec)
	}

	// Up: the page follows the class until every student runs.
	run("bring it up",
		chromedp.Click(chromedp.CSS("#up")),
		waitFor("3 of 3 ready", text("#progress-text")+` === "3 of 3 students ready"`, 3*time.Minute),
		waitFor("three running sandboxes", `document.querySelectorAll('#students [data-state="running"]').length === 3`, 5*time.Second),
		waitFor("the phase Up", `!!document.querySelector('[data-phase="Up"]')`, 5*time.Second),
		waitFor("alice's link", text(`tr[data-student="alice"]`)+`.includes("alice.`+classID+`.lab.localhost")`, 5*time.Second),
		screenshot(t, shots, "03-class-up"),
	)
	// A condition that reports nothing wrong is no problem on the page.
	if probs := b.value(chromedp.Evaluate[string](`document.querySelector(".problems")?.textContent || ""`)); probs != "" {
		t.Errorf("problems shown for a class that is Up and well: %q", probs)
	}
	// One student hands in early: a run of its own, shown in bob's row.
	b.run("bob hands in now",
		chromedp.Click(chromedp.CSS(`tr[data-student="bob"] button[data-action="collect"]`)),
		waitFor("bob's hand-in", `!!document.querySelector('tr[data-student="bob"] [data-handin]')`, time.Minute),
	)

	// Without signing in, a student's host shows the sign-in page, not the
	// sandbox. Traefik applies new routes a moment after the sandboxes
	// start: until then it answers 404.
	for _, st := range []string{"alice", "bob", "carol"} {
		deadline := time.Now().Add(30 * time.Second)
		for code, _ := through(t, tr, nil, "http://"+st+"."+classID+".lab.localhost/"); code == http.StatusNotFound; code, _ = through(t, tr, nil, "http://"+st+"."+classID+".lab.localhost/") {
			if time.Now().After(deadline) {
				t.Fatalf("Traefik never routed %s's host", st)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if code, body := through(t, tr, nil, "http://alice."+classID+".lab.localhost/"); code != http.StatusUnauthorized || strings.Contains(body, `"student":"alice"`) {
		t.Errorf("alice's sandbox without signing in: %d %.200s", code, body)
	}

	// The students' links. Nobody has one yet, and the page knows it, so
	// alice's first link and then the others' are made without a warning:
	// nobody is signed out. The page keeps them in memory, never in the
	// browser's storage.
	noDialog := func(step string) {
		t.Helper()
		if open := value(chromedp.Evaluate[string](`String(document.querySelector("#confirm").open)`)); open != "false" {
			t.Fatalf("%s: a confirmation opened, though nobody had a link to lose", step)
		}
	}
	run("a first link for alice",
		waitFor("no valid link yet", `["alice", "bob", "carol"].every((s) => document.getElementById("valid-" + s)?.textContent === "No valid link")`, 10*time.Second),
		chromedp.Click(chromedp.CSS("#renew-alice")),
		waitFor("alice's link", `(document.getElementById("link-alice")?.value || "").startsWith("http://alice.`+classID+`.lab.localhost/.homeroom/signin/hrl_")`, 10*time.Second),
		waitFor("the made notice", text("#notice")+` === "alice has a sign-in link. Give it to them."`, 5*time.Second),
	)
	noDialog("a first link for alice")
	first := value(chromedp.Value(chromedp.CSS("#link-alice")))
	run("make the students' links",
		chromedp.Click(chromedp.CSS("#links")),
		waitFor("a link for each student", `["alice", "bob", "carol"].every((s) => (document.getElementById("link-" + s)?.value || "")
			.startsWith("http://" + s + ".`+classID+`.lab.localhost/.homeroom/signin/hrl_"))`, 10*time.Second),
		waitFor("the made notice", text("#notice")+`.includes("Sign-in links for 2 students were made")`, 5*time.Second),
		screenshot(t, shots, "03a-links"),
	)
	noDialog("make the students' links")
	if got := value(chromedp.Value(chromedp.CSS("#link-alice"))); got != first {
		t.Errorf("Students' links made alice's link again: %q, was %q", got, first)
	}
	if stored := value(chromedp.Evaluate[string](`JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])`)); strings.Contains(stored, "hrl_") {
		t.Errorf("a sign-in link was kept in the browser's storage: %s", stored)
	}
	if unlabelled := value(chromedp.Evaluate[string](`[...document.querySelectorAll("input, select, textarea, button")]
		.filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label") && !el.textContent.trim())
		.map((el) => el.outerHTML).join("\n")`)); unlabelled != "" {
		t.Errorf("controls without a label:\n%s", unlabelled)
	}
	run("the links on a phone",
		chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile),
		waitFor("the page laid out again", `document.documentElement.clientWidth <= 390`, 5*time.Second),
		screenshot(t, shots, "03b-links-phone"),
	)
	if overflow := value(chromedp.Evaluate[string](`String(document.documentElement.scrollWidth > window.innerWidth)`)); overflow != "false" {
		t.Errorf("the class page with its links is wider than a phone's screen")
	}
	run("back to a laptop", chromedp.EmulateViewport(1280, 900))
	links := map[string]string{}
	for _, s := range []string{"alice", "bob", "carol"} {
		links[s] = value(chromedp.Value(chromedp.CSS("#link-" + s)))
	}

	// alice follows her link, which signs her in and reaches her own sandbox
	// through Traefik, and saves her work there.
	tab, closeTab := chromedp.NewContext(bctx)
	err := chromedp.Do(tab, chromedp.Navigate(links["alice"]), waitFor("alice's sandbox", `document.body.innerText.includes('"student":"alice"')`, 20*time.Second))
	if err != nil {
		t.Errorf("alice's link does not reach her sandbox: %v", err)
	}
	if u, err := chromedp.Run(tab, chromedp.Evaluate[string](`location.href`)); err != nil || u != "http://alice."+classID+".lab.localhost/" {
		t.Errorf("after signing in alice is at %q (%v), want her sandbox's front page without the link", u, err)
	}
	closeTab()
	alice := signIn(t, tr, links["alice"], "alice")
	notes := []byte("alice's notes from the lab\n")
	testenv.PutFile(t, alice, "http://alice."+classID+".lab.localhost/files/notes.txt", notes)

	// A new link for bob, after a confirmation: his old link stops working
	// and the new one signs him in.
	run("a new link for bob",
		chromedp.Click(chromedp.CSS("#renew-bob")),
		chromedp.WaitVisible(chromedp.CSS("#confirm-ok")),
		waitFor("the confirmation's words", text("#confirm-text")+`.includes("bob is signed out of their sandbox") && `+
			text("#confirm-text")+`.includes(" by teacher-1)")`, 5*time.Second),
		chromedp.Click(chromedp.CSS("#confirm-ok")),
		waitFor("bob's new link", fmt.Sprintf(`(document.getElementById("link-bob")?.value || %q) !== %q`, links["bob"], links["bob"]), 10*time.Second),
		waitFor("the focus on the new link's Copy", `document.activeElement?.id === "copy-bob"`, 5*time.Second),
	)
	if code, body := through(t, tr, nil, links["bob"]); code != http.StatusUnauthorized {
		t.Errorf("bob's old link after a new one was made: %d %.200s", code, body)
	}
	signIn(t, tr, value(chromedp.Value(chromedp.CSS("#link-bob"))), "bob")
	if got := value(chromedp.Value(chromedp.CSS("#link-alice"))); got != links["alice"] {
		t.Errorf("alice's link changed with bob's: %q", got)
	}

	// Open (help): the teacher's own link to carol's sandbox, in a new tab;
	// carol's link is left as it is, and the visit is recorded.
	run("open carol's sandbox to help", chromedp.Click(chromedp.CSS("#help-carol")))
	helping := waitTab(t, bctx, "http://carol."+classID+".lab.localhost/")
	if err := chromedp.Do(helping, waitFor("carol's sandbox", `document.body.innerText.includes('"student":"carol"')`, 20*time.Second)); err != nil {
		t.Errorf("Open (help) does not reach carol's sandbox: %v", err)
	}
	if _, err := chromedp.Call(bctx, page.BringToFront, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	signIn(t, tr, links["carol"], "carol")
	var audit struct {
		Items []struct {
			Action string `json:"action"`
			Actor  struct {
				Name string `json:"name"`
			} `json:"actor"`
			Target string `json:"target"`
		} `json:"items"`
	}
	sys.call(sys.admin, "GET", "/api/v1/audit?classId="+classID+"&action=sandbox.open", nil, &audit)
	if len(audit.Items) != 1 || audit.Items[0].Actor.Name != "teacher-1" || !strings.HasSuffix(audit.Items[0].Target, "/student/carol") {
		t.Errorf("the visit to carol's sandbox as audited: %+v", audit.Items)
	}

	// The link sheet: a card per student with their link and its QR code,
	// laid out for printing; the print dialog opens by itself.
	run("print the link sheet",
		chromedp.Evaluate[chromedp.Void](`window.printed = 0; window.print = () => { window.printed++; }; 0`),
		chromedp.Click(chromedp.CSS("#print-sheet")),
		waitFor("the sheet", `location.hash === "#/classes/`+classID+`/sheet" && document.querySelectorAll(".link-card").length === 3`, 10*time.Second),
		waitFor("the print dialog", `window.printed === 1`, 5*time.Second),
	)
	cards := value(chromedp.Evaluate[string](`JSON.stringify([...document.querySelectorAll(".link-card")].map((c) => {
		const qr = c.querySelector("svg.qr"), box = qr?.getBoundingClientRect();
		return {student: c.dataset.student, text: c.innerText, url: c.querySelector(".card-url")?.textContent,
			modules: Number(qr?.dataset.modules || 0), dark: (qr?.querySelector("path")?.getAttribute("d") || "").split("M").length - 1,
			width: Math.round(box?.width || 0), height: Math.round(box?.height || 0), label: qr?.getAttribute("aria-label")};
	}))`))
	var sheet []struct {
		Student, Text, URL, Label string
		Modules, Dark             int
		Width, Height             int
	}
	if err := json.Unmarshal([]byte(cards), &sheet); err != nil {
		t.Fatal(err)
	}
	for i, s := range []string{"alice", "bob", "carol"} {
		if i >= len(sheet) {
			t.Fatalf("the sheet has %d cards", len(sheet))
		}
		c := sheet[i]
		want := links[s]
		if s == "bob" {
			want = value(chromedp.Evaluate[string](`document.querySelector('.link-card[data-student="bob"] .card-url').textContent`))
			if want == links["bob"] {
				t.Errorf("bob's card has his old link")
			}
		}
		// A QR code of version 1 to 40 has 21 to 177 modules a side, about
		// half of them dark; drawn at least 100 px wide.
		if c.Student != s || c.URL != want || !strings.Contains(c.Text, classID) || c.Modules < 21 || c.Modules > 177 || (c.Modules-17)%4 != 0 ||
			c.Dark < c.Modules*c.Modules/4 || c.Width < 100 || c.Width != c.Height || !strings.Contains(c.Label, s) {
			t.Errorf("card %d: %+v", i, c)
		}
	}
	run("the sheet as printed",
		chromedp.EmulateViewport(794, 1123),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Media: "print"})
			return err
		}),
		waitFor("the page's header hidden", `getComputedStyle(document.querySelector("header.top")).display === "none"`, 5*time.Second),
		elementShot(t, shots, "03c-link-sheet", "#sheet"),
		decodeQR(t, filepath.Join(shots, "03c-link-sheet.png"), links["alice"], links["carol"]),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{})
			return err
		}),
		chromedp.EmulateViewport(1280, 900),
	)
	pdf, err := chromedp.Run(bctx, chromedp.PrintToPDF(chromedp.PDFPaper(chromedp.PaperA4)))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(shots, "03c-link-sheet.pdf"), pdf, 0o644); err != nil {
		t.Fatal(err)
	}
	if pages := regexp.MustCompile(`/Type\s*/Page\b`).FindAll(pdf, -1); len(pages) != 1 {
		t.Errorf("three cards printed on %d A4 pages, want one", len(pages))
	}
	run("back to the class",
		chromedp.Click(chromedp.CSS(`main a[href="#/classes/`+classID+`"]`)),
		waitFor("the class page with the links kept", fmt.Sprintf(`document.getElementById("link-alice")?.value === %q`, links["alice"]), 10*time.Second),
	)

	// After a reload the links are gone from the page, but each student's
	// row says that their link still signs in: issued when and by whom,
	// valid until when, as the API lists it (carol's own, not the teacher's
	// link to help her).
	run("reload the class page",
		chromedp.Reload(),
		waitFor("every student's live link", `["alice", "bob", "carol"].every((s) => document.querySelector('tr[data-student="' + s + '"] .signin')?.dataset.link === "live")`, 20*time.Second),
		screenshot(t, shots, "03d-links-after-reload"),
	)
	var live struct {
		Items []struct{ Student, Holder, IssuedAt, IssuedBy, ExpiresAt string }
	}
	if c := sys.call(token, "GET", "/api/v1/classes/"+classID+"/links", nil, &live); c != http.StatusOK || len(live.Items) != 4 {
		t.Fatalf("the live links: %d %+v", c, live.Items)
	}
	issuedAt := map[string]string{}
	for _, l := range live.Items {
		if l.Holder != l.Student {
			continue
		}
		issuedAt[l.Student] = l.IssuedAt
		shown := value(chromedp.Evaluate[string](fmt.Sprintf(`(() => { const p = document.getElementById("valid-" + %q);
			return JSON.stringify({text: p?.textContent || "", times: [...(p?.querySelectorAll("time") || [])].map((t) => t.getAttribute("datetime"))}); })()`, l.Student)))
		var got struct {
			Text  string
			Times []string
		}
		if err := json.Unmarshal([]byte(shown), &got); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s's link after a reload: %s", l.Student, got.Text)
		if !regexp.MustCompile(`^Link issued \S.* by teacher-1, valid until \S.*$`).MatchString(got.Text) ||
			len(got.Times) != 2 || got.Times[0] != l.IssuedAt || got.Times[1] != l.ExpiresAt || l.IssuedBy != "teacher-1" {
			t.Errorf("%s's live link as reported: %+v, as listed: %+v", l.Student, got, l)
		}
	}
	if len(issuedAt) != 3 {
		t.Errorf("live links of the students: %+v", live.Items)
	}
	if kept := value(chromedp.Evaluate[string](`String(document.querySelectorAll("input.link-url").length)`)); kept != "0" {
		t.Errorf("%s links shown after a reload", kept)
	}

	// Issuing again: bob's new link warns that bob is signed out; then the
	// others' warns about alice and carol, and about bob no longer, whose
	// link is on the page.
	run("bob's link again after the reload",
		chromedp.Click(chromedp.CSS("#renew-bob")),
		chromedp.WaitVisible(chromedp.CSS("#confirm-ok")),
		waitFor("the confirmation's words", text("#confirm-text")+`.startsWith("bob's current link (issued ") && `+
			text("#confirm-text")+`.includes("bob is signed out of their sandbox")`, 5*time.Second),
		chromedp.Click(chromedp.CSS("#confirm-ok")),
		waitFor("bob's link shown", `!!document.getElementById("link-bob")`, 10*time.Second),
		chromedp.Click(chromedp.CSS("#links")),
		chromedp.WaitVisible(chromedp.CSS("#confirm-ok")),
		waitFor("the confirmation's title", text("#confirm-title")+` === "Make sign-in links for 2 students?"`, 5*time.Second),
	)
	warning := value(chromedp.Text(chromedp.CSS("#confirm-text")))
	t.Logf("the warning: %s", warning)
	if !strings.HasPrefix(warning, "alice and carol already have sign-in links.") || !strings.Contains(warning, "signed out") || strings.Contains(warning, "bob") {
		t.Errorf("the warning before making the links again names the wrong students: %q", warning)
	}
	run("make alice's and carol's links again",
		screenshot(t, shots, "03e-confirm-links-again"),
		chromedp.Click(chromedp.CSS("#confirm-ok")),
		waitFor("new links for alice and carol", fmt.Sprintf(`["alice", "carol"].every((s) => (document.getElementById("link-" + s)?.value || "").includes("/.homeroom/signin/hrl_")) &&
			document.getElementById("link-alice").value !== %q && document.getElementById("link-carol").value !== %q`, links["alice"], links["carol"]), 10*time.Second),
	)
	// The warning was true: alice, signed in with her old link, is out.
	if code, _ := through(t, tr, alice, "http://alice."+classID+".lab.localhost/"); code != http.StatusUnauthorized {
		t.Errorf("alice's session after her link was made again: %d", code)
	}
	if code, _ := through(t, tr, nil, links["alice"]); code != http.StatusUnauthorized {
		t.Errorf("alice's old link after it was made again: %d", code)
	}

	// Down asks first; Escape leaves the class up.
	run("cancel the Down",
		chromedp.Click(chromedp.CSS("#down")),
		chromedp.WaitVisible(chromedp.CSS("#confirm")),
		screenshot(t, shots, "04-confirm-down"),
		chromedp.KeyEvent(kb.Escape),
		waitFor("the dialog closed", `!document.querySelector("#confirm").open`, 5*time.Second),
	)
	var cl struct {
		DesiredPhase string `json:"desiredPhase"`
	}
	sys.call(token, "GET", "/api/v1/classes/"+classID, nil, &cl)
	if cl.DesiredPhase != "Up" {
		t.Fatalf("a cancelled Down changed the class to %q", cl.DesiredPhase)
	}
	run("take it down",
		chromedp.Click(chromedp.CSS("#down")),
		chromedp.WaitVisible(chromedp.CSS("#confirm-ok")),
		chromedp.Click(chromedp.CSS("#confirm-ok")),
		waitFor("the phase Down", `!!document.querySelector('[data-phase="Down"]')`, 3*time.Minute),
		waitFor("3 of 3 collected", text("#progress-text")+` === "3 of 3 students collected"`, 10*time.Second),
		waitFor("alice's file listed", `!!document.querySelector('button[data-student="alice"][data-path="files/workspace/notes.txt"]')`, 30*time.Second),
		waitFor("no links once Down", `!document.querySelector("#link-alice") && !document.querySelector("#links")`, 5*time.Second),
		chromedp.Click(chromedp.CSS(`tr[data-student="alice"] summary`)),
		screenshot(t, shots, "05-class-down"),
		chromedp.Click(chromedp.CSS(`button[data-student="alice"][data-path="files/workspace/notes.txt"]`)),
	)
	got := waitDownload(t, filepath.Join(downloads, "alice-notes.txt"))
	if !bytes.Equal(got, notes) {
		t.Errorf("downloaded %q, want %q", got, notes)
	}

	// A late hand-in for alice: her sandbox comes back with her notes, she
	// gets a new link (and only she can), and at its end her work is
	// collected as a run of its own.
	run("a late hand-in for alice",
		chromedp.Click(chromedp.CSS(`tr[data-student="alice"] button[data-action="late"]`)),
		waitFor("alice's late hand-in", `!!document.querySelector('tr[data-student="alice"] [data-late]')`, 10*time.Second),
		waitFor("alice's sandbox back", `!!document.querySelector('tr[data-student="alice"] [data-state="running"]')`, 2*time.Minute),
		waitFor("a link only for alice", `!!document.querySelector("#renew-alice") && !document.querySelector("#renew-bob") && !document.querySelector("#links")`, 10*time.Second),
		chromedp.Click(chromedp.CSS("#renew-alice")),
		waitFor("alice's late link", `(document.getElementById("link-alice")?.value || "").startsWith("http://alice.`+classID+`.lab.localhost/.homeroom/signin/hrl_")`, 10*time.Second),
		screenshot(t, shots, "05a-late-hand-in"),
	)
	lateLink := value(chromedp.Value(chromedp.CSS("#link-alice")))
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if code, _ := through(t, tr, nil, "http://alice."+classID+".lab.localhost/"); code != http.StatusNotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Traefik never routed alice's late sandbox")
		}
	}
	if code, _ := through(t, tr, nil, links["alice"]); code != http.StatusUnauthorized {
		t.Errorf("alice's link from the Up during her late hand-in: %d", code)
	}
	late := signIn(t, tr, lateLink, "alice")
	if code, body := through(t, tr, late, "http://alice."+classID+".lab.localhost/files/notes.txt"); code != http.StatusOK || body != string(notes) {
		t.Errorf("alice's notes in her late sandbox: %d %q", code, body)
	}
	lateNotes := []byte("alice's notes, finished late\n")
	testenv.PutFile(t, late, "http://alice."+classID+".lab.localhost/files/notes.txt", lateNotes)
	// Its end moved to now, as a teacher would from the command line.
	sys.call(token, "POST", "/api/v1/classes/"+classID+"/students/alice/late", map[string]any{"until": time.Now().Add(3 * time.Second).UTC().Format(time.RFC3339)}, nil)
	run("alice's late hand-in collected",
		waitFor("handed in late", `!!document.querySelector('tr[data-student="alice"] [data-late-run]')`, 2*time.Minute),
		// The hand-in is recorded before the pass that made it removes the
		// sandbox and writes the class's status: the edit below must start
		// from that status, or its save meets a newer version (412).
		waitFor("alice's late sandbox removed", `!!document.querySelector('tr[data-student="alice"] [data-state="removed"]')`, time.Minute),
		waitFor("the late run listed", `[...document.querySelectorAll("#runs li")].some((li) => li.textContent.startsWith("Late hand-in"))`, 30*time.Second),
	)
	var afterLate struct {
		Status struct {
			Late map[string]struct {
				RunID string `json:"runId"`
			} `json:"late"`
		} `json:"status"`
	}
	sys.call(token, "GET", "/api/v1/classes/"+classID, nil, &afterLate)
	var lateCopy []byte
	if code := sys.call(token, "GET", "/api/v1/classes/"+classID+"/artifacts/alice/files/workspace/notes.txt?run="+afterLate.Status.Late["alice"].RunID, nil, &lateCopy); code != http.StatusOK || !bytes.Equal(lateCopy, lateNotes) {
		t.Errorf("alice's late hand-in holds %d %q, want %q", code, lateCopy, lateNotes)
	}

	// Edit the class that is Down: a fourth student from the roster.
	run("edit the class",
		chromedp.Click(chromedp.CSS(`main a[href="#/classes/`+classID+`/edit"]`)),
		waitFor("the form with the class", `document.querySelector("#students")?.value === "alice\nbob\ncarol"`, 10*time.Second),
		waitFor("the roster button", `!document.querySelector("#use-roster").hidden`, 10*time.Second),
		chromedp.Click(chromedp.CSS("#use-roster")),
		chromedp.Click(chromedp.CSS(`form button[type="submit"]`)),
		waitFor("the saved class", `location.hash === "#/classes/`+classID+`" && `+text("#notice")+`.includes("was saved")`, 10*time.Second),
		waitFor("dave in the list", `!!document.querySelector('tr[data-student="dave"]')`, 10*time.Second),
	)
	sys.call(token, "GET", "/api/v1/classes/"+classID, nil, &spec)
	if strings.Join(spec.Spec.Students, ",") != "alice,bob,carol,dave" {
		t.Errorf("students after the edit: %v", spec.Spec.Students)
	}

	// A phone: one column, nothing wider than the screen.
	run("a phone screen",
		chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile),
		chromedp.Reload(),
		waitFor("the class page again", `!!document.querySelector('[data-phase="Down"]')`, 20*time.Second),
		screenshot(t, shots, "06-class-phone"),
	)
	overflow, err := chromedp.Run(bctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth`))
	if err != nil {
		t.Fatal(err)
	}
	if overflow {
		t.Errorf("the class page is wider than a phone's screen")
	}
	run("the class list",
		chromedp.EmulateViewport(1280, 900),
		chromedp.Navigate(sys.URL+"/ui/#/classes"),
		waitFor("the class in the list", `!!document.querySelector('[data-class="`+classID+`"] [data-phase="Down"]')`, 20*time.Second),
		screenshot(t, shots, "07-classes"),
	)
}

// decodeQR checks, where zbarimg (Debian's zbar-tools) is installed, that
// the QR codes in a screenshot read as the links wanted.
func decodeQR(t *testing.T, png string, want ...string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(context.Context, *chromedp.Target) error {
		zbar, err := exec.LookPath("zbarimg")
		if err != nil {
			t.Logf("no zbarimg: the QR codes are not read back")
			return nil
		}
		out, err := exec.Command(zbar, "--quiet", "--raw", png).Output()
		if err != nil {
			return fmt.Errorf("zbarimg %s: %v", png, err)
		}
		got := strings.Fields(string(out))
		for _, w := range want {
			if !slices.Contains(got, w) {
				t.Errorf("the QR codes read %q, without %s", got, w)
			}
		}
		return nil
	})
}

// tab is a headless Chromium showing the pages.
type tab struct {
	t     *testing.T
	ctx   context.Context
	shots string
	watch *pageWatch
	// jupyter: the tab shows Jupyter's pages, which have no <main>, so a
	// failure shows the page's address and text instead.
	jupyter bool
}

// openBrowser starts Chromium for one test. Downloads go to downloads;
// hostRules, when set, is Chromium's --host-resolver-rules. Any uncaught
// JavaScript error in the pages fails the test.
func openBrowser(t *testing.T, shots, downloads, hostRules string) *tab {
	t.Helper()
	chromium := testenv.Chromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	t.Cleanup(cancel)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox, // tests run as root
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	if hostRules != "" {
		opts = append(opts, chromedp.Flag("host-resolver-rules", hostRules))
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	// Cleanups run last first: the browser closes before the allocator.
	t.Cleanup(cancelBrowser)

	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	if _, err := chromedp.CallBrowser(bctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads}); err != nil {
		t.Fatal(err)
	}
	return &tab{t: t, ctx: bctx, shots: shots, watch: failOnJSErrors(t, bctx, "the page")}
}

// pageWatch holds what Chromium reported of the pages: their uncaught
// JavaScript errors, which fail the test at its end, and how many loads it
// cut off with net::ERR_NETWORK_CHANGED.
//
// Chromium fails every load in flight when an address of the machine
// changes, and Docker adds and removes addresses (a bridge per class
// network, a veth per sandbox) whenever sandboxes come and go. A student's
// browser is on another machine and never sees that; the browser here
// shares the machine with the daemon.
type pageWatch struct {
	mu   sync.Mutex
	errs []string
	cut  int
	done bool
}

// mark is where the reports stand now, for since and excuse.
type mark struct{ errs, cut int }

func (w *pageWatch) mark() mark {
	w.mu.Lock()
	defer w.mu.Unlock()
	return mark{len(w.errs), w.cut}
}

// since says whether loads were cut off after m, and whether scripts failed.
func (w *pageWatch) since(m mark) (cut, errs bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cut > m.cut, len(w.errs) > m.errs
}

// excuse drops the script errors reported after m: they are those of a page
// whose scripts were cut off, and that page is loaded again.
func (w *pageWatch) excuse(t *testing.T, m mark) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, e := range w.errs[m.errs:] {
		t.Logf("excused, as its page is loaded again: %.300s", e)
	}
	w.errs = w.errs[:m.errs]
}

// failOnJSErrors fails the test, at its end, for every uncaught JavaScript
// error in the browser context ctx (where names it in the message).
func failOnJSErrors(t *testing.T, ctx context.Context, where string) *pageWatch {
	t.Helper()
	w := &pageWatch{}
	if err := chromedp.Listen(ctx, func(ev any) {
		var d *runtime.ExceptionDetails
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			d = e.ExceptionDetails
		case runtime.EventExceptionThrown:
			d = e.ExceptionDetails
		}
		if d != nil {
			b, _ := json.Marshal(d)
			w.mu.Lock()
			if !w.done {
				w.errs = append(w.errs, string(b))
			}
			w.mu.Unlock()
		}
		// What the page failed to load says why a script is missing.
		switch e := ev.(type) {
		case *network.EventLoadingFailed:
			t.Logf("%s: a load failed: %s %s (canceled %v, blocked %q)", where, e.RequestID, e.ErrorText, e.Canceled, e.BlockedReason)
			if e.ErrorText == "net::ERR_NETWORK_CHANGED" {
				w.mu.Lock()
				w.cut++
				w.mu.Unlock()
			}
		case *network.EventResponseReceived:
			if e.Response != nil && e.Response.Status >= 400 {
				t.Logf("%s: %s answered %d %s", where, e.Response.URL, e.Response.Status, e.Response.StatusText)
			}
		case *network.EventRequestWillBeSent:
			if e.Request != nil && strings.Contains(e.Request.URL, "/static/") && strings.Contains(e.Request.URL, "require") {
				t.Logf("%s: request %s %s", where, e.RequestID, e.Request.URL)
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.done = true
		for _, e := range w.errs {
			t.Errorf("JavaScript error in %s: %s", where, e)
		}
	})
	return w
}

// open loads url and takes the step's actions on it. When Chromium cut a
// load off as the machine's network changed (see pageWatch) and the step
// failed or the page's scripts did, the page is loaded again, as a student
// would reload it, up to three times. It returns the last attempt's error.
func open(t *testing.T, ctx context.Context, w *pageWatch, url string, actions ...chromedp.Action[chromedp.Void]) error {
	t.Helper()
	for attempt := 1; ; attempt++ {
		m := w.mark()
		err := chromedp.Do(ctx, append([]chromedp.Action[chromedp.Void]{chromedp.Navigate(url)}, actions...)...)
		cut, errs := w.since(m)
		if !cut || (err == nil && !errs) || attempt == 3 {
			return err
		}
		t.Logf("Chromium cut a load of %s off (attempt %d: %v); loading it again", url, attempt, err)
		w.excuse(t, m)
	}
}

// run takes a step in the browser; a failure keeps a screenshot and says
// what the page held.
func (b *tab) run(step string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	b.check(step, chromedp.Do(b.ctx, actions...))
}

// open is run for a step that begins by loading url (see open).
func (b *tab) open(step, url string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	b.check(step, open(b.t, b.ctx, b.watch, url, actions...))
}

func (b *tab) check(step string, err error) {
	b.t.Helper()
	if err == nil {
		return
	}
	if b.jupyter {
		_ = chromedp.Do(b.ctx, screenshot(b.t, b.shots, "notebook-failed"))
		shown, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText`))
		b.t.Fatalf("%s: %v\nthe page: %.3000s", step, err, shown)
	}
	_ = chromedp.Do(b.ctx, screenshot(b.t, b.shots, "failed"))
	html, _ := chromedp.Run(b.ctx, chromedp.OuterHTML(chromedp.CSS("main")))
	b.t.Fatalf("%s: %v\nthe page: %.3000s", step, err, html)
}

// value reads something from the page.
func (b *tab) value(a chromedp.Action[string]) string {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, a)
	if err != nil {
		b.t.Fatal(err)
	}
	return v
}

// viaTraefik is an HTTP client that reaches every student's host through
// Traefik, with a cookie jar of its own as a browser has.
func viaTraefik(t *testing.T, tr *testenv.Traefik) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{Jar: jar, Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, tr.Addr)
		},
	}}
}

// through GETs url through Traefik with c (a new client when nil) and
// returns the status and body.
func through(t *testing.T, tr *testenv.Traefik, c *http.Client, url string) (int, string) {
	t.Helper()
	if c == nil {
		c = viaTraefik(t, tr)
	}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(b)
}

// signIn follows a student's sign-in link as their browser would and
// returns the signed-in client, after checking it reached their sandbox.
func signIn(t *testing.T, tr *testenv.Traefik, link, student string) *http.Client {
	t.Helper()
	c := viaTraefik(t, tr)
	code, body := through(t, tr, c, link)
	if code != http.StatusOK || !strings.Contains(body, `"student":"`+student+`"`) {
		t.Fatalf("%s's link %s: %d %.300s", student, link, code, body)
	}
	return c
}

// waitTab waits for a tab of the browser at an address starting with
// prefix, and returns a context of it.
func waitTab(t *testing.T, bctx context.Context, prefix string) context.Context {
	t.Helper()
	tg := findTab(t, bctx, prefix)
	ctx, cancel := chromedp.NewContext(bctx, chromedp.WithTargetID(tg.TargetID))
	t.Cleanup(cancel)
	return ctx
}

// findTab waits for a tab of the browser at an address starting with prefix.
func findTab(t *testing.T, bctx context.Context, prefix string) *target.Info {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		targets, err := chromedp.Targets(bctx)
		if err != nil {
			t.Fatal(err)
		}
		var urls []string
		for _, tg := range targets {
			if tg.Type == "page" && strings.HasPrefix(tg.URL, prefix) {
				return tg
			}
			urls = append(urls, tg.URL)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no tab at %s; the tabs: %q", prefix, urls)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitDownload waits for the browser to finish writing a download.
func waitDownload(t *testing.T, path string) []byte {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(path)
		if err == nil {
			if _, err := os.Stat(path + ".crdownload"); errors.Is(err, os.ErrNotExist) {
				return b
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	t.Fatalf("no download at %s; the folder holds %v", path, entries)
	return nil
}

// An administrator keeps the school's records on the pages: a subject, the
// registered classes from a roster file (a bad file is refused line by line
// and nothing is saved), a teacher of the subject, and a token for them that
// works until it is revoked on the page. The teacher then signs in with a
// new one and finds the registered class's roster.
func TestAdminKeepsTheSchoolRecords(t *testing.T) {
	testenv.Docker(t) // the controller answers ready only with a daemon
	sys := start(t, "")
	shots := artifactsDir(t)
	b := openBrowser(t, shots, t.TempDir(), "")
	run, value := b.run, b.value
	whoami := func(token string) (int, string) {
		var me struct {
			Name string `json:"name"`
		}
		code := sys.call(token, "GET", "/api/v1/whoami", nil, &me)
		return code, me.Name
	}

	b.open("sign in as the admin and open the records", sys.URL+"/ui/",
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), sys.admin+kb.Enter),
		waitFor("the records link", `!document.querySelector("#nav-school").hidden`, 10*time.Second),
		chromedp.Click(chromedp.CSS(`#nav a[href="#/school"]`)),
		waitFor("the records page", text("h1")+` === "School records"`, 10*time.Second),
		waitFor("no subjects yet", text("main")+`.includes("No subjects yet")`, 5*time.Second),
	)

	run("add a subject, after a bad id",
		chromedp.Click(chromedp.CSS(`section[aria-labelledby="subjects-title"] summary`)),
		chromedp.SendKeys(chromedp.CSS("#new-subject"), "Bio 101"+kb.Enter),
		waitFor("the id's error", text("#new-subject-error")+`.includes("lowercase letters")`, 5*time.Second),
		setValue("#new-subject", "bio101"),
		chromedp.SendKeys(chromedp.CSS("#new-subject-title"), "Biology"+kb.Enter),
		waitFor("the saved notice", text("#notice")+` === "Subject bio101 was saved."`, 10*time.Second),
		waitFor("the subject listed", text(`tr[data-subject="bio101"]`)+`.includes("Biology")`, 5*time.Second),
	)
	var subject struct {
		Title string `json:"title"`
	}
	if c := sys.call(sys.admin, "GET", "/api/v1/subjects/bio101", nil, &subject); c != http.StatusOK || subject.Title != "Biology" {
		t.Errorf("the subject as stored: %d %+v", c, subject)
	}

	// A roster file with two bad lines is refused, each line named, and
	// nothing is registered.
	run("a bad roster file",
		setValue("#roster-csv", "class,subject,student\nbio101-a,bio101,alice\nbio101-a,chem,bob\nbio101-a,bio101,Carol X\n"),
		chromedp.Click(chromedp.CSS(`button[value="import"]`)),
		waitFor("the refusal", text("#import-error")+` !== ""`, 10*time.Second),
		waitFor("both bad lines", `document.querySelectorAll("#import-result li.bad").length === 2`, 5*time.Second),
	)
	badLines := value(chromedp.Evaluate[string](`[...document.querySelectorAll("#import-result li")].map((li) => li.textContent).join("\n")`))
	t.Logf("bad lines shown:\n%s", badLines)
	if !strings.Contains(badLines, "Line 3:") || !strings.Contains(badLines, "Line 4:") || strings.Contains(badLines, "Line 2:") {
		t.Errorf("the bad lines shown: %q, want lines 3 and 4", badLines)
	}
	var rosters struct {
		Items []struct {
			ClassID  string   `json:"classId"`
			Students []string `json:"students"`
		} `json:"items"`
	}
	sys.call(sys.admin, "GET", "/api/v1/rosters", nil, &rosters)
	if len(rosters.Items) != 0 {
		t.Fatalf("a refused roster file registered %+v", rosters.Items)
	}

	// The good file, loaded from disk: checked first (nothing saved), then
	// imported.
	csv := filepath.Join(t.TempDir(), "rosters.csv")
	if err := os.WriteFile(csv, []byte("student,class,subject\nalice,bio101-a,bio101\nbob,bio101-a,bio101\ncarol,bio101-a,bio101\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run("check the good file",
		chromedp.SetUploadFiles(chromedp.CSS("#roster-file"), []string{csv}),
		waitFor("the file in the form", `document.querySelector("#roster-csv").value.includes("carol,bio101-a")`, 10*time.Second),
		chromedp.Click(chromedp.CSS("#check-rosters")),
		waitFor("the check's answer", text("#import-result")+` === "Every line is good: 1 class, 3 students (new: bio101-a). Nothing was saved yet."`, 10*time.Second),
	)
	sys.call(sys.admin, "GET", "/api/v1/rosters", nil, &rosters)
	if len(rosters.Items) != 0 {
		t.Fatalf("checking a roster file registered %+v", rosters.Items)
	}
	run("import it",
		chromedp.Click(chromedp.CSS(`button[value="import"]`)),
		waitFor("the imported notice", text("#notice")+` === "The rosters were imported: 1 class, 3 students (new: bio101-a)."`, 10*time.Second),
		waitFor("the class listed", text(`tr[data-roster="bio101-a"]`)+`.includes("alice, bob, carol")`, 5*time.Second),
	)
	sys.call(sys.admin, "GET", "/api/v1/rosters", nil, &rosters)
	if len(rosters.Items) != 1 || rosters.Items[0].ClassID != "bio101-a" || strings.Join(rosters.Items[0].Students, ",") != "alice,bob,carol" {
		t.Errorf("the registered classes: %+v", rosters.Items)
	}

	run("add a teacher of the subject",
		chromedp.Click(chromedp.CSS(`section[aria-labelledby="users-title"] summary`)),
		setValue("#new-teacher", "grace"),
		chromedp.Click(chromedp.CSS("#grant-bio101")),
		chromedp.Click(chromedp.CSS(`section[aria-labelledby="users-title"] form button[type="submit"]`)),
		waitFor("the saved notice", text("#notice")+`.startsWith("Teacher grace was saved.")`, 10*time.Second),
		waitFor("grace listed with the subject", text(`tr[data-user="grace"]`)+`.includes("bio101")`, 5*time.Second),
		waitFor("the subject's teacher", text(`tr[data-subject="bio101"]`)+`.includes("grace")`, 5*time.Second),
	)
	unlabelled := value(chromedp.Evaluate[string](`[...document.querySelectorAll("input, select, textarea, button")]
		.filter((el) => !(el.labels && el.labels.length) && !el.getAttribute("aria-label") && !el.textContent.trim())
		.map((el) => el.outerHTML).join("\n")`))
	if unlabelled != "" {
		t.Errorf("controls without a label:\n%s", unlabelled)
	}

	// A token, shown once; it works until it is revoked on the page.
	run("issue a token",
		chromedp.Click(chromedp.CSS(`button[data-issue="grace"]`)),
		waitFor("the token shown", `document.querySelector("#issued-token")?.value.length > 20`, 10*time.Second),
	)
	first := value(chromedp.Value(chromedp.CSS("#issued-token")))
	if code, name := whoami(first); code != http.StatusOK || name != "grace" {
		t.Fatalf("the issued token: whoami %d %q", code, name)
	}
	run("revoke it",
		chromedp.Click(chromedp.CSS(`details[data-tokens="grace"] summary`)),
		waitFor("grace's token listed", `document.querySelectorAll('details[data-tokens="grace"] li[data-token]').length === 1`, 10*time.Second),
		screenshot(t, shots, "08-school-records"),
		chromedp.Click(chromedp.CSS(`details[data-tokens="grace"] li[data-token] button`)),
		chromedp.WaitVisible(chromedp.CSS("#confirm-ok")),
		chromedp.Click(chromedp.CSS("#confirm-ok")),
		waitFor("the revoked notice", text("#notice")+` === "The token of grace was revoked."`, 10*time.Second),
		waitFor("no valid tokens", text(`details[data-tokens="grace"]`)+`.includes("No valid tokens.")`, 5*time.Second),
	)
	if code, _ := whoami(first); code != http.StatusUnauthorized {
		t.Errorf("a revoked token still answers %d", code)
	}

	// A phone: the records fit the screen.
	run("a phone screen",
		chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile),
		waitFor("the page laid out again", `document.documentElement.clientWidth <= 390`, 5*time.Second),
	)
	if overflow := value(chromedp.Evaluate[string](`String(document.documentElement.scrollWidth > window.innerWidth)`)); overflow != "false" {
		t.Errorf("the records page is wider than a phone's screen")
	}
	run("back to a laptop", chromedp.EmulateViewport(1280, 900))

	// grace signs in with a new token: no records for her, but the
	// registered class's roster when she creates the class.
	run("issue another token",
		chromedp.Click(chromedp.CSS(`button[data-issue="grace"]`)),
		waitFor("a new token shown", fmt.Sprintf(`(document.querySelector("#issued-token")?.value || %q) !== %q`, first, first), 10*time.Second),
	)
	second := value(chromedp.Value(chromedp.CSS("#issued-token")))
	run("sign in as grace",
		chromedp.Click(chromedp.CSS("#signout")),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), second+kb.Enter),
		waitFor("grace's name", text("#who-name")+`.includes("grace")`, 10*time.Second),
		waitFor("no records link", `document.querySelector("#nav-school").hidden`, 5*time.Second),
		chromedp.Navigate(sys.URL+"/ui/#/school"),
		waitFor("the records refused", text("main")+`.includes("Only administrators keep the school's records")`, 10*time.Second),
		chromedp.Navigate(sys.URL+"/ui/#/new"),
		chromedp.WaitVisible(chromedp.CSS("#class-id")),
		chromedp.SendKeys(chromedp.CSS("#class-id"), "bio101-a"+kb.Tab),
		waitFor("the official roster", text("#roster-note")+`.includes("has 3 students")`, 10*time.Second),
	)

	// Back as the admin: a subject in use is not removed, and says why; a
	// teacher who leaves is removed, and her token stops working.
	run("sign in as the admin again",
		chromedp.Click(chromedp.CSS("#signout")),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), sys.admin+kb.Enter),
		waitFor("the admin's name", text("#who-name")+`.includes("admin")`, 10*time.Second),
		chromedp.Navigate(sys.URL+"/ui/#/school"),
		waitFor("the records page", `!!document.querySelector('tr[data-user="grace"]')`, 10*time.Second),
		chromedp.Click(chromedp.CSS(`tr[data-subject="bio101"] button[data-remove]`)),
		chromedp.WaitVisible(chromedp.CSS("#confirm-ok")),
		chromedp.Click(chromedp.CSS("#confirm-ok")),
		waitFor("the refusal", text("#notice")+`.includes("1 registered classes and 1 users") && `+text("#notice")+`.includes("Remove or change those first.")`, 10*time.Second),
		chromedp.Click(chromedp.CSS(`tr[data-user="grace"] button[data-remove]`)),
		chromedp.WaitVisible(chromedp.CSS("#confirm-ok")),
		chromedp.Click(chromedp.CSS("#confirm-ok")),
		waitFor("the removed notice", text("#notice")+` === "User grace was removed."`, 10*time.Second),
		waitFor("grace gone from the list", `!document.querySelector('tr[data-user="grace"]')`, 5*time.Second),
	)
	if c := sys.call(sys.admin, "GET", "/api/v1/subjects/bio101", nil, nil); c != http.StatusOK {
		t.Errorf("the subject in use: GET answers %d after the refused removal", c)
	}
	if code, _ := whoami(second); code != http.StatusUnauthorized {
		t.Errorf("the token of a removed teacher answers %d", code)
	}
}
