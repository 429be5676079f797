// Package swarm is Homeroom's runtime on a Docker Swarm cluster. It gives
// the controller the same calls as the single Docker host (the reconcile
// package's Docker interface), so that the planner and the executor stay
// the same: a class network is an overlay network, a student's sandbox is a
// service of one replica that the swarm places on a node, and what must
// happen where a student's work is (collecting it, removing its volumes)
// runs there as a one-shot swarm job (cmd/nodejob). Labels on the services
// remain the only record of ownership.
package swarm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/homeroom/homeroom/internal/failpoint"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
	"github.com/homeroom/homeroom/pkg/dockerx"
)

// Staging is the part of the object store a collection job uploads
// through: a presigned address for one object, which the controller then
// reads and removes.
type Staging interface {
	PresignPut(ctx context.Context, key string, ttl time.Duration, endpoint string) (string, error)
	PresignGet(ctx context.Context, key string, ttl time.Duration, endpoint string) (string, error)
	PutStream(ctx context.Context, key string, r io.Reader, size int64, contentType string) (artifacts.Object, error)
	Open(ctx context.Context, key string) (io.ReadCloser, int64, error)
	Remove(ctx context.Context, key string) error
	ListKeys(ctx context.Context, prefix string) ([]string, error)
}

// Options configure the runtime.
type Options struct {
	// JobImage runs cmd/nodejob; every node must have it.
	JobImage string
	// StoreEndpoint is the object store as the nodes reach it (host:port or
	// a URL), for the collection jobs' uploads; "" is the controller's.
	StoreEndpoint string
	// NodeSocket is where each node's Docker socket is, on that node; the
	// jobs mount it (default /var/run/docker.sock).
	NodeSocket string
	// JobTimeout bounds one job from creation to completion (default 10 min).
	JobTimeout time.Duration
	// StartTimeout bounds how long a sandbox may take to be running on its
	// node (default 3 min): placing it, and the node's image lookup.
	StartTimeout time.Duration
	// Router is the Traefik container on the manager, which joins each
	// student's own network.
	Router string
	// NodeLostAfter is how long a node must have been down before its
	// sandboxes are made again on other nodes with their last autosave
	// (default 1 min): a daemon restarting comes back with their work.
	NodeLostAfter time.Duration
	// NetworkPool is how many students' own networks are kept made ahead
	// of an Up, with Router on them (see pool.go); 0 makes each as its
	// sandbox is made.
	NetworkPool int
}

// Runtime runs classes on a swarm through one of its managers. The calls
// about plain containers and networks (Traefik's attachment, the graders,
// events) go to the manager's own daemon, as on a single host.
type Runtime struct {
	*dockerx.Client
	api     *client.Client
	staging Staging
	opts    Options

	// classOf and volumeNode are hints, bounded by maxRemembered (see
	// note): forgetting one costs a dropped event, which the resync makes
	// up for, or a volume removal asked of every node rather than one.
	mu      sync.Mutex
	classOf map[string]string // service name → class, for events of removed services
	// volumeNode is the node a removed service last ran on, by service
	// name, where its work volumes are removed.
	volumeNode map[string]string
	// pinned counts the sandboxes pinned to each node (nil until counted).
	pinned map[string]int
	// volumeAt is the node each work volume was on at the last
	// measurement (see VolumeSizes), by name.
	volumeAt map[string]string
	pool     netPool
	// inUse are the names of the jobs this runtime runs and the staging
	// objects it uses now, which the sweeps leave alone; started, when the
	// runtime was made: what a controller before it left is older.
	inUse   map[string]bool
	started time.Time
}

// New wraps the client of a manager's daemon.
func New(c *dockerx.Client, staging Staging, opts Options) *Runtime {
	if opts.NodeSocket == "" {
		opts.NodeSocket = "/var/run/docker.sock"
	}
	if opts.JobTimeout <= 0 {
		opts.JobTimeout = 10 * time.Minute
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 3 * time.Minute
	}
	if opts.NodeLostAfter <= 0 {
		opts.NodeLostAfter = time.Minute
	}
	return &Runtime{Client: c, api: c.API(), staging: staging, opts: opts, classOf: map[string]string{}, volumeNode: map[string]string{}, pool: netPool{size: max(opts.NetworkPool, 0)},
		inUse: map[string]bool{}, started: time.Now()}
}

// CheckManager fails unless the daemon is an active manager of a swarm.
func (r *Runtime) CheckManager(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, dockerx.DefaultTimeout)
	defer cancel()
	info, err := r.api.Info(ctx)
	if err != nil {
		return fmt.Errorf("docker info: %w", err)
	}
	if info.Swarm.LocalNodeState != swarm.LocalNodeStateActive || !info.Swarm.ControlAvailable {
		return fmt.Errorf("the Docker daemon at %s is not a manager of an active swarm (state %q): HOMEROOM_RUNTIME=swarm needs one", r.api.DaemonHost(), info.Swarm.LocalNodeState)
	}
	return nil
}

func (r *Runtime) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, dockerx.DefaultTimeout)
}

// sandboxes lists the students' services (not the jobs) of one class, or
// of all with classID "".
func (r *Runtime) sandboxes(ctx context.Context, classID string) ([]swarm.Service, error) {
	return r.listSandboxes(ctx, classID, false)
}

// listSandboxes is sandboxes, with each one's count of running tasks when
// status is asked for (the manager counts them for each service).
func (r *Runtime) listSandboxes(ctx context.Context, classID string, status bool) ([]swarm.Service, error) {
	cctx, cancel := r.ctx(ctx)
	defer cancel()
	svcs, err := r.api.ServiceList(cctx, swarm.ServiceListOptions{Filters: dockerx.ManagedFilter(classID), Status: status})
	r.Track("service_list", err)
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	out := svcs[:0]
	for _, s := range svcs {
		if s.Spec.Labels[api.LabelStudent] != "" && s.Spec.Labels[labelJob] == "" {
			out = append(out, s)
		}
	}
	return out, nil
}

// tasks lists the tasks of the given services, newest first.
func (r *Runtime) tasks(ctx context.Context, serviceIDs ...string) ([]swarm.Task, error) {
	if len(serviceIDs) == 0 {
		return nil, nil
	}
	f := filters.NewArgs()
	for _, id := range serviceIDs {
		f.Add("service", id)
	}
	cctx, cancel := r.ctx(ctx)
	defer cancel()
	ts, err := r.api.TaskList(cctx, swarm.TaskListOptions{Filters: f})
	r.Track("task_list", err)
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	slices.SortFunc(ts, func(a, b swarm.Task) int { return b.Meta.CreatedAt.Compare(a.Meta.CreatedAt) })
	return ts, nil
}

// replicas is the service's wanted count of tasks.
func replicas(s swarm.Service) uint64 {
	if s.Spec.Mode.Replicated == nil || s.Spec.Mode.Replicated.Replicas == nil {
		return 0
	}
	return *s.Spec.Mode.Replicated.Replicas
}

