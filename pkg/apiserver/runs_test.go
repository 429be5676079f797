package apiserver_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
)

const (
	runA = "20261129T135050Z-650d3d"
	runB = "20261130T090000Z-a1b2c3"
	// runUnknown has the right form but nothing stored.
	runUnknown = "20270101T000000Z-000000"
)

// collected stores one student's collection of a run through pkg/artifacts,
// as the controller does, with files given as path → content under
// /workspace.
func (e *env) collected(class, run, student string, exitCode int, files map[string]string) {
	e.t.Helper()
	e.collectedWith("", class, run, student, exitCode, files)
}

// collectedWith is collected with the subject the manifest records (empty,
// as before subjects were recorded).
func (e *env) collectedWith(subject, class, run, student string, exitCode int, files map[string]string) {
	e.t.Helper()
	ctx := context.Background()
	var buf bytes.Buffer
	w := tar.NewWriter(&buf)
	for name, body := range files {
		if err := w.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "workspace/" + name, Size: int64(len(body)), Mode: 0o644}); err != nil {
			e.t.Fatal(err)
		}
		w.Write([]byte(body))
	}
	w.Close()
	m := &artifacts.Manifest{ClassID: class, Subject: subject, StudentID: student, RunID: run, Template: "sandbox",
		Container: artifacts.ContainerInfo{Name: api.ContainerName(class, student), State: "exited", ExitCode: &exitCode}}
	fs, skipped, err := e.art.UploadTree(ctx, m.Prefix(), "/workspace", &buf, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	m.Files, m.Skipped = fs, skipped
	if m.Logs, err = e.art.UploadLogs(ctx, m.Prefix(), strings.NewReader(student+" ran\n"), -1); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.art.PutManifest(ctx, m); err != nil {
		e.t.Fatal(err)
	}
}

func decodeJSON[T any](t *testing.T, r response) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
	return v
}

