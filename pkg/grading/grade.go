// Package grading runs the policy's graders on collected submissions: for
// each student a Down run collected, a locked-down container gets the
// student's files from the object store and writes grade.json, which is
// validated and stored beside the manifest. It is the controller's, and
// works beside the class passes, never inside them, so that no grader
// delays a class's Up or Down.
package grading

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"unicode"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/homeroom/homeroom/pkg/api"
)

//go:embed grade.schema.json
var schemaJSON []byte

// SchemaJSON is the JSON Schema a grader's grade.json must satisfy.
func SchemaJSON() []byte { return bytes.Clone(schemaJSON) }

// MaxGradeBytes bounds grade.json: a grader that writes more has failed.
const MaxGradeBytes = 1 << 20

var printer = message.NewPrinter(language.English)

var schema = sync.OnceValues(func() (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemaJSON))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("grade.schema.json", doc); err != nil {
		return nil, err
	}
	return c.Compile("grade.schema.json")
})

// Parse validates a grader's grade.json against the schema, then what a
// schema cannot say (no score above its maximum), and returns the grade
// with its text made safe to show: control characters other than line
// breaks and tabs removed.
func Parse(b []byte) (*api.Grade, error) {
	if len(b) > MaxGradeBytes {
		return nil, fmt.Errorf("grade.json is %d bytes, more than %d", len(b), MaxGradeBytes)
	}
	sch, err := schema()
	if err != nil {
		return nil, fmt.Errorf("grade schema: %w", err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("grade.json is not JSON: %s", firstLine(err.Error()))
	}
	if err := sch.Validate(inst); err != nil {
		var ve *jsonschema.ValidationError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("grade.json does not match the schema: %s", describe(ve))
		}
		return nil, fmt.Errorf("grade.json does not match the schema: %s", firstLine(err.Error()))
	}
	var g api.Grade
	if err := json.Unmarshal(b, &g); err != nil {
		return nil, fmt.Errorf("grade.json: %s", firstLine(err.Error()))
	}
	if err := checkScore("the grade", g.Score, g.MaxScore); err != nil {
		return nil, err
	}
	for i := range g.Tests {
		t := &g.Tests[i]
		if err := checkScore(fmt.Sprintf("test %q", t.Name), t.Score, t.MaxScore); err != nil {
			return nil, err
		}
		t.Name, t.Message = clean(t.Name), clean(t.Message)
	}
	g.Feedback = clean(g.Feedback)
	if g.Tests == nil {
		g.Tests = []api.GradeTest{}
	}
	return &g, nil
}

func checkScore(what string, score, max float64) error {
	if math.IsNaN(score) || math.IsNaN(max) || score > max {
		return fmt.Errorf("grade.json: %s scores %g of at most %g", what, score, max)
	}
	return nil
}

// describe is the innermost cause of a validation error, one line.
func describe(ve *jsonschema.ValidationError) string {
	for len(ve.Causes) > 0 {
		ve = ve.Causes[0]
	}
	loc := "/" + strings.Join(ve.InstanceLocation, "/")
	return firstLine(loc + ": " + ve.ErrorKind.LocalizedString(printer))
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// clean drops control characters a grader's text may carry (it often
// quotes what a student's program printed), keeping line breaks and tabs.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' {
			return r
		}
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
}