// state maps a sandbox's service and its newest task to Docker's container
// states, which the planner reads: a service scaled to 0 is a stopped
// sandbox, a task on its way to running is one made and not yet started,
// and a task that ended while wanted running is one the swarm restarts.
func state(s swarm.Service, t *swarm.Task) string {
	if replicas(s) == 0 {
		return "exited"
	}
	if t == nil {
		return "created"
	}
	switch t.Status.State {
	case swarm.TaskStateRunning:
		return "running"
	case swarm.TaskStateFailed, swarm.TaskStateRejected, swarm.TaskStateShutdown, swarm.TaskStateComplete, swarm.TaskStateOrphaned, swarm.TaskStateRemove:
		return "restarting"
	default:
		return "created"
	}
}

// ListContainers lists the class's sandboxes as the single host's
// containers: the service's id, name and labels, and its newest task's
// state and address on the class network.
func (r *Runtime) ListContainers(ctx context.Context, classID string) ([]container.Summary, error) {
	svcs, err := r.sandboxes(ctx, classID)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(svcs))
	for i, s := range svcs {
		ids[i] = s.ID
	}
	ts, err := r.tasks(ctx, ids...)
	if err != nil {
		return nil, err
	}
	var nodes map[string]node
	if len(svcs) > 0 {
		if nodes, err = r.nodes(ctx); err != nil {
			return nil, err
		}
	}
	now := time.Now()
	newest := map[string]*swarm.Task{}
	for i := range ts {
		t := &ts[i]
		if cur := newest[t.ServiceID]; cur == nil || (cur.DesiredState != swarm.TaskStateRunning && t.DesiredState == swarm.TaskStateRunning) {
			newest[t.ServiceID] = t
		}
	}
	out := make([]container.Summary, 0, len(svcs))
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range svcs {
		t := newest[s.ID]
		c := container.Summary{
			ID: s.ID, Names: []string{"/" + s.Spec.Name}, Labels: s.Spec.Labels,
			Image: s.Spec.TaskTemplate.ContainerSpec.Image, Created: s.Meta.CreatedAt.Unix(),
			State: state(s, t),
		}
		if t != nil {
			net := api.NetworkName(s.Spec.Labels[api.LabelClass])
			for _, a := range t.NetworksAttachments {
				// The class network, or the student's own in its place.
				if (a.Network.Spec.Name == net || a.Network.Spec.Name == s.Spec.Name) && len(a.Addresses) > 0 {
					ip, _, _ := strings.Cut(a.Addresses[0], "/")
					c.NetworkSettings = &container.NetworkSettingsSummary{Networks: map[string]*network.EndpointSettings{net: {IPAddress: ip}}}
				}
			}
		}
		if n, ok := nodes[s.Spec.Labels[labelNode]]; ok && replicas(s) > 0 && n.State != swarm.NodeStateReady && now.Sub(n.Since) >= r.opts.NodeLostAfter {
			c.Labels = maps.Clone(c.Labels)
			c.Labels[api.LabelLost] = fmt.Sprintf("the node it was on, %s (%s), has been %s since %s%s",
				n.Hostname, n.ID, n.State, n.Since.UTC().Format(time.RFC3339), suffix(n.Message))
			c.Labels[api.LabelLostOn] = n.ID
		}
		note(r.classOf, s.Spec.Name, s.Spec.Labels[api.LabelClass])
		out = append(out, c)
	}
	return out, nil
}

// InspectContainer inspects a container on the manager (Traefik's, a
// grader's). A sandbox is a service: the planner inspects one only to read
// how its last run ended, which the swarm reports per task.
func (r *Runtime) InspectContainer(ctx context.Context, nameOrID string) (container.InspectResponse, error) {
	info, err := r.Client.InspectContainer(ctx, nameOrID)
	if !cerrdefs.IsNotFound(err) {
		return info, err
	}
	s, serr := r.service(ctx, nameOrID)
	if serr != nil {
		return info, err
	}
	ts, terr := r.tasks(ctx, s.ID)
	if terr != nil {
		return info, terr
	}
	resp := container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{ID: s.ID, Name: "/" + s.Spec.Name, State: &container.State{}},
		Config:            &container.Config{Labels: s.Spec.Labels},
	}
	if len(ts) > 0 {
		t := ts[0]
		resp.State.Status = state(s, &t)
		resp.State.Running = t.Status.State == swarm.TaskStateRunning
		resp.State.Error = t.Status.Err
		if cs := t.Status.ContainerStatus; cs != nil {
			resp.State.ExitCode = cs.ExitCode
		}
		resp.State.StartedAt = t.Meta.CreatedAt.Format(time.RFC3339Nano)
		resp.State.FinishedAt = t.Status.Timestamp.Format(time.RFC3339Nano)
	}
	return resp, nil
}

func (r *Runtime) service(ctx context.Context, nameOrID string) (swarm.Service, error) {
	cctx, cancel := r.ctx(ctx)
	defer cancel()
	s, _, err := r.api.ServiceInspectWithRaw(cctx, nameOrID, swarm.ServiceInspectOptions{})
	r.Track("service_inspect", err)
	return s, err
}

// EnsureNetwork makes the class network an attachable overlay network:
// attachable, so that Traefik, a plain container on a manager, can join
// it. An overlay network has no switch that keeps its members apart, as
// the bridge's enable_icc=false does: where the template wants its
// sandboxes apart, the network is marked isolated and each student's
// sandbox gets a network of its own instead (see CreateContainer).
func (r *Runtime) EnsureNetwork(ctx context.Context, name string, opts network.CreateOptions) (string, error) {
	isolated := opts.Options[bridgeICC] == "false"
	opts.Driver = "overlay"
	opts.Attachable = true
	opts.Scope = "swarm"
	opts.Options = nil
	if isolated {
		opts.Labels = maps.Clone(opts.Labels)
		opts.Labels[labelIsolated] = "true"
	}
	return r.Client.EnsureNetwork(ctx, name, opts)
}

// bridgeICC is the bridge driver's option for traffic between containers,
// which the planner turns off unless a template allows collaboration.
const bridgeICC = "com.docker.network.bridge.enable_icc"

// labelIsolated marks a class network whose sandboxes must not reach each
// other; labelStudentNetwork, a student's own network.
const (
	labelIsolated       = "homeroom.isolated"
	labelStudentNetwork = "homeroom.student-network"
)

// studentNetwork gives the sandbox its own network when its class network
// is isolated: internal like the class's, with the swarm's own addresses,
// and with Traefik on it; one from the pool where it has one, warmed on
// node where it can. It returns the network to attach the sandbox to, and
// whether it was the pool's.
func (r *Runtime) studentNetwork(ctx context.Context, classNet, class, student, name, node string) (string, bool, error) {
	cctx, cancel := r.ctx(ctx)
	n, err := r.api.NetworkInspect(cctx, classNet, network.InspectOptions{})
	cancel()
	r.Track("network_inspect", err)
	if err != nil {
		return "", false, fmt.Errorf("inspect %s: %w", classNet, err)
	}
	if n.Labels[labelIsolated] != "true" {
		return classNet, false, nil
	}
	if n.Internal { // the pool's networks are internal
		if pooled, ok := r.takeNetwork(node); ok {
			return pooled, true, nil
		}
	}
	id, err := r.Client.EnsureNetwork(ctx, name, network.CreateOptions{
		Driver: "overlay", Attachable: true, Scope: "swarm", Internal: n.Internal,
		Labels: map[string]string{api.LabelManagedBy: api.ManagedByValue, api.LabelClass: class, api.LabelStudent: student, labelStudentNetwork: "true"},
	})
	if err != nil {
		return "", false, err
	}
	if r.opts.Router != "" {
		if err := r.Client.Connect(ctx, id, r.opts.Router); err != nil && !cerrdefs.IsNotFound(err) {
			return "", false, err
		}
	}
	return name, false, nil
}

