package apiserver_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/apiserver"
	"github.com/homeroom/homeroom/pkg/policy"
)

// refusedAs performs a request as tok that must be refused with code and
// errCode, a message containing each of want, and nothing written.
func (e *env) refusedAs(tok string, code int, method, path, body, errCode string, want ...string) apiErrorBody {
	e.t.Helper()
	before := e.world()
	r := e.doAs(tok, method, path, body)
	if r.code != code {
		e.t.Errorf("%s %s: %d %s, want %d %s", method, path, r.code, r.body, code, errCode)
		return apiErrorBody{}
	}
	eb := errorOf(e.t, r)
	if eb.Code != errCode {
		e.t.Errorf("%s %s: %s, want %s", method, path, r.body, errCode)
	}
	for _, w := range want {
		if !strings.Contains(eb.Message, w) {
			e.t.Errorf("%s %s: message %q lacks %q", method, path, eb.Message, w)
		}
	}
	e.unchanged(before, method+" "+path)
	return eb
}

// TestNoUpNamesAStudentOffTheRoster: whatever the route and whoever asks,
// a registered class is brought Up only with students from its official
// roster, and a refusal names every one of the others.
func TestNoUpNamesAStudentOffTheRoster(t *testing.T) {
	e := newEnv(t)
	s := e.school()
	const classes = "/api/v1/classes/cs-a"

	t.Run("a spec naming outsiders", func(t *testing.T) {
		eb := e.refusedAs(s.ada, 422, "PUT", classes, `{"subject": "cs101", "template": "sandbox", "students": ["al", "mallory", "bo", "trudy"]}`,
			"not_on_roster", `class "cs-a"`, "mallory, trudy")
		if len(eb.Details) != 2 || eb.Details[0].Value != "mallory" || eb.Details[1].Value != "trudy" {
			t.Errorf("details %+v", eb.Details)
		}
	})
	t.Run("room up naming outsiders", func(t *testing.T) {
		e.refusedAs(s.ada, 422, "POST", "/room/up-class", `{"classId": "cs-a", "subject": "cs101", "students": ["mallory"]}`,
			"not_on_roster", "mallory")
	})
	t.Run("the registered subject only", func(t *testing.T) {
		e.ok(200, "PUT", "/api/v1/users/ada", `{"subjects": ["cs101", "bio"]}`)
		e.refusedAs(s.ada, 422, "PUT", classes, `{"subject": "bio", "template": "sandbox", "students": ["al"]}`,
			"subject_mismatch", `registered to subject "cs101", not "bio"`)
		e.ok(200, "PUT", "/api/v1/users/ada", `{"subjects": ["cs101"]}`)
	})
	t.Run("an unregistered class of her own subject", func(t *testing.T) {
		// An admin made it; ada sees it, and may not bring it Up.
		e.ok(201, "PUT", "/api/v1/classes/cs-adhoc", `{"subject": "cs101", "template": "sandbox", "students": ["al"]}`)
		e.okAs(s.ada, 200, "GET", "/api/v1/classes/cs-adhoc", "")
		e.refusedAs(s.ada, 422, "POST", "/api/v1/classes/cs-adhoc/up", "", "not_registered", `"cs-adhoc" is not registered`)
		e.refusedAs(s.ada, 422, "PUT", "/api/v1/classes/cs-adhoc", `{"subject": "cs101", "template": "sandbox", "students": ["al"]}`, "not_registered")
		e.okAs(s.ada, 202, "POST", "/api/v1/classes/cs-adhoc/down", "") // Down is never refused
	})

	t.Run("a subset is fine", func(t *testing.T) {
		e.okAs(s.ada, 201, "PUT", classes, `{"subject": "cs101", "template": "sandbox", "students": ["di", "al"]}`)
		e.okAs(s.ada, 202, "POST", classes+"/up", "")
		e.okAs(s.ada, 202, "POST", classes+"/down", "")
	})

	t.Run("the roster shrinks: the next Up is refused", func(t *testing.T) {
		e.ok(200, "PUT", "/api/v1/rosters/cs-a", `{"subject": "cs101", "students": ["al", "bo"]}`)
		e.refusedAs(s.ada, 422, "POST", classes+"/up", "", "not_on_roster", "di")
		e.refusedAs(s.ada, 422, "POST", "/room/up-class", `{"classId": "cs-a", "subject": "cs101", "students": ["al", "di"]}`, "not_on_roster", "di")
		e.okAs(s.ada, 202, "POST", "/room/up-class", `{"classId": "cs-a", "subject": "cs101", "students": ["al", "bo"]}`)
	})

	t.Run("the class is unregistered: no more Ups by teachers", func(t *testing.T) {
		e.okAs(s.ada, 202, "POST", classes+"/down", "")
		e.ok(204, "DELETE", "/api/v1/rosters/cs-a", "")
		// She still sees her class (its subject is hers) and may take it Down.
		e.okAs(s.ada, 200, "GET", classes, "")
		e.refusedAs(s.ada, 422, "POST", classes+"/up", "", "not_registered")
		e.ok(201, "PUT", "/api/v1/rosters/cs-a", `{"subject": "cs101", "students": ["al", "bo"]}`)
	})

	t.Run("admins are held to a registered class's roster too", func(t *testing.T) {
		e.refusedAs(token, 422, "PUT", classes, `{"subject": "cs101", "template": "sandbox", "students": ["al", "zed"]}`, "not_on_roster", "zed")
		e.refusedAs(token, 422, "POST", "/room/up-class", `{"classId": "cs-a", "subject": "cs101", "students": ["zed"]}`, "not_on_roster", "zed")
		// An admin may still run an unregistered class, as before
		// registration existed (README walkthrough).
		e.ok(201, "PUT", "/api/v1/classes/adhoc", `{"subject": "art", "template": "sandbox", "students": ["anyone"]}`)
		e.ok(202, "POST", "/api/v1/classes/adhoc/up", "")
	})
}

