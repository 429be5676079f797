package reconcile_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
	"github.com/homeroom/homeroom/pkg/dockerx"
	"github.com/homeroom/homeroom/pkg/policy"
	"github.com/homeroom/homeroom/pkg/reconcile"
	"github.com/homeroom/homeroom/pkg/store"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"
)

// These tests run whole passes of the reconciler against in-memory fakes of
// Docker, the object store and the class store: no daemon, no services.

const (
	classID     = "cs101"
	domain      = "lab.test"
	traefikName = "traefik"
)

func cname(student string) string { return api.ContainerName(classID, student) }

var netName = api.NetworkName(classID)

// faults fails chosen calls: a call fails when its operation matches and its
// target (a container or network name, an object key) contains the fault's.
type faults struct {
	mu   sync.Mutex
	list []*fault
}

type fault struct {
	op, target string
	times      int // calls left to fail; negative fails until cleared
}

// fail makes the next times calls of op on target fail; times < 0 means
// every call until clear.
func (f *faults) fail(op, target string, times int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.list = append(f.list, &fault{op: op, target: target, times: times})
}

func (f *faults) clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.list = nil
}

func (f *faults) check(op, target string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ft := range f.list {
		if ft.op != op || !strings.Contains(target, ft.target) || ft.times == 0 {
			continue
		}
		if ft.times > 0 {
			ft.times--
		}
		return fmt.Errorf("injected failure of %s %s", op, target)
	}
	return nil
}

// fakeDocker is the Docker Engine as the reconciler sees it through
// reconcile.Docker, with dockerx's idempotency: removing what is gone
// succeeds, creating what exists adopts or replaces it.
type fakeDocker struct {
	faults

	mu         sync.Mutex
	seq        int
	containers map[string]*fakeContainer // by id
	networks   map[string]*fakeNetwork   // by id
	volumes    map[string]*fakeVolume    // by name
	calls      []string                  // "Op target", in call order
	// refusedSubnets are taken by something the daemon's network list
	// does not show; creating a network on one is refused.
	refusedSubnets map[string]bool
	created        []dockerx.ContainerSpec // every CreateContainer, in order
	// beforeRemove is called, without the lock, before a container is removed.
	beforeRemove func(name string, labels map[string]string)
	// beforeConnect is called, without the lock, before a network connect.
	beforeConnect func()
	// owners are the uids CopyTo wrote files as, by "container:path".
	owners map[string]int
	// lostWork are the students whose work volumes went with a lost node
	// (see lose): their next sandbox starts empty.
	lostWork map[string]bool
	// elsewhere are the volumes on other places (swarm nodes), by place
	// and name: those lost sandboxes left (see lose); placesUp, which of
	// those places can be worked on.
	elsewhere map[string]map[string]*fakeVolume
	placesUp  map[string]bool
}

type fakeContainer struct {
	id, name, image, state string
	labels                 map[string]string
	created                int64
	exitCode               int
	startedAt, finishedAt  time.Time         // the last run's; zero: never
	nets                   map[string]bool   // ids of attached networks
	hostNetwork            bool              // shares the host's network
	files                  map[string]string // path relative to "/" → content
	logs                   []logFrame
	mounts                 map[string]string // target → volume name
	on                     string            // a recovery container's place: its mounts are there
	taskKept               bool              // containerd kept a task: every start is refused
}

// fakeVolume is a named volume. Its files are a container's files under
// the mount's target, synced when the container is made and removed.
type fakeVolume struct {
	labels map[string]string
	files  map[string]string // path relative to "/" → content
}

type logFrame struct {
	stream stdcopy.StdType
	text   string
}

type fakeNetwork struct {
	// leaked: the daemon counts endpoints of containers long gone, and
	// refuses every removal (until it is restarted).
	leaked   bool
	id, name string
	labels   map[string]string
	opts     network.CreateOptions
}

// dockerWrites are the calls that change Docker.
var dockerWrites = map[string]bool{
	"EnsureNetwork": true, "RemoveNetwork": true, "Connect": true, "Disconnect": true,
	"CreateContainer": true, "StartContainer": true, "StopContainer": true, "RemoveContainer": true,
	"RemoveVolume": true, "RemoveVolumeOn": true,
}

func newFakeDocker() *fakeDocker {
	return &fakeDocker{containers: map[string]*fakeContainer{}, networks: map[string]*fakeNetwork{}, volumes: map[string]*fakeVolume{}}
}

// work is what a student's sandbox holds when collected.
func work(student string) map[string]string {
	return map[string]string{
		"workspace/main.py":       "print('hello from " + student + "')\n",
		"workspace/notes/todo.md": "- finish " + student + "'s essay\n",
	}
}

func logsOf(student string) []logFrame {
	return []logFrame{
		{stdcopy.Stdout, "listening on :8080\n"},
		{stdcopy.Stderr, "warning: " + student + " saved an empty file\n"},
		{stdcopy.Stdout, "bye from " + student + "\n"},
	}
}

// wantLog is the log object: stdout and stderr interleaved as sent.
func wantLog(student string) string {
	var b strings.Builder
	for _, f := range logsOf(student) {
		b.WriteString(f.text)
	}
	return b.String()
}

func cloneMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func notFound(kind, ref string) error {
	return fmt.Errorf("no such %s: %s: %w", kind, ref, cerrdefs.ErrNotFound)
}

// record logs a call and returns its injected failure, if any. d.mu is held.
func (d *fakeDocker) record(op, target string) error {
	d.calls = append(d.calls, op+" "+target)
	return d.check(op, target)
}

func (d *fakeDocker) lookup(ref string) *fakeContainer {
	if c, ok := d.containers[ref]; ok {
		return c
	}
	ref = strings.TrimPrefix(ref, "/")
	for _, c := range d.containers {
		if c.name == ref {
			return c
		}
	}
	return nil
}

func (d *fakeDocker) lookupNetwork(ref string) *fakeNetwork {
	if n, ok := d.networks[ref]; ok {
		return n
	}
	for _, n := range d.networks {
		if n.name == ref {
			return n
		}
	}
	return nil
}

// targetOf names a container for faults and the call log.
func (d *fakeDocker) targetOf(ref string) string {
	if c := d.lookup(ref); c != nil {
		return c.name
	}
	return ref
}

func (d *fakeDocker) nextID(kind string) string {
	d.seq++
	return fmt.Sprintf("%s%04d", kind, d.seq)
}

// matches is the label filter dockerx applies: managed by Homeroom and, when
// classID is set, of that class.
func matches(labels map[string]string, classID string) bool {
	return labels[api.LabelManagedBy] == api.ManagedByValue && (classID == "" || labels[api.LabelClass] == classID)
}

func (d *fakeDocker) ListContainers(_ context.Context, classID string) ([]container.Summary, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.record("ListContainers", classID); err != nil {
		return nil, err
	}
	var out []container.Summary
	for _, c := range d.containers {
		if matches(c.labels, classID) {
			eps := map[string]*network.EndpointSettings{}
			for id := range c.nets {
				if n := d.networks[id]; n != nil {
					eps[n.name] = &network.EndpointSettings{NetworkID: id, IPAddress: "ip-of-" + c.name}
				}
			}
			out = append(out, container.Summary{
				ID: c.id, Names: []string{"/" + c.name}, Image: c.image,
				Labels: cloneMap(c.labels), State: c.state, Created: c.created,
				NetworkSettings: &container.NetworkSettingsSummary{Networks: eps},
			})
		}
	}
	return out, nil
}

func (d *fakeDocker) ListNetworks(_ context.Context, classID string) ([]network.Summary, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.record("ListNetworks", classID); err != nil {
		return nil, err
	}
	var out []network.Summary
	for _, n := range d.networks {
		if matches(n.labels, classID) {
			out = append(out, network.Summary{ID: n.id, Name: n.name, Driver: n.opts.Driver, Labels: cloneMap(n.labels)})
		}
	}
	return out, nil
}

func (d *fakeDocker) InspectContainer(_ context.Context, ref string) (container.InspectResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.record("InspectContainer", d.targetOf(ref)); err != nil {
		return container.InspectResponse{}, err
	}
	c := d.lookup(ref)
	if c == nil {
		return container.InspectResponse{}, notFound("container", ref)
	}
	nets := map[string]*network.EndpointSettings{}
	for id := range c.nets {
		nets[d.networks[id].name] = &network.EndpointSettings{NetworkID: id}
	}
	resp := container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{
			ID: c.id, Name: "/" + c.name, Image: c.image,
			State: &container.State{
				Status: c.state, Running: c.state == container.StateRunning, ExitCode: c.exitCode,
				StartedAt: c.startedAt.Format(time.RFC3339Nano), FinishedAt: c.finishedAt.Format(time.RFC3339Nano),
			},
		},
		Config:          &container.Config{Image: c.image, Labels: cloneMap(c.labels)},
		NetworkSettings: &container.NetworkSettings{Networks: nets},
	}
	if c.hostNetwork {
		resp.HostConfig = &container.HostConfig{NetworkMode: "host"}
		resp.NetworkSettings.Networks = map[string]*network.EndpointSettings{"host": {NetworkID: "host"}}
	}
	return resp, nil
}

func (d *fakeDocker) EnsureNetwork(_ context.Context, name string, opts network.CreateOptions) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.record("EnsureNetwork", name); err != nil {
		return "", err
	}
	if opts.IPAM != nil && len(opts.IPAM.Config) > 0 && d.refusedSubnets[opts.IPAM.Config[0].Subnet] {
		// As the daemon answers a subnet that overlaps one it does not list.
		return "", fmt.Errorf("Pool overlaps with other one on this address space: %w", cerrdefs.ErrPermissionDenied)
	}
	if n := d.lookupNetwork(name); n != nil {
		if !matches(n.labels, opts.Labels[api.LabelClass]) {
			return "", fmt.Errorf("network %s %w", name, dockerx.ErrNotOurs)
		}
		return n.id, nil
	}
	n := &fakeNetwork{id: d.nextID("net"), name: name, labels: cloneMap(opts.Labels), opts: opts}
	d.networks[n.id] = n
	return n.id, nil
}

