// Package reconcile makes Docker match one class's desired state. A pass
// reads as observe (list by label), plan (a pure function), execute (no
// decisions), then status.
package reconcile

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
	"github.com/homeroom/homeroom/pkg/dockerx"
	"github.com/homeroom/homeroom/pkg/policy"
	"github.com/homeroom/homeroom/pkg/store"
	"github.com/homeroom/homeroom/pkg/timetable"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Store is what a pass needs of the desired-state store. The controller
// writes only status.
type Store interface {
	Get(ctx context.Context, id string) (*api.Class, error)
	List(ctx context.Context) ([]api.Class, error)
	UpdateStatus(ctx context.Context, id string, version int64, st api.ClassStatus) (*api.Class, error)
	Expire(ctx context.Context, id string, upSince time.Time) (*api.Class, error)
	ApplySchedule(ctx context.Context, id string, phase api.Phase, at, bell time.Time, desiredAt, scheduledSince *time.Time) (*api.Class, error)
	// OrphanSince records that class id, gone from the store, was seen
	// with resources left at t, unless a sighting is recorded already, and
	// returns the first: the orphan grace period survives restarts.
	OrphanSince(ctx context.Context, id string, t time.Time) (time.Time, error)
	// ForgetOrphan removes the sighting of class id, if any.
	ForgetOrphan(ctx context.Context, id string) error
}

// Options tune a Reconciler.
type Options struct {
	Domain           string
	TraefikContainer string
	// ForwardAuth is the address of Homeroom's sign-in check as Traefik
	// reaches it, put on every student's router; "" routes without it.
	ForwardAuth string
	// Parallel bounds how many students of a class are worked on at once
	// (DefaultParallel).
	Parallel int
	// GlobalParallel bounds the Docker steps in flight across all classes
	// and workers together (DefaultGlobalParallel): past it the daemon only
	// queues work on its own locks, so steps wait here instead.
	GlobalParallel   int
	StopGraceSeconds int
	CollectTimeout   time.Duration
	Now              func() time.Time
	// SubnetPool and SubnetBits size class networks (DefaultSubnetPool, /23).
	SubnetPool netip.Prefix
	SubnetBits int
	// OrphanGrace is how long resources of a class gone from the store are
	// left alone (DefaultOrphanGrace).
	OrphanGrace time.Duration
	// Registerer receives the reconciler's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Probe checks a sandbox's readiness (HTTPProbe when nil).
	Probe Probe
	// RouterURL is where the controller reaches Traefik's entrypoint, e.g.
	// http://127.0.0.1:80: a sandbox with a readiness check counts as
	// running only once Traefik routes its student's host. "" checks only
	// the sandbox.
	RouterURL string
	// ProbeKey, the sign-in key, is set where the controller cannot reach
	// the sandboxes' addresses (a swarm's overlay networks): the readiness
	// check then goes through Traefik at RouterURL only, with a probe token
	// signed with it (signin.MintProbe).
	ProbeKey []byte
}

// Reconciler runs passes.
type Reconciler struct {
	store     Store
	docker    Docker
	artifacts Artifacts
	collector artifacts.Collector // over docker and artifacts: the one way to collect
	policy    *policy.Policy
	opts      Options
	log       *zap.Logger
	metrics   *metrics
	subnetMu  sync.Mutex // one class network allocation at a time
	admitMu   sync.Mutex // one quota admission at a time

	restartMu sync.Mutex
	restarts  map[string]map[string]int // class id → container id → Observed.Restarts

	// refused holds, by container name, the sandboxes whose last start the
	// daemon refused with containerd's "task already exists".
	refusedMu sync.Mutex
	refused   map[string]bool

	// leaked holds, by network id, the class networks the daemon refuses
	// to remove for endpoints of containers that no longer exist.
	leakedMu sync.Mutex
	leaked   map[string]string // id → name

	// late holds the classes whose session started and that are not
	// ready: the homeroom_classes_late_for_bell gauge.
	bellMu sync.Mutex
	late   map[string]bool

	wsMu       sync.Mutex
	workspaces map[string]map[string]int64 // class id → student → bytes; nil until measured

	hashes specHashes // of the specs sandboxes would be made from now

	ready readiness // the readiness checks' state

	// slots holds GlobalParallel: every Docker step of every pass takes
	// one, whichever worker runs it.
	slots *slots
}

