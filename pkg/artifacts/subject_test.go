package artifacts_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
)

// collectUnder stores one student's collection of a run, its manifest
// recording subject as the class's subject when collected.
func collectUnder(t *testing.T, s *artifacts.Store, subject, runID, studentID string, entries ...tarEntry) {
	t.Helper()
	ctx := testContext(t)
	m := &artifacts.Manifest{ClassID: classID, Subject: subject, StudentID: studentID, RunID: runID, Template: "python"}
	files, skipped, err := s.UploadTree(ctx, m.Prefix(), "/workspace", bytes.NewReader(buildTar(t, entries...)), 0)
	if err != nil {
		t.Fatal(err)
	}
	m.Files, m.Skipped = files, skipped
	if _, err := s.PutManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
}

// A run's subject is its index's once it has one, and until then the one
// its manifests agree on; runs list it; LatestFileIn looks at the runs it is
// given only.
func TestRunSubjects(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *artifacts.Store) {
		ctx := testContext(t)
		const (
			legacy    = "20261128T080000Z-000001" // manifests and index without a subject
			indexed   = "20261129T080000Z-000002" // cs, complete
			active    = "20261130T080000Z-000003" // cs, collecting: alice's manifest, bob's files only
			disagree  = "20261201T080000Z-000004" // collecting while the class changed subject
			reindexed = "20261202T080000Z-000005" // index under math, manifests under cs
		)
		started := time.Date(2026, 11, 28, 8, 0, 0, 0, time.UTC)
		notes := func(body string) tarEntry { return file("workspace/notes.txt", []byte(body)) }

		collectUnder(t, s, "", legacy, "alice", notes("legacy"))
		if _, err := s.WriteRunIndex(ctx, classID, legacy, []string{"alice"}, started, started, artifacts.RunInfo{Subject: ""}); err != nil {
			t.Fatal(err)
		}
		collectUnder(t, s, "cs", indexed, "alice", notes("cs"))
		if idx, err := s.WriteRunIndex(ctx, classID, indexed, []string{"alice"}, started, started, artifacts.RunInfo{Subject: "cs"}); err != nil || idx.Subject != "cs" {
			t.Fatalf("WriteRunIndex = %+v, %v; want subject cs", idx, err)
		}
		collectUnder(t, s, "cs", active, "alice", notes("active"))
		if _, _, err := s.UploadTree(ctx, api.ArtifactPrefix(classID, active, "bob"), "/workspace", bytes.NewReader(buildTar(t, notes("partial"))), 0); err != nil {
			t.Fatal(err)
		}
		collectUnder(t, s, "cs", disagree, "alice", notes("a"))
		collectUnder(t, s, "math", disagree, "bob", notes("b"))
		collectUnder(t, s, "cs", reindexed, "alice", notes("r"))
		if _, err := s.WriteRunIndex(ctx, classID, reindexed, []string{"alice"}, started, started, artifacts.RunInfo{Subject: "math"}); err != nil {
			t.Fatal(err)
		}

		want := map[string]string{legacy: "", indexed: "cs", active: "cs", disagree: "", reindexed: "math"}
		for run, subject := range want {
			if got, err := s.RunSubject(ctx, classID, run); err != nil || got != subject {
				t.Errorf("RunSubject(%s) = %q, %v; want %q", run, got, err, subject)
			}
		}
		if _, err := s.RunSubject(ctx, classID, "20270101T000000Z-000000"); !errors.Is(err, artifacts.ErrNotFound) {
			t.Errorf("RunSubject of an unknown run: %v, want ErrNotFound", err)
		}
		if _, err := s.RunSubject(ctx, classID, "../x"); err == nil || errors.Is(err, artifacts.ErrNotFound) {
			t.Errorf("RunSubject of an invalid run id: %v", err)
		}

		runs, err := s.ListRuns(ctx, classID)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range runs {
			if r.Subject != want[r.RunID] {
				t.Errorf("ListRuns: run %s with subject %q, want %q", r.RunID, r.Subject, want[r.RunID])
			}
		}
		if len(runs) != len(want) {
			t.Errorf("ListRuns = %+v", runs)
		}

		// Among the cs runs only, the latest with alice's manifest.
		item, err := s.LatestFileIn(ctx, classID, "alice", "files/workspace/notes.txt", []string{active, indexed})
		if err != nil || item.RunID != active {
			t.Errorf("LatestFileIn(cs runs) = %+v, %v; want run %s", item, err, active)
		}
		item, err = s.LatestFileIn(ctx, classID, "alice", "files/workspace/notes.txt", []string{legacy})
		if err != nil || item.RunID != legacy {
			t.Errorf("LatestFileIn(legacy) = %+v, %v", item, err)
		}
		if _, err := s.LatestFileIn(ctx, classID, "alice", "files/workspace/notes.txt", nil); !errors.Is(err, artifacts.ErrNotFound) {
			t.Errorf("LatestFileIn(no runs): %v, want ErrNotFound", err)
		}
		if _, err := s.LatestFileIn(ctx, classID, "bob", "files/workspace/notes.txt", []string{active}); !errors.Is(err, artifacts.ErrNotFound) {
			t.Errorf("LatestFileIn of a collection without a manifest: %v, want ErrNotFound", err)
		}
		latest, err := s.LatestFile(ctx, classID, "alice", "files/workspace/notes.txt")
		if err != nil || latest.RunID != reindexed {
			t.Errorf("LatestFile = %+v, %v; want run %s", latest, err, reindexed)
		}
	})
}
