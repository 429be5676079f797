package reconcile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"strconv"
	"sync"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/policy"
	"github.com/homeroom/homeroom/pkg/signin"
	"golang.org/x/sync/errgroup"
)

// A template's readiness check is a GET of its path on the sandbox's port,
// at the sandbox's address on the class network, from the controller: the
// host's network reaches every class network, as Traefik does. A sandbox
// counts as running once it answers 2xx or 3xx and, when the controller
// knows Traefik's address (Options.RouterURL), once Traefik routes the
// student's host to it. Where the controller cannot reach the sandboxes
// (a swarm's overlay networks, Options.ProbeKey), the check goes through
// Traefik only, with a probe token the sign-in check lets through to that
// one sandbox, and the sandbox's own answer through it decides. Until then
// its student is
// "starting", and past the check's timeout "unready", with the last error
// and log lines. Once answered, a container is not checked again (this is
// not a liveness check); one that stops and starts is checked again.
const (
	// ProbeTimeout bounds one check: a sandbox that accepts and then says
	// nothing costs a pass no more than this.
	ProbeTimeout = 2 * time.Second
	// probeEvery is how soon a class with sandboxes still starting is
	// passed again; probeUnreadyEvery, once all of them are past the
	// timeout.
	probeEvery        = 250 * time.Millisecond
	probeUnreadyEvery = 5 * time.Second
	// probeParallel bounds the checks in flight for one class.
	probeParallel = 16
	// What of a sandbox's log an unready student's status carries.
	logTailLines = 20
	logTailBytes = 4096
)

// Probe sends one GET of url, with host as its Host header and cookie
// ("name=value") as its Cookie header when not empty, and returns the
// answer's status.
type Probe func(ctx context.Context, url, host, cookie string) (int, error)

