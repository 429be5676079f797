package browser

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/signin"
)

// notebookClassID is the class of TestStudentWorksInANotebook, apart from
// TestTeacherBringsAClassUpAndDown's so that the two never share Docker
// objects.
const notebookClassID = "nb101-ui"

// The cell alice types: it writes her answer to a file and plots.
const (
	answer    = "42\n"
	notebookQ = `%matplotlib inline
import numpy as np
import matplotlib.pyplot as plt
open("answer.txt", "w").write("42\n")
x = np.linspace(0, 2 * np.pi, 200)
plt.plot(x, np.sin(x), label="sin(x)")
plt.plot(x, np.cos(x), label="cos(x)")
plt.legend()
plt.show()`
)

// A student works in the notebook template as a class would: alice follows
// her sign-in link in Chromium and lands on Jupyter's file list, makes a
// notebook from the New menu, types a cell that writes answer.txt and
// plots, runs it (the kernel's websocket, through Traefik and the sign-in
// check), and saves it. bob's session does not reach her notebook. At Down,
// her notebook and answer.txt are collected exactly as Jupyter held them,
// and Jupyter's checkpoints are not.
func TestStudentWorksInANotebook(t *testing.T) {
	d := testenv.Docker(t)
	testenv.CleanupClass(t, d, notebookClassID)
	tr := testenv.StartTraefik(t, d)
	sys := start(t, tr.Name)
	token := sys.teacher()
	shots := artifactsDir(t)

	var templates struct {
		Items []struct{ Name, Image string }
	}
	sys.call(token, "GET", "/api/v1/templates", nil, &templates)
	i := slices.IndexFunc(templates.Items, func(tp struct{ Name, Image string }) bool { return tp.Name == "notebook" })
	if i < 0 {
		t.Fatalf("no notebook template in the allowlist: %+v", templates.Items)
	}
	if _, err := d.API().ImageInspect(context.Background(), templates.Items[i].Image); err != nil {
		testenv.Unavailable(t, "image %s (run make notebook): %v", templates.Items[i].Image, err)
	}

	// The class, registered with its roster, Up.
	base := "/api/v1/classes/" + notebookClassID
	if c := sys.call(sys.admin, "PUT", "/api/v1/rosters/"+notebookClassID, map[string]any{
		"subject": "cs101", "students": []string{"alice", "bob"}}, nil); c >= 300 {
		t.Fatalf("roster: %d", c)
	}
	if c := sys.call(token, "PUT", base, map[string]any{
		"subject": "cs101", "template": "notebook", "students": []string{"alice", "bob"}, "ttlSeconds": 3600}, nil); c >= 300 {
		t.Fatalf("class: %d", c)
	}
	if c := sys.call(token, "POST", base+"/up", nil, nil); c != http.StatusAccepted {
		t.Fatalf("up: %d", c)
	}
	t0 := time.Now()
	sys.waitPhase(token, notebookClassID, api.PhaseUp, 4*time.Minute)
	t.Logf("two notebooks Up in %s", time.Since(t0).Round(100*time.Millisecond))

	host := func(student string) string { return student + "." + notebookClassID + ".lab.localhost" }
	alice := "http://" + host("alice")
	// Traefik applies the new routes a moment after the sandboxes start:
	// until then it answers 404. Then, without a session, 401.
	for _, st := range []string{"alice", "bob"} {
		deadline := time.Now().Add(30 * time.Second)
		code, body := through(t, tr, nil, "http://"+host(st)+"/api")
		for ; code == http.StatusNotFound && time.Now().Before(deadline); code, body = through(t, tr, nil, "http://"+host(st)+"/api") {
			time.Sleep(100 * time.Millisecond)
		}
		if code != http.StatusUnauthorized {
			t.Fatalf("%s's notebook without signing in: %d %.200s", st, code, body)
		}
	}

	var issued struct {
		Items []struct{ Student, URL string }
	}
	if c := sys.call(token, "POST", base+"/links", map[string]any{}, &issued); c != http.StatusOK && c != http.StatusCreated {
		t.Fatalf("links: %d", c)
	}
	links := map[string]string{}
	for _, l := range issued.Items {
		links[l.Student] = l.URL
	}
	if links["alice"] == "" || links["bob"] == "" {
		t.Fatalf("links: %+v", issued.Items)
	}

	// alice follows her link: signed in, she is at her notebook's file
	// list, at the root of her host.
	b := openBrowser(t, shots, t.TempDir(), "MAP *.lab.localhost "+tr.Addr)
	jt := *b
	jt.jupyter = true
	tree := &notebookTab{&jt}
	tree.open("alice follows her link", links["alice"],
		waitFor("Jupyter's file list", `location.origin === `+strconv.Quote(alice)+` && location.pathname === "/tree" && !!document.querySelector("#notebook_list")`, 30*time.Second),
		waitFor("an empty home", text("#notebook_list")+`.includes("The notebook list is empty")`, 20*time.Second),
		waitFor("the kernels in the New menu", `!!document.querySelector("#kernel-python3 a")`, 20*time.Second),
		screenshot(t, shots, "notebook-01-tree"),
	)

	// New → Python 3 (ipykernel): Jupyter opens the new notebook in a tab
	// of its own.
	tree.run("New → Python 3",
		chromedp.Click(chromedp.CSS("#new-dropdown-button")),
		chromedp.WaitVisible(chromedp.CSS("#kernel-python3 a")),
		waitFor("the kernel's name", text("#kernel-python3 a")+` === "Python 3 (ipykernel)"`, time.Second),
		chromedp.Click(chromedp.CSS("#kernel-python3 a")),
	)
	// Attaching to a tab that is still loading races inside chromedp, so
	// the new tab is closed and its notebook opened here instead, as a click
	// on it in the file list would.
	nbURL := closeNewTab(t, b.ctx, alice+"/notebooks/")
	nb := tree
	nb.open("the new notebook", nbURL,
		waitFor("the notebook", `typeof Jupyter !== "undefined" && !!Jupyter.notebook && Jupyter.notebook._fully_loaded === true`, 30*time.Second),
		waitFor("its kernel idle, over the websocket",
			`!!Jupyter.notebook.kernel && Jupyter.notebook.kernel.is_connected() && document.querySelector("#kernel_indicator_icon").classList.contains("kernel_idle_icon")`, 60*time.Second),
	)
	if got := nb.value(`Jupyter.notebook.notebook_name`); got != "Untitled.ipynb" {
		t.Fatalf("the new notebook is named %q", got)
	}

	// She names it: a click on its name, the new name typed over the old
	// one (Jupyter selects it), Enter.
	const name = "waves.ipynb"
	nb.run("name the notebook",
		chromedp.EmulateViewport(1280, 900),
		chromedp.Click(chromedp.CSS("#notebook_name")),
		waitFor("the rename dialog, its name selected", `(() => { const el = document.activeElement;
			return !!el && el.matches(".modal input[type=text]") && el.value === "Untitled" && el.selectionStart === 0 && el.selectionEnd === el.value.length; })()`, 10*time.Second),
		chromedp.KeyEvent(strings.TrimSuffix(name, ".ipynb")),
		press("Enter", "Enter", 13, 0),
		waitFor("the notebook renamed", `Jupyter.notebook.notebook_name === `+strconv.Quote(name)+` && location.pathname === "/notebooks/`+name+`" && !document.querySelector(".modal")`, 20*time.Second),
	)

	// She types the cell into the editor, key by key, and runs it with
	// Shift+Enter. The editor closes brackets and quotes as she types, and
	// takes the closing ones she types over them. Enter is pressed as
	// press does it: chromedp's KeyEvent follows the key's keydown, which
	// CodeMirror takes as a new line, with a "\r" character event that
	// Chromium does not drop, and each line would get an empty one after.
	typing := []chromedp.Action[chromedp.Void]{chromedp.Click(chromedp.CSS(".cell.code_cell .CodeMirror"))}
	for i, line := range strings.Split(notebookQ, "\n") {
		if i > 0 {
			typing = append(typing, press("Enter", "Enter", 13, 0))
		}
		typing = append(typing, chromedp.SendKeys(chromedp.CSS(".cell.code_cell.selected .CodeMirror textarea"), line))
	}
	nb.run("type the cell", typing...)
	if got := nb.value(`Jupyter.notebook.get_cell(0).get_text()`); got != notebookQ {
		t.Fatalf("the cell holds %q, want %q", got, notebookQ)
	}
	nb.run("run it",
		press("Enter", "Enter", 13, chromedp.ModifierShift),
		waitFor("the plot", `(() => { const img = document.querySelector(".cell.code_cell .output_area img");
			return !!img && img.complete && img.naturalWidth > 300; })()`, 60*time.Second),
		waitFor("the kernel idle", `document.querySelector("#kernel_indicator_icon").classList.contains("kernel_idle_icon")`, 30*time.Second),
	)
	if errs := nb.value(`[...document.querySelectorAll(".output_error")].map((e) => e.innerText).join("\n")`); errs != "" {
		t.Errorf("the cell failed: %s", errs)
	}
	// (A kernel may warn on stderr, e.g. matplotlib that it is building its
	// font cache in a new sandbox when that takes over 5 s: not a failure.)
	if warned := nb.value(`[...document.querySelectorAll(".output_stderr")].map((e) => e.innerText).join("\n")`); warned != "" {
		t.Logf("the cell's stderr: %s", warned)
	}
	if got := nb.value(`JSON.stringify(Jupyter.notebook.get_cells().map((c) => c.get_text()))`); got != `[`+strconv.Quote(notebookQ)+`,""]` {
		t.Errorf("the notebook's cells after running the first: %s", got)
	}

	// Ctrl+S saves and makes a checkpoint.
	nb.run("save",
		chromedp.Evaluate[chromedp.Void](`window.checkpoints = 0; Jupyter.notebook.events.on("checkpoint_created.Notebook", () => { window.checkpoints++; }); 0`),
		press("s", "KeyS", 83, chromedp.ModifierCtrl),
		waitFor("the checkpoint", `window.checkpoints === 1 && !Jupyter.notebook.dirty`, 30*time.Second),
		waitFor("the page saying so", text(".checkpoint_status")+`.startsWith("Last Checkpoint:") && `+text(".autosave_status")+` === "(autosaved)"`, 10*time.Second),
		// Escape to command mode: the cell ran, nothing is being edited.
		press("Escape", "Escape", 27, 0),
		waitFor("command mode", `Jupyter.notebook.mode === "command"`, 5*time.Second),
		screenshot(t, shots, "notebook-02-plot"),
	)

	// What Jupyter holds, read through Traefik with alice's session from
	// her page: the notebook, her answer, and the checkpoint (which lives
	// in .ipynb_checkpoints, hidden from Jupyter's file API but not from
	// the collection unless the template excludes it).
	ipynb, code := nb.fetch("/files/" + url.PathEscape(name))
	if code != http.StatusOK || !json.Valid(ipynb) || !strings.Contains(string(ipynb), "image/png") || !strings.Contains(string(ipynb), "answer.txt") {
		t.Fatalf("GET /files/%s: %d %.300s", name, code, ipynb)
	}
	got, code := nb.fetch("/files/answer.txt")
	if code != http.StatusOK || string(got) != answer {
		t.Fatalf("GET /files/answer.txt: %d %q, want %q", code, got, answer)
	}
	cps, code := nb.fetch("/api/contents/" + url.PathEscape(name) + "/checkpoints")
	var checkpoints []struct{ ID string }
	if code != http.StatusOK || json.Unmarshal(cps, &checkpoints) != nil || len(checkpoints) != 1 {
		t.Fatalf("the notebook's checkpoints: %d %s", code, cps)
	}
	ctr := "homeroom-" + notebookClassID + "-alice"
	cpFile := "/home/jovyan/.ipynb_checkpoints/" + strings.TrimSuffix(name, ".ipynb") + "-checkpoint.ipynb"
	if st, err := d.API().ContainerStatPath(context.Background(), ctr, cpFile); err != nil || st.Size == 0 {
		t.Fatalf("the checkpoint %s in %s: %+v %v", cpFile, ctr, st, err)
	}
	if _, code := nb.fetch("/api/contents/.ipynb_checkpoints"); code != http.StatusNotFound {
		t.Logf("Jupyter shows its hidden checkpoint directory: %d", code)
	}

	// bob's session is for his host: on alice's, Homeroom's check refuses
	// it (403) before anything reaches her notebook.
	bob := viaTraefik(t, tr)
	if code, body := through(t, tr, bob, links["bob"]); code != http.StatusOK || !strings.Contains(body, "notebook_list") {
		t.Fatalf("bob's link: %d %.300s", code, body)
	}
	var bobSession string
	for _, c := range bob.Jar.Cookies(&url.URL{Scheme: "http", Host: host("bob"), Path: "/"}) {
		if c.Name == signin.CookieName {
			bobSession = c.Value
		}
	}
	if bobSession == "" {
		t.Fatalf("bob's link set no %s cookie", signin.CookieName)
	}
	req, _ := http.NewRequest("GET", alice+"/files/answer.txt", nil)
	req.Header.Set("Cookie", signin.CookieName+"="+bobSession)
	req.Header.Set("Referer", alice+"/tree")
	resp, err := bob.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	refusal, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(refusal), "forbidden") {
		t.Errorf("bob's session on alice's notebook: %d %.300s, want Homeroom's 403", resp.StatusCode, refusal)
	}

	// Down: her work is collected, then everything is removed.
	if c := sys.call(token, "POST", base+"/down", nil, nil); c != http.StatusAccepted {
		t.Fatalf("down: %d", c)
	}
	t0 = time.Now()
	sys.waitPhase(token, notebookClassID, api.PhaseDown, 4*time.Minute)
	t.Logf("collected and removed in %s", time.Since(t0).Round(100*time.Millisecond))

	var listed struct {
		Items []struct{ Student, RunID, Path, SHA256 string }
	}
	if c := sys.call(token, "GET", base+"/artifacts", nil, &listed); c != http.StatusOK {
		t.Fatalf("artifacts: %d", c)
	}
	if len(listed.Items) == 0 {
		t.Fatal("nothing was collected")
	}
	var paths []string
	for _, a := range listed.Items {
		paths = append(paths, a.Student+"/"+a.Path)
		if strings.Contains(a.Path, ".ipynb_checkpoints") {
			t.Errorf("a checkpoint was collected: %s's %s", a.Student, a.Path)
		}
	}
	t.Logf("collected: %s", strings.Join(paths, " "))
	for _, f := range []struct {
		name string
		want []byte
	}{{name, ipynb}, {"answer.txt", []byte(answer)}} {
		p := "files/home/jovyan/" + f.name
		if !slices.Contains(paths, "alice/"+p) {
			t.Errorf("alice's %s is not listed", p)
		}
		var body []byte
		if c := sys.call(token, "GET", base+"/artifacts/alice/"+p, nil, &body); c != http.StatusOK || string(body) != string(f.want) {
			t.Errorf("alice's collected %s: %d, %d bytes, want the %d Jupyter held:\n%.500s", f.name, c, len(body), len(f.want), body)
		}
	}

	// The run as a grader downloads it: the same bytes, and alice's
	// manifest says why the checkpoints are not there.
	var zipped []byte
	if c := sys.call(token, "GET", base+"/runs/"+listed.Items[0].RunID+"/archive?format=zip", nil, &zipped); c != http.StatusOK {
		t.Fatalf("the run's archive: %d", c)
	}
	zr, err := zip.NewReader(bytes.NewReader(zipped), int64(len(zipped)))
	if err != nil {
		t.Fatal(err)
	}
	inZip := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		inZip[f.Name], err = io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(f.Name, ".ipynb_checkpoints") {
			t.Errorf("the archive holds a checkpoint: %s", f.Name)
		}
	}
	if !bytes.Equal(inZip["alice/files/home/jovyan/"+name], ipynb) || !bytes.Equal(inZip["alice/files/home/jovyan/answer.txt"], []byte(answer)) {
		t.Errorf("alice's files in the archive differ from what Jupyter held")
	}
	var manifest struct {
		Files   []struct{ Path string }
		Skipped []struct{ Path, Reason string }
	}
	if err := json.Unmarshal(inZip["alice/manifest.json"], &manifest); err != nil {
		t.Fatalf("alice's manifest: %v", err)
	}
	excluded := slices.ContainsFunc(manifest.Skipped, func(s struct{ Path, Reason string }) bool {
		return s.Path == "home/jovyan/.ipynb_checkpoints" && s.Reason == "excluded by the template"
	})
	if !excluded || len(manifest.Files) != 2 {
		t.Errorf("alice's manifest: %s", inZip["alice/manifest.json"])
	}
}

