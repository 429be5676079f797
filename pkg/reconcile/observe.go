package reconcile

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
)

// Observed is what Docker holds for one class, read in one container list, one
// network list and one inspect of the Traefik container.
type Observed struct {
	// Network is the class network, nil when absent.
	Network *ObservedNetwork
	// Containers are the class's student containers by student id.
	Containers map[string]ObservedContainer
	// Traefik is the routing container, nil when it does not exist.
	Traefik *ObservedTraefik
	// Volumes are the students' work volumes by student id. They are
	// listed only for a class going Down (and an orphan), where work whose
	// sandbox is gone must still be collected; nil otherwise.
	Volumes map[string][]ObservedVolume
	// Workspaces are the bytes each student's work volumes held at the
	// last measurement (see Reconciler.MeasureWorkspaces); nil before one.
	Workspaces map[string]int64
	// PlacesUp are the places (swarm nodes) that can be worked on now,
	// asked of the runtime only while the class has work volumes left
	// behind (api.ClassStatus.LeftBehind); nil otherwise.
	PlacesUp map[string]bool
}

// ObservedVolume is a student's labelled work volume.
type ObservedVolume struct {
	Name, Student, CollectPath, Template string
}

// ObservedNetwork is a labelled class network.
type ObservedNetwork struct {
	ID, Name string
	// Leaked: the daemon refused this controller's last removal of it with
	// "has active endpoints" although no container was on it
	// (dockerx.ErrNetworkLeaked).
	Leaked bool
}

// ObservedContainer is a labelled student container.
type ObservedContainer struct {
	ID, Name, Student string
	// State is Docker's: created, running, paused, restarting, removing, exited or dead.
	State      string
	ConfigHash string
	Template   string
	// Paths are the collect paths it was made with: its work volumes are
	// api.VolumeName of each. Empty for a container made before work
	// volumes were named (its anonymous volumes go with it).
	Paths   []string
	Created int64 // unix seconds
	// StartedAt, FinishedAt and ExitCode describe the last run of a
	// container that stopped while its class is Up; they are read only for
	// those, so a converged class costs no inspect.
	StartedAt, FinishedAt time.Time
	ExitCode              int
	// StartRefused: the daemon refused this controller's last start of it
	// because containerd still holds a task for it (see ErrTaskExists).
	StartRefused bool
	// Restarts counts this controller's restarts of it in a row after runs
	// shorter than StableRun; each doubles the pause before the next.
	Restarts int
	// IP is its address on the class network, where its readiness check
	// reaches it.
	IP string
	// Waiting: it runs but has not answered its template's readiness check
	// yet; Unready says why once the check's timeout has passed.
	Waiting bool
	Unready string
	// Lost says why its work volume is out of reach for good (the runtime's
	// api.LabelLost): it is made again with its last collected work.
	Lost string
	// LostOn is where its work volumes are (api.LabelLostOn).
	LostOn string
	// Late: made after its class's Down for a late hand-in (api.LabelLate).
	Late bool
}

// ObservedTraefik is the routing container and whether it is attached to the
// class network.
type ObservedTraefik struct {
	ID       string
	Running  bool
	Attached bool
	// HostNetwork: Traefik shares the host's network, from which it reaches
	// every class network without being attached to it.
	HostNetwork bool
}

// Running counts the student containers that are running.
func (o Observed) Running() int {
	n := 0
	for _, c := range o.Containers {
		if c.State == "running" {
			n++
		}
	}
	return n
}

// Empty reports whether nothing of the class is left in Docker.
func (o Observed) Empty() bool {
	return o.Network == nil && len(o.Containers) == 0 && len(o.Volumes) == 0
}

// OnlyLeakedNetwork tells a class of which nothing is left but a network
// the daemon will not remove: it is Down, and the removal is retried.
func (o Observed) OnlyLeakedNetwork() bool {
	return o.Network != nil && o.Network.Leaked && len(o.Containers) == 0 && len(o.Stranded()) == 0
}

