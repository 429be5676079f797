package artifacts_test

import (
	"archive/tar"
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
)

type tarEntry struct {
	hdr  tar.Header
	body []byte
}

func file(name string, body []byte) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(body)), Mode: 0o644}, body: body}
}

func dir(name string) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755}}
}

func special(typ byte, name, link string) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: typ, Name: name, Linkname: link, Mode: 0o644}}
}

// buildTar writes entries as Docker's archive API would stream them.
func buildTar(t *testing.T, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		h.ModTime = time.Date(2026, 11, 29, 13, 45, 0, 0, time.UTC)
		h.Format = tar.FormatPAX
		if err := w.WriteHeader(&h); err != nil {
			t.Fatalf("tar header %q: %v", h.Name, err)
		}
		if _, err := w.Write(e.body); err != nil {
			t.Fatalf("tar body %q: %v", h.Name, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestUploadTree(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *artifacts.Store) {
		ctx := testContext(t)
		prefix := api.ArtifactPrefix("math-101", "20261129T134501Z-ab12", "alice")
		big := randomBytes(testPartSize+777, 5)
		archive := buildTar(t,
			dir("workspace/"),
			file("workspace/notes.txt", []byte("my notes\n")),
			dir("workspace/src/"),
			file("workspace/src/main.go", []byte("package main\n")),
			dir("workspace/empty/"),
			file("workspace/empty.txt", nil),
			file("workspace/big.bin", big),
			file("workspace/sub dir/ünïcode.txt", []byte("utf-8 names\n")),
			special(tar.TypeSymlink, "workspace/etc", "/etc"),
			special(tar.TypeLink, "workspace/hard", "workspace/notes.txt"),
			special(tar.TypeFifo, "workspace/fifo", ""),
			special(tar.TypeChar, "workspace/tty", ""),
			file("../escape", []byte("escape\n")),
			file("/etc/passwd", []byte("root:x:0:0\n")),
			file("workspace/../../x", []byte("x\n")),
			file("other/file.txt", []byte("outside\n")),
			file("workspaceevil/file.txt", []byte("outside too\n")),
		)

		wantFiles := []artifacts.File{
			{Path: "workspace/notes.txt", Size: 9, SHA256: sha([]byte("my notes\n"))},
			{Path: "workspace/src/main.go", Size: 13, SHA256: sha([]byte("package main\n"))},
			{Path: "workspace/empty.txt", Size: 0, SHA256: sha(nil)},
			{Path: "workspace/big.bin", Size: int64(len(big)), SHA256: sha(big)},
			{Path: "workspace/sub dir/ünïcode.txt", Size: 12, SHA256: sha([]byte("utf-8 names\n"))},
		}
		for i := range wantFiles {
			wantFiles[i].Key = prefix + "files/" + wantFiles[i].Path
		}
		wantSkipped := []artifacts.Skipped{
			{Path: "workspace/etc", Reason: artifacts.ReasonSymlink},
			{Path: "workspace/hard", Reason: artifacts.ReasonHardlink},
			{Path: "workspace/fifo", Reason: artifacts.ReasonFIFO},
			{Path: "workspace/tty", Reason: artifacts.ReasonDevice},
			{Path: "../escape", Reason: artifacts.ReasonParent},
			{Path: "/etc/passwd", Reason: artifacts.ReasonAbsolute},
			{Path: "workspace/../../x", Reason: artifacts.ReasonParent},
			{Path: "other/file.txt", Reason: artifacts.ReasonOutside},
			{Path: "workspaceevil/file.txt", Reason: artifacts.ReasonOutside},
		}
		var wantKeys []string
		for _, f := range wantFiles {
			wantKeys = append(wantKeys, f.Key)
		}
		slices.Sort(wantKeys)

		// The second upload is a retried collection: same keys, same content.
		for attempt := 1; attempt <= 2; attempt++ {
			files, skipped, err := s.UploadTree(ctx, prefix, "/workspace", onlyReader{bytes.NewReader(archive)}, 0)
			if err != nil {
				t.Fatalf("attempt %d: UploadTree: %v", attempt, err)
			}
			if !slices.Equal(files, wantFiles) {
				t.Errorf("attempt %d: files\n got %+v\nwant %+v", attempt, files, wantFiles)
			}
			if !slices.Equal(skipped, wantSkipped) {
				t.Errorf("attempt %d: skipped\n got %+v\nwant %+v", attempt, skipped, wantSkipped)
			}
			// Nothing but the safe files exists anywhere in the bucket.
			keys, err := s.ListKeys(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(keys, wantKeys) {
				t.Errorf("attempt %d: bucket holds\n%s\nwant\n%s", attempt, strings.Join(keys, "\n"), strings.Join(wantKeys, "\n"))
			}
			var objs []artifacts.Object
			for _, f := range files {
				objs = append(objs, f.Object())
			}
			if err := s.Verify(ctx, objs); err != nil {
				t.Errorf("attempt %d: Verify: %v", attempt, err)
			}
		}
		if got := readObject(t, s, prefix+"files/workspace/big.bin"); !bytes.Equal(got, big) {
			t.Errorf("big.bin read back differs")
		}
	})
}

func TestUploadTreeNestedCollectPath(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *artifacts.Store) {
		ctx := testContext(t)
		prefix := api.ArtifactPrefix("c1", "20261129T134501Z-ab12", "bob")
		// CopyFromContainer("/home/student/work") names entries relative to
		// /home/student.
		archive := buildTar(t,
			dir("work/"),
			file("work/a.txt", []byte("a")),
			file("student-secret.txt", []byte("not under work")),
		)
		files, skipped, err := s.UploadTree(ctx, prefix, "/home/student/work", bytes.NewReader(archive), 0)
		if err != nil {
			t.Fatal(err)
		}
		want := []artifacts.File{{Path: "home/student/work/a.txt", Key: prefix + "files/home/student/work/a.txt", Size: 1, SHA256: sha([]byte("a"))}}
		if !slices.Equal(files, want) {
			t.Errorf("files = %+v, want %+v", files, want)
		}
		wantSkipped := []artifacts.Skipped{{Path: "student-secret.txt", Reason: artifacts.ReasonOutside}}
		if !slices.Equal(skipped, wantSkipped) {
			t.Errorf("skipped = %+v, want %+v", skipped, wantSkipped)
		}
	})
}

