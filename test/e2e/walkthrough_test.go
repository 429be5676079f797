// Package e2e runs the two Homeroom binaries as `make run` does (embedded
// store and artifact store, the real Docker daemon) and walks through the
// README as a new user would, over HTTP.
package e2e

import (
	"bytes"
	"context"
	"fmt"
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
)

// client calls the API as one token.
type client struct {
	t     *testing.T
	sys   *testenv.System
	token string
}

func (c *client) call(method, path string, body any, out any) int {
	c.t.Helper()
	return c.sys.Call(c.t, c.token, method, path, body, out)
}

func (c *client) waitPhase(id string, phase api.Phase) api.Class {
	c.t.Helper()
	var cl api.Class
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		c.call("GET", "/api/v1/classes/"+id, nil, &cl)
		if cl.Status.Phase == phase && cl.Status.ObservedGeneration == cl.Generation {
			return cl
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.t.Fatalf("class %s never reached %s; last status %+v", id, phase, cl.Status)
	return cl
}

func TestWalkthrough(t *testing.T) {
	d := testenv.Docker(t)
	ctx := context.Background()
	const id = "cs101-e2e"
	testenv.CleanupClass(t, d, id)

	sys := testenv.StartSystem(t, "homeroom-e2e-no-router")
	if !strings.Contains(sys.APIServer.Output(), sys.AdminToken) {
		t.Errorf("the apiserver does not print the admin token")
	}
	c := &client{t: t, sys: sys, token: sys.AdminToken}

	students := []string{"alice", "bob", "carol"}
	if code := c.call("PUT", "/api/v1/classes/"+id, map[string]any{
		"subject": "cs101", "template": "sandbox", "students": students, "ttlSeconds": 7200,
	}, nil); code != http.StatusCreated {
		t.Fatalf("create class: %d", code)
	}
	if code := c.call("POST", "/api/v1/classes/"+id+"/up", nil, nil); code != http.StatusAccepted {
		t.Fatalf("up: %d", code)
	}
	cl := c.waitPhase(id, api.PhaseUp)
	if len(cl.Status.Students) != 3 || cl.Status.ExpiresAt == nil {
		t.Fatalf("status when Up: %+v", cl.Status)
	}
	for i, s := range cl.Status.Students {
		if s.State != "running" || s.Endpoint != fmt.Sprintf("http://%s.%s.lab.localhost", students[i], id) {
			t.Errorf("student %+v", s)
		}
	}

	f := filters.NewArgs(filters.Arg("label", "homeroom.managed-by=homeroom"), filters.Arg("label", "homeroom.class="+id))
	cs, _ := d.API().ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if len(cs) != 3 {
		t.Fatalf("%d labelled containers, want 3", len(cs))
	}
	var aliceIP string
	for _, ctr := range cs {
		ep := ctr.NetworkSettings.Networks["homeroom-"+id]
		if ctr.State != "running" || ep == nil {
			t.Errorf("container %v: %s, networks %v", ctr.Names, ctr.State, ctr.NetworkSettings.Networks)
			continue
		}
		if ctr.Labels["homeroom.student"] == "alice" {
			aliceIP = ep.IPAddress
		}
	}

	// alice saves a file in her workspace through her sandbox.
	notes := []byte("notes from the first lab\n")
	var resp *http.Response
	var err error
	for i := 0; i < 50; i++ {
		req, _ := http.NewRequest("PUT", "http://"+aliceIP+":8080/files/notes.txt", bytes.NewReader(notes))
		if resp, err = http.DefaultClient.Do(req); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("save file: %v %v", err, resp)
	}
	resp.Body.Close()

	if code := c.call("POST", "/api/v1/classes/"+id+"/down", nil, nil); code != http.StatusAccepted {
		t.Fatalf("down: %d", code)
	}
	c.waitPhase(id, api.PhaseDown)

	var arts struct {
		Items []struct{ Student, RunID, Path, Key, SHA256 string }
	}
	c.call("GET", "/api/v1/classes/"+id+"/artifacts", nil, &arts)
	found := false
	for _, it := range arts.Items {
		if it.Student == "alice" && it.Path == "files/workspace/notes.txt" {
			found = true
		}
	}
	if !found {
		t.Fatalf("alice's notes are not in the artifact listing: %+v", arts.Items)
	}
	var got []byte
	if code := c.call("GET", "/api/v1/classes/"+id+"/artifacts/alice/files/workspace/notes.txt", nil, &got); code != 200 || !bytes.Equal(got, notes) {
		t.Errorf("download: %d %q", code, got)
	}

	cs, _ = d.API().ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	ns, _ := d.API().NetworkList(ctx, network.ListOptions{Filters: f})
	if len(cs)+len(ns) != 0 {
		t.Errorf("left after Down: %d containers, %d networks", len(cs), len(ns))
	}

	for _, u := range []string{sys.URL + "/metrics", sys.ControllerURL + "/metrics"} {
		r, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if !strings.Contains(string(b), "homeroom_") {
			t.Errorf("%s serves no homeroom metrics", u)
		}
	}
	if code := c.call("DELETE", "/api/v1/classes/"+id, nil, nil); code != http.StatusNoContent {
		t.Errorf("delete a Down class: %d", code)
	}
	sys.Controller.Stop()
	sys.APIServer.Stop()
}
