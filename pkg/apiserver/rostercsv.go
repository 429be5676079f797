package apiserver

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/homeroom/homeroom/pkg/api"
)

// A roster file is CSV with a header naming the columns class, subject and
// student, in any order, then one line per student of a class:
//
//	class,subject,student
//	cs101-a,cs101,alice
//	cs101-a,cs101,bob
//
// Blank lines and lines starting with # are skipped. Each class named in the
// file gets exactly the students listed for it as its official roster.
var rosterColumns = []string{"class", "subject", "student"}

// LineError is one bad line of a roster file.
type LineError struct {
	Line    int    `json:"line"`
	Message string `json:"message"`
}

// maxLineErrors bounds the errors reported for one file: a file wrong on
// every line would otherwise answer with more than it sent. The count of all
// of them is still given.
const maxLineErrors = 1000

// parseRosterCSV reads a roster file. It reports every bad line (up to
// maxLineErrors of them, and how many in all) or returns the rosters by
// class, in the order classes first appear. registered says whether a
// subject exists. Nothing about the file is trusted: ids are validated, a
// class must have one subject throughout, a student may appear once per
// class, and a roster holds at most api.MaxStudents.
func parseRosterCSV(data []byte, registered func(string) bool) ([]api.Roster, []LineError, int) {
	var errs []LineError
	total := 0
	bad := func(line int, format string, args ...any) {
		total++
		if len(errs) < maxLineErrors {
			errs = append(errs, LineError{Line: line, Message: fmt.Sprintf(format, args...)})
		}
	}
	if !utf8.Valid(data) {
		bad(1, "the file is not UTF-8 text")
		return nil, errs, total
	}
	data = bytes.TrimPrefix(data, []byte("\uFEFF")) // a spreadsheet's byte order mark

	r := csv.NewReader(bytes.NewReader(data))
	r.Comment = '#'
	r.FieldsPerRecord = -1 // a wrong count is one bad line, not the end of the file
	r.TrimLeadingSpace = true
	r.ReuseRecord = true

	var col map[string]int
	type class struct {
		roster    api.Roster
		firstLine int
		seen      map[string]int // student → line
	}
	var classes []*class
	byID := map[string]*class{}

	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			// The reader resumes after the broken record; quoting errors
			// can swallow the rest of the file, which then is one error.
			bad(pe.StartLine, "%v", pe.Err)
			continue
		}
		if err != nil {
			bad(0, "%v", err)
			break
		}
		line, _ := r.FieldPos(0)
		if col == nil {
			col, err = header(rec)
			if err != nil {
				bad(line, "%v", err)
				return nil, errs, total
			}
			continue
		}
		if len(rec) != len(col) {
			bad(line, "%d fields, want %d (%s)", len(rec), len(col), strings.Join(rosterColumns, ","))
			continue
		}
		classID, subject, student := field(rec, col, "class"), field(rec, col, "subject"), field(rec, col, "student")
		if err := api.ValidateID("class", classID); err != nil {
			bad(line, "%v", err)
			continue
		}
		if err := api.ValidateID("subject", subject); err != nil {
			bad(line, "%v", err)
			continue
		}
		if err := api.ValidateID("student", student); err != nil {
			bad(line, "%v", err)
			continue
		}
		if !registered(subject) {
			bad(line, "subject %q is not registered", subject)
			continue
		}
		cl := byID[classID]
		if cl == nil {
			cl = &class{roster: api.Roster{ClassID: classID, Subject: subject, Students: []string{}}, firstLine: line, seen: map[string]int{}}
			byID[classID] = cl
			classes = append(classes, cl)
		}
		if cl.roster.Subject != subject {
			bad(line, "class %q is of subject %q on line %d, not %q", classID, cl.roster.Subject, cl.firstLine, subject)
			continue
		}
		if first, dup := cl.seen[student]; dup {
			bad(line, "student %q of class %q is already on line %d", student, classID, first)
			continue
		}
		if len(cl.roster.Students) == api.MaxStudents {
			bad(line, "class %q has more than %d students", classID, api.MaxStudents)
			continue
		}
		cl.seen[student] = line
		cl.roster.Students = append(cl.roster.Students, student)
	}
	if col == nil && total == 0 {
		bad(1, "the file is empty; the first line must be the header %s", strings.Join(rosterColumns, ","))
	}
	if total > 0 {
		return nil, errs, total
	}
	out := make([]api.Roster, len(classes))
	for i, cl := range classes {
		out[i] = cl.roster
	}
	return out, nil, 0
}

// header maps each column name to its index, and refuses a header that does
// not name each of rosterColumns exactly once, or names anything else.
func header(rec []string) (map[string]int, error) {
	col := map[string]int{}
	for i, name := range rec {
		name = strings.ToLower(strings.TrimSpace(name))
		if !slices.Contains(rosterColumns, name) {
			return nil, fmt.Errorf("header: unknown column %q; the header is %s (in any order)", name, strings.Join(rosterColumns, ","))
		}
		if _, dup := col[name]; dup {
			return nil, fmt.Errorf("header: column %q twice", name)
		}
		col[name] = i
	}
	for _, name := range rosterColumns {
		if _, ok := col[name]; !ok {
			return nil, fmt.Errorf("header: column %q missing; the header is %s (in any order)", name, strings.Join(rosterColumns, ","))
		}
	}
	return col, nil
}

func field(rec []string, col map[string]int, name string) string {
	return strings.TrimSpace(rec[col[name]])
}
