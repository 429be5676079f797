package reconcile

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/dockerx"
	"github.com/homeroom/homeroom/pkg/policy"
)

// Log bounds keep a chatty sandbox from filling the daemon's disk.
const (
	logMaxSize  = "10m"
	logMaxFiles = "2"
)

func managedLabels(classID string) map[string]string {
	return map[string]string{api.LabelManagedBy: api.ManagedByValue, api.LabelClass: classID}
}

// NetworkCreateOptions is the class network: a bridge of its own, labelled,
// on the given subnet, and internal (no route out) unless the template
// allows internet access.
func NetworkCreateOptions(classID string, internal bool, subnet netip.Prefix) network.CreateOptions {
	return network.CreateOptions{
		Driver:   "bridge",
		Internal: internal,
		Labels:   managedLabels(classID),
		IPAM:     &network.IPAM{Driver: "default", Config: []network.IPAMConfig{{Subnet: subnet.String()}}},
	}
}

// ContainerSpec builds a student's container from the class's template. The
// sandbox is hardened whatever the template says: no capabilities, no new
// privileges, bounded memory, CPU, processes and logs, and no host mounts.
func ContainerSpec(classID, student string, t *policy.Template, domain string) dockerx.ContainerSpec {
	name := api.ContainerName(classID, student)
	net := api.NetworkName(classID)
	router := name
	labels := managedLabels(classID)
	labels[api.LabelStudent] = student
	labels[api.LabelTemplate] = t.Name
	labels["traefik.enable"] = "true"
	labels["traefik.docker.network"] = net
	labels["traefik.http.routers."+router+".rule"] = fmt.Sprintf("Host(`%s`)", api.Host(classID, student, domain))
	labels["traefik.http.routers."+router+".service"] = router
	labels["traefik.http.services."+router+".loadbalancer.server.port"] = fmt.Sprint(t.Port)

	env := []string{"HOMEROOM_CLASS=" + classID, "HOMEROOM_STUDENT=" + student}
	keys := make([]string, 0, len(t.Env))
	for k := range t.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+t.Env[k])
	}
	cfg := &container.Config{
		Image:      t.Image,
		Hostname:   student,
		User:       t.User,
		Env:        env,
		Cmd:        t.Command,
		WorkingDir: t.WorkingDir,
		Labels:     labels,
	}
	pids := t.PIDs
	host := &container.HostConfig{
		NetworkMode:    container.NetworkMode(net),
		CapDrop:        []string{"ALL"},
		SecurityOpt:    []string{"no-new-privileges:true"},
		ReadonlyRootfs: t.ReadOnlyRootFS,
		LogConfig: container.LogConfig{Type: "json-file", Config: map[string]string{
			"max-size": logMaxSize, "max-file": logMaxFiles,
		}},
		Resources: container.Resources{
			Memory:     t.MemoryMiB << 20,
			MemorySwap: t.MemoryMiB << 20,
			NanoCPUs:   int64(t.CPUs * 1e9),
			PidsLimit:  &pids,
		},
	}
	if t.ReadOnlyRootFS {
		host.Tmpfs = map[string]string{"/tmp": "rw,noexec,nosuid,size=16m"}
		// Collect paths become anonymous volumes: writable while the root is
		// not, readable by the archive API (tmpfs is not), and removed with
		// the container once collected.
		for _, p := range t.CollectPaths {
			host.Mounts = append(host.Mounts, mount.Mount{
				Type: mount.TypeVolume, Target: p,
				VolumeOptions: &mount.VolumeOptions{Labels: map[string]string{
					api.LabelManagedBy: api.ManagedByValue, api.LabelClass: classID, api.LabelStudent: student,
				}},
			})
		}
	}
	spec := dockerx.ContainerSpec{
		Name:       name,
		Config:     cfg,
		HostConfig: host,
		Networking: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			net: {Aliases: []string{student}},
		}},
	}
	cfg.Labels[api.LabelConfigHash] = configHash(spec)
	return spec
}

// configHash fingerprints what the container was made from, so drift can be
// told apart from a container made by an older template.
func configHash(s dockerx.ContainerSpec) string {
	b, err := json.Marshal(struct {
		C *container.Config
		H *container.HostConfig
	}{s.Config, s.HostConfig})
	if err != nil {
		panic(err) // plain structs always marshal
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}
