package apiserver

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/store"
)

// studentAction serves POST /classes/{id}/students/{student}/{restart|collect}:
// a teacher's request about one student of an Up class, recorded as desired
// state that the controller acts on (never a container call). 404 for a
// student the roster does not list, 409 for a class that is not Up.
func (s *Server) studentAction(action string, set func(*api.StudentDesire, time.Time)) echo.HandlerFunc {
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
		written, err := s.store.AskForStudent(c.Request().Context(), id, student, action, set, owns(who(c), id))
		switch {
		case errors.Is(err, store.ErrNotOnRoster):
			return apiError(http.StatusNotFound, "not_on_roster", fmt.Sprintf("student %q is not on the roster of class %q", student, id))
		case errors.Is(err, store.ErrClassNotUp):
			return apiError(http.StatusConflict, "class_not_up", fmt.Sprintf("class %q is not Up: bring it up first (a Down collects every student)", id))
		case err != nil:
			return storeError(err, id)
		}
		s.watch.poke()
		return c.JSON(http.StatusAccepted, written)
	}
}

func restartStudent(d *api.StudentDesire, now time.Time) { d.RestartAt = &now }
func collectStudent(d *api.StudentDesire, now time.Time) { d.CollectAt = &now }
