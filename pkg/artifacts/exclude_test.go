package artifacts

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/policy"
)

// memObjects is an object store in memory.
type memObjects struct {
	mu   sync.Mutex
	objs map[string][]byte
}

func (m *memObjects) PutStream(_ context.Context, key string, r io.Reader, _ int64, _ string) (Object, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return Object{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.objs == nil {
		m.objs = map[string][]byte{}
	}
	m.objs[key] = b
	sum := sha256.Sum256(b)
	return Object{Key: key, Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:])}, nil
}

func (m *memObjects) Verify(context.Context, []Object) error { return nil }

func (m *memObjects) keys() []string {
	var ks []string
	for k := range m.objs {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

type entry struct {
	typ  byte
	name string
	body string
}

func tarOf(t *testing.T, entries ...entry) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	w := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Typeflag: e.typ, Name: e.name, Mode: 0o644, Size: int64(len(e.body))}
		if e.typ == tar.TypeSymlink {
			h.Linkname, h.Size = "/etc/passwd", 0
		}
		if err := w.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			w.Write([]byte(e.body))
		}
	}
	w.Close()
	return &buf
}

// A notebook's home as the archive API streams it: the caches are left out
// wherever they are, listed once each, and neither uploaded nor counted
// against the caps; a file that only bears such a name is work.
func TestUploadTreeExcludesDirectories(t *testing.T) {
	archive := tarOf(t,
		entry{tar.TypeDir, "jovyan/", ""},
		entry{tar.TypeReg, "jovyan/lab.ipynb", `{"cells": []}`},
		entry{tar.TypeReg, "jovyan/answer.txt", "42\n"},
		entry{tar.TypeDir, "jovyan/.ipynb_checkpoints/", ""},
		entry{tar.TypeReg, "jovyan/.ipynb_checkpoints/lab-checkpoint.ipynb", `{"cells": []}`},
		entry{tar.TypeSymlink, "jovyan/.ipynb_checkpoints/link", ""},
		entry{tar.TypeDir, "jovyan/pkg/", ""},
		entry{tar.TypeReg, "jovyan/pkg/util.py", "x = 1\n"},
		entry{tar.TypeDir, "jovyan/pkg/__pycache__/", ""},
		entry{tar.TypeReg, "jovyan/pkg/__pycache__/util.cpython-311.pyc", "\x00\x01"},
		entry{tar.TypeDir, "jovyan/pkg/__pycache__/deeper/", ""},
		entry{tar.TypeReg, "jovyan/pkg/__pycache__/deeper/x.pyc", "\x00"},
		entry{tar.TypeReg, "jovyan/notes/__pycache__", "a file, not the cache"},
	)
	objs := &memObjects{}
	b := &budget{files: 4}
	files, skipped, err := uploadTree(t.Context(), objs, "p/", "/home/jovyan", archive, b, []string{".ipynb_checkpoints", "__pycache__"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range files {
		got = append(got, f.Path)
	}
	want := []string{"home/jovyan/lab.ipynb", "home/jovyan/answer.txt", "home/jovyan/pkg/util.py", "home/jovyan/notes/__pycache__"}
	if !slices.Equal(got, want) {
		t.Errorf("collected %v, want %v", got, want)
	}
	if wantKeys := []string{"p/files/home/jovyan/answer.txt", "p/files/home/jovyan/lab.ipynb", "p/files/home/jovyan/notes/__pycache__", "p/files/home/jovyan/pkg/util.py"}; !slices.Equal(objs.keys(), wantKeys) {
		t.Errorf("uploaded %v, want %v", objs.keys(), wantKeys)
	}
	wantSkipped := []Skipped{
		{Path: "home/jovyan/.ipynb_checkpoints", Reason: ReasonExcluded},
		{Path: "home/jovyan/pkg/__pycache__", Reason: ReasonExcluded},
	}
	if !slices.Equal(skipped, wantSkipped) {
		t.Errorf("skipped %+v, want %+v", skipped, wantSkipped)
	}
	// Four files fit a cap of four: the excluded ones took none of it.
	if b.usedFiles != 4 {
		t.Errorf("%d files counted against the cap, want 4", b.usedFiles)
	}
	m := &Manifest{Files: files, Skipped: skipped}
	m.Finish()
	if m.Incomplete || m.Truncated {
		t.Errorf("a collection short of its excluded caches only: incomplete %v, truncated %v", m.Incomplete, m.Truncated)
	}
}

// Only the segments below the collect path are names that exclude: a
// collect path named like a cache is still collected.
func TestExcludedBelowTheCollectPathOnly(t *testing.T) {
	ex := []string{"__pycache__"}
	for _, tc := range []struct {
		rel, root string
		dir       bool
		want      exclusion
	}{
		{"srv/__pycache__/a.pyc", "/srv/__pycache__", false, notExcluded},
		{"srv/__pycache__", "/srv/__pycache__", true, notExcluded},
		{"srv/__pycache__/__pycache__", "/srv/__pycache__", true, excludedDir},
		{"srv/__pycache__/__pycache__/a.pyc", "/srv/__pycache__", false, insideExcluded},
		{"home/jovyan/__pycache__", "/home/jovyan", false, notExcluded},
		{"home/jovyan/a/b/__pycache__/c/d", "/home/jovyan", false, insideExcluded},
		{"home/jovyan/__pycache__x/a", "/home/jovyan", false, notExcluded},
	} {
		if got := excluded(tc.rel, tc.root, ex, tc.dir); got != tc.want {
			t.Errorf("excluded(%q below %q, dir %v) = %d, want %d", tc.rel, tc.root, tc.dir, got, tc.want)
		}
		if got := excluded(tc.rel, tc.root, nil, tc.dir); got != notExcluded {
			t.Errorf("nothing to exclude, yet %q is %d", tc.rel, got)
		}
	}
}

// The collector honours the rules the container was made with: a Down of a
// notebook leaves its checkpoints behind.
func TestCollectHonoursExcludeDirs(t *testing.T) {
	tmpl, _ := policy.Default().Template("notebook")
	rules := RulesFor(tmpl)
	src := &fakeSource{
		labels: map[string]string{api.LabelCollect: rules.Label(), api.LabelTemplate: "notebook"},
		archives: map[string]func() io.Reader{"/home/jovyan": func() io.Reader {
			return tarOf(t,
				entry{tar.TypeDir, "jovyan/", ""},
				entry{tar.TypeReg, "jovyan/lab.ipynb", "{}"},
				entry{tar.TypeDir, "jovyan/.ipynb_checkpoints/", ""},
				entry{tar.TypeReg, "jovyan/.ipynb_checkpoints/lab-checkpoint.ipynb", "{}"},
			)
		}},
	}
	objs := &memObjects{}
	c := &Collector{Source: src, Objects: objs, Now: func() time.Time { return time.Unix(0, 0) }}
	res, err := c.Collect(t.Context(), Request{ClassID: "c", Subject: "s", RunID: "r", StudentID: "alice", Container: "x", Rules: rules})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Manifest.Files) != 1 || res.Manifest.Files[0].Path != "home/jovyan/lab.ipynb" {
		t.Errorf("collected %+v", res.Manifest.Files)
	}
	for _, k := range objs.keys() {
		if strings.Contains(k, ".ipynb_checkpoints") {
			t.Errorf("uploaded %s", k)
		}
	}
	if res.Manifest.Incomplete {
		t.Error("excluded checkpoints made the collection incomplete")
	}

	// A template changed while Up to exclude nothing collects everything
	// of a container made before the change.
	res, err = c.Collect(t.Context(), Request{ClassID: "c", Subject: "s", RunID: "r2", StudentID: "alice", Container: "x",
		Rules: Rules{Paths: rules.Paths, MaxBytes: rules.MaxBytes, MaxFiles: rules.MaxFiles}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Manifest.Files) != 2 {
		t.Errorf("rules merged with an exclusion of the template's no longer: collected %+v", res.Manifest.Files)
	}
}

type fakeSource struct {
	labels   map[string]string
	archives map[string]func() io.Reader
}

func (f *fakeSource) InspectContainer(_ context.Context, name string) (container.InspectResponse, error) {
	return container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{ID: name, Name: "/" + name, State: &container.State{Status: "exited"}},
		Config:            &container.Config{Labels: f.labels},
	}, nil
}

func (f *fakeSource) Logs(context.Context, string) (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(nil)), nil
}

func (f *fakeSource) Archive(_ context.Context, _, p string) (io.ReadCloser, error) {
	a, ok := f.archives[p]
	if !ok {
		return nil, fmt.Errorf("no %s", p)
	}
	return io.NopCloser(a()), nil
}