// UsedSubnets answers like the daemon: a subnet is taken when a network
// refuses a create over it, as the real daemon does for an overlap.
func (d *fakeDocker) UsedSubnets(context.Context) ([]netip.Prefix, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.record("UsedSubnets", ""); err != nil {
		return nil, err
	}
	var out []netip.Prefix
	for _, n := range d.networks {
		if n.opts.IPAM == nil {
			continue
		}
		for _, c := range n.opts.IPAM.Config {
			if p, err := netip.ParsePrefix(c.Subnet); err == nil {
				out = append(out, p)
			}
		}
	}
	return out, nil
}

func (d *fakeDocker) RemoveNetwork(_ context.Context, ref string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := d.lookupNetwork(ref)
	target := ref
	if n != nil {
		target = n.name
	}
	if err := d.record("RemoveNetwork", target); err != nil {
		return err
	}
	if n == nil {
		return nil
	}
	if n.leaked {
		// As dockerx tells it, having found no container on it.
		return fmt.Errorf("remove network %s: %w: network %s id %s has active endpoints", n.name, dockerx.ErrNetworkLeaked, n.name, n.id)
	}
	for _, c := range d.containers {
		if c.nets[n.id] {
			return fmt.Errorf("remove network %s: error while removing network: network %s has active endpoints (%s)", n.id, n.name, c.name)
		}
	}
	delete(d.networks, n.id)
	return nil
}

func (d *fakeDocker) Connect(_ context.Context, networkID, containerID string) error {
	if d.beforeConnect != nil {
		d.beforeConnect()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.record("Connect", d.targetOf(containerID)); err != nil {
		return err
	}
	n, c := d.lookupNetwork(networkID), d.lookup(containerID)
	if n == nil || c == nil {
		return notFound("network or container", networkID+" "+containerID)
	}
	c.nets[n.id] = true
	return nil
}

func (d *fakeDocker) Disconnect(_ context.Context, networkID, containerID string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.record("Disconnect", d.targetOf(containerID)); err != nil {
		return err
	}
	n, c := d.lookupNetwork(networkID), d.lookup(containerID)
	if n != nil && c != nil {
		delete(c.nets, n.id)
	}
	return nil
}

func (d *fakeDocker) CreateContainer(_ context.Context, spec dockerx.ContainerSpec) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.record("CreateContainer", spec.Name); err != nil {
		return "", err
	}
	want := spec.Config.Labels
	if old := d.lookup(spec.Name); old != nil {
		got := old.labels
		if !matches(got, want[api.LabelClass]) || got[api.LabelStudent] != want[api.LabelStudent] {
			return "", fmt.Errorf("container %s %w", spec.Name, dockerx.ErrNotOurs)
		}
		if got[api.LabelConfigHash] == want[api.LabelConfigHash] {
			return old.id, nil
		}
		delete(d.containers, old.id)
	}
	c := &fakeContainer{
		id: d.nextID("ctr"), name: spec.Name, image: spec.Config.Image, state: container.StateCreated,
		labels: cloneMap(want), created: int64(d.seq), nets: map[string]bool{},
		files: work(want[api.LabelStudent]), logs: logsOf(want[api.LabelStudent]),
		mounts: map[string]string{},
	}
	if on := want[api.LabelRecoverOn]; on != "" {
		// A recovery container at another place: the volumes there.
		c.files, c.on = map[string]string{}, on
		for _, m := range spec.HostConfig.Mounts {
			if v, ok := d.elsewhere[on][m.Source]; ok {
				c.mounts[m.Target] = m.Source
				maps.Copy(c.files, v.files)
			}
		}
		d.containers[c.id] = c
		d.created = append(d.created, spec)
		return c.id, nil
	}
	if want[api.LabelStudent] == "" || want[api.LabelLate] != "" || d.lostWork[want[api.LabelStudent]] {
		// A recovery container: only its volumes; a late hand-in's
		// sandbox, or one made again for a lost node: empty volumes, until
		// its work is restored.
		c.files = map[string]string{}
	}
	for _, m := range spec.HostConfig.Mounts {
		if m.Type != mount.TypeVolume || m.Source == "" {
			continue
		}
		dir := strings.TrimPrefix(m.Target, "/") + "/"
		c.mounts[m.Target] = m.Source
		v, ok := d.volumes[m.Source]
		if !ok {
			// A new volume: what the student will have written there.
			v = &fakeVolume{labels: cloneMap(m.VolumeOptions.Labels), files: map[string]string{}}
			for p, body := range c.files {
				if strings.HasPrefix(p, dir) {
					v.files[p] = body
				}
			}
			d.volumes[m.Source] = v
			continue
		}
		// An existing volume: the work it holds, not a fresh workspace.
		for p := range c.files {
			if strings.HasPrefix(p, dir) {
				delete(c.files, p)
			}
		}
		for p, body := range v.files {
			c.files[p] = body
		}
	}
	if spec.Networking != nil {
		for name := range spec.Networking.EndpointsConfig {
			n := d.lookupNetwork(name)
			if n == nil {
				return "", notFound("network", name)
			}
			c.nets[n.id] = true
		}
	}
	d.containers[c.id] = c
	d.created = append(d.created, spec)
	return c.id, nil
}

func (d *fakeDocker) StartContainer(_ context.Context, ref string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.record("StartContainer", d.targetOf(ref)); err != nil {
		return err
	}
	c := d.lookup(ref)
	if c == nil {
		return notFound("container", ref)
	}
	if c.taskKept {
		// What the daemon answers once containerd kept a task for it.
		return fmt.Errorf("start container %s: Error response from daemon: failed to create task for container: task %s: already exists", c.name, c.id)
	}
	c.state = container.StateRunning
	return nil
}

func (d *fakeDocker) StopContainer(_ context.Context, ref string, _ int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.record("StopContainer", d.targetOf(ref)); err != nil {
		return err
	}
	if c := d.lookup(ref); c != nil && c.state != container.StateCreated {
		c.state = container.StateExited
	}
	return nil
}

func (d *fakeDocker) RemoveContainer(_ context.Context, ref string) error {
	d.mu.Lock()
	err := d.record("RemoveContainer", d.targetOf(ref))
	c := d.lookup(ref)
	hook := d.beforeRemove
	var name string
	var labels map[string]string
	var kept bool // its work is on named volumes, which outlive it
	if c != nil {
		name, labels, kept = c.name, cloneMap(c.labels), len(c.mounts) > 0
	}
	d.mu.Unlock()
	if err != nil || c == nil {
		return err
	}
	if hook != nil && !kept {
		hook(name, labels) // the volumes' removal is checked on its own
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for target, name := range c.mounts {
		if v, ok := d.volumes[name]; ok && c.on == "" {
			dir := strings.TrimPrefix(target, "/") + "/"
			v.files = map[string]string{}
			for p, body := range c.files {
				if strings.HasPrefix(p, dir) {
					v.files[p] = body
				}
			}
		}
	}
	delete(d.containers, c.id)
	return nil
}

func (d *fakeDocker) ListVolumes(_ context.Context, classID string) ([]*volume.Volume, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.record("ListVolumes", classID); err != nil {
		return nil, err
	}
	var out []*volume.Volume
	for name, v := range d.volumes {
		if matches(v.labels, classID) {
			out = append(out, &volume.Volume{Name: name, Labels: cloneMap(v.labels)})
		}
	}
	return out, nil
}

func (d *fakeDocker) RemoveVolume(_ context.Context, name string) error {
	d.mu.Lock()
	err := d.record("RemoveVolume", name)
	v, hook := d.volumes[name], d.beforeRemove
	d.mu.Unlock()
	if err != nil || v == nil {
		return err
	}
	if hook != nil {
		hook(name, v.labels)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.containers {
		for _, v := range c.mounts {
			if v == name {
				return fmt.Errorf("remove volume %s: volume is in use by %s", name, c.name)
			}
		}
	}
	delete(d.volumes, name)
	return nil
}

// VolumeSizes measures each volume by the files of the container that
// mounts it (the fake's live view), or by its own when none does.
func (d *fakeDocker) VolumeSizes(_ context.Context) ([]*volume.Volume, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.record("VolumeSizes", ""); err != nil {
		return nil, err
	}
	var out []*volume.Volume
	for name, v := range d.volumes {
		files := v.files
		for _, c := range d.containers {
			for target, vn := range c.mounts {
				if vn == name {
					files = map[string]string{}
					dir := strings.TrimPrefix(target, "/") + "/"
					for p, body := range c.files {
						if strings.HasPrefix(p, dir) {
							files[p] = body
						}
					}
				}
			}
		}
		var size int64
		for _, body := range files {
			size += int64(len(body))
		}
		out = append(out, &volume.Volume{Name: name, Labels: cloneMap(v.labels), UsageData: &volume.UsageData{Size: size, RefCount: 1}})
	}
	return out, nil
}

// volumeNames lists the volumes left, sorted.
func (d *fakeDocker) volumeNames() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for name := range d.volumes {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// Archive streams a tar named as Docker names it: entries are relative to
// the parent of p, so "/workspace" yields "workspace/" and "workspace/<file>".
func (d *fakeDocker) Archive(_ context.Context, id, p string) (io.ReadCloser, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.record("Archive", d.targetOf(id)); err != nil {
		return nil, err
	}
	c := d.lookup(id)
	if c == nil {
		return nil, notFound("container", id)
	}
	dir := strings.TrimPrefix(p, "/") + "/"
	var names []string
	for f := range c.files {
		if strings.HasPrefix(f, dir) {
			names = append(names, f)
		}
	}
	if _, mounted := c.mounts[p]; len(names) == 0 && !mounted {
		return nil, notFound("file", "Could not find the file "+p+" in container "+c.name)
	}
	sort.Strings(names)
	base := path.Base(p)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mustTar := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	// A work volume's directory is the sandbox user's, as the image has it.
	mustTar(tw.WriteHeader(&tar.Header{Name: base + "/", Typeflag: tar.TypeDir, Mode: 0o755, Uid: fakeSandboxUID, Gid: fakeSandboxUID}))
	for _, f := range names {
		body := c.files[f]
		name := base + "/" + strings.TrimPrefix(f, dir)
		mustTar(tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}))
		_, err := tw.Write([]byte(body))
		mustTar(err)
	}
	mustTar(tw.Close())
	return io.NopCloser(&buf), nil
}

// CopyTo unpacks a tar stream's regular files under dir, as the daemon
// does, recording each file's owner.
func (d *fakeDocker) CopyTo(_ context.Context, id, dir string, r io.Reader) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.record("CopyTo", d.targetOf(id)); err != nil {
		return err
	}
	c := d.lookup(id)
	if c == nil {
		return notFound("container", id)
	}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return err
		}
		p := path.Join(strings.TrimPrefix(dir, "/"), hdr.Name)
		c.files[p] = string(b)
		if d.owners == nil {
			d.owners = map[string]int{}
		}
		d.owners[c.name+":"+p] = hdr.Uid
	}
}

