package browser

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/policy"
)

// gradesClassID is the class of TestTeacherSeesTheGradebook, apart from the
// other tests' classes so that they never share Docker objects.
const gradesClassID = "gb101-ui"

// fileGrader is the example grader `make images` builds.
const fileGrader = "homeroom/grader-file:dev"

// gradingPolicy is the built-in sandbox template with the example file
// grader: one point for workspace/answer.txt holding 42.
const gradingPolicy = `templates:
  - name: sandbox
    image: ` + testenv.SandboxImage + `
    port: 8080
    user: "65534:65534"
    collectPaths: [/workspace]
    memoryMiB: 128
    cpus: 0.5
    pids: 64
    readOnlyRootFS: true
    grader:
      image: ` + fileGrader + `
      command: [/grader-file, --expect, "workspace/answer.txt=42"]
      timeoutSeconds: 60
`

// updateScreenshots says whether the pictures in docs/ui are to be written
// again from this run's screenshots (HOMEROOM_UPDATE_SCREENSHOTS=1).
func updateScreenshots() bool { return os.Getenv("HOMEROOM_UPDATE_SCREENSHOTS") == "1" }

// A teacher reads the grades of a class after its Down: alice answered
// right, bob wrong, carol handed in nothing. The class page follows the
// grading until all three are graded and shows each student's state, score,
// the grader's feedback as text and its tests; Download CSV saves the
// gradebook a school's gradebook imports; Grade again grades the run as
// attempt 2, and the page follows that one too.
func TestTeacherSeesTheGradebook(t *testing.T) {
	d := testenv.Docker(t)
	if _, err := d.API().ImageInspect(context.Background(), fileGrader); err != nil {
		testenv.Unavailable(t, "image %s (make images builds it): %v", fileGrader, err)
	}
	testenv.CleanupClass(t, d, gradesClassID)
	pol := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(pol, []byte(gradingPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := policy.Load(pol); err != nil {
		t.Fatal(err)
	}
	// No router: the students' work is saved on the class network, and the
	// teacher pages need none.
	ts := testenv.StartSystem(t, "hr-gradebook-no-router", "HOMEROOM_POLICY="+pol)
	sys := &system{System: ts, t: t, admin: ts.AdminToken}
	token := sys.teacher()
	shots := artifactsDir(t)
	downloads := t.TempDir()

	// The class, registered with its roster, Up; alice and bob save their
	// answers, carol nothing; then Down.
	base := "/api/v1/classes/" + gradesClassID
	students := []string{"alice", "bob", "carol"}
	if c := sys.call(sys.admin, "PUT", "/api/v1/rosters/"+gradesClassID, map[string]any{"subject": "cs101", "students": students}, nil); c >= 300 {
		t.Fatalf("roster: %d", c)
	}
	if c := sys.call(token, "PUT", base, map[string]any{"subject": "cs101", "template": "sandbox", "students": students, "ttlSeconds": 3600}, nil); c >= 300 {
		t.Fatalf("class: %d", c)
	}
	if c := sys.call(token, "POST", base+"/up", nil, nil); c != http.StatusAccepted {
		t.Fatalf("up: %d", c)
	}
	sys.waitPhase(token, gradesClassID, api.PhaseUp, 2*time.Minute)
	testenv.SaveFile(t, d, gradesClassID, "alice", "answer.txt", "42\n")
	testenv.SaveFile(t, d, gradesClassID, "bob", "answer.txt", "41\n")
	if c := sys.call(token, "POST", base+"/down", nil, nil); c != http.StatusAccepted {
		t.Fatalf("down: %d", c)
	}
	sys.waitPhase(token, gradesClassID, api.PhaseDown, 3*time.Minute)
	var cl api.Class
	sys.call(token, "GET", base, nil, &cl)
	if cl.Status.Run == nil || cl.Status.Run.ID == "" {
		t.Fatalf("no run after the Down: %+v", cl.Status)
	}
	runID := cl.Status.Run.ID

	// The teacher signs in and opens the class, which may still be grading:
	// the page follows it until every student is graded.
	b := openBrowser(t, shots, downloads, "")
	run, value := b.run, b.value
	graded := func(attempt int) string {
		return fmt.Sprintf(`document.querySelector("#grades")?.dataset.attempt === "%d" &&
			document.querySelector("#grades-status")?.dataset.grading === "graded" &&
			document.querySelectorAll('#grades-table tr[data-grade] [data-grade-state="graded"]').length === 3 &&
			%s.startsWith("3 of 3 students graded (attempt %d)")`, attempt, text("#grades-status"), attempt)
	}
	t0 := time.Now()
	b.open("sign in and open the class", sys.URL+"/",
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token+kb.Enter),
		waitFor("the class in the list", `!!document.querySelector('[data-class="`+gradesClassID+`"] [data-phase="Down"]')`, 20*time.Second),
		chromedp.Click(chromedp.CSS(`main a[href="#/classes/`+gradesClassID+`"]`)),
		waitFor("the class page", `location.hash === "#/classes/`+gradesClassID+`" && !!document.querySelector('[data-phase="Down"]')`, 10*time.Second),
		waitFor("the Grades section", `document.querySelector("#grades h2")?.textContent === "Grades"`, 10*time.Second),
		waitFor("three students graded", graded(1), 3*time.Minute),
	)
	t.Logf("all graded on the page %s after it was opened", time.Since(t0).Round(100*time.Millisecond))

	// What the page shows, against what the API says.
	var book api.Gradebook
	if c := sys.call(token, "GET", base+"/runs/"+runID+"/grades", nil, &book); c != http.StatusOK || book.Attempt != 1 || len(book.Items) != 3 {
		t.Fatalf("the gradebook: %d %+v", c, book)
	}
	wantFeedback := map[string]string{
		"alice": "1 of 1 answer right.",
		"bob":   "0 of 1 answer right. answer.txt does not hold the expected answer.",
		"carol": "0 of 1 answer right. answer.txt was not handed in.",
	}
	for _, it := range book.Items {
		if it.Feedback != wantFeedback[it.Student] {
			t.Errorf("%s's feedback from the grader: %q, want %q", it.Student, it.Feedback, wantFeedback[it.Student])
		}
	}
	want := []gradeShown{
		{Student: "alice", State: "Graded", Score: "1 / 1", Feedback: wantFeedback["alice"], Tests: "1 test"},
		{Student: "bob", State: "Graded", Score: "0 / 1", Feedback: wantFeedback["bob"], Tests: "1 test"},
		{Student: "carol", State: "Graded", Score: "0 / 1", Feedback: wantFeedback["carol"], Tests: "1 test"},
	}
	rows := gradesShown(t, value)
	if fmt.Sprintf("%+v", rows) != fmt.Sprintf("%+v", want) {
		t.Errorf("the gradebook shown:\n%+v\nwant\n%+v", rows, want)
	}
	if status := value(chromedp.Text(chromedp.CSS("#grades-status"))); !strings.HasPrefix(status, "3 of 3 students graded (attempt 1) · collected ") {
		t.Errorf("the grading's status shown: %q", status)
	}
	if strings.Contains(value(chromedp.Evaluate[string](text("#grades-table"))), "42") {
		t.Errorf("the page gives the expected answer away")
	}

	// The file grader's feedback never carries the student's own text, so
	// no feedback with markup can be made here; instead: nothing in the
	// table is an element the page did not make, and what graders wrote
	// (feedback, tests' names and messages) holds text alone.
	made := value(chromedp.Evaluate[string](`JSON.stringify({
		tags: [...new Set([...document.querySelectorAll("#grades-table *")].map((el) => el.localName))].sort(),
		inGraderText: [...document.querySelectorAll("#grades-table .feedback, #grades-table .test-name")].filter((el) => el.childElementCount > 0).map((el) => el.outerHTML),
		attrs: [...document.querySelectorAll("#grades-table *")].flatMap((el) => [...el.attributes].map((a) => a.name))
			.filter((n) => !["class", "id", "scope", "data-label", "data-grade", "data-grade-state", "open"].includes(n)),
	})`))
	var dom struct {
		Tags         []string
		InGraderText []string
		Attrs        []string
	}
	if err := json.Unmarshal([]byte(made), &dom); err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{"caption": true, "thead": true, "tbody": true, "tr": true, "th": true, "td": true,
		"span": true, "div": true, "details": true, "summary": true, "ul": true, "li": true}
	for _, tag := range dom.Tags {
		if !allowed[tag] {
			t.Errorf("the grades table holds a <%s>, which the page does not make", tag)
		}
	}
	if len(dom.InGraderText) > 0 || len(dom.Attrs) > 0 {
		t.Errorf("elements inside a grader's text: %q; unexpected attributes: %q", dom.InGraderText, dom.Attrs)
	}

	// A button's name, as a screen reader or voice control has it, holds
	// the words it shows.
	if named := value(chromedp.Evaluate[string](`[...document.querySelectorAll("#grades button")]
		.filter((b) => b.getAttribute("aria-label") !== null && !b.getAttribute("aria-label").includes(b.textContent.trim()))
		.map((b) => b.textContent.trim() + ": " + b.getAttribute("aria-label")).join("\n")`)); named != "" {
		t.Errorf("buttons of the Grades section whose name leaves out the words they show:\n%s", named)
	}

	// bob's tests, opened: the test's name, its points and its message.
	run("open bob's tests",
		chromedp.Click(chromedp.CSS("#tests-bob")),
		waitFor("bob's test", `document.querySelector('tr[data-grade="bob"] details')?.open === true &&
			document.querySelectorAll('tr[data-grade="bob"] ul.tests li').length === 1`, 5*time.Second),
	)
	bobTest := value(chromedp.Evaluate[string](`JSON.stringify([...document.querySelectorAll('tr[data-grade="bob"] ul.tests li > span')].map((s) => s.textContent))`))
	if bobTest != `["workspace/answer.txt","0 / 1","answer.txt does not hold the expected answer"]` {
		t.Errorf("bob's test shown: %s", bobTest)
	}
	run("a picture of the gradebook",
		chromedp.ScrollIntoView(chromedp.CSS("#grades")),
		paddedShot(t, shots, "grades-01-graded", "#grades", 16),
	)
	if updateScreenshots() && t.Failed() {
		t.Errorf("docs/ui/gradebook.png is not written from a page that failed its checks")
	} else if updateScreenshots() {
		png, err := os.ReadFile(filepath.Join(shots, "grades-01-graded.png"))
		if err == nil {
			err = os.WriteFile(filepath.Join("..", "..", "docs", "ui", "gradebook.png"), png, 0o644)
		}
		if err != nil {
			t.Fatalf("docs/ui/gradebook.png: %v", err)
		}
		t.Logf("wrote docs/ui/gradebook.png")
	}

	// Download CSV: the file the browser saves is the gradebook as CSV,
	// the same bytes the API gives with Accept: text/csv.
	run("download the CSV",
		chromedp.Click(chromedp.CSS("#grades-csv")),
		waitFor("the button back", `document.querySelector("#grades-csv")?.textContent === "Download CSV" && !document.querySelector("#grades-csv").disabled`, 10*time.Second),
	)
	csvFile := waitDownload(t, filepath.Join(downloads, gradesClassID+"-"+runID+"-grades.csv"))
	recs, err := csv.NewReader(bytes.NewReader(csvFile)).ReadAll()
	if err != nil {
		t.Fatalf("the downloaded CSV: %v\n%s", err, csvFile)
	}
	if got, want := fmt.Sprint(recs), fmt.Sprint([][]string{{"student", "score", "max"}, {"alice", "1", "1"}, {"bob", "0", "1"}, {"carol", "0", "1"}}); got != want {
		t.Errorf("the downloaded CSV's rows: %s, want %s", got, want)
	}
	if fromAPI := gradesCSV(t, sys.URL+base+"/runs/"+runID+"/grades", token); !bytes.Equal(csvFile, fromAPI) {
		t.Errorf("the downloaded CSV:\n%s\ndiffers from the API's:\n%s", csvFile, fromAPI)
	}

	// Grade again, after a confirmation: attempt 2, followed until graded.
	run("grade again",
		chromedp.Click(chromedp.CSS("#regrade")),
		chromedp.WaitVisible(chromedp.CSS("#confirm-ok")),
		waitFor("the confirmation's title", text("#confirm-title")+` === "Grade `+gradesClassID+` again?"`, 5*time.Second),
		chromedp.Click(chromedp.CSS("#confirm-ok")),
		waitFor("the started notice", text("#notice")+` === "Grading attempt 2 of `+gradesClassID+` started. The grades appear here as they arrive."`, 10*time.Second),
		waitFor("attempt 2 graded", graded(2), 2*time.Minute),
		chromedp.ScrollIntoView(chromedp.CSS("#grades")),
		paddedShot(t, shots, "grades-02-attempt-2", "#grades", 16),
	)
	if rows := gradesShown(t, value); fmt.Sprintf("%+v", rows) != fmt.Sprintf("%+v", want) {
		t.Errorf("the gradebook shown after Grade again:\n%+v\nwant\n%+v", rows, want)
	}
	sys.call(token, "GET", base, nil, &cl)
	if g := api.FindCondition(cl.Status.Conditions, api.ConditionGraded); g == nil || g.Status != "True" || g.Message != "3 of 3 students graded (attempt 2)" {
		t.Errorf("Graded after Grade again: %+v", g)
	}
	if c := sys.call(token, "GET", base+"/runs/"+runID+"/grades", nil, &book); c != http.StatusOK || book.Attempt != 2 {
		t.Errorf("the gradebook after Grade again: %d %+v", c, book)
	}

	// On a phone the gradebook fits the screen.
	run("a phone screen",
		chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile),
		waitFor("the page laid out again", `document.documentElement.clientWidth <= 390`, 5*time.Second),
		chromedp.ScrollIntoView(chromedp.CSS("#grades")),
		screenshot(t, shots, "grades-03-phone"),
	)
	if overflow := value(chromedp.Evaluate[string](`String(document.documentElement.scrollWidth > window.innerWidth)`)); overflow != "false" {
		t.Errorf("the class page with its gradebook is wider than a phone's screen")
	}
}

