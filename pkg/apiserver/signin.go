package apiserver

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/signin"
	"github.com/homeroom/homeroom/pkg/store"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Students' sign-in. A teacher issues personal links (POST …/links); a
// student follows theirs through Traefik, on their own host, and gets a
// session cookie for that host. Traefik asks the sign-in check (GET
// /signin/check/<secret>, forwardAuth) about every request to a student's
// host before the sandbox sees it.

const (
	// DefaultLinkLifetime bounds a link: it also ends when the class goes
	// Down or its time limit runs out, whichever comes first.
	DefaultLinkLifetime = 12 * time.Hour
	// DefaultSignInFailureRate and DefaultSignInFailureBurst limit the
	// refused sign-in checks of one client address. A valid link or
	// session is checked first and always passes, so a classmate (or a
	// whole school behind one address) guessing never locks a student out.
	DefaultSignInFailureRate  = 2.0
	DefaultSignInFailureBurst = 30
	// signInCacheTTL is how long the check trusts what it read from the
	// store. Revocations through this apiserver take effect at once; those
	// through another apiserver (or a Down by the controller) within it.
	signInCacheTTL = time.Second
	// pruneEvery is how often dead links and sessions are deleted: FerretDB
	// has no TTL indexes.
	pruneEvery = time.Minute
)

// Refusal reasons, as counted in homeroom_signin_refusals_total.
const (
	refuseNoSession    = "no_session"    // no session cookie: the sign-in page
	refuseForged       = "forged"        // not a secret Homeroom made: never looked up
	refuseUnknown      = "unknown"       // re-issued, signed out, pruned or never issued
	refuseExpired      = "expired"       // past its expiry
	refuseOtherStudent = "other_student" // a link or session for another host
	refuseClassNotUp   = "class_not_up"  // the class is Down, or came Up again since
	refuseNotOnRoster  = "not_on_roster" // the student was taken off the roster
	refuseNotTeacher   = "not_teacher"   // a helper who no longer teaches the class
	refuseBadRequest   = "bad_request"   // not a student's host, or a malformed path
	refuseRateLimited  = "rate_limited"  // too many refusals from one client
)

var refusalReasons = []string{refuseNoSession, refuseForged, refuseUnknown, refuseExpired, refuseOtherStudent,
	refuseClassNotUp, refuseNotOnRoster, refuseNotTeacher, refuseBadRequest, refuseRateLimited}

// signIn holds the check's state: short-lived views of the store, the
// per-client limit on refusals, and the metrics.
type signIn struct {
	domain   string
	now      func() time.Time
	mu       sync.Mutex
	secrets  *store.SignInSecrets
	sessions *ttlCache[*api.SignInSession] // by hash; nil: known not to exist
	links    *ttlCache[*api.SignInLink]    // by link id; nil: none
	classes  *ttlCache[*api.Class]
	users    *ttlCache[*api.User]
	failures *limiters

	signins  *prometheus.CounterVec
	refusals *prometheus.CounterVec
	latency  prometheus.Histogram
}

func newSignIn(domain string, failRate float64, failBurst int, reg prometheus.Registerer) *signIn {
	si := &signIn{
		domain: domain, now: time.Now,
		sessions: newTTLCache[*api.SignInSession](signInCacheTTL), links: newTTLCache[*api.SignInLink](signInCacheTTL),
		classes: newTTLCache[*api.Class](signInCacheTTL), users: newTTLCache[*api.User](signInCacheTTL),
		failures: newLimiters(failRate, failBurst, nil),
		signins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "homeroom_signins_total", Help: "Sign-ins through a personal link, by who signed in: the student, or a teacher helping.",
		}, []string{"holder"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "homeroom_signin_refusals_total", Help: "Requests to students' hosts the sign-in check refused, by reason.",
		}, []string{"reason"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "homeroom_forwardauth_duration_seconds", Help: "Time the sign-in check took to answer Traefik.",
			Buckets: []float64{.0002, .0005, .001, .002, .005, .01, .025, .05, .1, .25, 1},
		}),
	}
	for _, r := range refusalReasons {
		si.refusals.WithLabelValues(r)
	}
	si.signins.WithLabelValues("student")
	si.signins.WithLabelValues("teacher")
	if reg != nil {
		reg.MustRegister(si.signins, si.refusals, si.latency)
	}
	return si
}