// Logs streams the container's output multiplexed as the daemon sends it
// for a container without a TTY.
func (d *fakeDocker) Logs(_ context.Context, id string) (io.ReadCloser, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.record("Logs", d.targetOf(id)); err != nil {
		return nil, err
	}
	c := d.lookup(id)
	if c == nil {
		return nil, notFound("container", id)
	}
	var buf bytes.Buffer
	for _, f := range c.logs {
		if _, err := stdcopy.NewStdWriter(&buf, f.stream).Write([]byte(f.text)); err != nil {
			panic(err)
		}
	}
	return io.NopCloser(&buf), nil
}

// LogTail returns the last lines of the container's output.
func (d *fakeDocker) LogTail(_ context.Context, id string, lines, maxBytes int) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.record("LogTail", d.targetOf(id)); err != nil {
		return "", err
	}
	c := d.lookup(id)
	if c == nil {
		return "", notFound("container", id)
	}
	var all []string
	for _, f := range c.logs {
		all = append(all, strings.Split(strings.TrimSuffix(f.text, "\n"), "\n")...)
	}
	all = all[max(0, len(all)-lines):]
	out := strings.Join(all, "\n")
	return out[max(0, len(out)-maxBytes):], nil
}

// seedNetwork adds a network as if made earlier (labels nil: not Homeroom's).
func (d *fakeDocker) seedNetwork(name string, labels map[string]string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := &fakeNetwork{id: d.nextID("net"), name: name, labels: labels, opts: network.CreateOptions{Driver: "bridge", Labels: labels}}
	d.networks[n.id] = n
	return n.id
}

// seedContainer adds a container as if made earlier, attached to the named
// networks that exist.
func (d *fakeDocker) seedContainer(name, state string, labels map[string]string, nets ...string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	student := labels[api.LabelStudent]
	c := &fakeContainer{
		id: d.nextID("ctr"), name: name, image: "homeroom/sandbox:dev", state: state,
		labels: labels, created: int64(d.seq), nets: map[string]bool{},
		files: work(student), logs: logsOf(student),
	}
	for _, n := range nets {
		if nw := d.lookupNetwork(n); nw != nil {
			c.nets[nw.id] = true
		}
	}
	d.containers[c.id] = c
	return c.id
}

// seedStudent adds a student container exactly as the reconciler makes it.
func (d *fakeDocker) seedStudent(t *testing.T, student, state string) {
	t.Helper()
	tmpl, ok := policy.Default().Template("sandbox")
	if !ok {
		t.Fatal("no sandbox template")
	}
	spec := reconcile.ContainerSpec(classID, student, tmpl, domain, "")
	d.seedContainer(spec.Name, state, spec.Config.Labels, netName)
}

func (d *fakeDocker) container(name string) (fakeContainer, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c := d.lookup(name); c != nil {
		cp := *c
		cp.nets = map[string]bool{}
		for id := range c.nets {
			cp.nets[d.networks[id].name] = true // by name, for tests
		}
		return cp, true
	}
	return fakeContainer{}, false
}

func (d *fakeDocker) network(name string) (fakeNetwork, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if n := d.lookupNetwork(name); n != nil {
		return *n, true
	}
	return fakeNetwork{}, false
}

// classContainers are the names of the class's labelled containers.
func (d *fakeDocker) classContainers() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var names []string
	for _, c := range d.containers {
		if matches(c.labels, classID) {
			names = append(names, c.name)
		}
	}
	sort.Strings(names)
	return names
}

func (d *fakeDocker) writes() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, c := range d.calls {
		if dockerWrites[strings.Fields(c)[0]] {
			out = append(out, c)
		}
	}
	return out
}

// resetCalls forgets the calls made so far.
func (d *fakeDocker) resetCalls() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = nil
}

func (d *fakeDocker) createdSpecs() []dockerx.ContainerSpec {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.created)
}

func (d *fakeDocker) callCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.calls)
}

// fakeArtifacts is the object store: keys to bytes.
type fakeArtifacts struct {
	faults

	mu       sync.Mutex
	objects  map[string][]byte
	calls    []artCall
	verified map[string]bool
}

type artCall struct{ op, key string }

func newFakeArtifacts() *fakeArtifacts {
	return &fakeArtifacts{objects: map[string][]byte{}, verified: map[string]bool{}}
}

func (a *fakeArtifacts) record(op, key string) error {
	a.mu.Lock()
	a.calls = append(a.calls, artCall{op, key})
	a.mu.Unlock()
	return a.check(op, key)
}

