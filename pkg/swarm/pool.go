package swarm

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	"github.com/homeroom/homeroom/pkg/api"
)

// A sandbox kept apart from its classmates has a network of its own, and
// Traefik, one container on the manager, must join it before the sandbox
// can be reached. The manager's daemon joins one network after another, so
// for a class of 100 that joining, not the networks or the services, is
// most of the Up. The pool makes such networks ahead of an Up, with Traefik
// already on them; a sandbox takes one as it is made, and the pool is made
// up again once the Up is over.
//
// A network in the pool carries Homeroom's labels and labelPool but no
// class: a network's labels cannot change, so the service that uses one
// is the record of whose it is. A pool network is free when no service
// names it and Traefik is on it. A sandbox's removal takes Traefik off its
// network before it removes the service, so a network once used never
// looks free again, whatever step a crash stops at: such a network, named
// by no service and without Traefik, is removed by the next round.
//
// A node sets an overlay network up (its namespace, its tunnel, its
// peers) only when a container there first joins it, and a sandbox that
// waits for that starts about twice as slowly. So each pool network is
// made for a node (labelPoolNode), the node with the fewest free ones, and
// kept set up there by a placeholder: a service of one task on that node
// that only waits (nodejob wait), hardened like a sandbox, with no socket
// and nothing to reach. A sandbox placed on a node takes a network warmed
// there when the pool has one. Once the sandbox runs, its network stays
// set up for it, and the next round removes the placeholder; a sandbox's
// removal removes it too, before the network.

// labelPool marks a network made ahead of an Up.
const labelPool = "homeroom.network-pool"

// labelPoolNode names, on a pool network, the node it is warmed on;
// labelWarm marks a placeholder service, valued with its network's name.
const (
	labelPoolNode = "homeroom.pool-node"
	labelWarm     = "homeroom.warms"
)

// warmPrefix begins a placeholder's name; the rest is its network's.
const warmPrefix = "homeroom-warm-"

// poolQuiet is how long after a network is taken, or a Down's job or
// staging object was in use, the pool waits before it makes more: the
// manager's daemon would otherwise join new networks to Traefik while it
// is busy starting the Up that took them, or running the Down's jobs.
const poolQuiet = 3 * time.Second

// poolRetry is how soon a round follows one that left the pool short (it
// failed, or an Up took networks): a failing round is not repeated at once.
const poolRetry = 5 * time.Second

// takenFor is how long a taken network is remembered as taken: far longer
// than making its service can take.
const takenFor = 10 * time.Minute

// poolLook is how often a full pool is looked at, for networks a crash or a
// restarted Traefik spoiled.
const poolLook = 30 * time.Second

// netPool is the runtime's in-memory list of free pool networks. It is
// known only to the controller that leads: one that stops leading drops
// it, and a leader reads it anew from the swarm.
type netPool struct {
	size   int
	loaded bool     // free was read from the swarm
	free   []string // names, free to take
	// lastBusy is when an Up last took a network, or a Down last
	// collected (a job or a staging object in use): the pool is made up
	// once both are quiet, not in their way.
	lastBusy time.Time
	lastLook time.Time // when the swarm was last looked at
	// taken holds, with when, the networks this process took lately:
	// never free again, though the swarm may not list the service that
	// names one yet (or ever, where its making failed).
	taken map[string]time.Time
	// nodeOf is the node each pool network was warmed on; ready, the
	// ready nodes, as the last round saw them.
	nodeOf map[string]string
	ready  []string
	// running are the networks whose placeholder ran at the last round;
	// warming, that a free one on a ready node had none running then (or
	// was made since).
	running map[string]bool
	warming bool
	// unfinished: the last round could not remove a network yet (its
	// endpoints not released), which the next one, soon, tries again.
	unfinished bool
}

