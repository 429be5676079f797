package apiserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/timetable"
	"github.com/labstack/echo/v4"
)

// readBody reads the whole request body; BodyLimit has already bounded it,
// and a body over the limit surfaces here as its 413.
func readBody(c echo.Context) ([]byte, error) {
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		var he *echo.HTTPError
		if errors.As(err, &he) {
			return nil, err
		}
		return nil, apiError(http.StatusBadRequest, "invalid_body", "could not read the request body")
	}
	return body, nil
}

// decode reads exactly one JSON object from the request into v (a pointer
// to a struct); see decodeJSON.
func decode(c echo.Context, v any) error {
	body, err := readBody(c)
	if err != nil {
		return err
	}
	return decodeJSON(body, v)
}

// decodeJSON decodes body, which must be exactly one JSON object, into v, a
// pointer to a struct. It is stricter than encoding/json, which keeps the
// last of duplicated keys and matches keys case-insensitively: a body that
// says two things, or says one in a way another parser could read
// differently, is refused. So are unknown fields, wrong types and trailing
// data, each with a 400 invalid_json that says which.
func decodeJSON(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return apiError(http.StatusBadRequest, "invalid_json", "request body: empty; a JSON object is required")
	}
	if err := checkKeys(body, jsonFields(v)); err != nil {
		return apiError(http.StatusBadRequest, "invalid_json", "request body: "+err.Error())
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return apiError(http.StatusBadRequest, "invalid_json", "request body: "+err.Error())
	}
	return nil
}

// jsonFields returns the JSON names of the fields of the struct v points to.
func jsonFields(v any) map[string]bool {
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	fields := map[string]bool{}
	if t.Kind() != reflect.Struct {
		return fields
	}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fields[name] = true
	}
	return fields
}

// maxDepth bounds the nesting of a request body. No request has more than
// two levels; deep nesting only costs the parser.
const maxDepth = 32

// checkKeys walks the JSON in body and refuses: anything but one object at
// the top, a key repeated in any object (also when it differs only in case),
// a top-level key that is not exactly one of fields, nesting beyond
// maxDepth, and anything after the object.
func checkKeys(body []byte, fields map[string]bool) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	type frame struct {
		object    bool
		expectKey bool
		keys      map[string]string // lower-cased key → key as given
	}
	var stack []*frame
	// valueDone marks the end of a value in the enclosing object.
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].expectKey = true
		}
	}
	first := true
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			if first || len(stack) > 0 {
				return errors.New("unexpected end of JSON input")
			}
			return nil
		}
		if err != nil {
			return err
		}
		if len(stack) == 0 && !first {
			return errors.New("data after the JSON object")
		}
		if first {
			first = false
			if d, ok := tok.(json.Delim); !ok || d != '{' {
				return errors.New("a JSON object is required")
			}
		}
		// Inside an object, where a key may come, Token returns the key as
		// a string, or the closing brace.
		if key, isKey := tok.(string); isKey && len(stack) > 0 && stack[len(stack)-1].object && stack[len(stack)-1].expectKey {
			n := len(stack)
			top := stack[n-1]
			if prev, dup := top.keys[strings.ToLower(key)]; dup {
				if prev == key {
					return fmt.Errorf("duplicate key %q", key)
				}
				return fmt.Errorf("keys %q and %q differ only in case", prev, key)
			}
			top.keys[strings.ToLower(key)] = key
			if n == 1 && !fields[key] {
				return fmt.Errorf("unknown field %q", key)
			}
			top.expectKey = false
			continue
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if len(stack) == maxDepth {
				return fmt.Errorf("nested deeper than %d levels", maxDepth)
			}
			stack = append(stack, &frame{object: tok == json.Delim('{'), expectKey: tok == json.Delim('{'), keys: map[string]string{}})
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			valueDone()
		default:
			valueDone()
		}
	}
}

// parseClassSpec decodes and validates the body of PUT /classes/{id}.
func parseClassSpec(body []byte) (api.ClassSpec, error) {
	var spec api.ClassSpec
	if err := decodeJSON(body, &spec); err != nil {
		return api.ClassSpec{}, err
	}
	if err := checkSpec(spec); err != nil {
		return api.ClassSpec{}, err
	}
	timetable.Normalize(spec.Schedule)
	if err := timetable.Validate(spec.Schedule, spec.TTLSeconds, time.Now()); err != nil {
		return api.ClassSpec{}, apiError(http.StatusBadRequest, "invalid_schedule", err.Error())
	}
	return spec, nil
}

// roomUpBody is the seed-style request: a whole class in one call.
type roomUpBody struct {
	ClassID    string   `json:"classId"`
	Students   []string `json:"students"`
	Subject    string   `json:"subject"`
	Template   string   `json:"template"`
	TTLSeconds int64    `json:"ttlSeconds"`
}