func (a *fakeArtifacts) store(key string, data []byte) artifacts.Object {
	sum := sha256.Sum256(data)
	a.mu.Lock()
	a.objects[key] = data
	a.mu.Unlock()
	return artifacts.Object{Key: key, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
}

// fakeSandboxUID owns a fake sandbox's directories.
const fakeSandboxUID = 1000

func (a *fakeArtifacts) GetManifest(_ context.Context, classID, runID, studentID string) (*artifacts.Manifest, error) {
	key := artifacts.ManifestKey(api.ArtifactPrefix(classID, runID, studentID))
	if err := a.record("GetManifest", key); err != nil {
		return nil, err
	}
	b, ok := a.object(key)
	if !ok {
		return nil, artifacts.ErrNotFound
	}
	var m artifacts.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// LatestManifest is the student's manifest in the latest run that has
// one, as the real store finds it.
func (a *fakeArtifacts) LatestManifest(ctx context.Context, classID, studentID, since string) (string, *artifacts.Manifest, error) {
	a.mu.Lock()
	var runs []string
	for k := range a.objects {
		if rest, ok := strings.CutPrefix(k, "classes/"+classID+"/"); ok {
			if run, _, ok := strings.Cut(rest, "/"); ok && run >= since && !slices.Contains(runs, run) {
				runs = append(runs, run)
			}
		}
	}
	a.mu.Unlock()
	slices.Sort(runs)
	for _, run := range slices.Backward(runs) {
		m, err := a.GetManifest(ctx, classID, run, studentID)
		if errors.Is(err, artifacts.ErrNotFound) {
			continue
		}
		return run, m, err
	}
	return "", nil, artifacts.ErrNotFound
}

func (a *fakeArtifacts) Open(_ context.Context, key string) (io.ReadCloser, int64, error) {
	if err := a.record("Open", key); err != nil {
		return nil, 0, err
	}
	b, ok := a.object(key)
	if !ok {
		return nil, 0, artifacts.ErrNotFound
	}
	return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
}

func (a *fakeArtifacts) PutStream(_ context.Context, key string, r io.Reader, size int64, _ string) (artifacts.Object, error) {
	if err := a.record("PutStream", key); err != nil {
		return artifacts.Object{}, err
	}
	if size >= 0 {
		r = io.LimitReader(r, size)
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return artifacts.Object{}, fmt.Errorf("put %s: read source: %w", key, err)
	}
	if size >= 0 && int64(len(data)) != size {
		return artifacts.Object{}, fmt.Errorf("put %s: read %d bytes of %d", key, len(data), size)
	}
	return a.store(key, data), nil
}

// WriteRunIndex records one index object per run, listing the students
// whose manifests are stored, as the real store does from the manifests.
func (a *fakeArtifacts) WriteRunIndex(_ context.Context, classID, runID string, students []string, startedAt, completedAt time.Time, info artifacts.RunInfo) (*artifacts.RunIndex, error) {
	key := artifacts.RunIndexKey(classID, runID)
	if err := a.record("WriteRunIndex", key); err != nil {
		return nil, err
	}
	idx := &artifacts.RunIndex{SchemaVersion: 1, ClassID: classID, RunID: runID, Subject: info.Subject, Kind: info.Kind, StartedAt: startedAt, CompletedAt: completedAt}
	for _, s := range students {
		outcome := artifacts.OutcomeMissing
		if _, ok := a.object(artifacts.ManifestKey(api.ArtifactPrefix(classID, runID, s))); ok {
			outcome = artifacts.OutcomeCollected
		}
		idx.Students = append(idx.Students, artifacts.RunStudent{StudentID: s, Outcome: outcome})
	}
	b, _ := json.Marshal(idx)
	a.store(key, b)
	return idx, nil
}

// DeleteAutosave deletes a run's objects, refusing any run that is not an
// autosave as the real store does.
func (a *fakeArtifacts) DeleteAutosave(_ context.Context, classID, runID string) error {
	key := artifacts.RunIndexKey(classID, runID)
	if err := a.record("DeleteAutosave", key); err != nil {
		return err
	}
	raw, ok := a.object(key)
	var idx artifacts.RunIndex
	if !ok || json.Unmarshal(raw, &idx) != nil || idx.Kind != artifacts.RunKindAutosave {
		return fmt.Errorf("run %s is not an autosave", runID)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for k := range a.objects {
		if strings.HasPrefix(k, "classes/"+classID+"/"+runID+"/") {
			delete(a.objects, k)
		}
	}
	return nil
}

func (a *fakeArtifacts) Verify(_ context.Context, objs []artifacts.Object) error {
	var errs []error
	for _, o := range objs {
		if err := a.record("Verify", o.Key); err != nil {
			errs = append(errs, err)
			continue
		}
		data, ok := a.object(o.Key)
		sum := sha256.Sum256(data)
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("verify %s: %w", o.Key, artifacts.ErrNotFound))
		case int64(len(data)) != o.Size:
			errs = append(errs, fmt.Errorf("verify %s: size is %d, recorded %d", o.Key, len(data), o.Size))
		case hex.EncodeToString(sum[:]) != o.SHA256:
			errs = append(errs, fmt.Errorf("verify %s: sha256 differs", o.Key))
		default:
			a.mu.Lock()
			a.verified[o.Key] = true
			a.mu.Unlock()
		}
	}
	return errors.Join(errs...)
}

func (a *fakeArtifacts) object(key string) ([]byte, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	b, ok := a.objects[key]
	return b, ok
}

func (a *fakeArtifacts) isVerified(key string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.verified[key]
}

// count is how many op calls touched the student's objects, of any run.
// manifests counts the student's manifest writes: one per collection.
func (a *fakeArtifacts) manifests(student string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, c := range a.calls {
		if c.op == "PutStream" && strings.Contains(c.key, "/"+student+"/") && strings.HasSuffix(c.key, "/manifest.json") {
			n++
		}
	}
	return n
}

func (a *fakeArtifacts) count(op, student string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, c := range a.calls {
		if c.op == op && strings.Contains(c.key, "/"+student+"/") {
			n++
		}
	}
	return n
}

// fakeStore holds classes the way the real store does: every write bumps the
// version, and a status write at a stale version is refused.
type fakeStore struct {
	mu      sync.Mutex
	classes map[string]*api.Class
	// concurrent, when set, is applied once at the next UpdateStatus, as if
	// the apiserver had written the class between the reconciler's read and
	// its write.
	concurrent   func(*api.Class)
	statusWrites int
	conflicts    int
}

func newFakeStore() *fakeStore { return &fakeStore{classes: map[string]*api.Class{}} }

func copyClass(c *api.Class) *api.Class {
	b, err := json.Marshal(c)
	if err != nil {
		panic(err)
	}
	var out api.Class
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return &out
}

func (s *fakeStore) Get(_ context.Context, id string) (*api.Class, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.classes[id]
	if !ok {
		return nil, fmt.Errorf("class %q: %w", id, store.ErrNotFound)
	}
	return copyClass(c), nil
}

func (s *fakeStore) List(context.Context) ([]api.Class, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []api.Class
	for _, c := range s.classes {
		out = append(out, *copyClass(c))
	}
	return out, nil
}

func (s *fakeStore) UpdateStatus(_ context.Context, id string, version int64, st api.ClassStatus) (*api.Class, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.classes[id]
	if !ok {
		return nil, fmt.Errorf("class %q: %w", id, store.ErrNotFound)
	}
	if w := s.concurrent; w != nil {
		s.concurrent = nil
		w(c)
		c.Version++
	}
	if c.Version != version {
		s.conflicts++
		return nil, fmt.Errorf("status of class %q at version %d: %w", id, version, store.ErrConflict)
	}
	// Only status is written: a status write can never undo a spec write.
	c.Status = copyClass(&api.Class{Status: st}).Status
	c.Version++
	s.statusWrites++
	return copyClass(c), nil
}

func (s *fakeStore) Expire(_ context.Context, id string, upSince time.Time) (*api.Class, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.classes[id]
	if !ok {
		return nil, fmt.Errorf("class %q: %w", id, store.ErrNotFound)
	}
	if c.DesiredPhase != api.PhaseUp || c.UpSince == nil || !c.UpSince.Equal(upSince) {
		return nil, store.ErrNotExpired
	}
	c.DesiredPhase, c.DownReason = api.PhaseDown, api.ReasonTTLExpired
	c.Generation++
	c.Version++
	return copyClass(c), nil
}

func (s *fakeStore) ApplySchedule(_ context.Context, id string, phase api.Phase, at, bell time.Time, desiredAt, scheduledSince *time.Time) (*api.Class, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.classes[id]
	if !ok {
		return nil, fmt.Errorf("class %q: %w", id, store.ErrNotFound)
	}
	same := func(a, b *time.Time) bool { return (a == nil && b == nil) || (a != nil && b != nil && a.Equal(*b)) }
	if !same(c.DesiredAt, desiredAt) || !same(c.ScheduledSince, scheduledSince) || c.Spec.Schedule == nil {
		return nil, store.ErrNotScheduled
	}
	c.DesiredAt = &at
	if c.DesiredPhase != phase {
		c.DesiredPhase, c.Bell, c.DownReason = phase, nil, ""
		if phase == api.PhaseUp {
			now := time.Now()
			c.UpSince, c.Bell, c.ScheduledBell = &now, &bell, &bell
		} else {
			c.DownReason = api.ReasonScheduled
		}
		c.Generation++
	}
	c.Version++
	return copyClass(c), nil
}

func (s *fakeStore) put(c api.Class) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.classes[c.ID] = copyClass(&c)
}

// edit writes the class as the apiserver does: spec or desired phase, with
// a new generation and version.
func (s *fakeStore) edit(id string, fn func(*api.Class)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.classes[id]
	fn(c)
	c.Generation++
	c.Version++
}

func (s *fakeStore) writeConcurrently(fn func(*api.Class)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.concurrent = func(c *api.Class) {
		fn(c)
		c.Generation++
	}
}

func (s *fakeStore) writes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.statusWrites
}

// env is one reconciler wired to fresh fakes, with a class cs101 on the
// built-in "sandbox" template, a Traefik container, and two things the
// reconciler must never touch: an unlabelled look-alike of a student
// container and a labelled container of another class.
type env struct {
	t      *testing.T
	docker *fakeDocker
	art    *fakeArtifacts
	store  *fakeStore
	rec    *reconcile.Reconciler
	// clock is what the reconciler reads as now. Unless frozen, every
	// reading moves it on by a second.
	clock  atomic.Int64 // unix nanoseconds
	frozen atomic.Bool
	// removedUnsafely lists containers removed before their student's work
	// was checkpointed in the store and present in the object store.
	mu              sync.Mutex
	removedUnsafely []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, docker: newFakeDocker(), art: newFakeArtifacts(), store: newFakeStore()}
	e.docker.seedContainer(traefikName, container.StateRunning, map[string]string{"traefik.enable": "false"})
	e.docker.seedContainer(cname("mallory"), container.StateRunning, map[string]string{api.LabelClass: classID, api.LabelStudent: "mallory"})
	e.docker.seedNetwork(api.NetworkName("cs202"), map[string]string{api.LabelManagedBy: api.ManagedByValue, api.LabelClass: "cs202"})
	e.docker.seedContainer(api.ContainerName("cs202", "zoe"), container.StateRunning, map[string]string{
		api.LabelManagedBy: api.ManagedByValue, api.LabelClass: "cs202", api.LabelStudent: "zoe",
	}, api.NetworkName("cs202"))
	e.docker.beforeRemove = e.checkSafeToRemove

	e.clock.Store(time.Date(2030, 1, 2, 9, 0, 0, 0, time.UTC).UnixNano())
	e.rec = e.reconciler(e.docker)
	t.Cleanup(e.checkInvariants)
	return e
}

// reconciler is the env's reconciler on the runtime d (the env's fake
// Docker, or a wrapper of it).
func (e *env) reconciler(d reconcile.Docker) *reconcile.Reconciler {
	return reconcile.New(e.store, d, e.art, policy.Default(), reconcile.Options{
		Domain: domain, TraefikContainer: traefikName, CollectTimeout: 10 * time.Second,
		// Time moves on every reading, so a status rewritten only because
		// time passed would show.
		Now: func() time.Time {
			if e.frozen.Load() {
				return e.now()
			}
			return time.Unix(0, e.clock.Add(int64(time.Second))).UTC()
		},
	}, zaptest.NewLogger(e.t))
}

