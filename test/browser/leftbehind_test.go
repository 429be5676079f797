package browser

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/pkg/api"
)

// TestTeacherDeletesAClassWithWorkOnALostNode: a class Down whose work a
// lost swarm node still holds is not deleted by the usual click. The
// teacher is told whose work it is and where, keeps the class by
// declining, and deletes it only by choosing to give that work up.
func TestTeacherDeletesAClassWithWorkOnALostNode(t *testing.T) {
	testenv.Docker(t)
	// A store of the test's own, which the test writes the record of the
	// lost node's work into, as the Swarm runtime's controller would.
	uri, database := testenv.StoreURI(t)
	sys := start(t, "hr-leftbehind-no-router", "HOMEROOM_MONGO_URI="+uri, "HOMEROOM_MONGO_DATABASE="+database)
	st := testenv.OpenStore(t, uri, database)
	token := sys.teacher()
	shots := artifactsDir(t)
	if c := sys.call(token, "PUT", "/api/v1/classes/"+classID, map[string]any{"subject": "cs101", "template": "sandbox", "students": []string{"alice", "bob"}}, nil); c != http.StatusCreated {
		t.Fatalf("put class: %d", c)
	}
	ctx := context.Background()
	since := time.Date(2026, 12, 1, 4, 13, 54, 0, time.UTC)
	deadline := time.Now().Add(time.Minute)
	for {
		cur, err := st.Get(ctx, classID)
		if err != nil {
			t.Fatal(err)
		}
		if cur.Status.Phase == api.PhaseDown && cur.Status.ObservedGeneration == cur.Generation {
			s := cur.Status
			s.LeftBehind = map[string][]api.LeftBehind{"bob": {{On: "ytee37jj84wl", Reason: "the node it was on is down", Since: since, RunID: "20261201T041354Z-abcdef"}}}
			if _, err := st.UpdateStatus(ctx, classID, cur.Version, s); err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the class never came to rest Down: %+v", cur.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	exists := func() bool {
		c := sys.call(token, "GET", "/api/v1/classes/"+classID, nil, nil)
		if c != http.StatusOK && c != http.StatusNotFound {
			t.Fatalf("get class: %d", c)
		}
		return c == http.StatusOK
	}

	b := openBrowser(t, shots, t.TempDir(), "")
	b.open("sign in and ask to delete the class", sys.URL+"/",
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token+kb.Enter),
		chromedp.Click(chromedp.CSS(`main a[href="#/classes/`+classID+`"]`)),
		chromedp.WaitVisible(chromedp.CSS("#delete")),
		chromedp.Click(chromedp.CSS("#delete")),
		chromedp.WaitVisible(chromedp.CSS("#confirm-ok")),
		chromedp.Click(chromedp.CSS("#confirm-ok")),
		waitFor("the question about the lost node's work", `document.getElementById("confirm").open && `+text("#confirm-title")+`.includes("Give up work left on a lost node?")`, 10*time.Second),
		waitFor("whose work, where", text("#confirm-text")+`.includes("bob (on node ytee37jj84wl, since ")`, time.Second),
		screenshot(t, shots, "left-behind-question"),
		chromedp.Click(chromedp.CSS(`#confirm button[value="cancel"]`)),
		waitFor("the class kept", text("#notice")+`.includes("was kept")`, 5*time.Second),
	)
	if !exists() {
		t.Fatal("declining to give the work up deleted the class")
	}
	cur, err := st.Get(ctx, classID)
	if err != nil || len(cur.Status.LeftBehind["bob"]) != 1 {
		t.Fatalf("the record of bob's work on the lost node after declining: %+v, %v", cur, err)
	}
	b.run("delete it, giving that work up",
		chromedp.Click(chromedp.CSS("#delete")),
		chromedp.WaitVisible(chromedp.CSS("#confirm-ok")),
		chromedp.Click(chromedp.CSS("#confirm-ok")),
		waitFor("the question again", `document.getElementById("confirm").open && `+text("#confirm-title")+`.includes("Give up work")`, 10*time.Second),
		chromedp.Click(chromedp.CSS("#confirm-ok")),
		waitFor("the class list", `location.hash === "#/classes"`, 10*time.Second),
		waitFor("the deleted notice", text("#notice")+`.includes("was deleted")`, 5*time.Second),
	)
	if exists() {
		t.Error("the class is still there after the teacher gave its lost work up")
	}
}