// studentNetworks lists the class's students' own networks, by id: those
// made for a student, which carry the class's label, and those taken from
// the pool, which only the class's services name.
func (r *Runtime) studentNetworks(ctx context.Context, class string) ([]string, error) {
	ns, err := r.Client.ListNetworks(ctx, class)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range ns {
		if n.Labels[labelStudentNetwork] == "true" {
			out = append(out, n.ID)
		}
	}
	svcs, err := r.sandboxes(ctx, class)
	if err != nil || len(svcs) == 0 {
		return out, err
	}
	pooled, err := r.poolNetworks(ctx)
	if err != nil {
		return nil, err
	}
	for _, s := range svcs {
		for _, a := range s.Spec.TaskTemplate.Networks {
			for _, n := range pooled {
				if (a.Target == n.ID || a.Target == n.Name) && !slices.Contains(out, n.ID) {
					out = append(out, n.ID)
				}
			}
		}
	}
	return out, nil
}

// Connect attaches Traefik to the class network and to the class's
// students' own networks: a Traefik started again is attached to all of
// them by the step that attaches it to the class network.
func (r *Runtime) Connect(ctx context.Context, networkID, containerID string) error {
	if err := r.Client.Connect(ctx, networkID, containerID); err != nil {
		return err
	}
	class, err := r.classOfNetwork(ctx, networkID)
	if err != nil {
		return err
	}
	own, err := r.studentNetworks(ctx, class)
	if err != nil {
		return err
	}
	for _, n := range own {
		if err := r.Client.Connect(ctx, n, containerID); err != nil {
			return err
		}
	}
	return nil
}

// Disconnect detaches Traefik from the class network and from whatever
// student networks of the class are left.
func (r *Runtime) Disconnect(ctx context.Context, networkID, containerID string) error {
	class, err := r.classOfNetwork(ctx, networkID)
	if err != nil && !cerrdefs.IsNotFound(err) {
		return err
	}
	if class != "" {
		own, err := r.studentNetworks(ctx, class)
		if err != nil {
			return err
		}
		for _, n := range own {
			if err := r.Client.Disconnect(ctx, n, containerID); err != nil {
				return err
			}
		}
	}
	return r.Client.Disconnect(ctx, networkID, containerID)
}

func (r *Runtime) classOfNetwork(ctx context.Context, id string) (string, error) {
	cctx, cancel := r.ctx(ctx)
	defer cancel()
	n, err := r.api.NetworkInspect(cctx, id, network.InspectOptions{})
	r.Track("network_inspect", err)
	if err != nil {
		return "", err
	}
	return n.Labels[api.LabelClass], nil
}

// ownNetworks are those of the named networks that are a student's own
// (made for the student or taken from the pool), by id, with the names of
// the placeholders of those from the pool; a network gone is none.
func (r *Runtime) ownNetworks(ctx context.Context, names []string) (own, warms []string, err error) {
	for _, name := range names {
		cctx, cancel := r.ctx(ctx)
		n, err := r.api.NetworkInspect(cctx, name, network.InspectOptions{})
		cancel()
		r.Track("network_inspect", err)
		if cerrdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("inspect %s: %w", name, err)
		}
		if n.Labels[api.LabelManagedBy] == api.ManagedByValue && n.Labels[labelStudentNetwork] == "true" && !slices.Contains(own, n.ID) {
			own = append(own, n.ID)
			if n.Labels[labelPool] == "true" {
				warms = append(warms, warmName(n.Name))
			}
		}
	}
	return own, warms, nil
}

