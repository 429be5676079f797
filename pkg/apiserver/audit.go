package apiserver

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/store"
	"github.com/labstack/echo/v4"
)

// auditPage is a page of the audit trail, newest first. Next, when set, is
// the before= of the following page.
type auditPage struct {
	Items []api.AuditEntry `json:"items"`
	Next  string           `json:"next,omitempty"`
}

var auditIDPattern = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}\.[0-9]{6}Z-[0-9a-f]{8}$`)

// listAudit serves the audit trail: an admin sees every entry, a teacher
// the entries concerning their subjects (a subject filter outside them is
// 403). Filters: classId, subject, actor, action, since and until (RFC
// 3339), limit, and before (the cursor of the next page).
func (s *Server) listAudit(c echo.Context) error {
	q, err := s.auditQuery(c)
	if err != nil {
		return err
	}
	entries, more, err := s.store.ListAudit(c.Request().Context(), q)
	if err != nil {
		return err
	}
	page := auditPage{Items: entries}
	if more && len(entries) > 0 {
		page.Next = entries[len(entries)-1].ID
	}
	return c.JSON(http.StatusOK, page)
}

func (s *Server) auditQuery(c echo.Context) (store.AuditQuery, error) {
	var q store.AuditQuery
	params := c.QueryParams()
	one := func(name string) (string, error) {
		vs := params[name]
		switch len(vs) {
		case 0:
			return "", nil
		case 1:
			return vs[0], nil
		}
		return "", apiError(http.StatusBadRequest, "invalid_query", fmt.Sprintf("give %s at most once", name))
	}
	bad := func(format string, args ...any) error {
		return apiError(http.StatusBadRequest, "invalid_query", fmt.Sprintf(format, args...))
	}
	for name := range params {
		if !slices.Contains([]string{"classId", "subject", "actor", "action", "since", "until", "limit", "before"}, name) {
			return q, bad("unknown filter %q", name)
		}
	}
	var err error
	if q.ClassID, err = one("classId"); err != nil {
		return q, err
	}
	if q.ClassID != "" && api.ValidateID("classId", q.ClassID) != nil {
		return q, bad("classId %q is not a class id", q.ClassID)
	}
	subject, err := one("subject")
	if err != nil {
		return q, err
	}
	if subject != "" && api.ValidateID("subject", subject) != nil {
		return q, bad("subject %q is not a subject", subject)
	}
	if q.Actor, err = one("actor"); err != nil {
		return q, err
	}
	if q.Actor != "" && api.ValidateID("actor", q.Actor) != nil {
		return q, bad("actor %q is not a user name", q.Actor)
	}
	if q.Action, err = one("action"); err != nil {
		return q, err
	}
	if q.Action != "" && !slices.Contains(auditActions, q.Action) {
		return q, bad("action %q is not one of %v", q.Action, auditActions)
	}
	for _, t := range []struct {
		name string
		to   *time.Time
	}{{"since", &q.Since}, {"until", &q.Until}} {
		v, err := one(t.name)
		if err != nil {
			return q, err
		}
		if v == "" {
			continue
		}
		if *t.to, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return q, bad("%s %q is not an RFC 3339 time such as 2026-11-29T13:50:50Z", t.name, v)
		}
	}
	limit, err := one("limit")
	if err != nil {
		return q, err
	}
	if limit != "" {
		if q.Limit, err = strconv.Atoi(limit); err != nil || q.Limit < 1 || q.Limit > store.MaxAuditLimit {
			return q, bad("limit %q must be a number from 1 to %d", limit, store.MaxAuditLimit)
		}
	}
	if q.Before, err = one("before"); err != nil {
		return q, err
	}
	if q.Before != "" && !auditIDPattern.MatchString(q.Before) {
		return q, bad("before %q is not an audit entry id", q.Before)
	}

	p := who(c)
	switch {
	case subject != "" && !p.teaches(subject):
		return q, forbiddenSubject(subject)
	case subject != "":
		q.Subjects = []string{subject}
	default:
		q.Subjects = p.visibleSubjects()
	}
	return q, nil
}

// auditActions are the values ?action= takes.
var auditActions = []string{
	api.AuditClassCreate, api.AuditClassUpdate, api.AuditClassUp, api.AuditClassDown, api.AuditClassExpire, api.AuditClassDelete,
	api.AuditClassSchedule, api.AuditStudentRestart, api.AuditStudentCollect, api.AuditStudentExtend, api.AuditStudentLate,
	api.AuditSubjectCreate, api.AuditSubjectUpdate, api.AuditSubjectDelete,
	api.AuditRosterCreate, api.AuditRosterUpdate, api.AuditRosterDelete,
	api.AuditUserCreate, api.AuditUserUpdate, api.AuditUserDelete,
	api.AuditTokenIssue, api.AuditTokenRevoke,
	api.AuditLinksIssue, api.AuditSandboxOpen, api.AuditRunGrade,
}
