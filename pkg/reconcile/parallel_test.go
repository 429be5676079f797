package reconcile_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/dockerx"
	"github.com/homeroom/homeroom/pkg/policy"
	"github.com/homeroom/homeroom/pkg/reconcile"
	"go.uber.org/zap/zaptest"
)

func roster(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("s%03d", i)
	}
	return out
}

// A pass over a class that is already what was asked costs the label
// filtered lists and the router's inspect, however many students it has: a
// resync of every class must stay cheap for the daemon.
func TestConvergedPassCostsConstantDockerCalls(t *testing.T) {
	perPass := map[int][]string{}
	for _, n := range []int{5, 50} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			e := newEnv(t)
			e.putClass(api.PhaseUp, roster(n)...)
			e.mustConverge()
			if got := e.class().Status.Phase; got != api.PhaseUp {
				t.Fatalf("phase %s after the first pass", got)
			}
			e.docker.mu.Lock()
			before := len(e.docker.calls)
			e.docker.mu.Unlock()
			res := e.mustConverge()
			if len(res.Plan) != 0 {
				t.Fatalf("plan for a converged class: %s", res.Plan)
			}
			e.docker.mu.Lock()
			calls := slices.Clone(e.docker.calls[before:])
			e.docker.mu.Unlock()
			if len(calls) > 3 {
				t.Errorf("a converged pass over %d students made %d Docker calls, want at most 3: %q", n, len(calls), calls)
			}
			perPass[n] = calls
		})
	}
	if !slices.Equal(perPass[5], perPass[50]) {
		t.Errorf("a converged pass depends on the class's size: 5 students %q, 50 students %q", perPass[5], perPass[50])
	}
}

// A class that is Down and has nothing left costs three calls a pass too:
// its network, containers and work volumes, listed by label. Traefik is
// only inspected for a class that is wanted Up or still has a network.
func TestConvergedDownPassCostsThreeDockerCalls(t *testing.T) {
	e := newEnv(t)
	e.bringUp(roster(5)...)
	e.mustConverge()
	if got := e.class().Status.Phase; got != api.PhaseDown {
		t.Fatalf("phase %s after Down", got)
	}
	e.docker.mu.Lock()
	before := len(e.docker.calls)
	e.docker.mu.Unlock()
	if res := e.mustConverge(); len(res.Plan) != 0 {
		t.Fatalf("plan for a class that is Down: %s", res.Plan)
	}
	e.docker.mu.Lock()
	calls := slices.Clone(e.docker.calls[before:])
	e.docker.mu.Unlock()
	if len(calls) > 3 || slices.ContainsFunc(calls, func(c string) bool { return strings.HasPrefix(c, "InspectContainer") }) {
		t.Errorf("a pass over a class that is Down made %d Docker calls, want at most 3 and no inspect: %q", len(calls), calls)
	}
}

// gatedDocker holds every container create until the test opens it, and
// records the most creates ever in flight at once.
type gatedDocker struct {
	*fakeDocker

	mu       sync.Mutex
	inFlight int
	max      int
	open     chan struct{}
}

func (g *gatedDocker) CreateContainer(ctx context.Context, spec dockerx.ContainerSpec) (string, error) {
	g.mu.Lock()
	g.inFlight++
	g.max = max(g.max, g.inFlight)
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		g.inFlight--
		g.mu.Unlock()
	}()
	select {
	case <-g.open:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	return g.fakeDocker.CreateContainer(ctx, spec)
}

func (g *gatedDocker) creating() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.inFlight
}

