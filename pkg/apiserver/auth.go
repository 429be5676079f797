package apiserver

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/config"
	"github.com/homeroom/homeroom/pkg/store"
	"github.com/labstack/echo/v4"
)

// principal is who a request comes from, as authenticated for this request:
// nothing about it is cached across requests, so a revoked token, a deleted
// user or a withdrawn subject counts from the next request.
type principal struct {
	name     string
	role     api.Role
	subjects []string // a teacher's; meaningless for an admin
	tokenID  string   // "" for the bootstrap admin token
}

func (p *principal) admin() bool { return p.role == api.RoleAdmin }

// teaches reports whether p may see and act on classes of subject.
func (p *principal) teaches(subject string) bool {
	return p.admin() || subject != "" && slices.Contains(p.subjects, subject)
}

// visibleSubjects is nil (everything) for an admin, else the teacher's
// subjects (never nil, so that "none" filters everything out).
func (p *principal) visibleSubjects() []string {
	if p.admin() {
		return nil
	}
	return append([]string{}, p.subjects...)
}

// limitKey is the rate limiter's key for p: one bucket per token.
func (p *principal) limitKey() string {
	if p.tokenID == "" {
		return "bootstrap-admin"
	}
	return "token:" + p.tokenID
}

const principalKey = "homeroom.principal"

// who returns the request's principal, or nil before authentication.
func who(c echo.Context) *principal {
	p, _ := c.Get(principalKey).(*principal)
	return p
}

// bearer returns the token of an "Authorization: Bearer <token>" header.
func bearer(c echo.Context) (string, bool) {
	h := c.Request().Header.Get(echo.HeaderAuthorization)
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// resolve authenticates a token: the bootstrap admin token, or one issued by
// the store. It returns nil for a token that authenticates nobody.
func (s *Server) resolve(ctx context.Context, tok string) (*principal, error) {
	if s.adminToken != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(s.adminToken)) == 1 {
		return &principal{name: api.BootstrapAdmin, role: api.RoleAdmin}, nil
	}
	u, t, err := s.store.Authenticate(ctx, tok)
	if errors.Is(err, store.ErrUnauthenticated) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &principal{name: u.Name, role: u.Role, subjects: u.Subjects, tokenID: t.ID}, nil
}

// authenticate lets the open paths through and requires a valid token
// everywhere else: 401 without one. The token is checked first, so a valid
// token is never refused for what others did: each token has its own rate
// limit (429 and Retry-After past it). Requests without a valid token count
// against their client address (see clientIP); past that limit they are
// 429 with Retry-After instead of 401, while valid tokens from the same
// address go on. A malformed token costs the store nothing; a well-formed
// one costs one lookup by its id. The principal goes into the echo
// context, and as the audit trail's actor into the request's context.
func (s *Server) authenticate(open ...string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if p := c.Request().URL.Path; slices.Contains(open, p) || strings.HasPrefix(p, uiPrefix) || strings.HasPrefix(p, config.SignInCheckPath) {
				return next(c)
			}
			var p *principal
			if tok, ok := bearer(c); ok {
				var err error
				if p, err = s.resolve(c.Request().Context(), tok); err != nil {
					return fmt.Errorf("authenticate: %w", err)
				}
			}
			if p == nil {
				return s.refuseUnauthenticated(c)
			}
			if ok, d := s.tokenLimits.allow(p.limitKey()); !ok {
				return tooMany(d, "rate limit of this token exceeded")
			}
			c.Set(principalKey, p)
			r := c.Request()
			actor := api.Actor{Name: p.name, Role: p.role, TokenID: p.tokenID,
				RequestID: c.Response().Header().Get(echo.HeaderXRequestID), Via: r.Method + " " + r.URL.Path}
			c.SetRequest(r.WithContext(store.WithActor(r.Context(), actor)))
			return next(c)
		}
	}
}

