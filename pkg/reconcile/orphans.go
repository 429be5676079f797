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
func (r *Reconciler) reconcileOrphan(ctx context.Context, classID string) (Result, error) {
	obs, err := observe(ctx, r.docker, classID, r.opts.TraefikContainer)
	if err == nil {
		err = observeVolumes(ctx, r.docker, classID, &obs)
	}
	if err != nil {
		return Result{}, fmt.Errorf("observe: %w", err)
	}
	r.orphanMu.Lock()
	if obs.Empty() {
		delete(r.orphanSince, classID)
		r.orphanMu.Unlock()
		return Result{Converged: true}, nil
	}
	since, ok := r.orphanSince[classID]
	if !ok {
		since = r.now()
		r.orphanSince[classID] = since
	}
	r.orphanMu.Unlock()
	if wait := r.opts.OrphanGrace - r.now().Sub(since); wait > 0 {
		r.log.Info("orphaned resources: waiting out the grace period", zap.String("classId", classID), zap.Duration("left", wait))
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
		Status:       api.ClassStatus{Run: &api.DownRun{ID: orphanRunID(classID, oldest), StartedAt: r.now()}},
	}
	tmpl, _ := r.policy.Template(template)
	plan := PlanFor(Input{Class: *class, Template: tmpl, Observed: obs})
	log := r.log.With(zap.String("classId", classID), zap.Bool("orphan", true))
	log.Info("collecting and removing the resources of a class gone from the store", zap.Stringers("steps", plan))
	ex := &executor{r: r, class: class, orphan: true, tmpl: tmpl, obs: obs, log: log}
	if err := ex.run(ctx, plan); err != nil {
		return Result{Plan: plan}, classify(err)
	}
	r.metrics.orphansReaped.Add(float64(len(students)))
	r.orphanMu.Lock()
	delete(r.orphanSince, classID)
	r.orphanMu.Unlock()
	return Result{Converged: true, Plan: plan}, nil
}

// orphanRunID is the same on every attempt for the same containers, so that
// a collection retried after a crash writes the same keys; its form is that
// of any run id, so the artifacts API serves it.
func orphanRunID(classID string, created int64) string {
	sum := sha256.Sum256([]byte("orphan/" + classID))
	return time.Unix(created, 0).UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(sum[:3])
}
