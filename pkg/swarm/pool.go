package swarm

import (
	"context"
	"fmt"
	"slices"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
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

// labelPool marks a network made ahead of an Up.
const labelPool = "homeroom.network-pool"

// poolQuiet is how long after a network is taken the pool waits before it
// makes more: the manager's daemon would otherwise join new networks to
// Traefik while it is busy starting the Up that took them.
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
	size     int
	loaded   bool      // free was read from the swarm
	free     []string  // names, free to take
	lastTake time.Time // when a network was last taken
	lastLook time.Time // when the swarm was last looked at
	// taken holds, with when, the networks this process took lately:
	// never free again, though the swarm may not list the service that
	// names one yet (or ever, where its making failed).
	taken map[string]time.Time
}

// take gives a free network, if the pool has one.
func (r *Runtime) takeNetwork() (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := &r.pool
	p.lastTake = time.Now()
	if !p.loaded || len(p.free) == 0 {
		return "", false
	}
	name := p.free[len(p.free)-1]
	p.free = p.free[:len(p.free)-1]
	if p.taken == nil {
		p.taken = map[string]time.Time{}
	}
	p.taken[name] = p.lastTake
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
// networks, nor without Traefik. It reports how many networks it made.
func (r *Runtime) KeepNetworkPool(ctx context.Context) (int, error) {
	if r.opts.Router == "" {
		return 0, nil
	}
	r.mu.Lock()
	now := time.Now()
	p := &r.pool
	since := now.Sub(p.lastLook)
	due := now.Sub(p.lastTake) >= poolQuiet && (since >= poolLook || since >= poolRetry && (!p.loaded || len(p.free) < p.size))
	if p.size == 0 {
		// No pool: one look, which removes what an earlier pool left.
		due = !p.loaded && since >= poolRetry
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
		full := !r.pool.loaded || len(r.pool.free) >= r.pool.size || time.Since(r.pool.lastTake) < poolQuiet
		r.mu.Unlock()
		if full || ctx.Err() != nil {
			return made, ctx.Err()
		}
		name, err := r.makePoolNetwork(ctx)
		if err != nil {
			return made, err
		}
		made++
		r.giveBack(name)
	}
}

// lookAtPool reads the pool networks, the services and Traefik's networks,
// and keeps as free what the pool rules free (see poolRound); it removes
// what they say was left behind.
func (r *Runtime) lookAtPool(ctx context.Context) error {
	nets, err := r.poolNetworks(ctx)
	if err != nil {
		return err
	}
	svcs, err := r.sandboxes(ctx, "") // jobs are on no network
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
	named := map[string]bool{}
	for _, s := range svcs {
		for _, n := range s.Spec.TaskTemplate.Networks {
			named[n.Target] = true
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
	r.pool.free, r.pool.loaded = free, true
	r.mu.Unlock()
	for _, n := range excess {
		// Traefik off first: then it is left behind by the rules
		// whatever happens next, and removed here or by a later round.
		if err := r.Client.Disconnect(ctx, n, r.opts.Router); err != nil {
			return err
		}
		spoiled = append(spoiled, n)
	}
	for _, n := range spoiled {
		// One still in use (a removed service's endpoint not yet
		// released) is removed by a later round.
		cctx, cancel := r.ctx(ctx)
		err := r.api.NetworkRemove(cctx, n)
		cancel()
		r.Track("network_remove", err)
	}
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

// makePoolNetwork makes one network for the pool and puts Traefik on it.
// One a crash leaves without Traefik is removed by a later round.
func (r *Runtime) makePoolNetwork(ctx context.Context) (string, error) {
	name := "homeroom-pool-" + randomID()
	id, err := r.Client.EnsureNetwork(ctx, name, network.CreateOptions{
		Driver: "overlay", Attachable: true, Scope: "swarm", Internal: true,
		Labels: map[string]string{api.LabelManagedBy: api.ManagedByValue, labelStudentNetwork: "true", labelPool: "true"},
	})
	if err != nil {
		return "", err
	}
	if err := r.Client.Connect(ctx, id, r.opts.Router); err != nil {
		return "", err
	}
	return name, nil
}
