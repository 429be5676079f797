package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/dockerx"
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
	}
	clean()
	t.Cleanup(clean)
}
