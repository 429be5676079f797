// Package dockerx is Homeroom's narrow, idempotent layer over the Docker Engine
// API: every call has a timeout, and every call is safe to repeat (create on
// conflict adopts or replaces, remove of something already gone succeeds).
package dockerx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultTimeout bounds one Docker call that does not stream.
const DefaultTimeout = 30 * time.Second

// ErrNotOurs is returned when a name Homeroom needs is taken by a resource
// without Homeroom's labels: such a resource is never touched.
var ErrNotOurs = errors.New("exists without homeroom labels")

// Client wraps the Docker SDK client.
type Client struct {
	api     *client.Client
	timeout time.Duration
	calls   *prometheus.CounterVec
}

// Metrics returns the counter of Docker API calls by operation and error
// class, for the caller to register.
func (c *Client) Metrics() prometheus.Collector { return c.calls }

// Track counts one API call made with API() (a runtime built on this
// client) under op.
func (c *Client) Track(op string, err error) { c.track(op, err) }

// track counts one API call; error is "" for success, else its class.
func (c *Client) track(op string, err error) {
	class := ""
	switch {
	case err == nil:
	case cerrdefs.IsNotFound(err):
		class = "not_found"
	case cerrdefs.IsConflict(err), cerrdefs.IsAlreadyExists(err):
		class = "conflict"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		class = "timeout"
	case cerrdefs.IsUnavailable(err), client.IsErrConnectionFailed(err):
		class = "unavailable"
	default:
		class = "other"
	}
	c.calls.WithLabelValues(op, class).Inc()
}

// New connects to the daemon named by DOCKER_HOST (or the default socket),
// negotiating the API version down to the daemon's.
func New(ctx context.Context) (*Client, error) {
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	return &Client{api: c, timeout: DefaultTimeout, calls: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "homeroom_docker_calls_total", Help: "Docker Engine API calls by operation and error class (empty: success).",
	}, []string{"operation", "error"})}, nil
}

// Close releases the client's connections.
func (c *Client) Close() error { return c.api.Close() }

// API exposes the SDK client for tests and tools that need calls Homeroom's
// controller does not make.
func (c *Client) API() *client.Client { return c.api }

func (c *Client) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.timeout)
}

// Ping checks that the daemon answers.
func (c *Client) Ping(ctx context.Context) error {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	_, err := c.api.Ping(ctx)
	c.track("ping", err)
	if err != nil {
		return fmt.Errorf("docker ping: %w", err)
	}
	return nil
}

// ManagedFilter selects Homeroom's objects, of one class or (classID "")
// all, by their labels.
func ManagedFilter(classID string) filters.Args {
	f := filters.NewArgs(filters.Arg("label", api.LabelManagedBy+"="+api.ManagedByValue))
	if classID != "" {
		f.Add("label", api.LabelClass+"="+classID)
	}
	return f
}

// ListContainers lists Homeroom's containers, of one class or (classID "") all.
func (c *Client) ListContainers(ctx context.Context, classID string) ([]container.Summary, error) {
	return c.listContainers(ctx, classID, "container_list")
}

// listContainers is ListContainers counted as operation op.
func (c *Client) listContainers(ctx context.Context, classID, op string) ([]container.Summary, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	cs, err := c.api.ContainerList(ctx, container.ListOptions{All: true, Filters: ManagedFilter(classID)})
	c.track(op, err)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	return cs, nil
}

// ListGraders lists Homeroom's grader containers, of every run.
func (c *Client) ListGraders(ctx context.Context) ([]container.Summary, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	f := filters.NewArgs(filters.Arg("label", api.LabelManagedBy+"="+api.ManagedByValue), filters.Arg("label", api.LabelGrading))
	cs, err := c.api.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	// An operation of its own: grading's sweep, not a class's pass.
	c.track("grader_list", err)
	if err != nil {
		return nil, fmt.Errorf("list graders: %w", err)
	}
	return cs, nil
}