// checkSafeToRemove enforces collect → upload → verify → checkpoint →
// remove: when a student container goes, the store must record that
// student's artifacts for the active run and the manifest must be stored.
func (e *env) checkSafeToRemove(name string, labels map[string]string) {
	if labels[api.LabelRecovering] != "" {
		return // it only mounts volumes, which are checked on their own
	}
	student := labels[api.LabelStudent]
	c, err := e.store.Get(context.Background(), labels[api.LabelClass])
	ok := err == nil && c.Status.Run != nil && c.Status.Run.CompletedAt == nil
	if ok {
		ok = false
		for _, s := range c.Status.Students {
			if s.ID == student && s.Artifacts != nil && s.Artifacts.RunID == c.Status.Run.ID {
				_, ok = e.art.object(s.Artifacts.Manifest)
			}
		}
	}
	if h, late := c.Status.Late[student]; !ok && err == nil && late {
		// A late hand-in's sandbox: collected into its own run, which
		// answered the request that made it.
		if at := c.PerStudent[student].LateAt; at != nil && h.RequestedAt.Equal(*at) {
			_, ok = e.art.object(artifacts.ManifestKey(api.ArtifactPrefix(c.ID, h.RunID, student)))
		}
	}
	if !ok {
		e.mu.Lock()
		e.removedUnsafely = append(e.removedUnsafely, name)
		e.mu.Unlock()
	}
}

func (e *env) checkInvariants() {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.removedUnsafely) > 0 {
		e.t.Errorf("containers removed before their work was checkpointed and stored: %v", e.removedUnsafely)
	}
	for _, name := range []string{traefikName, cname("mallory"), api.ContainerName("cs202", "zoe")} {
		if c, ok := e.docker.container(name); !ok || c.state != container.StateRunning {
			e.t.Errorf("%s was touched: present %v, state %q", name, ok, c.state)
		}
	}
	if _, ok := e.docker.network(api.NetworkName("cs202")); !ok {
		e.t.Errorf("another class's network was removed")
	}
	for _, w := range e.docker.writes() {
		if strings.Contains(w, "mallory") || strings.Contains(w, "cs202") {
			e.t.Errorf("write call on something not this class's: %s", w)
		}
	}
}

// now is the reconciler's clock, without moving it.
func (e *env) now() time.Time { return time.Unix(0, e.clock.Load()).UTC() }

// advance moves the reconciler's clock on by d.
func (e *env) advance(d time.Duration) { e.clock.Add(int64(d)) }

func (e *env) putClass(phase api.Phase, students ...string) {
	c := api.Class{
		ID:           classID,
		Spec:         api.ClassSpec{Subject: "cs", Template: "sandbox", Students: students},
		DesiredPhase: phase,
		Generation:   1,
		Version:      1,
		Status:       api.ClassStatus{Phase: api.PhasePending},
	}
	if phase == api.PhaseUp {
		// As the apiserver records an Up asked for.
		since := e.now()
		c.UpSince = &since
	}
	e.store.put(c)
}

func (e *env) pass() (reconcile.Result, error) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return e.rec.Reconcile(ctx, classID)
}

func (e *env) mustConverge() reconcile.Result {
	e.t.Helper()
	res, err := e.pass()
	if err != nil {
		e.t.Fatalf("pass: %v\nplan:\n%s", err, res.Plan)
	}
	if !res.Converged {
		e.t.Fatalf("pass did not converge; plan was:\n%s", res.Plan)
	}
	return res
}

