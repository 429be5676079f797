// Package disruption holds the tests that break things on purpose: a
// controller killed mid-Down, the Docker daemon restarted. They disturb every
// other user of the daemon, so this package runs alone (make test runs
// packages one at a time) and puts everything back as it found it.
package disruption

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
	"github.com/homeroom/homeroom/pkg/dockerx"
)

// work is what one student saved: path in the workspace → sha256.
type work map[string]string

// saveWork has each student save a small note and a file of several MiB
// through their sandbox, and returns what each saved.
func saveWork(t *testing.T, d *dockerx.Client, id string, students []string, bigMiB int) map[string]work {
	t.Helper()
	out := map[string]work{}
	for _, s := range students {
		info, err := d.InspectContainer(context.Background(), api.ContainerName(id, s))
		if err != nil {
			t.Fatal(err)
		}
		ip := info.NetworkSettings.Networks[api.NetworkName(id)].IPAddress
		big := make([]byte, bigMiB<<20)
		rand.Read(big)
		files := map[string][]byte{
			"notes.txt":    []byte("the work of " + s + "\n"),
			"data/big.bin": big,
		}
		out[s] = work{}
		for name, body := range files {
			testenv.PutFile(t, &http.Client{Timeout: 30 * time.Second}, "http://"+ip+":8080/files/"+name, body)
			sum := sha256.Sum256(body)
			out[s]["workspace/"+name] = hex.EncodeToString(sum[:])
		}
	}
	return out
}

// checkCollected is what a teacher relies on after Down: nothing of the class
// left in Docker, and every file of every student stored exactly once, in
// one run, byte for byte.
func checkCollected(t *testing.T, d *dockerx.Client, art *artifacts.Store, c *api.Class, saved map[string]work) {
	t.Helper()
	ctx := context.Background()
	f := filters.NewArgs(filters.Arg("label", api.LabelClass+"="+c.ID))
	cs, err := d.API().ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	ns, err := d.API().NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	vs, err := d.ListVolumes(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs)+len(ns)+len(vs) != 0 {
		t.Errorf("left after Down: %d containers, %d networks, %d work volumes", len(cs), len(ns), len(vs))
	}
	if c.Status.Run == nil || c.Status.Run.CompletedAt == nil {
		t.Fatalf("no completed run in status: %+v", c.Status.Run)
	}
	runID := c.Status.Run.ID
	keys, err := art.ListKeys(ctx, "classes/"+c.ID+"/")
	if err != nil {
		t.Fatal(err)
	}
	for student, files := range saved {
		for path, want := range files {
			suffix := "/" + student + "/files/" + path
			var found []string
			for _, k := range keys {
				if strings.HasSuffix(k, suffix) {
					found = append(found, k)
				}
			}
			if len(found) != 1 || found[0] != api.ArtifactPrefix(c.ID, runID, student)+"files/"+path {
				t.Errorf("%s's %s stored as %v, want once in run %s", student, path, found, runID)
				continue
			}
			rc, _, err := art.Open(ctx, found[0])
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			io.Copy(h, rc)
			rc.Close()
			if got := hex.EncodeToString(h.Sum(nil)); got != want {
				t.Errorf("%s's %s: sha256 %s, saved %s", student, path, got, want)
			}
		}
		var m artifacts.Manifest
		if err := art.GetJSON(ctx, artifacts.ManifestKey(api.ArtifactPrefix(c.ID, runID, student)), &m); err != nil {
			t.Errorf("%s's manifest: %v", student, err)
			continue
		}
		for _, f := range m.Files {
			if want, ok := files[f.Path]; !ok || want != f.SHA256 {
				t.Errorf("%s's manifest lists %s with sha256 %s, saved %q", student, f.Path, f.SHA256, want)
			}
		}
		if len(m.Files) != len(files) {
			t.Errorf("%s's manifest lists %d files, saved %d", student, len(m.Files), len(files))
		}
	}
	idx, err := art.GetRunIndex(ctx, c.ID, runID)
	if err != nil {
		t.Errorf("run index: %v", err)
	} else {
		for _, s := range idx.Students {
			if s.Outcome != artifacts.OutcomeCollected {
				t.Errorf("index: %s %s", s.StudentID, s.Outcome)
			}
		}
		if len(idx.Students) != len(saved) {
			t.Errorf("index lists %d students, %d saved work", len(idx.Students), len(saved))
		}
	}
	manifests := 0
	for _, k := range keys {
		if strings.HasSuffix(k, "/manifest.json") {
			manifests++
		}
	}
	if manifests != len(saved) {
		t.Errorf("%d manifests stored for %d students: a collection was written twice", manifests, len(saved))
	}
}
