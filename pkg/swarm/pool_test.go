package swarm

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/docker/docker/api/types/network"
)

// A pool network is free only where no service names it and Traefik is on
// it; one a sandbox used (Traefik was taken off it first) or a crash left
// unfinished is removed; one taken and not yet named by its service is
// neither, however the pool is read.
func TestPoolRoundFreesOnlyNetworksNeverUsed(t *testing.T) {
	nets := []network.Summary{
		{ID: "id-free", Name: "pool-free"},
		{ID: "id-used", Name: "pool-used"},         // a sandbox's, by id
		{ID: "id-removed", Name: "pool-removed"},   // its sandbox went, Traefik first
		{ID: "id-half", Name: "pool-half"},         // made, Traefik never joined
		{ID: "id-taken", Name: "pool-taken"},       // taken, its service not made yet
		{ID: "id-usedname", Name: "pool-usedname"}, // a sandbox's, by name, Traefik gone
		{ID: "id-new", Name: "pool-new"},           // free, but not in this process's list
	}
	named := map[string]bool{"id-used": true, "pool-usedname": true}
	joined := map[string]bool{"pool-free": true, "id-used": true, "id-taken": true, "pool-new": true}
	taken := map[string]time.Time{"pool-taken": time.Now()}

	for _, tc := range []struct {
		desc      string
		loaded    bool
		free      []string
		wantFree  []string
		wantSpoil []string
	}{
		{"read anew", false, nil, []string{"pool-free", "pool-new"}, []string{"pool-half", "pool-removed"}},
		{"kept in memory", true, []string{"pool-free", "pool-gone"}, []string{"pool-free"}, []string{"pool-half", "pool-removed"}},
		{"a used one listed free is not kept", true, []string{"pool-used", "pool-removed", "pool-taken"}, nil, []string{"pool-half", "pool-removed"}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			free, spoiled := poolRound(nets, named, joined, tc.loaded, tc.free, taken)
			if !slices.Equal(free, tc.wantFree) || !slices.Equal(spoiled, tc.wantSpoil) {
				t.Errorf("free %v, removed %v; want %v, %v", free, spoiled, tc.wantFree, tc.wantSpoil)
			}
		})
	}
}

// A placeholder stays while its network is free or about to be used, and
// goes once the sandbox on it ran, or with the network; a free network
// warmed on a ready node gets one where it lacks it.
func TestWarmRoundKeepsPlaceholdersUntilTheirSandboxRan(t *testing.T) {
	nets := []network.Summary{
		{ID: "id-free", Name: "pool-free"},       // warm on node a, runs
		{ID: "id-starting", Name: "pool-start"},  // free, its placeholder not running yet
		{ID: "id-cold", Name: "pool-cold"},       // free, no placeholder
		{ID: "id-away", Name: "pool-away"},       // free, warmed on a node that is down
		{ID: "id-taken", Name: "pool-taken"},     // taken, its service not made yet
		{ID: "id-made", Name: "pool-made"},       // named by a sandbox not yet run
		{ID: "id-ran", Name: "pool-ran"},         // named by a sandbox that ran
		{ID: "id-spoiled", Name: "pool-spoiled"}, // left behind
		{ID: "id-old", Name: "pool-old"},         // made before placeholders: no node
	}
	free := []string{"pool-away", "pool-cold", "pool-free", "pool-old", "pool-start"}
	taken := map[string]time.Time{"pool-taken": time.Now()}
	named := map[string]bool{"id-made": true, "id-ran": true}
	settled := map[string]bool{"id-made": false, "id-ran": true}
	nodeOf := map[string]string{"pool-free": "a", "pool-start": "b", "pool-cold": "c", "pool-away": "d",
		"pool-taken": "a", "pool-made": "b", "pool-ran": "c", "pool-spoiled": "a"}
	ready := []string{"a", "b", "c"}
	warms := []warmService{
		{Name: "w-free", Network: "pool-free", Running: true},
		{Name: "w-start", Network: "pool-start"},
		{Name: "w-away", Network: "pool-away"},
		{Name: "w-taken", Network: "pool-taken", Running: true},
		{Name: "w-made", Network: "pool-made", Running: true},
		{Name: "w-ran", Network: "pool-ran", Running: true},
		{Name: "w-spoiled", Network: "pool-spoiled", Running: true},
		{Name: "w-gone", Network: "pool-gone", Running: true},
	}
	w := warmRound(nets, free, taken, named, settled, nodeOf, ready, warms)
	if want := []string{"w-gone", "w-ran", "w-spoiled"}; !slices.Equal(w.remove, want) {
		t.Errorf("removes %v, want %v", w.remove, want)
	}
	if want := []string{"pool-cold"}; !slices.Equal(w.make, want) {
		t.Errorf("makes placeholders for %v, want %v", w.make, want)
	}
	if len(w.running) != 1 || !w.running["pool-free"] || !w.warming {
		t.Errorf("running %v, warming %v; want pool-free's alone, and still warming", w.running, w.warming)
	}
	// Once every free network on a ready node has its placeholder
	// running, the pool is warm; one warmed on a node that is away, or
	// made before placeholders, does not hold it back.
	warms = append(warms[:1], warmService{Name: "w-start", Network: "pool-start", Running: true}, warmService{Name: "w-cold", Network: "pool-cold", Running: true})
	if w := warmRound(nets, free, taken, named, settled, nodeOf, ready, warms); len(w.running) != 3 || w.warming || len(w.make) != 0 {
		t.Errorf("all warm: running %v, warming %v, makes %v; want 3, false, none", w.running, w.warming, w.make)
	}
}