// Defaults of Options.Parallel and Options.GlobalParallel, measured with
// `make bench` (docs/benchmarks.md) on a 2-core machine: a class of 100 came
// Up as fast as the daemon allows with 4 to 16 steps in flight and slower
// with 32 (the daemon serializes network endpoint creation, so more only
// queues there). A Down is a chain per student (stop, collect, remove) whose
// collection waits on the object store and the store as well as on the
// daemon: with 8 chains at once the daemon sat idle between them, and 16
// brought a Down of 100 from about 1.5× copy-then-remove to about 1.15×.
// One class may take all 16 slots: they are handed out per step and in
// order of asking, so a second class starting meanwhile gets its turns
// among the first one's steps.
const (
	DefaultParallel       = 16
	DefaultGlobalParallel = 16
)

// New returns a Reconciler with defaults filled in.
func New(s Store, d Docker, a Artifacts, p *policy.Policy, opts Options, log *zap.Logger) *Reconciler {
	if opts.Parallel <= 0 {
		opts.Parallel = DefaultParallel
	}
	if opts.GlobalParallel <= 0 {
		opts.GlobalParallel = DefaultGlobalParallel
	}
	if opts.StopGraceSeconds <= 0 {
		opts.StopGraceSeconds = 5
	}
	if opts.CollectTimeout <= 0 {
		opts.CollectTimeout = 10 * time.Minute
	}
	if !opts.SubnetPool.IsValid() {
		opts.SubnetPool = DefaultSubnetPool
	}
	if opts.SubnetBits == 0 {
		opts.SubnetBits = DefaultSubnetBits
	}
	if opts.OrphanGrace <= 0 {
		opts.OrphanGrace = DefaultOrphanGrace
	}
	if opts.Domain == "" {
		opts.Domain = "lab.localhost"
	}
	if opts.Probe == nil {
		opts.Probe = HTTPProbe
	}
	r := &Reconciler{store: s, docker: d, artifacts: a, policy: p, opts: opts, log: log,
		metrics:  newMetrics(opts.Registerer),
		slots:    newSlots(opts.GlobalParallel, opts.Registerer),
		restarts: map[string]map[string]int{},
	}
	r.collector = artifacts.Collector{Source: d, Objects: a, Now: r.now}
	return r
}

func (r *Reconciler) now() time.Time {
	if r.opts.Now != nil {
		return r.opts.Now().UTC().Truncate(time.Millisecond)
	}
	return time.Now().UTC().Truncate(time.Millisecond)
}

// upAt is when the class's current Up first had every student running,
// or nil before that (and for a class not Up).
func upAt(c *api.Class) *time.Time {
	at := c.Status.UpAt
	if c.DesiredPhase != api.PhaseUp || c.UpSince == nil || at == nil || at.Before(*c.UpSince) {
		return nil
	}
	return at
}

// reasonRestarting is Ready's reason while a sandbox waits out its restart
// pause.
const reasonRestarting = "SandboxesRestarting"

// Result says what a pass wants next.
type Result struct {
	// Converged is true when Docker matched the desired state at the end.
	Converged bool
	Plan      Plan
	// RequeueAfter asks for a pass at a known time, such as a TTL's end.
	RequeueAfter time.Duration
	// Version is the class's version as this pass left it, when the pass
	// acted on the class's latest generation: a version the pass wrote
	// itself (its status) asks for no other pass. 0 when unknown.
	Version int64
}

// TerminalError marks a failure that retrying cannot fix (a name taken by
// a resource Homeroom does not own, an image that does not exist): it is
// reported in status and retried only on the periodic resync.
type TerminalError struct{ Err error }

func (e *TerminalError) Error() string { return e.Err.Error() }
func (e *TerminalError) Unwrap() error { return e.Err }

