package dockerx_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/dockerx"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func labels(class, student, hash string) map[string]string {
	return map[string]string{api.LabelManagedBy: api.ManagedByValue, api.LabelClass: class, api.LabelStudent: student, api.LabelConfigHash: hash}
}

// Every call is safe to repeat: that is what lets a controller killed at
// any point simply run its pass again.
func TestCallsAreSafeToRepeat(t *testing.T) {
	d := testenv.Docker(t)
	ctx := context.Background()
	const class = "dx-repeat"
	testenv.CleanupClass(t, d, class)
	net := api.NetworkName(class)
	opts := network.CreateOptions{Driver: "bridge", Labels: map[string]string{api.LabelManagedBy: api.ManagedByValue, api.LabelClass: class}}
	id1, err := d.EnsureNetwork(ctx, net, opts)
	if err != nil {
		t.Fatal(err)
	}
	id2, err := d.EnsureNetwork(ctx, net, opts)
	if err != nil || id2 != id1 {
		t.Fatalf("second EnsureNetwork: %s %v, want to adopt %s", id2, err, id1)
	}

	spec := func(hash string) dockerx.ContainerSpec {
		return dockerx.ContainerSpec{
			Name:       api.ContainerName(class, "ann"),
			Config:     &container.Config{Image: testenv.SandboxImage, Labels: labels(class, "ann", hash)},
			HostConfig: &container.HostConfig{NetworkMode: container.NetworkMode(net)},
			Networking: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{net: {Aliases: []string{"ann"}}}},
		}
	}
	c1, err := d.CreateContainer(ctx, spec("h1"))
	if err != nil {
		t.Fatal(err)
	}
	if c2, err := d.CreateContainer(ctx, spec("h1")); err != nil || c2 != c1 {
		t.Fatalf("create with the same config: %s %v, want to adopt %s", c2, err, c1)
	}
	c3, err := d.CreateContainer(ctx, spec("h2"))
	if err != nil || c3 == c1 {
		t.Fatalf("create with another config hash: %s %v, want a replacement", c3, err)
	}
	for i := 0; i < 2; i++ {
		if err := d.StartContainer(ctx, c3); err != nil {
			t.Fatalf("start #%d: %v", i+1, err)
		}
	}
	for i := 0; i < 2; i++ {
		if err := d.StopContainer(ctx, c3, 1); err != nil {
			t.Fatalf("stop #%d: %v", i+1, err)
		}
	}
	for i := 0; i < 2; i++ {
		if err := d.RemoveContainer(ctx, c3); err != nil {
			t.Fatalf("remove #%d: %v", i+1, err)
		}
	}
	for i := 0; i < 2; i++ {
		if err := d.RemoveNetwork(ctx, id1); err != nil {
			t.Fatalf("remove network #%d: %v", i+1, err)
		}
	}
}

// A name taken by something without Homeroom's labels is never adopted,
// replaced or removed.
func TestLookalikesAreNeverTouched(t *testing.T) {
	d := testenv.Docker(t)
	ctx := context.Background()
	const class = "dx-lookalike"
	testenv.CleanupClass(t, d, class)
	net := api.NetworkName(class)
	other, err := d.API().NetworkCreate(ctx, net, network.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.API().NetworkRemove(ctx, other.ID)
	_, err = d.EnsureNetwork(ctx, net, network.CreateOptions{Labels: map[string]string{api.LabelManagedBy: api.ManagedByValue, api.LabelClass: class}})
	if !errors.Is(err, dockerx.ErrNotOurs) {
		t.Fatalf("EnsureNetwork over an unlabelled network: %v, want ErrNotOurs", err)
	}
	name := api.ContainerName(class, "eve")
	plain, err := d.API().ContainerCreate(ctx, &container.Config{Image: testenv.SandboxImage}, nil, nil, nil, name)
	if err != nil {
		t.Fatal(err)
	}
	defer d.API().ContainerRemove(ctx, plain.ID, container.RemoveOptions{Force: true})
	_, err = d.CreateContainer(ctx, dockerx.ContainerSpec{Name: name, Config: &container.Config{Image: testenv.SandboxImage, Labels: labels(class, "eve", "h")}})
	if !errors.Is(err, dockerx.ErrNotOurs) {
		t.Fatalf("CreateContainer over an unlabelled container: %v, want ErrNotOurs", err)
	}
	if _, err := d.InspectContainer(ctx, plain.ID); err != nil {
		t.Errorf("the look-alike is gone: %v", err)
	}
}

// StartContainer's repair for a stale endpoint reattaches a container to
// its networks with its aliases; here it is driven directly through a
// start after a forced disconnect, which is what the repair does.
func TestStartAfterEndpointRepairKeepsAliases(t *testing.T) {
	d := testenv.Docker(t)
	ctx := context.Background()
	const class = "dx-reattach"
	testenv.CleanupClass(t, d, class)
	net := api.NetworkName(class)
	if _, err := d.EnsureNetwork(ctx, net, network.CreateOptions{Labels: map[string]string{api.LabelManagedBy: api.ManagedByValue, api.LabelClass: class}}); err != nil {
		t.Fatal(err)
	}
	id, err := d.CreateContainer(ctx, dockerx.ContainerSpec{
		Name:       api.ContainerName(class, "ann"),
		Config:     &container.Config{Image: testenv.SandboxImage, Labels: labels(class, "ann", "h")},
		HostConfig: &container.HostConfig{NetworkMode: container.NetworkMode(net)},
		Networking: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{net: {Aliases: []string{"ann"}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := dockerx.Reattach(d, ctx, id); err != nil {
		t.Fatalf("reattach: %v", err)
	}
	if err := d.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	info, err := d.InspectContainer(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	ep := info.NetworkSettings.Networks[net]
	if ep == nil || !slices.Contains(ep.Aliases, "ann") {
		t.Errorf("after reattaching, endpoint on %s = %+v, want alias ann", net, ep)
	}
}

// The resync's search for classes gone from the store is an operation of
// its own in homeroom_docker_calls_total, apart from a pass's listings: the
// calls a pass costs are read from the others.
func TestTheOrphanSearchCountsAsItsOwnOperation(t *testing.T) {
	d := testenv.Docker(t)
	ctx := context.Background()
	const class = "dx-orphans"
	testenv.CleanupClass(t, d, class)
	if _, err := d.EnsureNetwork(ctx, api.NetworkName(class), network.CreateOptions{Driver: "bridge",
		Labels: map[string]string{api.LabelManagedBy: api.ManagedByValue, api.LabelClass: class}}); err != nil {
		t.Fatal(err)
	}
	ids, err := d.ManagedClasses(ctx)
	if err != nil || !slices.Contains(ids, class) {
		t.Fatalf("ManagedClasses = %v, %v; want %s among them", ids, err, class)
	}
	calls := map[string]float64{}
	ch := make(chan prometheus.Metric, 16)
	d.Metrics().Collect(ch)
	close(ch)
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			t.Fatal(err)
		}
		for _, l := range pb.GetLabel() {
			if l.GetName() == "operation" {
				calls[l.GetValue()] += pb.GetCounter().GetValue()
			}
		}
	}
	if calls["orphan_list"] != 2 || calls["container_list"] != 0 || calls["network_list"] != 0 {
		t.Errorf("calls by operation %v; want the search's container and network listings as orphan_list", calls)
	}
}
