package apiserver

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
	"github.com/homeroom/homeroom/pkg/policy"
	"github.com/homeroom/homeroom/pkg/store"
	"github.com/labstack/echo/v4"
)

type list[T any] struct {
	Items []T `json:"items"`
}

// writeList answers 200 with {"items": […]}; an empty list is [] and
// never null, whichever store it came from.
func writeList[T any](c echo.Context, items []T) error {
	if items == nil {
		items = []T{}
	}
	return c.JSON(http.StatusOK, list[T]{Items: items})
}

// templateItem is a template as the API lists it: the policy's fields, and
// whether its image is pinned by digest.
type templateItem struct {
	policy.Template
	Pinned bool `json:"pinned"`
}

// templates lists the allowlist in the policy's order: the teacher pages
// offer the first one by default, so the policy's author chooses it (the
// built-in policy's is sandbox).
func (s *Server) templates(c echo.Context) error {
	var items []templateItem
	for i := range s.policy.Templates {
		t := &s.policy.Templates[i]
		items = append(items, templateItem{Template: *t, Pinned: t.Pinned()})
	}
	return writeList(c, items)
}

func (s *Server) listClasses(c echo.Context) error {
	cs, err := s.store.List(c.Request().Context())
	if err != nil {
		return err
	}
	p := who(c)
	var visible []api.Class
	for _, cl := range cs {
		if p.teaches(cl.Spec.Subject) {
			visible = append(visible, cl)
		}
	}
	return writeList(c, visible)
}

func classID(c echo.Context) (string, error) {
	id := c.Param("id")
	if err := api.ValidateID("class id", id); err != nil {
		return "", apiError(http.StatusBadRequest, "invalid_id", err.Error())
	}
	return id, nil
}

func storeError(err error, id string) error {
	var he *httpError
	switch {
	case errors.As(err, &he):
		// A check's refusal, returned through the store as is.
		return err
	case errors.Is(err, store.ErrNotFound):
		return notFound(id)
	case errors.Is(err, store.ErrConflict):
		return apiError(http.StatusConflict, "conflict", fmt.Sprintf("class %q changed concurrently; retry", id))
	}
	return err
}

func notFound(id string) error {
	return apiError(http.StatusNotFound, "not_found", fmt.Sprintf("class %q does not exist", id))
}

// getClass returns a class; with ?wait=<duration>&resourceVersion=<v> it
// first waits, up to the duration (at most the server's maximum), for the
// class's resourceVersion to differ from v, then answers with the class as
// it is: changed, or unchanged at the timeout.
func (s *Server) getClass(c echo.Context) error {
	id, err := classID(c)
	if err != nil {
		return err
	}
	wait, version, err := s.waitQuery(c)
	if err != nil {
		return err
	}
	cl, err := s.storedClass(c, id)
	if err != nil {
		return err
	}
	if wait <= 0 || cl.Version != version {
		setClassETag(c, cl)
		return c.JSON(http.StatusOK, cl)
	}

	ctx, cancel := context.WithTimeout(c.Request().Context(), wait)
	err = s.watch.wait(ctx, who(c).limitKey(), id, version)
	cancel()
	if errors.Is(err, errTooManyWaits) {
		return tooMany(time.Second, fmt.Sprintf("this token already holds %d waits", s.opts.waitsPerCaller))
	}
	if err := c.Request().Context().Err(); err != nil {
		return err // the client has gone; nobody reads the answer
	}
	// The wait may have outlived the token or the caller's subjects:
	// authenticate and authorize again before answering.
	if err := s.reauthenticate(c); err != nil {
		return err
	}
	if cl, err = s.storedClass(c, id); err != nil {
		return err
	}
	setClassETag(c, cl)
	return c.JSON(http.StatusOK, cl)
}