// Reconcile runs one pass for a class.
func (r *Reconciler) Reconcile(ctx context.Context, classID string) (Result, error) {
	log := r.log.With(zap.String("classId", classID), zap.String("pass", passID()))
	class, err := r.store.Get(ctx, classID)
	if errors.Is(err, store.ErrNotFound) {
		r.forgetBell(classID)
		return r.reconcileOrphan(ctx, classID)
	}
	if err != nil {
		return Result{}, fmt.Errorf("read class: %w", err)
	}
	r.forgetOrphan(ctx, log, classID)
	if exp := class.ExpiresAt(); exp != nil && !r.now().Before(*exp) {
		expired, err := r.store.Expire(ctx, classID, *class.UpSince)
		switch {
		case err == nil:
			r.metrics.expiries.Inc()
			log.Info("ttl expired; taking the class down", zap.Time("expiresAt", *exp))
			class = expired
		case errors.Is(err, store.ErrNotExpired):
			// A teacher acted first; the next pass sees what they asked.
			return Result{}, nil
		default:
			return Result{}, fmt.Errorf("expire: %w", err)
		}
	}
	if class, err = r.followSchedule(ctx, log, class); err != nil {
		if errors.Is(err, store.ErrNotScheduled) {
			// A teacher acted first; the next pass sees what they asked.
			return Result{}, nil
		}
		return Result{}, fmt.Errorf("schedule: %w", err)
	}
	// Checkpoints re-read the class after a concurrent write; status must
	// still describe the desire this pass acted on, with its generation.
	planned := *class
	tmpl, _ := r.policy.Template(class.Spec.Template)
	obs, err := r.observe(ctx, class)
	if err != nil {
		return Result{}, fmt.Errorf("observe: %w", err)
	}
	plan := PlanFor(Input{Class: *class, Template: tmpl, Observed: obs, Now: r.now()})
	var quotaErr error
	if plan.creates() {
		switch err := r.admit(ctx, class, plan); {
		case errors.As(err, new(*policy.QuotaError)):
			// Over quota: make nothing new, keep what runs, and say why.
			quotaErr = err
			var qe *policy.QuotaError
			errors.As(err, &qe)
			r.metrics.quotaRejections.WithLabelValues(qe.Limit).Inc()
			plan = plan.withoutNewSandboxes(obs)
		case err != nil:
			return Result{}, err
		}
	}
	res := Result{Plan: plan}
	// A class whose sandbox stopped or is being removed (by hand, with a
	// docker rm -f) is Provisioning meanwhile; it had come Up all the
	// same, and what is done for it is a repair, not a new Up.
	wasUp := class.Status.Phase == api.PhaseUp || upAt(class) != nil
	if class.DesiredPhase == api.PhaseUp && wasUp {
		// Anything to do for a class that was Up is a repair of drift,
		// but for its autosave.
		r.metrics.driftRepairs.Add(float64(len(plan) - plan.count(Autosave)))
	}
	var execErr error
	// A network the daemon refused before with nothing on it is known as
	// leaked: the class is Down without it (see planDown).
	leaked := obs.Network != nil && obs.Network.Leaked
	if len(plan) > 0 {
		log.Info("executing plan", zap.Stringers("steps", plan))
		ex := &executor{r: r, class: class, tmpl: tmpl, obs: obs, log: log}
		execErr = ex.run(ctx, plan)
		r.countRestarts(class.ID, obs, plan)
		// Status reports the world as it is now, not as the plan hoped.
		if after, err := r.observe(ctx, class); err == nil {
			obs = after
		} else if execErr == nil {
			execErr = err
		}
	}
	if errors.Is(execErr, ErrStopped) {
		// Whoever acts next reads the checkpoints and carries on; a status
		// written now could overwrite the new leader's.
		return res, ErrStopped
	}
	if execErr == nil && quotaErr != nil {
		execErr = &TerminalError{Err: quotaErr}
	}
	retryLeak := false
	if refusedAgain(leaked, execErr) {
		// Refused again, as known: not a failure of the pass, which would
		// hold every pass of the class (its grading's progress among them)
		// behind the retries' growing pauses. It is retried every
		// LeakRetry; the NetworkLeaked condition says why.
		execErr, retryLeak = nil, true
		log.Info("the class network is still refused by the daemon; retrying later", zap.Duration("in", LeakRetry))
	}
	if execErr != nil {
		execErr = classify(execErr)
		log.Warn("pass failed", zap.Error(execErr))
	}
	grading, gerr := r.grading(ctx, class)
	if gerr != nil {
		log.Warn("read the last run's grading", zap.Error(gerr))
	}
	err = r.writeStatus(ctx, class, func(st *api.ClassStatus) {
		c := planned
		c.Status = *st
		*st = buildStatus(&c, tmpl, obs, execErr, r.opts, &r.hashes, r.now())
		if !wasUp && st.Phase == api.PhaseUp && c.DesiredPhase == api.PhaseUp && c.UpSince != nil {
			// How long this Up took: the timetable starts the next one
			// that much ahead of its bell.
			st.UpSeconds = append(slices.Clone(st.UpSeconds), r.now().Sub(*c.UpSince).Seconds())
			st.UpSeconds = st.UpSeconds[max(0, len(st.UpSeconds)-api.MaxUpSeconds):]
		}
		switch {
		case grading != nil && st.Run != nil && st.Run.ID == grading.RunID:
			st.Conditions = api.SetCondition(st.Conditions, gradedCondition(grading, r.now()))
		case gerr == nil && (st.Run == nil || st.Run.CompletedAt == nil || grading == nil):
			// A new run, or one without a grader: no grades to speak of.
			st.Conditions = removeCondition(st.Conditions, api.ConditionGraded)
		}
	})
	if err != nil && execErr == nil {
		return res, err
	}
	if !wasUp && class.Status.Phase == api.PhaseUp && class.UpSince != nil {
		r.metrics.upDuration.Observe(r.now().Sub(*class.UpSince).Seconds())
		if class.Bell != nil {
			late := r.now().Sub(*class.Bell)
			r.metrics.lateness.Observe(late.Seconds())
			log.Info("ready for its session", zap.Time("bell", *class.Bell), zap.Duration("lateness", late))
		}
	}
	if next := r.noteBell(class); !next.IsZero() {
		res.RequeueAfter = max(next.Sub(r.now()), time.Millisecond)
	}
	after := Input{Class: *class, Template: tmpl, Observed: obs, Now: r.now()}
	res.Converged = execErr == nil && (len(PlanFor(after)) == 0 || retryLeak)
	if retryLeak && (res.RequeueAfter == 0 || LeakRetry < res.RequeueAfter) {
		res.RequeueAfter = LeakRetry
	}
	if err == nil && class.Generation == planned.Generation {
		res.Version = class.Version
	}
	if exp := class.ExpiresAt(); exp != nil {
		if in := max(exp.Sub(r.now()), time.Millisecond); res.RequeueAfter == 0 || in < res.RequeueAfter {
			res.RequeueAfter = in
		}
	}
	if sch := class.Spec.Schedule; sch != nil {
		lead := timetable.Lead(sch, class.Status.UpSeconds, len(class.Spec.Students))
		if next := timetable.Next(sch, lead, r.now()); !next.IsZero() {
			if in := max(next.Sub(r.now()), time.Millisecond); res.RequeueAfter == 0 || in < res.RequeueAfter {
				res.RequeueAfter = in
			}
		}
	}
	if due := AutosaveDue(after); !due.IsZero() {
		if in := max(due.Sub(r.now()), time.Millisecond); res.RequeueAfter == 0 || in < res.RequeueAfter {
			res.RequeueAfter = in
		}
	}
	if end := ExtensionsEnd(after); !end.IsZero() {
		if in := max(end.Sub(r.now()), time.Millisecond); res.RequeueAfter == 0 || in < res.RequeueAfter {
			res.RequeueAfter = in
		}
	}
	if next := NextRestart(after); !next.IsZero() {
		if in := max(next.Sub(r.now()), time.Millisecond); res.RequeueAfter == 0 || in < res.RequeueAfter {
			res.RequeueAfter = in
		}
	}
	if in := readinessRecheck(obs); in > 0 && (res.RequeueAfter == 0 || in < res.RequeueAfter) {
		res.RequeueAfter = in
	}
	return res, execErr
}