// refuseUnauthenticated answers a request without a valid token: 401, or
// 429 once its client address is past the limit on such requests. Refused
// requests take nothing from the bucket, so a client that waits as told
// gets its next try.
func (s *Server) refuseUnauthenticated(c echo.Context) error {
	if ok, d := s.authFailLimits.allow("ip:" + c.RealIP()); !ok {
		return tooMany(d, "too many requests without a valid token from this address")
	}
	c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="homeroom"`)
	return apiError(http.StatusUnauthorized, "unauthorized", "a valid bearer token is required")
}

// WithTrustedProxies names the proxies (HOMEROOM_TRUSTED_PROXIES) whose
// X-Forwarded-For is believed for the client address that the limit on
// requests without a valid token goes by: the address is the right-most
// one in X-Forwarded-For that none of them holds. Without any, the client
// address is the connection's peer and X-Forwarded-For is ignored.
func WithTrustedProxies(nets []*net.IPNet) Option {
	return func(o *options) { o.trustedProxies = nets }
}

// clientIP is the echo IP extractor for the client address: the
// connection's peer when no proxy is trusted (X-Forwarded-For and X-Real-IP
// ignored), else the right-most address of X-Forwarded-For (followed by the
// peer) that no trusted proxy holds. Only the ranges given are trusted:
// echo's default trust of loopback, link-local and private addresses is
// turned off, since a student's laptop on the school's network has one.
func clientIP(trusted []*net.IPNet) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, n := range trusted {
		opts = append(opts, echo.TrustIPRange(n))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

func tooMany(d time.Duration, msg string) error {
	secs := retryAfter(d)
	return &httpError{status: http.StatusTooManyRequests, retryAfter: secs,
		body: Error{Code: "rate_limited", Message: fmt.Sprintf("%s; retry in %ds", msg, secs)}}
}

// adminOnly refuses everyone but admins with 403.
func adminOnly(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if p := who(c); p == nil || !p.admin() {
			return apiError(http.StatusForbidden, "forbidden", "only an admin may do this")
		}
		return next(c)
	}
}

// forbiddenClass is the one refusal, whatever the reason, for every class a
// teacher may not act on: "not yours" and "does not exist" must read alike.
func forbiddenClass(id string) error {
	return apiError(http.StatusForbidden, "forbidden", fmt.Sprintf("class %q is not a class of your subjects", id))
}

func forbiddenSubject(subject string) error {
	return apiError(http.StatusForbidden, "forbidden", fmt.Sprintf("subject %q is not one of your subjects", subject))
}

// lookupClass returns the class and its registration, each nil when absent.
func (s *Server) lookupClass(ctx context.Context, id string) (*api.Class, *api.Roster, error) {
	cl, err := s.store.Get(ctx, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, nil, err
	}
	r, err := s.store.GetRoster(ctx, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, nil, err
	}
	return cl, r, nil
}

// authorizeClass decides whether the caller may see and act on class id,
// and returns what it read to decide: the class and its registration, each
// nil when absent. An admin may act on every class. A teacher may act on a
// class of their subjects: the stored class's subject, or for a class not
// (or no longer) in the store, its registered subject. Anything else is 403,
// a class that exists nowhere included, so that a teacher cannot tell
// another subject's classes from classes that do not exist.
func (s *Server) authorizeClass(c echo.Context, id string) (*api.Class, *api.Roster, error) {
	cl, r, err := s.lookupClass(c.Request().Context(), id)
	if err != nil {
		return nil, nil, err
	}
	if !visible(who(c), cl, r) {
		return nil, nil, forbiddenClass(id)
	}
	return cl, r, nil
}

// visible reports whether p may see a class stored as cl and registered as
// r (each nil when absent): by the stored class's subject, or for a class
// not (or no longer) in the store, its registered subject.
func visible(p *principal, cl *api.Class, r *api.Roster) bool {
	if p.admin() {
		return true
	}
	switch {
	case cl != nil:
		return p.teaches(cl.Spec.Subject)
	case r != nil:
		return p.teaches(r.Subject)
	}
	return false
}

// owns is the check, run on the class as stored when it is written, that
// the caller still may act on it: its subject may have changed since
// authorizeClass read it.
func owns(p *principal, id string) func(*api.Class) error {
	return func(cl *api.Class) error {
		if cl != nil && !p.teaches(cl.Spec.Subject) {
			return forbiddenClass(id)
		}
		return nil
	}
}

// checkRegistration refuses a spec for class id that the school's records
// do not allow, given the class as stored (cl) and its registration (r),
// each nil when absent. A teacher may write only a registered class of
// their subjects; anything else is 403 (a class they cannot see, so that
// they cannot tell it from one that does not exist) or, for a class of
// theirs that is not registered, 422 not_registered. An admin may write an
// unregistered class unless registration is required. For a registered
// class, whoever asks, the spec must name its registered subject and only
// students on its official roster: 422 subject_mismatch, or not_on_roster
// naming every student off it.
func (s *Server) checkRegistration(p *principal, id string, cl *api.Class, r *api.Roster, spec api.ClassSpec) error {
	if r == nil {
		switch {
		case !p.admin() && (cl == nil || !p.teaches(cl.Spec.Subject)):
			return forbiddenClass(id)
		case !p.admin() || s.opts.requireRegistration:
			return apiError(http.StatusUnprocessableEntity, "not_registered",
				fmt.Sprintf("class %q is not registered; an admin registers it with its subject and official roster first", id))
		}
		return nil
	}
	if !p.teaches(r.Subject) {
		return forbiddenClass(id)
	}
	if !p.teaches(spec.Subject) {
		return forbiddenSubject(spec.Subject)
	}
	if spec.Subject != r.Subject {
		return apiError(http.StatusUnprocessableEntity, "subject_mismatch",
			fmt.Sprintf("class %q is registered to subject %q, not %q", id, r.Subject, spec.Subject))
	}
	onRoster := make(map[string]bool, len(r.Students))
	for _, st := range r.Students {
		onRoster[st] = true
	}
	var off []string
	for _, st := range spec.Students {
		if !onRoster[st] {
			off = append(off, st)
		}
	}
	if len(off) == 0 {
		return nil
	}
	e := &httpError{status: http.StatusUnprocessableEntity, body: Error{Code: "not_on_roster",
		Message: fmt.Sprintf("not on the official roster of class %q: %s", id, strings.Join(off, ", "))}}
	for _, st := range off {
		e.body.Details = append(e.body.Details, ErrorDetail{Value: st, Message: "not on the official roster"})
	}
	return e
}
