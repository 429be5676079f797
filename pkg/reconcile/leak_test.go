package reconcile_test

import (
	"strings"
	"testing"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/reconcile"
)

// A network the daemon refuses to remove with nothing on it ("has active
// endpoints", cleared only by a daemon restart) does not hold the class:
// it is Down with its run complete, says why, and the removal is retried
// until it succeeds.
func TestLeakedNetworkDoesNotHoldTheClass(t *testing.T) {
	e := newEnv(t)
	e.bringUp("alice", "bob")
	e.docker.mu.Lock()
	e.docker.lookupNetwork(netName).leaked = true
	e.docker.mu.Unlock()

	if _, err := e.pass(); err == nil || !strings.Contains(err.Error(), "active endpoints") {
		t.Fatalf("first Down pass: %v", err)
	}
	// Known as leaked now: the run completes without it, the network is
	// tried again last, and its refusal fails nothing: the class's passes
	// are not held back, and the removal is tried again every LeakRetry.
	res, err := e.pass()
	if err != nil || !res.Converged || res.RequeueAfter != reconcile.LeakRetry {
		t.Fatalf("a pass refused the known leaked network again: %v, converged %v, again in %s; want no error, converged, again in %s",
			err, res.Converged, res.RequeueAfter, reconcile.LeakRetry)
	}
	if _, ok := e.docker.network(netName); !ok {
		t.Fatal("a leaked network's removal succeeded")
	}
	c := e.class()
	if got, want := res.Plan.String(), "complete-run ("+c.Status.Run.ID+")\nremove-network ("+netName+")\n"; got != want {
		t.Errorf("plan:\n%s\nwant:\n%s", got, want)
	}
	if c.Status.Phase != api.PhaseDown || c.Status.Run == nil || c.Status.Run.CompletedAt == nil {
		t.Fatalf("phase %s, run %+v; want Down with the run complete", c.Status.Phase, c.Status.Run)
	}
	if cd := cond(c, api.ConditionNetworkLeaked); cd.Status != "True" || !strings.Contains(cd.Message, netName) || !strings.Contains(cd.Message, "restart of the Docker daemon") {
		t.Errorf("NetworkLeaked = %+v", cd)
	}
	for _, s := range []string{"alice", "bob"} {
		e.checkCollected(t, c, s)
	}
	if got := e.rec.LeakedNetworks(); got != 1 {
		t.Errorf("leaked networks = %d", got)
	}
	// Retries go on without a new run.
	if res, _ := e.pass(); res.Plan.String() != "remove-network ("+netName+")\n" {
		t.Errorf("retry plan:\n%s", res.Plan)
	}

	// The daemon is restarted: the removal goes through, the report ends.
	e.docker.mu.Lock()
	e.docker.lookupNetwork(netName).leaked = false
	e.docker.mu.Unlock()
	e.mustConverge()
	c = e.class()
	if _, ok := e.docker.network(netName); ok {
		t.Error("network still there")
	}
	if cd := cond(c, api.ConditionNetworkLeaked); cd.Type != "" {
		t.Errorf("NetworkLeaked after the removal: %+v", cd)
	}
	if got := e.rec.LeakedNetworks(); got != 0 {
		t.Errorf("leaked networks = %d after the removal", got)
	}
}

// The network of a class gone from the store, refused by the daemon with
// nothing on it, is retried every LeakRetry like a stored class's, not as a
// failed pass retried after pauses from half a second; and with no
// student's work to collect no run is written for it (its run id would
// date from 1970: no container gives it a time).
func TestLeakedNetworkOfAnOrphan(t *testing.T) {
	e := orphanEnv(t)
	e.docker.mu.Lock()
	e.docker.lookupNetwork(netName).leaked = true
	e.docker.mu.Unlock()
	if res, err := e.pass(); err != nil || res.RequeueAfter != reconcile.DefaultOrphanGrace {
		t.Fatalf("first sighting: %v, again in %s", err, res.RequeueAfter)
	}
	e.advance(reconcile.DefaultOrphanGrace)

	if res, err := e.pass(); err == nil || !strings.Contains(err.Error(), "active endpoints") {
		t.Fatalf("first removal: %v, plan:\n%s", err, res.Plan)
	}
	res, err := e.pass()
	if err != nil || !res.Converged || res.RequeueAfter != reconcile.LeakRetry {
		t.Fatalf("the known leaked network refused again: %v, converged %v, again in %s; want no error, converged, again in %s",
			err, res.Converged, res.RequeueAfter, reconcile.LeakRetry)
	}
	if got, want := res.Plan.String(), "remove-network ("+netName+")\n"; got != want {
		t.Errorf("plan:\n%s\nwant:\n%s", got, want)
	}
	e.art.mu.Lock()
	for key := range e.art.objects {
		t.Errorf("object written for an orphan with nothing to collect: %s", key)
	}
	e.art.mu.Unlock()
	if got := e.rec.LeakedNetworks(); got != 1 {
		t.Errorf("leaked networks = %d", got)
	}
	// Its sighting stays: once the daemon lets the network go, it is
	// removed at once, without a new grace.
	if _, ok := e.store.orphanSighting(classID); !ok {
		t.Error("the orphan's sighting was forgotten while its network stays")
	}
	e.docker.mu.Lock()
	e.docker.lookupNetwork(netName).leaked = false
	e.docker.mu.Unlock()
	if res, err := e.pass(); err != nil || !res.Converged {
		t.Fatalf("after the daemon's restart: %v, converged %v", err, res.Converged)
	}
	if _, ok := e.docker.network(netName); ok {
		t.Error("network still there")
	}
	if got := e.rec.LeakedNetworks(); got != 0 {
		t.Errorf("leaked networks = %d after the removal", got)
	}
}