// removeStudentNetwork removes a student's own network once its service is
// gone (Traefik left it before: see RemoveContainer); the swarm may take a
// moment to release the removed service's endpoint.
func (r *Runtime) removeStudentNetwork(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		cctx, ccancel := r.ctx(ctx)
		err := r.api.NetworkRemove(cctx, id)
		ccancel()
		r.Track("network_remove", err)
		if err == nil || cerrdefs.IsNotFound(err) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("remove network %s: %w", id, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// CreateContainer makes the student's service from the container spec the
// planner made for a single host: the same image, command, user, limits,
// hardening, volumes and labels, one replica, spread over the nodes by the
// swarm's scheduler, with the template's memory reserved on the node so
// that no node takes more sandboxes than it can hold. A service of that
// name is adopted when its labels say it is this student's with the same
// config hash, and replaced otherwise.
func (r *Runtime) CreateContainer(ctx context.Context, spec dockerx.ContainerSpec) (string, error) {
	if spec.Config.Labels[api.LabelRecovering] != "" {
		if on := spec.Config.Labels[api.LabelRecoverOn]; on != "" {
			return r.recoveryService(ctx, spec, on)
		}
		// Work volumes whose sandbox is gone are on the node they were
		// used on, which the controller does not know here.
		return "", errors.New("collecting work volumes without their sandbox is not supported on a swarm yet")
	}
	svc, pooled, err := r.serviceFor(ctx, spec)
	if err != nil {
		return "", err
	}
	cctx, cancel := r.ctx(ctx)
	resp, err := r.api.ServiceCreate(cctx, svc, swarm.ServiceCreateOptions{QueryRegistry: false})
	cancel()
	r.Track("service_create", err)
	if err == nil {
		r.remember(spec)
		return resp.ID, nil
	}
	existing, ierr := r.service(ctx, spec.Name)
	if pooled != "" && (cerrdefs.IsNotFound(ierr) || ierr == nil && !r.names(ctx, existing, pooled)) {
		// No service was made on the network taken from the pool (a
		// service of that name already was, or none is): it is still
		// free. Where that is not known, it stays taken.
		r.giveBack(pooled)
	}
	if !cerrdefs.IsConflict(err) && !cerrdefs.IsAlreadyExists(err) {
		return "", fmt.Errorf("create service %s: %w", spec.Name, err)
	}
	if ierr != nil {
		return "", fmt.Errorf("create service %s: %w (inspect: %v)", spec.Name, err, ierr)
	}
	want, got := spec.Config.Labels, existing.Spec.Labels
	if got[api.LabelManagedBy] != api.ManagedByValue || got[api.LabelClass] != want[api.LabelClass] || got[api.LabelStudent] != want[api.LabelStudent] {
		return "", fmt.Errorf("service %s %w", spec.Name, dockerx.ErrNotOurs)
	}
	if got[api.LabelConfigHash] == want[api.LabelConfigHash] {
		r.remember(spec)
		return existing.ID, nil
	}
	if err := r.RemoveContainer(ctx, existing.ID); err != nil {
		return "", err
	}
	if svc, _, err = r.serviceFor(ctx, spec); err != nil { // its own network went with it
		return "", err
	}
	cctx, cancel = r.ctx(ctx)
	defer cancel()
	resp, err = r.api.ServiceCreate(cctx, svc, swarm.ServiceCreateOptions{QueryRegistry: false})
	r.Track("service_create", err)
	if err != nil {
		return "", fmt.Errorf("recreate service %s: %w", spec.Name, err)
	}
	r.remember(spec)
	return resp.ID, nil
}

// names reports whether the service is on the network, which it names by
// id (as the swarm keeps it) or by name; where that cannot be told, it is.
func (r *Runtime) names(ctx context.Context, s swarm.Service, network string) bool {
	ids, _, err := r.ownNetworks(ctx, []string{network})
	if err != nil {
		return true
	}
	for _, a := range s.Spec.TaskTemplate.Networks {
		if a.Target == network || slices.Contains(ids, a.Target) {
			return true
		}
	}
	return false
}

// recoveryService makes the service, never started, through which the
// work volumes a lost sandbox left on node are collected: pinned there
// and marked started, so that Archive reads the volume as it is rather
// than as a first start would make it. One left by a crash is made anew.
func (r *Runtime) recoveryService(ctx context.Context, spec dockerx.ContainerSpec, node string) (string, error) {
	svc := pin(serviceSpec(spec), node)
	svc.TaskTemplate.Networks = nil
	svc.Labels[labelStarted] = "true"
	for attempt := 0; ; attempt++ {
		cctx, cancel := r.ctx(ctx)
		resp, err := r.api.ServiceCreate(cctx, svc, swarm.ServiceCreateOptions{QueryRegistry: false})
		cancel()
		r.Track("service_create", err)
		if err == nil {
			return resp.ID, nil
		}
		if attempt > 0 || !cerrdefs.IsConflict(err) && !cerrdefs.IsAlreadyExists(err) {
			return "", fmt.Errorf("create service %s: %w", spec.Name, err)
		}
		if err := r.removeService(ctx, spec.Name); err != nil {
			return "", err
		}
	}
}

// removeService removes a service, which may be gone already.
func (r *Runtime) removeService(ctx context.Context, name string) error {
	cctx, cancel := r.ctx(ctx)
	defer cancel()
	err := r.api.ServiceRemove(cctx, name)
	r.Track("service_remove", err)
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove service %s: %w", name, err)
	}
	return nil
}

// serviceFor is the student's service, pinned to a node, on the student's
// own network where the class's keeps sandboxes apart: one warmed on that
// node where the pool has one. It names the network it took from the
// pool, if it did.
func (r *Runtime) serviceFor(ctx context.Context, spec dockerx.ContainerSpec) (swarm.ServiceSpec, string, error) {
	svc, err := r.place(ctx, serviceSpec(spec))
	if err != nil {
		return svc, "", err
	}
	nets := svc.TaskTemplate.Networks
	if len(nets) != 1 {
		return svc, "", nil
	}
	node := svc.Labels[labelNode]
	own, fromPool, err := r.studentNetwork(ctx, nets[0].Target, spec.Config.Labels[api.LabelClass], spec.Config.Labels[api.LabelStudent], spec.Name, node)
	if err != nil {
		r.unpin(node)
		return svc, "", err
	}
	pooled := ""
	if fromPool {
		pooled = own
	}
	if own != nets[0].Target {
		svc.TaskTemplate.Networks = []swarm.NetworkAttachmentConfig{{Target: own, Aliases: nets[0].Aliases}}
		svc.Labels["traefik.swarm.network"] = own // place cloned the labels
	}
	return svc, pooled, nil
}

// place pins the sandbox to a node, chosen here rather than by the swarm:
// its work volume is on that node, so the swarm must not start it anywhere
// else (it would start on an empty volume). A sandbox whose work volume
// the last measurement saw on a ready node (its service removed by hand,
// say) goes back there, to its work. The service is made with no replica,
// as a container is made stopped: StartContainer starts it, after whatever
// must be put into its volume first.
func (r *Runtime) place(ctx context.Context, svc swarm.ServiceSpec) (swarm.ServiceSpec, error) {
	prefer := ""
	r.mu.Lock()
	for _, m := range svc.TaskTemplate.ContainerSpec.Mounts {
		if m.Type == mount.TypeVolume && r.volumeAt[m.Source] != "" {
			prefer = r.volumeAt[m.Source]
		}
	}
	r.mu.Unlock()
	node, err := r.pickNode(ctx, prefer)
	if err != nil {
		return svc, err
	}
	return pin(svc, node), nil
}

// pin is the service pinned to node, recorded in its labels (a copy), with
// no replica yet.
func pin(svc swarm.ServiceSpec, node string) swarm.ServiceSpec {
	svc.Labels = maps.Clone(svc.Labels)
	svc.Labels[labelNode] = node
	svc.TaskTemplate.Placement = &swarm.Placement{Constraints: []string{"node.id==" + node}}
	none := uint64(0)
	svc.Mode = swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &none}}
	return svc
}

