package apiserver

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/store"
	"github.com/labstack/echo/v4"
)

// A class's ETag is its resourceVersion in quotes: GET and PUT send it, and
// a PUT with If-Match writes only over the class at that version, so that
// two teachers editing one class do not overwrite each other. A PUT without
// If-Match writes whatever the class is at (the last write wins), as it
// always has.

// classETag is the ETag of a class at version.
func classETag(version int64) string { return `"` + strconv.FormatInt(version, 10) + `"` }

// setClassETag sends the class's ETag with the answer.
func setClassETag(c echo.Context, cl *api.Class) {
	if cl != nil {
		c.Response().Header().Set("ETag", classETag(cl.Version))
	}
}

// ifMatch reads a class write's If-Match header: the version it names
// (store.AnyVersion for *), and whether there was one. It takes one strong
// ETag as GET sends it ("7"; the quotes may be left out) or *; anything else
// is 400 invalid_if_match, so that a condition the caller meant is never
// ignored.
func ifMatch(c echo.Context) (int64, bool, error) {
	vals := c.Request().Header.Values("If-Match")
	if len(vals) == 0 {
		return 0, false, nil
	}
	raw := strings.TrimSpace(strings.Join(vals, ","))
	bad := func(why string) (int64, bool, error) {
		return 0, false, apiError(http.StatusBadRequest, "invalid_if_match",
			fmt.Sprintf("If-Match %q: %s; send the class's ETag as GET gives it (its resourceVersion in quotes, e.g. \"7\") or *", raw, why))
	}
	switch {
	case raw == "*":
		return store.AnyVersion, true, nil
	case raw == "":
		return bad("empty")
	case strings.Contains(raw, ","):
		return bad("give one ETag")
	case strings.HasPrefix(raw, "W/"):
		return bad("a weak ETag never matches")
	}
	tag := raw
	if len(tag) >= 2 && tag[0] == '"' && tag[len(tag)-1] == '"' {
		tag = tag[1 : len(tag)-1]
	}
	v, err := strconv.ParseInt(tag, 10, 64)
	if err != nil || v < 1 || tag != strconv.FormatInt(v, 10) {
		return bad("not a class's resourceVersion")
	}
	return v, true, nil
}

// preconditionFailed is the 412 for a refused If-Match: the class is at
// another version (sent as its ETag, and named in the message and in
// details), or does not exist. Nothing was written.
func preconditionFailed(c echo.Context, pe *store.PreconditionError) error {
	if pe.Current == 0 {
		return apiError(http.StatusPreconditionFailed, "precondition_failed",
			fmt.Sprintf("class %q does not exist, so If-Match cannot match; nothing was written", pe.ID))
	}
	c.Response().Header().Set("ETag", classETag(pe.Current))
	want := "the version you sent"
	if pe.Want != store.AnyVersion {
		want = "resourceVersion " + strconv.FormatInt(pe.Want, 10)
	}
	err := apiError(http.StatusPreconditionFailed, "precondition_failed",
		fmt.Sprintf("class %q was changed since %s: it is at resourceVersion %d; nothing was written. Get it again, make your change to that, and send it with its new ETag",
			pe.ID, want, pe.Current))
	var he *httpError
	if errors.As(err, &he) {
		he.body.Details = []ErrorDetail{{Value: strconv.FormatInt(pe.Current, 10), Message: "the class's current resourceVersion"}}
	}
	return err
}

// checkIfMatch refuses early, from the class as read (nil when it does not
// exist), a write whose If-Match cannot hold, so that a stale write is 412
// before its body is judged. The store checks again, atomically, as it
// writes.
func checkIfMatch(c echo.Context, id string, cl *api.Class, version int64, has bool) error {
	if !has {
		return nil
	}
	var pe *store.PreconditionError
	if err := store.IfVersion(id, version)(cl); errors.As(err, &pe) {
		return preconditionFailed(c, pe)
	}
	return nil
}
