package disruption

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
)

// autosavePolicy is the built-in sandbox with an autosave every minute.
const autosavePolicy = `templates:
  - {name: sandbox, image: homeroom/sandbox:dev, port: 8080, user: "65534:65534", collectPaths: [/workspace], memoryMiB: 128, cpus: 0.5, pids: 64, readOnlyRootFS: true, autosaveMinutes: 1}
`

// TestAutosaveOutlivesALostMachine brings a class Up, lets its work be
// autosaved, then loses everything at once: apiserver and controller are
// killed with SIGKILL and every sandbox is wiped with its work volume. The
// restarted system still serves the autosave, byte for byte, and a Down
// afterwards completes.
func TestAutosaveOutlivesALostMachine(t *testing.T) {
	d := testenv.Docker(t)
	ctx := context.Background()
	const id = "autosave-lost"
	students := []string{"ivy", "jon"}
	testenv.CleanupClass(t, d, id)
	pol := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(pol, []byte(autosavePolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	sys := testenv.StartSystem(t, "hr-disruption-no-router", "HOMEROOM_POLICY="+pol)
	admin := sys.AdminToken
	if code := sys.Call(t, admin, "PUT", "/api/v1/classes/"+id,
		map[string]any{"subject": "cs", "template": "sandbox", "students": students}, nil); code/100 != 2 {
		t.Fatalf("put class: %d", code)
	}
	sys.Call(t, admin, "POST", "/api/v1/classes/"+id+"/up", nil, nil)
	get := func() api.Class {
		var c api.Class
		if code := sys.Call(t, admin, "GET", "/api/v1/classes/"+id, nil, &c); code != http.StatusOK {
			t.Fatalf("get class: %d", code)
		}
		return c
	}
	waitFor := func(what string, timeout time.Duration, ok func(api.Class) bool) api.Class {
		t.Helper()
		deadline := time.Now().Add(timeout)
		for time.Now().Before(deadline) {
			if c := get(); ok(c) {
				return c
			}
			time.Sleep(500 * time.Millisecond)
		}
		t.Fatalf("%s: not within %v: %+v", what, timeout, get().Status)
		return api.Class{}
	}
	up := func(c api.Class) bool {
		return c.Status.Phase == api.PhaseUp && c.Status.ObservedGeneration == c.Generation
	}
	waitFor("Up", 2*time.Minute, up)
	saved := saveWork(t, d, id, students, 1)

	// The first autosave is due a minute after the Up.
	c := waitFor("an autosave", 3*time.Minute, func(c api.Class) bool {
		return c.Status.Autosave != nil && c.Status.Autosave.Collected == len(students)
	})
	autosave := c.Status.Autosave.RunID

	sys.Kill()
	for _, s := range students {
		name := api.ContainerName(id, s)
		if err := d.API().ContainerRemove(ctx, name, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
			t.Fatalf("wipe %s: %v", name, err)
		}
		if err := d.API().VolumeRemove(ctx, api.VolumeName(id, s, "/workspace"), true); err != nil {
			t.Fatalf("wipe %s's work volume: %v", s, err)
		}
	}
	sys.Start(t)
	// The status from before the loss still says Up: wait for the
	// sandboxes themselves, made again (empty) by the restarted controller.
	deadline := time.Now().Add(2 * time.Minute)
	for _, s := range students {
		for {
			info, err := d.InspectContainer(ctx, api.ContainerName(id, s))
			if err == nil && info.State != nil && info.State.Running {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s's sandbox was not made again: %v", s, err)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}

	var runs struct{ Items []artifacts.RunSummary }
	if code := sys.Call(t, admin, "GET", "/api/v1/classes/"+id+"/runs", nil, &runs); code != http.StatusOK {
		t.Fatalf("runs: %d", code)
	}
	listed := false
	for _, r := range runs.Items {
		listed = listed || (r.RunID == autosave && r.Kind == artifacts.RunKindAutosave && r.Complete)
	}
	if !listed {
		t.Fatalf("the autosave %s is not listed as a complete run of kind autosave: %+v", autosave, runs.Items)
	}
	for student, files := range saved {
		for path, want := range files {
			var body []byte
			code := sys.Call(t, admin, "GET", "/api/v1/classes/"+id+"/artifacts/"+student+"/files/"+path+"?run="+autosave, nil, &body)
			sum := sha256.Sum256(body)
			if code != http.StatusOK || hex.EncodeToString(sum[:]) != want {
				t.Errorf("%s's %s from the autosave: %d, sha256 %x, saved %s", student, path, code, sum, want)
			}
		}
	}

	sys.Call(t, admin, "POST", "/api/v1/classes/"+id+"/down", nil, nil)
	c = waitFor("Down", 2*time.Minute, func(c api.Class) bool {
		return c.Status.Phase == api.PhaseDown && c.Status.Run != nil && c.Status.Run.CompletedAt != nil
	})
	if c.Status.Run.ID == autosave || !strings.HasPrefix(c.Status.Run.ID, "2") {
		t.Errorf("Down run %q", c.Status.Run.ID)
	}
}
