package artifacts_test

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
)

// collectAs stores one student's collection of a run the way the controller
// does: upload the tree with the template's cap, upload the log, Finish the
// manifest and store it with PutJSON (not PutManifest), verify everything.
func collectAs(t *testing.T, s *artifacts.Store, class, runID, studentID string, exitCode *int, maxBytes int64, entries ...tarEntry) *artifacts.Manifest {
	t.Helper()
	ctx := testContext(t)
	m := &artifacts.Manifest{
		ClassID: class, StudentID: studentID, RunID: runID,
		Template: "sandbox", Image: "sha256:0123",
		Container: artifacts.ContainerInfo{
			Name: api.ContainerName(class, studentID), ID: "abcdef012345", State: "exited", ExitCode: exitCode,
		},
		CollectedAt: time.Date(2026, 11, 29, 13, 51, 0, 0, time.UTC),
	}
	prefix := m.Prefix()
	files, skipped, err := s.UploadTree(ctx, prefix, "/workspace", bytes.NewReader(buildTar(t, entries...)), maxBytes)
	if err != nil {
		t.Fatalf("UploadTree %s/%s: %v", runID, studentID, err)
	}
	m.Files, m.Skipped = files, skipped
	if m.Logs, err = s.UploadLogs(ctx, prefix, strings.NewReader("log of "+studentID+"\n"), -1); err != nil {
		t.Fatal(err)
	}
	m.Finish()
	obj, err := s.PutJSON(ctx, artifacts.ManifestKey(prefix), m)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(ctx, append(m.Objects(), obj)); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestManifestFinish(t *testing.T) {
	m := &artifacts.Manifest{
		Logs:    &artifacts.File{Path: artifacts.LogsPath, Size: 1000},
		Skipped: []artifacts.Skipped{{Path: "workspace/l", Reason: artifacts.ReasonSymlink}},
	}
	m.Finish()
	if m.SchemaVersion != artifacts.SchemaVersion || m.TotalBytes != 0 || m.Truncated || m.Files == nil {
		t.Errorf("no files, a symlink skipped: %+v", m)
	}
	if b, _ := json.Marshal(m); !strings.Contains(string(b), `"files":[]`) || strings.Contains(string(b), `"truncated"`) {
		t.Errorf("encoded: %s", b)
	}

	m.Files = []artifacts.File{{Path: "workspace/a", Size: 10}, {Path: "workspace/b", Size: 5}}
	m.TotalBytes = 999 // whatever the collector counted, Finish counts the files
	m.Skipped = append(m.Skipped, artifacts.Skipped{Path: "workspace/big", Reason: artifacts.ReasonSizeCap})
	m.Finish()
	if m.TotalBytes != 15 || !m.Truncated {
		t.Errorf("two files and one over the cap: total %d (want 15, the log not counted), truncated %v", m.TotalBytes, m.Truncated)
	}
	if b, _ := json.Marshal(m); !strings.Contains(string(b), `"truncated":true`) {
		t.Errorf("encoded: %s", b)
	}

	// A collector may know of truncation the skipped list does not show;
	// Finish keeps it.
	m = &artifacts.Manifest{Truncated: true}
	m.Finish()
	if !m.Truncated {
		t.Errorf("Finish cleared Truncated")
	}
}

func TestWriteRunIndex(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *artifacts.Store) {
		ctx := testContext(t)
		three, zero := 3, 0
		started := time.Date(2026, 11, 29, 13, 50, 50, 0, time.FixedZone("CET", 3600))
		completed := started.Add(90 * time.Second)

		// alice hit the cap; stored through PutManifest.
		a, b := randomBytes(100, 11), randomBytes(200, 12)
		alice := &artifacts.Manifest{ClassID: classID, StudentID: "alice", RunID: run1,
			Container: artifacts.ContainerInfo{State: "exited", ExitCode: &three}}
		files, skipped, err := s.UploadTree(ctx, alice.Prefix(), "/workspace",
			bytes.NewReader(buildTar(t, file("workspace/a.bin", a), file("workspace/b.bin", b),
				special(tar.TypeSymlink, "workspace/l", "/etc"))), 150)
		if err != nil {
			t.Fatal(err)
		}
		alice.Files, alice.Skipped = files, skipped
		if _, err := s.PutManifest(ctx, alice); err != nil {
			t.Fatal(err)
		}
		if !alice.Truncated || alice.TotalBytes != 100 {
			t.Errorf("PutManifest over the cap: truncated %v, total %d", alice.Truncated, alice.TotalBytes)
		}
		// bob's collection did not finish: files but no manifest.
		if _, _, err := s.UploadTree(ctx, api.ArtifactPrefix(classID, run1, "bob"), "/workspace",
			bytes.NewReader(buildTar(t, file("workspace/x", []byte("x")))), 0); err != nil {
			t.Fatal(err)
		}
		// carol has nothing at all. dave left the roster while Up and was
		// collected anyway, as the controller does it.
		dave := collectAs(t, s, classID, run1, "dave", &zero, 0, file("workspace/d.txt", []byte("dave\n")))
		// erin's manifest predates Finish: no truncated flag, but a size-cap
		// entry.
		erinPrefix := api.ArtifactPrefix(classID, run1, "erin")
		if _, err := s.PutJSON(ctx, artifacts.ManifestKey(erinPrefix), artifacts.Manifest{
			SchemaVersion: 1, ClassID: classID, StudentID: "erin", RunID: run1, Files: []artifacts.File{},
			Container: artifacts.ContainerInfo{State: "running"},
			Skipped: []artifacts.Skipped{{Path: "workspace", Reason: artifacts.ReasonSizeCap},
				{Path: "workspace/l", Reason: artifacts.ReasonSymlink}, {Reason: "7 more skipped entries not listed"}},
		}); err != nil {
			t.Fatal(err)
		}
		// Another run is not looked at.
		collectAs(t, s, classID, run2, "zoe", nil, 0)

		roster := []string{"carol", "bob", "alice", "erin", "alice"}
		idx, err := s.WriteRunIndex(ctx, classID, run1, roster, started, completed, artifacts.RunInfo{})
		if err != nil {
			t.Fatal(err)
		}
		want := &artifacts.RunIndex{
			SchemaVersion: 1, ClassID: classID, RunID: run1,
			StartedAt: started.UTC(), CompletedAt: completed.UTC(),
			Students: []artifacts.RunStudent{
				{StudentID: "alice", Outcome: "collected", Manifest: artifacts.ManifestKey(alice.Prefix()),
					Files: 1, Bytes: 100, ExitCode: &three, State: "exited", Truncated: true, Skipped: 2},
				{StudentID: "bob", Outcome: "missing"},
				{StudentID: "carol", Outcome: "missing"},
				{StudentID: "dave", Outcome: "collected", Manifest: artifacts.ManifestKey(dave.Prefix()),
					Files: 1, Bytes: 5, ExitCode: &zero, State: "exited"},
				{StudentID: "erin", Outcome: "collected", Manifest: artifacts.ManifestKey(erinPrefix),
					State: "running", Truncated: true, Skipped: 9},
			},
		}
		wantJSON := mustJSON(t, want)
		if got := mustJSON(t, idx); got != wantJSON {
			t.Errorf("WriteRunIndex =\n%s\nwant\n%s", got, wantJSON)
		}
		stored, err := s.GetRunIndex(ctx, classID, run1)
		if err != nil {
			t.Fatal(err)
		}
		if got := mustJSON(t, stored); got != wantJSON {
			t.Errorf("GetRunIndex =\n%s\nwant\n%s", got, wantJSON)
		}
		// What graders read: the exact field names, a missing student without
		// a manifest or exit code.
		var raw struct {
			Students []map[string]any `json:"students"`
		}
		if err := s.GetJSON(ctx, artifacts.RunIndexKey(classID, run1), &raw); err != nil {
			t.Fatal(err)
		}
		if got := raw.Students[1]; len(got) != 5 || got["outcome"] != "missing" || got["studentId"] != "bob" {
			t.Errorf("missing student encoded as %v", got)
		}
		if got := raw.Students[0]; got["exitCode"] != float64(3) || got["truncated"] != true || got["manifest"] == nil {
			t.Errorf("collected student encoded as %v", got)
		}

		// Again, once bob's collection finished: the same key, updated.
		collectAs(t, s, classID, run1, "bob", nil, 0, file("workspace/x", []byte("x")))
		idx, err = s.WriteRunIndex(ctx, classID, run1, roster, started, completed, artifacts.RunInfo{})
		if err != nil {
			t.Fatal(err)
		}
		if idx.Students[1].Outcome != "collected" {
			t.Errorf("bob after his collection finished: %+v", idx.Students[1])
		}
		keys, err := s.ListKeys(ctx, "classes/"+classID+"/")
		if err != nil {
			t.Fatal(err)
		}
		var indexes []string
		for _, k := range keys {
			if strings.HasSuffix(k, "/index.json") {
				indexes = append(indexes, k)
			}
		}
		if want := []string{"classes/" + classID + "/" + run1 + "/index.json"}; !slices.Equal(indexes, want) {
			t.Errorf("index objects %v, want %v", indexes, want)
		}
		// The index is not a student to ListClass.
		items, err := s.ListClass(ctx, classID)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range items {
			if it.Student == "index.json" || strings.HasSuffix(it.Key, "index.json") {
				t.Errorf("ListClass lists the index: %+v", it)
			}
		}

		if _, err := s.GetRunIndex(ctx, classID, run2); !errors.Is(err, artifacts.ErrNotFound) {
			t.Errorf("GetRunIndex of a run without index: %v, want ErrNotFound", err)
		}
		if _, err := s.GetRunIndex(ctx, "no-such-class", run1); !errors.Is(err, artifacts.ErrNotFound) {
			t.Errorf("GetRunIndex of an unknown class: %v, want ErrNotFound", err)
		}
		for _, bad := range []struct{ class, run, student string }{
			{"../x", run1, "alice"}, {classID, "../x", "alice"}, {classID, "a/b", "alice"}, {classID, run1, "Alice"},
		} {
			if _, err := s.WriteRunIndex(ctx, bad.class, bad.run, []string{bad.student}, started, completed, artifacts.RunInfo{}); err == nil {
				t.Errorf("WriteRunIndex(%q, %q, [%q]): no error", bad.class, bad.run, bad.student)
			}
		}
	})
}

