// Package apiserver is Homeroom's HTTP API. It authenticates and authorizes
// callers, validates requests and writes desired state to the store; it
// never calls Docker.
package apiserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
	"github.com/homeroom/homeroom/pkg/config"
	"github.com/homeroom/homeroom/pkg/policy"
	"github.com/homeroom/homeroom/pkg/store"
	"github.com/homeroom/homeroom/pkg/webui"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// uiPrefix is where the teacher pages are served, without a token.
const uiPrefix = "/ui/"

// MaxBody bounds a request body; a roster of MaxStudents fits many times over,
// and so does a roster file of a large school.
const MaxBody = 1 << 20

// Store is what the API needs of the store: classes (desired state), the
// school's records, users and their tokens, and the audit trail.
type Store interface {
	Get(ctx context.Context, id string) (*api.Class, error)
	List(ctx context.Context) ([]api.Class, error)
	VersionsOf(ctx context.Context, ids []string) (map[string]int64, error)
	AllChanges(ctx context.Context) (store.ChangeCounts, error)
	PutSpecIf(ctx context.Context, id string, spec api.ClassSpec, check func(*api.Class) error) (*api.Class, bool, error)
	SetDesiredPhaseIf(ctx context.Context, id string, phase api.Phase, check func(*api.Class) error) (*api.Class, error)
	AskForStudent(ctx context.Context, id, student, action string, set func(*api.StudentDesire, *api.Class, time.Time) error, check func(*api.Class) error) (*api.Class, error)
	Delete(ctx context.Context, id string, check func(*api.Class) error) error
	Ping(ctx context.Context) error

	PutSubject(ctx context.Context, id, title string) (*api.Subject, store.Change, error)
	GetSubject(ctx context.Context, id string) (*api.Subject, error)
	ListSubjects(ctx context.Context, only []string) ([]api.Subject, error)
	DeleteSubject(ctx context.Context, id string) error

	PutRoster(ctx context.Context, r api.Roster) (*api.Roster, store.Change, error)
	GetRoster(ctx context.Context, classID string) (*api.Roster, error)
	ListRosters(ctx context.Context, subjects []string) ([]api.Roster, error)
	DeleteRoster(ctx context.Context, classID string) error

	PutUser(ctx context.Context, name string, role api.Role, subjects []string) (*api.User, store.Change, error)
	GetUser(ctx context.Context, name string) (*api.User, error)
	ListUsers(ctx context.Context) ([]api.User, error)
	DeleteUser(ctx context.Context, name string) error
	GrantSubject(ctx context.Context, name, subject string) (*api.User, store.Change, error)
	RevokeSubject(ctx context.Context, name, subject string) (*api.User, store.Change, error)

	IssueToken(ctx context.Context, user, description string, expiresAt *time.Time) (string, *api.Token, error)
	Authenticate(ctx context.Context, token string) (*api.User, *api.Token, error)
	GetToken(ctx context.Context, id string) (*api.Token, error)
	ListTokens(ctx context.Context, user string) ([]api.Token, error)
	RevokeToken(ctx context.Context, id string) (*api.Token, error)

	ListAudit(ctx context.Context, q store.AuditQuery) ([]api.AuditEntry, bool, error)

	SignInSecrets(ctx context.Context) (store.SignInSecrets, error)
	PutLink(ctx context.Context, l api.SignInLink) error
	FindLink(ctx context.Context, hash string) (*api.SignInLink, error)
	GetLink(ctx context.Context, classID, student, holder string) (*api.SignInLink, error)
	ListLinks(ctx context.Context, classID string) ([]api.SignInLink, error)
	PutSession(ctx context.Context, sess api.SignInSession) error
	GetSession(ctx context.Context, hash string) (*api.SignInSession, error)
	DeleteSession(ctx context.Context, hash string) error
	PruneSignIns(ctx context.Context, now time.Time) (int, error)
	RecordSandboxOpen(ctx context.Context, c *api.Class, student string)
	RecordLinksIssued(ctx context.Context, c *api.Class, students []string, holder string, expiresAt time.Time)

	Regrade(ctx context.Context, fresh api.Grading, by string) (*api.Grading, error)
	GetGrading(ctx context.Context, classID, runID string) (*api.Grading, error)
}

