package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// schemaGrade mirrors pkg/grading/grade.schema.json: pointers tell a
// missing required field from a zero one.
type schemaGrade struct {
	Score    *float64     `json:"score"`
	MaxScore *float64     `json:"maxScore"`
	Feedback *string      `json:"feedback"`
	Tests    []schemaTest `json:"tests"`
}

type schemaTest struct {
	Name     *string  `json:"name"`
	Score    *float64 `json:"score"`
	MaxScore *float64 `json:"maxScore"`
	Message  *string  `json:"message"`
}

// validate checks a grade.json against the schema's rules and the one
// beside it (score <= maxScore), and returns it decoded.
func validate(t *testing.T, b []byte) Grade {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields() // additionalProperties: false
	var s schemaGrade
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("grade.json does not decode: %v\n%s", err, b)
	}
	number := func(what string, v *float64) {
		t.Helper()
		if v == nil {
			t.Fatalf("%s is missing:\n%s", what, b)
		}
		if *v < 0 || *v > 1000000 {
			t.Fatalf("%s = %v is out of range", what, *v)
		}
	}
	number("score", s.Score)
	number("maxScore", s.MaxScore)
	if *s.Score > *s.MaxScore {
		t.Fatalf("score %v > maxScore %v", *s.Score, *s.MaxScore)
	}
	if s.Feedback != nil && len(*s.Feedback) > 65536 {
		t.Fatalf("feedback is %d bytes long", len(*s.Feedback))
	}
	if len(s.Tests) > 500 {
		t.Fatalf("%d tests", len(s.Tests))
	}
	for i, x := range s.Tests {
		if x.Name == nil || len(*x.Name) < 1 || len(*x.Name) > 200 {
			t.Fatalf("test %d: bad name", i)
		}
		number(*x.Name+": score", x.Score)
		number(*x.Name+": maxScore", x.MaxScore)
		if *x.Score > *x.MaxScore {
			t.Fatalf("%s: score %v > maxScore %v", *x.Name, *x.Score, *x.MaxScore)
		}
		if x.Message != nil && len(*x.Message) > 4096 {
			t.Fatalf("%s: message is %d bytes long", *x.Name, len(*x.Message))
		}
	}
	var g Grade
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