// observe reads what Docker holds of the class; for an Up class it also
// reads how each stopped sandbox's last run went and how often in a row
// this controller restarted it, which the restart pause depends on.
func (r *Reconciler) observe(ctx context.Context, class *api.Class) (Observed, error) {
	// A Down class with a late hand-in asked needs Traefik for its sandbox.
	needsRoute := class.DesiredPhase == api.PhaseUp
	for s := range class.PerStudent {
		needsRoute = needsRoute || class.Late(s, r.now())
	}
	obs, err := observe(ctx, r.docker, class.ID, r.opts.TraefikContainer, needsRoute)
	if err != nil {
		return obs, err
	}
	obs.Workspaces = r.workspacesOf(class.ID)
	if pl, ok := r.docker.(Places); ok && len(class.Status.LeftBehind) > 0 {
		if obs.PlacesUp, err = pl.PlacesUp(ctx); err != nil {
			return obs, err
		}
	}
	r.markLeaked(&obs)
	r.refusedMu.Lock()
	for s, c := range obs.Containers {
		c.StartRefused = r.refused[c.Name]
		obs.Containers[s] = c
	}
	r.refusedMu.Unlock()
	if class.DesiredPhase != api.PhaseUp {
		r.ready.forget(class.ID)
		if err := observeVolumes(ctx, r.docker, class.ID, &obs); err != nil {
			return obs, err
		}
		r.restartMu.Lock()
		delete(r.restarts, class.ID) // the next Up makes new containers
		r.restartMu.Unlock()
		// Only the sandboxes kept past the Down are started again when
		// they stop; the others are being collected.
		in := Input{Class: *class, Observed: obs, Now: r.now()}
		if kept := keptPastDown(in); len(kept) > 0 {
			if err := stampStops(ctx, r.docker, obs, kept); err != nil {
				return obs, err
			}
		}
		return obs, nil
	}
	if err := stampStops(ctx, r.docker, obs, nil); err != nil {
		return obs, err
	}
	tmpl, _ := r.policy.Template(class.Spec.Template)
	r.checkReadiness(ctx, class.ID, tmpl, &obs)
	r.restartMu.Lock()
	defer r.restartMu.Unlock()
	counts := map[string]int{} // only containers that still exist are kept
	for s, c := range obs.Containers {
		n := r.restarts[class.ID][c.ID]
		if !c.FinishedAt.IsZero() && c.FinishedAt.Sub(c.StartedAt) >= StableRun {
			n = 0 // it ran long enough: the next stop is not a crash loop
		}
		c.Restarts = n
		obs.Containers[s] = c
		if n > 0 {
			counts[c.ID] = n
		}
	}
	if len(counts) > 0 {
		r.restarts[class.ID] = counts
	} else {
		delete(r.restarts, class.ID)
	}
	return obs, nil
}