// paddedShot keeps a picture of one element with pad pixels of the page
// around it, as the pictures in docs/ui show a part of a page.
func paddedShot(t *testing.T, dir, name, sel string, pad int) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		js := fmt.Sprintf(`(() => {
			const r = document.querySelector(%q).getBoundingClientRect(), p = %d;
			const x = Math.max(0, Math.floor(r.left + scrollX - p)), y = Math.max(0, Math.floor(r.top + scrollY - p));
			const right = Math.min(document.documentElement.scrollWidth, Math.ceil(r.right + scrollX + p));
			return JSON.stringify({x, y, width: right - x, height: Math.ceil(r.bottom + scrollY + p) - y, scale: 1});
		})()`, sel, pad)
		box, err := chromedp.Evaluate[string](js)(ctx, tg)
		if err != nil {
			return err
		}
		var clip page.Viewport
		if err := json.Unmarshal([]byte(box), &clip); err != nil {
			return err
		}
		yes := true
		shot, err := cdp.Call(ctx, tg, page.CaptureScreenshot, page.CaptureScreenshotParams{
			Format: page.CaptureScreenshotFormatPng, Clip: &clip, CaptureBeyondViewport: &yes, FromSurface: &yes})
		if err != nil {
			return err
		}
		p := filepath.Join(dir, name+".png")
		t.Logf("screenshot %s", p)
		return os.WriteFile(p, shot.Data, 0o644)
	})
}