// CreateFresh creates a container whose name must be free: unlike
// CreateContainer it never adopts one that exists (ErrExists), for a
// caller that must know the container is the one it is about to fill.
func (c *Client) CreateFresh(ctx context.Context, spec ContainerSpec) (string, error) {
	cctx, cancel := c.ctx(ctx)
	defer cancel()
	resp, err := c.api.ContainerCreate(cctx, spec.Config, spec.HostConfig, spec.Networking, nil, spec.Name)
	c.track("container_create", err)
	if cerrdefs.IsConflict(err) || cerrdefs.IsAlreadyExists(err) {
		return "", fmt.Errorf("create container %s: %w", spec.Name, ErrExists)
	}
	if err != nil {
		return "", fmt.Errorf("create container %s: %w", spec.Name, err)
	}
	return resp.ID, nil
}

// ErrExists is CreateFresh's refusal of a name that is taken.
var ErrExists = errors.New("a container of that name exists")

// CopyTo extracts the tar stream r at dir inside the container (which
// need not run). The caller's ctx bounds the whole stream.
func (c *Client) CopyTo(ctx context.Context, id, dir string, r io.Reader) error {
	err := c.api.CopyToContainer(ctx, id, dir, r, container.CopyToContainerOptions{})
	c.track("container_copy_to", err)
	if err != nil {
		return fmt.Errorf("copy into %s:%s: %w", id, dir, err)
	}
	return nil
}

// Wait returns the exit code of the container once it has stopped, or
// ctx's error; the caller's ctx bounds the wait.
func (c *Client) Wait(ctx context.Context, id string) (int64, error) {
	resC, errC := c.api.ContainerWait(ctx, id, container.WaitConditionNotRunning)
	select {
	case res := <-resC:
		c.track("container_wait", nil)
		if res.Error != nil && res.Error.Message != "" {
			return res.StatusCode, fmt.Errorf("wait for %s: %s", id, res.Error.Message)
		}
		return res.StatusCode, nil
	case err := <-errC:
		c.track("container_wait", err)
		return 0, fmt.Errorf("wait for %s: %w", id, err)
	}
}

// ListNetworks lists Homeroom's networks, of one class or (classID "") all.
func (c *Client) ListNetworks(ctx context.Context, classID string) ([]network.Summary, error) {
	return c.listNetworks(ctx, classID, "network_list")
}

// listNetworks is ListNetworks counted as operation op.
func (c *Client) listNetworks(ctx context.Context, classID, op string) ([]network.Summary, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	ns, err := c.api.NetworkList(ctx, network.ListOptions{Filters: ManagedFilter(classID)})
	c.track(op, err)
	if err != nil {
		return nil, fmt.Errorf("list networks: %w", err)
	}
	return ns, nil
}

// InspectContainer returns a container; a missing one is an error for which
// IsNotFound is true.
func (c *Client) InspectContainer(ctx context.Context, nameOrID string) (container.InspectResponse, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	info, err := c.api.ContainerInspect(ctx, nameOrID)
	c.track("container_inspect", err)
	return info, err
}

// IsNotFound reports whether err means the object does not exist.
func IsNotFound(err error) bool { return cerrdefs.IsNotFound(err) }

func isOurs(labels map[string]string) bool {
	return labels[api.LabelManagedBy] == api.ManagedByValue
}

