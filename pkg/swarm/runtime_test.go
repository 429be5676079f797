package swarm

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/swarm"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/policy"
	"github.com/homeroom/homeroom/pkg/reconcile"
)

// A sandbox's service carries everything the single host's container spec
// has that the swarm can express: the hardening, the limits, the work
// volume, the labels the controller and Traefik read.
func TestServiceSpecKeepsTheSandboxSpec(t *testing.T) {
	tmpl, ok := policy.Default().Template("sandbox")
	if !ok {
		t.Fatal("no sandbox template")
	}
	spec := reconcile.ContainerSpec("c1", "alice", tmpl, "lab.example", "http://auth")
	svc := serviceSpec(spec)
	cs := svc.TaskTemplate.ContainerSpec

	if svc.Name != api.ContainerName("c1", "alice") || svc.Labels[api.LabelStudent] != "alice" || cs.Labels[api.LabelConfigHash] == "" {
		t.Errorf("name and labels: %q %v", svc.Name, svc.Labels)
	}
	if svc.Labels["traefik.enable"] != "true" || svc.Labels["traefik.swarm.network"] != api.NetworkName("c1") || svc.Labels["traefik.docker.network"] != "" {
		t.Errorf("Traefik's labels are on the service: %v", svc.Labels)
	}
	if cs.Image != tmpl.Image || cs.User != tmpl.User || !cs.ReadOnly {
		t.Errorf("image %q user %q read-only %v", cs.Image, cs.User, cs.ReadOnly)
	}
	if len(cs.CapabilityDrop) != 1 || cs.CapabilityDrop[0] != "ALL" || cs.Privileges == nil || !cs.Privileges.NoNewPrivileges {
		t.Errorf("capabilities %v, privileges %+v", cs.CapabilityDrop, cs.Privileges)
	}
	lim := svc.TaskTemplate.Resources.Limits
	if lim.MemoryBytes != tmpl.MemoryMiB<<20 || lim.NanoCPUs != int64(tmpl.CPUs*1e9) || lim.Pids != tmpl.PIDs {
		t.Errorf("limits %+v", lim)
	}
	if svc.TaskTemplate.Resources.Reservations.MemoryBytes != tmpl.MemoryMiB<<20 {
		t.Errorf("the template's memory is reserved on the node: %+v", svc.TaskTemplate.Resources.Reservations)
	}
	var work, tmp bool
	for _, m := range cs.Mounts {
		switch {
		case m.Type == mount.TypeVolume && m.Source == api.VolumeName("c1", "alice", "/workspace") && m.Target == "/workspace":
			work = m.VolumeOptions != nil && m.VolumeOptions.Labels[api.LabelStudent] == "alice"
		case m.Type == mount.TypeTmpfs && m.Target == "/tmp":
			tmp = true
		}
	}
	if !work || !tmp {
		t.Errorf("mounts %+v: want the labelled work volume and a tmpfs /tmp", cs.Mounts)
	}
	if n := svc.TaskTemplate.Networks; len(n) != 1 || n[0].Target != api.NetworkName("c1") || len(n[0].Aliases) != 1 || n[0].Aliases[0] != "alice" {
		t.Errorf("networks %+v", n)
	}
	if r := svc.Mode.Replicated; r == nil || r.Replicas == nil || *r.Replicas != 1 {
		t.Errorf("one replica: %+v", svc.Mode)
	}
	// Traefik reaches the task by its own address: no virtual address,
	// whose load balancer each node would set up on the sandbox's network.
	if e := svc.EndpointSpec; e == nil || e.Mode != swarm.ResolutionModeDNSRR || len(e.Ports) != 0 {
		t.Errorf("endpoint %+v: want DNS round robin and no published port", e)
	}
}

func TestStateOfASandbox(t *testing.T) {
	one, none := uint64(1), uint64(0)
	up := swarm.Service{Spec: swarm.ServiceSpec{Mode: swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &one}}}}
	down := swarm.Service{Spec: swarm.ServiceSpec{Mode: swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &none}}}}
	task := func(s swarm.TaskState) *swarm.Task { return &swarm.Task{Status: swarm.TaskStatus{State: s}} }
	for _, tc := range []struct {
		desc string
		svc  swarm.Service
		task *swarm.Task
		want string
	}{
		{"scaled to none", down, task(swarm.TaskStateShutdown), "exited"},
		{"no task yet", up, nil, "created"},
		{"being placed", up, task(swarm.TaskStatePending), "created"},
		{"running", up, task(swarm.TaskStateRunning), "running"},
		{"failed, restarted by the swarm", up, task(swarm.TaskStateFailed), "restarting"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if got := state(tc.svc, tc.task); got != tc.want {
				t.Errorf("state %q, want %q", got, tc.want)
			}
		})
	}
}