// A sandbox takes a network warmed on its own node while the pool has
// one; else one warmed nowhere it could be used, and one warmed on another
// node rather than none.
func TestTakeNetworkPrefersOneWarmOnTheNode(t *testing.T) {
	r := &Runtime{}
	r.pool = netPool{size: 5, loaded: true, free: []string{"n-a1", "n-b1", "n-a2", "n-old", "n-away"},
		nodeOf: map[string]string{"n-a1": "a", "n-a2": "a", "n-b1": "b", "n-away": "d"}, ready: []string{"a", "b"},
		running: map[string]bool{"n-a1": true, "n-b1": true}}
	var got []string
	var warm []int // free networks warm after each take
	for _, node := range []string{"b", "a", "b", "b", "a", "a"} {
		n, ok := r.takeNetwork(node)
		if !ok {
			n = "none"
		}
		got = append(got, n)
		warm = append(warm, r.PoolWarm())
	}
	if want := []int{1, 0, 0, 0, 0, 0}; !slices.Equal(warm, want) {
		t.Errorf("warm after each take: %v, want %v", warm, want)
	}
	if want := []string{"n-b1", "n-a1", "n-old", "n-away", "n-a2", "none"}; !slices.Equal(got, want) {
		t.Errorf("took %v, want %v", got, want)
	}
}

// The pool is not made up while a Down collects (a job or a staging object
// in use), nor in the few seconds after: the manager is busy with it. The
// runtime here has no daemon, so a round that ran would fail.
func TestPoolWaitsWhileADownCollects(t *testing.T) {
	r := &Runtime{opts: Options{Router: "traefik"}, inUse: map[string]bool{}, pool: netPool{size: 2}}
	done := r.use("homeroom-job-collect-0123")
	if made, err := r.KeepNetworkPool(context.Background()); made != 0 || err != nil {
		t.Fatalf("a round while a job runs: made %d, %v", made, err)
	}
	done()
	if made, err := r.KeepNetworkPool(context.Background()); made != 0 || err != nil {
		t.Fatalf("a round just after the job: made %d, %v", made, err)
	}
	r.mu.Lock()
	due := !r.busy(time.Now().Add(poolQuiet))
	r.mu.Unlock()
	if !due {
		t.Error("the pool still waits once the Down has been quiet for poolQuiet")
	}
}
