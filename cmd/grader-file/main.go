// Command grader-file is Homeroom's example grader for the sandbox template.
// It compares files of a student's collected work with expected answers and
// writes the grade (pkg/grading/grade.schema.json):
//
//	/grader-file --expect workspace/answer.txt=42 [--expect PATH=TEXT ...] [--points N]
//
// Each --expect is one test named after its PATH (relative to the
// submission directory), worth --points points: the file's content, with
// surrounding whitespace trimmed, must equal TEXT. Missing, wrong, too
// large or not a regular file scores 0 with a message that says which,
// never what the answer was. Bad flags exit 2; a grade that cannot be
// written exits 1.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

const (
	// maxFile bounds what is read of one file: answers are short, and a
	// student must not be able to make the grader read gigabytes.
	maxFile = 1 << 20
	// Limits of the grade's schema.
	maxTests   = 500
	maxName    = 200
	maxPoints  = 1000000
	defaultDir = "/submission"
	defaultOut = "/grade/grade.json"
)

// Grade and Test are the grade's JSON (pkg/grading/grade.schema.json).
type Grade struct {
	Score    float64 `json:"score"`
	MaxScore float64 `json:"maxScore"`
	Feedback string  `json:"feedback"`
	Tests    []Test  `json:"tests"`
}

type Test struct {
	Name     string  `json:"name"`
	Score    float64 `json:"score"`
	MaxScore float64 `json:"maxScore"`
	Message  string  `json:"message,omitempty"`
}

type expectation struct {
	path string // slash-separated, relative to the submission directory
	text string
}

// expectFlag collects repeated --expect PATH=TEXT.
type expectFlag []expectation

func (e *expectFlag) String() string { return "" }

func (e *expectFlag) Set(v string) error {
	p, text, ok := strings.Cut(v, "=")
	if !ok {
		return errors.New("want PATH=TEXT")
	}
	if p == "" {
		return errors.New("PATH is empty")
	}
	if strings.HasPrefix(p, "/") || filepath.IsAbs(p) {
		return fmt.Errorf("PATH %q is absolute; give it relative to the submission directory", p)
	}
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return fmt.Errorf("PATH %q contains ..", p)
		}
	}
	clean := path.Clean(p)
	if clean == "." || !filepath.IsLocal(clean) {
		return fmt.Errorf("PATH %q does not name a file in the submission", p)
	}
	if len(clean) > maxName {
		return fmt.Errorf("PATH %q is longer than %d bytes", p, maxName)
	}
	for _, x := range *e {
		if x.path == clean {
			return fmt.Errorf("PATH %q is given twice", clean)
		}
	}
	*e = append(*e, expectation{path: clean, text: text})
	return nil
}

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stderr))
}

// run is the whole program, apart from the process: it returns the exit code.
func run(args []string, getenv func(string) string, stderr io.Writer) int {
	fl := flag.NewFlagSet("grader-file", flag.ContinueOnError)
	fl.SetOutput(stderr)
	var expects expectFlag
	fl.Var(&expects, "expect", "`PATH=TEXT`, repeatable: the file PATH under the submission must hold TEXT")
	points := fl.Float64("points", 1, "points each check is worth")
	dir := fl.String("submission", orDefault(getenv("HOMEROOM_SUBMISSION"), defaultDir), "the student's collected files")
	out := fl.String("out", orDefault(getenv("HOMEROOM_GRADE"), defaultOut), "where the grade is written")
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "grader-file: "+format+"\n", a...)
		return 2
	}
	switch {
	case fl.NArg() > 0:
		return usage("unexpected argument %q", fl.Arg(0))
	case len(expects) == 0:
		return usage("no --expect PATH=TEXT given")
	case len(expects) > maxTests:
		return usage("more than %d --expect", maxTests)
	case math.IsNaN(*points) || *points <= 0 || *points*float64(len(expects)) > maxPoints:
		return usage("--points must be above 0 and the total at most %d", maxPoints)
	case *dir == "" || *out == "":
		return usage("--submission and --out must not be empty")
	}

	g := grade(*dir, expects, *points)
	if err := writeAtomic(*out, g); err != nil {
		fmt.Fprintf(stderr, "grader-file: %v\n", err)
		return 1
	}
	return 0
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// grade checks every expectation against the submission in dir.
func grade(dir string, expects []expectation, points float64) Grade {
	// os.Root keeps every open inside dir whatever a symlink says; check
	// refuses symlinks inside it as well.
	root, err := os.OpenRoot(dir)
	if err == nil {
		defer root.Close()
	}
	g := Grade{Tests: []Test{}}
	var wrong []string
	for _, e := range expects {
		t := Test{Name: e.path, MaxScore: points}
		if root == nil {
			t.Message = path.Base(e.path) + " was not handed in"
		} else if msg := check(root, e); msg != "" {
			t.Message = msg
		} else {
			t.Score = points
			t.Message = "right"
		}
		if t.Score == 0 {
			wrong = append(wrong, t.Message)
		}
		g.Score += t.Score
		g.MaxScore += t.MaxScore
		g.Tests = append(g.Tests, t)
	}
	n := len(expects)
	summary := fmt.Sprintf("%d of %d %s right.", n-len(wrong), n, plural(n, "answer", "answers"))
	if root == nil {
		summary += " Nothing was handed in."
	} else if len(wrong) > 0 {
		summary += " " + strings.Join(wrong, "; ") + "."
	}
	g.Feedback = summary
	return g
}

// check returns "" when the file holds the expected text, else why not.
func check(root *os.Root, e expectation) string {
	name := path.Base(e.path)
	// No component may be a symlink: a submission's symlink is the
	// student's doing, and what it points at is not the student's work.
	parts := strings.Split(e.path, "/")
	for i := range parts {
		p := strings.Join(parts[:i+1], "/")
		fi, err := root.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return name + " was not handed in"
		}
		if err != nil {
			return name + " could not be read"
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return name + " is a symbolic link, not a file handed in"
		}
		if i < len(parts)-1 && !fi.IsDir() {
			return name + " was not handed in"
		}
		if i == len(parts)-1 && !fi.Mode().IsRegular() {
			return name + " is not a regular file"
		}
	}
	// O_NONBLOCK: should the file have become a FIFO since, open does not
	// wait for a writer.
	f, err := root.OpenFile(e.path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return name + " could not be read"
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return name + " is not a regular file"
	}
	b, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return name + " could not be read"
	}
	if len(b) > maxFile {
		return fmt.Sprintf("%s is too large (over %d KiB) to be an answer", name, maxFile>>10)
	}
	if string(bytes.TrimSpace(b)) != strings.TrimSpace(e.text) {
		return name + " does not hold the expected answer"
	}
	return ""
}

// writeAtomic writes g to out through a temporary file in the same
// directory, so that a grader killed while writing leaves no half grade.
func writeAtomic(out string, g Grade) error {
	b, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	tmp, err := os.CreateTemp(filepath.Dir(out), ".grade-*.json")
	if err != nil {
		return fmt.Errorf("writing the grade: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("writing the grade: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("writing the grade: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing the grade: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing the grade: %w", err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return fmt.Errorf("writing the grade: %w", err)
	}
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
