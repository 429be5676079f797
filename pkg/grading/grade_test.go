package grading

import (
	"strings"
	"testing"
)

func TestParseAcceptsAGrade(t *testing.T) {
	g, err := Parse([]byte(`{"score": 1.5, "maxScore": 2, "feedback": "ok\u0007\nline two", "tests": [{"name": "a", "score": 1.5, "maxScore": 2, "message": "x"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if g.Score != 1.5 || g.MaxScore != 2 || len(g.Tests) != 1 || g.Feedback != "ok\nline two" {
		t.Fatalf("grade = %+v", g)
	}
	if g, err := Parse([]byte(`{"score": 0, "maxScore": 0}`)); err != nil || g.Tests == nil {
		t.Fatalf("minimal grade: %+v, %v", g, err)
	}
}

func TestParseRefusesWhatIsNotAGrade(t *testing.T) {
	for _, tc := range []struct{ desc, in, want string }{
		{"not JSON", `Traceback (most recent call last):`, "not JSON"},
		{"empty", ``, "not JSON"},
		{"no score", `{"maxScore": 1}`, "missing property 'score'"},
		{"score as text", `{"score": "10", "maxScore": 10}`, "/score"},
		{"negative score", `{"score": -1, "maxScore": 10}`, "/score"},
		{"unknown field", `{"score": 1, "maxScore": 1, "passed": true}`, "additional properties 'passed'"},
		{"score above max", `{"score": 11, "maxScore": 10}`, "the grade scores 11 of at most 10"},
		{"test above max", `{"score": 1, "maxScore": 2, "tests": [{"name": "t", "score": 3, "maxScore": 1}]}`, `test "t" scores 3 of at most 1`},
		{"test without name", `{"score": 1, "maxScore": 2, "tests": [{"score": 1, "maxScore": 1}]}`, "/tests/0"},
		{"array", `[1, 2]`, "got array"},
		{"too large", `{"score": 1, "maxScore": 1, "feedback": "` + strings.Repeat("x", MaxGradeBytes) + `"}`, "more than 1048576"},
		{"feedback too long", `{"score": 1, "maxScore": 1, "feedback": "` + strings.Repeat("x", 70000) + `"}`, "/feedback"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := Parse([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}
