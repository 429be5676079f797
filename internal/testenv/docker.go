package testenv

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/dockerx"
	"github.com/homeroom/homeroom/pkg/policy"
)

// SandboxImage is the lab image `make images` builds.
const SandboxImage = "homeroom/sandbox:dev"

// Docker returns a client of the real daemon, with the lab image present.
// Run `make images` (or `make test`) first.
func Docker(t testing.TB) *dockerx.Client {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs the Docker daemon")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := dockerx.New(ctx)
	if err != nil {
		Unavailable(t, "docker client: %v", err)
	}
	if err := d.Ping(ctx); err != nil {
		d.Close()
		Unavailable(t, "docker daemon (run scripts/ensure-docker.sh): %v", err)
	}
	if _, err := d.API().ImageInspect(ctx, SandboxImage); err != nil {
		d.Close()
		Unavailable(t, "image %s (run make images): %v", SandboxImage, err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// CleanupClass removes whatever a test left of a class, labelled or not, so
// that a failing test does not break the next one.
func CleanupClass(t testing.TB, d *dockerx.Client, classID string) {
	t.Helper()
	clean := func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		f := filters.NewArgs(filters.Arg("label", api.LabelClass+"="+classID))
		cs, _ := d.API().ContainerList(ctx, container.ListOptions{All: true, Filters: f})
		for _, c := range cs {
			d.API().ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		}
		ns, _ := d.API().NetworkList(ctx, network.ListOptions{Filters: f})
		for _, n := range ns {
			d.API().NetworkRemove(ctx, n.ID)
		}
		// Work volumes outlive their containers by design; a test's must
		// not outlive the test.
		vs, _ := d.API().VolumeList(ctx, volume.ListOptions{Filters: f})
		for _, v := range vs.Volumes {
			d.API().VolumeRemove(ctx, v.Name, true)
		}
	}
	clean()
	t.Cleanup(clean)
}

// Probe runs the lab image's probe on network, as a student's program
// there would, against target (with hostHeader as the Host header when set)
// and returns its exit code: 0 answered, 3 answered with a 4xx refusal, 1
// not reachable.
func Probe(t testing.TB, d *dockerx.Client, network, target, hostHeader string) int64 {
	t.Helper()
	return ProbeOn(t, d.API(), network, target, hostHeader)
}

// ProbeOn is Probe on the daemon c talks to (a swarm node's).
func ProbeOn(t testing.TB, c *client.Client, network, target, hostHeader string) int64 {
	t.Helper()
	ctx := context.Background()
	cmd := []string{"probe", target}
	if hostHeader != "" {
		cmd = append(cmd, hostHeader)
	}
	resp, err := c.ContainerCreate(ctx, &container.Config{Image: SandboxImage, Cmd: cmd, User: "65534:65534"},
		&container.HostConfig{NetworkMode: container.NetworkMode(network), CapDrop: []string{"ALL"}}, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.ContainerRemove(ctx, resp.ID, container.RemoveOptions{Force: true})
	waitc, errc := c.ContainerWait(ctx, resp.ID, container.WaitConditionNextExit)
	if err := c.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case w := <-waitc:
		return w.StatusCode
	case err := <-errc:
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		t.Fatal("probe did not finish")
	}
	return -1
}

// NotebookImage makes sure the built-in notebook template's image is on the
// daemon (`make images` or scripts/ensure-notebook.sh builds it).
func NotebookImage(t testing.TB, d *dockerx.Client) {
	t.Helper()
	tmpl, ok := policy.Default().Template("notebook")
	if !ok {
		t.Fatal("the built-in policy has no notebook template")
	}
	if _, err := d.API().ImageInspect(context.Background(), tmpl.Image); err != nil {
		Unavailable(t, "image %s (run scripts/ensure-notebook.sh or make images): %v", tmpl.Image, err)
	}
}

// SaveFile writes a file into a student's workspace through their lab
// sandbox's own PUT /files/<name>, at its address on the class network (no
// router, no sign-in), asking again while the sandbox does not listen yet.
func SaveFile(t testing.TB, d *dockerx.Client, classID, student, name, body string) {
	t.Helper()
	info, err := d.InspectContainer(context.Background(), api.ContainerName(classID, student))
	if err != nil {
		t.Fatal(err)
	}
	nw := info.NetworkSettings.Networks[api.NetworkName(classID)]
	if nw == nil || nw.IPAddress == "" {
		t.Fatalf("%s's sandbox has no address on the class network", student)
	}
	PutFile(t, &http.Client{Timeout: 10 * time.Second}, "http://"+nw.IPAddress+":8080/files/"+name, []byte(body))
}

// PutFile stores body at url, a lab sandbox's PUT /files/<path>, through c,
// asking again 100 ms apart while the sandbox does not listen yet or
// answers anything but 201 Created, for at most a minute in all: a sandbox
// that does not answer at all (c's timeout at every attempt) fails the test
// then, not after fifty timeouts.
func PutFile(t testing.TB, c *http.Client, url string, body []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var err error
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				t.Fatalf("PUT %s: %v (%d attempts over a minute)", url, err, attempt)
			case <-time.After(100 * time.Millisecond):
			}
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPut, url, bytes.NewReader(body))
		var resp *http.Response
		if resp, err = c.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusCreated {
				return
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
	}
}