// TestRegistrationRequired: with the option, an admin too writes and brings
// Up only registered classes.
func TestRegistrationRequired(t *testing.T) {
	e := newEnvWith(t, policy.Default(), apiserver.WithRegistrationRequired(true))
	e.school()
	e.refusedAs(token, 422, "PUT", "/api/v1/classes/adhoc", `{"subject": "art", "template": "sandbox", "students": ["x"]}`, "not_registered")
	e.refusedAs(token, 422, "POST", "/room/up-class", `{"classId": "adhoc", "subject": "art", "students": ["x"]}`, "not_registered")
	e.ok(201, "PUT", "/api/v1/classes/cs-a", `{"subject": "cs101", "template": "sandbox", "students": ["al"]}`)
	e.ok(202, "POST", "/api/v1/classes/cs-a/up", "")
	// A class written before it was required, or by hand, cannot come Up.
	if _, _, err := e.store.PutSpec(t.Context(), "legacy", api.ClassSpec{Subject: "art", Template: "sandbox", Students: []string{"x"}}); err != nil {
		t.Fatal(err)
	}
	e.refusedAs(token, 422, "POST", "/api/v1/classes/legacy/up", "", "not_registered")
	e.ok(202, "POST", "/api/v1/classes/legacy/down", "")
}

type importResult struct {
	DryRun                      bool
	Classes, Students           int
	Created, Updated, Unchanged []string
}

