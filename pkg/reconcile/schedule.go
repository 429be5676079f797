package reconcile

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/timetable"
)

// followSchedule sets the desired phase the class's timetable asks for now,
// if its latest event is newer than the last change of desired phase
// (package timetable decides), and returns the class as it then is.
func (r *Reconciler) followSchedule(ctx context.Context, log *zap.Logger, class *api.Class) (*api.Class, error) {
	sch := class.Spec.Schedule
	if sch == nil {
		return class, nil
	}
	lead := timetable.Lead(sch, class.Status.UpSeconds, len(class.Spec.Students))
	ev, ok := timetable.Decide(sch, lead, deref(class.DesiredAt), deref(class.ScheduledSince), deref(class.ScheduledBell), r.now())
	if !ok {
		return class, nil
	}
	applied, err := r.store.ApplySchedule(ctx, class.ID, ev.Phase, ev.At, ev.Bell, class.DesiredAt, class.ScheduledSince)
	if err != nil {
		return nil, err
	}
	if applied.DesiredPhase != class.DesiredPhase {
		r.metrics.scheduled.WithLabelValues(string(ev.Phase)).Inc()
		fields := []zap.Field{zap.String("phase", string(ev.Phase)), zap.Time("event", ev.At), zap.Duration("lead", lead)}
		if !ev.Bell.IsZero() {
			fields = append(fields, zap.Time("bell", ev.Bell))
		}
		log.Info("the timetable changes the desired phase", fields...)
	}
	return applied, nil
}

// noteBell counts the class as late for its bell while its session has
// started and it is not ready, and returns when to look again: at the bell
// if it has not rung yet.
func (r *Reconciler) noteBell(class *api.Class) time.Time {
	waiting := class.DesiredPhase == api.PhaseUp && class.Bell != nil && class.Status.Phase != api.PhaseUp
	late := waiting && !r.now().Before(*class.Bell)
	r.bellMu.Lock()
	defer r.bellMu.Unlock()
	if r.late == nil {
		r.late = map[string]bool{}
	}
	if late {
		r.late[class.ID] = true
	} else {
		delete(r.late, class.ID)
	}
	r.metrics.lateForBell.Set(float64(len(r.late)))
	if waiting && !late {
		return *class.Bell
	}
	return time.Time{}
}

// forgetBell stops counting a class that is gone.
func (r *Reconciler) forgetBell(classID string) {
	r.bellMu.Lock()
	defer r.bellMu.Unlock()
	delete(r.late, classID)
	r.metrics.lateForBell.Set(float64(len(r.late)))
}

func deref(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}