// signInSecrets returns the installation's sign-in secrets, read from the
// store once (they are made there by whichever process starts first).
func (s *Server) signInSecrets(ctx context.Context) (store.SignInSecrets, error) {
	si := s.signIn
	si.mu.Lock()
	defer si.mu.Unlock()
	if si.secrets != nil {
		return *si.secrets, nil
	}
	sec, err := s.store.SignInSecrets(ctx)
	if err != nil {
		return sec, err
	}
	si.secrets = &sec
	return sec, nil
}

// linkItem is one issued link, the only time its secret is shown.
type linkItem struct {
	Student string `json:"student"`
	// Holder is who it signs in: the student, or the teacher it was
	// issued to.
	Holder    string    `json:"holder"`
	URL       string    `json:"url"`
	ExpiresAt time.Time `json:"expiresAt"`
}

type linksBody struct {
	Students []string `json:"students"`
	// Teacher asks for the caller's own links to these students'
	// sandboxes, to help; the students' links are left as they are.
	Teacher bool `json:"teacher"`
}

// issueLinks answers POST /api/v1/classes/{id}/links.
func (s *Server) issueLinks(c echo.Context) error {
	id, err := classID(c)
	if err != nil {
		return err
	}
	body, err := readBody(c)
	if err != nil {
		return err
	}
	var b linksBody
	if len(bytes.TrimSpace(body)) > 0 {
		if err := decodeJSON(body, &b); err != nil {
			return err
		}
	}
	cl, err := s.storedClass(c, id)
	if err != nil {
		return err
	}
	now := s.signIn.now().UTC().Truncate(time.Millisecond)
	up := cl.DesiredPhase == api.PhaseUp && cl.UpSince != nil
	students := b.Students
	if students == nil {
		students = cl.Spec.Students
		if !up {
			// A Down class: the students it still keeps a sandbox for.
			students = nil
			for _, st := range cl.Spec.Students {
				if _, ok := cl.SignInSince(st, now); ok {
					students = append(students, st)
				}
			}
		}
	}
	if !up && len(students) == 0 {
		return apiError(http.StatusConflict, "not_up",
			fmt.Sprintf("class %q is not Up: a link signs in to the class while it is Up, or to a student's sandbox during extra time or a late hand-in; bring it Up first", id))
	}
	if len(students) == 0 {
		return apiError(http.StatusBadRequest, "invalid_students", "students: name at least one student, or leave it out for all")
	}
	var off []ErrorDetail
	seen := map[string]bool{}
	for _, st := range students {
		if err := api.ValidateID("student id", st); err != nil {
			return apiError(http.StatusBadRequest, "invalid_id", err.Error())
		}
		switch {
		case seen[st]:
			return apiError(http.StatusBadRequest, "invalid_students", fmt.Sprintf("student %q is named twice", st))
		case !slices.Contains(cl.Spec.Students, st):
			off = append(off, ErrorDetail{Value: st, Message: "not a student of this class"})
		}
		seen[st] = true
	}
	var down []string
	for _, st := range students {
		if _, ok := cl.SignInSince(st, now); !ok && len(off) == 0 {
			down = append(down, st)
		}
	}
	if len(down) > 0 {
		return apiError(http.StatusConflict, "not_up",
			fmt.Sprintf("class %q is Down, and %s %s no extra time or late hand-in running: there is no sandbox to sign in to", id, strings.Join(down, ", "), map[bool]string{true: "has", false: "have"}[len(down) == 1]))
	}
	if len(off) > 0 {
		names := make([]string, len(off))
		for i, d := range off {
			names[i] = d.Value
		}
		return &httpError{status: http.StatusUnprocessableEntity, body: Error{Code: "not_in_class",
			Message: fmt.Sprintf("not students of class %q: %s", id, strings.Join(names, ", ")), Details: off}}
	}
	ctx := c.Request().Context()
	sec, err := s.signInSecrets(ctx)
	if err != nil {
		return err
	}
	p := who(c)
	holder := ""
	if b.Teacher {
		holder = p.name
	}
	items := make([]linkItem, 0, len(students))
	var latest time.Time // the audit records when the last of them ends
	for _, st := range students {
		expires := now.Add(DefaultLinkLifetime)
		for _, t := range []*time.Time{cl.ExpiresAt(), cl.SignInUntil(st, now)} {
			if t != nil && t.Before(expires) {
				expires = t.UTC().Truncate(time.Millisecond)
			}
		}
		if expires.After(latest) {
			latest = expires
		}
		since, _ := cl.SignInSince(st, now)
		secret := signin.Mint(sec.Key, signin.LinkPrefix)
		l := api.SignInLink{ID: api.LinkID(id, st, holder), ClassID: id, Student: st, Holder: holder,
			Hash: signin.Hash(secret), UpSince: since, IssuedAt: now, IssuedBy: p.name, ExpiresAt: expires}
		if err := s.store.PutLink(ctx, l); err != nil {
			return err
		}
		// The old link and its sessions end now for this apiserver; the
		// others see it within their cache's second.
		s.signIn.links.forget(l.ID)
		h := st
		if holder != "" {
			h = holder
		}
		items = append(items, linkItem{Student: st, Holder: h, URL: api.SignInURL(id, st, s.signIn.domain, secret), ExpiresAt: expires})
	}
	s.store.RecordLinksIssued(ctx, cl, students, holder, latest)
	return writeList(c, items)
}