// EnsureNetwork creates the network, or adopts one of that name that carries
// Homeroom's labels for the same class.
func (c *Client) EnsureNetwork(ctx context.Context, name string, opts network.CreateOptions) (string, error) {
	cctx, cancel := c.ctx(ctx)
	resp, err := c.api.NetworkCreate(cctx, name, opts)
	c.track("network_create", err)
	cancel()
	if err == nil {
		return resp.ID, nil
	}
	if !cerrdefs.IsConflict(err) && !cerrdefs.IsAlreadyExists(err) {
		return "", fmt.Errorf("create network %s: %w", name, err)
	}
	ictx, cancel := c.ctx(ctx)
	defer cancel()
	existing, ierr := c.api.NetworkInspect(ictx, name, network.InspectOptions{})
	c.track("network_inspect", ierr)
	if ierr != nil {
		return "", fmt.Errorf("create network %s: %w (inspect: %v)", name, err, ierr)
	}
	if !isOurs(existing.Labels) || existing.Labels[api.LabelClass] != opts.Labels[api.LabelClass] {
		return "", fmt.Errorf("network %s %w", name, ErrNotOurs)
	}
	return existing.ID, nil
}

// ManagedClasses lists the class ids on Homeroom's labelled containers and
// networks, so that those of classes gone from the store can be found. Its
// two listings count as operation orphan_list: the resync's search, not a
// class's pass.
func (c *Client) ManagedClasses(ctx context.Context) ([]string, error) {
	cs, err := c.listContainers(ctx, "", "orphan_list")
	if err != nil {
		return nil, err
	}
	ns, err := c.listNetworks(ctx, "", "orphan_list")
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	add := func(labels map[string]string) {
		if id := labels[api.LabelClass]; id != "" && !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	for _, c := range cs {
		add(c.Labels)
	}
	for _, n := range ns {
		add(n.Labels)
	}
	return out, nil
}

// UsedSubnets lists the subnets of every network on the daemon, Homeroom's
// or not, so that a new class network can take one nobody uses.
func (c *Client) UsedSubnets(ctx context.Context) ([]netip.Prefix, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	ns, err := c.api.NetworkList(ctx, network.ListOptions{})
	c.track("network_list", err)
	if err != nil {
		return nil, fmt.Errorf("list networks: %w", err)
	}
	var out []netip.Prefix
	for _, n := range ns {
		for _, cfg := range n.IPAM.Config {
			if p, err := netip.ParsePrefix(cfg.Subnet); err == nil {
				out = append(out, p.Masked())
			}
		}
	}
	return out, nil
}

// IsSubnetTaken reports whether a network create failed because its subnet
// overlaps another network's (the daemon answers 403 Forbidden).
func IsSubnetTaken(err error) bool { return cerrdefs.IsPermissionDenied(err) }

// RemoveNetwork removes a network; one already gone is success.
func (c *Client) RemoveNetwork(ctx context.Context, id string) error {
	cctx, cancel := c.ctx(ctx)
	defer cancel()
	err := c.api.NetworkRemove(cctx, id)
	c.track("network_remove", err)
	if err == nil || cerrdefs.IsNotFound(err) {
		return nil
	}
	if strings.Contains(err.Error(), "has active endpoints") {
		// Tell a network someone still uses from one the daemon counts
		// endpoints on for containers long gone.
		n, ierr := c.api.NetworkInspect(cctx, id, network.InspectOptions{})
		c.track("network_inspect", ierr)
		if ierr == nil && len(n.Containers) == 0 {
			return fmt.Errorf("remove network %s: %w: %v", id, ErrNetworkLeaked, err)
		}
	}
	return fmt.Errorf("remove network %s: %w", id, err)
}

// ErrNetworkLeaked is a network the daemon refuses to remove ("has active
// endpoints") although no container is attached to it. Debian's Docker
// 20.10 keeps such counts after many containers are removed at once; only
// a daemon restart clears them.
var ErrNetworkLeaked = errors.New("the daemon counts endpoints on it but no container is attached")

// Connect attaches a container to a network; already attached is success.
func (c *Client) Connect(ctx context.Context, networkID, containerID string) error {
	cctx, cancel := c.ctx(ctx)
	err := c.api.NetworkConnect(cctx, networkID, containerID, nil)
	c.track("network_connect", err)
	cancel()
	if err == nil {
		return nil
	}
	// The daemon answers a repeated connect with a generic error; what
	// matters is whether the container ends up attached, so look.
	if attached, ierr := c.attached(ctx, networkID, containerID); ierr == nil && attached {
		return nil
	}
	return fmt.Errorf("connect %s to %s: %w", containerID, networkID, err)
}

// Disconnect detaches a container from a network; not attached, or either
// side gone, is success.
func (c *Client) Disconnect(ctx context.Context, networkID, containerID string) error {
	cctx, cancel := c.ctx(ctx)
	err := c.api.NetworkDisconnect(cctx, networkID, containerID, true)
	c.track("network_disconnect", err)
	cancel()
	if err == nil || cerrdefs.IsNotFound(err) {
		return nil
	}
	if attached, ierr := c.attached(ctx, networkID, containerID); ierr == nil && !attached {
		return nil
	}
	return fmt.Errorf("disconnect %s from %s: %w", containerID, networkID, err)
}

func (c *Client) attached(ctx context.Context, networkID, containerID string) (bool, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	n, err := c.api.NetworkInspect(ctx, networkID, network.InspectOptions{})
	c.track("network_inspect", err)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return false, nil
		}
		return false, err
	}
	for id, ep := range n.Containers {
		if id == containerID || ep.Name == containerID || (len(containerID) >= 12 && len(id) >= len(containerID) && id[:len(containerID)] == containerID) {
			return true, nil
		}
	}
	return false, nil
}

