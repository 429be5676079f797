package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/store"
)

// TestATeachersNewerActionWinsOverTheSchedule: the controller's scheduled
// change applies only to the class as it decided on; a teacher's Up or Down
// or a new schedule in between refuses it.
func TestATeachersNewerActionWinsOverTheSchedule(t *testing.T) {
	s := testenv.Store(t)
	ctx := context.Background()
	spec := api.ClassSpec{Subject: "cs", Template: "sandbox", Students: []string{"a"},
		Schedule: &api.Schedule{Timezone: "UTC", Weekly: []api.WeeklySession{{Days: []string{"mon"}, Start: "09:00", End: "10:00"}}}}
	c, _, err := s.PutSpec(ctx, "c1", spec)
	if err != nil {
		t.Fatal(err)
	}
	if c.DesiredAt != nil || c.ScheduledSince == nil {
		t.Fatalf("a new class: desiredAt %v scheduledSince %v, want none and one", c.DesiredAt, c.ScheduledSince)
	}
	bell := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	up, err := s.ApplySchedule(ctx, "c1", api.PhaseUp, bell.Add(-5*time.Minute), bell, c.DesiredAt, c.ScheduledSince)
	if err != nil {
		t.Fatal(err)
	}
	if up.DesiredPhase != api.PhaseUp || up.Bell == nil || !up.Bell.Equal(bell) || up.UpSince == nil || up.Generation != c.Generation+1 ||
		!up.DesiredAt.Equal(bell.Add(-5*time.Minute)) {
		t.Fatalf("after the scheduled Up: %+v", up)
	}
	entries, _, err := s.ListAudit(ctx, store.AuditQuery{ClassID: "c1", Action: api.AuditClassSchedule})
	if err != nil || len(entries) != 1 || entries[0].Actor.Name != api.ControllerActor {
		t.Fatalf("audit: %+v %v, want one class.schedule by the controller", entries, err)
	}
	// The teacher takes it Down; the schedule's decision on the Up class
	// read before is refused.
	down, err := s.SetDesiredPhase(ctx, "c1", api.PhaseDown)
	if err != nil {
		t.Fatal(err)
	}
	if down.Bell != nil || !down.DesiredAt.After(*up.DesiredAt) {
		t.Errorf("the teacher's Down: bell %v desiredAt %v", down.Bell, down.DesiredAt)
	}
	if _, err := s.ApplySchedule(ctx, "c1", api.PhaseDown, bell.Add(time.Hour), time.Time{}, up.DesiredAt, up.ScheduledSince); !errors.Is(err, store.ErrNotScheduled) {
		t.Errorf("a decision on a stale class: %v, want ErrNotScheduled", err)
	}
	// A new schedule: a decision on the old one is refused too.
	spec.Schedule.Weekly[0].End = "10:30"
	changed, _, err := s.PutSpec(ctx, "c1", spec)
	if err != nil {
		t.Fatal(err)
	}
	if !changed.ScheduledSince.After(*c.ScheduledSince) {
		t.Errorf("scheduledSince %v after a new schedule, was %v", changed.ScheduledSince, c.ScheduledSince)
	}
	if _, err := s.ApplySchedule(ctx, "c1", api.PhaseUp, bell, bell, down.DesiredAt, down.ScheduledSince); !errors.Is(err, store.ErrNotScheduled) {
		t.Errorf("a decision on the old schedule: %v, want ErrNotScheduled", err)
	}
	// A roster change keeps the schedule's time.
	spec.Students = []string{"a", "b"}
	same, _, err := s.PutSpec(ctx, "c1", spec)
	if err != nil {
		t.Fatal(err)
	}
	if !same.ScheduledSince.Equal(*changed.ScheduledSince) {
		t.Errorf("a roster change moved scheduledSince: %v -> %v", changed.ScheduledSince, same.ScheduledSince)
	}
}
