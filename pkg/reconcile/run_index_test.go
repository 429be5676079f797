package reconcile_test

import (
	"encoding/json"
	"testing"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
)

// A completed Down run's index records the class's subject, as its
// manifests do: reads of the run are authorized against it, whatever
// subject the class id has later.
func TestRunIndexRecordsTheSubject(t *testing.T) {
	e := newEnv(t)
	e.bringUp("alice")
	e.mustConverge()
	c := e.class()
	if c.Status.Phase != api.PhaseDown || c.Status.Run == nil || c.Status.Run.CompletedAt == nil {
		t.Fatalf("phase %s, run %+v: want a completed Down", c.Status.Phase, c.Status.Run)
	}
	raw, ok := e.art.object(artifacts.RunIndexKey(classID, c.Status.Run.ID))
	if !ok {
		t.Fatal("no index for the run")
	}
	var idx artifacts.RunIndex
	if err := json.Unmarshal(raw, &idx); err != nil {
		t.Fatal(err)
	}
	if idx.Subject != c.Spec.Subject || idx.Subject == "" {
		t.Errorf("index subject %q, want the class's, %q", idx.Subject, c.Spec.Subject)
	}
}