// probeClient is the controller's only HTTP client toward sandboxes, which
// are the students' programs: no proxy from the environment, no redirects
// followed, no connection kept, small headers.
var probeClient = &http.Client{
	Timeout: ProbeTimeout,
	Transport: &http.Transport{
		Proxy:                  nil,
		DialContext:            (&net.Dialer{Timeout: ProbeTimeout}).DialContext,
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: 16 << 10,
		ResponseHeaderTimeout:  ProbeTimeout,
	},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// HTTPProbe is the default Probe.
func HTTPProbe(ctx context.Context, url, host, cookie string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	if host != "" {
		req.Host = host
	}
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	resp, err := probeClient.Do(req)
	if err != nil {
		var ue *neturl.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, which the message names already
		}
		return 0, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	return resp.StatusCode, nil
}

// answers is the check of the sandbox itself: 2xx or 3xx.
func answers(status int, err error) error {
	switch {
	case err != nil:
		return err
	case status >= 400:
		return fmt.Errorf("answered %d %s", status, http.StatusText(status))
	}
	return nil
}

// routed is the check through Traefik, without a session: the sign-in
// check's 401 (or the sandbox's own answer, where there is no sign-in
// check) shows the student's host is routed; Traefik's 404 that it is not
// yet, and a 5xx that Traefik cannot reach the sandbox.
func routed(status int, err error) error {
	switch {
	case err != nil:
		return fmt.Errorf("Traefik: %w", err)
	case status == http.StatusNotFound:
		return errors.New("Traefik does not route the student's host yet (404)")
	case status >= 500:
		return fmt.Errorf("Traefik answered %d %s", status, http.StatusText(status))
	}
	return nil
}

// throughRouter is the check through Traefik with a probe token: the
// sandbox's own answer, 2xx or 3xx, where Traefik routes the student's
// host and the sign-in check lets the token through.
func throughRouter(status int, err error) error {
	switch {
	case err == nil && status == http.StatusNotFound:
		return errors.New("404 through Traefik: it does not route the student's host yet, or the sandbox has no such page")
	case err == nil && status == http.StatusUnauthorized:
		return errors.New("the sign-in check refused the controller's probe (401): do the controller and the apiserver share the store, and their clocks the time?")
	}
	if err := routed(status, err); err != nil {
		return err
	}
	return answers(status, nil)
}

// probeState is what the controller knows of one container's check.
type probeState struct {
	since   time.Time // first seen running without having answered
	ready   bool
	lastErr string
	logs    string // read once, when the timeout passes
	logRead bool
}

// readiness holds the checks' state by class and container id. It is only
// memory: a restarted controller checks every running sandbox once more.
type readiness struct {
	mu sync.Mutex
	m  map[string]map[string]*probeState
}

// forget drops a class's states (it is Down, or its template has no check).
func (rd *readiness) forget(classID string) {
	rd.mu.Lock()
	delete(rd.m, classID)
	rd.mu.Unlock()
}

// check marks each running container of obs Waiting until it has answered
// t's readiness check, checking those that have not yet, and says why for
// those past the timeout. Containers that are not running are forgotten, so
// that one started again is checked again.
func (r *Reconciler) checkReadiness(ctx context.Context, classID string, t *policy.Template, obs *Observed) {
	if t == nil || t.Readiness == nil {
		r.ready.forget(classID)
		return
	}
	now := r.now()
	r.ready.mu.Lock()
	if r.ready.m == nil {
		r.ready.m = map[string]map[string]*probeState{}
	}
	prev := r.ready.m[classID]
	states := make(map[string]*probeState, len(obs.Containers))
	var pending []string // students
	for s, c := range obs.Containers {
		if c.State != "running" {
			continue
		}
		st := prev[c.ID]
		if st == nil {
			st = &probeState{since: now}
		}
		states[c.ID] = st
		if !st.ready {
			pending = append(pending, s)
		}
	}
	r.ready.m[classID] = states
	r.ready.mu.Unlock()

	probe := r.opts.Probe
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(probeParallel)
	results := make([]error, len(pending))
	for i, s := range pending {
		c := obs.Containers[s]
		g.Go(func() error {
			if r.opts.ProbeKey != nil {
				if r.opts.RouterURL == "" {
					results[i] = errors.New("the controller reaches these sandboxes only through Traefik, whose address it is not given (HOMEROOM_TRAEFIK_URL)")
					return nil
				}
				token := signin.MintProbe(r.opts.ProbeKey, classID, s, time.Now().Add(signin.ProbeTTL))
				results[i] = throughRouter(probe(gctx, r.opts.RouterURL+t.Readiness.Path, api.Host(classID, s, r.opts.Domain), signin.ProbeCookieName+"="+token))
				return nil
			}
			if c.IP == "" {
				results[i] = errors.New("it has no address on the class network")
				return nil
			}
			url := "http://" + net.JoinHostPort(c.IP, strconv.Itoa(t.Port)) + t.Readiness.Path
			if results[i] = answers(probe(gctx, url, "", "")); results[i] != nil || r.opts.RouterURL == "" {
				return nil
			}
			// The sandbox answers; a student reaches it only once Traefik
			// routes their host, a moment after the sandbox started.
			results[i] = routed(probe(gctx, r.opts.RouterURL+t.Readiness.Path, api.Host(classID, s, r.opts.Domain), ""))
			return nil
		})
	}
	g.Wait()

	timeout := t.Readiness.Timeout()
	for i, s := range pending {
		c := obs.Containers[s]
		st := states[c.ID]
		if results[i] == nil {
			st.ready = true
			continue
		}
		st.lastErr = results[i].Error()
		c.Waiting = true
		if now.Sub(st.since) >= timeout {
			if !st.logRead {
				// Once: its log is what tells the teacher why.
				logs, err := r.docker.LogTail(ctx, c.ID, logTailLines, logTailBytes)
				if err != nil {
					logs = "(its log could not be read: " + err.Error() + ")"
				}
				st.logs, st.logRead = logs, true
			}
			c.Unready = fmt.Sprintf("no answer to GET %s on port %d within %d s (last: %s)",
				t.Readiness.Path, t.Port, t.Readiness.TimeoutSeconds, st.lastErr)
			if st.logs != "" {
				c.Unready += "; its last log lines:\n" + st.logs
			}
		}
		obs.Containers[s] = c
	}
}

// readinessRecheck is how soon a class with sandboxes that have not
// answered their check yet is passed again, or 0 when none is waiting.
func readinessRecheck(obs Observed) time.Duration {
	var d time.Duration
	for _, c := range obs.Containers {
		switch {
		case !c.Waiting:
		case c.Unready == "":
			return probeEvery
		default:
			d = probeUnreadyEvery
		}
	}
	return d
}