// Artifacts is what the API needs of the object store: reading only.
type Artifacts interface {
	ListClass(ctx context.Context, classID string) ([]artifacts.Item, error)
	ListRun(ctx context.Context, classID, runID string) ([]artifacts.Item, error)
	ListRuns(ctx context.Context, classID string) ([]artifacts.RunSummary, error)
	GetRunIndex(ctx context.Context, classID, runID string) (*artifacts.RunIndex, error)
	RunSubject(ctx context.Context, classID, runID string) (string, error)
	LatestFile(ctx context.Context, classID, studentID, relPath string) (artifacts.Item, error)
	LatestFileIn(ctx context.Context, classID, studentID, relPath string, runs []string) (artifacts.Item, error)
	RunFile(ctx context.Context, classID, runID, studentID, relPath string) (artifacts.Item, error)
	Open(ctx context.Context, key string) (io.ReadCloser, int64, error)
	GetManifest(ctx context.Context, classID, runID, studentID string) (*artifacts.Manifest, error)
	GetJSON(ctx context.Context, key string, v any) error
	Ping(ctx context.Context) error
}

// Defaults of the options.
const (
	// DefaultRate and DefaultBurst limit each token: a teacher's UI, long
	// polling, never comes near; a runaway script does.
	DefaultRate  = 20.0
	DefaultBurst = 100
	// DefaultAuthFailureRate and DefaultAuthFailureBurst limit the requests
	// without a valid token from one client address.
	DefaultAuthFailureRate  = 5.0
	DefaultAuthFailureBurst = 20
	// DefaultMaxWait bounds a long poll; a longer ?wait= is cut to it.
	DefaultMaxWait = 60 * time.Second
	// DefaultPollInterval is how often long polls look at the store, while
	// any wait: one small read of the change counts a tick (the classes'
	// versions only after a write), so that a teacher's page, and homeroomctl
	// up --wait, sees a change in about a tenth of a second, as the controller
	// does (its -change-interval).
	DefaultPollInterval = 100 * time.Millisecond
	// DefaultWaitsPerCaller bounds the long polls one token holds at once.
	DefaultWaitsPerCaller = 32
)

type options struct {
	rate, authFailRate, signInFailRate    float64
	burst, authFailBurst, signInFailBurst int
	domain                                string
	signInNow                             func() time.Time
	maxWait, poll                         time.Duration
	waitsPerCaller                        int
	requireRegistration                   bool
	trustedProxies                        []*net.IPNet
}

// Option configures a Server.
type Option func(*options)

// WithRateLimit limits each token to perSecond requests a second on average,
// in bursts of up to burst; perSecond <= 0 turns limiting off.
func WithRateLimit(perSecond float64, burst int) Option {
	return func(o *options) { o.rate, o.burst = perSecond, burst }
}

// WithAuthFailureLimit limits requests without a valid token from one client
// address; perSecond <= 0 turns that off.
func WithAuthFailureLimit(perSecond float64, burst int) Option {
	return func(o *options) { o.authFailRate, o.authFailBurst = perSecond, burst }
}

// WithSignInFailureLimit limits the refused sign-in checks of one client
// address (429 past it); perSecond <= 0 turns that off.
func WithSignInFailureLimit(perSecond float64, burst int) Option {
	return func(o *options) { o.signInFailRate, o.signInFailBurst = perSecond, burst }
}

// WithDomain sets the domain under which students' hosts are
// (<student>.<class>.<domain>), for their sign-in links.
func WithDomain(domain string) Option {
	return func(o *options) { o.domain = domain }
}

// WithSignInClock sets the clock links and sessions expire by (tests).
func WithSignInClock(now func() time.Time) Option {
	return func(o *options) { o.signInNow = now }
}

// WithLongPoll sets the longest ?wait=, how often waiting requests look at
// the store, and how many one token may hold at once.
func WithLongPoll(maxWait, poll time.Duration, perCaller int) Option {
	return func(o *options) { o.maxWait, o.poll, o.waitsPerCaller = maxWait, poll, perCaller }
}

// WithRegistrationRequired makes admins, too, write and bring Up only
// registered classes. Teachers always must.
func WithRegistrationRequired(required bool) Option {
	return func(o *options) { o.requireRegistration = required }
}

// Server holds the API's dependencies.
type Server struct {
	store      Store
	artifacts  Artifacts
	policy     *policy.Policy
	adminToken string
	log        *zap.Logger
	opts       options
	requests   *prometheus.CounterVec
	// quotaRejections counts refusals by the limit they name.
	quotaRejections *prometheus.CounterVec
	gatherer        prometheus.Gatherer

	tokenLimits, authFailLimits *limiters
	watch                       *watcher
	openapi                     []byte
	signIn                      *signIn
	stopPrune                   chan struct{}
	pruneDone                   chan struct{}

	// archives counts downloads of whole runs by format and outcome.
	archives *prometheus.CounterVec
}

