package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"
)

type swOptions struct {
	students int
	pairs    int
	pool     int // networks made ahead of an Up; -1: as many as students
}

// swarmTraefik is the Traefik the bench runs on the swarm's manager.
const swarmTraefik = "homeroom-bench-traefik"

// swarmHostAddr is this machine's address on the bench swarm's network
// (scripts/swarm-nodes.sh), where the nodes' jobs reach the object store.
const swarmHostAddr = "10.231.7.1"

type swRow struct {
	pair                       int
	hostUp, swarmUp, swarmDown time.Duration
	hostDown                   time.Duration
	hostUpCPU, swarmUpCPU      float64
}

type swResult struct {
	o    swOptions
	rows []swRow
	took time.Duration
}

// stepTimes says, by step kind, how many steps ran between two scrapes
// and their mean seconds once they had their slot.
func stepTimes(before, after scrape) string {
	var out []string
	for step, a := range after.steps {
		b := before.steps[step]
		if n := a[1] - b[1]; n > 0 {
			out = append(out, fmt.Sprintf("%s %.0f× %.2f s", step, n, (a[0]-b[0])/n))
		}
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// waitForPool waits until the swarm's controller holds n networks made
// ahead of an Up, each set up on its node, and says how long that took.
func waitForPool(ctx context.Context, sys *system, n int) (time.Duration, error) {
	begin := time.Now()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	for {
		s, err := sys.controller.scrape(ctx)
		if err == nil && s.poolFree >= float64(n) && s.poolWarm >= float64(n) {
			return time.Since(begin), nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("the network pool holds %.0f of %d, %.0f set up on their node, after %s", s.poolFree, n, s.poolWarm, time.Since(begin).Round(time.Second))
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// swarmOverhead brings a class Up and Down through Homeroom on this one
// Docker host and on a swarm of three daemons made on the same machine, in
// alternating pairs. On one machine the swarm cannot be faster; the ratio
// is what the Swarm runtime costs (the manager's scheduling, the overlay
// networks, the nodes' own daemons on the same two cores), and its Down
// collects every student's work through a job on the node it is on.
func swarmOverhead(ctx context.Context, o options) (*swResult, error) {
	begin := time.Now()
	if os.Geteuid() != 0 {
		return nil, errors.New("the swarm part makes Docker daemons in network namespaces: run as root, or skip it with -only")
	}
	script := "scripts/swarm-nodes.sh"
	swarmCmd := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, script, args...)
		cmd.Env = append(os.Environ(), "HOMEROOM_SWARM_IMAGES=homeroom/sandbox:dev homeroom/nodejob:dev "+traefikImage)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("%s %v: %w\n%s", script, args, err, stderr.String())
		}
		return strings.TrimSpace(string(out)), nil
	}
	swarmCmd("down")
	manager, err := swarmCmd("up", "3")
	if err != nil {
		return nil, err
	}
	defer swarmCmd("down")
	// As a swarm is deployed (README, On a Docker Swarm): Traefik as a
	// plain container on the manager, which joins each sandbox's own
	// network. On the host it runs on the host's network and joins none.
	run := exec.CommandContext(ctx, "docker", "-H", manager, "run", "-d", "--name", swarmTraefik,
		"-v", "/run/homeroom-node/docker.sock:/var/run/docker.sock:ro", traefikImage,
		"--providers.swarm=true", "--providers.swarm.endpoint=unix:///var/run/docker.sock",
		"--providers.swarm.exposedbydefault=false", "--providers.swarm.refreshSeconds=1s",
		"--entrypoints.web.address=:80", "--log.level=WARN")
	if out, err := run.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("start Traefik on the manager: %w\n%s", err, out)
	}
	pool := o.sw.pool
	if pool < 0 {
		pool = o.sw.students
	}

	host, err := startSystem(ctx, o, sysConfig{controller: true, policy: benchPolicy})
	if err != nil {
		return nil, err
	}
	defer host.stop()
	sw, err := startSystem(ctx, o, sysConfig{controller: true, policy: benchPolicy, s3Host: swarmHostAddr, traefik: swarmTraefik, env: []string{
		"DOCKER_HOST=" + manager, "HOMEROOM_RUNTIME=swarm", "HOMEROOM_SWARM_NODE_SOCKET=/run/homeroom-node/docker.sock",
		fmt.Sprintf("HOMEROOM_SWARM_NETWORK_POOL=%d", pool),
	}})
	if err != nil {
		return nil, err
	}
	defer sw.stop()

	r := &swResult{o: o.sw}
	n := o.sw.students
	for pair := 1; pair <= o.sw.pairs; pair++ {
		row := swRow{pair: pair}
		for _, side := range []struct {
			sys      *system
			up, down *time.Duration
			cpu      *float64
			name     string
		}{
			{host, &row.hostUp, &row.hostDown, &row.hostUpCPU, "host"},
			{sw, &row.swarmUp, &row.swarmDown, &row.swarmUpCPU, "swarm"},
		} {
			if side.sys == sw && pool > 0 {
				// As a school would run it: the pool holds a class's
				// networks before the class comes Up. Making them again
				// after a Down is not timed (see docs/benchmarks.md).
				took, err := waitForPool(ctx, sw, pool)
				if err != nil {
					return nil, fmt.Errorf("pair %d: %w", pair, err)
				}
				fmt.Fprintf(os.Stderr, "swarm: pair %d: the pool of %d networks was full %.1f s after the last Down\n", pair, pool, took.Seconds())
			}
			settle(ctx)
			id := fmt.Sprintf("%s%s-%d-%d", classPrefix, side.name, n, pair)
			if err := side.sys.api.putClass(ctx, id, roster(n)); err != nil {
				return nil, err
			}
			cpu0 := side.sys.controller.proc().cpu
			before, _ := side.sys.controller.scrape(ctx)
			if *side.up, err = side.sys.api.upAndWait(ctx, id, n); err != nil {
				return nil, fmt.Errorf("%s Up, pair %d: %w", side.name, pair, err)
			}
			if after, err := side.sys.controller.scrape(ctx); err == nil {
				fmt.Fprintf(os.Stderr, "%s: pair %d: the Up's steps: %s\n", side.name, pair, stepTimes(before, after))
			}
			*side.cpu = side.sys.controller.proc().cpu - cpu0
			if *side.down, err = side.sys.api.downAndWait(ctx, id, n, 0); err != nil {
				return nil, fmt.Errorf("%s Down, pair %d: %w", side.name, pair, err)
			}
			if err := side.sys.api.deleteClass(ctx, id); err != nil {
				return nil, err
			}
		}
		r.rows = append(r.rows, row)
		fmt.Fprintf(os.Stderr, "swarm: pair %d of %d: Up %.1f s on the swarm, %.1f s on the host (%.2f×); Down %.1f s, %.1f s\n", pair, o.sw.pairs,
			row.swarmUp.Seconds(), row.hostUp.Seconds(), ratio(row.swarmUp, row.hostUp), row.swarmDown.Seconds(), row.hostDown.Seconds())
	}
	r.took = time.Since(begin)
	return r, nil
}

func (r *swResult) report(w io.Writer, machine string) {
	fmt.Fprintf(w, "\nA class of %d Up and Down through Homeroom on a swarm of three daemons on this machine, and on the one host (%s)\n\n", r.o.students, machine)
	fmt.Fprintf(w, "    pair  host Up s  swarm Up s  swarm/host  host Down s  swarm Down s  swarm/host\n")
	var up, down []float64
	for _, row := range r.rows {
		u, d := ratio(row.swarmUp, row.hostUp), ratio(row.swarmDown, row.hostDown)
		up, down = append(up, u), append(down, d)
		fmt.Fprintf(w, "  %6d  %9.2f  %10.2f  %9.2f×  %11.2f  %12.2f  %9.2f×\n", row.pair, row.hostUp.Seconds(), row.swarmUp.Seconds(), u,
			row.hostDown.Seconds(), row.swarmDown.Seconds(), d)
	}
	us, ds := spreadOf(up), spreadOf(down)
	fmt.Fprintf(w, "\nswarm/host: Up median %s, Down median %s, over %d pairs\n", us, ds, len(r.rows))
	fmt.Fprintf(w, "The swarm part took %s.\n", r.took.Round(time.Second))
	fmt.Fprintln(w, `
Each side brings the class Up through the API and waits until every student runs, then Down until
the run is complete with every student collected. The host side is the single-host runtime on this
machine's daemon; the swarm side is HOMEROOM_RUNTIME=swarm on a manager of three daemons made by
scripts/swarm-nodes.sh on the same machine, so the swarm's nodes share the same two cores and
cannot be faster: the ratio is the runtime's overhead. Its Down collects every student on the node
that holds the work, through a job there (see docs/scale-out.md). Each pair measures the host,
then the swarm.`)
	pool := fmt.Sprintf("a pool of %d networks, full before each Up (-sw-pool)", r.o.pool)
	if r.o.pool < 0 {
		pool = "a pool with a network for each student, full before each Up (-sw-pool)"
	} else if r.o.pool == 0 {
		pool = "no network pool (-sw-pool 0)"
	}
	fmt.Fprintf(w, `As a swarm is deployed, Traefik runs on the manager as a plain container and joins each sandbox's
own network; the controller keeps %s. On the host
Traefik is on the host's network and joins none; the bench runs none there.
`, pool)
	fmt.Fprintln(w, "\nTargets:")
	verdict := "PASS"
	if us.median > 1.5 {
		verdict = "MISS"
	}
	fmt.Fprintf(w, "  %s  Up of %d on the swarm within 1.5× the single host: %s%s\n", verdict, r.o.students, us, us.note(1.5))
}
