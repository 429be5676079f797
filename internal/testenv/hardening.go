package testenv

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/homeroom/homeroom/pkg/policy"
)

// CheckHardened checks, on the daemon's own account of a student's
// container, what Homeroom promises of every sandbox whatever its template:
// no capabilities and no new privileges, the template's user and limits
// (memory without swap, CPU, processes, logs), no host namespace, device or
// mount, volumes only at the collect paths, and a read-only root with a
// noexec /tmp when the template asks for one.
func CheckHardened(t *testing.T, info container.InspectResponse, tmpl *policy.Template) {
	t.Helper()
	h := info.HostConfig
	if h.Privileged {
		t.Error("privileged")
	}
	if !slices.Equal(h.CapDrop, []string{"ALL"}) {
		t.Errorf("CapDrop = %v, want [ALL]", h.CapDrop)
	}
	if len(h.CapAdd) != 0 {
		t.Errorf("CapAdd = %v, want none", h.CapAdd)
	}
	if !slices.Contains(h.SecurityOpt, "no-new-privileges:true") {
		t.Errorf("SecurityOpt = %v, want no-new-privileges:true", h.SecurityOpt)
	}
	for _, o := range h.SecurityOpt {
		if strings.Contains(o, "unconfined") {
			t.Errorf("SecurityOpt %q", o)
		}
	}
	if h.ReadonlyRootfs != tmpl.ReadOnlyRootFS {
		t.Errorf("ReadonlyRootfs = %v, the template says %v", h.ReadonlyRootfs, tmpl.ReadOnlyRootFS)
	}
	if info.Config.User != tmpl.User || tmpl.User == "" || strings.HasPrefix(tmpl.User, "0") || strings.HasPrefix(tmpl.User, "root") {
		t.Errorf("User = %q, the template says %q: want an unprivileged user", info.Config.User, tmpl.User)
	}
	if h.PidsLimit == nil || *h.PidsLimit != tmpl.PIDs {
		t.Errorf("PidsLimit = %v, want %d", h.PidsLimit, tmpl.PIDs)
	}
	if h.Memory != tmpl.MemoryMiB<<20 {
		t.Errorf("Memory = %d, want %d", h.Memory, tmpl.MemoryMiB<<20)
	}
	if h.MemorySwap != h.Memory {
		t.Errorf("MemorySwap = %d: swap lets the sandbox use more than its %d bytes", h.MemorySwap, h.Memory)
	}
	if h.OomKillDisable != nil && *h.OomKillDisable {
		t.Error("OOM killer disabled")
	}
	if h.NanoCPUs != int64(tmpl.CPUs*1e9) {
		t.Errorf("NanoCPUs = %d, want %d", h.NanoCPUs, int64(tmpl.CPUs*1e9))
	}
	if h.LogConfig.Type != "json-file" || h.LogConfig.Config["max-size"] == "" || h.LogConfig.Config["max-file"] == "" {
		t.Errorf("LogConfig = %+v, want json-file bounded by max-size and max-file", h.LogConfig)
	}
	if h.NetworkMode.IsHost() || h.PidMode.IsHost() || h.IpcMode.IsHost() || h.UTSMode.IsHost() || h.UsernsMode.IsHost() {
		t.Errorf("a host namespace is shared: net %q pid %q ipc %q uts %q userns %q",
			h.NetworkMode, h.PidMode, h.IpcMode, h.UTSMode, h.UsernsMode)
	}
	if len(h.Devices) != 0 || len(h.DeviceCgroupRules) != 0 {
		t.Errorf("devices %v rules %v", h.Devices, h.DeviceCgroupRules)
	}
	if len(h.Binds) != 0 || len(h.VolumesFrom) != 0 {
		t.Errorf("Binds = %v, VolumesFrom = %v, want none", h.Binds, h.VolumesFrom)
	}
	for _, m := range h.Mounts {
		if m.Type != mount.TypeVolume {
			t.Errorf("a %s mount in the spec: %+v", m.Type, m)
		}
	}
	for _, m := range info.Mounts {
		if m.Type == mount.TypeBind || strings.Contains(m.Source, "docker.sock") || strings.Contains(m.Destination, "docker.sock") {
			t.Errorf("host mount %+v", m)
		}
		if m.Type == mount.TypeVolume && !slices.Contains(tmpl.CollectPaths, m.Destination) {
			t.Errorf("a volume outside the collect paths: %+v", m)
		}
	}
	if tmpl.ReadOnlyRootFS {
		if opts, ok := h.Tmpfs["/tmp"]; !ok || !strings.Contains(opts, "noexec") || !strings.Contains(opts, "nosuid") {
			t.Errorf("Tmpfs = %v, want /tmp noexec,nosuid", h.Tmpfs)
		}
	}
}

// CgroupFile finds a file of one of the container's cgroups (controller is
// "pids", "memory", …), when the test runs on the daemon's machine: cgroup
// v1 or v2, cgroupfs or systemd driver.
func CgroupFile(containerID, controller, name string) (string, bool) {
	for _, dir := range []string{
		"/sys/fs/cgroup/" + controller + "/docker/" + containerID,
		"/sys/fs/cgroup/" + controller + "/system.slice/docker-" + containerID + ".scope",
		"/sys/fs/cgroup/docker/" + containerID,
		"/sys/fs/cgroup/system.slice/docker-" + containerID + ".scope",
	} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p, true
		}
	}
	return "", false
}

// OOMKills is how many of the container's processes its memory limit has
// killed (memory.events on cgroup v2, memory.oom_control on v1).
func OOMKills(t *testing.T, containerID string) int64 {
	t.Helper()
	path, ok := CgroupFile(containerID, "memory", "memory.events")
	if !ok {
		path, ok = CgroupFile(containerID, "memory", "memory.oom_control")
	}
	if !ok {
		t.Skip("the container's memory cgroup is not visible from here")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				t.Fatalf("%s: %q", path, line)
			}
			return n
		}
	}
	t.Skipf("%s counts no oom_kill (kernel before 4.13)", path)
	return 0
}
