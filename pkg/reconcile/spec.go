package reconcile

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"
	"sync"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
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
// on the given subnet, internal (no route out) unless the template allows
// internet access, and without container-to-container traffic unless it
// allows collaboration. Without it a student's program could reach a
// classmate's sandbox by IP and skip the sign-in Traefik checks; Traefik
// then reaches sandboxes from the host's network, which the bridge lets in.
func NetworkCreateOptions(classID string, t *policy.Template, subnet netip.Prefix) network.CreateOptions {
	o := network.CreateOptions{
		Driver:   "bridge",
		Internal: !t.Internet,
		Labels:   managedLabels(classID),
		IPAM:     &network.IPAM{Driver: "default", Config: []network.IPAMConfig{{Subnet: subnet.String()}}},
	}
	if !t.Collaboration {
		o.Options = map[string]string{bridgeICC: "false"}
	}
	return o
}

// bridgeICC is the bridge driver's option for traffic between containers.
const bridgeICC = "com.docker.network.bridge.enable_icc"

// ForwardAuthResponseHeaders are the headers of the sign-in check's answer
// that Traefik puts on the request it passes to the sandbox, replacing the
// browser's: Cookie comes back without Homeroom's session cookie, so a
// sandbox never learns the session of whoever visits it (a teacher's).
const ForwardAuthResponseHeaders = "Cookie"

// ContainerSpec builds a student's container from the class's template. The
// sandbox is hardened whatever the template says: no capabilities, no new
// privileges, bounded memory, CPU, processes and logs, and no host mounts.
//
// With forwardAuth set (the address of Homeroom's sign-in check, as Traefik
// reaches it), every request to the student's host is checked there first.
func ContainerSpec(classID, student string, t *policy.Template, domain, forwardAuth string) dockerx.ContainerSpec {
	name := api.ContainerName(classID, student)
	net := api.NetworkName(classID)
	router := name
	labels := managedLabels(classID)
	labels[api.LabelStudent] = student
	labels[api.LabelTemplate] = t.Name
	labels[api.LabelCollect] = artifacts.RulesFor(t).Label()
	labels["traefik.enable"] = "true"
	labels["traefik.docker.network"] = net
	labels["traefik.http.routers."+router+".rule"] = fmt.Sprintf("Host(`%s`)", api.Host(classID, student, domain))
	labels["traefik.http.routers."+router+".service"] = router
	labels["traefik.http.services."+router+".loadbalancer.server.port"] = fmt.Sprint(t.Port)
	if forwardAuth != "" {
		// A middleware of the router's own: identical definitions on many
		// containers are merged by Traefik, but differing ones (during a
		// change of address) would disable every router that uses them.
		mw := router + "-signin"
		labels["traefik.http.middlewares."+mw+".forwardauth.address"] = forwardAuth
		labels["traefik.http.middlewares."+mw+".forwardauth.authRequestHeaders"] = "Accept,Cookie"
		labels["traefik.http.middlewares."+mw+".forwardauth.authResponseHeaders"] = ForwardAuthResponseHeaders
		// The check redirects to "/" of the student's host after a sign-in;
		// without this Traefik would resolve that against its own address.
		labels["traefik.http.middlewares."+mw+".forwardauth.preserveLocationHeader"] = "true"
		labels["traefik.http.routers."+router+".middlewares"] = mw
	}

	// Who and where the sandbox is, for a lab that shows it or builds links:
	// the base URL is the student's endpoint, as the class's status gives it.
	env := []string{"HOMEROOM_CLASS=" + classID, "HOMEROOM_STUDENT=" + student,
		"HOMEROOM_BASE_URL=" + api.Endpoint(classID, student, domain)}
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
	}
	host.Mounts = workMounts(classID, student, t.Name, artifacts.RulesFor(t).Paths)
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

// workMounts are the student's work volumes, one a collect path: named, so
// that they outlive the container (a sandbox removed by hand is made again
// on the same work), writable while the root is not, and readable by the
// archive API (tmpfs is not). They are removed only once collected.
func workMounts(classID, student, template string, paths []string) []mount.Mount {
	var ms []mount.Mount
	for _, p := range paths {
		ms = append(ms, mount.Mount{
			Type: mount.TypeVolume, Source: api.VolumeName(classID, student, p), Target: p,
			VolumeOptions: &mount.VolumeOptions{Labels: map[string]string{
				api.LabelManagedBy: api.ManagedByValue, api.LabelClass: classID, api.LabelStudent: student,
				api.LabelCollectPath: p, api.LabelTemplate: template,
			}},
		})
	}
	return ms
}

// RecoverySpec is a container that is never started: it mounts the work
// volumes of a student whose sandbox is gone, so that the archive API can
// collect them. It is made from the class's image (any local image would
// do, as nothing runs) and has no network.
func RecoverySpec(classID, student, image, template string, rules artifacts.Rules) dockerx.ContainerSpec {
	paths := rules.Paths
	labels := managedLabels(classID)
	labels[api.LabelRecovering] = student
	labels[api.LabelTemplate] = template
	// The template's excluded directories too: the collector keeps only
	// the exclusions that the container's label and the template share.
	labels[api.LabelCollect] = artifacts.Rules{Paths: paths, ExcludeDirs: rules.ExcludeDirs}.Label()
	return dockerx.ContainerSpec{
		Name:   api.RecoveryName(classID, student),
		Config: &container.Config{Image: image, Labels: labels, Cmd: []string{"true"}, NetworkDisabled: true},
		HostConfig: &container.HostConfig{
			NetworkMode: "none", CapDrop: []string{"ALL"}, SecurityOpt: []string{"no-new-privileges:true"},
			ReadonlyRootfs: true, Mounts: workMounts(classID, student, template, paths),
		},
	}
}

// specHashes remembers the config hash of each student's container spec as
// the template, domain and sign-in address are now. Every pass over an Up
// class compares every sandbox's hash with it (TemplateCurrent), and building
// and hashing a spec is most of an idle resync's CPU; the inputs change only
// when the policy or the controller's flags do, which makes a new key.
type specHashes struct {
	mu sync.Mutex
	m  map[specKey]string
}

type specKey struct {
	classID, student, domain, forwardAuth string
	tmpl                                  *policy.Template
}

// maxSpecHashes bounds the memory: past it the cache starts again, which
// only costs the hashes' recomputation.
const maxSpecHashes = 20_000

// of returns ContainerSpec(…)'s config hash; a nil cache computes it.
func (h *specHashes) of(classID, student string, t *policy.Template, domain, forwardAuth string) string {
	if h == nil {
		return ContainerSpec(classID, student, t, domain, forwardAuth).Config.Labels[api.LabelConfigHash]
	}
	k := specKey{classID: classID, student: student, domain: domain, forwardAuth: forwardAuth, tmpl: t}
	h.mu.Lock()
	v, ok := h.m[k]
	h.mu.Unlock()
	if ok {
		return v
	}
	v = ContainerSpec(classID, student, t, domain, forwardAuth).Config.Labels[api.LabelConfigHash]
	h.mu.Lock()
	if h.m == nil || len(h.m) >= maxSpecHashes {
		h.m = map[specKey]string{}
	}
	h.m[k] = v
	h.mu.Unlock()
	return v
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