func (e *env) class() *api.Class {
	e.t.Helper()
	c, err := e.store.Get(context.Background(), classID)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// bringUp runs the class Up and then asks for Down, as a teacher would.
func (e *env) bringUp(students ...string) {
	e.t.Helper()
	e.putClass(api.PhaseUp, students...)
	e.mustConverge()
	e.store.edit(classID, func(c *api.Class) { c.DesiredPhase = api.PhaseDown })
}

func cond(c *api.Class, typ string) api.Condition {
	if cd := api.FindCondition(c.Status.Conditions, typ); cd != nil {
		return *cd
	}
	return api.Condition{}
}

func studentStatus(c *api.Class, id string) api.StudentStatus {
	for _, s := range c.Status.Students {
		if s.ID == id {
			return s
		}
	}
	return api.StudentStatus{}
}

// checkCollected checks that a student's work is stored under the run's
// prefix as the manifest says, verified, and referenced from status.
func (e *env) checkCollected(t *testing.T, c *api.Class, student string) {
	t.Helper()
	run := c.Status.Run
	if run == nil {
		t.Fatalf("no run in status")
	}
	prefix := api.ArtifactPrefix(classID, run.ID, student)
	ref := studentStatus(c, student).Artifacts
	if ref == nil || ref.RunID != run.ID || ref.Prefix != prefix || ref.Manifest != artifacts.ManifestKey(prefix) {
		t.Fatalf("%s's artifacts in status = %+v, want run %s at %s", student, ref, run.ID, prefix)
	}
	raw, ok := e.art.object(ref.Manifest)
	if !ok {
		t.Fatalf("%s's manifest %s not stored", student, ref.Manifest)
	}
	var m artifacts.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if m.ClassID != classID || m.StudentID != student || m.RunID != run.ID || m.Template != "sandbox" ||
		m.Image != "homeroom/sandbox:dev" || m.Container.Name != cname(student) || m.Container.State != "exited" {
		t.Errorf("%s's manifest: %+v", student, m)
	}
	var paths []string
	for _, f := range m.Files {
		paths = append(paths, f.Path)
		body, ok := e.art.object(f.Key)
		if want := work(student)[f.Path]; !ok || string(body) != want || f.Key != artifacts.FilesKey(prefix, f.Path) {
			t.Errorf("%s's %s at %s = %q (stored %v), want %q", student, f.Path, f.Key, body, ok, want)
		}
		if !e.art.isVerified(f.Key) {
			t.Errorf("%s's %s was not verified", student, f.Path)
		}
	}
	if want := []string{"workspace/main.py", "workspace/notes/todo.md"}; !slices.Equal(paths, want) {
		t.Errorf("%s's files %v, want %v", student, paths, want)
	}
	if ref.Files != 2 || ref.Bytes != m.TotalBytes || m.TotalBytes == 0 {
		t.Errorf("%s's ref counts %d files %d bytes; manifest %d bytes", student, ref.Files, ref.Bytes, m.TotalBytes)
	}
	if m.Logs == nil || m.Logs.Key != artifacts.LogsKey(prefix) {
		t.Fatalf("%s's manifest logs = %+v", student, m.Logs)
	}
	if body, _ := e.art.object(m.Logs.Key); string(body) != wantLog(student) {
		t.Errorf("%s's log = %q, want %q", student, body, wantLog(student))
	}
	if !e.art.isVerified(m.Logs.Key) || !e.art.isVerified(ref.Manifest) {
		t.Errorf("%s's log or manifest was not verified", student)
	}
}

func TestUpFromNothing(t *testing.T) {
	e := newEnv(t)
	students := []string{"alice", "bob", "carol"}
	e.putClass(api.PhaseUp, students...)
	e.mustConverge()

	n, ok := e.docker.network(netName)
	if !ok || n.labels[api.LabelManagedBy] != api.ManagedByValue || n.labels[api.LabelClass] != classID || n.opts.Driver != "bridge" {
		t.Fatalf("class network = %+v (exists %v)", n, ok)
	}
	if got := e.docker.classContainers(); !slices.Equal(got, []string{cname("alice"), cname("bob"), cname("carol")}) {
		t.Fatalf("class containers = %v", got)
	}
	created := e.docker.createdSpecs()
	if len(created) != len(students) {
		t.Fatalf("%d containers created, want %d", len(created), len(students))
	}
	for _, spec := range created {
		student := spec.Config.Labels[api.LabelStudent]
		t.Run(student, func(t *testing.T) {
			if spec.Name != cname(student) {
				t.Errorf("name %q", spec.Name)
			}
			l := spec.Config.Labels
			if l[api.LabelManagedBy] != api.ManagedByValue || l[api.LabelClass] != classID || l[api.LabelConfigHash] == "" || l[api.LabelTemplate] != "sandbox" {
				t.Errorf("ownership labels: %v", l)
			}
			router := "traefik.http.routers." + cname(student)
			if got, want := l[router+".rule"], "Host(`"+student+".cs101.lab.test`)"; got != want {
				t.Errorf("router rule %q, want %q", got, want)
			}
			if l["traefik.enable"] != "true" || l["traefik.docker.network"] != netName || l["traefik.http.services."+cname(student)+".loadbalancer.server.port"] != "8080" {
				t.Errorf("traefik labels: %v", l)
			}
			h := spec.HostConfig
			if !slices.Equal(h.CapDrop, []string{"ALL"}) || !slices.Contains(h.SecurityOpt, "no-new-privileges:true") ||
				h.Privileged || len(h.Binds) != 0 || len(h.CapAdd) != 0 {
				t.Errorf("privileges: capdrop %v capadd %v secopt %v privileged %v binds %v", h.CapDrop, h.CapAdd, h.SecurityOpt, h.Privileged, h.Binds)
			}
			if h.PidsLimit == nil || *h.PidsLimit != 64 || h.Memory != 128<<20 || h.MemorySwap != h.Memory || h.NanoCPUs != 5e8 {
				t.Errorf("limits: pids %v memory %d swap %d cpus %d", h.PidsLimit, h.Memory, h.MemorySwap, h.NanoCPUs)
			}
			if !h.ReadonlyRootfs || h.NetworkMode != container.NetworkMode(netName) || spec.Config.User != "65534:65534" {
				t.Errorf("rootfs ro %v network %q user %q", h.ReadonlyRootfs, h.NetworkMode, spec.Config.User)
			}
			c, _ := e.docker.container(cname(student))
			if c.state != container.StateRunning || !c.nets[netName] {
				t.Errorf("container state %q networks %v", c.state, c.nets)
			}
		})
	}
	if tr, _ := e.docker.container(traefikName); !tr.nets[netName] {
		t.Errorf("traefik not attached to the class network: %v", tr.nets)
	}
	if n.opts.Options["com.docker.network.bridge.enable_icc"] != "false" || !n.opts.Internal {
		t.Errorf("class network options %v internal %v: want no traffic between sandboxes and no route out", n.opts.Options, n.opts.Internal)
	}

	c := e.class()
	if c.Status.Phase != api.PhaseUp || c.Status.ObservedGeneration != c.Generation || c.Status.Network != netName {
		t.Errorf("status phase %s observed %d of %d network %q", c.Status.Phase, c.Status.ObservedGeneration, c.Generation, c.Status.Network)
	}
	for _, want := range []api.Condition{
		{Type: api.ConditionReady, Status: "True", Reason: "AllStudentsRunning", Message: "3 of 3 students ready"},
		// Attached, a Traefik on a bridge still cannot reach sandboxes that
		// accept no traffic from other containers: the status says so.
		{Type: api.ConditionRouting, Status: "False", Reason: "TraefikNotHostNetwork",
			Message: `container "traefik" must share the host's network (network_mode: host) to reach sandboxes of template "sandbox", which do not accept traffic from other containers`},
		{Type: api.ConditionSynced, Status: "True", Reason: "Converged"},
	} {
		if got := cond(c, want.Type); got.Status != want.Status || got.Reason != want.Reason || got.Message != want.Message {
			t.Errorf("%s = %+v, want %+v", want.Type, got, want)
		}
	}
	if len(c.Status.Students) != len(students) {
		t.Fatalf("status students %+v", c.Status.Students)
	}
	for i, s := range c.Status.Students {
		want := api.StudentStatus{ID: students[i], Container: cname(students[i]), State: "running", Endpoint: "http://" + students[i] + ".cs101.lab.test"}
		if s != want {
			t.Errorf("student %d = %+v, want %+v", i, s, want)
		}
	}

	t.Run("a second pass writes nothing", func(t *testing.T) {
		writes, version, statusWrites := len(e.docker.writes()), c.Version, e.store.writes()
		res, err := e.pass()
		if err != nil || len(res.Plan) != 0 || !res.Converged {
			t.Fatalf("second pass: plan %q converged %v err %v", res.Plan, res.Converged, err)
		}
		if got := e.docker.writes(); len(got) != writes {
			t.Errorf("docker writes on a converged class: %v", got[writes:])
		}
		if got := e.class().Version; got != version || e.store.writes() != statusWrites {
			t.Errorf("status rewritten by a no-op pass: version %d -> %d", version, got)
		}
	})
}

func TestDownKeepsContainersWhoseWorkDidNotUpload(t *testing.T) {
	e := newEnv(t)
	e.bringUp("alice", "bob", "carol")
	e.art.fail("PutStream", "/carol/", -1)

	res, err := e.pass()
	if err == nil || !strings.Contains(err.Error(), "collect carol") {
		t.Fatalf("pass error = %v, want one naming carol's collection", err)
	}
	var terminal *reconcile.TerminalError
	if errors.As(err, &terminal) {
		t.Errorf("an object store outage is not terminal: %v", err)
	}
	if res.Converged {
		t.Errorf("a failed pass reported convergence")
	}
	if got := e.docker.classContainers(); !slices.Equal(got, []string{cname("carol")}) {
		t.Fatalf("containers left = %v, want only carol's", got)
	}
	if _, ok := e.docker.network(netName); !ok {
		t.Fatalf("class network removed while carol's container is still on it")
	}
	if tr, _ := e.docker.container(traefikName); !tr.nets[netName] {
		t.Errorf("traefik detached before the class was down")
	}
	c := e.class()
	e.checkCollected(t, c, "alice")
	e.checkCollected(t, c, "bob")
	if c.Status.Phase != api.PhaseCollecting || c.Status.Run == nil || c.Status.Run.CompletedAt != nil {
		t.Fatalf("status phase %s run %+v, want Collecting with an open run", c.Status.Phase, c.Status.Run)
	}
	runID := c.Status.Run.ID
	if s := cond(c, api.ConditionSynced); s.Status != "False" || s.Reason != "CollectFailed" || !strings.Contains(s.Message, "carol") {
		t.Errorf("Synced = %+v, want False CollectFailed naming carol", s)
	}
	if r := cond(c, api.ConditionReady); r.Status != "False" || r.Reason != "Collecting" || r.Message != "1 containers left to collect and remove" {
		t.Errorf("Ready = %+v", r)
	}
	if cond(c, api.ConditionRouting).Type != "" {
		t.Errorf("RoutingAvailable reported for a class going down")
	}
	for student, state := range map[string]string{"alice": "removed", "bob": "removed", "carol": "exited"} {
		if s := studentStatus(c, student); s.State != state {
			t.Errorf("%s state %q, want %q", student, s.State, state)
		}
	}
	if ref := studentStatus(c, "carol").Artifacts; ref != nil {
		t.Errorf("carol checkpointed although her upload failed: %+v", ref)
	}

	// The object store is back: only carol is left to do.
	e.art.clear()
	before := map[string][2]int{}
	for _, s := range []string{"alice", "bob", "carol"} {
		before[s] = [2]int{e.art.count("PutStream", s), e.art.manifests(s)}
	}
	res = e.mustConverge()
	want := fmt.Sprintf("collect carol (%s)\nremove-container carol (%s)\ndisconnect-traefik (%s)\nremove-network (%s)\ncomplete-run (%s)\n",
		cname("carol"), cname("carol"), netName, netName, runID)
	if got := res.Plan.String(); got != want {
		t.Errorf("plan after the fault cleared:\n%s\nwant:\n%s", got, want)
	}
	for _, s := range []string{"alice", "bob"} {
		now := [2]int{e.art.count("PutStream", s), e.art.manifests(s)}
		if now != before[s] {
			t.Errorf("%s uploaded again: uploads/manifests %v -> %v", s, before[s], now)
		}
	}
	if n := e.art.manifests("carol") - before["carol"][1]; n != 1 {
		t.Errorf("carol's manifest written %d times, want 1", n)
	}
	if got := e.docker.classContainers(); len(got) != 0 {
		t.Errorf("containers left after Down: %v", got)
	}
	if _, ok := e.docker.network(netName); ok {
		t.Errorf("class network left after Down")
	}
	if tr, _ := e.docker.container(traefikName); tr.nets[netName] {
		t.Errorf("traefik still attached")
	}
	c = e.class()
	if c.Status.Phase != api.PhaseDown || c.Status.Run == nil || c.Status.Run.ID != runID || c.Status.Run.CompletedAt == nil {
		t.Fatalf("status phase %s run %+v, want Down with run %s completed", c.Status.Phase, c.Status.Run, runID)
	}
	if s := cond(c, api.ConditionSynced); s.Status != "True" {
		t.Errorf("Synced = %+v", s)
	}
	if r := cond(c, api.ConditionReady); r.Reason != "ClassDown" {
		t.Errorf("Ready = %+v", r)
	}
	for _, s := range []string{"alice", "bob", "carol"} {
		e.checkCollected(t, c, s)
		if st := studentStatus(c, s).State; st != "removed" {
			t.Errorf("%s state %q", s, st)
		}
	}
}

// TestResumedDown covers Downs picked up again after a pass stopped between
// a student's checkpoint and the removal of that student's container: the
// checkpoint in status is what keeps the work from being collected twice.
func TestResumedDown(t *testing.T) {
	tests := []struct {
		desc string
		// setup leaves Docker with alice and bob present and alice
		// checkpointed in the open run, and returns that run's id.
		setup func(t *testing.T, e *env) string
		// wantCollected is how many times each student is collected in all.
		wantCollected map[string]int
		wantPlan      func(runID string) string
	}{{
		desc: "controller restarted after alice was checkpointed",
		setup: func(t *testing.T, e *env) string {
			const runID = "20300102T085900Z-abcdef"
			e.docker.seedNetwork(netName, map[string]string{api.LabelManagedBy: api.ManagedByValue, api.LabelClass: classID})
			e.docker.seedStudent(t, "alice", container.StateExited)
			e.docker.seedStudent(t, "bob", container.StateRunning)
			// The previous controller stored alice's manifest and
			// checkpointed her before it died.
			prefix := api.ArtifactPrefix(classID, runID, "alice")
			e.art.store(artifacts.ManifestKey(prefix), []byte(`{"schemaVersion":1}`))
			e.putClass(api.PhaseDown, "alice", "bob")
			e.store.edit(classID, func(c *api.Class) {
				c.Status = api.ClassStatus{
					Phase: api.PhaseCollecting,
					Run:   &api.DownRun{ID: runID, StartedAt: time.Date(2030, 1, 2, 8, 59, 0, 0, time.UTC)},
					Students: []api.StudentStatus{
						{ID: "alice", Container: cname("alice"), State: "exited", Artifacts: &api.ArtifactsRef{
							RunID: runID, Prefix: prefix, Manifest: artifacts.ManifestKey(prefix), Files: 1, Bytes: 10,
						}},
						{ID: "bob", Container: cname("bob"), State: "running"},
					},
				}
			})
			return runID
		},
		wantCollected: map[string]int{"alice": 0, "bob": 1},
		wantPlan: func(runID string) string {
			return `remove-container alice (homeroom-cs101-alice)
stop-container bob (homeroom-cs101-bob)
collect bob (homeroom-cs101-bob)
remove-container bob (homeroom-cs101-bob)
remove-network (homeroom-cs101)
complete-run (` + runID + `)
`
		},
	}, {
		desc: "removing bob failed once after his collection",
		setup: func(t *testing.T, e *env) string {
			e.bringUp("alice", "bob")
			e.docker.fail("RemoveContainer", cname("bob"), 1)
			_, err := e.pass()
			if err == nil || !strings.Contains(err.Error(), "remove-container bob") {
				t.Fatalf("first pass error = %v, want bob's removal", err)
			}
			c := e.class()
			if s := cond(c, api.ConditionSynced); s.Reason != "DockerError" || !strings.Contains(s.Message, "bob") {
				t.Errorf("Synced after the failed removal = %+v", s)
			}
			if c.Status.Phase != api.PhaseCollecting {
				t.Errorf("phase %s, want Collecting", c.Status.Phase)
			}
			if got := e.docker.classContainers(); !slices.Equal(got, []string{cname("bob")}) {
				t.Fatalf("containers after the failed removal = %v, want bob's", got)
			}
			if _, ok := e.docker.network(netName); !ok {
				t.Fatalf("network removed while bob's container is still on it")
			}
			e.checkCollected(t, c, "bob")
			return c.Status.Run.ID
		},
		wantCollected: map[string]int{"alice": 1, "bob": 1},
		wantPlan: func(runID string) string {
			return `remove-container bob (homeroom-cs101-bob)
disconnect-traefik (homeroom-cs101)
remove-network (homeroom-cs101)
complete-run (` + runID + `)
`
		},
	}}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			e := newEnv(t)
			runID := tc.setup(t, e)
			res := e.mustConverge()
			if got, want := res.Plan.String(), tc.wantPlan(runID); got != want {
				t.Errorf("plan:\n%s\nwant:\n%s", got, want)
			}
			for s, n := range tc.wantCollected {
				if got := e.art.manifests(s); got != n {
					t.Errorf("%s collected %d times, want %d", s, got, n)
				}
			}
			if got := e.docker.classContainers(); len(got) != 0 {
				t.Errorf("containers left: %v", got)
			}
			if _, ok := e.docker.network(netName); ok {
				t.Errorf("class network left")
			}
			c := e.class()
			if c.Status.Phase != api.PhaseDown || c.Status.Run == nil || c.Status.Run.ID != runID || c.Status.Run.CompletedAt == nil {
				t.Fatalf("status phase %s run %+v, want Down with run %s completed", c.Status.Phase, c.Status.Run, runID)
			}
			e.checkCollected(t, c, "bob")
			if ref := studentStatus(c, "alice").Artifacts; ref == nil || ref.RunID != runID {
				t.Errorf("alice's checkpoint lost: %+v", ref)
			}
		})
	}
}