// LeakRetry is how often the removal of a leaked class network is tried
// again (dockerx.ErrNetworkLeaked).
const LeakRetry = 30 * time.Second

// refusedAgain tells whether a pass failed only as known: its network was
// already known as leaked (known) and the daemon refused its removal again.
// Such a pass is not a failure; the removal is tried again every LeakRetry.
func refusedAgain(known bool, err error) bool {
	se := asStepError(err)
	return known && se != nil && se.Action.Kind == RemoveNetwork && errors.Is(err, dockerx.ErrNetworkLeaked)
}

// noteNetworkRemoval remembers a class network the daemon refuses to remove
// with no container on it (dockerx.ErrNetworkLeaked), and forgets it once
// removed. The count is exported as homeroom_leaked_networks.
func (r *Reconciler) noteNetworkRemoval(id, name string, err error) {
	r.leakedMu.Lock()
	defer r.leakedMu.Unlock()
	if r.leaked == nil {
		r.leaked = map[string]string{}
	}
	switch {
	case err == nil:
		delete(r.leaked, id)
	case errors.Is(err, dockerx.ErrNetworkLeaked):
		if _, known := r.leaked[id]; !known {
			r.log.Warn("the daemon refuses to remove a class network with no container on it; the class is Down without it, and the removal is retried (a daemon restart clears it)",
				zap.String("network", name), zap.Error(err))
		}
		r.leaked[id] = name
	}
	r.metrics.leakedNetworks.Set(float64(len(r.leaked)))
}

// LeakedNetworks is how many class networks the daemon refuses to remove.
func (r *Reconciler) LeakedNetworks() int {
	r.leakedMu.Lock()
	defer r.leakedMu.Unlock()
	return len(r.leaked)
}

// markLeaked marks the class network if the daemon refused to remove it.
func (r *Reconciler) markLeaked(obs *Observed) {
	if obs.Network == nil {
		return
	}
	r.leakedMu.Lock()
	defer r.leakedMu.Unlock()
	_, obs.Network.Leaked = r.leaked[obs.Network.ID]
}

// ErrTaskExists is how the daemon refuses to start a container for which
// containerd kept a task, e.g. one started while the daemon shut down
// ("...: task <id>: already exists"). Only a containerd restart clears it,
// so the sandbox is replaced instead, on the same work volumes.
const ErrTaskExists = "already exists"