// waitPhase waits until the controller reports the class in phase for its
// latest generation.
func (s *system) waitPhase(tok, id string, phase api.Phase, timeout time.Duration) {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	var c api.Class
	for time.Now().Before(deadline) {
		c = api.Class{} // a field the answer leaves out is not the last answer's
		if code := s.call(tok, "GET", "/api/v1/classes/"+id, nil, &c); code == http.StatusOK &&
			c.Status.Phase == phase && c.Status.ObservedGeneration == c.Generation {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	st, _ := json.Marshal(c.Status)
	s.t.Fatalf("class %s never reached %s: %s", id, phase, st)
}

// notebookTab is a tab of Jupyter's pages (see tab.jupyter), whose value
// evaluates JavaScript.
type notebookTab struct{ *tab }

// value evaluates a JavaScript expression of the page as a string.
func (n *notebookTab) value(js string) string {
	n.t.Helper()
	v, err := chromedp.Run(n.ctx, chromedp.Evaluate[string](js))
	if err != nil {
		n.t.Fatalf("%s: %v", js, err)
	}
	return v
}

// fetch GETs path from the page, as its own scripts do (alice's cookies,
// the page as Referer), and returns the body's exact bytes and the status.
func (n *notebookTab) fetch(path string) ([]byte, int) {
	n.t.Helper()
	js := fmt.Sprintf(`fetch(%q, {cache: "no-store"}).then(async (r) => {
		const b = new Uint8Array(await r.arrayBuffer());
		let s = "";
		for (const c of b) s += String.fromCharCode(c);
		return JSON.stringify({status: r.status, body: btoa(s)});
	})`, path)
	v, err := chromedp.Run(n.ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
	if err != nil {
		n.t.Fatalf("fetch %s: %v", path, err)
	}
	var r struct {
		Status int
		Body   string
	}
	if err := json.Unmarshal([]byte(v), &r); err != nil {
		n.t.Fatal(err)
	}
	b, err := base64.StdEncoding.DecodeString(r.Body)
	if err != nil {
		n.t.Fatal(err)
	}
	return b, r.Status
}

// closeNewTab waits for a tab the page opened at an address starting with
// prefix, closes it and returns its address.
func closeNewTab(t *testing.T, bctx context.Context, prefix string) string {
	t.Helper()
	tg := findTab(t, bctx, prefix)
	if _, err := chromedp.CallBrowser(bctx, target.CloseTarget, target.CloseTargetParams{TargetID: tg.TargetID}); err != nil {
		t.Fatalf("close the tab at %s: %v", tg.URL, err)
	}
	return tg.URL
}

// press presses a key with modifiers, as for a shortcut: down and up, and no
// character typed (Shift+Enter runs the cell; it adds no line to the next).
func press(key, code string, vk int64, modifiers chromedp.Modifier) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		for _, typ := range []input.DispatchKeyEventType{input.DispatchKeyEventTypeRawKeyDown, input.DispatchKeyEventTypeKeyUp} {
			if _, err := chromedp.Call(ctx, input.DispatchKeyEvent, input.DispatchKeyEventParams{
				Type: typ, Modifiers: int64(modifiers), Key: key, Code: code, WindowsVirtualKeyCode: vk, NativeVirtualKeyCode: vk,
			}); err != nil {
				return err
			}
		}
		return nil
	})
}
