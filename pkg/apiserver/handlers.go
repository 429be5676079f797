package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"regexp"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
	"github.com/homeroom/homeroom/pkg/policy"
	"github.com/homeroom/homeroom/pkg/store"
	"github.com/labstack/echo/v4"
)

type list[T any] struct {
	Items []T `json:"items"`
}

// templateItem is a template as the API lists it: the policy's fields, and
// whether its image is pinned by digest.
type templateItem struct {
	policy.Template
	Pinned bool `json:"pinned"`
}

func (s *Server) templates(c echo.Context) error {
	items := []templateItem{}
	for _, n := range s.policy.TemplateNames() {
		t, _ := s.policy.Template(n)
		items = append(items, templateItem{Template: *t, Pinned: t.Pinned()})
	}
	return c.JSON(http.StatusOK, list[templateItem]{Items: items})
}

func (s *Server) listClasses(c echo.Context) error {
	cs, err := s.store.List(c.Request().Context())
	if err != nil {
		return err
	}
	if cs == nil {
		cs = []api.Class{}
	}
	return c.JSON(http.StatusOK, list[api.Class]{Items: cs})
}

func classID(c echo.Context) (string, error) {
	id := c.Param("id")
	if err := api.ValidateID("class id", id); err != nil {
		return "", apiError(http.StatusBadRequest, "invalid_id", err.Error())
	}
	return id, nil
}

func storeError(err error, id string) error {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return apiError(http.StatusNotFound, "not_found", fmt.Sprintf("class %q does not exist", id))
	case errors.Is(err, store.ErrConflict):
		return apiError(http.StatusConflict, "conflict", fmt.Sprintf("class %q changed concurrently; retry", id))
	}
	return err
}

func (s *Server) getClass(c echo.Context) error {
	id, err := classID(c)
	if err != nil {
		return err
	}
	cl, err := s.store.Get(c.Request().Context(), id)
	if err != nil {
		return storeError(err, id)
	}
	return c.JSON(http.StatusOK, cl)
}

// decode reads exactly one JSON object into v: unknown fields, trailing data
// and wrong types are the caller's mistakes and get a 400 that says which.
func decode(c echo.Context, v any) error {
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		var he *echo.HTTPError
		if errors.As(err, &he) {
			return err
		}
		return apiError(http.StatusBadRequest, "invalid_body", "could not read the request body")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return apiError(http.StatusBadRequest, "invalid_json", "request body: "+err.Error())
	}
	if dec.More() {
		return apiError(http.StatusBadRequest, "invalid_json", "request body: data after the JSON object")
	}
	return nil
}

// checkSpec validates a spec on its own, against the contract.
func checkSpec(spec api.ClassSpec) error {
	if err := spec.Validate(); err != nil {
		return apiError(http.StatusBadRequest, "invalid_spec", err.Error())
	}
	return nil
}

// admit checks a valid spec against the policy, given what the rest of its
// subject has Up: 422 unknown_template or quota_exceeded naming the limit.
func (s *Server) admit(spec api.ClassSpec, others policy.Usage) error {
	err := s.policy.Admit(spec, others)
	var qe *policy.QuotaError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, policy.ErrUnknownTemplate):
		return apiError(http.StatusUnprocessableEntity, "unknown_template", err.Error())
	case errors.As(err, &qe):
		s.quotaRejections.WithLabelValues(qe.Limit).Inc()
		return apiError(http.StatusUnprocessableEntity, "quota_exceeded", err.Error())
	}
	return err
}

// admitUp checks that class id may be Up with spec alongside the subject's
// other classes whose desired phase is Up.
//
// Two Ups of one subject at the same moment can both pass here, each reading
// the other as still Down: the API does not serialize admissions across
// classes. That is accepted. This check is what gives a teacher an immediate,
// precise refusal; the controller admits every class again before creating
// anything, and that check is what keeps a subject within its quota.
func (s *Server) admitUp(ctx context.Context, id string, spec api.ClassSpec) error {
	all, err := s.store.List(ctx)
	if err != nil {
		return err
	}
	return s.admit(spec, s.policy.UsageOf(all, spec.Subject, id))
}