// reauthenticate resolves the request's token again, for a request that has
// waited: a token revoked meanwhile gets 401, a changed user its new rights.
func (s *Server) reauthenticate(c echo.Context) error {
	var p *principal
	if tok, ok := bearer(c); ok {
		var err error
		if p, err = s.resolve(c.Request().Context(), tok); err != nil {
			return fmt.Errorf("authenticate: %w", err)
		}
	}
	if p == nil {
		c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="homeroom"`)
		return apiError(http.StatusUnauthorized, "unauthorized", "a valid bearer token is required")
	}
	c.Set(principalKey, p)
	return nil
}

// waitQuery reads ?wait= and ?resourceVersion=. wait is a Go duration
// ("30s") or whole seconds ("30"), cut to the server's maximum; 0 or absent
// means no wait. With a wait, resourceVersion is required: waiting for "a
// change" from a version the client never saw would lose a change made
// before the request arrived.
func (s *Server) waitQuery(c echo.Context) (time.Duration, int64, error) {
	q := c.QueryParams()
	ws, hasWait := q["wait"]
	vs, hasVersion := q["resourceVersion"]
	if !hasWait {
		if hasVersion {
			return 0, 0, apiError(http.StatusBadRequest, "invalid_wait", "resourceVersion is given without wait")
		}
		return 0, 0, nil
	}
	if len(ws) != 1 {
		return 0, 0, apiError(http.StatusBadRequest, "invalid_wait", "give wait once")
	}
	var wait time.Duration
	if n, err := strconv.ParseInt(ws[0], 10, 64); err == nil {
		if n < 0 {
			return 0, 0, apiError(http.StatusBadRequest, "invalid_wait", "wait must not be negative")
		}
		wait = time.Duration(min(n, int64(s.opts.maxWait/time.Second)+1)) * time.Second
	} else if d, err := time.ParseDuration(ws[0]); err == nil {
		wait = d
	} else {
		return 0, 0, apiError(http.StatusBadRequest, "invalid_wait", fmt.Sprintf("wait %q is not a duration such as 30s", ws[0]))
	}
	if wait < 0 {
		return 0, 0, apiError(http.StatusBadRequest, "invalid_wait", "wait must not be negative")
	}
	wait = min(wait, s.opts.maxWait)
	if !hasVersion || len(vs) != 1 {
		return 0, 0, apiError(http.StatusBadRequest, "invalid_wait", "wait needs one resourceVersion: the class's resourceVersion you last saw")
	}
	v, err := strconv.ParseInt(vs[0], 10, 64)
	if err != nil || v < 0 {
		return 0, 0, apiError(http.StatusBadRequest, "invalid_wait", fmt.Sprintf("resourceVersion %q is not a class's resourceVersion", vs[0]))
	}
	return wait, v, nil
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

// authorizeWrite decides whether the caller may write spec to class id,
// given the class (cl) and its registration (r) as read, nil when absent:
// 403 when the class or the spec's subject is not theirs, 422 when the
// school's records do not allow the spec.
func (s *Server) authorizeWrite(p *principal, id string, cl *api.Class, r *api.Roster, spec api.ClassSpec) error {
	if cl != nil && !p.teaches(cl.Spec.Subject) {
		return forbiddenClass(id)
	}
	if r == nil && !p.teaches(spec.Subject) {
		return forbiddenSubject(spec.Subject)
	}
	return s.checkRegistration(p, id, cl, r, spec)
}

// admitSpec runs the policy's admission for writing spec to a class
// currently cl (nil when new).
func (s *Server) admitSpec(ctx context.Context, id string, cl *api.Class, spec api.ClassSpec) error {
	if cl != nil && cl.DesiredPhase == api.PhaseUp {
		// A live class is admitted again with its new roster: growing it
		// must not take its subject past quota. (The class may go Up or Down
		// between this read and the write; the controller checks again.)
		return s.admitUp(ctx, id, spec)
	}
	// A class that is Down is checked on its own, so that a spec which
	// could never be Up (a roster over the cap, more than the subject's
	// whole quota) is refused now rather than at its first Up.
	return s.admit(spec, policy.Usage{})
}

func (s *Server) putClass(c echo.Context) error {
	id, err := classID(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	p := who(c)
	version, conditional, err := ifMatch(c)
	if err != nil {
		return err
	}
	cl, r, err := s.lookupClass(ctx, id)
	if err != nil {
		return err
	}
	// What the path names is authorized before the body is looked at, so
	// that the answer does not depend on what the caller may not see.
	if !visible(p, cl, r) {
		return forbiddenClass(id)
	}
	// A stale If-Match is refused before anything else about the write.
	if err := checkIfMatch(c, id, cl, version, conditional); err != nil {
		return err
	}
	body, err := readBody(c)
	if err != nil {
		return err
	}
	spec, err := parseClassSpec(body)
	if err != nil {
		return err
	}
	if err := s.authorizeWrite(p, id, cl, r, spec); err != nil {
		return err
	}
	if err := s.admitSpec(ctx, id, cl, spec); err != nil {
		return err
	}
	check := owns(p, id)
	if conditional {
		// Checked again on the version that is written over: a write made
		// since the early check above makes this one 412, never lost.
		check = store.AllOf(check, store.IfVersion(id, version))
	}
	written, created, err := s.store.PutSpecIf(ctx, id, spec, check)
	s.signIn.forgetClass(id)
	var pe *store.PreconditionError
	if errors.As(err, &pe) {
		return preconditionFailed(c, pe)
	}
	if err != nil {
		return storeError(err, id)
	}
	s.watch.poke()
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	setClassETag(c, written)
	return c.JSON(status, written)
}

// setPhase sets the desired phase of class id. An Up is checked, on the spec
// it brings Up, against the school's records and the policy; a Down is never
// refused to whoever may act on the class.
func (s *Server) setPhase(c echo.Context, id string, phase api.Phase) error {
	ctx := c.Request().Context()
	p := who(c)
	cl, r, err := s.authorizeClass(c, id)
	if err != nil {
		return err
	}
	if cl == nil {
		return notFound(id)
	}
	check := owns(p, id)
	if phase == api.PhaseUp {
		// The policy may have changed since the spec was written, and the
		// subject's other classes since it was last Up.
		if err := checkSpec(cl.Spec); err != nil {
			return err
		}
		if err := s.checkRegistration(p, id, cl, r, cl.Spec); err != nil {
			return err
		}
		if err := s.admitUp(ctx, id, cl.Spec); err != nil {
			return err
		}
		// The spec may change between this read and the write: the records
		// are checked again on the spec actually brought Up.
		check = func(cur *api.Class) error {
			if err := owns(p, id)(cur); err != nil {
				return err
			}
			if err := checkSpec(cur.Spec); err != nil {
				return err
			}
			return s.checkRegistration(p, id, cur, r, cur.Spec)
		}
	}
	written, err := s.store.SetDesiredPhaseIf(ctx, id, phase, check)
	s.signIn.forgetClass(id)
	if err != nil {
		return storeError(err, id)
	}
	s.watch.poke()
	return c.JSON(http.StatusAccepted, written)
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

var (
	errNotDown    = errors.New("not down")
	errLeftBehind = errors.New("work left behind")
)

func (s *Server) deleteClass(c echo.Context) error {
	id, err := classID(c)
	if err != nil {
		return err
	}
	abandon := false
	if v := c.QueryParam("abandonLeftBehind"); v != "" {
		if abandon, err = strconv.ParseBool(v); err != nil {
			return apiError(http.StatusBadRequest, "invalid_query", fmt.Sprintf("abandonLeftBehind %q is not true or false", v))
		}
	}
	if _, err := s.storedClass(c, id); err != nil {
		return err
	}
	p := who(c)
	var phase api.Phase
	var left []string
	defer s.signIn.forgetClass(id)
	err = s.store.Delete(c.Request().Context(), id, func(cl *api.Class) error {
		if err := owns(p, id)(cl); err != nil {
			return err
		}
		// Only a class the controller has seen all the way Down may be
		// forgotten: anything else could still own containers with work in them.
		phase = cl.Status.Phase
		if cl.DesiredPhase != api.PhaseDown || cl.Status.Phase != api.PhaseDown || cl.Status.ObservedGeneration != cl.Generation {
			return errNotDown
		}
		// Work left on a lost node is collected once the node is back,
		// through this record only: forgetting the class would lose it,
		// unless that is what is asked.
		if !abandon {
			for _, st := range slices.Sorted(maps.Keys(cl.Status.LeftBehind)) {
				for _, lb := range cl.Status.LeftBehind[st] {
					left = append(left, fmt.Sprintf("%s's on node %s (since %s)", st, lb.On, lb.Since.UTC().Format(time.RFC3339)))
				}
			}
			if len(left) > 0 {
				return errLeftBehind
			}
		}
		return nil
	})
	if errors.Is(err, errNotDown) {
		return apiError(http.StatusConflict, "not_down",
			fmt.Sprintf("class %q is %s; bring it Down and wait for phase Down before deleting", id, phase))
	}
	if errors.Is(err, errLeftBehind) {
		return apiError(http.StatusConflict, "work_left_behind",
			fmt.Sprintf("class %q still has work on nodes that were lost, not yet collected: %s; it is collected once the node is back, and the class can be deleted then; to delete it now and give that work up, add ?abandonLeftBehind=true", id, strings.Join(left, ", ")))
	}
	if err != nil {
		return storeError(err, id)
	}
	s.watch.poke()
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

// storedClass returns class id as stored, once the caller may see it: 404
// when it is not in the store (a registered class not yet written).
func (s *Server) storedClass(c echo.Context, id string) (*api.Class, error) {
	cl, _, err := s.authorizeClass(c, id)
	if err != nil {
		return nil, err
	}
	if cl == nil {
		return nil, notFound(id)
	}
	return cl, nil
}

// artifactClass is the class id of a run or artifact read, and whether the
// caller may see that class as it is now (by its stored or registered
// subject). Runs outlive their class and keep the subject they were
// collected under: a read is decided by the run's subject (see readableRuns
// and authorizeRun), not by the class's.
func (s *Server) artifactClass(c echo.Context) (id string, seen bool, err error) {
	if id, err = classID(c); err != nil {
		return "", false, err
	}
	cl, r, err := s.lookupClass(c.Request().Context(), id)
	if err != nil {
		return "", false, err
	}
	return id, visible(who(c), cl, r), nil
}

// readableRuns lists the runs of class id the caller may read: an admin
// every run, a teacher those recorded under one of their subjects (a run
// without a recorded subject is an admin's only). A caller who may not see
// the class and may read none of its runs gets the class's 403, so that a
// class of other subjects reads like one that does not exist.
func (s *Server) readableRuns(c echo.Context, id string, seen bool) ([]artifacts.RunSummary, error) {
	runs, err := s.artifacts.ListRuns(c.Request().Context(), id)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	p := who(c)
	readable := make([]artifacts.RunSummary, 0, len(runs))
	for _, r := range runs {
		if p.teaches(r.Subject) {
			readable = append(readable, r)
		}
	}
	if !seen && len(readable) == 0 {
		return nil, forbiddenClass(id)
	}
	return readable, nil
}

// authorizeRun refuses a read of one run of class id that the caller may
// not make: a teacher reads a run only if it is recorded under one of their
// subjects. A refused run reads like a run that does not exist: notFound
// when the caller may see the class, the class's 403 otherwise.
func (s *Server) authorizeRun(c echo.Context, id, run string, seen bool, notFound error) error {
	p := who(c)
	if p.admin() {
		return nil
	}
	subject, err := s.artifacts.RunSubject(c.Request().Context(), id, run)
	if err != nil && !errors.Is(err, artifacts.ErrNotFound) {
		return fmt.Errorf("run subject: %w", err)
	}
	if err == nil && p.teaches(subject) {
		return nil
	}
	if seen {
		return notFound
	}
	return forbiddenClass(id)
}

func (s *Server) listRuns(c echo.Context) error {
	id, seen, err := s.artifactClass(c)
	if err != nil {
		return err
	}
	runs, err := s.readableRuns(c, id, seen)
	if err != nil {
		return err
	}
	return writeList(c, runs)
}

func (s *Server) getRun(c echo.Context) error {
	id, seen, err := s.artifactClass(c)
	if err != nil {
		return err
	}
	run := c.Param("run")
	if err := validRunID(run); err != nil {
		return err
	}
	notFound := apiError(http.StatusNotFound, "not_found",
		fmt.Sprintf("run %q of class %q has no index: unknown, or its Down has not completed", run, id))
	if err := s.authorizeRun(c, id, run, seen, notFound); err != nil {
		return err
	}
	idx, err := s.artifacts.GetRunIndex(c.Request().Context(), id, run)
	if errors.Is(err, artifacts.ErrNotFound) {
		return notFound
	}
	if err != nil {
		return fmt.Errorf("get run index: %w", err)
	}
	if !who(c).teaches(idx.Subject) {
		// Indexed since authorizeRun looked, under another subject.
		return s.authorizeRun(c, id, run, seen, notFound)
	}
	return c.JSON(http.StatusOK, idx)
}

func (s *Server) listArtifacts(c echo.Context) error {
	id, seen, err := s.artifactClass(c)
	if err != nil {
		return err
	}
	run, err := runQuery(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	var items []artifacts.Item
	if run == "" {
		var runs []artifacts.RunSummary
		if runs, err = s.readableRuns(c, id, seen); err != nil {
			return err
		}
		if items, err = s.artifacts.ListClass(ctx, id); err == nil && !who(c).admin() {
			items = slices.DeleteFunc(items, func(it artifacts.Item) bool {
				return !slices.ContainsFunc(runs, func(r artifacts.RunSummary) bool { return r.RunID == it.RunID })
			})
		}
	} else {
		notFound := apiError(http.StatusNotFound, "not_found", fmt.Sprintf("class %q has no run %q", id, run))
		if err := s.authorizeRun(c, id, run, seen, notFound); err != nil {
			return err
		}
		items, err = s.artifacts.ListRun(ctx, id, run)
		if errors.Is(err, artifacts.ErrNotFound) {
			return notFound
		}
	}
	if err != nil {
		return fmt.Errorf("list artifacts: %w", err)
	}
	return writeList(c, items)
}

func (s *Server) getArtifact(c echo.Context) error {
	id, seen, err := s.artifactClass(c)
	if err != nil {
		return err
	}
	student := c.Param("student")
	if err := api.ValidateID("student id", student); err != nil {
		return apiError(http.StatusBadRequest, "invalid_id", err.Error())
	}
	rel := c.Param("*")
	if c.Request().URL.RawPath != "" {
		// echo routed on the escaped path (it holds an escaped slash or
		// the like), so its parameters are still escaped: judge the path
		// the store would be asked for, not its encoding.
		var err error
		if rel, err = url.PathUnescape(rel); err != nil {
			return apiError(http.StatusBadRequest, "invalid_path", fmt.Sprintf("artifact path %q is not a valid escaped path", c.Param("*")))
		}
	}
	if rel == "" || path.Clean("/"+rel) != "/"+rel {
		return apiError(http.StatusBadRequest, "invalid_path", fmt.Sprintf("artifact path %q is not a clean relative path", rel))
	}
	run, err := runQuery(c)
	if err != nil {
		return err
	}
	msg := fmt.Sprintf("no artifact %q for student %q of class %q", rel, student, id)
	if run != "" {
		msg += fmt.Sprintf(" in run %q", run)
	}
	notFound := apiError(http.StatusNotFound, "not_found", msg)
	ctx := c.Request().Context()
	var item artifacts.Item
	switch {
	case run != "":
		if err := s.authorizeRun(c, id, run, seen, notFound); err != nil {
			return err
		}
		item, err = s.artifacts.RunFile(ctx, id, run, student, rel)
	case who(c).admin():
		item, err = s.artifacts.LatestFile(ctx, id, student, rel)
	default:
		// The latest of the runs the teacher may read.
		runs, rerr := s.readableRuns(c, id, seen)
		if rerr != nil {
			return rerr
		}
		ids := make([]string, len(runs))
		for i, r := range runs {
			ids[i] = r.RunID
		}
		item, err = s.artifacts.LatestFileIn(ctx, id, student, rel, ids)
	}
	if errors.Is(err, artifacts.ErrNotFound) {
		return notFound
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

// roomUp is the seed-style call: a whole class, written and brought Up, in
// one request, checked exactly as PUT and Up are.
func (s *Server) roomUp(c echo.Context) error {
	body, err := readBody(c)
	if err != nil {
		return err
	}
	id, spec, err := parseRoomUp(body)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	p := who(c)
	cl, r, err := s.lookupClass(ctx, id)
	if err != nil {
		return err
	}
	if !visible(p, cl, r) {
		return forbiddenClass(id)
	}
	if err := s.authorizeWrite(p, id, cl, r, spec); err != nil {
		return err
	}
	// Admitted before the spec is written, so that a refused Up leaves
	// nothing behind, not even the new roster.
	if err := s.admitUp(ctx, id, spec); err != nil {
		return err
	}
	defer s.signIn.forgetClass(id)
	if _, _, err := s.store.PutSpecIf(ctx, id, spec, owns(p, id)); err != nil {
		return storeError(err, id)
	}
	written, err := s.store.SetDesiredPhaseIf(ctx, id, api.PhaseUp, func(cur *api.Class) error {
		if err := owns(p, id)(cur); err != nil {
			return err
		}
		return s.checkRegistration(p, id, cur, r, cur.Spec)
	})
	if err != nil {
		return storeError(err, id)
	}
	s.watch.poke()
	return c.JSON(http.StatusAccepted, written)
}

func (s *Server) roomDown(c echo.Context) error {
	body, err := readBody(c)
	if err != nil {
		return err
	}
	id, err := parseRoomDown(body)
	if err != nil {
		return err
	}
	return s.setPhase(c, id, api.PhaseDown)
}