// takeNetwork gives a free network, if the pool has one: one warmed on
// node where it can, else one warmed on no ready node, rather than one a
// sandbox placed on another node will want.
func (r *Runtime) takeNetwork(node string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := &r.pool
	p.lastBusy = time.Now()
	if !p.loaded || len(p.free) == 0 {
		return "", false
	}
	i := slices.IndexFunc(p.free, func(n string) bool { return p.nodeOf[n] == node })
	if i < 0 {
		i = slices.IndexFunc(p.free, func(n string) bool { return !slices.Contains(p.ready, p.nodeOf[n]) })
	}
	if i < 0 {
		i = len(p.free) - 1
	}
	name := p.free[i]
	p.free = slices.Delete(p.free, i, i+1)
	if p.taken == nil {
		p.taken = map[string]time.Time{}
	}
	p.taken[name] = p.lastBusy
	return name, true
}

// giveBack returns a network no service was made with.
func (r *Runtime) giveBack(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.pool.taken, name)
	if r.pool.loaded && !slices.Contains(r.pool.free, name) {
		r.pool.free = append(r.pool.free, name)
	}
}

// PoolFree is how many networks the pool holds free.
func (r *Runtime) PoolFree() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pool.free)
}

// busy reports whether an Up or a Down is under way (see lastBusy); the
// caller holds r.mu.
func (r *Runtime) busy(now time.Time) bool {
	return len(r.inUse) > 0 || now.Sub(r.pool.lastBusy) < poolQuiet
}

// PoolWarm is how many free networks had their placeholder running at
// the last round.
func (r *Runtime) PoolWarm() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, name := range r.pool.free {
		if r.pool.running[name] {
			n++
		}
	}
	return n
}

// DropNetworkPool forgets the free networks: a controller that no longer
// leads must not hand out what the leader may hand out too.
func (r *Runtime) DropNetworkPool() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pool.loaded, r.pool.free = false, nil
}

// KeepNetworkPool does one round of the pool's upkeep when it is due:
// it reads the free networks from the swarm (once, then every poolLook),
// removes those a crash or a restarted Traefik spoiled, and makes new ones
// until the pool is full again. It does nothing while an Up is taking
// networks or a Down is collecting, nor without Traefik. It reports how many networks it made.
func (r *Runtime) KeepNetworkPool(ctx context.Context) (int, error) {
	if r.opts.Router == "" {
		return 0, nil
	}
	r.mu.Lock()
	now := time.Now()
	p := &r.pool
	since := now.Sub(p.lastLook)
	due := !r.busy(now) && (since >= poolLook || since >= poolRetry && (!p.loaded || len(p.free) < p.size || p.warming || p.unfinished))
	if p.size == 0 {
		// No pool: one look, which removes what an earlier pool left.
		due = (!p.loaded || p.unfinished) && since >= poolRetry
	}
	if due {
		p.lastLook = now
	}
	r.mu.Unlock()
	if !due {
		return 0, nil
	}
	if err := r.lookAtPool(ctx); err != nil {
		return 0, err
	}
	made := 0
	for {
		r.mu.Lock()
		full := !r.pool.loaded || len(r.pool.free) >= r.pool.size || r.busy(time.Now())
		r.mu.Unlock()
		if full || ctx.Err() != nil {
			return made, ctx.Err()
		}
		name, err := r.makePoolNetwork(ctx, r.poolNode())
		if name != "" {
			made++
			r.giveBack(name)
		}
		if err != nil {
			return made, err
		}
	}
}