// liveLink is an issued link as listed: who it signs in and until when,
// never its secret.
type liveLink struct {
	Student   string    `json:"student"`
	Holder    string    `json:"holder"`
	IssuedAt  time.Time `json:"issuedAt"`
	IssuedBy  string    `json:"issuedBy"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// listLinks answers GET /api/v1/classes/{id}/links: the links that can
// still sign someone in, so that a teacher knows whose link issuing again
// would end, without the secrets (only their hashes are stored).
func (s *Server) listLinks(c echo.Context) error {
	id, err := classID(c)
	if err != nil {
		return err
	}
	cl, err := s.storedClass(c, id)
	if err != nil {
		return err
	}
	ls, err := s.store.ListLinks(c.Request().Context(), id)
	if err != nil {
		return err
	}
	now := s.signIn.now()
	var items []liveLink
	for _, l := range ls {
		if since, ok := cl.SignInSince(l.Student, now); !ok || !since.Equal(l.UpSince) ||
			!now.Before(l.ExpiresAt) || !slices.Contains(cl.Spec.Students, l.Student) {
			continue
		}
		h := l.Holder
		if h == "" {
			h = l.Student
		}
		items = append(items, liveLink{Student: l.Student, Holder: h, IssuedAt: l.IssuedAt, IssuedBy: l.IssuedBy, ExpiresAt: l.ExpiresAt})
	}
	return writeList(c, items)
}

// refusal is why a check said no, and what the visitor is told.
type refusal struct {
	reason string
	status int
	title  string
	text   string
}

func refused(reason string) *refusal {
	r := &refusal{reason: reason, status: http.StatusUnauthorized, title: "Sign in to your sandbox",
		text: "Ask your teacher for your personal link and open it in this browser."}
	switch reason {
	case refuseOtherStudent:
		r.status, r.title = http.StatusForbidden, "This is not your sandbox"
		r.text = "You are signed in to another sandbox. Open your own link, or ask your teacher for it."
	case refuseExpired, refuseUnknown, refuseClassNotUp, refuseNotOnRoster:
		r.title = "This sign-in has ended"
		r.text = "Your link or session is no longer valid: it was replaced, it expired, or the class has ended. Ask your teacher for your link."
	case refuseNotTeacher:
		r.status, r.title = http.StatusForbidden, "You no longer teach this class"
		r.text = "Your link was issued while you taught this class. Ask an admin."
	case refuseBadRequest:
		r.status, r.title = http.StatusBadRequest, "Not a sandbox address"
		r.text = "This address does not name a student's sandbox."
	}
	return r
}

// signInCheck answers Traefik's forwardAuth request for a request to a
// student's host: 2xx lets it through to the sandbox, anything else is
// what the visitor gets instead.
func (s *Server) signInCheck(c echo.Context) error {
	start := time.Now()
	defer func() { s.signIn.latency.Observe(time.Since(start).Seconds()) }()
	ctx := c.Request().Context()
	sec, err := s.signInSecrets(ctx)
	if err != nil {
		return err
	}
	// Only Traefik knows this path: anyone else, a sandbox that reaches the
	// apiserver included, gets what an unknown path gets.
	if subtle.ConstantTimeCompare([]byte(c.Param("secret")), []byte(sec.ForwardAuth)) != 1 {
		return apiError(http.StatusNotFound, "not_found", "not found")
	}
	r := c.Request()
	h := c.Response().Header()
	h.Set("Cache-Control", "no-store")
	client := strings.TrimSpace(strings.Split(r.Header.Get("X-Forwarded-For"), ",")[0])
	classID, student, ok := signin.ParseHost(r.Header.Get("X-Forwarded-Host"), s.signIn.domain)
	u, err := url.ParseRequestURI(r.Header.Get("X-Forwarded-Uri"))
	if !ok || err != nil {
		return s.refuse(c, client, refused(refuseBadRequest))
	}
	if rest, ok := strings.CutPrefix(u.Path, api.SignInPath); ok {
		switch {
		case strings.HasPrefix(rest, "signin/"):
			return s.redeem(c, client, sec, classID, student, strings.TrimPrefix(rest, "signin/"))
		case rest == "signout":
			for _, v := range sessionCookies(r) {
				if !signin.Valid(sec.Key, signin.SessionPrefix, v) {
					continue
				}
				hash := signin.Hash(v)
				if err := s.store.DeleteSession(ctx, hash); err != nil {
					return err
				}
				s.signIn.sessions.forget(hash)
			}
			// Never a 2xx here: Traefik would pass that request on to the
			// sandbox, and drop the cleared cookie.
			clearCookie(c)
			h.Set("Location", "/")
			return c.NoContent(http.StatusSeeOther)
		}
		return s.refuse(c, client, refused(refuseBadRequest))
	}

	for _, ck := range r.Cookies() {
		if ck.Name == signin.ProbeCookieName && signin.ValidProbe(sec.Key, classID, student, ck.Value, time.Now()) {
			// The controller's readiness check, which cannot reach the
			// sandbox but through Traefik (a swarm): through, without
			// Homeroom's cookies.
			if rest := otherCookies(r); rest != "" {
				h.Set("Cookie", rest)
			}
			return c.NoContent(http.StatusOK)
		}
	}
	values := sessionCookies(r)
	if len(values) == 0 {
		return s.refuse(c, client, refused(refuseNoSession))
	}
	// Every cookie of that name counts: a page on another host of the
	// class's domain could have set one for the whole domain beside the
	// host's own, and must not shadow it.
	worst := ""
	for _, v := range values {
		why, err := s.checkSession(ctx, sec, classID, student, v)
		if err != nil {
			return err
		}
		if why == "" {
			// Through to the sandbox, without Homeroom's cookie: Traefik puts
			// this Cookie header on the request in place of the browser's.
			if rest := otherCookies(r); rest != "" {
				h.Set("Cookie", rest)
			}
			return c.NoContent(http.StatusOK)
		}
		if worst == "" || why == refuseOtherStudent {
			worst = why
		}
	}
	clearCookie(c)
	return s.refuse(c, client, refused(worst))
}

// forgetClass makes the next check read class id from the store: this
// apiserver just changed it (a Down, a roster change), and a session it
// ended must end now, not a second later.
func (si *signIn) forgetClass(id string) { si.classes.forget(id) }

// forgetUser likewise, for a user whose subjects or existence changed.
func (si *signIn) forgetUser(name string) { si.users.forget(name) }

// checkSession returns "" when value is a live session on the host of
// classID/student, or why not.
func (s *Server) checkSession(ctx context.Context, sec store.SignInSecrets, classID, student, value string) (string, error) {
	if !signin.Valid(sec.Key, signin.SessionPrefix, value) {
		return refuseForged, nil
	}
	hash := signin.Hash(value)
	sess, err := s.signIn.sessions.get(hash, func() (*api.SignInSession, error) {
		return orNil(s.store.GetSession(ctx, hash))
	})
	switch {
	case err != nil:
		return "", err
	case sess == nil:
		return refuseUnknown, nil
	case sess.ClassID != classID || sess.Student != student:
		return refuseOtherStudent, nil
	case !s.signIn.now().Before(sess.ExpiresAt):
		return refuseExpired, nil
	}
	l, err := s.signIn.links.get(api.LinkID(classID, student, sess.Holder), func() (*api.SignInLink, error) {
		return orNil(s.store.GetLink(ctx, classID, student, sess.Holder))
	})
	if err != nil {
		return "", err
	}
	if l == nil || l.Hash != sess.LinkHash {
		return refuseUnknown, nil // its link was issued again
	}
	return s.checkStanding(ctx, classID, student, sess.Holder, sess.UpSince, true)
}

// checkStanding returns "" when the class is still the Up a link or session
// was made in, with student on its roster, and a helping holder still
// teaches it; or why not. cached says whether a second-old view will do.
func (s *Server) checkStanding(ctx context.Context, classID, student, holder string, upSince time.Time, cached bool) (string, error) {
	getClass := func() (*api.Class, error) { return orNil(s.store.Get(ctx, classID)) }
	var cl *api.Class
	var err error
	if cached {
		cl, err = s.signIn.classes.get(classID, getClass)
	} else {
		cl, err = getClass()
	}
	switch {
	case err != nil:
		return "", err
	case cl == nil:
		return refuseClassNotUp, nil
	}
	// A student whose time was extended keeps signing in to their sandbox
	// after the class's Down until their time is up; one given a late
	// hand-in signs in to the sandbox made for it, with links issued since.
	if since, ok := cl.SignInSince(student, s.signIn.now()); !ok || !since.Equal(upSince) {
		return refuseClassNotUp, nil
	}
	switch {
	case !slices.Contains(cl.Spec.Students, student):
		return refuseNotOnRoster, nil
	case holder == "" || holder == api.BootstrapAdmin:
		return "", nil
	}
	u, err := s.signIn.users.get(holder, func() (*api.User, error) {
		return orNil(s.store.GetUser(ctx, holder))
	})
	if err != nil {
		return "", err
	}
	if u == nil || !(&principal{name: u.Name, role: u.Role, subjects: u.Subjects}).teaches(cl.Spec.Subject) {
		return refuseNotTeacher, nil
	}
	return "", nil
}

// redeem signs in with a link: a new session, its cookie, and a redirect
// to the sandbox's front page.
func (s *Server) redeem(c echo.Context, client string, sec store.SignInSecrets, classID, student, code string) error {
	ctx := c.Request().Context()
	if !signin.Valid(sec.Key, signin.LinkPrefix, code) {
		return s.refuse(c, client, refused(refuseForged))
	}
	l, err := s.store.FindLink(ctx, signin.Hash(code))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return s.refuse(c, client, refused(refuseUnknown))
	case err != nil:
		return err
	case l.ClassID != classID || l.Student != student:
		return s.refuse(c, client, refused(refuseOtherStudent))
	case !s.signIn.now().Before(l.ExpiresAt):
		return s.refuse(c, client, refused(refuseExpired))
	}
	why, err := s.checkStanding(ctx, classID, student, l.Holder, l.UpSince, false)
	if err != nil {
		return err
	}
	if why != "" {
		return s.refuse(c, client, refused(why))
	}
	token := signin.Mint(sec.Key, signin.SessionPrefix)
	now := s.signIn.now().UTC().Truncate(time.Millisecond)
	sess := api.SignInSession{ID: signin.Hash(token), ClassID: classID, Student: student, Holder: l.Holder,
		LinkHash: l.Hash, UpSince: l.UpSince, CreatedAt: now, ExpiresAt: l.ExpiresAt}
	if err := s.store.PutSession(ctx, sess); err != nil {
		return err
	}
	who := "student"
	if l.Holder != "" {
		who = "teacher"
		if cl, err := s.store.Get(ctx, classID); err == nil {
			actor := api.Actor{Name: l.Holder, Role: api.RoleTeacher, Via: "sign-in link on " + api.Host(classID, student, s.signIn.domain)}
			if l.Holder == api.BootstrapAdmin {
				actor.Role = api.RoleAdmin
			} else if u, err := s.store.GetUser(ctx, l.Holder); err == nil {
				actor.Role = u.Role
			}
			s.store.RecordSandboxOpen(store.WithActor(ctx, actor), cl, student)
		}
	}
	s.signIn.signins.WithLabelValues(who).Inc()
	s.log.Info("signed in", zap.String("classId", classID), zap.String("student", student),
		zap.String("holder", l.Holder), zap.String("client", client))
	c.SetCookie(&http.Cookie{
		Name: signin.CookieName, Value: token, Path: "/", Expires: l.ExpiresAt,
		MaxAge: max(1, int(time.Until(l.ExpiresAt).Seconds())), HttpOnly: true, SameSite: http.SameSiteLaxMode,
		Secure: c.Request().Header.Get("X-Forwarded-Proto") == "https",
	})
	h := c.Response().Header()
	// The link's secret stays out of the Referer of whatever comes next.
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Location", "/")
	return c.NoContent(http.StatusFound)
}

// refuse answers a refused check and counts it. Refusals of a presented
// secret count against the client's limit; past it the answer is 429.
func (s *Server) refuse(c echo.Context, client string, r *refusal) error {
	if r.reason != refuseNoSession && r.reason != refuseBadRequest {
		if ok, d := s.signIn.failures.allow("ip:" + client); !ok {
			c.Response().Header().Set("Retry-After", fmt.Sprint(retryAfter(d)))
			r = &refusal{reason: refuseRateLimited, status: http.StatusTooManyRequests, title: "Too many attempts",
				text: "Too many sign-in attempts from this address. Wait a minute, then open your link again."}
		}
	}
	s.signIn.refusals.WithLabelValues(r.reason).Inc()
	return s.page(c, r)
}

// page answers with r: a plain page for a browser, an error body for
// anything else.
func (s *Server) page(c echo.Context, r *refusal) error {
	if r.status == http.StatusUnauthorized {
		c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Cookie realm="homeroom"`)
	}
	if !strings.Contains(c.Request().Header.Get("Accept"), "text/html") {
		if r.status < 300 {
			return c.JSON(r.status, map[string]string{"message": r.text})
		}
		return c.JSON(r.status, map[string]Error{"error": {Code: codeOf(r), Message: r.title + ": " + r.text}})
	}
	h := c.Response().Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	var b bytes.Buffer
	if err := signInPage.Execute(&b, map[string]string{"Title": r.title, "Text": r.text}); err != nil {
		return err
	}
	return c.HTMLBlob(r.status, b.Bytes())
}

