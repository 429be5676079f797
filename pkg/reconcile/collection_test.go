package reconcile_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
	"github.com/homeroom/homeroom/pkg/policy"
	"github.com/homeroom/homeroom/pkg/reconcile"
)

// twoTemplates has the built-in sandbox and a second lab whose work lives
// elsewhere, so that a class can be moved from one to the other while Up.
const twoTemplates = `templates:
  - {name: sandbox, image: homeroom/sandbox:dev, port: 8080, user: "65534:65534", collectPaths: [/workspace], memoryMiB: 128, cpus: 0.5, pids: 64, readOnlyRootFS: true}
  - {name: lab-b, image: homeroom/sandbox:dev, port: 8080, user: "65534:65534", collectPaths: [/data], memoryMiB: 128, cpus: 0.5, pids: 64, readOnlyRootFS: true, collectMaxFiles: 50}
`

// plant copies files into a student's container as a tar, the way a
// student's own program could have made them.
func (r *rig) plant(classID, student, dir string, files map[string]string) {
	r.t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body)), Uid: 65534, Gid: 65534}); err != nil {
			r.t.Fatal(err)
		}
		io.WriteString(tw, body)
	}
	tw.Close()
	if err := r.docker.API().CopyToContainer(context.Background(), api.ContainerName(classID, student), dir, &buf, container.CopyToContainerOptions{}); err != nil {
		r.t.Fatalf("plant %s's %s: %v", student, dir, err)
	}
}

// manifest reads a student's manifest of the class's last run.
func (r *rig) manifest(classID, student string) *artifacts.Manifest {
	r.t.Helper()
	c := r.get(classID)
	if c.Status.Run == nil {
		r.t.Fatalf("%s has no run", classID)
	}
	m, err := r.art.GetManifest(context.Background(), classID, c.Status.Run.ID, student)
	if err != nil {
		r.t.Fatalf("manifest of %s: %v", student, err)
	}
	return m
}

// content reads a collected file back from the object store.
func (r *rig) content(f artifacts.File) string {
	r.t.Helper()
	rc, _, err := r.art.Open(context.Background(), f.Key)
	if err != nil {
		r.t.Fatalf("open %s: %v", f.Key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		r.t.Fatal(err)
	}
	return string(b)
}

func files(m *artifacts.Manifest) map[string]artifacts.File {
	out := map[string]artifacts.File{}
	for _, f := range m.Files {
		out[f.Path] = f
	}
	return out
}

// A template changed while Up applies to the next Up; the containers made
// before it are collected as they were made: the change never collects less.
func TestTemplateChangedWhileUpStillCollectsTheWork(t *testing.T) {
	pol, err := policy.Parse([]byte(twoTemplates))
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, pol)
	const id = "it-tmpl-change"
	r.class(id, api.PhaseUp, "alice")
	r.converge(id)
	r.plant(id, "alice", "/workspace", map[string]string{"notes.txt": "alice's notes"})

	// The teacher switches the class to lab-b while it is Up.
	if _, _, err := r.store.PutSpec(context.Background(), id, api.ClassSpec{Subject: "cs", Template: "lab-b", Students: []string{"alice"}}); err != nil {
		t.Fatal(err)
	}
	r.converge(id)
	r.phase(id, api.PhaseDown)
	r.converge(id)

	m := r.manifest(id, "alice")
	f, ok := files(m)["workspace/notes.txt"]
	if !ok {
		t.Fatalf("alice's notes were not collected after the template changed: files %v, skipped %v", m.Files, m.Skipped)
	}
	if got := r.content(f); got != "alice's notes" {
		t.Errorf("notes.txt collected as %q", got)
	}
	if m.Incomplete {
		t.Errorf("manifest incomplete: %v", m.Skipped)
	}
	// lab-b's own path was looked for too, and is reported missing, not lost.
	var data bool
	for _, sk := range m.Skipped {
		data = data || (sk.Path == "data" && sk.Reason == artifacts.ReasonMissingPath)
	}
	if !data {
		t.Errorf("lab-b's /data not reported as missing: %v", m.Skipped)
	}
}