// The gate opens once the expected number of creates is in flight (and,
// where the global limit binds, some step waits for a slot): a limit that is
// never reached leaves it shut until the deadline, one that is exceeded
// shows in the most ever in flight.
func TestParallelLimits(t *testing.T) {
	for _, tc := range []struct {
		desc             string
		classes          []string
		parallel, global int
		want             int  // creates in flight at most, and at some point
		queued           bool // steps wait for a slot of the global limit
	}{
		{desc: "one class is bounded by its own limit", classes: []string{"cs101"}, parallel: 3, global: 10, want: 3},
		{desc: "two classes share the global limit", classes: []string{"cs101", "cs303"}, parallel: 6, global: 4, want: 4, queued: true},
		{desc: "two classes each use their own limit under the global one", classes: []string{"cs101", "cs303"}, parallel: 2, global: 10, want: 4},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			e := newEnv(t)
			g := &gatedDocker{fakeDocker: e.docker, open: make(chan struct{})}
			rec := reconcile.New(e.store, g, e.art, policy.Default(), reconcile.Options{
				Domain: domain, TraefikContainer: traefikName, Parallel: tc.parallel, GlobalParallel: tc.global,
			}, zaptest.NewLogger(t))
			for _, id := range tc.classes {
				e.store.put(api.Class{ID: id, Spec: api.ClassSpec{Subject: "cs", Template: "sandbox", Students: roster(8)},
					DesiredPhase: api.PhaseUp, Generation: 1, Version: 1, Status: api.ClassStatus{Phase: api.PhasePending}})
			}
			// The deadline only ends a gate that never opens; nothing here is timed.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			go func() {
				for g.creating() != tc.want || tc.queued && rec.StepsWaiting() == 0 {
					select {
					case <-ctx.Done():
						return
					case <-time.After(time.Millisecond):
					}
				}
				close(g.open)
			}()
			var wg sync.WaitGroup
			errs := make([]error, len(tc.classes))
			for i, id := range tc.classes {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, errs[i] = rec.Reconcile(ctx, id)
				}()
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("pass of %s: %v", tc.classes[i], err)
				}
			}
			if g.max != tc.want {
				t.Errorf("at most %d creates in flight, want %d", g.max, tc.want)
			}
			for _, id := range tc.classes {
				c, err := e.store.Get(context.Background(), id)
				if err != nil || c.Status.Phase != api.PhaseUp {
					t.Errorf("class %s: %+v, %v", id, c, err)
				}
			}
		})
	}
}

// Each container is created already attached to its class network, so
// that starting it needs no connect call.
func TestContainersAreCreatedOnTheClassNetwork(t *testing.T) {
	e := newEnv(t)
	e.putClass(api.PhaseUp, "alice", "bob")
	e.mustConverge()
	for _, w := range e.docker.writes() {
		if w == "Connect "+cname("alice") || w == "Connect "+cname("bob") {
			t.Errorf("student attached after create: %s", w)
		}
	}
	for _, spec := range e.docker.createdSpecs() {
		if _, ok := spec.Networking.EndpointsConfig[netName]; !ok || string(spec.HostConfig.NetworkMode) != netName {
			t.Errorf("%s created with networks %v, mode %s", spec.Name, spec.Networking.EndpointsConfig, spec.HostConfig.NetworkMode)
		}
	}
}

// Traefik joins a new class network while the sandboxes are made, not
// before: an Up does not wait on the attachment. Here the attachment
// waits until a sandbox was made; run one after the other, it never would.
func TestTraefikJoinsWhileTheSandboxesAreMade(t *testing.T) {
	e := newEnv(t)
	made := make(chan struct{})
	var once sync.Once
	var gaveUp atomic.Bool
	e.docker.beforeConnect = func() {
		select {
		case <-made:
		case <-time.After(10 * time.Second):
			gaveUp.Store(true) // no sandbox came: they waited for this
		}
	}
	e.docker.beforeRemove = e.checkSafeToRemove
	e.putClass(api.PhaseUp, "alice", "bob")
	go func() {
		for range 1000 {
			if len(e.docker.createdSpecs()) > 0 {
				once.Do(func() { close(made) })
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	if _, err := e.pass(); err != nil {
		t.Fatal(err)
	}
	if gaveUp.Load() {
		t.Fatal("the sandboxes were made only after Traefik joined the class network")
	}
	e.mustConverge()
	if tr, _ := e.docker.container(traefikName); len(tr.nets) == 0 {
		t.Error("Traefik is not on the class network")
	}
}