// gradeShown is one row of the gradebook as the page shows it.
type gradeShown struct {
	Student, State, Score, Feedback, Tests string
}

// gradesShown reads the gradebook's rows off the page.
func gradesShown(t *testing.T, value func(chromedp.Action[string]) string) []gradeShown {
	t.Helper()
	js := `JSON.stringify([...document.querySelectorAll("#grades-table tbody tr[data-grade]")].map((tr) => {
		const cell = (label) => tr.querySelector('td[data-label="' + label + '"]');
		return {Student: cell("Student")?.textContent || "", State: cell("State")?.textContent || "", Score: cell("Score")?.textContent || "",
			Feedback: cell("Feedback")?.querySelector(":scope > .feedback")?.textContent || "",
			Tests: cell("Feedback")?.querySelector("summary")?.textContent || ""};
	}))`
	var rows []gradeShown
	if err := json.Unmarshal([]byte(value(chromedp.Evaluate[string](js))), &rows); err != nil {
		t.Fatal(err)
	}
	return rows
}

// gradesCSV GETs a gradebook as CSV with token, as a script would.
func gradesCSV(t *testing.T, url, token string) []byte {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/csv")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" {
		t.Fatalf("GET %s as CSV: %d %s %v", url, resp.StatusCode, resp.Header.Get("Content-Type"), err)
	}
	return b
}