// TestConcurrentWrite has the apiserver write the class between the pass's
// read and its first status write: the write at the stale version is
// refused, and the reconciler re-reads and writes again without undoing the
// apiserver's change.
func TestConcurrentWrite(t *testing.T) {
	tests := []struct {
		desc  string
		setup func(e *env)
		// edit is the apiserver's write.
		edit func(c *api.Class)
		// check runs on the class after the pass.
		check func(t *testing.T, e *env, c *api.Class)
	}{{
		desc:  "a student added while an Up pass runs",
		setup: func(e *env) { e.putClass(api.PhaseUp, "alice", "bob") },
		edit:  func(c *api.Class) { c.Spec.Students = append(c.Spec.Students, "carol") },
		check: func(t *testing.T, e *env, c *api.Class) {
			if got := e.docker.classContainers(); !slices.Equal(got, []string{cname("alice"), cname("bob")}) {
				t.Errorf("containers after the pass = %v", got)
			}
		},
	}, {
		desc:  "the spec edited while a Down begins its run",
		setup: func(e *env) { e.bringUp("alice", "bob") },
		edit:  func(c *api.Class) { c.Spec.TTLSeconds = 3600 },
		check: func(t *testing.T, e *env, c *api.Class) {
			if c.Status.Run == nil || c.Status.Run.CompletedAt == nil {
				t.Errorf("run not recorded through the conflict: %+v", c.Status.Run)
			}
			e.checkCollected(t, c, "alice")
			e.checkCollected(t, c, "bob")
		},
	}}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			e := newEnv(t)
			tc.setup(e)
			planned := e.class()
			e.store.writeConcurrently(tc.edit)
			if _, err := e.pass(); err != nil {
				t.Fatalf("pass: %v", err)
			}
			if n := e.store.conflictCount(); n != 1 {
				t.Fatalf("%d conflicts, want the one injected", n)
			}
			c := e.class()
			want := copyClass(planned)
			tc.edit(want)
			if !sameSpec(c.Spec, want.Spec) || c.DesiredPhase != planned.DesiredPhase || c.Generation != planned.Generation+1 {
				t.Fatalf("the apiserver's write was lost: spec %+v generation %d, want %+v generation %d", c.Spec, c.Generation, want.Spec, planned.Generation+1)
			}
			if c.Status.Phase != planned.DesiredPhase {
				t.Errorf("status not written after the conflict: phase %s, want %s", c.Status.Phase, planned.DesiredPhase)
			}
			// The pass acted on the spec it read; the edit is the next
			// pass's to act on, and status must not claim otherwise.
			if c.Status.ObservedGeneration != planned.Generation {
				t.Errorf("observedGeneration %d, want %d: the pass planned from generation %d, not the concurrent edit's %d",
					c.Status.ObservedGeneration, planned.Generation, planned.Generation, c.Generation)
			}
			tc.check(t, e, c)

			e.mustConverge()
			c = e.class()
			if c.Status.ObservedGeneration != c.Generation || c.Status.Phase != c.DesiredPhase {
				t.Errorf("after the next pass: observed %d of %d, phase %s", c.Status.ObservedGeneration, c.Generation, c.Status.Phase)
			}
			if !sameSpec(c.Spec, want.Spec) {
				t.Errorf("spec changed by the controller: %+v", c.Spec)
			}
		})
	}
}

func sameSpec(a, b api.ClassSpec) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

func TestClassGoneFromTheStore(t *testing.T) {
	e := newEnv(t)
	// Containers of a class whose record is gone may still hold work: the
	// controller must not remove them at once, only after the grace period
	// (DefaultOrphanGrace, five minutes: far beyond this test's clock) and
	// after collecting them.
	e.docker.seedNetwork(netName, map[string]string{api.LabelManagedBy: api.ManagedByValue, api.LabelClass: classID})
	e.docker.seedStudent(t, "alice", container.StateRunning)

	res, err := e.pass()
	if err != nil || len(res.Plan) != 0 {
		t.Fatalf("pass on a missing class: plan %q err %v", res.Plan, err)
	}
	if res.RequeueAfter <= 0 || res.RequeueAfter > reconcile.DefaultOrphanGrace {
		t.Errorf("RequeueAfter = %v, want the rest of the grace period", res.RequeueAfter)
	}
	if w := e.docker.writes(); len(w) != 0 {
		t.Errorf("docker writes for a missing class within the grace period: %v", w)
	}
	if got := e.docker.classContainers(); !slices.Equal(got, []string{cname("alice")}) {
		t.Errorf("containers = %v", got)
	}
	if e.store.writes() != 0 {
		t.Errorf("status written for a missing class")
	}
}

func TestUpWithUnknownTemplate(t *testing.T) {
	e := newEnv(t)
	e.store.put(api.Class{
		ID:           classID,
		Spec:         api.ClassSpec{Subject: "cs", Template: "gpu-cluster", Students: []string{"alice"}},
		DesiredPhase: api.PhaseUp, Generation: 1, Version: 1,
	})
	res, err := e.pass()
	if err != nil {
		t.Fatalf("pass: %v", err)
	}
	if len(res.Plan) != 0 {
		t.Errorf("plan for an unknown template:\n%s", res.Plan)
	}
	if w := e.docker.writes(); len(w) != 0 {
		t.Errorf("docker writes for an unknown template: %v", w)
	}
	c := e.class()
	if c.Status.Phase != api.PhaseFailed || c.Status.ObservedGeneration != 1 {
		t.Errorf("phase %s observed %d, want Failed at 1", c.Status.Phase, c.Status.ObservedGeneration)
	}
	if r := cond(c, api.ConditionReady); r.Status != "False" || r.Reason != "UnknownTemplate" || !strings.Contains(r.Message, "gpu-cluster") {
		t.Errorf("Ready = %+v", r)
	}
	if s := studentStatus(c, "alice"); s.State != "missing" {
		t.Errorf("alice = %+v", s)
	}
}

func (s *fakeStore) conflictCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conflicts
}

