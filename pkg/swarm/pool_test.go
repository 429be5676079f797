package swarm

import (
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