// ContainerSpec is everything needed to create a container.
type ContainerSpec struct {
	Name       string
	Config     *container.Config
	HostConfig *container.HostConfig
	Networking *network.NetworkingConfig
}

// CreateContainer creates the container. When the name is taken by a
// Homeroom container of the same class and student it is adopted if its
// config hash matches and replaced otherwise (a half-made container from an
// interrupted pass); a look-alike without labels is never touched.
func (c *Client) CreateContainer(ctx context.Context, spec ContainerSpec) (string, error) {
	cctx, cancel := c.ctx(ctx)
	resp, err := c.api.ContainerCreate(cctx, spec.Config, spec.HostConfig, spec.Networking, nil, spec.Name)
	cancel()
	c.track("container_create", err)
	if err == nil {
		return resp.ID, nil
	}
	if !cerrdefs.IsConflict(err) && !cerrdefs.IsAlreadyExists(err) {
		return "", fmt.Errorf("create container %s: %w", spec.Name, err)
	}
	existing, ierr := c.InspectContainer(ctx, spec.Name)
	if ierr != nil {
		return "", fmt.Errorf("create container %s: %w (inspect: %v)", spec.Name, err, ierr)
	}
	want := spec.Config.Labels
	got := existing.Config.Labels
	if !isOurs(got) || got[api.LabelClass] != want[api.LabelClass] || got[api.LabelStudent] != want[api.LabelStudent] {
		return "", fmt.Errorf("container %s %w", spec.Name, ErrNotOurs)
	}
	if got[api.LabelConfigHash] == want[api.LabelConfigHash] {
		return existing.ID, nil
	}
	if err := c.RemoveContainer(ctx, existing.ID); err != nil {
		return "", err
	}
	cctx, cancel = c.ctx(ctx)
	defer cancel()
	resp, err = c.api.ContainerCreate(cctx, spec.Config, spec.HostConfig, spec.Networking, nil, spec.Name)
	c.track("container_create", err)
	if err != nil {
		return "", fmt.Errorf("recreate container %s: %w", spec.Name, err)
	}
	return resp.ID, nil
}

// StartContainer starts a container; one already running is success.
func (c *Client) StartContainer(ctx context.Context, id string) error {
	err := c.start(ctx, id)
	if err == nil {
		return nil
	}
	// A daemon stopped while it was starting containers can keep a stale
	// endpoint of the container on its network, and then refuses every
	// start ("endpoint ... already exists": 403). Dropping the endpoint and
	// attaching the container again repairs it without touching the
	// container or its volumes, which hold the student's work.
	if !cerrdefs.IsPermissionDenied(err) {
		return fmt.Errorf("start container %s: %w", id, err)
	}
	if rerr := c.reattach(ctx, id); rerr != nil {
		return fmt.Errorf("start container %s: %w (repairing its endpoints: %v)", id, err, rerr)
	}
	if err := c.start(ctx, id); err != nil {
		return fmt.Errorf("start container %s after repairing its endpoints: %w", id, err)
	}
	return nil
}

