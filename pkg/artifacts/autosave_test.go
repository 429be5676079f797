package artifacts_test

import (
	"strings"
	"testing"
	"time"

	"github.com/homeroom/homeroom/pkg/artifacts"
)

// Only an autosave is ever deleted, whole; a Down's run is refused.
func TestDeleteAutosave(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *artifacts.Store) {
		ctx := testContext(t)
		const class = "cs101-a"
		const auto, down = "20261130T090000Z-aaaaaa", "20261130T100000Z-bbbbbb"
		started := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
		for _, run := range []string{auto, down} {
			collectAs(t, s, class, run, "alice", nil, 0, file("workspace/a.txt", []byte("a")), file("workspace/d/b.txt", []byte("b")))
		}
		if _, err := s.WriteRunIndex(ctx, class, auto, []string{"alice"}, started, started, artifacts.RunInfo{Kind: artifacts.RunKindAutosave}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.WriteRunIndex(ctx, class, down, []string{"alice"}, started, started, artifacts.RunInfo{}); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteAutosave(ctx, class, down); err == nil || !strings.Contains(err.Error(), "not an autosave") {
			t.Errorf("deleting a Down's run: %v", err)
		}
		if err := s.DeleteAutosave(ctx, class, "20261130T110000Z-cccccc"); err == nil {
			t.Error("deleting a run without an index: no error")
		}
		if err := s.DeleteAutosave(ctx, class, auto); err != nil {
			t.Fatalf("delete autosave: %v", err)
		}
		left, err := s.ListKeys(ctx, "classes/"+class+"/")
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range left {
			if strings.Contains(k, auto) {
				t.Errorf("left of the autosave: %s", k)
			}
		}
		if len(left) < 5 {
			t.Errorf("the Down's run lost objects: %v", left)
		}
		runs, err := s.ListRuns(ctx, class)
		if err != nil || len(runs) != 1 || runs[0].RunID != down || runs[0].Kind != artifacts.RunKindDown {
			t.Errorf("runs after the delete: %+v, %v", runs, err)
		}
	})
}

// A student whose collection lost something the template's rules would
// have kept is incomplete in the run index, not collected.
func TestRunIndexTellsIncompleteStudents(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *artifacts.Store) {
		ctx := testContext(t)
		const class, run = "cs101-b", "20261130T120000Z-dddddd"
		m := collectAs(t, s, class, run, "mallory", nil, 0, file("workspace/ok.txt", []byte("ok")), file("/etc/evil", []byte("x")))
		if !m.Incomplete {
			t.Fatalf("manifest not incomplete: %+v", m.Skipped)
		}
		collectAs(t, s, class, run, "nina", nil, 0, file("workspace/ok.txt", []byte("ok")), special('2', "workspace/l", "ok.txt"))
		idx, err := s.WriteRunIndex(ctx, class, run, []string{"mallory", "nina", "olga"}, time.Now(), time.Now(), artifacts.RunInfo{})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"mallory": artifacts.OutcomeIncomplete, "nina": artifacts.OutcomeCollected, "olga": artifacts.OutcomeMissing}
		for _, st := range idx.Students {
			if st.Outcome != want[st.StudentID] {
				t.Errorf("%s: outcome %q, want %q", st.StudentID, st.Outcome, want[st.StudentID])
			}
		}
	})
}
