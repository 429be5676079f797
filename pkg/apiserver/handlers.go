package apiserver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"regexp"
	"strings"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
	"github.com/homeroom/homeroom/pkg/policy"
	"github.com/homeroom/homeroom/pkg/store"
	"github.com/labstack/echo/v4"
)

type list[T any] struct {
	Items []T `json:"items"`
}

func (s *Server) templates(c echo.Context) error {
	items := []policy.Template{}
	for _, n := range s.policy.TemplateNames() {
		t, _ := s.policy.Template(n)
		items = append(items, *t)
	}
	return c.JSON(http.StatusOK, list[policy.Template]{Items: items})
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

// checkSpec validates a spec against the contract and the policy.
func (s *Server) checkSpec(spec api.ClassSpec) error {
	if err := spec.Validate(); err != nil {
		return apiError(http.StatusBadRequest, "invalid_spec", err.Error())
	}
	if _, ok := s.policy.Template(spec.Template); !ok {
		return apiError(http.StatusUnprocessableEntity, "unknown_template",
			fmt.Sprintf("template %q is not in the allowlist (%s)", spec.Template, strings.Join(s.policy.TemplateNames(), ", ")))
	}
	return nil
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
	if err := s.checkSpec(spec); err != nil {
		return err
	}
	cl, created, err := s.store.PutSpec(c.Request().Context(), id, spec)
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
		// The policy may have changed since the spec was written.
		cl, err := s.store.Get(ctx, id)
		if err != nil {
			return storeError(err, id)
		}
		if err := s.checkSpec(cl.Spec); err != nil {
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
	if err := s.checkSpec(spec); err != nil {
		return err
	}
	if _, _, err := s.store.PutSpec(c.Request().Context(), b.ClassID, spec); err != nil {
		return storeError(err, b.ClassID)
	}
	return s.setPhase(c, b.ClassID, api.PhaseUp)
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
