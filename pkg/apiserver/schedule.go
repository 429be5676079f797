package apiserver

import (
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/timetable"
)

// maxScheduleDays bounds how far ahead GET …/schedule lists sessions.
const maxScheduleDays = 31

// getSchedule lists a class's next sessions, as its timetable and the
// controller's lead make them: for the week view and homeroomctl schedule.
func (s *Server) getSchedule(c echo.Context) error {
	id, err := classID(c)
	if err != nil {
		return err
	}
	days := 7
	if v := c.QueryParam("days"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxScheduleDays {
			return apiError(http.StatusBadRequest, "invalid_days", "days is a number of days from 1 to 31")
		}
		days = n
	}
	cl, err := s.storedClass(c, id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ScheduleOf(cl, time.Now(), days))
}

// ScheduleOf is a class's timetable with its sessions from now for days.
func ScheduleOf(cl *api.Class, now time.Time, days int) api.ScheduleView {
	v := api.ScheduleView{ClassID: cl.ID, Schedule: cl.Spec.Schedule, Bell: cl.Bell, Sessions: []api.ScheduledSession{}}
	if cl.Spec.Schedule == nil {
		return v
	}
	lead := timetable.Lead(cl.Spec.Schedule, cl.Status.UpSeconds, len(cl.Spec.Students))
	v.LeadSeconds = lead.Seconds()
	for _, o := range timetable.Sessions(cl.Spec.Schedule, now, now.AddDate(0, 0, days)) {
		v.Sessions = append(v.Sessions, api.ScheduledSession{Start: o.Start.UTC(), End: o.End.UTC(), UpFrom: o.Start.Add(-lead).UTC(), Now: !now.Before(o.Start)})
	}
	return v
}
