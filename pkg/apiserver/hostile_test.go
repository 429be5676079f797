package apiserver_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// TestHostileInput: requests built to break parsing, validation or the
// store — huge rosters, unicode and path tricks in ids, wrong types,
// duplicate keys, truncated or nested JSON — each get a clean 4xx error
// body, from an admin and from a teacher alike, and nothing is written.
func TestHostileInput(t *testing.T) {
	e := newEnv(t)
	s := e.school()
	e.okAs(s.ada, 201, "PUT", "/api/v1/classes/cs-a", `{"subject": "cs101", "template": "sandbox", "students": ["al"]}`)

	students := func(n int, f func(int) string) string {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = f(i)
		}
		b, _ := json.Marshal(ids)
		return string(b)
	}
	specWith := func(studentsJSON string) string {
		return `{"subject": "cs101", "template": "sandbox", "students": ` + studentsJSON + `}`
	}
	deep := strings.Repeat("[", 100) + strings.Repeat("]", 100)
	under1MiB := students(90_000, func(i int) string { return fmt.Sprintf("s%d", i) }) // ~900 KB

	type tc struct {
		desc, method, path, body string
		code                     int
		errCode                  string
	}
	cases := []tc{
		// Huge rosters.
		{"roster of 501", "PUT", "/api/v1/classes/cs-a", specWith(students(501, func(i int) string { return fmt.Sprintf("s%d", i) })), 400, "invalid_spec"},
		{"roster of 90000 under the body limit", "PUT", "/api/v1/classes/cs-a", specWith(under1MiB), 400, "invalid_spec"},
		{"official roster of 90000", "PUT", "/api/v1/rosters/cs-a", `{"subject": "cs101", "students": ` + under1MiB + `}`, 400, "invalid_roster"},
		{"roster over the body limit", "PUT", "/api/v1/classes/cs-a", specWith(students(150_000, func(i int) string { return fmt.Sprintf("student-%d", i) })), 413, "too_large"},
		{"room up over the body limit", "POST", "/room/up-class", `{"classId": "cs-a", "subject": "cs101", "students": ` + students(150_000, func(i int) string { return fmt.Sprintf("student-%d", i) }) + `}`, 413, "too_large"},
		{"roster file over the body limit", "POST", "/api/v1/rosters/import", "class,subject,student\n" + strings.Repeat("cs-a,cs101,al\n", 80_000), 413, "too_large"},

		// Unicode and path tricks in ids, in the path and in bodies.
		{"unicode class id", "PUT", "/api/v1/classes/cl%C3%A4ss", specWith(`["al"]`), 400, "invalid_id"},
		{"encoded dot-dot-slash class id", "GET", "/api/v1/classes/..%2F..%2Fetc", "", 400, "invalid_id"},
		{"encoded dot-dot class id", "POST", "/api/v1/classes/%2e%2e/up", "", 400, "invalid_id"},
		{"NUL in class id", "GET", "/api/v1/classes/cs%00a", "", 400, "invalid_id"},
		{"dot-dot student", "PUT", "/api/v1/classes/cs-a", specWith(`["../../etc/passwd"]`), 400, "invalid_spec"},
		{"accented student", "PUT", "/api/v1/classes/cs-a", specWith(`["élève"]`), 400, "invalid_spec"},
		{"zero-width space in a student", "PUT", "/api/v1/classes/cs-a", specWith(`["al\u200b"]`), 400, "invalid_spec"},
		{"right-to-left override", "PUT", "/api/v1/classes/cs-a", specWith(`["\u202eal"]`), 400, "invalid_spec"},
		{"fullwidth letters", "PUT", "/api/v1/classes/cs-a", specWith(`["ａｌ"]`), 400, "invalid_spec"},
		{"cyrillic a", "PUT", "/api/v1/classes/cs-a", specWith(`["аl"]`), 400, "invalid_spec"},
		{"NUL in a student", "PUT", "/api/v1/classes/cs-a", specWith(`["al\u0000"]`), 400, "invalid_spec"},
		{"invalid UTF-8 in a student", "PUT", "/api/v1/classes/cs-a", specWith("[\"al\xff\"]"), 400, "invalid_spec"},
		{"dot-dot subject", "PUT", "/api/v1/classes/cs-a", `{"subject": "..", "template": "sandbox", "students": ["al"]}`, 400, "invalid_spec"},
		{"dot-dot template", "PUT", "/api/v1/classes/cs-a", `{"subject": "cs101", "template": "../sandbox", "students": ["al"]}`, 422, "unknown_template"},
		{"dot-dot class in room up", "POST", "/room/up-class", `{"classId": "../cs-a", "subject": "cs101", "students": ["al"]}`, 400, "invalid_id"},
		{"dot-dot class in room down", "POST", "/room/down-class", `{"classId": "cs-a/../bio-a"}`, 400, "invalid_id"},
		{"dot-dot roster student", "PUT", "/api/v1/rosters/cs-a", `{"subject": "cs101", "students": ["../x"]}`, 400, "invalid_roster"},
		{"dot-dot user", "PUT", "/api/v1/users/..%2Froot", `{}`, 400, "invalid_id"},
		{"dot-dot subject in the path", "PUT", "/api/v1/subjects/%2e%2e", ``, 400, "invalid_id"},
		{"dot-dot granted subject", "PUT", "/api/v1/users/ada/subjects/..", ``, 400, "invalid_id"},
		{"artifact path escaping", "GET", "/api/v1/classes/cs-a/artifacts/al/files/../../../x", "", 400, "invalid_path"},
		{"artifact path encoded escape", "GET", "/api/v1/classes/cs-a/artifacts/al/..%2F..%2Fx", "", 400, "invalid_path"},
		{"unicode in the roster file", "POST", "/api/v1/rosters/import", "class,subject,student\ncs-a,cs101,\u00e9l\u00e8ve\n", 422, "invalid_csv"},
		{"control characters in a title", "PUT", "/api/v1/subjects/cs101", `{"title": "a\u0007b"}`, 400, "invalid_subject"},

		// Wrong types.
		{"students as a string", "PUT", "/api/v1/classes/cs-a", specWith(`"al"`), 400, "invalid_json"},
		{"students as numbers", "PUT", "/api/v1/classes/cs-a", specWith(`[1, 2]`), 400, "invalid_json"},
		{"students as an object", "PUT", "/api/v1/classes/cs-a", specWith(`{"al": true}`), 400, "invalid_json"},
		{"ttl as a string", "PUT", "/api/v1/classes/cs-a", `{"subject": "cs101", "template": "sandbox", "students": ["al"], "ttlSeconds": "7200"}`, 400, "invalid_json"},
		{"ttl as a fraction", "PUT", "/api/v1/classes/cs-a", `{"subject": "cs101", "template": "sandbox", "students": ["al"], "ttlSeconds": 1.5}`, 400, "invalid_json"},
		{"ttl overflowing int64", "PUT", "/api/v1/classes/cs-a", `{"subject": "cs101", "template": "sandbox", "students": ["al"], "ttlSeconds": 1e30}`, 400, "invalid_json"},
		{"ttl past a year", "PUT", "/api/v1/classes/cs-a", `{"subject": "cs101", "template": "sandbox", "students": ["al"], "ttlSeconds": 9223372036854775807}`, 400, "invalid_spec"},
		{"subject as null", "PUT", "/api/v1/classes/cs-a", `{"subject": null, "template": "sandbox", "students": ["al"]}`, 400, "invalid_spec"},
		{"role as a number", "PUT", "/api/v1/users/eve", `{"role": 1}`, 400, "invalid_json"},
		{"subjects as a string", "PUT", "/api/v1/users/eve", `{"subjects": "cs101"}`, 400, "invalid_json"},
		{"expiry as a string", "POST", "/api/v1/users/ada/tokens", `{"expiresInSeconds": "soon"}`, 400, "invalid_json"},
		{"negative expiry", "POST", "/api/v1/users/ada/tokens", `{"expiresInSeconds": -1}`, 400, "invalid_token"},
		{"classId as a number", "POST", "/room/down-class", `{"classId": 7}`, 400, "invalid_json"},

		// Duplicate keys: encoding/json would keep the last.
		{"duplicate subject", "PUT", "/api/v1/classes/cs-a", `{"subject": "cs101", "subject": "bio", "template": "sandbox", "students": ["al"]}`, 400, "invalid_json"},
		{"duplicate students", "PUT", "/api/v1/classes/cs-a", `{"subject": "cs101", "template": "sandbox", "students": ["al"], "students": ["mallory"]}`, 400, "invalid_json"},
		{"keys differing in case", "PUT", "/api/v1/classes/cs-a", `{"subject": "cs101", "SUBJECT": "bio", "template": "sandbox", "students": ["al"]}`, 400, "invalid_json"},
		{"a key in the wrong case", "PUT", "/api/v1/classes/cs-a", `{"Subject": "cs101", "template": "sandbox", "students": ["al"]}`, 400, "invalid_json"},
		{"duplicate classId", "POST", "/room/up-class", `{"classId": "cs-a", "classId": "bio-a", "subject": "cs101", "students": ["al"]}`, 400, "invalid_json"},
		{"duplicate role", "PUT", "/api/v1/users/eve", `{"role": "teacher", "role": "admin"}`, 400, "invalid_json"},
		{"duplicate roster subject", "PUT", "/api/v1/rosters/cs-a", `{"subject": "cs101", "students": [], "subject": "bio"}`, 400, "invalid_json"},
		{"duplicate dryRun-style escape", "PUT", "/api/v1/classes/cs-a", `{"subject": "cs101", "sub\u006aect": "x", "template": "sandbox", "students": ["al"]}`, 400, "invalid_json"},
		{"escaped duplicate", "PUT", "/api/v1/classes/cs-a", `{"subject": "cs101", "subj\u0065ct": "bio", "template": "sandbox", "students": ["al"]}`, 400, "invalid_json"},

		// Broken JSON.
		{"truncated", "PUT", "/api/v1/classes/cs-a", `{"subject": "cs101", "template": "sandbox", "students": ["al"`, 400, "invalid_json"},
		{"truncated key", "PUT", "/api/v1/classes/cs-a", `{"subj`, 400, "invalid_json"},
		{"only an opening brace", "POST", "/room/up-class", `{`, 400, "invalid_json"},
		{"empty body", "PUT", "/api/v1/classes/cs-a", ``, 400, "invalid_json"},
		{"whitespace body", "POST", "/room/down-class", " \n\t ", 400, "invalid_json"},
		{"null body", "PUT", "/api/v1/classes/cs-a", `null`, 400, "invalid_json"},
		{"array body", "PUT", "/api/v1/classes/cs-a", `[]`, 400, "invalid_json"},
		{"string body", "PUT", "/api/v1/users/eve", `"admin"`, 400, "invalid_json"},
		{"deeply nested", "PUT", "/api/v1/classes/cs-a", specWith(deep), 400, "invalid_json"},
		{"nested objects", "PUT", "/api/v1/users/eve", `{"subjects": [{"a": {"b": {"c": 1}}}]}`, 400, "invalid_json"},
		{"trailing garbage", "PUT", "/api/v1/classes/cs-a", specWith(`["al"]`) + ` x`, 400, "invalid_json"},
		{"two objects", "PUT", "/api/v1/rosters/cs-a", `{"subject": "cs101", "students": []}{"subject": "cs101", "students": []}`, 400, "invalid_json"},
		{"a byte order mark", "PUT", "/api/v1/classes/cs-a", "\uFEFF" + specWith(`["al"]`), 400, "invalid_json"},
		{"single quotes", "PUT", "/api/v1/classes/cs-a", `{'subject': 'cs101'}`, 400, "invalid_json"},
		{"comments", "PUT", "/api/v1/classes/cs-a", `{"subject": "cs101" /* bio */, "template": "sandbox", "students": ["al"]}`, 400, "invalid_json"},
		{"unknown field", "PUT", "/api/v1/classes/cs-a", `{"subject": "cs101", "template": "sandbox", "students": ["al"], "image": "evil"}`, 400, "invalid_json"},
		{"unknown field in a user", "PUT", "/api/v1/users/eve", `{"role": "teacher", "isAdmin": true}`, 400, "invalid_json"},
		{"binary roster file", "POST", "/api/v1/rosters/import", "\x00\x01\x02\xff\xfe", 422, "invalid_csv"},

		// Query strings.
		{"huge wait", "GET", "/api/v1/classes/cs-a?wait=9999999999999h&resourceVersion=1", "", 400, "invalid_wait"},
		{"audit limit negative", "GET", "/api/v1/audit?limit=-1", "", 400, "invalid_query"},
		{"audit time garbage", "GET", "/api/v1/audit?since=%00", "", 400, "invalid_query"},
		{"run of dot-dots", "GET", "/api/v1/classes/cs-a/artifacts?run=..", "", 400, "invalid_run"},
	}

	before := e.world()
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			for _, who := range []struct{ name, tok string }{{"admin", token}, {"ada", s.ada}} {
				r := e.doAs(who.tok, c.method, c.path, c.body)
				if who.name == "ada" && r.code == 403 {
					continue // admin-only routes refuse her first, which is as clean
				}
				if r.code != c.code {
					t.Errorf("%s: %d %.300s, want %d", who.name, r.code, r.body, c.code)
					continue
				}
				if eb := errorOf(t, r); eb.Code != c.errCode {
					t.Errorf("%s: %.300s, want code %s", who.name, r.body, c.errCode)
				}
			}
		})
	}
	e.unchanged(before, "hostile requests")
}