// Stranded lists, sorted, the students whose work volumes have no sandbox.
func (o Observed) Stranded() []string {
	var out []string
	for s := range o.Volumes {
		if _, ok := o.Containers[s]; !ok {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// observer is the part of Docker observation needs.
type observer interface {
	ListContainers(ctx context.Context, classID string) ([]container.Summary, error)
	ListNetworks(ctx context.Context, classID string) ([]network.Summary, error)
	InspectContainer(ctx context.Context, nameOrID string) (container.InspectResponse, error)
}

// observe reads the class's objects by label. A resource without Homeroom's
// labels is invisible here, and so can never be planned against.
//
// Traefik is inspected when the class is wanted Up (to connect it) or has a
// network (to disconnect it before the network goes): a Down class with
// neither, the common case, costs one call less a pass.
func observe(ctx context.Context, d observer, classID, traefikName string, wantUp bool) (Observed, error) {
	obs := Observed{Containers: map[string]ObservedContainer{}}
	nets, err := d.ListNetworks(ctx, classID)
	if err != nil {
		return obs, err
	}
	want := api.NetworkName(classID)
	for _, n := range nets {
		// The label filter already matched; the name check guards against a
		// labelled network someone renamed by hand.
		if n.Name == want {
			obs.Network = &ObservedNetwork{ID: n.ID, Name: n.Name}
		}
	}
	cs, err := d.ListContainers(ctx, classID)
	if err != nil {
		return obs, err
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].Created < cs[j].Created })
	for _, c := range cs {
		student := c.Labels[api.LabelStudent]
		if student == "" {
			continue
		}
		name := ""
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		oc := ObservedContainer{
			ID: c.ID, Name: name, Student: student, State: c.State,
			ConfigHash: c.Labels[api.LabelConfigHash],
			Template:   c.Labels[api.LabelTemplate], Created: c.Created,
			Paths:  artifacts.RulesFromLabels(c.Labels).Paths,
			Late:   c.Labels[api.LabelLate] != "",
			Lost:   c.Labels[api.LabelLost],
			LostOn: c.Labels[api.LabelLostOn],
		}
		if c.NetworkSettings != nil {
			if ep := c.NetworkSettings.Networks[want]; ep != nil {
				oc.IP = ep.IPAddress
			}
		}
		obs.Containers[student] = oc
	}
	if traefikName != "" && (wantUp || obs.Network != nil) {
		t, err := d.InspectContainer(ctx, traefikName)
		switch {
		case err == nil:
			obs.Traefik = &ObservedTraefik{ID: t.ID, Running: t.State != nil && t.State.Running,
				HostNetwork: t.HostConfig != nil && t.HostConfig.NetworkMode.IsHost()}
			if obs.Network != nil && t.NetworkSettings != nil {
				for name, ep := range t.NetworkSettings.Networks {
					if name == obs.Network.Name || (ep != nil && ep.NetworkID == obs.Network.ID) {
						obs.Traefik.Attached = true
					}
				}
			}
		case isNotFound(err):
		default:
			return obs, fmt.Errorf("inspect %s: %w", traefikName, err)
		}
	}
	return obs, nil
}

// volumeLister is the part of Docker that lists work volumes.
type volumeLister interface {
	ListVolumes(ctx context.Context, classID string) ([]*volume.Volume, error)
}

// observeVolumes adds the class's work volumes to obs.
func observeVolumes(ctx context.Context, d volumeLister, classID string, obs *Observed) error {
	vs, err := d.ListVolumes(ctx, classID)
	if err != nil {
		return err
	}
	obs.Volumes = map[string][]ObservedVolume{}
	for _, v := range vs {
		s, p := v.Labels[api.LabelStudent], v.Labels[api.LabelCollectPath]
		// Only volumes Homeroom named for a student's collect path.
		if s == "" || p == "" || v.Name != api.VolumeName(classID, s, p) {
			continue
		}
		obs.Volumes[s] = append(obs.Volumes[s], ObservedVolume{Name: v.Name, Student: s, CollectPath: p, Template: v.Labels[api.LabelTemplate]})
	}
	for s := range obs.Volumes {
		sort.Slice(obs.Volumes[s], func(i, j int) bool { return obs.Volumes[s][i].CollectPath < obs.Volumes[s][j].CollectPath })
	}
	return nil
}

// stampStops reads the last run of each stopped container of the students
// named (all when nil): when it started and stopped, and how it ended, for
// the restart pause and the status.
func stampStops(ctx context.Context, d observer, obs Observed, only []string) error {
	for s, c := range obs.Containers {
		if (c.State != "exited" && c.State != "dead") || (only != nil && !slices.Contains(only, s)) {
			continue
		}
		info, err := d.InspectContainer(ctx, c.ID)
		if isNotFound(err) {
			continue // gone since the list; the plan finds out
		}
		if err != nil {
			return fmt.Errorf("inspect %s: %w", c.Name, err)
		}
		if info.State != nil {
			c.StartedAt, _ = time.Parse(time.RFC3339Nano, info.State.StartedAt)
			c.FinishedAt, _ = time.Parse(time.RFC3339Nano, info.State.FinishedAt)
			c.ExitCode = info.State.ExitCode
		}
		obs.Containers[s] = c
	}
	return nil
}
