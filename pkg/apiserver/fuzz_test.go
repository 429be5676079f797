package apiserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/homeroom/homeroom/pkg/api"
)

// fuzzSeeds are real request bodies — those of the README, API.md and the
// tests — and a few of the hostile ones, for every decoder.
var fuzzSeeds = []string{
	// PUT /api/v1/classes/{id}
	`{"subject": "cs101", "template": "sandbox", "students": ["alice", "bob"], "ttlSeconds": 7200}`,
	`{"subject": "cs101", "template": "sandbox", "students": ["alice", "bob", "carol"], "ttlSeconds": 7200}`,
	`{"subject":"bio","template":"heavy","students":["a","b","c"]}`,
	// POST /room/up-class, /room/down-class
	`{"classId": "lab1", "students": ["ann", "ben"], "subject": "bio"}`,
	`{"classId": "cs-c", "subject": "cs101", "students": ["cy"], "template": "sandbox", "ttlSeconds": 60}`,
	`{"classId": "lab1"}`,
	// PUT /api/v1/rosters/{id}, /users/{name}, /subjects/{id}; POST tokens
	`{"subject": "cs101", "students": ["al", "bo", "cy", "di"]}`,
	`{"role": "teacher", "subjects": ["cs101"]}`,
	`{"role": "admin"}`,
	`{"title": "Intro to CS"}`,
	`{"description": "laptop", "expiresInSeconds": 86400}`,
	// POST /api/v1/rosters/import
	"class,subject,student\ncs101-a,cs101,alice\ncs101-a,cs101,bob\nbio-a,bio,carol\n",
	"\uFEFFstudent, class ,Subject\n# autumn\nalice,cs101-a,cs101\n\n",
	"class,subject,student\n\"cs101-a\",cs101,\"al\"\"ice\"\n",
	// Hostile.
	`{"subject": "cs101", "subject": "bio", "template": "sandbox", "students": ["al"]}`,
	`{"Subject": "cs101", "template": "sandbox", "students": ["al"]}`,
	`{"subject": "cs101", "template": "sandbox", "students": ["al"`,
	`{"subject": "cs101", "template": "sandbox", "students": ["../etc", "élève", "al\u200b"], "ttlSeconds": 1e30}`,
	`{"students": [[[[[[[[]]]]]]]]}`,
	`null`, `[]`, `""`, ``, `{}{}`,
	"class,subject,student\n\"cs101-a,cs101,ivan\n",
	"class,class,student\nx,y,z\n",
}

// FuzzDecodeRequest feeds the same bytes to every request decoder and
// validator. None may panic; each either refuses with a 4xx error or
// returns something valid that encoding/json reads the same way (no parser
// differential a second reader could exploit) and that survives a round
// trip. The roster file parser reports bad lines within the file and never
// returns an invalid roster.
//
// go test runs the seeds; a CI run fuzzes briefly:
//
//	go test -run='^$' -fuzz=FuzzDecodeRequest -fuzztime=30s ./pkg/apiserver/
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if spec, err := parseClassSpec(body); checkRefusal(t, "class spec", err) {
			if err := spec.Validate(); err != nil {
				t.Fatalf("accepted an invalid spec %+v: %v", spec, err)
			}
			var plain api.ClassSpec
			if err := json.Unmarshal(body, &plain); err != nil || !reflect.DeepEqual(plain, spec) {
				t.Fatalf("encoding/json reads %q as %+v (%v), we read %+v", body, plain, err, spec)
			}
			again, err := json.Marshal(spec)
			if err != nil {
				t.Fatal(err)
			}
			if back, err := parseClassSpec(again); err != nil || !reflect.DeepEqual(back, spec) {
				t.Fatalf("round trip of %+v: %+v, %v", spec, back, err)
			}
		}

		if id, spec, err := parseRoomUp(body); checkRefusal(t, "room up", err) {
			if api.ValidateID("class", id) != nil || spec.Validate() != nil || spec.Template == "" {
				t.Fatalf("accepted room up %q %+v", id, spec)
			}
			var plain roomUpBody
			if err := json.Unmarshal(body, &plain); err != nil || plain.ClassID != id || !reflect.DeepEqual(plain.Students, spec.Students) || plain.Subject != spec.Subject {
				t.Fatalf("encoding/json reads %q as %+v (%v)", body, plain, err)
			}
		}
		if id, err := parseRoomDown(body); checkRefusal(t, "room down", err) && api.ValidateID("class", id) != nil {
			t.Fatalf("accepted room down %q", id)
		}
		if r, err := parseRoster("cs-a", body); checkRefusal(t, "roster", err) && r.Validate() != nil {
			t.Fatalf("accepted roster %+v", r)
		}
		if u, err := parseUser(body); checkRefusal(t, "user", err) {
			if api.ValidateRole(u.Role) != nil || len(u.Subjects) > maxSubjectsPerUser {
				t.Fatalf("accepted user %+v", u)
			}
			for _, s := range u.Subjects {
				if api.ValidateID("subject", s) != nil {
					t.Fatalf("accepted user %+v", u)
				}
			}
		}
		if b, err := parseSubject(body); checkRefusal(t, "subject", err) && len(b.Title) > maxTitle {
			t.Fatalf("accepted title of %d bytes", len(b.Title))
		}
		if b, err := parseToken(body); checkRefusal(t, "token", err) && (b.ExpiresInSeconds < 0 || b.ExpiresInSeconds > maxTokenLifetime) {
			t.Fatalf("accepted token body %+v", b)
		}
		if err := checkKeys(body, map[string]bool{}); err == nil && !json.Valid(body) {
			t.Fatalf("checkKeys accepted invalid JSON %q", body)
		}

		registered := func(s string) bool { return s == "cs101" || s == "bio" }
		rosters, bad, total := parseRosterCSV(body, registered)
		switch {
		case total == 0 && bad != nil, total > 0 && (rosters != nil || len(bad) == 0 || len(bad) > maxLineErrors || len(bad) > total):
			t.Fatalf("parseRosterCSV: %d rosters, %d errors listed, %d in all", len(rosters), len(bad), total)
		}
		lines := bytes.Count(body, []byte("\n")) + 1
		for _, le := range bad {
			if le.Line < 0 || le.Line > lines || le.Message == "" {
				t.Fatalf("bad line %+v in a file of %d lines", le, lines)
			}
		}
		seen := map[string]bool{}
		for _, r := range rosters {
			if err := r.Validate(); err != nil || !registered(r.Subject) || len(r.Students) == 0 || seen[r.ClassID] {
				t.Fatalf("parseRosterCSV returned %+v (%v)", r, err)
			}
			seen[r.ClassID] = true
		}
	})
}

// checkRefusal reports whether err is nil; otherwise it must be an API
// error with a 4xx status, a code and a message.
func checkRefusal(t *testing.T, what string, err error) bool {
	t.Helper()
	if err == nil {
		return true
	}
	var he *httpError
	if !errors.As(err, &he) || he.status < 400 || he.status > 499 || he.body.Code == "" || he.body.Message == "" {
		t.Fatalf("%s: refused with %#v, not a 4xx API error", what, err)
	}
	return false
}