func codeOf(r *refusal) string {
	switch r.status {
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusTooManyRequests:
		return "rate_limited"
	case http.StatusBadRequest:
		return "bad_request"
	}
	return "unauthorized"
}

var signInPage = template.Must(template.New("signin").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} · Homeroom</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#1f2328}
h1{font-size:1.4rem}p{color:#444}</style></head>
<body><main><h1>{{.Title}}</h1><p>{{.Text}}</p></main></body></html>
`))

// sessionCookies returns the values of every session cookie sent.
func sessionCookies(r *http.Request) []string {
	var out []string
	for _, ck := range r.Cookies() {
		if ck.Name == signin.CookieName {
			out = append(out, ck.Value)
		}
	}
	return out
}

// otherCookies is the Cookie header without Homeroom's session and probe
// cookies.
func otherCookies(r *http.Request) string {
	var parts []string
	for _, line := range r.Header.Values("Cookie") {
		for _, p := range strings.Split(line, ";") {
			p = strings.TrimSpace(p)
			if name, _, _ := strings.Cut(p, "="); p == "" || strings.TrimSpace(name) == signin.CookieName || strings.TrimSpace(name) == signin.ProbeCookieName {
				continue
			}
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, "; ")
}

func clearCookie(c echo.Context) {
	c.SetCookie(&http.Cookie{Name: signin.CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
}

// pruneSignIns deletes dead links and sessions now and then, until stop.
func (s *Server) pruneSignIns(stop <-chan struct{}) {
	t := time.NewTicker(pruneEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		n, err := s.store.PruneSignIns(ctx, s.signIn.now())
		cancel()
		if err != nil {
			s.log.Warn("prune sign-ins", zap.Error(err))
		} else if n > 0 {
			s.log.Debug("pruned sign-ins", zap.Int("deleted", n))
		}
	}
}

// orNil turns the store's "not found" into a nil value, which the caches
// keep as "known not to exist".
func orNil[T any](v *T, err error) (*T, error) {
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	return v, err
}

// ttlCache keeps values for a short time, including "absent" (nil).
type ttlCache[V any] struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]cacheEntry[V]
}

type cacheEntry[V any] struct {
	v  V
	at time.Time
}

// cacheMax bounds a cache; past it, it starts over.
const cacheMax = 50000

func newTTLCache[V any](ttl time.Duration) *ttlCache[V] {
	return &ttlCache[V]{ttl: ttl, m: map[string]cacheEntry[V]{}}
}

// get returns the cached value of key, or load's, which is then cached.
// Errors are not cached.
func (c *ttlCache[V]) get(key string, load func() (V, error)) (V, error) {
	now := time.Now()
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	if ok && now.Sub(e.at) < c.ttl {
		return e.v, nil
	}
	v, err := load()
	if err != nil {
		return v, err
	}
	c.mu.Lock()
	if len(c.m) >= cacheMax {
		for k, e := range c.m {
			if now.Sub(e.at) >= c.ttl {
				delete(c.m, k)
			}
		}
		if len(c.m) >= cacheMax {
			clear(c.m)
		}
	}
	c.m[key] = cacheEntry[V]{v: v, at: now}
	c.mu.Unlock()
	return v, nil
}

func (c *ttlCache[V]) forget(key string) {
	c.mu.Lock()
	delete(c.m, key)
	c.mu.Unlock()
}