func TestUploadTreeSizeCap(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *artifacts.Store) {
		ctx := testContext(t)
		prefix := api.ArtifactPrefix("c1", "20261129T134501Z-ab12", "carol")
		a, b, c := randomBytes(100, 6), randomBytes(200, 7), randomBytes(50, 8)
		archive := buildTar(t,
			dir("workspace/"),
			file("workspace/a.bin", a),
			file("workspace/b.bin", b),
			file("workspace/c.bin", c),
		)
		files, skipped, err := s.UploadTree(ctx, prefix, "/workspace", bytes.NewReader(archive), 160)
		if err != nil {
			t.Fatal(err)
		}
		wantFiles := []artifacts.File{
			{Path: "workspace/a.bin", Key: prefix + "files/workspace/a.bin", Size: 100, SHA256: sha(a)},
			{Path: "workspace/c.bin", Key: prefix + "files/workspace/c.bin", Size: 50, SHA256: sha(c)},
		}
		if !slices.Equal(files, wantFiles) {
			t.Errorf("files = %+v, want %+v", files, wantFiles)
		}
		wantSkipped := []artifacts.Skipped{{Path: "workspace/b.bin", Reason: artifacts.ReasonSizeCap}}
		if !slices.Equal(skipped, wantSkipped) {
			t.Errorf("skipped = %+v, want %+v", skipped, wantSkipped)
		}
		keys, err := s.ListKeys(ctx, prefix)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{wantFiles[0].Key, wantFiles[1].Key}; !slices.Equal(keys, want) {
			t.Errorf("keys = %v, want %v", keys, want)
		}
	})
}

func TestUploadTreeTruncatedArchive(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *artifacts.Store) {
		archive := buildTar(t, file("workspace/a.bin", randomBytes(4096, 9)))
		_, _, err := s.UploadTree(testContext(t), api.ArtifactPrefix("c1", "r1", "dave"), "/workspace", bytes.NewReader(archive[:2048]), 0)
		if err == nil {
			t.Fatal("UploadTree of a truncated archive: no error")
		}
		t.Log(err)
	})
}