func TestJobWaiting(t *testing.T) {
	task := func(node string, s swarm.TaskState, err string) swarm.Task {
		return swarm.Task{NodeID: node, Status: swarm.TaskStatus{State: s, Err: err}}
	}
	for _, tc := range []struct {
		desc    string
		tasks   []swarm.Task
		nodes   []string
		waiting string
		failed  string
	}{
		{"one node, not placed", nil, nil, "the swarm to place it", ""},
		{"one node, running", []swarm.Task{task("n1", swarm.TaskStateRunning, "")}, nil, "node n1 (running)", ""},
		{"one node, complete", []swarm.Task{task("n1", swarm.TaskStateComplete, "")}, nil, "", ""},
		{"one node, failed", []swarm.Task{task("n1", swarm.TaskStateFailed, "task: non-zero exit (1)")}, nil, "", "task: non-zero exit (1)"},
		{"every node, one down", []swarm.Task{task("n1", swarm.TaskStateComplete, ""), task("n2", swarm.TaskStateComplete, "")}, []string{"n1", "n2", "n3"}, "node n3", ""},
		{"every node, all complete", []swarm.Task{task("n1", swarm.TaskStateComplete, ""), task("n2", swarm.TaskStateComplete, "")}, []string{"n1", "n2"}, "", ""},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			waiting, ferr := jobWaiting(tc.tasks, tc.nodes)
			if tc.failed != "" {
				if ferr == nil || !strings.Contains(ferr.Error(), tc.failed) {
					t.Fatalf("failure %v, want %q", ferr, tc.failed)
				}
				return
			}
			if ferr != nil {
				t.Fatal(ferr)
			}
			if got := strings.Join(waiting, ", "); got != tc.waiting {
				t.Errorf("waiting on %q, want %q", got, tc.waiting)
			}
		})
	}
}

// The runtime's hints stay bounded however many services come and go.
func TestHintsAreBounded(t *testing.T) {
	m := map[string]string{}
	for i := range maxRemembered + 10 {
		note(m, "svc-"+strconv.Itoa(i), "c")
	}
	if len(m) > maxRemembered || m["svc-"+strconv.Itoa(maxRemembered+9)] != "c" {
		t.Errorf("%d hints kept, the newest %q", len(m), m["svc-"+strconv.Itoa(maxRemembered+9)])
	}
	note(m, "svc-"+strconv.Itoa(maxRemembered+9), "d")
	if m["svc-"+strconv.Itoa(maxRemembered+9)] != "d" {
		t.Error("a hint was not updated")
	}
}

// The nodes' reports become volumes with sizes; a student's volume on a
// node other than their sandbox's (one a lost node kept, back again) does
// not count towards their cap, and a report that is not one fails the
// measurement rather than passing for an empty node.
func TestVolumesOnCountsEachStudentWhereTheirSandboxIs(t *testing.T) {
	line := func(node, class, student string, size int64) string {
		b, err := json.Marshal(api.NodeVolume{Node: node, Name: "v-" + student + "-" + node, Size: size,
			Labels: map[string]string{api.LabelClass: class, api.LabelStudent: student}})
		if err != nil {
			t.Fatal(err)
		}
		return string(b) + "\n"
	}
	out := line("n1", "c", "alice", 5<<20) + line("n2", "c", "alice", 900<<20) + "\n" + line("n2", "c", "bob", 7) + line("n3", "d", "carol", -1)
	vs, at, err := volumesOn(out, map[[2]string]string{{"c", "alice"}: "n1", {"c", "bob"}: "n2"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range vs {
		got = append(got, fmt.Sprintf("%s=%d", v.Name, v.UsageData.Size))
	}
	if want := []string{"v-alice-n1=5242880", "v-bob-n2=7", "v-carol-n3=-1"}; !slices.Equal(got, want) {
		t.Errorf("volumes %v, want %v", got, want)
	}
	// Where each is, for a sandbox made again: carol's, whose sandbox is
	// gone, too.
	if want := map[string]string{"v-alice-n1": "n1", "v-bob-n2": "n2", "v-carol-n3": "n3"}; !maps.Equal(at, want) {
		t.Errorf("volumes at %v, want %v", at, want)
	}
	if _, _, err := volumesOn(out+"nodejob: disk usage: permission denied\n", nil); err == nil {
		t.Error("a line that is no report was taken")
	}
}
