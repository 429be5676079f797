package apiserver

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/store"
	"github.com/labstack/echo/v4"
)

// The school's records: subjects and registered classes with their official
// rosters. Admins keep them; teachers read those of their subjects.

// recordError maps the store's errors about records to responses.
func recordError(err error, kind, id string) error {
	var he *httpError
	switch {
	case errors.As(err, &he):
		return err
	case errors.Is(err, store.ErrNotFound):
		return apiError(http.StatusNotFound, "not_found", fmt.Sprintf("%s %q does not exist", kind, id))
	case errors.Is(err, store.ErrUnknownSubject):
		return apiError(http.StatusUnprocessableEntity, "unknown_subject", err.Error())
	case errors.Is(err, store.ErrInUse):
		return apiError(http.StatusConflict, "in_use", err.Error())
	case errors.Is(err, store.ErrConflict):
		return apiError(http.StatusConflict, "conflict", fmt.Sprintf("%s %q changed concurrently; retry", kind, id))
	}
	return err
}

func pathID(c echo.Context, param, kind string) (string, error) {
	id := c.Param(param)
	if err := api.ValidateID(kind, id); err != nil {
		return "", apiError(http.StatusBadRequest, "invalid_id", err.Error())
	}
	return id, nil
}

// changeStatus is 201 for a creation, 200 otherwise.
func changeStatus(ch store.Change) int {
	if ch == store.Created {
		return http.StatusCreated
	}
	return http.StatusOK
}

func (s *Server) listSubjects(c echo.Context) error {
	subjects, err := s.store.ListSubjects(c.Request().Context(), who(c).visibleSubjects())
	if err != nil {
		return err
	}
	return writeList(c, subjects)
}

func (s *Server) getSubject(c echo.Context) error {
	id, err := pathID(c, "subject", "subject")
	if err != nil {
		return err
	}
	if !who(c).teaches(id) {
		return forbiddenSubject(id)
	}
	subj, err := s.store.GetSubject(c.Request().Context(), id)
	if err != nil {
		return recordError(err, "subject", id)
	}
	return c.JSON(http.StatusOK, subj)
}

func (s *Server) putSubject(c echo.Context) error {
	id, err := pathID(c, "subject", "subject")
	if err != nil {
		return err
	}
	body, err := readBody(c)
	if err != nil {
		return err
	}
	b, err := parseSubject(body)
	if err != nil {
		return err
	}
	subj, ch, err := s.store.PutSubject(c.Request().Context(), id, b.Title)
	if err != nil {
		return recordError(err, "subject", id)
	}
	return c.JSON(changeStatus(ch), subj)
}

func (s *Server) deleteSubject(c echo.Context) error {
	id, err := pathID(c, "subject", "subject")
	if err != nil {
		return err
	}
	if err := s.store.DeleteSubject(c.Request().Context(), id); err != nil {
		return recordError(err, "subject", id)
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) listRosters(c echo.Context) error {
	rs, err := s.store.ListRosters(c.Request().Context(), who(c).visibleSubjects())
	if err != nil {
		return err
	}
	return writeList(c, rs)
}

func (s *Server) getRoster(c echo.Context) error {
	id, err := classID(c)
	if err != nil {
		return err
	}
	r, err := s.store.GetRoster(c.Request().Context(), id)
	p := who(c)
	switch {
	case errors.Is(err, store.ErrNotFound) && !p.admin():
		// As for classes: a teacher cannot tell another subject's class
		// from a class that is not registered.
		return forbiddenClass(id)
	case err != nil:
		return recordError(err, "registered class", id)
	case !p.teaches(r.Subject):
		return forbiddenClass(id)
	}
	return c.JSON(http.StatusOK, r)
}

func (s *Server) putRoster(c echo.Context) error {
	id, err := classID(c)
	if err != nil {
		return err
	}
	body, err := readBody(c)
	if err != nil {
		return err
	}
	r, err := parseRoster(id, body)
	if err != nil {
		return err
	}
	written, ch, err := s.store.PutRoster(c.Request().Context(), r)
	if err != nil {
		return recordError(err, "registered class", id)
	}
	return c.JSON(changeStatus(ch), written)
}

func (s *Server) deleteRoster(c echo.Context) error {
	id, err := classID(c)
	if err != nil {
		return err
	}
	if err := s.store.DeleteRoster(c.Request().Context(), id); err != nil {
		return recordError(err, "registered class", id)
	}
	return c.NoContent(http.StatusNoContent)
}

// importRosters registers classes from a roster file (see rostercsv.go).
// The whole file is validated first and nothing is written unless every
// line is good: a 422 invalid_csv lists the bad lines. Each class the file
// names then gets exactly its listed students. There are no transactions
// across documents, so the classes are written one by one; each write is
// idempotent, and sending the same file again after a failure part-way
// finishes the job. ?dryRun=true validates and reports without writing.
func (s *Server) importRosters(c echo.Context) error {
	dryRun := false
	if v := c.QueryParam("dryRun"); v != "" {
		var err error
		if dryRun, err = strconv.ParseBool(v); err != nil {
			return apiError(http.StatusBadRequest, "invalid_query", fmt.Sprintf("dryRun %q is not true or false", v))
		}
	}
	body, err := readBody(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	subjects, err := s.store.ListSubjects(ctx, nil)
	if err != nil {
		return err
	}
	registered := make(map[string]bool, len(subjects))
	for _, subj := range subjects {
		registered[subj.ID] = true
	}
	rosters, bad, total := parseRosterCSV(body, func(id string) bool { return registered[id] })
	if total > 0 {
		msg := fmt.Sprintf("%d bad lines; nothing was imported", total)
		if total == 1 {
			msg = "1 bad line; nothing was imported"
		}
		if total > len(bad) {
			msg += fmt.Sprintf(" (the first %d are listed)", len(bad))
		}
		e := &httpError{status: http.StatusUnprocessableEntity, body: Error{Code: "invalid_csv", Message: msg}}
		for _, le := range bad {
			e.body.Details = append(e.body.Details, ErrorDetail{Line: le.Line, Message: le.Message})
		}
		return e
	}

	res := api.RosterImport{DryRun: dryRun, Classes: len(rosters), Created: []string{}, Updated: []string{}, Unchanged: []string{}}
	for _, r := range rosters {
		res.Students += len(r.Students)
		var ch store.Change
		if dryRun {
			ch, err = s.wouldChange(c, r)
		} else {
			_, ch, err = s.store.PutRoster(ctx, r)
		}
		if err != nil {
			return recordError(err, "registered class", r.ClassID)
		}
		switch ch {
		case store.Created:
			res.Created = append(res.Created, r.ClassID)
		case store.Updated:
			res.Updated = append(res.Updated, r.ClassID)
		default:
			res.Unchanged = append(res.Unchanged, r.ClassID)
		}
	}
	return c.JSON(http.StatusOK, res)
}

// wouldChange says what PutRoster would do with r.
func (s *Server) wouldChange(c echo.Context, r api.Roster) (store.Change, error) {
	cur, err := s.store.GetRoster(c.Request().Context(), r.ClassID)
	if errors.Is(err, store.ErrNotFound) {
		return store.Created, nil
	}
	if err != nil {
		return store.Unchanged, err
	}
	if cur.Subject != r.Subject || !sameSet(cur.Students, r.Students) {
		return store.Updated, nil
	}
	return store.Unchanged, nil
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	in := make(map[string]bool, len(a))
	for _, x := range a {
		in[x] = true
	}
	for _, x := range b {
		if !in[x] {
			return false
		}
	}
	return true
}