// A sandbox that stops while its class is Up is started again after a
// pause, twice as long after each short run in a row: a program that
// crashes at once is not restarted in a loop, and a daemon stopping every
// container on its way down is not asked to start them again meanwhile.
func TestStoppedSandboxRestartsAfterAPause(t *testing.T) {
	e := newEnv(t)
	e.putClass(api.PhaseUp, "alice", "bob")
	e.mustConverge()
	e.frozen.Store(true)

	crash := func(ran time.Duration, code int) time.Time {
		t.Helper()
		e.docker.mu.Lock()
		defer e.docker.mu.Unlock()
		c := e.docker.lookup(cname("bob"))
		c.state, c.exitCode = container.StateExited, code
		c.finishedAt = e.now()
		c.startedAt = c.finishedAt.Add(-ran)
		return c.finishedAt
	}
	held := func(stoppedAt time.Time, pause time.Duration) {
		t.Helper()
		e.docker.resetCalls()
		res, err := e.pass()
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(e.docker.writes(), "StartContainer "+cname("bob")) {
			t.Fatalf("bob's sandbox started %s after it stopped; its pause is %s", e.now().Sub(stoppedAt), pause)
		}
		if want := stoppedAt.Add(pause).Sub(e.now()); res.RequeueAfter != want {
			t.Errorf("next pass asked for in %s, want %s: when the pause ends", res.RequeueAfter, want)
		}
		c := e.class()
		if got := studentStatus(c, "bob").State; got != container.StateExited {
			t.Errorf("bob's state %q during the pause", got)
		}
		ready := cond(c, api.ConditionReady)
		due := stoppedAt.Add(pause).Format("15:04:05")
		if c.Status.Phase != api.PhaseProvisioning || ready.Reason != "SandboxesRestarting" ||
			ready.Message != "1 of 2 students ready; bob's sandbox stopped (exit code 3) and starts again at "+due+" UTC" {
			t.Errorf("phase %s, Ready %s: %q", c.Status.Phase, ready.Reason, ready.Message)
		}
	}
	started := func() {
		t.Helper()
		e.docker.resetCalls()
		if _, err := e.pass(); err != nil {
			t.Fatal(err)
		}
		if c, _ := e.docker.container(cname("bob")); c.state != container.StateRunning {
			t.Fatalf("bob's sandbox is %s after its pause", c.state)
		}
		if w := e.docker.writes(); !slices.Equal(w, []string{"StartContainer " + cname("bob")}) {
			t.Errorf("writes %v, want only bob's start", w)
		}
		if c := e.class(); c.Status.Phase != api.PhaseUp {
			t.Errorf("phase %s once bob runs again", c.Status.Phase)
		}
	}

	// It crashes a second after it started: a 5 s pause.
	stopped := crash(time.Second, 3)
	held(stopped, 5*time.Second)
	e.advance(4 * time.Second)
	held(stopped, 5*time.Second)
	e.advance(time.Second)
	started()

	// Again at once: the pause doubles, and doubles again.
	e.advance(2 * time.Second)
	stopped = crash(2*time.Second, 3)
	e.advance(9 * time.Second)
	held(stopped, 10*time.Second)
	e.advance(time.Second)
	started()
	stopped = crash(time.Second, 3)
	e.advance(19 * time.Second)
	held(stopped, 20*time.Second)
	e.advance(time.Second)
	started()

	// After a run of a minute or more the next stop is not a crash loop.
	e.advance(time.Hour)
	stopped = crash(time.Hour, 3)
	held(stopped, 5*time.Second)
	e.advance(5 * time.Second)
	started()
}

// Traefik on the host's network reaches every class network as it is: it is
// never attached or detached, routing is reported available, and every
// student's router asks the sign-in check first.
func TestTraefikOnTheHostNetwork(t *testing.T) {
	e := newEnv(t)
	tr, _ := e.docker.container(traefikName)
	e.docker.mu.Lock()
	e.docker.containers[tr.id].hostNetwork = true
	e.docker.mu.Unlock()
	const check = "http://127.0.0.1:8080/signin/check/s3cret"
	e.rec = reconcile.New(e.store, e.docker, e.art, policy.Default(), reconcile.Options{
		Domain: domain, TraefikContainer: traefikName, ForwardAuth: check, CollectTimeout: 10 * time.Second,
	}, zaptest.NewLogger(t))

	e.putClass(api.PhaseUp, "alice", "bob")
	e.mustConverge()
	for _, spec := range e.docker.createdSpecs() {
		l, router := spec.Config.Labels, spec.Name
		mw := "traefik.http.middlewares." + router + "-signin.forwardauth."
		if l["traefik.http.routers."+router+".middlewares"] != router+"-signin" || l[mw+"address"] != check ||
			l[mw+"authResponseHeaders"] != "Cookie" || l[mw+"preserveLocationHeader"] != "true" {
			t.Errorf("%s: the router does not ask the sign-in check: %v", router, l)
		}
	}
	if c := cond(e.class(), api.ConditionRouting); c.Status != "True" || c.Reason != "TraefikHostNetwork" {
		t.Errorf("RoutingAvailable = %+v", c)
	}
	e.putClass(api.PhaseDown, "alice", "bob")
	e.mustConverge()
	for _, call := range e.docker.writes() {
		if strings.HasPrefix(call, "Connect ") || strings.HasPrefix(call, "Disconnect ") {
			t.Errorf("Traefik on the host's network was %s", call)
		}
	}
	if _, ok := e.docker.network(netName); ok {
		t.Error("class network left behind")
	}
}

// A template that allows collaboration keeps traffic between classmates on,
// and a Traefik attached to the class network then reaches them.
func TestCollaborationKeepsTrafficBetweenSandboxes(t *testing.T) {
	e := newEnv(t)
	pol, err := policy.Parse([]byte(`templates:
  - {name: sandbox, image: homeroom/sandbox:dev, port: 8080, collectPaths: [/workspace], memoryMiB: 128, cpus: 0.5, pids: 64, collaboration: true}
`))
	if err != nil {
		t.Fatal(err)
	}
	e.rec = reconcile.New(e.store, e.docker, e.art, pol, reconcile.Options{
		Domain: domain, TraefikContainer: traefikName, CollectTimeout: 10 * time.Second,
	}, zaptest.NewLogger(t))
	e.putClass(api.PhaseUp, "alice")
	e.mustConverge()
	n, _ := e.docker.network(netName)
	if v, ok := n.opts.Options["com.docker.network.bridge.enable_icc"]; ok {
		t.Errorf("enable_icc = %q on a collaboration class", v)
	}
	if c := cond(e.class(), api.ConditionRouting); c.Status != "True" || c.Reason != "TraefikAttached" {
		t.Errorf("RoutingAvailable = %+v", c)
	}
	e.putClass(api.PhaseDown, "alice")
	e.mustConverge()
}

// newEnvCountingRepairs is an env on a frozen clock whose reconciler's
// metrics are kept, with what reads homeroom_drift_repairs_total.
func newEnvCountingRepairs(t *testing.T) (*env, func() float64) {
	e := newEnv(t)
	reg := prometheus.NewRegistry()
	e.rec = reconcile.New(e.store, e.docker, e.art, policy.Default(), reconcile.Options{
		Domain: domain, TraefikContainer: traefikName, CollectTimeout: 10 * time.Second, Registerer: reg, Now: e.now,
	}, zaptest.NewLogger(t))
	e.frozen.Store(true)
	return e, func() float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "homeroom_drift_repairs_total" {
				return mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
		t.Fatal("no homeroom_drift_repairs_total")
		return 0
	}
}

// docker rm -f kills a sandbox before it removes it: a pass in between sees
// it stopped (the class waits out the restart pause as Provisioning), the
// next sees it gone. Making it again is still a repair of a class that was
// Up, not a new Up.
func TestASandboxRemovedByHandIsADriftRepair(t *testing.T) {
	e, repairs := newEnvCountingRepairs(t)
	e.putClass(api.PhaseUp, "alice", "bob")
	e.mustConverge()
	if got := repairs(); got != 0 {
		t.Fatalf("%v repairs after the first Up", got)
	}

	e.docker.mu.Lock()
	bob := e.docker.lookup(cname("bob"))
	bob.state, bob.exitCode, bob.finishedAt = container.StateExited, 137, e.now()
	bob.startedAt = bob.finishedAt.Add(-time.Hour)
	e.docker.mu.Unlock()
	if _, err := e.pass(); err != nil {
		t.Fatal(err)
	}
	if r := cond(e.class(), api.ConditionReady).Reason; r != "SandboxesRestarting" {
		t.Fatalf("Ready %s while bob's sandbox is stopped", r)
	}
	e.docker.mu.Lock()
	delete(e.docker.containers, e.docker.lookup(cname("bob")).id)
	e.docker.mu.Unlock()
	e.mustConverge()
	if got := repairs(); got < 2 {
		t.Errorf("homeroom_drift_repairs_total = %v after bob's sandbox was made again, want its create and start", got)
	}
}

// A pass may also see the sandbox docker rm -f is removing, with no restart
// pause to wait out: the class is Provisioning meanwhile, and the sandbox
// made again is still a repair of a class that came Up, whose Up took as
// long as it did the first time, not until the repair.
func TestASandboxSeenBeingRemovedIsADriftRepair(t *testing.T) {
	e, repairs := newEnvCountingRepairs(t)
	e.putClass(api.PhaseUp, "alice", "bob")
	e.clock.Add(int64(3 * time.Second)) // the Up takes a while
	e.mustConverge()
	up := e.class().Status.UpSeconds
	if len(up) != 1 || e.class().Status.UpAt == nil {
		t.Fatalf("after the Up: upSeconds %v, upAt %v; want one Up, and when", up, e.class().Status.UpAt)
	}
	upAt := *e.class().Status.UpAt

	e.docker.mu.Lock()
	e.docker.lookup(cname("bob")).state = "removing"
	e.docker.mu.Unlock()
	if _, err := e.pass(); err != nil {
		t.Fatal(err)
	}
	if p := e.class().Status.Phase; p != api.PhaseProvisioning {
		t.Fatalf("phase %s while bob's sandbox is being removed", p)
	}
	e.docker.mu.Lock()
	delete(e.docker.containers, e.docker.lookup(cname("bob")).id)
	e.docker.mu.Unlock()
	e.clock.Add(int64(time.Hour))
	e.mustConverge()
	c := e.class()
	if c.Status.Phase != api.PhaseUp {
		t.Fatalf("phase %s after the repair", c.Status.Phase)
	}
	if got := repairs(); got < 2 {
		t.Errorf("homeroom_drift_repairs_total = %v after bob's sandbox was made again, want its create and start", got)
	}
	if !slices.Equal(c.Status.UpSeconds, up) {
		t.Errorf("upSeconds %v after the repair, want %v: the repair is not another Up", c.Status.UpSeconds, up)
	}
	if c.Status.UpAt == nil || !c.Status.UpAt.Equal(upAt) {
		t.Errorf("upAt %v after the repair, want %v", c.Status.UpAt, upAt)
	}
}