func (c *Client) start(ctx context.Context, id string) error {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	err := c.api.ContainerStart(ctx, id, container.StartOptions{})
	c.track("container_start", err)
	return err
}

// reattach disconnects a stopped container from each of its networks
// (forcing out stale endpoints) and connects it again with its aliases.
func (c *Client) reattach(ctx context.Context, id string) error {
	info, err := c.InspectContainer(ctx, id)
	if err != nil {
		return err
	}
	if info.NetworkSettings == nil {
		return nil
	}
	for name, ep := range info.NetworkSettings.Networks {
		var aliases []string
		if ep != nil {
			aliases = ep.Aliases
		}
		dctx, cancel := c.ctx(ctx)
		err := c.api.NetworkDisconnect(dctx, name, id, true)
		cancel()
		c.track("network_disconnect", err)
		if err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("disconnect from %s: %w", name, err)
		}
		cctx, cancel := c.ctx(ctx)
		err = c.api.NetworkConnect(cctx, name, id, &network.EndpointSettings{Aliases: aliases})
		cancel()
		c.track("network_connect", err)
		if err != nil {
			return fmt.Errorf("connect to %s: %w", name, err)
		}
	}
	return nil
}

// StopContainer stops a container, giving its process grace seconds to save
// its work; one already stopped or gone is success.
func (c *Client) StopContainer(ctx context.Context, id string, grace int) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout+time.Duration(grace)*time.Second)
	defer cancel()
	err := c.api.ContainerStop(ctx, id, container.StopOptions{Timeout: &grace})
	c.track("container_stop", err)
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("stop container %s: %w", id, err)
	}
	return nil
}

// RemoveContainer force-removes a container and its anonymous volumes; one
// already gone is success.
func (c *Client) RemoveContainer(ctx context.Context, id string) error {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	err := c.api.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true})
	c.track("container_remove", err)
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove container %s: %w", id, err)
	}
	return nil
}

// ListVolumes lists Homeroom's volumes of one class.
func (c *Client) ListVolumes(ctx context.Context, classID string) ([]*volume.Volume, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	resp, err := c.api.VolumeList(ctx, volume.ListOptions{Filters: ManagedFilter(classID)})
	c.track("volume_list", err)
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	return resp.Volumes, nil
}

// VolumeSizes measures Homeroom's volumes through the daemon's disk usage
// report: each one's labels and size in bytes (-1 where the daemon cannot
// tell). The daemon walks every volume to answer, so call it seldom.
func (c *Client) VolumeSizes(ctx context.Context) ([]*volume.Volume, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	du, err := c.api.DiskUsage(ctx, types.DiskUsageOptions{Types: []types.DiskUsageObject{types.VolumeObject}})
	c.track("disk_usage", err)
	if err != nil {
		return nil, fmt.Errorf("disk usage: %w", err)
	}
	var out []*volume.Volume
	for _, v := range du.Volumes {
		if v != nil && isOurs(v.Labels) {
			out = append(out, v)
		}
	}
	return out, nil
}

// RemoveVolume removes a volume of Homeroom's; one already gone is success.
// A volume still mounted by a container is refused by the daemon, and the
// refusal is returned: work is never removed from under its sandbox.
func (c *Client) RemoveVolume(ctx context.Context, name string) error {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	v, err := c.api.VolumeInspect(ctx, name)
	c.track("volume_inspect", err)
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("inspect volume %s: %w", name, err)
	}
	if !isOurs(v.Labels) {
		return fmt.Errorf("volume %s is not Homeroom's: left alone", name)
	}
	err = c.api.VolumeRemove(ctx, name, false)
	c.track("volume_remove", err)
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	return nil
}