// New builds the API. adminToken is the bootstrap admin token; reg and
// gatherer serve /metrics.
func New(s Store, a Artifacts, p *policy.Policy, adminToken string, log *zap.Logger, reg prometheus.Registerer, gatherer prometheus.Gatherer, opts ...Option) *Server {
	o := options{
		rate: DefaultRate, burst: DefaultBurst,
		authFailRate: DefaultAuthFailureRate, authFailBurst: DefaultAuthFailureBurst,
		maxWait: DefaultMaxWait, poll: DefaultPollInterval, waitsPerCaller: DefaultWaitsPerCaller,
		signInFailRate: DefaultSignInFailureRate, signInFailBurst: DefaultSignInFailureBurst, domain: "lab.localhost",
	}
	for _, opt := range opts {
		opt(&o)
	}
	srv := &Server{store: s, artifacts: a, policy: p, adminToken: adminToken, log: log, gatherer: gatherer, opts: o}
	srv.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "homeroom_http_requests_total", Help: "HTTP requests by route, method and status code.",
	}, []string{"route", "method", "code"})
	srv.quotaRejections = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "homeroom_quota_rejections_total", Help: "Specs and Ups the apiserver refused because a subject's quota would be exceeded, by limit.",
	}, []string{"limit"})
	// Every limit is present from the start, so that a rate() sees the first refusal.
	for _, l := range policy.Limits() {
		srv.quotaRejections.WithLabelValues(l)
	}
	waits := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "homeroom_http_waits_in_flight", Help: "Long polls (GET /api/v1/classes/{id}?wait=) waiting now.",
	})
	if reg != nil {
		reg.MustRegister(srv.requests, srv.quotaRejections, waits)
	}
	srv.archives = newArchiveCounter(reg)
	srv.tokenLimits = newLimiters(o.rate, o.burst, nil)
	srv.authFailLimits = newLimiters(o.authFailRate, o.authFailBurst, nil)
	srv.watch = newWatcher(s, o.poll, o.waitsPerCaller, log, waits)
	srv.openapi = openAPIJSON()
	srv.signIn = newSignIn(o.domain, o.signInFailRate, o.signInFailBurst, reg)
	if o.signInNow != nil {
		srv.signIn.now = o.signInNow
	}
	srv.stopPrune, srv.pruneDone = make(chan struct{}), make(chan struct{})
	go func() { defer close(srv.pruneDone); srv.pruneSignIns(srv.stopPrune) }()
	return srv
}

// Close ends the long polls in flight (they answer with the class as it is)
// and stops their poller and the pruning of sign-ins. Call it before
// http.Server.Shutdown, which would otherwise wait for them.
func (s *Server) Close() {
	s.watch.close()
	select {
	case <-s.stopPrune:
	default:
		close(s.stopPrune)
	}
	<-s.pruneDone
}