// lookAtPool reads the pool networks, the services, Traefik's networks
// and the placeholders, and keeps as free what the pool rules free (see
// poolRound); it removes what they say was left behind, and the
// placeholders no network needs any more (see warmRound), and makes those
// a free network lacks.
func (r *Runtime) lookAtPool(ctx context.Context) error {
	nets, err := r.poolNetworks(ctx)
	if err != nil {
		return err
	}
	svcs, err := r.listSandboxes(ctx, "", true) // jobs are on no network
	if err != nil {
		return err
	}
	router, err := r.Client.InspectContainer(ctx, r.opts.Router) // the container, never a service of that name
	if cerrdefs.IsNotFound(err) {
		r.DropNetworkPool() // no Traefik to join: no pool
		return nil
	}
	if err != nil {
		return fmt.Errorf("inspect %s: %w", r.opts.Router, err)
	}
	warms, err := r.warmServices(ctx)
	if err != nil {
		return err
	}
	nodes, err := r.nodes(ctx)
	if err != nil {
		return err
	}
	named, settled := map[string]bool{}, map[string]bool{}
	for _, s := range svcs {
		// A sandbox that ran (or was stopped since) has its network set
		// up on its node: its placeholder is done.
		ran := s.Spec.Labels[labelStarted] != "" && (replicas(s) == 0 || s.ServiceStatus != nil && s.ServiceStatus.RunningTasks > 0)
		for _, n := range s.Spec.TaskTemplate.Networks {
			named[n.Target] = true
			settled[n.Target] = settled[n.Target] || ran
		}
	}
	joined := map[string]bool{}
	if router.NetworkSettings != nil {
		for name, ep := range router.NetworkSettings.Networks {
			joined[name] = true
			if ep != nil {
				joined[ep.NetworkID] = true
			}
		}
	}
	var ready []string
	for _, n := range nodes {
		if n.ready() {
			ready = append(ready, n.ID)
		}
	}
	slices.Sort(ready)
	nodeOf := map[string]string{}
	for _, n := range nets {
		if node := n.Labels[labelPoolNode]; node != "" {
			nodeOf[n.Name] = node
		}
	}
	r.mu.Lock()
	for name, at := range r.pool.taken {
		if time.Since(at) > takenFor {
			delete(r.pool.taken, name)
		}
	}
	free, spoiled := poolRound(nets, named, joined, r.pool.loaded, r.pool.free, r.pool.taken)
	var excess []string // a pool made smaller since
	if len(free) > r.pool.size {
		free, excess = free[:r.pool.size], free[r.pool.size:]
	}
	w := warmRound(nets, free, r.pool.taken, named, settled, nodeOf, ready, warms)
	r.pool.free, r.pool.loaded, r.pool.nodeOf, r.pool.ready = free, true, nodeOf, ready
	r.pool.running, r.pool.warming = w.running, w.warming
	r.mu.Unlock()
	for _, n := range excess {
		// Traefik off first: then it is left behind by the rules
		// whatever happens next, and removed here or by a later round.
		if err := r.Client.Disconnect(ctx, n, r.opts.Router); err != nil {
			return err
		}
		spoiled = append(spoiled, n)
	}
	for _, name := range w.remove {
		if err := r.removeService(ctx, name); err != nil {
			return err
		}
	}
	for _, n := range w.make {
		if err := r.makeWarm(ctx, n, nodeOf[n]); err != nil {
			return err
		}
	}
	unfinished := false
	for _, n := range spoiled {
		// One still in use (a removed service's endpoint, or its
		// placeholder's, not yet released) is removed by a later round.
		cctx, cancel := r.ctx(ctx)
		err := r.api.NetworkRemove(cctx, n)
		cancel()
		r.Track("network_remove", err)
		unfinished = unfinished || err != nil && !cerrdefs.IsNotFound(err)
	}
	r.mu.Lock()
	r.pool.unfinished = unfinished
	r.mu.Unlock()
	return nil
}

// poolNetworks lists the pool's networks, free and taken.
func (r *Runtime) poolNetworks(ctx context.Context) ([]network.Summary, error) {
	cctx, cancel := r.ctx(ctx)
	defer cancel()
	nets, err := r.api.NetworkList(cctx, network.ListOptions{Filters: filters.NewArgs(
		filters.Arg("label", api.LabelManagedBy+"="+api.ManagedByValue), filters.Arg("label", labelPool+"=true"))})
	r.Track("network_list", err)
	if err != nil {
		return nil, fmt.Errorf("list pool networks: %w", err)
	}
	return nets, nil
}