// parseRoomUp decodes and validates the body of POST /room/up-class into
// the class id and its spec (template "sandbox" when left out).
func parseRoomUp(body []byte) (string, api.ClassSpec, error) {
	var b roomUpBody
	if err := decodeJSON(body, &b); err != nil {
		return "", api.ClassSpec{}, err
	}
	if err := api.ValidateID("classId", b.ClassID); err != nil {
		return "", api.ClassSpec{}, apiError(http.StatusBadRequest, "invalid_id", err.Error())
	}
	spec := api.ClassSpec{Subject: b.Subject, Template: b.Template, Students: b.Students, TTLSeconds: b.TTLSeconds}
	if spec.Template == "" {
		spec.Template = "sandbox"
	}
	if err := checkSpec(spec); err != nil {
		return "", api.ClassSpec{}, err
	}
	return b.ClassID, spec, nil
}

// roomDownBody is the body of POST /room/down-class.
type roomDownBody struct {
	ClassID string `json:"classId"`
}

func parseRoomDown(body []byte) (string, error) {
	var b roomDownBody
	if err := decodeJSON(body, &b); err != nil {
		return "", err
	}
	if err := api.ValidateID("classId", b.ClassID); err != nil {
		return "", apiError(http.StatusBadRequest, "invalid_id", err.Error())
	}
	return b.ClassID, nil
}

// rosterBody is the body of PUT /rosters/{classId}.
type rosterBody struct {
	Subject  string   `json:"subject"`
	Students []string `json:"students"`
}

func parseRoster(classID string, body []byte) (api.Roster, error) {
	var b rosterBody
	if err := decodeJSON(body, &b); err != nil {
		return api.Roster{}, err
	}
	r := api.Roster{ClassID: classID, Subject: b.Subject, Students: b.Students}
	if err := r.Validate(); err != nil {
		return api.Roster{}, apiError(http.StatusBadRequest, "invalid_roster", err.Error())
	}
	return r, nil
}

// userBody is the body of PUT /users/{name}.
type userBody struct {
	Role     api.Role `json:"role"`
	Subjects []string `json:"subjects"`
}

func parseUser(body []byte) (userBody, error) {
	var b userBody
	if err := decodeJSON(body, &b); err != nil {
		return userBody{}, err
	}
	if b.Role == "" {
		b.Role = api.RoleTeacher
	}
	if err := api.ValidateRole(b.Role); err != nil {
		return userBody{}, apiError(http.StatusBadRequest, "invalid_user", err.Error())
	}
	if len(b.Subjects) > maxSubjectsPerUser {
		return userBody{}, apiError(http.StatusBadRequest, "invalid_user",
			fmt.Sprintf("subjects lists %d subjects, at most %d are allowed", len(b.Subjects), maxSubjectsPerUser))
	}
	for _, s := range b.Subjects {
		if err := api.ValidateID("subject", s); err != nil {
			return userBody{}, apiError(http.StatusBadRequest, "invalid_user", err.Error())
		}
	}
	return b, nil
}

// maxSubjectsPerUser bounds a user's subjects, which every request of theirs
// carries around.
const maxSubjectsPerUser = 200

// subjectBody is the body of PUT /subjects/{subject}.
type subjectBody struct {
	Title string `json:"title"`
}

// maxTitle bounds a subject's title, in bytes.
const maxTitle = 200

func parseSubject(body []byte) (subjectBody, error) {
	var b subjectBody
	// A subject needs no body at all: its id is in the path.
	if len(bytes.TrimSpace(body)) == 0 {
		return b, nil
	}
	if err := decodeJSON(body, &b); err != nil {
		return subjectBody{}, err
	}
	if len(b.Title) > maxTitle || strings.ContainsFunc(b.Title, isControl) {
		return subjectBody{}, apiError(http.StatusBadRequest, "invalid_subject",
			fmt.Sprintf("title must be at most %d bytes of printable text", maxTitle))
	}
	return b, nil
}

// tokenBody is the body of POST /users/{name}/tokens; both fields optional.
type tokenBody struct {
	Description      string `json:"description"`
	ExpiresInSeconds int64  `json:"expiresInSeconds"`
}

// maxTokenLifetime bounds expiresInSeconds: a token for longer than a year
// should be issued again.
const maxTokenLifetime = 366 * 24 * 60 * 60

func parseToken(body []byte) (tokenBody, error) {
	var b tokenBody
	if len(bytes.TrimSpace(body)) == 0 {
		return b, nil
	}
	if err := decodeJSON(body, &b); err != nil {
		return tokenBody{}, err
	}
	if len(b.Description) > maxTitle || strings.ContainsFunc(b.Description, isControl) {
		return tokenBody{}, apiError(http.StatusBadRequest, "invalid_token",
			fmt.Sprintf("description must be at most %d bytes of printable text", maxTitle))
	}
	if b.ExpiresInSeconds < 0 || b.ExpiresInSeconds > maxTokenLifetime {
		return tokenBody{}, apiError(http.StatusBadRequest, "invalid_token",
			fmt.Sprintf("expiresInSeconds must be between 0 (never) and %d", maxTokenLifetime))
	}
	return b, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || r == '\uFFFD' }