// pickNode is prefer where it is ready, else the ready node with the
// fewest of Homeroom's sandboxes pinned to it, counted once from the swarm
// and then as this runtime places and removes them; a class spreads over
// the nodes.
func (r *Runtime) pickNode(ctx context.Context, prefer string) (string, error) {
	nodes, err := r.nodes(ctx)
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	counted := r.pinned != nil
	r.mu.Unlock()
	if !counted {
		svcs, err := r.sandboxes(ctx, "")
		if err != nil {
			return "", err
		}
		r.mu.Lock()
		if r.pinned == nil {
			r.pinned = map[string]int{}
			for _, s := range svcs {
				r.pinned[s.Spec.Labels[labelNode]]++
			}
		}
		r.mu.Unlock()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	best := ""
	if n, ok := nodes[prefer]; ok && n.ready() {
		best = prefer
	} else {
		for _, n := range nodes {
			if n.ready() && (best == "" || r.pinned[n.ID] < r.pinned[best] || (r.pinned[n.ID] == r.pinned[best] && n.ID < best)) {
				best = n.ID
			}
		}
	}
	if best == "" {
		return "", fmt.Errorf("%w: no node of the swarm is ready and active", ErrNodeDown)
	}
	r.pinned[best]++
	return best, nil
}

// unpin counts a sandbox less on node.
func (r *Runtime) unpin(node string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pinned != nil && r.pinned[node] > 0 {
		r.pinned[node]--
	}
}

// node is what the runtime needs of a swarm node.
type node struct {
	ID, Hostname string
	State        swarm.NodeState
	Availability swarm.NodeAvailability
	Message      string
	Since        time.Time // its last change of state
}

func (n node) ready() bool {
	return n.State == swarm.NodeStateReady && n.Availability == swarm.NodeAvailabilityActive
}

func (r *Runtime) nodes(ctx context.Context) (map[string]node, error) {
	cctx, cancel := r.ctx(ctx)
	defer cancel()
	ns, err := r.api.NodeList(cctx, swarm.NodeListOptions{})
	r.Track("node_list", err)
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	out := make(map[string]node, len(ns))
	for _, n := range ns {
		out[n.ID] = node{ID: n.ID, Hostname: n.Description.Hostname, State: n.Status.State,
			Availability: n.Spec.Availability, Message: n.Status.Message, Since: n.Meta.UpdatedAt}
	}
	return out, nil
}

func (r *Runtime) remember(spec dockerx.ContainerSpec) {
	r.mu.Lock()
	note(r.classOf, spec.Name, spec.Config.Labels[api.LabelClass])
	r.mu.Unlock()
}

// maxRemembered bounds each of the runtime's hints: a controller that runs
// for months sees ever more services come and go.
const maxRemembered = 20_000

// note sets m[k] = v, first emptying m when it holds maxRemembered hints
// and k is new.
func note(m map[string]string, k, v string) {
	if _, ok := m[k]; !ok && len(m) >= maxRemembered {
		clear(m)
	}
	m[k] = v
}

// serviceSpec translates a single host's container spec.
func serviceSpec(spec dockerx.ContainerSpec) swarm.ServiceSpec {
	cfg, host := spec.Config, spec.HostConfig
	one := uint64(1)
	cs := &swarm.ContainerSpec{
		Image: cfg.Image, Labels: cfg.Labels, Args: cfg.Cmd, Hostname: cfg.Hostname, Env: cfg.Env,
		Dir: cfg.WorkingDir, User: cfg.User, ReadOnly: host.ReadonlyRootfs,
		CapabilityDrop: host.CapDrop, CapabilityAdd: host.CapAdd,
		Mounts: slices.Clone(host.Mounts),
		// Newer daemons honour it; 20.10's swarm has no such option.
		Privileges: &swarm.Privileges{NoNewPrivileges: slices.Contains(host.SecurityOpt, "no-new-privileges:true")},
	}
	if len(cfg.Entrypoint) > 0 {
		cs.Command = cfg.Entrypoint
	}
	for target := range host.Tmpfs {
		cs.Mounts = append(cs.Mounts, mount.Mount{Type: mount.TypeTmpfs, Target: target,
			TmpfsOptions: &mount.TmpfsOptions{SizeBytes: 16 << 20, Mode: 0o1777}})
	}
	res := &swarm.ResourceRequirements{
		Limits:       &swarm.Limit{NanoCPUs: host.NanoCPUs, MemoryBytes: host.Memory},
		Reservations: &swarm.Resources{MemoryBytes: host.Memory},
	}
	if host.PidsLimit != nil {
		res.Limits.Pids = *host.PidsLimit
	}
	var nets []swarm.NetworkAttachmentConfig
	if spec.Networking != nil {
		for name, ep := range spec.Networking.EndpointsConfig {
			a := swarm.NetworkAttachmentConfig{Target: name}
			if ep != nil {
				a.Aliases = ep.Aliases
			}
			nets = append(nets, a)
		}
	}
	var logs *swarm.Driver
	if host.LogConfig.Type != "" {
		logs = &swarm.Driver{Name: host.LogConfig.Type, Options: host.LogConfig.Config}
	}
	labels := cfg.Labels
	if net, ok := labels["traefik.docker.network"]; ok {
		// Traefik's Swarm provider reads its own name for the network
		// through which it reaches the service's tasks, and skips a
		// service that also has the Docker provider's.
		labels = maps.Clone(labels)
		delete(labels, "traefik.docker.network")
		labels["traefik.swarm.network"] = net
	}
	return swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: spec.Name, Labels: labels},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: cs, Resources: res, Networks: nets, LogDriver: logs,
			RestartPolicy: &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionAny},
		},
		Mode: swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &one}},
		// No virtual address: Traefik reaches the task itself, by its own
		// address, and nothing else reaches a sandbox; a virtual address
		// would have each node set up a load balancer for it on the
		// sandbox's network before the sandbox starts.
		EndpointSpec: &swarm.EndpointSpec{Mode: swarm.ResolutionModeDNSRR},
	}
}

// scale sets the service's replicas; one already there is left alone.
// Scaling to none records the node the sandbox last ran on in the
// service's labels, in the same update: the swarm forgets the tasks of a
// service scaled to none, and its work volume stays on that node.
func (r *Runtime) scale(ctx context.Context, name string, n uint64) (swarm.Service, error) {
	for attempt := 1; ; attempt++ {
		s, err := r.scaleOnce(ctx, name, n)
		// The swarm updates a new service itself (its network
		// allocation), so a read-then-update can meet a newer version;
		// the daemon says so only in words.
		if err == nil || attempt == 5 || !strings.Contains(err.Error(), "update out of sequence") {
			return s, err
		}
	}
}

func (r *Runtime) scaleOnce(ctx context.Context, name string, n uint64) (swarm.Service, error) {
	s, err := r.service(ctx, name)
	if err != nil {
		return s, err
	}
	if replicas(s) == n {
		return s, nil
	}
	if n == 0 {
		node, err := r.lastNode(ctx, s)
		if err != nil {
			return s, err
		}
		if node != "" {
			labels := maps.Clone(s.Spec.Labels)
			labels[labelNode] = node
			s.Spec.Labels = labels
		}
	}
	if n > 0 && s.Spec.Labels[labelStarted] == "" {
		// From now on its work volume holds the student's work: a
		// collection never makes it anew.
		labels := maps.Clone(s.Spec.Labels)
		labels[labelStarted] = "true"
		s.Spec.Labels = labels
	}
	s.Spec.Mode.Replicated = &swarm.ReplicatedService{Replicas: &n}
	cctx, cancel := r.ctx(ctx)
	defer cancel()
	_, err = r.api.ServiceUpdate(cctx, s.ID, s.Version, s.Spec, swarm.ServiceUpdateOptions{})
	r.Track("service_update", err)
	if err != nil {
		return s, fmt.Errorf("scale service %s to %d: %w", name, n, err)
	}
	return r.service(ctx, name)
}

// lastNode is the node of the sandbox's newest task, or the one recorded
// when it was scaled to none; "" when it never ran.
func (r *Runtime) lastNode(ctx context.Context, s swarm.Service) (string, error) {
	if n := s.Spec.Labels[labelNode]; n != "" {
		return n, nil // pinned there
	}
	ts, err := r.tasks(ctx, s.ID)
	if err != nil {
		return "", err
	}
	for _, t := range ts {
		if t.NodeID != "" {
			return t.NodeID, nil
		}
	}
	return s.Spec.Labels[labelNode], nil
}

// StartContainer wants the sandbox running and waits until its task runs
// on a node: the swarm starts it on its own time, and the pass that
// started it reports it running. A task the node failed to start is
// reported with the node's reason.
func (r *Runtime) StartContainer(ctx context.Context, name string) error {
	s, err := r.scale(ctx, name, 1)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.opts.StartTimeout)
	defer cancel()
	last := ""
	var wait backoff
	for look := 0; ; look++ {
		if look%4 == 0 {
			if err := r.nodeUp(ctx, s.Spec.Labels[labelNode]); err != nil {
				return fmt.Errorf("start %s: %w", name, err)
			}
		}
		ts, err := r.tasks(ctx, s.ID)
		if err != nil {
			return err
		}
		for _, t := range ts {
			if t.DesiredState != swarm.TaskStateRunning {
				if t.Status.Err != "" {
					last = t.Status.Err
				}
				continue
			}
			if t.Status.State == swarm.TaskStateRunning {
				return nil
			}
			if t.Status.Err != "" {
				last = t.Status.Err
			}
		}
		if wait.wait(ctx) != nil {
			if last != "" {
				return fmt.Errorf("start %s: not running after %s: %s", name, r.opts.StartTimeout, last)
			}
			return fmt.Errorf("start %s: not running after %s", name, r.opts.StartTimeout)
		}
	}
}

// backoff paces a wait for the swarm: 200 ms before the first look again,
// half as long again each time up to 2 s, so that a class of sandboxes
// waiting at once does not keep the manager busy answering.
type backoff struct{ d time.Duration }

