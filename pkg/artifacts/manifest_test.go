package artifacts_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
)

const (
	classID = "math-101"
	run1    = "20261129T134501Z-ab12"
	run2    = "20261130T090000Z-cd34"
)

// collect does what the controller does for one student: upload the tree and
// the log, write the manifest, verify all of it.
func collect(t *testing.T, s *artifacts.Store, class, runID, studentID string, log []byte, entries ...tarEntry) *artifacts.Manifest {
	t.Helper()
	ctx := testContext(t)
	m := &artifacts.Manifest{
		ClassID:   class,
		StudentID: studentID,
		RunID:     runID,
		Template:  "python",
		Image:     "homeroom/python:1",
		Container: artifacts.ContainerInfo{
			Name:  api.ContainerName(class, studentID),
			ID:    "0123456789ab",
			State: "running",
		},
		CollectedAt: time.Date(2026, 11, 29, 13, 46, 0, 0, time.UTC),
	}
	prefix := m.Prefix()
	files, skipped, err := s.UploadTree(ctx, prefix, "/workspace", bytes.NewReader(buildTar(t, entries...)), 0)
	if err != nil {
		t.Fatalf("UploadTree %s/%s: %v", runID, studentID, err)
	}
	m.Files, m.Skipped = files, skipped
	if log != nil {
		if m.Logs, err = s.UploadLogs(ctx, prefix, onlyReader{bytes.NewReader(log)}, -1); err != nil {
			t.Fatalf("UploadLogs: %v", err)
		}
	}
	obj, err := s.PutManifest(ctx, m)
	if err != nil {
		t.Fatalf("PutManifest: %v", err)
	}
	if obj.Key != artifacts.ManifestKey(prefix) {
		t.Errorf("manifest stored at %s, want %s", obj.Key, artifacts.ManifestKey(prefix))
	}
	if err := s.Verify(ctx, append(m.Objects(), obj)); err != nil {
		t.Fatalf("Verify %s/%s: %v", runID, studentID, err)
	}
	return m
}

func TestListClassAndLatestFile(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *artifacts.Store) {
		ctx := testContext(t)
		notesV1, notesV2 := []byte("draft\n"), []byte("final answer\n")
		aliceLog := []byte("started\nexited 0\n")

		m1 := collect(t, s, classID, run1, "alice", aliceLog,
			file("workspace/notes.txt", notesV1),
			file("workspace/gone.txt", []byte("deleted before run 2\n")),
			special(tar.TypeSymlink, "workspace/etc", "/etc"))
		collect(t, s, classID, run1, "bob", nil, file("workspace/notes.txt", []byte("bob's\n")))
		collect(t, s, classID, run2, "alice", []byte{}, file("workspace/notes.txt", notesV2))
		// Bob's run 2 collection failed after uploading a file: no manifest,
		// so it does not count.
		if _, _, err := s.UploadTree(ctx, api.ArtifactPrefix(classID, run2, "bob"), "/workspace",
			bytes.NewReader(buildTar(t, file("workspace/notes.txt", []byte("half\n")))), 0); err != nil {
			t.Fatal(err)
		}
		// Another class is not listed.
		collect(t, s, "physics-2", run1, "zed", nil, file("workspace/notes.txt", []byte("zed\n")))

		// The files' bytes; the log is not counted.
		if m1.SchemaVersion != artifacts.SchemaVersion || m1.TotalBytes != int64(len(notesV1)+21) {
			t.Errorf("manifest schema %d, total %d", m1.SchemaVersion, m1.TotalBytes)
		}
		got, err := s.GetManifest(ctx, classID, run1, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Files) != 2 || got.Logs == nil || len(got.Skipped) != 1 || got.Skipped[0].Reason != artifacts.ReasonSymlink {
			t.Errorf("manifest read back: %+v", got)
		}

		items, err := s.ListClass(ctx, classID)
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, it := range items {
			if !strings.HasPrefix(it.Key, api.ArtifactPrefix(classID, it.RunID, it.Student)+it.Path) {
				t.Errorf("item %+v: key does not match run, student and path", it)
			}
			lines = append(lines, it.RunID+" "+it.Student+" "+it.Path)
		}
		want := []string{
			run1 + " alice files/workspace/gone.txt",
			run1 + " alice files/workspace/notes.txt",
			run1 + " alice logs/container.log",
			run1 + " bob files/workspace/notes.txt",
			run2 + " alice files/workspace/notes.txt",
			run2 + " alice logs/container.log",
		}
		if !slices.Equal(lines, want) {
			t.Errorf("ListClass:\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
		}

		latest, err := s.LatestFile(ctx, classID, "alice", "files/workspace/notes.txt")
		if err != nil {
			t.Fatal(err)
		}
		if latest.RunID != run2 || latest.SHA256 != sha(notesV2) {
			t.Errorf("LatestFile(alice) = %+v, want run %s with the final notes", latest, run2)
		}
		if data := readObject(t, s, latest.Key); !bytes.Equal(data, notesV2) {
			t.Errorf("latest notes read back %q", data)
		}
		if l, err := s.LatestFile(ctx, classID, "alice", "logs/container.log"); err != nil || l.RunID != run2 || l.Size != 0 {
			t.Errorf("LatestFile(alice log) = %+v, %v; want run 2's empty log", l, err)
		}
		// Bob's latest run with a manifest is run 1.
		if b, err := s.LatestFile(ctx, classID, "bob", "files/workspace/notes.txt"); err != nil || b.RunID != run1 {
			t.Errorf("LatestFile(bob) = %+v, %v; want run %s", b, err, run1)
		}
		// Gone from the latest run: not found, even though run 1 had it.
		if _, err := s.LatestFile(ctx, classID, "alice", "files/workspace/gone.txt"); !errors.Is(err, artifacts.ErrNotFound) {
			t.Errorf("LatestFile of a file deleted before the latest run: %v, want ErrNotFound", err)
		}
		if _, err := s.LatestFile(ctx, classID, "nobody", "files/workspace/notes.txt"); !errors.Is(err, artifacts.ErrNotFound) {
			t.Errorf("LatestFile of an unknown student: %v, want ErrNotFound", err)
		}
		// The latest manifest of each: bob's run 2 has none, so run 1's.
		for student, want := range map[string]string{"alice": run2, "bob": run1} {
			if run, m, err := s.LatestManifest(ctx, classID, student, ""); err != nil || run != want || m.StudentID != student {
				t.Errorf("LatestManifest(%s) = %s, %+v, %v; want run %s's", student, run, m, err, want)
			}
		}
		if _, _, err := s.LatestManifest(ctx, classID, "nobody", ""); !errors.Is(err, artifacts.ErrNotFound) {
			t.Errorf("LatestManifest of an unknown student: %v, want ErrNotFound", err)
		}
		// Since run 2 began, bob was collected in none.
		if run, _, err := s.LatestManifest(ctx, classID, "alice", run2); err != nil || run != run2 {
			t.Errorf("alice's latest manifest since run 2: %s, %v", run, err)
		}
		if run, _, err := s.LatestManifest(ctx, classID, "bob", run2); !errors.Is(err, artifacts.ErrNotFound) {
			t.Errorf("bob's latest manifest since run 2: %s, %v; want ErrNotFound", run, err)
		}
		if items, err := s.ListClass(ctx, "no-such-class"); err != nil || len(items) != 0 {
			t.Errorf("ListClass of an unknown class = %v, %v; want nothing", items, err)
		}
		if _, err := s.ListClass(ctx, "../x"); err == nil {
			t.Errorf("ListClass with an invalid class id: no error")
		}
	})
}