// Archive streams a tar of path inside the container (stopped or running).
// The caller's ctx bounds the whole stream; the caller closes the reader.
func (c *Client) Archive(ctx context.Context, id, path string) (io.ReadCloser, error) {
	rc, _, err := c.api.CopyFromContainer(ctx, id, path)
	c.track("container_archive", err)
	if err != nil {
		return nil, fmt.Errorf("archive %s:%s: %w", id, path, err)
	}
	return rc, nil
}

// Logs streams the container's stdout and stderr, multiplexed as the daemon
// sends them for a container without a TTY. The caller's ctx bounds it.
func (c *Client) Logs(ctx context.Context, id string) (io.ReadCloser, error) {
	rc, err := c.api.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Timestamps: true})
	c.track("container_logs", err)
	if err != nil {
		return nil, fmt.Errorf("logs of %s: %w", id, err)
	}
	return rc, nil
}

// LogTail returns the container's last lines of stdout and stderr, at most
// maxBytes of them, as text: what a teacher is shown of a sandbox that does
// not start. What a sandbox prints is its own, so bytes that are not
// printable text are replaced.
func (c *Client) LogTail(ctx context.Context, id string, lines, maxBytes int) (string, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	rc, err := c.api.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(lines)})
	c.track("container_logs", err)
	if err != nil {
		return "", fmt.Errorf("logs of %s: %w", id, err)
	}
	defer rc.Close()
	tail, err := ReadLogTail(rc, maxBytes)
	if err != nil {
		return "", fmt.Errorf("logs of %s: %w", id, err)
	}
	return tail, nil
}

// ReadLogTail reads a multiplexed log stream (a container's or a swarm
// service's) and returns its last maxBytes as printable text.
func ReadLogTail(r io.Reader, maxBytes int) (string, error) {
	out := tailBuffer{max: maxBytes}
	if _, err := stdcopy.StdCopy(&out, &out, r); err != nil {
		return "", err
	}
	return printable(out.b.String()), nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	b   bytes.Buffer
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b.Write(p)
	if extra := t.b.Len() - t.max; extra > 0 {
		t.b.Next(extra)
	}
	return len(p), nil
}

// printable keeps text, newlines and tabs, and turns anything else (terminal
// escapes, invalid UTF-8) into U+FFFD.
func printable(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || unicode.IsPrint(r) {
			return r
		}
		return '\uFFFD'
	}, s)
}

// Events streams events about Homeroom's containers and networks and, when
// router is not empty, the start of the router container of that name (a
// restarted Traefik must be attached to every class network again). It ends
// with ctx. The events API replays only recent history, so after an error the
// caller must re-list rather than trust it saw everything.
func (c *Client) Events(ctx context.Context, router string) (<-chan events.Message, <-chan error) {
	ctx, cancel := context.WithCancel(ctx)
	msgs := make(chan events.Message)
	errs := make(chan error, 1)
	managed := ManagedFilter("")
	managed.Add("type", string(events.ContainerEventType))
	managed.Add("type", string(events.NetworkEventType))
	streams := []filters.Args{managed}
	if router != "" {
		streams = append(streams, filters.NewArgs(
			filters.Arg("type", string(events.ContainerEventType)),
			filters.Arg("container", router),
			filters.Arg("event", string(events.ActionStart)),
		))
	}
	var wg sync.WaitGroup
	for _, f := range streams {
		in, inErr := c.api.Events(ctx, events.ListOptions{Filters: f})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case m := <-in:
					select {
					case msgs <- m:
					case <-ctx.Done():
						return
					}
				case err := <-inErr:
					// One broken stream breaks both: the caller re-lists anyway.
					select {
					case errs <- err:
					default:
					}
					cancel()
					return
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); cancel() }()
	return msgs, errs
}