// Handler returns the routes.
func (s *Server) Handler() http.Handler {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	// The client's address keys the limit on requests without a valid
	// token: the connection's peer, or behind trusted proxies what they say
	// in X-Forwarded-For. Anyone else's X-Forwarded-For and X-Real-IP are
	// the client's to forge.
	e.IPExtractor = clientIP(s.opts.trustedProxies)
	e.HTTPErrorHandler = s.errorHandler
	e.Pre(middleware.Recover(), s.checkFirst)
	e.Use(middleware.Recover())
	e.Use(requestID)
	e.Use(s.observe)
	e.Use(middleware.BodyLimit(strconv.Itoa(MaxBody/1024) + "K"))
	// Every route but these three needs a token, unknown ones included, so
	// that nobody without one learns even which paths exist.
	e.Use(s.authenticate("/healthz", "/readyz", "/metrics", "/", "/ui"))

	// Traefik's sign-in check for students' hosts: no bearer token, a path
	// only Traefik knows. Listed here for the API's description; requests
	// for it are served by checkFirst, before the middleware.
	e.GET(config.SignInCheckPath+":secret", s.signInCheck)

	e.GET("/healthz", func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"status": "ok"}) })
	e.GET("/readyz", s.ready)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.gatherer, promhttp.HandlerOpts{})))

	// The teacher pages: static files, open to all; what they show comes
	// from the API with the token signed in with.
	toUI := func(c echo.Context) error { return c.Redirect(http.StatusFound, "/ui/") }
	e.GET("/", toUI)
	e.GET("/ui", toUI)
	ui := echo.WrapHandler(webui.Handler(uiPrefix))
	e.GET(uiPrefix+"*", ui)
	e.HEAD(uiPrefix+"*", ui)

	v1 := e.Group("/api/v1")
	v1.GET("/openapi.json", s.openAPI)
	v1.GET("/whoami", s.whoami)
	v1.GET("/templates", s.templates)

	v1.GET("/classes", s.listClasses)
	v1.GET("/classes/:id", s.getClass)
	v1.PUT("/classes/:id", s.putClass)
	v1.DELETE("/classes/:id", s.deleteClass)
	v1.POST("/classes/:id/up", s.phase(api.PhaseUp))
	v1.POST("/classes/:id/down", s.phase(api.PhaseDown))
	v1.GET("/classes/:id/schedule", s.getSchedule)
	v1.POST("/classes/:id/students/:student/restart", s.studentAction(api.AuditStudentRestart, restartStudent))
	v1.POST("/classes/:id/students/:student/collect", s.studentAction(api.AuditStudentCollect, collectStudent))
	v1.POST("/classes/:id/students/:student/extend", s.studentAction(api.AuditStudentExtend, extendStudent))
	v1.POST("/classes/:id/students/:student/late", s.studentAction(api.AuditStudentLate, lateStudent))
	v1.GET("/classes/:id/runs", s.listRuns)
	v1.GET("/classes/:id/runs/:run", s.getRun)
	v1.GET("/classes/:id/runs/:run/archive", s.getRunArchive)
	v1.GET("/classes/:id/runs/:run/grades", s.getGrades)
	v1.POST("/classes/:id/runs/:run/grade", s.regrade)
	v1.GET("/classes/:id/artifacts", s.listArtifacts)
	v1.GET("/classes/:id/artifacts/:student/*", s.getArtifact)
	v1.GET("/classes/:id/links", s.listLinks)
	v1.POST("/classes/:id/links", s.issueLinks)

	v1.GET("/subjects", s.listSubjects)
	v1.GET("/subjects/:subject", s.getSubject)
	v1.PUT("/subjects/:subject", s.putSubject, adminOnly)
	v1.DELETE("/subjects/:subject", s.deleteSubject, adminOnly)

	v1.GET("/rosters", s.listRosters)
	v1.POST("/rosters/import", s.importRosters, adminOnly)
	v1.GET("/rosters/:id", s.getRoster)
	v1.PUT("/rosters/:id", s.putRoster, adminOnly)
	v1.DELETE("/rosters/:id", s.deleteRoster, adminOnly)

	v1.GET("/users", s.listUsers, adminOnly)
	v1.GET("/users/:name", s.getUser, adminOnly)
	v1.PUT("/users/:name", s.putUser, adminOnly)
	v1.DELETE("/users/:name", s.deleteUser, adminOnly)
	v1.PUT("/users/:name/subjects/:subject", s.grantSubject, adminOnly)
	v1.DELETE("/users/:name/subjects/:subject", s.revokeSubject, adminOnly)
	v1.GET("/users/:name/tokens", s.listTokens)
	v1.POST("/users/:name/tokens", s.issueToken, adminOnly)
	v1.DELETE("/tokens/:token", s.revokeToken)

	v1.GET("/audit", s.listAudit)

	room := e.Group("/room")
	room.POST("/up-class", s.roomUp)
	room.POST("/down-class", s.roomDown)
	return e
}

// checkFirst serves Traefik's sign-in checks before routing, so that they
// skip what the API's middleware does for people (request ids, the request
// log and counter, token authentication): a check comes with every request
// to every sandbox, and its own histogram and counters observe it.
func (s *Server) checkFirst(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		secret, ok := strings.CutPrefix(r.URL.Path, config.SignInCheckPath)
		if !ok || r.Method != http.MethodGet || strings.Contains(secret, "/") {
			return next(c)
		}
		c.SetParamNames("secret")
		c.SetParamValues(secret)
		return s.signInCheck(c)
	}
}

// requestIDPattern is what a client-sent X-Request-Id must look like to be
// kept: it goes into logs and the audit trail.
var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