// The run endpoints read only the artifact store: a class forgotten by the
// store keeps its runs, so none of this needs the class to exist.
func TestRunsAndArtifactsOfARun(t *testing.T) {
	e := newEnv(t)
	const class = "cs101-a"

	r := e.do("GET", "/api/v1/classes/"+class+"/runs", "")
	if r.code != http.StatusOK || string(r.body) != `{"items":[]}`+"\n" {
		t.Errorf("runs of a class without any: %d %s", r.code, r.body)
	}

	e.collected(class, runA, "alice", 0, map[string]string{"hello.py": "print('draft')\n", "old.txt": "old\n"})
	e.collected(class, runA, "bob", 2, map[string]string{"hello.py": "bob\n"})
	started := time.Date(2026, 11, 29, 13, 50, 50, 0, time.UTC)
	completed := started.Add(2 * time.Minute)
	if _, err := e.art.WriteRunIndex(context.Background(), class, runA, []string{"alice", "bob", "carol"}, started, completed, artifacts.RunInfo{}); err != nil {
		t.Fatal(err)
	}
	// Run B is under way: alice collected, no index yet.
	e.collected(class, runB, "alice", 0, map[string]string{"hello.py": "print('final')\n"})

	r = e.do("GET", "/api/v1/classes/"+class+"/runs", "")
	runs := decodeJSON[struct{ Items []artifacts.RunSummary }](t, r).Items
	if r.code != http.StatusOK || len(runs) != 2 ||
		runs[0].RunID != runA || !runs[0].Complete || runs[0].Students != 3 || runs[0].CompletedAt == nil || !runs[0].CompletedAt.Equal(completed) ||
		runs[1].RunID != runB || runs[1].Complete || runs[1].Students != 1 || runs[1].CompletedAt != nil {
		t.Errorf("runs: %d %s", r.code, r.body)
	}
	if !strings.Contains(string(r.body), `"complete":false`) || strings.Count(string(r.body), `"completedAt"`) != 1 {
		t.Errorf("runs encoding: %s", r.body)
	}

	r = e.do("GET", "/api/v1/classes/"+class+"/runs/"+runA, "")
	idx := decodeJSON[artifacts.RunIndex](t, r)
	if r.code != http.StatusOK || idx.SchemaVersion != 1 || idx.ClassID != class || idx.RunID != runA ||
		!idx.StartedAt.Equal(started) || !idx.CompletedAt.Equal(completed) || len(idx.Students) != 3 {
		t.Fatalf("run index: %d %s", r.code, r.body)
	}
	if s := idx.Students[1]; s.StudentID != "bob" || s.Outcome != artifacts.OutcomeCollected || s.ExitCode == nil || *s.ExitCode != 2 || s.Files != 1 {
		t.Errorf("bob in the index: %+v", s)
	}
	if s := idx.Students[2]; s.StudentID != "carol" || s.Outcome != artifacts.OutcomeMissing || s.Manifest != "" {
		t.Errorf("carol in the index: %+v", s)
	}

	// The artifacts of one run only; without ?run, every run as before.
	r = e.do("GET", "/api/v1/classes/"+class+"/artifacts?run="+runA, "")
	items := decodeJSON[struct{ Items []artifacts.Item }](t, r).Items
	var lines []string
	for _, it := range items {
		lines = append(lines, it.RunID+" "+it.Student+" "+it.Path)
	}
	want := runA + " alice files/workspace/hello.py," + runA + " alice files/workspace/old.txt," + runA + " alice logs/container.log," +
		runA + " bob files/workspace/hello.py," + runA + " bob logs/container.log"
	if r.code != http.StatusOK || strings.Join(lines, ",") != want {
		t.Errorf("artifacts of run A: %d\n%s\nwant\n%s", r.code, strings.Join(lines, "\n"), strings.ReplaceAll(want, ",", "\n"))
	}
	r = e.do("GET", "/api/v1/classes/"+class+"/artifacts?run="+runB, "")
	if items := decodeJSON[struct{ Items []artifacts.Item }](t, r).Items; r.code != http.StatusOK || len(items) != 2 || items[0].RunID != runB {
		t.Errorf("artifacts of run B: %d %s", r.code, r.body)
	}
	r = e.do("GET", "/api/v1/classes/"+class+"/artifacts", "")
	if items := decodeJSON[struct{ Items []artifacts.Item }](t, r).Items; r.code != http.StatusOK || len(items) != 7 {
		t.Errorf("artifacts of every run: %d %s", r.code, r.body)
	}

	// One file: the latest without ?run, the run's own copy with it.
	file := "/api/v1/classes/" + class + "/artifacts/alice/files/workspace/hello.py"
	if r := e.do("GET", file, ""); r.code != http.StatusOK || string(r.body) != "print('final')\n" || r.header.Get("X-Homeroom-Run-Id") != runB {
		t.Errorf("latest file: %d %s (run %s)", r.code, r.body, r.header.Get("X-Homeroom-Run-Id"))
	}
	if r := e.do("GET", file+"?run="+runA, ""); r.code != http.StatusOK || string(r.body) != "print('draft')\n" || r.header.Get("X-Homeroom-Run-Id") != runA {
		t.Errorf("file of run A: %d %s (run %s)", r.code, r.body, r.header.Get("X-Homeroom-Run-Id"))
	}
	if r := e.do("GET", "/api/v1/classes/"+class+"/artifacts/alice/files/workspace/old.txt?run="+runA, ""); r.code != http.StatusOK || string(r.body) != "old\n" {
		t.Errorf("a file only run A has: %d %s", r.code, r.body)
	}
	if r := e.do("GET", "/api/v1/classes/"+class+"/artifacts/bob/logs/container.log?run="+runA, ""); r.code != http.StatusOK || string(r.body) != "bob ran\n" {
		t.Errorf("bob's log of run A: %d %s", r.code, r.body)
	}

	base := "/api/v1/classes/" + class
	for _, tc := range []struct{ desc, path string }{
		{"index of a run under way", base + "/runs/" + runB},
		{"index of an unknown run", base + "/runs/" + runUnknown},
		{"index of a run of another class", "/api/v1/classes/ghost/runs/" + runA},
		{"artifacts of an unknown run", base + "/artifacts?run=" + runUnknown},
		{"file of an unknown run", base + "/artifacts/alice/files/workspace/hello.py?run=" + runUnknown},
		{"file not in that run", base + "/artifacts/alice/files/workspace/old.txt?run=" + runB},
		{"file of a student missing from the run", base + "/artifacts/carol/logs/container.log?run=" + runA},
		{"file of a student not collected yet in that run", base + "/artifacts/bob/logs/container.log?run=" + runB},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			r := e.do("GET", tc.path, "")
			body := decodeJSON[struct{ Error apiError }](t, r)
			if r.code != http.StatusNotFound || body.Error.Code != "not_found" || body.Error.Message == "" {
				t.Errorf("%s: %d %s, want 404 not_found", tc.path, r.code, r.body)
			}
		})
	}
}

