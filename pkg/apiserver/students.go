package apiserver

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/store"
)

// asker turns a request about student and its body into the change of the
// student's desire; a bad body is an *httpError.
type asker func(student string, body []byte) (func(*api.StudentDesire, *api.Class, time.Time) error, error)

// studentAction serves POST /classes/{id}/students/{student}/{action}: a
// teacher's request about one student, recorded as desired state that the
// controller acts on (never a container call). 422 for a student the roster
// does not list, 409 for a class that is not Up.
func (s *Server) studentAction(action string, ask asker) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := classID(c)
		if err != nil {
			return err
		}
		student := c.Param("student")
		if err := api.ValidateID("student id", student); err != nil {
			return apiError(http.StatusBadRequest, "invalid_id", err.Error())
		}
		cl, _, err := s.authorizeClass(c, id)
		if err != nil {
			return err
		}
		if cl == nil {
			return notFound(id)
		}
		body, err := io.ReadAll(c.Request().Body)
		if err != nil {
			return err
		}
		set, err := ask(student, body)
		if err != nil {
			return err
		}
		written, err := s.store.AskForStudent(c.Request().Context(), id, student, action, set, owns(who(c), id))
		switch {
		case errors.Is(err, store.ErrNotOnRoster):
			return apiError(http.StatusUnprocessableEntity, "not_in_class", fmt.Sprintf("student %q is not on the roster of class %q", student, id))
		case errors.Is(err, errClassUp):
			return apiError(http.StatusConflict, "class_up", fmt.Sprintf("class %q is Up: %s's sandbox runs; give extra time or collect it instead (a late hand-in is for after a Down)", id, student))
		case errors.Is(err, store.ErrClassNotUp):
			return apiError(http.StatusConflict, "class_not_up", fmt.Sprintf("class %q is not Up: bring it up first (a Down collects every student)", id))
		case err != nil:
			return storeError(err, id)
		}
		s.watch.poke()
		return c.JSON(http.StatusAccepted, written)
	}
}

// upOnly is a request for a student of an Up class; like Up and Down, it
// takes no body.
func upOnly(set func(*api.StudentDesire, time.Time)) asker {
	return func(string, []byte) (func(*api.StudentDesire, *api.Class, time.Time) error, error) {
		return func(d *api.StudentDesire, c *api.Class, now time.Time) error {
			if c.DesiredPhase != api.PhaseUp {
				return store.ErrClassNotUp
			}
			set(d, now)
			return nil
		}, nil
	}
}

var (
	restartStudent = upOnly(func(d *api.StudentDesire, now time.Time) { d.RestartAt = &now })
	collectStudent = upOnly(func(d *api.StudentDesire, now time.Time) { d.CollectAt = &now })
)

// untilBody is the body of POST …/students/{student}/extend and …/late:
// a time, or a number of minutes from now.
type untilBody struct {
	Until   *time.Time `json:"until"`
	Minutes int        `json:"minutes"`
}

// parseUntil reads an untilBody into the end it names at a given now:
// in the future and at most api.MaxExtension ahead, or an *httpError.
func parseUntil(body []byte) (func(now time.Time) (time.Time, error), error) {
	var b untilBody
	if err := decodeJSON(body, &b); err != nil {
		return nil, err
	}
	if (b.Until == nil) == (b.Minutes == 0) {
		return nil, apiError(http.StatusBadRequest, "invalid_extension", `give "until" (an RFC 3339 time) or "minutes", not both`)
	}
	if b.Minutes < 0 || time.Duration(b.Minutes)*time.Minute > api.MaxExtension {
		return nil, apiError(http.StatusBadRequest, "invalid_extension", fmt.Sprintf("minutes is %d: from 1 to %d", b.Minutes, int(api.MaxExtension/time.Minute)))
	}
	return func(now time.Time) (time.Time, error) {
		until := now.Add(time.Duration(b.Minutes) * time.Minute)
		if b.Until != nil {
			until = b.Until.UTC().Truncate(time.Second)
		}
		if !until.After(now) || until.Sub(now) > api.MaxExtension {
			return until, apiError(http.StatusBadRequest, "invalid_extension",
				fmt.Sprintf("until %s: it must be in the future and at most %s ahead", until.Format(time.RFC3339), api.MaxExtension))
		}
		return until, nil
	}, nil
}

// extendStudent keeps a student's sandbox past the class's Down until a
// time at most api.MaxExtension ahead: asked while the class is Up, or while
// the student's time already runs past its Down (to move it again).
func extendStudent(student string, body []byte) (func(*api.StudentDesire, *api.Class, time.Time) error, error) {
	end, err := parseUntil(body)
	if err != nil {
		return nil, err
	}
	return func(d *api.StudentDesire, c *api.Class, now time.Time) error {
		if c.DesiredPhase != api.PhaseUp && !c.Extended(student, now) {
			return store.ErrClassNotUp
		}
		until, err := end(now)
		if err != nil {
			return err
		}
		up := *c.UpSince
		d.Until, d.UntilUp = &until, &up
		return nil
	}, nil
}

// errClassUp answers a late hand-in asked of a class that is Up: the
// student's sandbox runs, and extend or collect is what the teacher wants.
var errClassUp = errors.New("class is up")

// lateStudent gives a student of a Down class a late hand-in until a time
// at most api.MaxExtension ahead: their sandbox made again with their last
// collected work, then collected as a run of its own. Asked again while it
// runs, it moves the end and keeps the sandbox and its sign-ins (which
// end with their link, at the end as it was when the link was made).
func lateStudent(student string, body []byte) (func(*api.StudentDesire, *api.Class, time.Time) error, error) {
	end, err := parseUntil(body)
	if err != nil {
		return nil, err
	}
	return func(d *api.StudentDesire, c *api.Class, now time.Time) error {
		if c.DesiredPhase == api.PhaseUp {
			return errClassUp
		}
		until, err := end(now)
		if err != nil {
			return err
		}
		if !c.Late(student, now) {
			d.LateAt = &now
		}
		d.LateUntil = &until
		return nil
	}, nil
}