// requestID gives every request an id, the client's if it sent a sane one,
// answered in X-Request-Id and recorded with the request and its changes.
func requestID(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		id := c.Request().Header.Get(echo.HeaderXRequestID)
		if !requestIDPattern.MatchString(id) {
			var b [12]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		c.Response().Header().Set(echo.HeaderXRequestID, id)
		return next(c)
	}
}

// observe logs and counts every request by its route pattern, never by the
// raw path, so that ids do not explode metric cardinality.
func (s *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		code := c.Response().Status
		s.requests.WithLabelValues(route, c.Request().Method, strconv.Itoa(code)).Inc()
		// Sign-in checks come with every request to every sandbox (and their
		// path holds Traefik's secret): metrics count them, the log does not.
		if route != "/metrics" && route != "/healthz" && route != "/readyz" && !strings.HasPrefix(route, config.SignInCheckPath) {
			fields := []zap.Field{zap.String("method", c.Request().Method), zap.String("route", route),
				zap.String("path", c.Request().URL.Path), zap.Int("code", code), zap.Duration("took", time.Since(start)),
				zap.String("requestId", c.Response().Header().Get(echo.HeaderXRequestID))}
			if p := who(c); p != nil {
				fields = append(fields, zap.String("actor", p.name))
			}
			s.log.Info("request", fields...)
		}
		return nil
	}
}

func (s *Server) ready(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 3*time.Second)
	defer cancel()
	checks := map[string]string{"store": "ok", "artifacts": "ok"}
	code := http.StatusOK
	if err := s.store.Ping(ctx); err != nil {
		checks["store"], code = err.Error(), http.StatusServiceUnavailable
	}
	if err := s.artifacts.Ping(ctx); err != nil {
		checks["artifacts"], code = err.Error(), http.StatusServiceUnavailable
	}
	return c.JSON(code, checks)
}

// Error is the body of every error response, under "error".
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Details lists what was wrong piece by piece, where there is more than
	// one thing: the bad lines of a roster file, the students not on a
	// roster.
	Details []ErrorDetail `json:"details,omitempty"`
}

// ErrorDetail is one item of an error's details.
type ErrorDetail struct {
	Line    int    `json:"line,omitempty"`
	Value   string `json:"value,omitempty"`
	Message string `json:"message"`
}

type httpError struct {
	status int
	body   Error
	// retryAfter, in seconds, is sent as Retry-After when set.
	retryAfter int
}

func (e *httpError) Error() string { return e.body.Message }

func apiError(status int, code, msg string) error {
	return &httpError{status: status, body: Error{Code: code, Message: msg}}
}

// statusClientClosed is what a request the client closed is logged and
// counted with (nginx's 499): no client reads it.
const statusClientClosed = 499

func (s *Server) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	var he *httpError
	var ee *echo.HTTPError
	switch {
	case errors.As(err, &he):
	case errors.As(err, &ee):
		he = &httpError{status: ee.Code, body: Error{Code: echoCode(ee.Code), Message: strings.ToLower(http.StatusText(ee.Code))}}
		if m, ok := ee.Message.(string); ok && m != "" {
			he.body.Message = m
		}
	case errors.Is(err, context.Canceled) && c.Request().Context().Err() != nil:
		// The client went away (a page closed during a wait): no fault
		// of the server's, and nobody reads the answer. The request's log
		// line says so with the status proxies use for it.
		he = &httpError{status: statusClientClosed, body: Error{Code: "client_closed_request", Message: "the client closed the request"}}
	default:
		s.log.Error("internal error", zap.String("path", c.Request().URL.Path), zap.Error(err),
			zap.String("requestId", c.Response().Header().Get(echo.HeaderXRequestID)))
		he = &httpError{status: http.StatusInternalServerError, body: Error{Code: "internal", Message: "internal error; see the apiserver log"}}
	}
	if he.retryAfter > 0 {
		c.Response().Header().Set("Retry-After", strconv.Itoa(he.retryAfter))
	}
	if c.Request().Method == http.MethodHead {
		c.NoContent(he.status)
		return
	}
	c.JSON(he.status, map[string]Error{"error": he.body})
}

func echoCode(status int) string {
	switch status {
	case http.StatusNotFound:
		return "not_found"
	case http.StatusMethodNotAllowed:
		return "method_not_allowed"
	case http.StatusRequestEntityTooLarge:
		return "too_large"
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusTooManyRequests:
		return "rate_limited"
	}
	if status >= 500 {
		return "internal"
	}
	return "bad_request"
}