func TestListRunsRunFileAndListRun(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *artifacts.Store) {
		ctx := testContext(t)
		notesV1, notesV2 := []byte("draft\n"), []byte("final\n")
		// Written newest first: the listing orders by run id, not by time of
		// writing.
		collectAs(t, s, classID, run2, "alice", nil, 0, file("workspace/notes.txt", notesV2))
		collectAs(t, s, classID, run1, "alice", nil, 0, file("workspace/notes.txt", notesV1), file("workspace/old.txt", []byte("old\n")))
		collectAs(t, s, classID, run1, "bob", nil, 0, file("workspace/notes.txt", []byte("bob\n")))
		// In run 2, bob's collection is under way.
		if _, err := s.UploadLogs(ctx, api.ArtifactPrefix(classID, run2, "bob"), strings.NewReader("partial\n"), -1); err != nil {
			t.Fatal(err)
		}
		started := time.Date(2026, 11, 29, 13, 45, 1, 0, time.UTC)
		completed := started.Add(time.Minute)
		if _, err := s.WriteRunIndex(ctx, classID, run1, []string{"alice", "bob", "carol"}, started, completed, artifacts.RunInfo{}); err != nil {
			t.Fatal(err)
		}

		runs, err := s.ListRuns(ctx, classID)
		if err != nil {
			t.Fatal(err)
		}
		want := []artifacts.RunSummary{
			{RunID: run1, Kind: artifacts.RunKindDown, Students: 3, Complete: true, CompletedAt: &completed},
			{RunID: run2, Students: 2},
		}
		if got, w := mustJSON(t, runs), mustJSON(t, want); got != w {
			t.Errorf("ListRuns =\n%s\nwant\n%s", got, w)
		}
		if runs, err := s.ListRuns(ctx, "no-such-class"); err != nil || len(runs) != 0 {
			t.Errorf("ListRuns of an unknown class = %v, %v; want none", runs, err)
		}
		if _, err := s.ListRuns(ctx, "../x"); err == nil {
			t.Errorf("ListRuns with an invalid class id: no error")
		}

		// The older run's copy, which LatestFile does not give.
		old, err := s.RunFile(ctx, classID, run1, "alice", "files/workspace/notes.txt")
		if err != nil {
			t.Fatal(err)
		}
		if old.RunID != run1 || old.SHA256 != sha(notesV1) || !bytes.Equal(readObject(t, s, old.Key), notesV1) {
			t.Errorf("RunFile(run 1) = %+v", old)
		}
		if latest, err := s.LatestFile(ctx, classID, "alice", "files/workspace/notes.txt"); err != nil || latest.SHA256 != sha(notesV2) {
			t.Errorf("LatestFile = %+v, %v; want run 2's notes", latest, err)
		}
		if it, err := s.RunFile(ctx, classID, run1, "alice", "files/workspace/old.txt"); err != nil || it.RunID != run1 {
			t.Errorf("RunFile of a file only run 1 has = %+v, %v", it, err)
		}
		if it, err := s.RunFile(ctx, classID, run2, "alice", artifacts.LogsPath); err != nil || it.Key != artifacts.LogsKey(api.ArtifactPrefix(classID, run2, "alice")) {
			t.Errorf("RunFile of run 2's log = %+v, %v", it, err)
		}
		for _, tc := range []struct{ run, student, path string }{
			{run2, "alice", "files/workspace/old.txt"}, // not in that run
			{run2, "bob", artifacts.LogsPath},          // no manifest in that run
			{"20270101T000000Z-000000", "alice", "files/workspace/notes.txt"},
			{run1, "carol", artifacts.LogsPath},
		} {
			if _, err := s.RunFile(ctx, classID, tc.run, tc.student, tc.path); !errors.Is(err, artifacts.ErrNotFound) {
				t.Errorf("RunFile(%s, %s, %s): %v, want ErrNotFound", tc.run, tc.student, tc.path, err)
			}
		}
		if _, err := s.RunFile(ctx, classID, "..", "alice", artifacts.LogsPath); err == nil || errors.Is(err, artifacts.ErrNotFound) {
			t.Errorf("RunFile with run id \"..\": %v, want a validation error", err)
		}

		items, err := s.ListRun(ctx, classID, run1)
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, it := range items {
			lines = append(lines, it.RunID+" "+it.Student+" "+it.Path)
		}
		wantLines := []string{
			run1 + " alice files/workspace/notes.txt",
			run1 + " alice files/workspace/old.txt",
			run1 + " alice logs/container.log",
			run1 + " bob files/workspace/notes.txt",
			run1 + " bob logs/container.log",
		}
		if !slices.Equal(lines, wantLines) {
			t.Errorf("ListRun(run 1):\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(wantLines, "\n"))
		}
		// Bob's unfinished run 2 collection is not listed.
		if items, err := s.ListRun(ctx, classID, run2); err != nil || len(items) != 2 || items[0].Student != "alice" || items[1].Student != "alice" {
			t.Errorf("ListRun(run 2) = %+v, %v; want alice's two items", items, err)
		}
		if _, err := s.ListRun(ctx, classID, "20270101T000000Z-000000"); !errors.Is(err, artifacts.ErrNotFound) {
			t.Errorf("ListRun of an unknown run: %v, want ErrNotFound", err)
		}
	})
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