type apiError struct{ Code, Message string }

func TestBadRunIDs(t *testing.T) {
	e := newEnv(t)
	e.collected("cs101-a", runA, "alice", 0, map[string]string{"a.txt": "a\n"})
	bad := []string{
		"latest",
		"20261129T135050Z-650d3",   // short suffix
		"20261129T135050Z-650d3d0", // long suffix
		"20261129T135050Z-650D3D",  // upper-case hex
		"20261129t135050z-650d3d",
		"2026112T135050Z-650d3d",
		"20261129T135050-650d3d",
		"20261129T135050Z_650d3d",
		"20261129T135050Z-650g3d",
		"%2E%2E",
		"20261129T135050Z-650d3d%0A",
		"%2020261129T135050Z-650d3d",
	}
	for _, run := range bad {
		for _, p := range []string{
			"/api/v1/classes/cs101-a/runs/" + run,
			"/api/v1/classes/cs101-a/artifacts?run=" + run,
			"/api/v1/classes/cs101-a/artifacts/alice/files/workspace/a.txt?run=" + run,
		} {
			r := e.do("GET", p, "")
			body := decodeJSON[struct{ Error apiError }](t, r)
			if r.code != http.StatusBadRequest || body.Error.Code != "invalid_run" || body.Error.Message == "" {
				t.Errorf("%s: %d %s, want 400 invalid_run", p, r.code, r.body)
			}
		}
	}
	// An empty or repeated ?run is not "all runs" or "latest".
	for _, q := range []string{"?run=", "?run", "?run=" + runA + "&run=" + runA} {
		for _, p := range []string{"/api/v1/classes/cs101-a/artifacts", "/api/v1/classes/cs101-a/artifacts/alice/files/workspace/a.txt"} {
			r := e.do("GET", p+q, "")
			if body := decodeJSON[struct{ Error apiError }](t, r); r.code != http.StatusBadRequest || body.Error.Code != "invalid_run" {
				t.Errorf("%s%s: %d %s, want 400 invalid_run", p, q, r.code, r.body)
			}
		}
	}
	// Ids are checked before the run: a bad class id is still invalid_id.
	if r := e.do("GET", "/api/v1/classes/CS101/runs/"+runA, ""); r.code != http.StatusBadRequest || !strings.Contains(string(r.body), `"invalid_id"`) {
		t.Errorf("bad class id: %d %s", r.code, r.body)
	}
	if r := e.do("GET", "/api/v1/classes/CS101/runs", ""); r.code != http.StatusBadRequest || !strings.Contains(string(r.body), `"invalid_id"`) {
		t.Errorf("bad class id listing runs: %d %s", r.code, r.body)
	}
	// Other query parameters are ignored, as before.
	if r := e.do("GET", "/api/v1/classes/cs101-a/artifacts?runs=x", ""); r.code != http.StatusOK {
		t.Errorf("unrelated query parameter: %d %s", r.code, r.body)
	}
}