func (s *Server) putClass(c echo.Context) error {
	id, err := classID(c)
	if err != nil {
		return err
	}
	var spec api.ClassSpec
	if err := decode(c, &spec); err != nil {
		return err
	}
	if err := checkSpec(spec); err != nil {
		return err
	}
	ctx := c.Request().Context()
	cur, err := s.store.Get(ctx, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return storeError(err, id)
	}
	if cur != nil && cur.DesiredPhase == api.PhaseUp {
		// A live class is admitted again with its new roster: growing it
		// must not take its subject past quota. (The class may go Up or Down
		// between this read and the write; the controller checks again.)
		err = s.admitUp(ctx, id, spec)
	} else {
		// A class that is Down is checked on its own, so that a spec which
		// could never be Up (a roster over the cap, more than the subject's
		// whole quota) is refused now rather than at its first Up.
		err = s.admit(spec, policy.Usage{})
	}
	if err != nil {
		return err
	}
	cl, created, err := s.store.PutSpec(ctx, id, spec)
	if err != nil {
		return storeError(err, id)
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	return c.JSON(status, cl)
}

func (s *Server) setPhase(c echo.Context, id string, phase api.Phase) error {
	ctx := c.Request().Context()
	if phase == api.PhaseUp {
		// The policy may have changed since the spec was written, and the
		// subject's other classes since it was last Up. Down is never refused.
		cl, err := s.store.Get(ctx, id)
		if err != nil {
			return storeError(err, id)
		}
		if err := checkSpec(cl.Spec); err != nil {
			return err
		}
		if err := s.admitUp(ctx, id, cl.Spec); err != nil {
			return err
		}
	}
	cl, err := s.store.SetDesiredPhase(ctx, id, phase)
	if err != nil {
		return storeError(err, id)
	}
	return c.JSON(http.StatusAccepted, cl)
}

func (s *Server) phase(phase api.Phase) echo.HandlerFunc {
	return func(c echo.Context) error {
		id, err := classID(c)
		if err != nil {
			return err
		}
		return s.setPhase(c, id, phase)
	}
}

var errNotDown = errors.New("not down")

func (s *Server) deleteClass(c echo.Context) error {
	id, err := classID(c)
	if err != nil {
		return err
	}
	var phase api.Phase
	err = s.store.Delete(c.Request().Context(), id, func(cl *api.Class) error {
		// Only a class the controller has seen all the way Down may be
		// forgotten: anything else could still own containers with work in them.
		phase = cl.Status.Phase
		if cl.DesiredPhase != api.PhaseDown || cl.Status.Phase != api.PhaseDown || cl.Status.ObservedGeneration != cl.Generation {
			return errNotDown
		}
		return nil
	})
	if errors.Is(err, errNotDown) {
		return apiError(http.StatusConflict, "not_down",
			fmt.Sprintf("class %q is %s; bring it Down and wait for phase Down before deleting", id, phase))
	}
	if err != nil {
		return storeError(err, id)
	}
	return c.NoContent(http.StatusNoContent)
}

// runIDPattern is the form of the run ids the controller makes: the UTC
// start time and three random bytes.
var runIDPattern = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$`)

func validRunID(id string) error {
	if !runIDPattern.MatchString(id) {
		return apiError(http.StatusBadRequest, "invalid_run",
			fmt.Sprintf("run id %q does not look like 20261129T135050Z-650d3d", id))
	}
	return nil
}

// runQuery is the optional ?run= filter: "" when absent. Present, it must be
// one valid run id; an empty or repeated run is a mistake, not "latest".
func runQuery(c echo.Context) (string, error) {
	vals, ok := c.QueryParams()["run"]
	if !ok {
		return "", nil
	}
	if len(vals) != 1 {
		return "", apiError(http.StatusBadRequest, "invalid_run", "give at most one run")
	}
	if err := validRunID(vals[0]); err != nil {
		return "", err
	}
	return vals[0], nil
}

func (s *Server) listRuns(c echo.Context) error {
	id, err := classID(c)
	if err != nil {
		return err
	}
	runs, err := s.artifacts.ListRuns(c.Request().Context(), id)
	if err != nil {
		return fmt.Errorf("list runs: %w", err)
	}
	if runs == nil {
		runs = []artifacts.RunSummary{}
	}
	return c.JSON(http.StatusOK, list[artifacts.RunSummary]{Items: runs})
}

func (s *Server) getRun(c echo.Context) error {
	id, err := classID(c)
	if err != nil {
		return err
	}
	run := c.Param("run")
	if err := validRunID(run); err != nil {
		return err
	}
	idx, err := s.artifacts.GetRunIndex(c.Request().Context(), id, run)
	if errors.Is(err, artifacts.ErrNotFound) {
		return apiError(http.StatusNotFound, "not_found",
			fmt.Sprintf("run %q of class %q has no index: unknown, or its Down has not completed", run, id))
	}
	if err != nil {
		return fmt.Errorf("get run index: %w", err)
	}
	return c.JSON(http.StatusOK, idx)
}

func (s *Server) listArtifacts(c echo.Context) error {
	id, err := classID(c)
	if err != nil {
		return err
	}
	run, err := runQuery(c)
	if err != nil {
		return err
	}
	var items []artifacts.Item
	if run == "" {
		items, err = s.artifacts.ListClass(c.Request().Context(), id)
	} else {
		items, err = s.artifacts.ListRun(c.Request().Context(), id, run)
		if errors.Is(err, artifacts.ErrNotFound) {
			return apiError(http.StatusNotFound, "not_found", fmt.Sprintf("class %q has no run %q", id, run))
		}
	}
	if err != nil {
		return fmt.Errorf("list artifacts: %w", err)
	}
	if items == nil {
		items = []artifacts.Item{}
	}
	return c.JSON(http.StatusOK, list[artifacts.Item]{Items: items})
}

func (s *Server) getArtifact(c echo.Context) error {
	id, err := classID(c)
	if err != nil {
		return err
	}
	student := c.Param("student")
	if err := api.ValidateID("student id", student); err != nil {
		return apiError(http.StatusBadRequest, "invalid_id", err.Error())
	}
	rel := c.Param("*")
	if rel == "" || path.Clean("/"+rel) != "/"+rel {
		return apiError(http.StatusBadRequest, "invalid_path", fmt.Sprintf("artifact path %q is not a clean relative path", rel))
	}
	run, err := runQuery(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	var item artifacts.Item
	if run == "" {
		item, err = s.artifacts.LatestFile(ctx, id, student, rel)
	} else {
		item, err = s.artifacts.RunFile(ctx, id, run, student, rel)
	}
	if errors.Is(err, artifacts.ErrNotFound) {
		msg := fmt.Sprintf("no artifact %q for student %q of class %q", rel, student, id)
		if run != "" {
			msg += fmt.Sprintf(" in run %q", run)
		}
		return apiError(http.StatusNotFound, "not_found", msg)
	}
	if err != nil {
		return fmt.Errorf("find artifact: %w", err)
	}
	rc, size, err := s.artifacts.Open(ctx, item.Key)
	if errors.Is(err, artifacts.ErrNotFound) {
		return apiError(http.StatusNotFound, "not_found", fmt.Sprintf("artifact %q is listed but missing", item.Key))
	}
	if err != nil {
		return fmt.Errorf("open artifact: %w", err)
	}
	defer rc.Close()
	h := c.Response().Header()
	h.Set("X-Homeroom-Run-Id", item.RunID)
	h.Set("X-Homeroom-Sha256", item.SHA256)
	h.Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", path.Base(rel)))
	c.Response().Header().Set(echo.HeaderContentLength, fmt.Sprint(size))
	return c.Stream(http.StatusOK, "application/octet-stream", rc)
}

// roomUpBody is the seed-style request: a whole class in one call.
type roomUpBody struct {
	ClassID    string   `json:"classId"`
	Students   []string `json:"students"`
	Subject    string   `json:"subject"`
	Template   string   `json:"template"`
	TTLSeconds int64    `json:"ttlSeconds"`
}

func (s *Server) roomUp(c echo.Context) error {
	var b roomUpBody
	if err := decode(c, &b); err != nil {
		return err
	}
	if err := api.ValidateID("classId", b.ClassID); err != nil {
		return apiError(http.StatusBadRequest, "invalid_id", err.Error())
	}
	spec := api.ClassSpec{Subject: b.Subject, Template: b.Template, Students: b.Students, TTLSeconds: b.TTLSeconds}
	if spec.Template == "" {
		spec.Template = "sandbox"
	}
	if err := checkSpec(spec); err != nil {
		return err
	}
	// Admitted before the spec is written, so that a refused Up leaves
	// nothing behind, not even the new roster.
	ctx := c.Request().Context()
	if err := s.admitUp(ctx, b.ClassID, spec); err != nil {
		return err
	}
	if _, _, err := s.store.PutSpec(ctx, b.ClassID, spec); err != nil {
		return storeError(err, b.ClassID)
	}
	cl, err := s.store.SetDesiredPhase(ctx, b.ClassID, api.PhaseUp)
	if err != nil {
		return storeError(err, b.ClassID)
	}
	return c.JSON(http.StatusAccepted, cl)
}

func (s *Server) roomDown(c echo.Context) error {
	var b struct {
		ClassID string `json:"classId"`
	}
	if err := decode(c, &b); err != nil {
		return err
	}
	if err := api.ValidateID("classId", b.ClassID); err != nil {
		return apiError(http.StatusBadRequest, "invalid_id", err.Error())
	}
	return s.setPhase(c, b.ClassID, api.PhaseDown)
}
