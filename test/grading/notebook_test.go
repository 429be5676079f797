package grading

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/policy"
)

// notebookGrader is the example notebook grader's image, tagged from
// images/grader-notebook/VERSION (scripts/ensure-graders.sh builds it).
func notebookGrader(t *testing.T) string {
	b, err := os.ReadFile("../../images/grader-notebook/VERSION")
	if err != nil {
		t.Fatal(err)
	}
	return "homeroom/grader-notebook:" + strings.TrimSpace(string(b))
}

// notebook is a notebook whose one cell sets total and plots.
func notebook(total string) map[string]any {
	src := "import matplotlib.pyplot as plt\ntotal = " + total + "\nplt.plot([1, 2, 3])\nplt.savefig('wave.png')\n"
	return map[string]any{"type": "notebook", "content": map[string]any{
		"nbformat": 4, "nbformat_minor": 5, "metadata": map[string]any{},
		"cells": []any{map[string]any{"cell_type": "code", "id": "c1", "metadata": map[string]any{}, "execution_count": nil,
			"outputs": []any{}, "source": src}},
	}}
}

// Students' notebooks, saved through Jupyter, are run headless by the
// example notebook grader after Down, and each named answer is checked.
func TestNotebooksAreRunAndChecked(t *testing.T) {
	d := testenv.Docker(t)
	images(t, d)
	grader := notebookGrader(t)
	if _, err := d.API().ImageInspect(context.Background(), grader); err != nil {
		testenv.Unavailable(t, "image %s (make images builds it): %v", grader, err)
	}
	nb, _ := policy.Default().Template("notebook")
	tmpl, err := json.Marshal(nb)
	if err != nil {
		t.Fatal(err)
	}
	// The built-in notebook template, with the example grader.
	var m map[string]any
	json.Unmarshal(tmpl, &m)
	m["grader"] = map[string]any{"image": grader, "command": []string{"grade-notebook", "--notebook", "waves.ipynb", "--answer", "total=55"}, "timeoutSeconds": 120}
	tmpl, _ = json.Marshal(m)
	pol := filepath.Join(t.TempDir(), "policy.yaml")
	// JSON is YAML: the template as the built-in policy has it, plus a grader.
	if err := os.WriteFile(pol, []byte(`{"templates": [`+string(tmpl)+`]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := policy.Load(pol); err != nil {
		t.Fatal(err)
	}
	sys := testenv.StartSystem(t, "hr-grading-no-router", "HOMEROOM_POLICY="+pol)
	t.Cleanup(func() { sys.Kill() })
	s := &system{System: sys, t: t, d: d}

	const id = "grade-notebooks"
	students := []string{"nia", "oli", "pam"}
	s.up(id, "notebook", students)
	s.waitUp(id)
	save := func(student string, body map[string]any) {
		info, err := d.InspectContainer(context.Background(), api.ContainerName(id, student))
		if err != nil {
			t.Fatal(err)
		}
		ip := info.NetworkSettings.Networks[api.NetworkName(id)].IPAddress
		// Jupyter wants its _xsrf cookie echoed in a header on a PUT.
		jar, _ := cookiejar.New(nil)
		client := &http.Client{Timeout: 30 * time.Second, Jar: jar}
		base := "http://" + ip + ":8888"
		resp, err := client.Get(base + "/tree")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		u, _ := url.Parse(base)
		xsrf := ""
		for _, c := range jar.Cookies(u) {
			if c.Name == "_xsrf" {
				xsrf = c.Value
			}
		}
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(http.MethodPut, base+"/api/contents/waves.ipynb", strings.NewReader(string(b)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-XSRFToken", xsrf)
		resp, err = client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("save the notebook of %s: %s", student, resp.Status)
		}
	}
	save("nia", notebook("sum(range(11))"))
	save("oli", notebook("sum(range(10))"))
	// pam hands in nothing.
	run := s.down(id)
	got := items(s.graded(id, run, 1))
	for st, score := range map[string]float64{"nia": 1, "oli": 0, "pam": 0} {
		it := got[st]
		if it.State != api.GradeGraded || it.Score == nil || *it.Score != score || *it.MaxScore != 1 {
			t.Errorf("%s: %+v, want %g of 1", st, it, score)
		}
	}
	if !strings.Contains(got["pam"].Feedback, "not handed in") {
		t.Errorf("pam's feedback: %q", got["pam"].Feedback)
	}
	t.Logf("feedback: nia %q, oli %q, pam %q", got["nia"].Feedback, got["oli"].Feedback, got["pam"].Feedback)
	// What oli is told, not the record's pointers (whose addresses may
	// hold the digits).
	told := got["oli"].Feedback + " " + got["oli"].Reason
	for _, tc := range got["oli"].Tests {
		told += " " + tc.Name + " " + tc.Message
	}
	if strings.Contains(told, "55") {
		t.Errorf("oli's feedback gives the expected answer away: %q", told)
	}
}
