package browser

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/pkg/api"
)

// TestTeacherSetsATimetable: a teacher gives a class weekly lessons on its
// edit page; a bad time zone is refused in words with nothing written; the
// class page then shows the week ahead, and the one-off session set
// beforehand (with homeroomctl) is kept.
func TestTeacherSetsATimetable(t *testing.T) {
	testenv.Docker(t)
	sys := start(t, "hr-timetable-no-router")
	token := sys.teacher()
	shots := artifactsDir(t)

	// The one-off session is on a Saturday evening in Berlin, so it never
	// overlaps the weekday lessons added below, whatever day and hour the
	// test runs (the server refuses overlapping sessions).
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	day := time.Now().In(berlin).AddDate(0, 0, 2)
	for day.Weekday() != time.Saturday {
		day = day.AddDate(0, 0, 1)
	}
	oneOff := time.Date(day.Year(), day.Month(), day.Day(), 18, 0, 0, 0, berlin).UTC()
	if c := sys.call(token, "PUT", "/api/v1/classes/"+classID, map[string]any{"subject": "cs101", "template": "sandbox", "students": []string{"alice", "bob"},
		"schedule": map[string]any{"timezone": "Europe/Berlin", "sessions": []map[string]string{
			{"start": oneOff.Format(time.RFC3339), "end": oneOff.Add(time.Hour).Format(time.RFC3339)}}}}, nil); c != http.StatusCreated {
		t.Fatalf("put class: %d", c)
	}
	stored := func() *api.Schedule {
		var cl api.Class
		if c := sys.call(token, "GET", "/api/v1/classes/"+classID, nil, &cl); c != http.StatusOK {
			t.Fatalf("get class: %d", c)
		}
		return cl.Spec.Schedule
	}

	b := openBrowser(t, shots, t.TempDir(), "")
	b.open("sign in and open the class's edit page", sys.URL+"/",
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token+kb.Enter),
		chromedp.Click(chromedp.CSS(`main a[href="#/classes/`+classID+`"]`)),
		chromedp.Click(chromedp.CSS(`main a[href="#/classes/`+classID+`/edit"]`)),
		waitFor("the timetable editor", text("#timetable-editor")+`.includes("1 one-off session(s)")`, 10*time.Second),
		chromedp.Click(chromedp.CSS("#add-lesson")),
		chromedp.Click(chromedp.CSS("#add-lesson")),
		script(`(() => {
			const [a, b] = document.querySelectorAll("#lessons fieldset.lesson");
			for (const d of ["mon", "tue", "wed", "thu", "fri"]) a.querySelector("input[value=" + d + "]").click();
			b.querySelector("input[value=wed]").click();
			return true; })()`),
		setValue("#lessons fieldset.lesson:nth-of-type(2) .lesson-start", "13:00"),
		setValue("#lessons fieldset.lesson:nth-of-type(2) .lesson-end", "14:00"),
		setValue("#timezone", "Mars/Olympus"),
		chromedp.Click(chromedp.CSS(`form button[type="submit"]`)),
		waitFor("the server's refusal", text("#form-error")+`.includes("Mars/Olympus")`, 10*time.Second),
	)
	if s := stored(); s == nil || len(s.Weekly) != 0 || len(s.Sessions) != 1 {
		t.Fatalf("a refused timetable was written: %+v", s)
	}
	b.run("save it with a real time zone",
		setValue("#timezone", "Europe/Berlin"),
		chromedp.Click(chromedp.CSS(`form button[type="submit"]`)),
		waitFor("the class page's week", `document.querySelectorAll("#week .session").length >= 5`, 10*time.Second),
		elementShot(t, shots, "timetable-week", "#timetable"),
	)
	s := stored()
	if s == nil || s.Timezone != "Europe/Berlin" || len(s.Weekly) != 2 || len(s.Weekly[0].Days) != 5 || s.Weekly[1].Start != "13:00" ||
		len(s.Sessions) != 1 || !s.Sessions[0].Start.Equal(oneOff) || s.ReadyBefore() != 5*time.Minute {
		t.Fatalf("the timetable as stored: %+v", s)
	}
	// Every lesson in the week view is at its Berlin time.
	got := b.value(chromedp.Evaluate[string](`[...document.querySelectorAll("#week .session strong")].map((e) => e.textContent).join(" ")`))
	for _, want := range []string{"09:00", "10:30", "13:00"} {
		if !strings.Contains(got, want) {
			t.Errorf("week view %q has no %s", got, want)
		}
	}
}

// script runs JavaScript on the page once, for what it does.
func script(js string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](js)(ctx, tg)
		return err
	})
}