// noteStart remembers whether the daemon refused a sandbox's start for a
// task containerd kept, which the next pass repairs by replacing it.
func (r *Reconciler) noteStart(classID, name string, err error) {
	refused := err != nil && strings.Contains(err.Error(), "task") && strings.Contains(err.Error(), ErrTaskExists)
	r.refusedMu.Lock()
	defer r.refusedMu.Unlock()
	if r.refused == nil {
		r.refused = map[string]bool{}
	}
	if refused {
		r.refused[name] = true
		r.log.Warn("the daemon refused to start a sandbox for a task containerd kept; it will be made again on its work volumes",
			zap.String("classId", classID), zap.String("container", name))
	} else {
		delete(r.refused, name)
	}
}

// countRestarts notes the stopped sandboxes the plan started again.
func (r *Reconciler) countRestarts(classID string, obs Observed, plan Plan) {
	r.restartMu.Lock()
	defer r.restartMu.Unlock()
	for _, a := range plan {
		c, ok := obs.Containers[a.Student]
		if a.Kind != StartContainer || !ok || c.FinishedAt.IsZero() {
			continue
		}
		if r.restarts[classID] == nil {
			r.restarts[classID] = map[string]int{}
		}
		r.restarts[classID][c.ID] = c.Restarts + 1
		r.metrics.restarts.Inc()
	}
}

func classify(err error) error {
	var te *TerminalError
	if errors.As(err, &te) {
		return err
	}
	if errors.Is(err, dockerx.ErrNotOurs) || cerrdefs.IsNotFound(err) && isImageError(err) {
		return &TerminalError{Err: err}
	}
	return err
}

func isImageError(err error) bool {
	var se *stepError
	return errors.As(err, &se) && se.Action.Kind == CreateContainer
}

func isNotFound(err error) bool { return cerrdefs.IsNotFound(err) }

// passID tells the log lines of one pass apart from the next one's.
func passID() string {
	b := make([]byte, 4)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// admit checks the class against its subject's quota, counting the classes
// this controller has already admitted (desired Up and Provisioning or Up),
// and records the admission in status before another class of the subject
// is looked at: the apiserver checks too, but two Ups racing can both pass
// it, and only this serialized check holds the quota.
func (r *Reconciler) admit(ctx context.Context, class *api.Class, plan Plan) error {
	r.admitMu.Lock()
	defer r.admitMu.Unlock()
	all, err := r.store.List(ctx)
	if err != nil {
		return fmt.Errorf("admission: %w", err)
	}
	admitted := func(c *api.Class) bool {
		return c.DesiredPhase == api.PhaseUp && (c.Status.Phase == api.PhaseProvisioning || c.Status.Phase == api.PhaseUp)
	}
	spec := class.Spec
	if class.DesiredPhase != api.PhaseUp {
		// A Down class makes only late hand-ins' sandboxes: those count.
		spec.Students = nil
		for _, a := range plan {
			if a.Kind == CreateContainer {
				spec.Students = append(spec.Students, a.Student)
			}
		}
	}
	if err := r.policy.Admit(spec, r.policy.UsageWhere(all, class.Spec.Subject, class.ID, admitted)); err != nil {
		return err
	}
	if class.DesiredPhase != api.PhaseUp {
		return nil
	}
	return r.writeStatus(ctx, class, func(st *api.ClassStatus) {
		if st.Phase != api.PhaseProvisioning && st.Phase != api.PhaseUp {
			st.Phase = api.PhaseProvisioning
		}
	})
}

// writeStatus applies mutate to the class's status and writes it if it
// changed. Only the controller writes status, so a conflict means the
// apiserver changed the desired state: re-read and apply again; the next
// pass acts on the new desire.
func (r *Reconciler) writeStatus(ctx context.Context, class *api.Class, mutate func(*api.ClassStatus)) error {
	for attempt := 0; ; attempt++ {
		st := cloneStatus(class.Status)
		mutate(&st)
		if statusEqual(st, class.Status) {
			return nil
		}
		updated, err := r.store.UpdateStatus(ctx, class.ID, class.Version, st)
		if err == nil {
			*class = *updated
			return nil
		}
		if !errors.Is(err, store.ErrConflict) || attempt >= 5 {
			return fmt.Errorf("write status: %w", err)
		}
		fresh, gerr := r.store.Get(ctx, class.ID)
		if gerr != nil {
			return fmt.Errorf("write status: %w (re-read: %v)", err, gerr)
		}
		*class = *fresh
	}
}