func TestRosterImport(t *testing.T) {
	e := newEnv(t)
	e.ok(201, "PUT", "/api/v1/subjects/cs101", "")
	e.ok(201, "PUT", "/api/v1/subjects/bio", "")
	e.ok(201, "PUT", "/api/v1/rosters/old", `{"subject": "bio", "students": ["x"]}`)

	good := "\uFEFFClass, Subject ,student\n" +
		"# the autumn term\n" +
		"cs101-a,cs101,alice\n" +
		"cs101-a,cs101,bob\n" +
		"\n" +
		"bio-a,bio,carol\n" +
		"cs101-a,cs101,dave\n"
	importAs := func(body, query string) (response, importResult) {
		t.Helper()
		r := e.doAs(token, "POST", "/api/v1/rosters/import"+query, body, "Content-Type", "text/csv")
		var res importResult
		json.Unmarshal(r.body, &res)
		return r, res
	}

	before := e.world()
	r, res := importAs(good, "?dryRun=true")
	if r.code != 200 || !res.DryRun || res.Classes != 2 || res.Students != 4 || !slices.Equal(res.Created, []string{"cs101-a", "bio-a"}) {
		t.Errorf("dry run: %d %s", r.code, r.body)
	}
	e.unchanged(before, "a dry run")

	r, res = importAs(good, "")
	if r.code != 200 || res.DryRun || !slices.Equal(res.Created, []string{"cs101-a", "bio-a"}) || len(res.Updated)+len(res.Unchanged) != 0 {
		t.Fatalf("import: %d %s", r.code, r.body)
	}
	var ro api.Roster
	json.Unmarshal(e.ok2(200, "GET", "/api/v1/rosters/cs101-a").body, &ro)
	if ro.Subject != "cs101" || !slices.Equal(ro.Students, []string{"alice", "bob", "dave"}) {
		t.Errorf("imported roster %+v", ro)
	}
	// The same file again changes nothing; a changed file updates only
	// the classes it names, and each gets exactly its lines.
	if _, res := importAs(good, ""); !slices.Equal(res.Unchanged, []string{"cs101-a", "bio-a"}) {
		t.Errorf("re-import: %+v", res)
	}
	if _, res := importAs("student,class,subject\nbob,cs101-a,cs101\n", ""); !slices.Equal(res.Updated, []string{"cs101-a"}) {
		t.Errorf("a smaller roster: %+v", res)
	}
	json.Unmarshal(e.ok2(200, "GET", "/api/v1/rosters/cs101-a").body, &ro)
	if !slices.Equal(ro.Students, []string{"bob"}) {
		t.Errorf("after the smaller file: %+v", ro)
	}
	e.ok2(200, "GET", "/api/v1/rosters/old")

	// Every bad line is reported, and nothing is written.
	bad := strings.Join([]string{
		"class,subject,student",
		"cs101-a,cs101,alice",            // 2 fine
		"CS101-A,cs101,bob",              // 3 bad class id
		"cs101-a,cs101,../etc",           // 4 bad student
		"cs101-a,alchemy,eve",            // 5 unknown subject
		"cs101-a,bio,frank",              // 6 another subject for the class
		"cs101-a,cs101,alice",            // 7 twice
		"cs101-a,cs101",                  // 8 too few fields
		"cs101-a,cs101,gina,extra",       // 9 too many
		"cs101-a,cs101,h\u00e9l\u00e8ne", // 10 unicode
		`"cs101-a,cs101,ivan`,            // 11 unterminated quote: the rest is one field
	}, "\n") + "\n"
	before = e.world()
	r = e.doAs(token, "POST", "/api/v1/rosters/import", bad, "Content-Type", "text/csv")
	eb := errorOf(t, r)
	var lines []int
	for _, d := range eb.Details {
		lines = append(lines, d.Line)
	}
	if r.code != 422 || eb.Code != "invalid_csv" || !slices.Equal(lines, []int{3, 4, 5, 6, 7, 8, 9, 10, 11}) ||
		!strings.Contains(eb.Message, "9 bad lines; nothing was imported") {
		t.Errorf("bad file: %d %s", r.code, r.body)
	}
	for _, d := range eb.Details {
		if d.Message == "" {
			t.Errorf("line %d without a message", d.Line)
		}
	}
	if !strings.Contains(string(r.body), `is already on line 2`) || !strings.Contains(string(r.body), `of subject \"cs101\" on line 2, not \"bio\"`) {
		t.Errorf("messages do not say where: %s", r.body)
	}
	e.unchanged(before, "a bad roster file")

	// A roster over the limit, a wrong header, an empty file.
	var big strings.Builder
	big.WriteString("class,subject,student\n")
	for i := range api.MaxStudents + 2 {
		fmt.Fprintf(&big, "huge,cs101,s%d\n", i)
	}
	for _, tc := range []struct{ desc, body, want string }{
		{"over the limit", big.String(), "more than 500 students"},
		{"no header", "cs101-a,cs101,alice\n", `unknown column "cs101-a"`},
		{"a column missing", "class,student\nx,y\n", `column "subject" missing`},
		{"a column twice", "class,class,subject,student\n", `column "class" twice`},
		{"empty", "", "the file is empty"},
		{"not UTF-8", "class,subject,student\nx,cs101,\xff\n", "not UTF-8"},
	} {
		r := e.doAs(token, "POST", "/api/v1/rosters/import", tc.body, "Content-Type", "text/csv")
		eb := errorOf(t, r)
		if r.code != 422 || eb.Code != "invalid_csv" || len(eb.Details) == 0 || !strings.Contains(eb.Details[len(eb.Details)-1].Message, tc.want) {
			t.Errorf("%s: %d %s", tc.desc, r.code, r.body)
		}
	}
	if r := e.do("POST", "/api/v1/rosters/import?dryRun=maybe", good); r.code != 400 {
		t.Errorf("dryRun=maybe: %d", r.code)
	}
	e.unchanged(before, "refused roster files")

	// A file bad on every line reports the first thousand and the total.
	var awful strings.Builder
	awful.WriteString("class,subject,student\n")
	for range 1500 {
		awful.WriteString("BAD,cs101,x\n")
	}
	r = e.doAs(token, "POST", "/api/v1/rosters/import", awful.String(), "Content-Type", "text/csv")
	if eb := errorOf(t, r); r.code != 422 || len(eb.Details) != 1000 || !strings.Contains(eb.Message, "1500 bad lines") {
		t.Errorf("awful file: %d, %d details, %q", r.code, len(eb.Details), eb.Message)
	}
	if r.code == http.StatusOK {
		t.Fatal("unreachable")
	}
}