// submission makes a submission directory with the given files.
func submission(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// runGrader runs the program on dir and returns the decoded, validated grade.
func runGrader(t *testing.T, dir string, args ...string) Grade {
	t.Helper()
	out := filepath.Join(t.TempDir(), "grade.json")
	var stderr bytes.Buffer
	args = append([]string{"--submission", dir, "--out", out}, args...)
	if code := run(args, func(string) string { return "" }, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	// Only grade.json is left: the temporary file was renamed.
	if ents, _ := os.ReadDir(filepath.Dir(out)); len(ents) != 1 {
		t.Fatalf("%d files in the output directory", len(ents))
	}
	return validate(t, b)
}

func test(t *testing.T, g Grade, name string) Test {
	t.Helper()
	for _, x := range g.Tests {
		if x.Name == name {
			return x
		}
	}
	t.Fatalf("no test %q in %+v", name, g.Tests)
	return Test{}
}

func TestRightWrongMissing(t *testing.T) {
	dir := submission(t, map[string]string{
		"workspace/answer.txt": "  42\n",
		"workspace/wrong.txt":  "41\n",
	})
	g := runGrader(t, dir,
		"--expect", "workspace/answer.txt=42",
		"--expect", "workspace/wrong.txt=secret-answer",
		"--expect", "workspace/gone.txt=7",
		"--points", "2")
	if g.Score != 2 || g.MaxScore != 6 {
		t.Fatalf("score %v/%v, want 2/6", g.Score, g.MaxScore)
	}
	if x := test(t, g, "workspace/answer.txt"); x.Score != 2 || x.MaxScore != 2 {
		t.Errorf("right answer: %+v", x)
	}
	x := test(t, g, "workspace/wrong.txt")
	if x.Score != 0 || !strings.Contains(x.Message, "wrong.txt") {
		t.Errorf("wrong answer: %+v", x)
	}
	if strings.Contains(x.Message, "secret-answer") || strings.Contains(g.Feedback, "secret-answer") {
		t.Errorf("the expected answer is revealed: %q / %q", x.Message, g.Feedback)
	}
	if x := test(t, g, "workspace/gone.txt"); x.Score != 0 || x.Message != "gone.txt was not handed in" {
		t.Errorf("missing file: %+v", x)
	}
	if !strings.HasPrefix(g.Feedback, "1 of 3 answers right.") || !strings.Contains(g.Feedback, "gone.txt was not handed in") {
		t.Errorf("feedback: %q", g.Feedback)
	}
}

func TestAllRight(t *testing.T) {
	dir := submission(t, map[string]string{"a.txt": "hello world\r\n"})
	g := runGrader(t, dir, "--expect", "a.txt=hello world")
	if g.Score != 1 || g.MaxScore != 1 || g.Feedback != "1 of 1 answer right." {
		t.Fatalf("%+v", g)
	}
}

func TestTooLarge(t *testing.T) {
	dir := submission(t, map[string]string{"big.txt": "42" + strings.Repeat(" ", maxFile)})
	g := runGrader(t, dir, "--expect", "big.txt=42")
	if x := test(t, g, "big.txt"); x.Score != 0 || !strings.Contains(x.Message, "too large") {
		t.Fatalf("%+v", x)
	}
	// Exactly the limit is still read.
	dir = submission(t, map[string]string{"ok.txt": "42" + strings.Repeat(" ", maxFile-2)})
	g = runGrader(t, dir, "--expect", "ok.txt=42")
	if g.Score != 1 {
		t.Fatalf("%+v", g)
	}
}

func TestSymlinks(t *testing.T) {
	outside := submission(t, map[string]string{"answer.txt": "42"})
	dir := submission(t, map[string]string{"real/answer.txt": "42"})
	for link, target := range map[string]string{
		"out.txt":  filepath.Join(outside, "answer.txt"), // out of the submission
		"in.txt":   "real/answer.txt",                    // inside it
		"rel.txt":  "../" + filepath.Base(outside) + "/answer.txt",
		"linkdir":  "real", // a directory on the way
		"outdir":   outside,
		"dangling": "nowhere",
	} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"out.txt", "in.txt", "rel.txt", "linkdir/answer.txt", "outdir/answer.txt", "dangling"} {
		g := runGrader(t, dir, "--expect", p+"=42")
		x := test(t, g, p)
		if x.Score != 0 || x.Message == "" {
			t.Errorf("%s: %+v", p, x)
		}
	}
	// The real file next to them is graded.
	if g := runGrader(t, dir, "--expect", "real/answer.txt=42"); g.Score != 1 {
		t.Fatalf("%+v", g)
	}
}

func TestNotAFile(t *testing.T) {
	dir := submission(t, map[string]string{"d/x.txt": "1", "f": "1"})
	g := runGrader(t, dir, "--expect", "d=1", "--expect", "f/x.txt=1")
	if x := test(t, g, "d"); x.Score != 0 || !strings.Contains(x.Message, "not a regular file") {
		t.Errorf("%+v", x)
	}
	if x := test(t, g, "f/x.txt"); x.Score != 0 || !strings.Contains(x.Message, "not handed in") {
		t.Errorf("%+v", x)
	}
}

func TestNoSubmission(t *testing.T) {
	g := runGrader(t, filepath.Join(t.TempDir(), "none"), "--expect", "a.txt=1")
	if g.Score != 0 || g.MaxScore != 1 || !strings.Contains(g.Feedback, "Nothing was handed in") {
		t.Fatalf("%+v", g)
	}
}

func TestEnvironmentDefaults(t *testing.T) {
	dir := submission(t, map[string]string{"a.txt": "1"})
	out := filepath.Join(t.TempDir(), "g.json")
	env := map[string]string{"HOMEROOM_SUBMISSION": dir, "HOMEROOM_GRADE": out}
	var stderr bytes.Buffer
	if code := run([]string{"--expect", "a.txt=1"}, func(k string) string { return env[k] }, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if g := validate(t, b); g.Score != 1 {
		t.Fatalf("%+v", g)
	}
}

func TestBadFlags(t *testing.T) {
	dir := submission(t, nil)
	for _, args := range [][]string{
		{},
		{"--expect", "/workspace/a.txt=1"},
		{"--expect", "../a.txt=1"},
		{"--expect", "workspace/../../a.txt=1"},
		{"--expect", "workspace/..=1"},
		{"--expect", "a.txt"},
		{"--expect", "=1"},
		{"--expect", ".=1"},
		{"--expect", "a.txt=1", "--expect", "./a.txt=2"},
		{"--expect", strings.Repeat("a", 201) + "=1"},
		{"--expect", "a.txt=1", "--points", "0"},
		{"--expect", "a.txt=1", "--points", "-1"},
		{"--expect", "a.txt=1", "--points", "NaN"},
		{"--expect", "a.txt=1", "--points", "2000000"},
		{"--expect", "a.txt=1", "extra"},
		{"--nope"},
	} {
		out := filepath.Join(t.TempDir(), "grade.json")
		var stderr bytes.Buffer
		code := run(append([]string{"--submission", dir, "--out", out}, args...), func(string) string { return "" }, &stderr)
		if code != 2 || stderr.Len() == 0 {
			t.Errorf("%q: exit %d, stderr %q", args, code, stderr.String())
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%q: a grade was written", args)
		}
	}
}

func TestUnwritableOutput(t *testing.T) {
	dir := submission(t, map[string]string{"a.txt": "1"})
	var stderr bytes.Buffer
	out := filepath.Join(t.TempDir(), "missing", "grade.json")
	if code := run([]string{"--submission", dir, "--out", out, "--expect", "a.txt=1"}, func(string) string { return "" }, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
}
