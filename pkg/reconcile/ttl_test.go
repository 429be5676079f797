package reconcile_test

import (
	"testing"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
)

// The fake clock of newEnv starts at 2030-01-02 09:00 UTC and moves a second
// on every reading.
var clockStart = time.Date(2030, 1, 2, 9, 0, 0, 0, time.UTC)

func (e *env) setUp(upSince time.Time, ttl time.Duration) {
	e.store.edit(classID, func(c *api.Class) {
		c.DesiredPhase, c.UpSince = api.PhaseUp, &upSince
		c.Spec.TTLSeconds = int64(ttl / time.Second)
	})
}

func TestTTL(t *testing.T) {
	t.Run("an Up class within its TTL reports when it expires and asks to be woken then", func(t *testing.T) {
		e := newEnv(t)
		e.putClass(api.PhaseDown, "alice")
		e.setUp(clockStart, 24*time.Hour)
		res := e.mustConverge()
		c := e.class()
		want := clockStart.Add(24 * time.Hour)
		if c.Status.Phase != api.PhaseUp || c.Status.ExpiresAt == nil || !c.Status.ExpiresAt.Equal(want) {
			t.Fatalf("phase %s expiresAt %v, want Up and %v", c.Status.Phase, c.Status.ExpiresAt, want)
		}
		// The first autosave, ten minutes after the Up, comes before the
		// TTL's end: the class is woken for it first.
		if res.RequeueAfter <= 9*time.Minute || res.RequeueAfter > 10*time.Minute {
			t.Errorf("RequeueAfter = %v, want the time left until the first autosave", res.RequeueAfter)
		}
	})

	t.Run("an expired class is collected and taken down with reason TTLExpired", func(t *testing.T) {
		e := newEnv(t)
		e.putClass(api.PhaseDown, "alice", "bob")
		e.setUp(clockStart.Add(-2*time.Hour), 24*time.Hour)
		e.pass()         // Up, well within its TTL by this clock
		e.mustConverge() // and autosaved, its first autosave long due
		e.setUp(clockStart.Add(-48*time.Hour), 24*time.Hour)
		e.mustConverge()
		c := e.class()
		if c.DesiredPhase != api.PhaseDown || c.DownReason != api.ReasonTTLExpired {
			t.Fatalf("desired %s (%q), want Down (TTLExpired)", c.DesiredPhase, c.DownReason)
		}
		if c.Status.Phase != api.PhaseDown || c.Status.ObservedGeneration != c.Generation {
			t.Fatalf("phase %s observed %d of %d", c.Status.Phase, c.Status.ObservedGeneration, c.Generation)
		}
		if r := cond(c, api.ConditionReady); r.Reason != api.ReasonTTLExpired {
			t.Errorf("Ready = %+v, want reason TTLExpired", r)
		}
		for _, s := range []string{"alice", "bob"} {
			e.checkCollected(t, c, s)
		}
		if got := e.docker.classContainers(); len(got) != 0 {
			t.Errorf("containers left: %v", got)
		}
	})

	t.Run("a new Up after expiry gets a full TTL", func(t *testing.T) {
		e := newEnv(t)
		e.putClass(api.PhaseDown, "alice")
		e.setUp(clockStart.Add(-48*time.Hour), 24*time.Hour)
		e.mustConverge()
		if c := e.class(); c.DesiredPhase != api.PhaseDown {
			t.Fatalf("not expired: %s", c.DesiredPhase)
		}
		e.setUp(clockStart.Add(time.Hour), 24*time.Hour) // the teacher brings it Up again
		e.mustConverge()
		if c := e.class(); c.DesiredPhase != api.PhaseUp || c.Status.Phase != api.PhaseUp || c.DownReason != "" && c.DesiredPhase == api.PhaseDown {
			t.Fatalf("after a new Up: desired %s phase %s", c.DesiredPhase, c.Status.Phase)
		}
	})
}
