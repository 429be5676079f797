package reconcile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
	"go.uber.org/zap"
)

// DefaultOrphanGrace is how long labelled resources of a class gone from the
// store are left alone before they are collected and removed: long enough
// for a store restored from backup, or a class deleted by mistake, to come
// back first.
const DefaultOrphanGrace = 5 * time.Minute

// reconcileOrphan collects and removes what Docker still holds of a class
// that is gone from the store, once the grace period has passed. Like any
// Down, it collects before it removes; unlabelled resources are never seen.
//
// The grace counts from the first sighting recorded in the store, not in
// memory, so that a controller restarting more often than the grace still
// reaps. Without that time nothing is reaped: the pass fails and is retried.
func (r *Reconciler) reconcileOrphan(ctx context.Context, classID string) (Result, error) {
	obs, err := observe(ctx, r.docker, classID, r.opts.TraefikContainer, false)
	if err == nil {
		err = observeVolumes(ctx, r.docker, classID, &obs)
	}
	r.markLeaked(&obs)
	if err != nil {
		return Result{}, fmt.Errorf("observe: %w", err)
	}
	if obs.Empty() {
		// Nothing left: a later orphan of the same id waits a grace of its own.
		if err := r.store.ForgetOrphan(ctx, classID); err != nil {
			return Result{}, fmt.Errorf("orphan grace: %w", err)
		}
		return Result{Converged: true}, nil
	}
	now := r.now()
	since, err := r.store.OrphanSince(ctx, classID, now)
	if err != nil {
		return Result{}, fmt.Errorf("orphan grace: %w", err)
	}
	if wait := r.opts.OrphanGrace - now.Sub(since); wait > 0 {
		r.log.Info("orphaned resources: waiting out the grace period", zap.String("classId", classID),
			zap.Time("since", since), zap.Duration("left", wait))
		return Result{Converged: true, RequeueAfter: wait}, nil
	}

	students := make([]string, 0, len(obs.Containers))
	template := ""
	var oldest int64
	for s, c := range obs.Containers {
		students = append(students, s)
		template = c.Template
		if oldest == 0 || c.Created < oldest {
			oldest = c.Created
		}
	}
	for _, s := range obs.Stranded() {
		students = append(students, s)
		if template == "" {
			template = obs.Volumes[s][0].Template
		}
	}
	sort.Strings(students)
	class := &api.Class{
		ID:           classID,
		Spec:         api.ClassSpec{Template: template, Students: students},
		DesiredPhase: api.PhaseDown,
	}
	if len(students) > 0 {
		// Only work to collect makes a run; a network alone (one the daemon
		// would not remove, say) has none to index.
		class.Status.Run = &api.DownRun{ID: orphanRunID(classID, oldest), StartedAt: r.now()}
	}
	tmpl, _ := r.policy.Template(template)
	plan := PlanFor(Input{Class: *class, Template: tmpl, Observed: obs})
	log := r.log.With(zap.String("classId", classID), zap.Bool("orphan", true))
	log.Info("collecting and removing the resources of a class gone from the store", zap.Stringers("steps", plan))
	ex := &executor{r: r, class: class, orphan: true, tmpl: tmpl, obs: obs, log: log}
	if err := ex.run(ctx, plan); err != nil {
		if refusedAgain(obs.Network != nil && obs.Network.Leaked, err) {
			// Retried every LeakRetry, as a stored class's network is,
			// rather than failed and retried by the controller after pauses
			// growing from half a second. Its sighting stays, so no new
			// grace is waited once the daemon lets it go.
			log.Info("the network is still refused by the daemon; retrying later", zap.Duration("in", LeakRetry))
			return Result{Converged: true, Plan: plan, RequeueAfter: LeakRetry}, nil
		}
		return Result{Plan: plan}, classify(err)
	}
	r.metrics.orphansReaped.Add(float64(len(students)))
	if err := r.store.ForgetOrphan(ctx, classID); err != nil {
		// Reaped all the same: the retry finds nothing and forgets again.
		return Result{Plan: plan}, fmt.Errorf("orphan grace: %w", err)
	}
	return Result{Converged: true, Plan: plan}, nil
}

// forgetOrphan drops any orphan sighting of a class that is in the store
// (it came back, or was never gone), so that if it is orphaned again its
// grace starts over. A failure only leaves the sighting for the next pass.
func (r *Reconciler) forgetOrphan(ctx context.Context, log *zap.Logger, classID string) {
	if err := r.store.ForgetOrphan(ctx, classID); err != nil {
		log.Warn("forget orphan sighting", zap.Error(err))
	}
}

// orphanRunID is the same on every attempt for the same containers, so that
// a collection retried after a crash writes the same keys; its form is that
// of any run id, so the artifacts API serves it.
func orphanRunID(classID string, created int64) string {
	sum := sha256.Sum256([]byte("orphan/" + classID))
	return time.Unix(created, 0).UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(sum[:3])
}