// poolRound decides, from the pool's networks as the swarm lists them,
// the networks services name (by id or name) and those Traefik is on
// (likewise), which are free and which were left behind. A network no
// service names and Traefik is on is free: read anew when the pool was
// not loaded, and otherwise only kept free if it was (one taken and not
// yet named by its service is neither free nor left behind), and never if
// it was taken lately. A network no service names and Traefik is not on
// was used, or never finished: it is left behind, to be removed.
func poolRound(nets []network.Summary, named, joined map[string]bool, loaded bool, free []string, taken map[string]time.Time) (keep, spoiled []string) {
	wasFree := map[string]bool{}
	for _, n := range free {
		wasFree[n] = true
	}
	for _, n := range nets {
		if named[n.ID] || named[n.Name] {
			continue
		}
		if !joined[n.ID] && !joined[n.Name] {
			spoiled = append(spoiled, n.Name)
			continue
		}
		if _, ok := taken[n.Name]; !ok && (!loaded || wasFree[n.Name]) {
			keep = append(keep, n.Name)
		}
	}
	slices.Sort(keep)
	slices.Sort(spoiled)
	return keep, spoiled
}

// poolNode is the ready node with the fewest free networks warmed on it,
// where the next pool network is made for; "" where none is ready, or
// there is no image to run placeholders with.
func (r *Runtime) poolNode() string {
	if r.opts.JobImage == "" {
		return ""
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	count := map[string]int{}
	for _, n := range r.pool.free {
		count[r.pool.nodeOf[n]]++
	}
	best := ""
	for _, n := range r.pool.ready { // sorted
		if best == "" || count[n] < count[best] {
			best = n
		}
	}
	return best
}

// makePoolNetwork makes one network for the pool, puts Traefik on it and
// warms it on node. It returns the network's name once Traefik is on it,
// also where its placeholder then failed: the network serves cold, and a
// later round makes the placeholder again. One a crash leaves without
// Traefik is removed by a later round.
func (r *Runtime) makePoolNetwork(ctx context.Context, node string) (string, error) {
	name := "homeroom-pool-" + randomID()
	labels := map[string]string{api.LabelManagedBy: api.ManagedByValue, labelStudentNetwork: "true", labelPool: "true"}
	if node != "" {
		labels[labelPoolNode] = node
	}
	id, err := r.Client.EnsureNetwork(ctx, name, network.CreateOptions{
		Driver: "overlay", Attachable: true, Scope: "swarm", Internal: true, Labels: labels,
	})
	if err != nil {
		return "", err
	}
	if err := r.Client.Connect(ctx, id, r.opts.Router); err != nil {
		return "", err
	}
	if node == "" {
		return name, nil
	}
	r.mu.Lock()
	if r.pool.nodeOf == nil {
		r.pool.nodeOf = map[string]string{}
	}
	r.pool.nodeOf[name] = node
	r.pool.warming = true // until a round sees its placeholder run
	r.mu.Unlock()
	return name, r.makeWarm(ctx, name, node)
}

// warmService is a placeholder as a round sees it.
type warmService struct {
	Name, Network string
	Running       bool
}

// warmServices lists the placeholders, with whether each one's task runs.
func (r *Runtime) warmServices(ctx context.Context) ([]warmService, error) {
	cctx, cancel := r.ctx(ctx)
	defer cancel()
	svcs, err := r.api.ServiceList(cctx, swarm.ServiceListOptions{Status: true, Filters: filters.NewArgs(
		filters.Arg("label", api.LabelManagedBy+"="+api.ManagedByValue), filters.Arg("label", labelWarm))})
	r.Track("service_list", err)
	if err != nil {
		return nil, fmt.Errorf("list placeholders: %w", err)
	}
	out := make([]warmService, 0, len(svcs))
	for _, s := range svcs {
		out = append(out, warmService{Name: s.Spec.Name, Network: s.Spec.Labels[labelWarm],
			Running: s.ServiceStatus != nil && s.ServiceStatus.RunningTasks > 0})
	}
	return out, nil
}

// warmPlan is what a round does about placeholders.
type warmPlan struct {
	remove  []string        // placeholders no network needs
	make    []string        // free networks, warmed on a ready node, without one
	running map[string]bool // free networks whose placeholder runs
	warming bool            // one on a ready node does not run yet
}

// warmRound decides, from the pool's networks, the free ones, those taken
// lately, those sandboxes name (by id or name) and those whose sandbox ran
// (settled), each network's node, the ready nodes and the placeholders,
// which placeholders go and which are made. A placeholder is kept while
// its network is free, or taken or named by a sandbox that has not run
// yet: removing it then would have the node tear the network down just
// before the sandbox needs it. Every other one (its sandbox ran, or its
// network is left behind, trimmed or gone) is removed.
func warmRound(nets []network.Summary, free []string, taken map[string]time.Time, named, settled map[string]bool, nodeOf map[string]string, ready []string, warms []warmService) warmPlan {
	id := map[string]string{}
	for _, n := range nets {
		id[n.Name] = n.ID
	}
	w := warmPlan{running: map[string]bool{}}
	has := map[string]bool{}
	for _, s := range warms {
		n := s.Network
		_, listed := id[n]
		isFree := slices.Contains(free, n)
		_, isTaken := taken[n]
		inUse := named[n] || named[id[n]]
		ran := settled[n] || settled[id[n]]
		if listed && (isFree || (isTaken || inUse) && !ran) {
			has[n] = true
			if isFree && s.Running {
				w.running[n] = true
			}
			continue
		}
		w.remove = append(w.remove, s.Name)
	}
	for _, n := range free {
		node := nodeOf[n]
		if node == "" || !slices.Contains(ready, node) {
			continue // cold by design, or its node is away
		}
		if !has[n] {
			w.make = append(w.make, n)
		}
		w.warming = w.warming || !w.running[n]
	}
	slices.Sort(w.remove)
	return w
}

// makeWarm makes the placeholder that keeps network set up on node; one
// made already is left as it is.
func (r *Runtime) makeWarm(ctx context.Context, net, node string) error {
	if r.opts.JobImage == "" {
		return nil
	}
	labels := map[string]string{api.LabelManagedBy: api.ManagedByValue, labelWarm: net}
	one := uint64(1)
	spec := swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: warmName(net), Labels: labels},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{
				Image: r.opts.JobImage, Args: []string{"wait"}, Labels: labels,
				User: "65534:65534", ReadOnly: true, CapabilityDrop: []string{"ALL"},
				Privileges: &swarm.Privileges{NoNewPrivileges: true},
			},
			Resources:     &swarm.ResourceRequirements{Limits: &swarm.Limit{NanoCPUs: 100_000_000, MemoryBytes: 16 << 20, Pids: 16}},
			Networks:      []swarm.NetworkAttachmentConfig{{Target: net}},
			Placement:     &swarm.Placement{Constraints: []string{"node.id==" + node}},
			RestartPolicy: &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionAny},
		},
		Mode:         swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &one}},
		EndpointSpec: &swarm.EndpointSpec{Mode: swarm.ResolutionModeDNSRR},
	}
	cctx, cancel := r.ctx(ctx)
	defer cancel()
	_, err := r.api.ServiceCreate(cctx, spec, swarm.ServiceCreateOptions{QueryRegistry: false})
	r.Track("service_create", err)
	if err != nil && !cerrdefs.IsConflict(err) && !cerrdefs.IsAlreadyExists(err) {
		return fmt.Errorf("warm %s on %s: %w", net, node, err)
	}
	return nil
}

// warmName is the placeholder of a pool network.
func warmName(net string) string { return warmPrefix + strings.TrimPrefix(net, "homeroom-pool-") }
