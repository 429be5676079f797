// Package client is a small typed HTTP client for Homeroom's API
// (/api/v1): classes, templates, artifacts and runs (a run whole as one
// archive too), the grades of runs, students' sign-in links, and the
// school's records. Every
// call has a timeout; a refusal comes back as an *Error carrying the HTTP
// status and the API's error code.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
)

// DefaultTimeout bounds every call that does not stream a body.
const DefaultTimeout = 30 * time.Second

// Client talks to one apiserver with one bearer token. Its zero value is
// not usable: make one with New.
type Client struct {
	base    *url.URL
	token   string
	http    *http.Client
	timeout time.Duration
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient uses hc for requests (its own Timeout, if any, applies as
// well as the per-call timeout).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// WithTimeout sets the per-call timeout (DefaultTimeout otherwise). For
// GetArtifact and DownloadRun it bounds getting the response headers;
// reading the body is bounded by the caller's context.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// New returns a client for the apiserver at baseURL (e.g.
// http://127.0.0.1:8080) sending token as the bearer token.
func New(baseURL, token string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("server URL %q: %w", baseURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("server URL %q: want http://host[:port] or https://host[:port]", baseURL)
	}
	c := &Client{base: u, token: token, http: http.DefaultClient, timeout: DefaultTimeout}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// Error is a response the server gave with a 4xx or 5xx status.
type Error struct {
	Status  int    // HTTP status
	Code    string // the API's error code, e.g. "not_down"; empty if the body had none
	Message string
	// Details lists what was wrong piece by piece where the server says:
	// the bad lines of a roster file, the students off a roster.
	Details []ErrorDetail
	// ETag is the answer's ETag header: for a 412 precondition_failed, the
	// class's current version (see CurrentVersion).
	ETag string
}

// ErrorDetail is one item of an error's details.
type ErrorDetail struct {
	Line    int    `json:"line,omitempty"`
	Value   string `json:"value,omitempty"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	if e.Code != "" {
		return fmt.Sprintf("%s (%d %s)", msg, e.Status, e.Code)
	}
	return fmt.Sprintf("%s (%d)", msg, e.Status)
}

// IsClientError reports whether the server refused the request (4xx).
func (e *Error) IsClientError() bool { return e.Status >= 400 && e.Status < 500 }

// IsNotFound reports whether err is a 404 from the server.
func IsNotFound(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// ClassSpec is what PutClass sends.
type ClassSpec = api.ClassSpec

// Class is a class as the API returns it.
type Class = api.Class

// Template is one entry of the allowlist.
type Template struct {
	Name        string   `json:"name"`
	Image       string   `json:"image"`
	Description string   `json:"description,omitempty"`
	Port        int      `json:"port"`
	MemoryMiB   int64    `json:"memoryMiB"`
	CPUs        float64  `json:"cpus"`
	PIDs        int64    `json:"pids"`
	Internet    bool     `json:"internet"`
	Pinned      bool     `json:"pinned"`
	Collect     []string `json:"collectPaths,omitempty"`
}

// Artifact is one collected object of a student in a run.
type Artifact struct {
	Student string `json:"student"`
	RunID   string `json:"runId"`
	Path    string `json:"path"`
	Key     string `json:"key"`
	Size    int64  `json:"size"`
	SHA256  string `json:"sha256"`
}

// Run summarizes one Down run of a class.
type Run struct {
	RunID string `json:"runId"`
	// Kind is "down" or "autosave" once the run is complete.
	Kind        string     `json:"kind,omitempty"`
	Students    int        `json:"students"`
	Complete    bool       `json:"complete"`
	CompletedAt *time.Time `json:"completedAt,omitempty"`
}

type items[T any] struct {
	Items []T `json:"items"`
}

// ListClasses returns every class the token may see.
func (c *Client) ListClasses(ctx context.Context) ([]Class, error) {
	var l items[Class]
	err := c.doJSON(ctx, http.MethodGet, "/api/v1/classes", nil, nil, &l)
	return l.Items, err
}

// GetClass returns one class with its status.
func (c *Client) GetClass(ctx context.Context, id string) (*Class, error) {
	var cl Class
	if err := c.doJSON(ctx, http.MethodGet, classPath(id), nil, nil, &cl); err != nil {
		return nil, err
	}
	return &cl, nil
}

// ScheduleView is a class's timetable with its next sessions.
type ScheduleView = api.ScheduleView

// GetSchedule returns a class's timetable and its sessions for the next
// days.
func (c *Client) GetSchedule(ctx context.Context, id string, days int) (*ScheduleView, error) {
	var out ScheduleView
	q := url.Values{"days": {strconv.Itoa(days)}}
	if err := c.doJSON(ctx, http.MethodGet, "/api/v1/classes/"+url.PathEscape(id)+"/schedule", q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// StudentAction asks for action ("restart", "collect" or "extend", whose
// body is {"minutes"} or {"until"}) for one student of a class; it returns
// the class as written.
func (c *Client) StudentAction(ctx context.Context, class, student, action string, body any) (*Class, error) {
	var cl Class
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return nil, err
		}
	}
	path := classPath(class) + "/students/" + url.PathEscape(student) + "/" + url.PathEscape(action)
	if err := c.doJSON(ctx, http.MethodPost, path, nil, b, &cl); err != nil {
		return nil, err
	}
	return &cl, nil
}

// PutClass creates or replaces a class's spec; created reports a 201.
// Whatever the class is at, this write wins over it: to write only over the
// class as you read it, use PutClassIfVersion.
func (c *Client) PutClass(ctx context.Context, id string, spec ClassSpec) (cl *Class, created bool, err error) {
	return c.putClass(ctx, id, spec, nil)
}

// AnyVersion, given to PutClassIfVersion, asks only that the class exists
// (If-Match: *).
const AnyVersion int64 = -1

// PutClassIfVersion replaces a class's spec only if the class is still at
// resourceVersion version (sent as If-Match), as a GetClass gave it, so that
// a change someone else made since is never overwritten; AnyVersion only
// asks that the class exists. Otherwise the server writes nothing and
// answers 412: IsPreconditionFailed reports it, CurrentVersion says what the
// class is at now. It never creates a class.
func (c *Client) PutClassIfVersion(ctx context.Context, id string, spec ClassSpec, version int64) (*Class, error) {
	im := "*"
	if version != AnyVersion {
		im = `"` + strconv.FormatInt(version, 10) + `"`
	}
	cl, _, err := c.putClass(ctx, id, spec, http.Header{"If-Match": {im}})
	return cl, err
}

// IsPreconditionFailed reports whether err is the server's 412: an
// If-Match that did not hold, so nothing was written.
func IsPreconditionFailed(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == http.StatusPreconditionFailed
}

// CurrentVersion is the class's resourceVersion a 412 from
// PutClassIfVersion names (its ETag); false when err is no such answer or
// the class does not exist.
func CurrentVersion(err error) (int64, bool) {
	var e *Error
	if !errors.As(err, &e) || e.Status != http.StatusPreconditionFailed {
		return 0, false
	}
	v, perr := strconv.ParseInt(strings.Trim(e.ETag, `"`), 10, 64)
	return v, perr == nil && v > 0
}

func (c *Client) putClass(ctx context.Context, id string, spec ClassSpec, hdr http.Header) (cl *Class, created bool, err error) {
	body, err := json.Marshal(spec)
	if err != nil {
		return nil, false, err
	}
	var out Class
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.sendHeader(ctx, http.MethodPut, classPath(id), nil, body, "application/json", "application/json", hdr)
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, false, fmt.Errorf("decode class: %w", err)
	}
	return &out, resp.StatusCode == http.StatusCreated, nil
}

// Up sets the class's desired phase to Up.
func (c *Client) Up(ctx context.Context, id string) (*Class, error) {
	var cl Class
	if err := c.doJSON(ctx, http.MethodPost, classPath(id)+"/up", nil, nil, &cl); err != nil {
		return nil, err
	}
	return &cl, nil
}

// Down sets the class's desired phase to Down: collect, then remove.
func (c *Client) Down(ctx context.Context, id string) (*Class, error) {
	var cl Class
	if err := c.doJSON(ctx, http.MethodPost, classPath(id)+"/down", nil, nil, &cl); err != nil {
		return nil, err
	}
	return &cl, nil
}

// Delete forgets a class that is Down; its artifacts stay.
func (c *Client) Delete(ctx context.Context, id string) error {
	return c.doJSON(ctx, http.MethodDelete, classPath(id), nil, nil, nil)
}

// DeleteAbandoningLeftBehind forgets a class that is Down even while a
// lost swarm node holds work of it not yet collected (which Delete refuses
// with work_left_behind): that work is given up.
func (c *Client) DeleteAbandoningLeftBehind(ctx context.Context, id string) error {
	return c.doJSON(ctx, http.MethodDelete, classPath(id), url.Values{"abandonLeftBehind": {"true"}}, nil, nil)
}

// ListTemplates returns the allowlist.
func (c *Client) ListTemplates(ctx context.Context) ([]Template, error) {
	var l items[Template]
	err := c.doJSON(ctx, http.MethodGet, "/api/v1/templates", nil, nil, &l)
	return l.Items, err
}

// ListArtifacts lists the collected objects of a class: of every run, or of
// run when it is not empty.
func (c *Client) ListArtifacts(ctx context.Context, class, run string) ([]Artifact, error) {
	var l items[Artifact]
	err := c.doJSON(ctx, http.MethodGet, classPath(class)+"/artifacts", runQuery(run), nil, &l)
	return l.Items, err
}

// ListRuns lists the Down runs of a class, oldest first.
func (c *Client) ListRuns(ctx context.Context, class string) ([]Run, error) {
	var l items[Run]
	err := c.doJSON(ctx, http.MethodGet, classPath(class)+"/runs", nil, nil, &l)
	return l.Items, err
}

// GetArtifact streams one collected file of a student (path relative to the
// student's prefix, e.g. "files/workspace/hello.py" or
// "logs/container.log") from the latest run, or from run when it is not
// empty. The caller closes the reader. The client's timeout bounds the wait
// for the response; the body is read under ctx alone, so that large files
// are not cut off.
func (c *Client) GetArtifact(ctx context.Context, class, student, path, run string) (io.ReadCloser, error) {
	p := classPath(class) + "/artifacts/" + url.PathEscape(student) + "/" + escapePath(path)
	resp, err := c.doStream(ctx, http.MethodGet, p, runQuery(run))
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// Formats of a run's archive (DownloadRun).
const (
	ArchiveZip   = "zip"
	ArchiveTarGz = "tar.gz"
)

// archiveTypes are the Content-Types the server answers each format with.
var archiveTypes = map[string]string{ArchiveZip: "application/zip", ArchiveTarGz: "application/gzip"}

// ArchiveExt is the file name extension of an archive format: ".zip" or
// ".tar.gz".
func ArchiveExt(format string) string { return "." + format }

// DownloadRun streams the archive of a completed run into w and returns
// the bytes written: format is ArchiveZip (also for "") or ArchiveTarGz. It
// holds the run's index.json, and for each collected student
// <student>/manifest.json, <student>/files/… and
// <student>/logs/container.log. A run whose Down has not completed is a
// 409 run_incomplete. The client's timeout bounds the wait for the
// response; the body is read under ctx alone. The server cuts a download
// off when an object does not match its manifest or the artifact store
// fails in the middle: that is an error here, and what w got is then not a
// whole archive. Write to a temporary file and keep it only on success.
func (c *Client) DownloadRun(ctx context.Context, class, run, format string, w io.Writer) (int64, error) {
	if format == "" {
		format = ArchiveZip
	}
	ct, ok := archiveTypes[format]
	if !ok {
		return 0, fmt.Errorf("archive format %q: want %s or %s", format, ArchiveZip, ArchiveTarGz)
	}
	p := classPath(class) + "/runs/" + url.PathEscape(run) + "/archive"
	resp, err := c.doStreamAccept(ctx, http.MethodGet, p, url.Values{"format": {format}}, ct)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		// The server hung up before its answer began: it cut off an
		// archive whose first bytes had not left it yet.
		return 0, fmt.Errorf("run %s of %s: %w before it began: %w", run, class, ErrCutOff, err)
	}
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if got, _, _ := strings.Cut(resp.Header.Get("Content-Type"), ";"); got != ct {
		return 0, fmt.Errorf("GET %s: answered with %q, not %s", p, got, ct)
	}
	body := &readErrors{r: resp.Body}
	n, err := io.Copy(w, body)
	switch {
	case err == nil:
		return n, nil
	case body.err == nil:
		return n, fmt.Errorf("write the archive of run %s of %s: %w", run, class, err)
	case ctx.Err() != nil:
		return n, fmt.Errorf("download of run %s of %s stopped after %d bytes: %w", run, class, n, ctx.Err())
	}
	return n, fmt.Errorf("run %s of %s: %w after %d bytes: %w", run, class, ErrCutOff, n, body.err)
}

// ErrCutOff is wrapped by DownloadRun's error when the answer ended before
// the archive did: the server found an object that did not match its
// manifest, or lost the artifact store, or the connection broke.
var ErrCutOff = errors.New("the download was cut off")

// readErrors remembers the error of a read, to tell it from a write's.
type readErrors struct {
	r   io.Reader
	err error
}

func (r *readErrors) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

// Gradebook is the grades of one Down run in its current grading attempt:
// one item per student the run collected.
type Gradebook = api.Gradebook

// GradebookItem is one student's row of a gradebook. State is GradePending,
// GradeGraded (Score, MaxScore, Feedback and Tests from the grader) or
// GradeFailed (Reason says why). Feedback and test messages are written by
// a grader that may run the student's code: treat them as untrusted text.
type GradebookItem = api.GradebookItem

// GradeTest is one check a grader made.
type GradeTest = api.GradeTest

// States of a gradebook item.
const (
	GradePending = api.GradePending
	GradeGraded  = api.GradeGraded
	GradeFailed  = api.GradeFailed
)

func runPath(class, run string) string {
	return classPath(class) + "/runs/" + url.PathEscape(run)
}

// Grades returns the gradebook of a run. A run that was never graded (its
// template had no grader) is a 404 not_graded; an unknown run a 404
// not_found.
func (c *Client) Grades(ctx context.Context, class, run string) (*Gradebook, error) {
	var b Gradebook
	if err := c.doJSON(ctx, http.MethodGet, runPath(class, run)+"/grades", nil, nil, &b); err != nil {
		return nil, err
	}
	return &b, nil
}

// GradesCSV streams the gradebook of a run into w as CSV for a gradebook
// import: a header student,score,max and one row per student, score and
// max empty for a student without a grade. It refuses as Grades does. The
// client's timeout bounds the wait for the response; the body is read
// under ctx alone.
func (c *Client) GradesCSV(ctx context.Context, class, run string, w io.Writer) error {
	p := runPath(class, run) + "/grades"
	resp, err := c.doStreamAccept(ctx, http.MethodGet, p, nil, "text/csv")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if got, _, _ := strings.Cut(resp.Header.Get("Content-Type"), ";"); strings.TrimSpace(got) != "text/csv" {
		return fmt.Errorf("GET %s: answered with %q, not text/csv", p, got)
	}
	body := &readErrors{r: resp.Body}
	if _, err := io.Copy(w, body); err != nil {
		if body.err == nil {
			return fmt.Errorf("write the grades of run %s of %s: %w", run, class, err)
		}
		return fmt.Errorf("read the grades of run %s of %s: %w", run, class, err)
	}
	return nil
}

// Regrade starts the next grading attempt of a completed Down run, with
// the grader the policy names now for the run's template, and returns the
// new attempt's gradebook (every student pending). A run whose template
// has no grader is a 409 no_grader; an autosave, or a run that collected
// nobody, a 409 not_gradable.
func (c *Client) Regrade(ctx context.Context, class, run string) (*Gradebook, error) {
	var b Gradebook
	if err := c.doJSON(ctx, http.MethodPost, runPath(class, run)+"/grade", nil, nil, &b); err != nil {
		return nil, err
	}
	return &b, nil
}

// Roster is a registered class: its subject and official roster.
type Roster = api.Roster

// ListRosters returns the registered classes the token may see.
func (c *Client) ListRosters(ctx context.Context) ([]Roster, error) {
	var out items[Roster]
	err := c.doJSON(ctx, http.MethodGet, "/api/v1/rosters", nil, nil, &out)
	return out.Items, err
}

// ImportResult is what a roster import did, or would do with DryRun.
type ImportResult = api.RosterImport

// ImportRosters registers the classes of a roster file (CSV with class,
// subject and student columns). The server checks every line first and
// writes nothing if one is bad: the *Error's Details name each. dryRun
// checks and reports without writing.
func (c *Client) ImportRosters(ctx context.Context, csv []byte, dryRun bool) (*ImportResult, error) {
	q := url.Values{}
	if dryRun {
		q.Set("dryRun", "true")
	}
	var out ImportResult
	if err := c.doJSONAs(ctx, http.MethodPost, "/api/v1/rosters/import", q, csv, "text/csv", &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// IssuedToken is a new token: Secret is the token itself, shown this once.
type IssuedToken struct {
	Secret string `json:"token"`
	api.Token
}

// IssueToken gives user a new token. expires 0 means it does not expire.
func (c *Client) IssueToken(ctx context.Context, user, description string, expires time.Duration) (*IssuedToken, error) {
	req := map[string]any{"description": description}
	if expires > 0 {
		req["expiresInSeconds"] = int64(expires / time.Second)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	var out IssuedToken
	if err := c.doJSON(ctx, http.MethodPost, "/api/v1/users/"+url.PathEscape(user)+"/tokens", nil, body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Link is a personal sign-in link as issued. URL carries the link's secret:
// the server keeps only its hash, so this is the one time it is shown.
type Link struct {
	Student string `json:"student"`
	// Holder is who the link signs in: the student, or the teacher it was
	// issued to for opening the student's sandbox to help.
	Holder    string    `json:"holder"`
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// IssueLinks issues sign-in links for students of a class that is Up (all
// of its students when students is empty). Issuing a student's link again
// ends their earlier link and the sessions made with it. With teacher, the
// links are the caller's own, to open those students' sandboxes to help;
// the students' links are left as they are. A class that is not Up is a
// 409 not_up; students not in the class a 422 not_in_class whose Details
// name each.
func (c *Client) IssueLinks(ctx context.Context, class string, students []string, teacher bool) ([]Link, error) {
	req := map[string]any{}
	if len(students) > 0 {
		req["students"] = students
	}
	if teacher {
		req["teacher"] = true
	}
	var body []byte
	if len(req) > 0 {
		var err error
		if body, err = json.Marshal(req); err != nil {
			return nil, err
		}
	}
	var out items[Link]
	err := c.doJSON(ctx, http.MethodPost, classPath(class)+"/links", nil, body, &out)
	return out.Items, err
}

// LiveLink is an issued link that can still sign someone in, as listed:
// who it signs in and until when, never the link itself (the server keeps
// only its hash).
type LiveLink struct {
	Student string `json:"student"`
	// Holder is who the link signs in: the student for the student's own
	// link, or the user name of the teacher it was issued to, to help.
	Holder    string    `json:"holder"`
	IssuedAt  time.Time `json:"issuedAt"`
	IssuedBy  string    `json:"issuedBy"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// ListLinks returns the links that can still sign someone in on the hosts
// of class: issued in its current Up, not expired, for a student still in
// the class. A class that is not Up has none.
func (c *Client) ListLinks(ctx context.Context, class string) ([]LiveLink, error) {
	var out items[LiveLink]
	err := c.doJSON(ctx, http.MethodGet, classPath(class)+"/links", nil, nil, &out)
	return out.Items, err
}

func classPath(id string) string { return "/api/v1/classes/" + url.PathEscape(id) }

func escapePath(p string) string {
	parts := strings.Split(strings.TrimLeft(p, "/"), "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

func runQuery(run string) url.Values {
	if run == "" {
		return nil
	}
	return url.Values{"run": {run}}
}

// response holds a body open under its own context until cancel.
type response struct {
	*http.Response
	cancel context.CancelFunc
}

// do sends a request under the client's timeout and returns a 2xx response,
// or an *Error for any other status. The caller closes the body and calls
// cancel.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body []byte) (*response, error) {
	return c.doAs(ctx, method, path, q, body, "application/json")
}

func (c *Client) doAs(ctx context.Context, method, path string, q url.Values, body []byte, contentType string) (*response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	resp, err := c.sendAs(ctx, method, path, q, body, contentType)
	if err != nil {
		cancel()
		return nil, err
	}
	return &response{Response: resp, cancel: cancel}, nil
}

func (c *Client) doJSON(ctx context.Context, method, path string, q url.Values, body []byte, out any) error {
	return c.doJSONAs(ctx, method, path, q, body, "application/json", out)
}

// doJSONAs sends body as contentType and decodes the answer into out.
func (c *Client) doJSONAs(ctx context.Context, method, path string, q url.Values, body []byte, contentType string, out any) error {
	resp, err := c.doAs(ctx, method, path, q, body, contentType)
	if err != nil {
		return err
	}
	defer resp.cancel()
	defer resp.Body.Close()
	if out == nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode %s %s: %w", method, path, err)
	}
	return nil
}

// doStream waits for the response headers at most the client's timeout,
// then leaves the body to ctx.
func (c *Client) doStream(ctx context.Context, method, path string, q url.Values) (*http.Response, error) {
	return c.doStreamAccept(ctx, method, path, q, "application/json")
}

// doStreamAccept is doStream asking for the media type accept.
func (c *Client) doStreamAccept(ctx context.Context, method, path string, q url.Values, accept string) (*http.Response, error) {
	ctx, cancel := context.WithCancel(ctx)
	timer := time.AfterFunc(c.timeout, cancel)
	resp, err := c.sendAccept(ctx, method, path, q, nil, "application/json", accept)
	if !timer.Stop() {
		// The timeout fired: whatever came back is cut off.
		if err == nil {
			resp.Body.Close()
		}
		cancel()
		return nil, fmt.Errorf("%s %s: no response within %s: %w", method, path, c.timeout, context.DeadlineExceeded)
	}
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (r *cancelOnClose) Close() error {
	err := r.ReadCloser.Close()
	r.cancel()
	return err
}

func (c *Client) send(ctx context.Context, method, path string, q url.Values, body []byte) (*http.Response, error) {
	return c.sendAs(ctx, method, path, q, body, "application/json")
}

// sendAs sends body as contentType and turns a 4xx or 5xx into an *Error.
func (c *Client) sendAs(ctx context.Context, method, path string, q url.Values, body []byte, contentType string) (*http.Response, error) {
	return c.sendAccept(ctx, method, path, q, body, contentType, "application/json")
}

// sendAccept is sendAs asking for the media type accept.
func (c *Client) sendAccept(ctx context.Context, method, path string, q url.Values, body []byte, contentType, accept string) (*http.Response, error) {
	return c.sendHeader(ctx, method, path, q, body, contentType, accept, nil)
}

// sendHeader is sendAccept with the headers of hdr added.
func (c *Client) sendHeader(ctx context.Context, method, path string, q url.Values, body []byte, contentType, accept string, hdr http.Header) (*http.Response, error) {
	target := c.base.String() + path
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return nil, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", accept)
	for k, vs := range hdr {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, decodeError(resp)
}

func decodeError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var env struct {
		Error struct {
			Code    string        `json:"code"`
			Message string        `json:"message"`
			Details []ErrorDetail `json:"details"`
		} `json:"error"`
	}
	e := &Error{Status: resp.StatusCode, ETag: resp.Header.Get("ETag")}
	if json.Unmarshal(b, &env) == nil && (env.Error.Code != "" || env.Error.Message != "") {
		e.Code, e.Message, e.Details = env.Error.Code, env.Error.Message, env.Error.Details
	} else {
		e.Message = strings.TrimSpace(string(b))
		if len(e.Message) > 200 {
			e.Message = e.Message[:200] + "…"
		}
	}
	return e
}