// A name that is not UTF-8 and a path longer than S3 allows are collected
// under encoded keys, with the exact name in the manifest.
func TestAwkwardNamesAreCollected(t *testing.T) {
	r := newRig(t, nil)
	const id = "it-names"
	r.class(id, api.PhaseUp, "bob")
	r.converge(id)
	latin1 := "r\xe9sum\xe9.txt" // "résumé.txt" in Latin-1: not UTF-8
	var long []string
	for i := 0; i < 5; i++ {
		long = append(long, strings.Repeat(string(rune('a'+i)), 219))
	}
	longPath := strings.Join(long, "/") + "/x.txt" // 1,101 bytes under /workspace
	r.plant(id, "bob", "/workspace", map[string]string{latin1: "latin-1 name", longPath: "deep work", "plain.txt": "plain"})

	r.phase(id, api.PhaseDown)
	r.converge(id)
	m := r.manifest(id, "bob")
	if len(m.Files) != 3 || len(m.Skipped) != 0 || m.Incomplete || m.Truncated {
		t.Fatalf("collected %d files, skipped %v (incomplete %v, truncated %v); want all 3", len(m.Files), m.Skipped, m.Incomplete, m.Truncated)
	}
	byRaw := map[string]artifacts.File{}
	for _, f := range m.Files {
		raw := f.Path
		if f.RawPath != "" {
			b, err := base64.StdEncoding.DecodeString(f.RawPath)
			if err != nil {
				t.Fatalf("rawPath %q: %v", f.RawPath, err)
			}
			raw = string(b)
		}
		byRaw[raw] = f
	}
	for path, want := range map[string]string{"workspace/" + latin1: "latin-1 name", "workspace/" + longPath: "deep work", "workspace/plain.txt": "plain"} {
		f, ok := byRaw[path]
		if !ok {
			t.Errorf("%q missing from the manifest", path)
			continue
		}
		if got := r.content(f); got != want {
			t.Errorf("%q holds %q, want %q", path, got, want)
		}
	}
	if f := byRaw["workspace/"+latin1]; f.Path != "workspace/r\uFFFDsum\uFFFD.txt" {
		t.Errorf("shown path %q", f.Path)
	}
	idx, err := r.art.GetRunIndex(context.Background(), id, r.get(id).Status.Run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st := idx.Students[0]; st.Outcome != artifacts.OutcomeCollected || st.Files != 3 {
		t.Errorf("run index: %+v", st)
	}
}

// A workspace of very many small files stops at the template's file cap,
// says so, and the run completes with a manifest that reads back.
func TestManySmallFilesStopAtTheFileCap(t *testing.T) {
	// Ten thousand objects take more than the other tests' 30 s on a busy
	// machine; the controller's default is ten minutes.
	r := newRig(t, nil, func(o *reconcile.Options) { o.CollectTimeout = 5 * time.Minute })
	const id = "it-many-files"
	r.class(id, api.PhaseUp, "carol")
	r.converge(id)
	many := map[string]string{}
	for i := range 20000 {
		many[fmt.Sprintf("d%02d/f%05d.txt", i%50, i)] = fmt.Sprint(i)
	}
	r.plant(id, "carol", "/workspace", many)

	r.phase(id, api.PhaseDown)
	r.converge(id)
	m := r.manifest(id, "carol")
	limit := policy.Default().Templates[0].CollectMaxFileCount()
	if len(m.Files) != limit {
		t.Errorf("collected %d files, want the cap of %d", len(m.Files), limit)
	}
	capped := false
	for _, sk := range m.Skipped {
		capped = capped || sk.Reason == artifacts.ReasonFileCap
	}
	if !capped || !m.Truncated || m.Incomplete {
		t.Errorf("file cap not reported: truncated %v, incomplete %v, %d skipped entries", m.Truncated, m.Incomplete, len(m.Skipped))
	}
	for _, f := range m.Files[:5] {
		if got, want := r.content(f), many[strings.TrimPrefix(f.Path, "workspace/")]; got != want {
			t.Errorf("%s holds %q, want %q", f.Path, got, want)
		}
	}
	c := r.get(id)
	ref := c.Status.Students[0].Artifacts
	if ref == nil || !ref.Truncated || ref.Files != limit {
		t.Errorf("status artifacts %+v, want truncated with %d files", ref, limit)
	}
	idx, err := r.art.GetRunIndex(context.Background(), id, c.Status.Run.ID)
	if err != nil {
		t.Fatalf("run index: %v", err)
	}
	if st := idx.Students[0]; !st.Truncated || st.Files != limit {
		t.Errorf("run index: %+v", st)
	}
}

// `docker rm -f` of a sandbox loses no work: while Up the sandbox is made
// again on its work volume, and at a Down that comes before, the stranded
// volume is collected; nothing of the class is left afterwards.
func TestDockerRmDashFLosesNoWork(t *testing.T) {
	r := newRig(t, nil)
	ctx := context.Background()
	const id = "it-rm-f"
	r.class(id, api.PhaseUp, "dana", "eli")
	r.converge(id)
	r.plant(id, "dana", "/workspace", map[string]string{"before.txt": "written before rm -f"})
	r.plant(id, "eli", "/workspace", map[string]string{"eli.txt": "eli's work"})
	rmF := func(student string) {
		t.Helper()
		err := r.docker.API().ContainerRemove(ctx, api.ContainerName(id, student), container.RemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil {
			t.Fatalf("docker rm -f: %v", err)
		}
	}

	rmF("dana")
	r.converge(id) // dana's sandbox again, on her volume
	rc, err := r.docker.Archive(ctx, api.ContainerName(id, "dana"), "/workspace/before.txt")
	if err != nil {
		t.Fatalf("dana's sandbox made again without her work: %v", err)
	}
	rc.Close()

	rmF("eli")
	r.phase(id, api.PhaseDown) // before the controller made eli's again
	r.converge(id)
	for student, file := range map[string]string{"dana": "workspace/before.txt", "eli": "workspace/eli.txt"} {
		m := r.manifest(id, student)
		f, ok := files(m)[file]
		if !ok {
			t.Errorf("%s's %s not collected: %v", student, file, m.Files)
			continue
		}
		if got := r.content(f); !strings.Contains(got, "before") && !strings.Contains(got, "eli") {
			t.Errorf("%s holds %q", file, got)
		}
	}
	if cs, _ := r.labelled(id); len(cs) != 0 {
		t.Errorf("containers left after Down: %v", cs)
	}
	vs, err := r.docker.ListVolumes(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 0 {
		t.Errorf("%d volumes left after Down", len(vs))
	}
}

// A workspace past the template's workspaceMiB, on this daemon's storage
// (overlay2 on ext4: no volume size limit), is measured, reported,
// autosaved and stopped; a classmate within the cap runs on.
func TestWorkspacePastItsCapIsSavedAndStopped(t *testing.T) {
	pol, err := policy.Parse([]byte(`templates:
  - {name: sandbox, image: homeroom/sandbox:dev, port: 8080, user: "65534:65534", collectPaths: [/workspace], memoryMiB: 128, cpus: 0.5, pids: 64, readOnlyRootFS: true, workspaceMiB: 1}
`))
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, pol)
	ctx := context.Background()
	const id = "it-ws-cap"
	r.class(id, api.PhaseUp, "fay", "gus")
	r.converge(id)
	r.plant(id, "gus", "/workspace", map[string]string{"dataset.csv": strings.Repeat("1,2,3\n", 400000)}) // 2.4 MB
	r.plant(id, "fay", "/workspace", map[string]string{"small.txt": "fits"})
	// The class's UpSince makes autosaves due later; only the cap acts now.
	if _, err := r.rec.MeasureWorkspaces(ctx); err != nil {
		t.Fatal(err)
	}
	r.converge(id)
	c := r.get(id)
	if cd := condition(c, api.ConditionWorkspaceFull); cd.Status != "True" || !strings.Contains(cd.Message, "gus") || strings.Contains(cd.Message, "fay") {
		t.Errorf("WorkspaceFull = %+v", cd)
	}
	waitState(t, r.docker, api.ContainerName(id, "gus"), "exited")
	if info, err := r.docker.InspectContainer(ctx, api.ContainerName(id, "fay")); err != nil || !info.State.Running {
		t.Errorf("fay's sandbox stopped too: %v", err)
	}
	if c.Status.Autosave == nil {
		t.Fatal("no autosave before gus's sandbox was stopped")
	}
	m, err := r.art.GetManifest(ctx, id, c.Status.Autosave.RunID, "gus")
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := files(m)["workspace/dataset.csv"]; !ok || f.Size != 2400000 {
		t.Errorf("gus's dataset in the autosave: %+v", m.Files)
	}
	if got := r.gauge("homeroom_workspace_bytes", id, "gus"); got < 2400000 {
		t.Errorf("homeroom_workspace_bytes for gus = %v", got)
	}
	// Another pass leaves it stopped.
	r.converge(id)
	waitState(t, r.docker, api.ContainerName(id, "gus"), "exited")
}

// gauge reads the gauge of one class and student from the registry.
func (r *rig) gauge(name, class, student string) float64 {
	r.t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		r.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["class"] == class && labels["student"] == student {
				return m.GetGauge().GetValue()
			}
		}
	}
	return -1
}
