package reconcile_test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
)

func TestRosterChangeWhileUp(t *testing.T) {
	e := newEnv(t)
	e.putClass(api.PhaseUp, "alice", "bob")
	e.mustConverge()
	before := e.docker.classContainers()

	e.store.edit(classID, func(c *api.Class) { c.Spec.Students = []string{"alice", "carol"} })
	e.mustConverge()

	if got, want := e.docker.classContainers(), []string{cname("alice"), cname("carol")}; !slices.Equal(got, want) {
		t.Fatalf("containers %v, want %v (before: %v)", got, want, before)
	}
	c := e.class()
	if c.Status.Phase != api.PhaseUp || c.Status.ObservedGeneration != c.Generation {
		t.Fatalf("phase %s observed %d of %d", c.Status.Phase, c.Status.ObservedGeneration, c.Generation)
	}
	if c.Status.Run == nil || c.Status.Run.CompletedAt == nil {
		t.Fatalf("the leavers' run is not complete: %+v", c.Status.Run)
	}
	raw, ok := e.art.object(artifacts.RunIndexKey(classID, c.Status.Run.ID))
	if !ok {
		t.Fatal("no index for the leavers' run")
	}
	var idx artifacts.RunIndex
	json.Unmarshal(raw, &idx)
	if len(idx.Students) != 1 || idx.Students[0].StudentID != "bob" || idx.Students[0].Outcome != artifacts.OutcomeCollected {
		t.Errorf("index lists %+v, want only bob, collected", idx.Students)
	}
	// bob's work was collected and verified before his container went.
	prefix := api.ArtifactPrefix(classID, c.Status.Run.ID, "bob")
	if !e.art.isVerified(artifacts.ManifestKey(prefix)) {
		t.Errorf("bob's manifest was not verified before his container was removed")
	}
	if s := studentStatus(c, "bob"); s.ID != "" {
		t.Errorf("bob still listed among the class's students: %+v", s)
	}
}