func (b *backoff) wait(ctx context.Context) error {
	if b.d == 0 {
		b.d = 200 * time.Millisecond
	} else {
		b.d = min(b.d*3/2, 2*time.Second)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(b.d):
		return nil
	}
}

// StopContainer scales the sandbox to none and waits until its task has
// stopped, so that nothing writes to its work while it is collected.
func (r *Runtime) StopContainer(ctx context.Context, name string, grace int) error {
	s, err := r.scale(ctx, name, 0)
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(grace)*time.Second+time.Minute)
	defer cancel()
	var wait backoff
	for {
		ts, err := r.tasks(ctx, s.ID)
		if err != nil {
			return err
		}
		var live []swarm.Task
		for _, t := range ts {
			if !terminal(t.Status.State) {
				live = append(live, t)
			}
		}
		if len(live) == 0 {
			return nil
		}
		for _, t := range live {
			if err := r.nodeUp(ctx, t.NodeID); err != nil {
				return fmt.Errorf("stop %s: %w", name, err)
			}
		}
		if wait.wait(ctx) != nil {
			return fmt.Errorf("stop %s: its task still runs", name)
		}
	}
}

func terminal(s swarm.TaskState) bool {
	switch s {
	case swarm.TaskStateComplete, swarm.TaskStateShutdown, swarm.TaskStateFailed, swarm.TaskStateRejected, swarm.TaskStateOrphaned, swarm.TaskStateRemove:
		return true
	}
	return false
}

// RemoveContainer removes the student's service and the student's own
// network; one already gone is success. Traefik leaves that network before
// the service goes, so that a network from the pool, once used, never
// looks free again (see pool.go). The work volumes stay on the node until
// RemoveVolume, which is told that node. A recovery service is no sandbox:
// it counts on no node.
func (r *Runtime) RemoveContainer(ctx context.Context, name string) error {
	s, err := r.service(ctx, name)
	return r.removeSandbox(ctx, name, s, err)
}

