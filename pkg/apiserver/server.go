// Package apiserver is Homeroom's HTTP API. It validates requests and writes
// desired state to the store; it never calls Docker.
package apiserver

import (
	"context"
	"crypto/subtle"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
	"github.com/homeroom/homeroom/pkg/policy"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// MaxBody bounds a request body; a roster of MaxStudents fits many times over.
const MaxBody = 1 << 20

// Store is what the API needs of the desired-state store.
type Store interface {
	Get(ctx context.Context, id string) (*api.Class, error)
	List(ctx context.Context) ([]api.Class, error)
	PutSpec(ctx context.Context, id string, spec api.ClassSpec) (*api.Class, bool, error)
	SetDesiredPhase(ctx context.Context, id string, phase api.Phase) (*api.Class, error)
	Delete(ctx context.Context, id string, check func(*api.Class) error) error
	Ping(ctx context.Context) error
}

// Artifacts is what the API needs of the object store: reading only.
type Artifacts interface {
	ListClass(ctx context.Context, classID string) ([]artifacts.Item, error)
	ListRun(ctx context.Context, classID, runID string) ([]artifacts.Item, error)
	ListRuns(ctx context.Context, classID string) ([]artifacts.RunSummary, error)
	GetRunIndex(ctx context.Context, classID, runID string) (*artifacts.RunIndex, error)
	LatestFile(ctx context.Context, classID, studentID, relPath string) (artifacts.Item, error)
	RunFile(ctx context.Context, classID, runID, studentID, relPath string) (artifacts.Item, error)
	Open(ctx context.Context, key string) (io.ReadCloser, int64, error)
	Ping(ctx context.Context) error
}

// Server holds the API's dependencies.
type Server struct {
	store      Store
	artifacts  Artifacts
	policy     *policy.Policy
	adminToken string
	log        *zap.Logger
	requests   *prometheus.CounterVec
	// quotaRejections counts refusals by the limit they name.
	quotaRejections *prometheus.CounterVec
	gatherer        prometheus.Gatherer
}

// New builds the API. reg and gatherer serve /metrics.
func New(s Store, a Artifacts, p *policy.Policy, adminToken string, log *zap.Logger, reg prometheus.Registerer, gatherer prometheus.Gatherer) *Server {
	srv := &Server{store: s, artifacts: a, policy: p, adminToken: adminToken, log: log, gatherer: gatherer}
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
	if reg != nil {
		reg.MustRegister(srv.requests, srv.quotaRejections)
	}
	return srv
}

// Handler returns the routes.
func (s *Server) Handler() http.Handler {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = s.errorHandler
	e.Use(middleware.Recover())
	e.Use(s.observe)
	e.Use(middleware.BodyLimit(strconv.Itoa(MaxBody/1024) + "K"))

	e.GET("/healthz", func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"status": "ok"}) })
	e.GET("/readyz", s.ready)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(s.gatherer, promhttp.HandlerOpts{})))

	v1 := e.Group("/api/v1", s.auth)
	v1.GET("/templates", s.templates)
	v1.GET("/classes", s.listClasses)
	v1.GET("/classes/:id", s.getClass)
	v1.PUT("/classes/:id", s.putClass)
	v1.DELETE("/classes/:id", s.deleteClass)
	v1.POST("/classes/:id/up", s.phase(api.PhaseUp))
	v1.POST("/classes/:id/down", s.phase(api.PhaseDown))
	v1.GET("/classes/:id/runs", s.listRuns)
	v1.GET("/classes/:id/runs/:run", s.getRun)
	v1.GET("/classes/:id/artifacts", s.listArtifacts)
	v1.GET("/classes/:id/artifacts/:student/*", s.getArtifact)

	room := e.Group("/room", s.auth)
	room.POST("/up-class", s.roomUp)
	room.POST("/down-class", s.roomDown)
	return e
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
		if route != "/metrics" && route != "/healthz" && route != "/readyz" {
			s.log.Info("request", zap.String("method", c.Request().Method), zap.String("route", route),
				zap.String("path", c.Request().URL.Path), zap.Int("code", code), zap.Duration("took", time.Since(start)))
		}
		return nil
	}
}

func (s *Server) auth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Request().Header.Get("Authorization")
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(tok), []byte(s.adminToken)) != 1 {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="homeroom"`)
			return apiError(http.StatusUnauthorized, "unauthorized", "a valid bearer token is required")
		}
		return next(c)
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

// Error is the body of every error response.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type httpError struct {
	status int
	body   Error
}

func (e *httpError) Error() string { return e.body.Message }

func apiError(status int, code, msg string) error {
	return &httpError{status: status, body: Error{Code: code, Message: msg}}
}

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
	default:
		s.log.Error("internal error", zap.String("path", c.Request().URL.Path), zap.Error(err))
		he = &httpError{status: http.StatusInternalServerError, body: Error{Code: "internal", Message: "internal error; see the apiserver log"}}
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
	}
	return "bad_request"
}