// removeSandbox is RemoveContainer once the service is looked up (err is
// that lookup's).
func (r *Runtime) removeSandbox(ctx context.Context, name string, s swarm.Service, err error) error {
	nets := []string{name} // a network made for the student has its name
	if err == nil {
		nets = nets[:0]
		for _, a := range s.Spec.TaskTemplate.Networks {
			nets = append(nets, a.Target)
		}
	}
	if err == nil && s.Spec.Labels[api.LabelStudent] != "" {
		if node, err := r.lastNode(ctx, s); err == nil && node != "" {
			r.mu.Lock()
			note(r.volumeNode, name, node)
			r.mu.Unlock()
			r.unpin(node)
		}
	}
	own, warms, err := r.ownNetworks(ctx, nets)
	if err != nil {
		return err
	}
	if r.opts.Router != "" {
		for _, n := range own {
			if err := r.Client.Disconnect(ctx, n, r.opts.Router); err != nil {
				return err
			}
		}
	}
	if err := r.removeService(ctx, name); err != nil {
		return err
	}
	for _, w := range warms { // mostly gone already (see pool.go)
		if err := r.removeService(ctx, w); err != nil {
			return err
		}
	}
	for _, n := range own {
		if err := r.removeStudentNetwork(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// RemoveCollected removes a collected sandbox: its work volumes first,
// through a job on the node it was pinned to, then its service and its own
// network. The node is known from the service only: a crash between the
// two leaves the service (scaled to none), which the next pass removes the
// same way, and never a volume on a node nobody knows. The job removes the
// stopped container of the sandbox's task with the volume, and refuses a
// volume a running container holds.
func (r *Runtime) RemoveCollected(ctx context.Context, name string, volumes []string) error {
	s, err := r.service(ctx, name)
	if cerrdefs.IsNotFound(err) {
		// Gone already (by hand, or a controller of an earlier release):
		// the volumes are removed where the runtime last saw it, if known.
		for _, v := range volumes {
			if err := r.RemoveVolume(ctx, v); err != nil {
				return err
			}
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	node := s.Spec.Labels[labelNode]
	if node == "" {
		if node, err = r.lastNode(ctx, s); err != nil {
			return fmt.Errorf("remove %s: %w", name, err)
		}
	}
	if len(volumes) > 0 && node != "" {
		if err := r.nodeUp(ctx, node); err != nil {
			return fmt.Errorf("remove %s: %w", name, err)
		}
		for _, v := range volumes {
			if err := r.removeVolumeJob(ctx, node, v); err != nil {
				return err
			}
		}
	}
	failpoint.Hit("container-removed")
	return r.removeSandbox(ctx, name, s, nil)
}

// PlacesUp are the nodes that are ready, by id: where the work volumes a
// lost sandbox left can be collected and removed.
func (r *Runtime) PlacesUp(ctx context.Context) (map[string]bool, error) {
	ns, err := r.nodes(ctx)
	if err != nil {
		return nil, err
	}
	up := map[string]bool{}
	for id, n := range ns {
		up[id] = n.State == swarm.NodeStateReady
	}
	return up, nil
}

// RemoveVolumeOn removes a work volume on node only, through a job there,
// which removes it only where it carries Homeroom's labels: the volume of
// the same name on the node the sandbox runs on now is left alone.
func (r *Runtime) RemoveVolumeOn(ctx context.Context, node, name string) error {
	if node == "" {
		return fmt.Errorf("remove volume %s: no node named", name)
	}
	if i := strings.LastIndexByte(name, '-'); i > 0 {
		// Never the volume of the sandbox that is pinned there now (one
		// lost again, and made again on the node that came back): that
		// volume is the live one.
		s, err := r.service(ctx, name[:i])
		switch {
		case err == nil && s.Spec.Labels[labelNode] == node:
			return fmt.Errorf("remove volume %s on %s: the student's sandbox is on that node now, and the volume is its own", name, node)
		case err != nil && !cerrdefs.IsNotFound(err):
			return fmt.Errorf("remove volume %s: %w", name, err)
		}
	}
	if err := r.nodeUp(ctx, node); err != nil {
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	return r.removeVolumeJob(ctx, node, name)
}

// removeVolumeJob removes a work volume through a job on node, or on every
// node with node "", and forgets where the last measurement saw it there:
// a sandbox of the same name made later starts afresh wherever it is put.
func (r *Runtime) removeVolumeJob(ctx context.Context, node, name string) error {
	if _, err := r.runJob(ctx, job{kind: "remove-volume", node: node, global: node == "", args: []string{"remove-volume", "-name", name}}); err != nil {
		return err
	}
	r.mu.Lock()
	if node == "" || r.volumeAt[name] == node {
		delete(r.volumeAt, name)
	}
	r.mu.Unlock()
	return nil
}

// ListVolumes lists the class's work volumes the controller can collect
// without their sandbox. On a swarm they are on the nodes, out of the
// manager's reach, so none are listed: a sandbox's work is collected
// through its service (see Archive).
func (r *Runtime) ListVolumes(ctx context.Context, classID string) ([]*volume.Volume, error) {
	return nil, nil
}

// VolumeSizes measures the students' work volumes where they are, through
// a job on every ready node (the manager cannot see another node's
// volumes), for the workspace cap; nothing while no sandbox exists. A
// student's volumes count only on the node their sandbox is pinned to: one
// a lost node kept, back again, is no longer theirs to fill (it is
// collected and removed as work left behind).
func (r *Runtime) VolumeSizes(ctx context.Context) ([]*volume.Volume, error) {
	svcs, err := r.sandboxes(ctx, "")
	if err != nil || len(svcs) == 0 {
		return nil, err
	}
	out, err := r.runJob(ctx, job{kind: "volume-sizes", global: true, readyOnly: true, output: true, args: []string{"volume-sizes"}})
	if err != nil {
		return nil, err
	}
	pinned := map[[2]string]string{}
	for _, s := range svcs {
		l := s.Spec.Labels
		if l[labelNode] != "" && l[api.LabelRecovering] == "" {
			pinned[[2]string{l[api.LabelClass], l[api.LabelStudent]}] = l[labelNode]
		}
	}
	vs, at, err := volumesOn(out, pinned)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.volumeAt = at
	r.mu.Unlock()
	return vs, nil
}

// volumesOn reads the measuring job's lines (api.NodeVolume) into volumes
// with their sizes, and the node of each, leaving out a student's volumes
// on another node than the one their sandbox is pinned to (pinned, by
// class and student).
func volumesOn(out string, pinned map[[2]string]string) ([]*volume.Volume, map[string]string, error) {
	var vs []*volume.Volume
	at := map[string]string{}
	for line := range strings.Lines(out) {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var nv api.NodeVolume
		if err := json.Unmarshal([]byte(line), &nv); err != nil {
			return nil, nil, fmt.Errorf("a node's volume sizes: %q: %w", strings.TrimSpace(line), err)
		}
		if on, ok := pinned[[2]string{nv.Labels[api.LabelClass], nv.Labels[api.LabelStudent]}]; ok && on != nv.Node {
			continue
		}
		vs = append(vs, &volume.Volume{Name: nv.Name, Labels: nv.Labels, UsageData: &volume.UsageData{Size: nv.Size, RefCount: -1}})
		at[nv.Name] = nv.Node
	}
	return vs, at, nil
}

// RemoveVolume removes a work volume through a job on the node the
// sandbox last ran on, which removes it only where it carries Homeroom's
// labels. Where that node is not known (the controller restarted between
// removing the sandbox and its volume), the job runs on every node; a node
// that is down holds it, and the removal is retried by the next pass.
func (r *Runtime) RemoveVolume(ctx context.Context, name string) error {
	r.mu.Lock()
	node := ""
	if i := strings.LastIndexByte(name, '-'); i > 0 {
		node = r.volumeNode[name[:i]]
	}
	r.mu.Unlock()
	if node != "" {
		if err := r.nodeUp(ctx, node); err != nil {
			return fmt.Errorf("remove volume %s: %w", name, err)
		}
	}
	return r.removeVolumeJob(ctx, node, name)
}

// nodeUp fails, naming the node, unless the node is ready: work on a node
// that is down waits there for it, and the pass that needs it says so.
func (r *Runtime) nodeUp(ctx context.Context, id string) error {
	if id == "" {
		return nil
	}
	cctx, cancel := r.ctx(ctx)
	defer cancel()
	n, _, err := r.api.NodeInspectWithRaw(cctx, id)
	r.Track("node_inspect", err)
	if err != nil {
		return fmt.Errorf("node %s: %w", id, err)
	}
	if n.Status.State != swarm.NodeStateReady {
		return fmt.Errorf("%w: %s (%s) is %s%s; the work there waits for it", ErrNodeDown, n.Description.Hostname, id, n.Status.State, suffix(n.Status.Message))
	}
	return nil
}

// ErrNodeDown: a student's sandbox or work is on a node the swarm cannot
// reach.
var ErrNodeDown = errors.New("node down")

func suffix(msg string) string {
	if msg == "" {
		return ""
	}
	return " (" + msg + ")"
}

// Archive streams a tar of path in the sandbox's work, as the single
// host's archive API gives it: a job on the node that ran the sandbox
// uploads the tar to a staging object, which is read from the object store
// and removed once read.
func (r *Runtime) Archive(ctx context.Context, name, path string) (io.ReadCloser, error) {
	s, err := r.service(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("archive %s:%s: %w", name, path, err)
	}
	class, student := s.Spec.Labels[api.LabelClass], s.Spec.Labels[api.LabelStudent]
	if student == "" {
		student = s.Spec.Labels[api.LabelRecovering] // a recovery service's
	}
	node, err := r.lastNode(ctx, s)
	if err != nil {
		return nil, err
	}
	if node == "" {
		return nil, fmt.Errorf("archive %s:%s: the sandbox never ran on a node", name, path)
	}
	if err := r.nodeUp(ctx, node); err != nil {
		return nil, fmt.Errorf("archive %s:%s: %w", name, path, err)
	}
	key := stagingKey(class, student, ".tar", time.Now())
	done := r.use(key)
	url, err := r.staging.PresignPut(ctx, key, r.opts.JobTimeout, r.opts.StoreEndpoint)
	if err != nil {
		done()
		return nil, err
	}
	args := []string{"collect", "-class", class, "-student", student, "-path", path, "-image", r.opts.JobImage, "-put", url}
	if s.Spec.Labels[api.LabelRecovering] != "" {
		// What a lost sandbox left on its node: none there is none left.
		args = append(args, "-missing-ok")
	}
	if s.Spec.Labels[labelStarted] == "" {
		// Never started: its volume may not exist yet, and is what the
		// sandbox's first start makes of its image's directory.
		args = append(args, "-fresh", "-template-image", s.Spec.TaskTemplate.ContainerSpec.Image, "-template", s.Spec.Labels[api.LabelTemplate])
	}
	if _, err := r.runJob(ctx, job{kind: "collect", class: class, student: student, node: node, args: args}); err != nil {
		_ = r.staging.Remove(context.WithoutCancel(ctx), key)
		done()
		return nil, fmt.Errorf("archive %s:%s: %w", name, path, err)
	}
	rc, _, err := r.staging.Open(ctx, key)
	if err != nil {
		done()
		return nil, fmt.Errorf("archive %s:%s: read the staged tar: %w", name, path, err)
	}
	return &staged{ReadCloser: rc, remove: func() error {
		defer done()
		return r.staging.Remove(context.WithoutCancel(ctx), key)
	}}, nil
}

// StagingMaxAge is how old a staging object must be before SweepStaging
// removes it: far longer than any job that writes one, and any collection
// or restore that reads it, takes.
const StagingMaxAge = 24 * time.Hour

// stagingKey names a staging object of class and student made at now: the
// time in the name is how a sweep tells one in use from one left behind.
func stagingKey(class, student, suffix string, now time.Time) string {
	return stagingPrefix + class + "/" + student + "/" + now.UTC().Format(stagingTime) + "-" + randomID() + suffix
}

// stagingTime is to the millisecond: a controller started in the same
// second as the one before it stopped must tell that one's objects from
// its own. stagingTimeSeconds named them before.
const (
	stagingPrefix      = "staging/"
	stagingTime        = "20060102T150405.000Z"
	stagingTimeSeconds = "20060102T150405Z"
)

// use marks a job or a staging object as in use by this runtime until the
// returned func is called.
func (r *Runtime) use(name string) func() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inUse[name] = true
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		delete(r.inUse, name)
		r.pool.lastBusy = time.Now()
	}
}

// inUseNow reports whether this runtime uses the job or staging object.
func (r *Runtime) inUseNow(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inUse[name]
}

// SweepStaging removes the staging objects made before this runtime was
// and not in use by it, and those made before now less StagingMaxAge, and
// returns how many it removed. The collection and the restore remove
// theirs once read; these are what a controller that stopped in between,
// or a job that uploaded after the controller gave up on it, left behind:
// copies of students' work that nothing reads. Only the leading
// controller sweeps: another's may be in use.
func (r *Runtime) SweepStaging(ctx context.Context, now time.Time) (int, error) {
	keys, err := r.staging.ListKeys(ctx, stagingPrefix)
	if err != nil {
		return 0, fmt.Errorf("sweep staging: %w", err)
	}
	removed := 0
	for _, k := range keys {
		stamp, _, _ := strings.Cut(k[strings.LastIndexByte(k, '/')+1:], "-")
		made, err := time.Parse(stagingTime, stamp)
		before := made.Before(r.started)
		if err != nil {
			made, err = time.Parse(stagingTimeSeconds, stamp)
			before = made.Add(time.Second).Before(r.started)
		}
		if err == nil && (!before || r.inUseNow(k)) && now.Sub(made) < StagingMaxAge {
			continue
		}
		// Older, or named by a version of Homeroom before the time was
		// in the name, which no longer runs.
		if err := r.staging.Remove(ctx, k); err != nil {
			return removed, fmt.Errorf("sweep staging: %w", err)
		}
		removed++
	}
	return removed, nil
}

// staged is a staging object being read; closing it removes the object.
type staged struct {
	io.ReadCloser
	remove func() error
}

func (s *staged) Close() error { return errors.Join(s.ReadCloser.Close(), s.remove()) }

// CopyTo extracts a tar into path in the sandbox's work volume, on the
// node the sandbox is pinned to, before it starts: the tar goes to a
// staging object, and a job there downloads it through a presigned address
// and extracts it through that node's archive API, as the single host's
// CopyTo does.
func (r *Runtime) CopyTo(ctx context.Context, name, path string, rd io.Reader) error {
	s, err := r.service(ctx, name)
	if err != nil {
		return fmt.Errorf("copy to %s:%s: %w", name, path, err)
	}
	class, student := s.Spec.Labels[api.LabelClass], s.Spec.Labels[api.LabelStudent]
	node, err := r.lastNode(ctx, s)
	if err != nil {
		return err
	}
	if err := r.nodeUp(ctx, node); err != nil {
		return fmt.Errorf("copy to %s:%s: %w", name, path, err)
	}
	key := stagingKey(class, student, ".restore.tar", time.Now())
	defer r.use(key)()
	if _, err := r.staging.PutStream(ctx, key, rd, -1, "application/x-tar"); err != nil {
		return fmt.Errorf("copy to %s:%s: stage: %w", name, path, err)
	}
	defer r.staging.Remove(context.WithoutCancel(ctx), key)
	url, err := r.staging.PresignGet(ctx, key, r.opts.JobTimeout, r.opts.StoreEndpoint)
	if err != nil {
		return err
	}
	_, err = r.runJob(ctx, job{kind: "restore", class: class, student: student, node: node, args: []string{
		"restore", "-class", class, "-student", student, "-path", path,
		"-template-image", s.Spec.TaskTemplate.ContainerSpec.Image, "-template", s.Spec.Labels[api.LabelTemplate], "-get", url,
	}})
	if err != nil {
		return fmt.Errorf("copy to %s:%s: %w", name, path, err)
	}
	return nil
}

// Logs streams the sandbox's logs through the manager.
func (r *Runtime) Logs(ctx context.Context, name string) (io.ReadCloser, error) {
	rc, err := r.api.ServiceLogs(ctx, name, container.LogsOptions{ShowStdout: true, ShowStderr: true, Timestamps: true})
	r.Track("service_logs", err)
	if err != nil {
		return nil, fmt.Errorf("logs of %s: %w", name, err)
	}
	return rc, nil
}

// LogTail is the sandbox's last log lines, through the manager.
func (r *Runtime) LogTail(ctx context.Context, name string, lines, maxBytes int) (string, error) {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	rc, err := r.api.ServiceLogs(ctx, name, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: fmt.Sprint(lines)})
	r.Track("service_logs", err)
	if err != nil {
		return "", fmt.Errorf("logs of %s: %w", name, err)
	}
	defer rc.Close()
	return dockerx.ReadLogTail(rc, maxBytes)
}

// Events adds the swarm's service events, with the class of the service
// the event is about, to the manager's container and network events: a
// sandbox's task has no events of its own on the manager.
func (r *Runtime) Events(ctx context.Context, router string) (<-chan events.Message, <-chan error) {
	ctx, cancel := context.WithCancel(ctx)
	base, baseErrs := r.Client.Events(ctx, router)
	svc, svcErrs := r.api.Events(ctx, events.ListOptions{Filters: filters.NewArgs(
		filters.Arg("type", string(events.ServiceEventType)), filters.Arg("type", string(events.NodeEventType)))})
	msgs := make(chan events.Message)
	errs := make(chan error, 1)
	fail := func(err error) {
		select {
		case errs <- err:
		default:
		}
		cancel()
	}
	go func() {
		defer cancel()
		for {
			var m events.Message
			select {
			case <-ctx.Done():
				return
			case m = <-base:
			case m = <-svc:
				if m.Type == events.NodeEventType {
					// A node went down or came back: every class with a
					// sandbox is looked at again.
					r.mu.Lock()
					classes := map[string]bool{}
					for _, c := range r.classOf {
						classes[c] = true
					}
					r.mu.Unlock()
					send := func() bool {
						for c := range classes {
							select {
							case msgs <- events.Message{Type: events.ServiceEventType, Actor: events.Actor{Attributes: map[string]string{api.LabelClass: c}}}:
							case <-ctx.Done():
								return false
							}
						}
						return true
					}
					if !send() {
						return
					}
					// Once more when a node down since now counts as lost.
					go func() {
						select {
						case <-time.After(r.opts.NodeLostAfter + time.Second):
							send()
						case <-ctx.Done():
						}
					}()
					continue
				}
				r.mu.Lock()
				class := r.classOf[m.Actor.Attributes["name"]]
				r.mu.Unlock()
				if class == "" {
					continue
				}
				m.Actor.Attributes = map[string]string{api.LabelClass: class, "name": m.Actor.Attributes["name"]}
			case err := <-baseErrs:
				fail(err)
				return
			case err := <-svcErrs:
				fail(err)
				return
			}
			select {
			case msgs <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	return msgs, errs
}

// ManagedClasses adds the classes of Homeroom's services to those of its
// containers and networks on the manager.
func (r *Runtime) ManagedClasses(ctx context.Context) ([]string, error) {
	ids, err := r.Client.ManagedClasses(ctx)
	if err != nil {
		return nil, err
	}
	svcs, err := r.sandboxes(ctx, "")
	if err != nil {
		return nil, err
	}
	for _, s := range svcs {
		if c := s.Spec.Labels[api.LabelClass]; c != "" && !slices.Contains(ids, c) {
			ids = append(ids, c)
		}
	}
	return ids, nil
}

func randomID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
