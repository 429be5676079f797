// Command bench measures how fast Homeroom brings classes Up and Down on the
// real Docker daemon, next to what the daemon itself allows, and checks the
// targets of docs/benchmarks.md. `make bench` runs it; it needs the lab
// image, the apiserver and controller binaries (make build), versitygw and
// the Traefik image (make traefik).
//
// For each class size it measures, in one run:
//   - Homeroom: the real apiserver and controller, from the Up request at the
//     API to status Up with every student running, and from the Down request
//     to status Down with every student's work collected (each sandbox holds
//     a file written through its PUT /files endpoint);
//   - with -sequential, the seed's loop: the class network, then each
//     container created and started in turn;
//   - the daemon's limit: the same creates and starts sent at once, and for
//     Down every workspace copied out and its container removed, all at once;
//   - for the class of 100, Homeroom's Down with the apiserver's own object
//     store (as make run has it) as well, against the same pair's baseline.
//
// That is the classes part, which runs by default. -only names others, or
// all: what the students' sign-in check costs a request, through a real
// Traefik to a real sandbox, with and without Traefik's forwardAuth to the
// apiserver (forwardauth.go); how soon a class of 30 notebooks answers
// through Traefik, signed in, against the daemon's own limit for the same
// containers (notebooks.go); a run graded (grading.go); a class ready at its
// bell (timetable.go); a class on a swarm of three daemons (swarm.go).
//
// Raw containers are made from Homeroom's own spec builder, without the
// homeroom.managed-by label (so the controller never sees them) and with
// homeroom.bench; classes Homeroom runs here are named bench-*. Leftovers of
// either kind from a killed run are removed at start.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/homeroom/homeroom/internal/versitygw"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/dockerx"
	"github.com/homeroom/homeroom/pkg/policy"
	"github.com/homeroom/homeroom/pkg/reconcile"
	"golang.org/x/sync/errgroup"
)

const (
	// benchLabel marks the raw containers and networks this harness makes.
	benchLabel = "homeroom.bench"
	// classPrefix names the classes Homeroom runs for the bench.
	classPrefix = "bench-"
	domain      = "bench.localhost"
	// fileName is the file each sandbox holds when it is taken Down.
	fileName = "bench.bin"
)

type options struct {
	bin            string
	sizes          []int
	scaleClasses   int
	scaleStudents  int
	idle           time.Duration
	fileBytes      int
	versitygw      string
	controllerArgs []string
	keep           bool
	// pairs is how many times each size is measured, Homeroom and its
	// baselines in turn, so that the machine's noise falls on both: one
	// count for each of sizes.
	pairs []int
	// embeddedPairs measure the class of 100 again with the apiserver's
	// own object store.
	embeddedPairs int
	// sequential also times the seed's loop, each container in turn.
	sequential bool
	// parts are the parts to run (-only), in the order of allParts.
	parts map[string]bool
	// defaults is a run with no flag that changes what it measures: the
	// one whose time has a target.
	defaults bool
	fa       faOptions
	nb       nbOptions
	sw       swOptions
	gr       grOptions
	tt       ttOptions
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	var o options
	sizes := flag.String("sizes", "10,50,100", "class sizes to measure")
	pairs := flag.String("pairs", "", "measurements of each size, each a baseline and Homeroom in turn; targets are judged on the median ratio: one count for every size, or one for each of -sizes (default: 5 for a class of 10 or fewer, 3 for larger ones)")
	only := flag.String("only", defaultParts, "the parts to run, comma separated, or all: "+strings.Join(allParts, ", ")+" (classes: Up, Down, Docker calls a pass and 500 containers' memory and idle CPU)")
	flag.StringVar(&o.bin, "bin", "bin", "directory holding the apiserver and controller binaries")
	flag.IntVar(&o.scaleClasses, "scale-classes", 5, "classes Up at once for the memory and idle measurement (0: skip)")
	flag.IntVar(&o.scaleStudents, "scale-students", 100, "students in each of those classes")
	flag.DurationVar(&o.idle, "idle", 30*time.Second, "idle window over which the controller's CPU is measured (one resync falls in 30 s)")
	flag.IntVar(&o.fileBytes, "file-bytes", 1<<20, "size of the file each sandbox holds when taken Down")
	flag.StringVar(&o.versitygw, "versitygw", os.Getenv("HOMEROOM_VERSITYGW"), "versitygw binary (scripts/ensure-versitygw.sh prints it)")
	ctlArgs := flag.String("controller-args", "", "extra controller flags, space separated (e.g. \"-parallel=8\")")
	flag.BoolVar(&o.keep, "keep-logs", false, "keep the processes' logs and data directory")
	flag.IntVar(&o.embeddedPairs, "embedded-pairs", -1, "of the pairs of the class of 100, how many also measure a Homeroom Down with the apiserver's own object store against the same baseline (0: none, -1: every one)")
	flag.BoolVar(&o.sequential, "sequential", false, "also time the seed's Up loop (one container after another) in the first pair of each size; no target depends on it")
	flag.IntVar(&o.fa.rate, "fa-rate", 200, "forwardauth: requests a second, with and without the sign-in check")
	flag.DurationVar(&o.fa.duration, "fa-duration", 30*time.Second, "forwardauth: time each case is measured, split over the pairs")
	flag.IntVar(&o.fa.pairs, "fa-pairs", 10, "forwardauth: alternations of the two cases (with, then without); short ones spread the machine's noise over both")
	flag.IntVar(&o.nb.students, "nb-students", 30, "notebooks: students in the class of notebooks (the built-in policy allows up to 40)")
	flag.IntVar(&o.nb.pairs, "nb-pairs", 3, "notebooks: measurements, each the daemon's limit then Homeroom; the target is judged on the median ratio")
	flag.IntVar(&o.gr.students, "gr-students", 100, "grading: students in the run graded")
	flag.IntVar(&o.tt.students, "tt-students", 100, "timetable: students in the class with a session")
	flag.DurationVar(&o.tt.ahead, "tt-ahead", 2*time.Minute, "timetable: how far ahead the session starts")
	flag.IntVar(&o.sw.students, "sw-students", 100, "swarm: students in the class brought Up and Down on the swarm and on the host")
	flag.IntVar(&o.sw.pairs, "sw-pairs", 3, "swarm: measurements, each the host then the swarm")
	flag.IntVar(&o.sw.pool, "sw-pool", -1, "swarm: students' networks made ahead of each Up (HOMEROOM_SWARM_NETWORK_POOL), and waited for; -1: one for each student, 0: none")
	flag.IntVar(&o.gr.pairs, "gr-pairs", 3, "grading: measurements, each the graders run directly then a regrade by Homeroom")
	flag.DurationVar(&o.nb.poll, "nb-poll", 100*time.Millisecond, "notebooks: how often each student's notebook is asked while the bench waits, on both sides")
	flag.Parse()
	o.defaults = true
	flag.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "bin", "versitygw", "keep-logs":
		default:
			o.defaults = false
		}
	})
	var err error
	if o.parts, err = parseParts(*only); err != nil {
		return err
	}
	if o.sw.students < 1 || o.sw.pairs < 1 {
		return errors.New("-sw-students and -sw-pairs must be at least 1")
	}
	if o.tt.students < 1 || o.tt.ahead < 0 {
		return errors.New("-tt-students must be at least 1 and -tt-ahead not negative")
	}
	if o.gr.students < 1 || o.gr.pairs < 1 {
		return errors.New("-gr-students and -gr-pairs must be at least 1")
	}
	if o.nb.students < 1 || o.nb.pairs < 1 || o.nb.poll <= 0 {
		return errors.New("-nb-students and -nb-pairs must be at least 1, and -nb-poll above 0")
	}
	if o.fa.rate < 1 || o.fa.pairs < 1 || o.fa.duration/time.Duration(o.fa.pairs) < time.Second {
		return errors.New("-fa-rate and -fa-pairs must be at least 1, and -fa-duration at least a second a pair")
	}
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 || n > 500 {
			return fmt.Errorf("-sizes: %q is not a class size (1 to 500)", s)
		}
		o.sizes = append(o.sizes, n)
	}
	if o.pairs, err = parsePairs(*pairs, o.sizes); err != nil {
		return err
	}
	if i := slices.Index(o.sizes, 100); i >= 0 && o.embeddedPairs == -1 {
		o.embeddedPairs = o.pairs[i]
	} else if i >= 0 && (o.embeddedPairs < 0 || o.embeddedPairs > o.pairs[i]) {
		return fmt.Errorf("-embedded-pairs %d: between 0 and the pairs of the class of 100 (%d); each is measured within one of them", o.embeddedPairs, o.pairs[i])
	}
	o.controllerArgs = strings.Fields(*ctlArgs)
	if o.versitygw == "" {
		o.versitygw = "/var/cache/homeroom/versitygw-v1.8.0/versitygw"
	}
	begin := time.Now()

	d, err := dockerx.New(ctx)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Ping(ctx); err != nil {
		return fmt.Errorf("%w (run scripts/ensure-docker.sh)", err)
	}
	if _, err := d.API().ImageInspect(ctx, "homeroom/sandbox:dev"); err != nil {
		return fmt.Errorf("the lab image (run make images): %w", err)
	}
	machine := describeMachine(ctx, d)
	fmt.Println(machine)
	if n, _, err := cleanup(ctx, d, 1); err != nil {
		// An empty network the daemon will not remove does not disturb the
		// run: a class of the same name adopts it.
		fmt.Fprintln(os.Stderr, "bench: leftovers not removed:", err)
	} else if n > 0 {
		fmt.Printf("removed %d leftovers of an earlier run\n", n)
	}
	// However the run ends, nothing it made stays behind.
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
		defer cancel()
		if _, _, err := cleanup(cctx, d, 20); err != nil {
			fmt.Fprintln(os.Stderr, "bench: cleanup:", err)
		}
	}()

	tmpl, ok := policy.Default().Template("sandbox")
	if !ok {
		return errors.New("the built-in policy has no sandbox template")
	}
	// First, on a quiet daemon: the sign-in check's cost on requests.
	if o.parts["forwardauth"] {
		fa, err := forwardAuthCost(ctx, o, d, tmpl)
		if err != nil {
			return fmt.Errorf("forwardauth: %w", err)
		}
		fa.report(os.Stdout, machine)
		fmt.Fprintf(os.Stderr, "forwardauth done at %s\n", time.Since(begin).Round(time.Second))
	}
	// Then a class of notebooks, before the classes' controller starts (it
	// would take the class for an orphan).
	if o.parts["notebooks"] {
		nb, err := notebooks(ctx, o, d)
		if err != nil {
			return fmt.Errorf("notebooks: %w", err)
		}
		nb.report(os.Stdout, machine)
		fmt.Fprintf(os.Stderr, "notebooks done at %s\n", time.Since(begin).Round(time.Second))
	}
	if o.parts["grading"] {
		settle(ctx)
		gr, err := gradingCost(ctx, o, d)
		if err != nil {
			return fmt.Errorf("grading: %w", err)
		}
		gr.report(os.Stdout, machine)
		fmt.Fprintf(os.Stderr, "grading done at %s\n", time.Since(begin).Round(time.Second))
	}

	if o.parts["timetable"] {
		settle(ctx)
		tt, err := bellLateness(ctx, o)
		if err != nil {
			return fmt.Errorf("timetable: %w", err)
		}
		tt.report(os.Stdout, machine)
		fmt.Fprintf(os.Stderr, "timetable done at %s\n", time.Since(begin).Round(time.Second))
	}

	if o.parts["swarm"] {
		settle(ctx)
		sw, err := swarmOverhead(ctx, o)
		if err != nil {
			return fmt.Errorf("swarm: %w", err)
		}
		sw.report(os.Stdout, machine)
		fmt.Fprintf(os.Stderr, "swarm done at %s\n", time.Since(begin).Round(time.Second))
	}

	if !o.parts["classes"] {
		return nil
	}
	settle(ctx) // after the parts before, on the same daemon
	sys, err := startSystem(ctx, o, sysConfig{controller: true, policy: benchPolicy})
	if err != nil {
		return err
	}
	defer sys.stop()
	// The apiserver with its own object store, as make run has it, waits
	// beside the first; its controller runs only while it is measured, or
	// each controller would take the other's classes for orphans and work
	// on them at every event.
	var emb *system
	if o.embeddedPairs > 0 && slices.Contains(o.sizes, 100) {
		if emb, err = startSystem(ctx, o, sysConfig{embedded: true, policy: benchPolicy}); err != nil {
			return fmt.Errorf("embedded store: %w", err)
		}
		defer emb.stop()
	}
	// Names unique to this run: a network an earlier run leaked (the daemon
	// refusing to remove it until it restarts) cannot block this one.
	prefix := classPrefix + strings.ToLower(rand.Text()[:4]) + "-"
	b := &bench{o: o, d: d, tmpl: tmpl, sys: sys, payload: make([]byte, o.fileBytes), prefix: prefix}
	rand.Read(b.payload)

	notice, err := b.notice(ctx, 5)
	if err != nil {
		return fmt.Errorf("notice: %w", err)
	}
	var rows []row
	for i, n := range o.sizes {
		for pair := 1; pair <= o.pairs[i]; pair++ {
			r, err := b.measure(ctx, n, pair, pair == 1)
			if err != nil {
				return fmt.Errorf("N=%d, pair %d: %w", n, pair, err)
			}
			rows = append(rows, r)
			fmt.Fprintf(os.Stderr, "N=%d pair %d of %d done at %s: Up %.2f×, Down %.2f×\n", n, pair, o.pairs[i],
				time.Since(begin).Round(time.Second), ratio(r.homeUp, r.limitUp), ratio(r.homeDown, r.limitDown))
			if ratio(r.homeUp, r.limitUp) > 2 || ratio(r.homeDown, r.limitDown) > 2 {
				sys.controller.explain(os.Stderr, r.class)
			}
			if n == 100 && emb != nil && pair <= o.embeddedPairs {
				// The same Down with the apiserver's own object store,
				// against this pair's baseline.
				e, err := b.measureEmbedded(ctx, emb, r)
				if err != nil {
					return fmt.Errorf("N=100 with the embedded store, pair %d: %w", pair, err)
				}
				rows = append(rows, e)
				fmt.Fprintf(os.Stderr, "N=100 embedded store, pair %d of %d done at %s: Down %.2f×\n", pair, o.embeddedPairs,
					time.Since(begin).Round(time.Second), ratio(e.homeDown, e.limitDown))
				if ratio(e.homeDown, e.limitDown) > 2 {
					emb.controller.explain(os.Stderr, e.class)
				}
			}
		}
	}
	var sc *scaleResult
	if o.scaleClasses > 0 {
		if sc, err = b.scale(ctx); err != nil {
			return fmt.Errorf("scale: %w", err)
		}
	}
	final := sys.controllerTotals()
	if emb != nil {
		e := emb.controllerTotals()
		final.cpu += e.cpu
		final.hwmKiB = max(final.hwmKiB, e.hwmKiB)
	}
	sys.stop()
	// The cleanup is part of the run's time: it is what the daemon is busy
	// with before anything else can use it.
	_, leaked, err := cleanup(ctx, d, 20)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: cleanup:", err)
	}
	// A network Homeroom found leaked is the cleanup's too.
	b.leaked = slices.Compact(slices.Sorted(slices.Values(append(b.leaked, leaked...))))
	report(os.Stdout, machine, o, rows, sc, final, time.Since(begin))
	if len(b.leaked) > 0 {
		fmt.Printf("Networks the daemon would not remove (\"has active endpoints\" with nothing on them; a daemon restart clears them): %s\n",
			strings.Join(b.leaked, ", "))
	} else {
		fmt.Println("Networks the daemon would not remove: none.")
	}
	fmt.Printf("A change reaches the controller: median %.0f ms over %d class writes (%.0f to %.0f ms): from the PUT's answer to the controller's next pass (its homeroom_reconcile_passes_total, read every 5 ms)\n",
		notice.median, 5, notice.min, notice.max)
	return nil
}

// notice times, n times, how long a class write takes to reach the
// controller: from a PUT of a Down class's roster to the controller's next
// pass, read from its own pass counter. It returns milliseconds.
func (b *bench) notice(ctx context.Context, n int) (spread, error) {
	id := b.prefix + "notice"
	var ms []float64
	for i := range n {
		before, err := b.sys.controller.scrape(ctx)
		if err != nil {
			return spread{}, err
		}
		if err := b.sys.api.putClass(ctx, id, []string{fmt.Sprintf("s%d", i)}); err != nil {
			return spread{}, err
		}
		start := time.Now()
		for {
			now, err := b.sys.controller.scrape(ctx)
			if err != nil {
				return spread{}, err
			}
			if now.passes > before.passes {
				break
			}
			if time.Since(start) > 30*time.Second {
				return spread{}, errors.New("the controller did not pass within 30 s of a class write")
			}
			sleep(ctx, 5*time.Millisecond)
		}
		ms = append(ms, float64(time.Since(start).Microseconds())/1000)
		sleep(ctx, 300*time.Millisecond) // let the pass finish before the next write
	}
	if err := b.sys.api.deleteClass(ctx, id); err != nil {
		return spread{}, err
	}
	return spreadOf(ms), nil
}

// bench holds what every measurement shares.
type bench struct {
	// prefix starts the names of this run's classes and raw networks.
	prefix string
	// leaked are the networks the daemon would not remove ("has active
	// endpoints" with nothing on them), reported at the end.
	leaked  []string
	o       options
	d       *dockerx.Client
	tmpl    *policy.Template
	sys     *system
	payload []byte
}

// row is one class size's measurements; durations are zero when not taken.
type row struct {
	n, pair                          int
	class                            string // Homeroom's class
	embedded                         bool   // the apiserver's own object store
	seqUp, limitUp, homeUp           time.Duration
	limitDown, homeDown              time.Duration
	upCPU, downCPU                   float64 // controller CPU seconds during Homeroom's Up and Down
	hwmKiB                           int64   // controller peak RSS after the size's Down
	callsPerPass                     float64 // -1 when not measured
	calls, passes, scrapeCalibration float64
}

// measure takes one pair for a class size: the baselines and Homeroom, in
// turn, the baselines first in odd pairs and last in even ones.
// With extras (the first pair) it also measures the sequential Up when asked
// (-sequential; no target's baseline) and, for the largest size, the
// Docker calls a pass.
func (b *bench) measure(ctx context.Context, n, pair int, extras bool) (row, error) {
	r := row{n: n, pair: pair, callsPerPass: -1}
	var err error

	if extras && b.o.sequential {
		if r.seqUp, err = b.rawUp(ctx, fmt.Sprintf("%sseq-%d", b.prefix, n), n, 1); err != nil {
			return r, fmt.Errorf("sequential: %w", err)
		}
		if err := b.rawRemove(ctx, fmt.Sprintf("%sseq-%d", b.prefix, n), false); err != nil {
			return r, err
		}
		settle(ctx)
	}

	// Which side goes first alternates from pair to pair: whatever the
	// daemon still does after one side's removals falls on the other, and
	// in turn on both.
	if pair%2 == 0 {
		if err := b.homeroom(ctx, b.sys, &r, extras); err != nil {
			return r, err
		}
		return r, b.baseline(ctx, &r)
	}
	if err := b.baseline(ctx, &r); err != nil {
		return r, err
	}
	return r, b.homeroom(ctx, b.sys, &r, extras)
}

// baseline measures the daemon's own limits for r's class size: every
// create and start at once, then every workspace copied out and every
// container removed at once.
func (b *bench) baseline(ctx context.Context, r *row) error {
	n := r.n
	var err error
	// Names of their own for each pair: a network the daemon would not
	// remove must not be met again.
	raw := fmt.Sprintf("%sraw-%d-%d", b.prefix, n, r.pair)
	if r.limitUp, err = b.rawUp(ctx, raw, n, n); err != nil {
		return fmt.Errorf("daemon limit: %w", err)
	}
	if err := b.writeFiles(ctx, raw, n); err != nil {
		return err
	}
	start := time.Now()
	if err := b.rawRemove(ctx, raw, true); err != nil {
		return fmt.Errorf("copy-then-remove: %w", err)
	}
	r.limitDown = time.Since(start)
	settle(ctx)
	return nil
}

// measureEmbedded measures a Homeroom Up and Down of the pair's class size
// with sys, the system with the apiserver's own object store, against the
// baselines of the pair base: the other system's controller stops meanwhile.
func (b *bench) measureEmbedded(ctx context.Context, sys *system, base row) (row, error) {
	r := row{n: base.n, pair: base.pair, embedded: true, callsPerPass: -1, limitUp: base.limitUp, limitDown: base.limitDown}
	b.sys.stopController()
	defer func() {
		if err := b.sys.startController(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "bench: controller:", err)
		}
	}()
	if err := sys.startController(ctx); err != nil {
		return r, err
	}
	defer sys.stopController()
	return r, b.homeroom(ctx, sys, &r, false)
}

// homeroom takes a class of r.n students Up and Down with sys and records
// the times in r; with extras, the largest class's Docker calls a pass too.
func (b *bench) homeroom(ctx context.Context, sys *system, r *row, extras bool) error {
	n, pair := r.n, r.pair
	var err error
	tag := ""
	if sys.embedded {
		tag = "e"
	}
	id := fmt.Sprintf("%sclass-%d%s-%d", b.prefix, n, tag, pair)
	r.class = id
	if err := sys.api.putClass(ctx, id, roster(n)); err != nil {
		return err
	}
	cpu0 := sys.controller.proc().cpu
	if r.homeUp, err = sys.api.upAndWait(ctx, id, n); err != nil {
		return fmt.Errorf("Homeroom Up: %w", err)
	}
	r.upCPU = sys.controller.proc().cpu - cpu0
	if n == maxSize(b.o.sizes) && extras {
		if err := b.callsPerPass(ctx, id, r); err != nil {
			return err
		}
	}
	if err := b.writeFiles(ctx, id, n); err != nil {
		return err
	}
	cpu0 = sys.controller.proc().cpu
	if r.homeDown, err = sys.api.downAndWait(ctx, id, n, int64(len(b.payload))); err != nil {
		return fmt.Errorf("Homeroom Down: %w", err)
	}
	p := sys.controller.proc()
	r.downCPU, r.hwmKiB = p.cpu-cpu0, p.hwmKiB
	if left, err := b.listClass(ctx, id); err != nil || len(left) > 0 {
		return fmt.Errorf("after Down, %d containers of %s are left (%v)", len(left), id, err)
	}
	if err := sys.api.deleteClass(ctx, id); err != nil {
		return err
	}
	if _, err := b.d.API().NetworkInspect(ctx, api.NetworkName(id), network.InspectOptions{}); err == nil {
		// Down reached all the same (the class says NetworkLeaked).
		b.leaked = append(b.leaked, api.NetworkName(id))
	}
	settle(ctx)
	return nil
}

// settle lets the daemon finish what the last measurement left it: the
// removals it completes in the background, and the file system's writeback
// of the containers and volumes it removed (hundreds of MiB after a class
// of notebooks or of 100), which would otherwise fall on whatever is
// measured next, a baseline or Homeroom depending on the order.
//
// It waits for the machine to go quiet rather than for a fixed time: two
// quarter seconds in a row with both cores at least 85% idle, at most 5 s
// on a machine that something else keeps busy.
func settle(ctx context.Context) {
	deadline := time.Now().Add(5 * time.Second)
	for quiet := 0; quiet < 2 && time.Now().Before(deadline) && ctx.Err() == nil; {
		before := cpuTimes()
		sleep(ctx, 250*time.Millisecond)
		if idleShare(before, cpuTimes()) >= 0.85 {
			quiet++
		} else {
			quiet = 0
		}
	}
	syscall.Sync()
}

// cpuTimes is the machine's CPU time so far, all cores together, from the
// first line of /proc/stat: idle (idle and iowait) and total, in ticks.
func cpuTimes() (t [2]float64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return t
	}
	line, _, _ := strings.Cut(string(b), "\n")
	for i, f := range strings.Fields(line)[1:] {
		v, _ := strconv.ParseFloat(f, 64)
		t[1] += v
		if i == 3 || i == 4 {
			t[0] += v
		}
	}
	return t
}

// idleShare is the share of CPU time spent idle between two cpuTimes; 0
// when they tell nothing (no /proc/stat).
func idleShare(a, b [2]float64) float64 {
	if b[1] <= a[1] {
		return 0
	}
	return (b[0] - a[0]) / (b[1] - a[1])
}

func maxSize(sizes []int) int {
	m := 0
	for _, n := range sizes {
		m = max(m, n)
	}
	return m
}

func roster(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("s%03d", i)
	}
	return out
}

// rawSpec is the container Homeroom would create for the student, without
// the label that makes it Homeroom's.
func (b *bench) rawSpec(classID, student string) dockerx.ContainerSpec {
	return rawContainerSpec(classID, student, b.tmpl, "")
}

// rawContainerSpec is Homeroom's spec of a student's container, with the
// sign-in check at forwardAuth in front of it unless that is "", labelled
// as the bench's instead of Homeroom's.
func rawContainerSpec(classID, student string, t *policy.Template, forwardAuth string) dockerx.ContainerSpec {
	s := reconcile.ContainerSpec(classID, student, t, domain, forwardAuth)
	delete(s.Config.Labels, api.LabelManagedBy)
	s.Config.Labels[benchLabel] = "raw"
	for i := range s.HostConfig.Mounts {
		// Anonymous, so that the raw removal takes them with the
		// containers (docker rm -v), as a baseline would.
		s.HostConfig.Mounts[i].Source = ""
		if v := s.HostConfig.Mounts[i].VolumeOptions; v != nil {
			delete(v.Labels, api.LabelManagedBy)
			v.Labels[benchLabel] = "raw"
		}
	}
	return s
}

// rawTimeout bounds each baseline's calls together. The daemon brings 100
// sandboxes Up here in about 20 s (a class of 1000 would take some 200 s)
// and copies and removes them in less; one that has not finished in ten
// minutes has hung (Docker 20.10's libnetwork was seen to deadlock, its
// network list never answering), and the run says so rather than waiting
// for ever.
var rawTimeout = 10 * time.Minute

// errDaemonHung is the cause of a baseline that ran out of rawTimeout.
var errDaemonHung = errors.New("the Docker daemon did not finish; it may have hung (restart dockerd)")

// daemonDeadline bounds a baseline's calls by rawTimeout.
func daemonDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, rawTimeout, fmt.Errorf("%w: no answer within %s", errDaemonHung, rawTimeout))
}

// explainDeadline replaces the SDK's "context deadline exceeded" with why.
func explainDeadline(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); err != nil && errors.Is(cause, errDaemonHung) {
		return cause
	}
	return err
}

// rawUp creates the class network and the class's containers, at most
// inFlight creates and starts at once (1: the sequential loop), and
// returns how long that took.
func (b *bench) rawUp(ctx context.Context, classID string, n, inFlight int) (d time.Duration, err error) {
	ctx, cancel := daemonDeadline(ctx)
	defer cancel()
	defer func() { err = explainDeadline(ctx, err) }()
	subnet, err := freeSubnet(ctx, b.d)
	if err != nil {
		return 0, err
	}
	opts := reconcile.NetworkCreateOptions(classID, b.tmpl, subnet)
	delete(opts.Labels, api.LabelManagedBy)
	opts.Labels[benchLabel] = "raw"
	c := b.d.API()
	start := time.Now()
	if _, err := c.NetworkCreate(ctx, api.NetworkName(classID), opts); err != nil {
		return 0, err
	}
	var g errgroup.Group
	g.SetLimit(inFlight)
	for _, s := range roster(n) {
		g.Go(func() error {
			spec := b.rawSpec(classID, s)
			resp, err := c.ContainerCreate(ctx, spec.Config, spec.HostConfig, spec.Networking, nil, spec.Name)
			if err != nil {
				return err
			}
			return c.ContainerStart(ctx, resp.ID, container.StartOptions{})
		})
	}
	err = g.Wait()
	return time.Since(start), err
}

// rawRemove removes the class's raw containers and network, all at once;
// with copy, each workspace is first read out whole through the archive API.
func (b *bench) rawRemove(ctx context.Context, classID string, copy bool) (err error) {
	ctx, cancel := daemonDeadline(ctx)
	defer cancel()
	defer func() { err = explainDeadline(ctx, err) }()
	cs, err := b.listClass(ctx, classID)
	if err != nil {
		return err
	}
	c := b.d.API()
	var g errgroup.Group
	for _, ctr := range cs {
		g.Go(func() error {
			if copy {
				rc, _, err := c.CopyFromContainer(ctx, ctr.ID, "/workspace")
				if err != nil {
					return err
				}
				n, err := io.Copy(io.Discard, rc)
				rc.Close()
				if err != nil {
					return err
				}
				if n < int64(len(b.payload)) {
					return fmt.Errorf("the workspace of %s holds %d bytes, want at least %d", ctr.Names, n, len(b.payload))
				}
			}
			return c.ContainerRemove(ctx, ctr.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	// Just after many removals the daemon may still count endpoints for a
	// while; past that, it keeps them until it is restarted.
	err = removeNetwork(ctx, c, api.NetworkName(classID), 20)
	if endpointsKept(err) {
		b.leaked = append(b.leaked, api.NetworkName(classID))
		return nil
	}
	return err
}

func (b *bench) listClass(ctx context.Context, classID string) ([]container.Summary, error) {
	return b.d.API().ContainerList(ctx, container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", api.LabelClass+"="+classID))})
}

// freeSubnet picks a /23 that no network on the daemon overlaps, outside
// the pool the controller takes class subnets from.
func freeSubnet(ctx context.Context, d *dockerx.Client) (netip.Prefix, error) {
	used, err := d.UsedSubnets(ctx)
	if err != nil {
		return netip.Prefix{}, err
	}
	for i := 0; i < 128; i++ {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 210, byte(2 * i), 0}), 23)
		free := true
		for _, u := range used {
			if u.Overlaps(p) {
				free = false
			}
		}
		if free {
			return p, nil
		}
	}
	return netip.Prefix{}, errors.New("no free /23 in 10.210.0.0/16")
}

// writeFiles puts the payload into every sandbox of the class through the
// sandbox's own PUT /files endpoint, at the container's address on the
// class network.
func (b *bench) writeFiles(ctx context.Context, classID string, n int) error {
	cs, err := b.listClass(ctx, classID)
	if err != nil {
		return err
	}
	if len(cs) != n {
		return fmt.Errorf("%d containers of %s, want %d", len(cs), classID, n)
	}
	client := &http.Client{Timeout: 30 * time.Second}
	var g errgroup.Group
	g.SetLimit(16)
	for _, ctr := range cs {
		g.Go(func() error {
			ep := ctr.NetworkSettings.Networks[api.NetworkName(classID)]
			if ep == nil || ep.IPAddress == "" {
				return fmt.Errorf("%v has no address on its class network", ctr.Names)
			}
			url := fmt.Sprintf("http://%s/files/%s", net.JoinHostPort(ep.IPAddress, strconv.Itoa(b.tmpl.Port)), fileName)
			return putFile(ctx, client, url, b.payload)
		})
	}
	return g.Wait()
}

// putFile stores body at url through a sandbox's PUT /files, asking again
// while a sandbox just started does not listen yet.
func putFile(ctx context.Context, client *http.Client, url string, body []byte) error {
	var last error
	for attempt := 0; attempt < 50; attempt++ {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPut, url, bytes.NewReader(body))
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				return nil
			}
			err = fmt.Errorf("PUT %s: %s", url, resp.Status)
		}
		last = err
		sleep(ctx, 100*time.Millisecond)
	}
	return last
}

// callsPerPass measures what a pass over the converged class costs the
// daemon, from the controller's homeroom_docker_calls_total. Passes are
// asked for by Docker events that change nothing: SIGWINCH, which the
// sandbox ignores, sent to one of the class's containers.
func (b *bench) callsPerPass(ctx context.Context, classID string, r *row) error {
	sleep(ctx, 3*time.Second) // the passes the Up's own events asked for
	m := b.sys.controller
	s0, err := m.scrape(ctx)
	if err != nil {
		return err
	}
	s1, err := m.scrape(ctx)
	if err != nil {
		return err
	}
	// A scrape lists Homeroom's containers and networks itself (the
	// managed-object gauges): two scrapes apart, that is the cost of one.
	r.scrapeCalibration = s1.calls - s0.calls
	cs, err := b.listClass(ctx, classID)
	if err != nil || len(cs) == 0 {
		return fmt.Errorf("containers of %s: %d, %v", classID, len(cs), err)
	}
	// A resync in the window (every 30 s) passes over every class and
	// orphan, such as the networks the daemon refuses to remove, which are
	// not this class's passes: a window that held one (its own calls moved,
	// or more passes ran than there were events) is measured again.
	for try := 1; ; try++ {
		s2, err := b.eventWindow(ctx, m, cs[0].ID)
		if err != nil {
			return err
		}
		if (s2.resyncCalls != s1.resyncCalls || s2.passes-s1.passes > windowEvents) && try < 3 {
			fmt.Fprintln(os.Stderr, "bench: a resync, or passes the events did not ask for, fell in the Docker calls' window; measuring it again")
			s1 = s2
			continue
		}
		r.calls = s2.calls - s1.calls - r.scrapeCalibration
		r.passes = s2.passes - s1.passes
		break
	}
	if r.passes <= 0 {
		return errors.New("no pass ran on the class's events")
	}
	r.callsPerPass = r.calls / r.passes
	return nil
}

// windowEvents is how many events a Docker-calls window sends.
const windowEvents = 20

// eventWindow sends windowEvents events that change nothing to the
// container id (SIGWINCH, which a sandbox ignores; each event asks for a
// pass), lets their passes run and scrapes the controller m, the one the
// window's first scrape read.
func (b *bench) eventWindow(ctx context.Context, m *process, id string) (scrape, error) {
	for i := 0; i < windowEvents; i++ {
		if err := b.d.API().ContainerKill(ctx, id, "WINCH"); err != nil {
			return scrape{}, err
		}
		sleep(ctx, 250*time.Millisecond)
	}
	sleep(ctx, 2*time.Second)
	return m.scrape(ctx)
}

type scaleResult struct {
	classes, students int
	up                time.Duration
	idle              time.Duration
	idleCPU           float64
	rssKiB, hwmKiB    int64
}

// scale brings classes Up together, then measures the controller at rest
// with all of them managed: its memory, and its CPU over an idle window.
func (b *bench) scale(ctx context.Context) (*scaleResult, error) {
	sc := &scaleResult{classes: b.o.scaleClasses, students: b.o.scaleStudents, idle: b.o.idle}
	var ids []string
	for i := 1; i <= sc.classes; i++ {
		id := fmt.Sprintf("%sscale-%d", b.prefix, i)
		ids = append(ids, id)
		if err := b.sys.api.putClass(ctx, id, roster(sc.students)); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	var g errgroup.Group
	for _, id := range ids {
		g.Go(func() error {
			_, err := b.sys.api.upAndWait(ctx, id, sc.students)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	sc.up = time.Since(start)
	fmt.Fprintf(os.Stderr, "%d containers Up in %s; idle for %s\n", sc.classes*sc.students, sc.up.Round(time.Second), sc.idle)
	sleep(ctx, 5*time.Second) // the passes the Ups' own events asked for
	p0 := b.sys.controller.proc()
	profiled := make(chan struct{})
	go func() {
		defer close(profiled)
		b.profileIdle(ctx, sc.idle)
	}()
	sleep(ctx, sc.idle)
	p1 := b.sys.controller.proc()
	<-profiled
	sc.idleCPU = p1.cpu - p0.cpu
	sc.rssKiB, sc.hwmKiB = p1.rssKiB, p1.hwmKiB
	return sc, ctx.Err()
}

// profileIdle keeps a CPU profile of the controller over the idle window in
// the logs directory when the controller serves pprof (-controller-args=-pprof
// with -keep-logs): where an idle controller's CPU goes is the first question
// when the target is missed.
func (b *bench) profileIdle(ctx context.Context, d time.Duration) {
	if !b.o.keep || !slices.Contains(b.o.controllerArgs, "-pprof") {
		return
	}
	url := strings.TrimSuffix(b.sys.controller.metricsURL, "/metrics") + fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(d.Seconds()))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return
	}
	resp, err := (&http.Client{Timeout: d + 30*time.Second}).Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, "idle profile:", err)
		return
	}
	defer resp.Body.Close()
	path := filepath.Join(b.sys.dir, "controller-idle.pprof")
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "idle profile:", err)
		return
	}
	defer f.Close()
	if _, err := io.Copy(f, resp.Body); err == nil {
		fmt.Fprintln(os.Stderr, "controller's CPU profile over the idle window:", path)
	}
}

// cleanup removes every container and network a bench run made, by label:
// raw ones (and the bench's Traefik) carry homeroom.bench, Homeroom's are of
// classes named bench-*.
//
// attempts is how often each network's removal is tried, half a second
// apart: just after many removals the daemon still counts some of their
// endpoints for a while. At start one attempt is enough: a network an
// earlier run left that the daemon still refuses is leaked until the daemon
// restarts, and this run's names are its own.
//
// It returns how many objects it removed, and the networks the daemon kept
// refusing with "has active endpoints": leaked until it restarts, which the
// run reports.
func cleanup(ctx context.Context, d *dockerx.Client, attempts int) (int, []string, error) {
	c := d.API()
	ours := func(labels map[string]string) bool {
		return labels[benchLabel] != "" || strings.HasPrefix(labels[api.LabelClass], classPrefix)
	}
	cs, err := c.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", api.LabelClass))})
	if err != nil {
		return 0, nil, err
	}
	// The bench's Traefik belongs to no class.
	loose, err := c.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", benchLabel))})
	if err != nil {
		return 0, nil, err
	}
	for _, ctr := range loose {
		if _, ok := ctr.Labels[api.LabelClass]; !ok {
			cs = append(cs, ctr)
		}
	}
	var g errgroup.Group
	g.SetLimit(16)
	n := 0
	for _, ctr := range cs {
		if ours(ctr.Labels) {
			n++
			g.Go(func() error {
				err := c.ContainerRemove(ctx, ctr.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
				if err != nil && !dockerx.IsNotFound(err) {
					return err
				}
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		return n, nil, err
	}
	// The work volumes of the bench's classes: after the scale part, 500.
	vs, err := c.VolumeList(ctx, volume.ListOptions{Filters: filters.NewArgs(filters.Arg("label", api.LabelClass))})
	if err != nil {
		return n, nil, err
	}
	for _, v := range vs.Volumes {
		if v != nil && ours(v.Labels) {
			n++
			g.Go(func() error {
				if err := c.VolumeRemove(ctx, v.Name, true); err != nil && !dockerx.IsNotFound(err) {
					return err
				}
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		return n, nil, err
	}
	ns, err := c.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("label", api.LabelClass))})
	if err != nil {
		return n, nil, err
	}
	var (
		errs   []error
		leaked []string
	)
	for _, nw := range ns {
		if !ours(nw.Labels) {
			continue
		}
		n++
		// Just after hundreds of removals the daemon may still count some of
		// their endpoints ("has active endpoints"): try again for a while.
		if err := removeNetwork(ctx, c, nw.ID, attempts); err != nil {
			if endpointsKept(err) {
				leaked = append(leaked, nw.Name)
			}
			errs = append(errs, err)
		}
	}
	return n, leaked, errors.Join(errs...)
}

// The parts of the bench, in the order they run; only classes by default,
// which alone keeps a run under 15 minutes. The others measure what later
// capabilities cost (-only all runs every part, about 45 minutes).
var allParts = []string{"forwardauth", "notebooks", "grading", "timetable", "swarm", "classes"}

const defaultParts = "classes"

// parseParts reads -only: parts from allParts, comma separated, or "all".
func parseParts(only string) (map[string]bool, error) {
	parts := map[string]bool{}
	for _, p := range strings.Split(only, ",") {
		p = strings.TrimSpace(p)
		switch {
		case p == "all":
			for _, q := range allParts {
				parts[q] = true
			}
		case slices.Contains(allParts, p):
			parts[p] = true
		default:
			return nil, fmt.Errorf("-only: %q is none of %s, nor all", p, strings.Join(allParts, ", "))
		}
	}
	return parts, nil
}

// parsePairs reads -pairs: one count for every size, or one for each.
// Without it, a class of 10 or fewer is measured 5 times and a larger one 3:
// a small class's Up and Down take two or three seconds, where the
// machine's noise weighs most, and a pair of them costs about 12 s.
func parsePairs(pairs string, sizes []int) ([]int, error) {
	n := len(sizes)
	var out []int
	if pairs == "" {
		for _, size := range sizes {
			if size <= 50 {
				out = append(out, 5)
			} else {
				out = append(out, 3)
			}
		}
		return out, nil
	}
	for _, p := range strings.Split(pairs, ",") {
		k, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || k < 1 || k > 50 {
			return nil, fmt.Errorf("-pairs: %q is not a number of pairs (1 to 50)", p)
		}
		out = append(out, k)
	}
	switch {
	case len(out) == n:
		return out, nil
	case len(out) == 1:
		return slices.Repeat(out, n), nil
	}
	return nil, fmt.Errorf("-pairs %s: one count, or one for each of the %d sizes", pairs, n)
}

// endpointsKept reports whether removeNetwork's error is the daemon still
// counting endpoints on the network ("has active endpoints"), past its
// attempts: leaked until the daemon restarts.
func endpointsKept(err error) bool {
	return err != nil && strings.Contains(err.Error(), "has active endpoints")
}

// removeNetwork removes a network, gone already counting as removed, trying
// up to attempts times half a second apart while the daemon still counts
// endpoints of containers just removed.
func removeNetwork(ctx context.Context, c interface {
	NetworkRemove(context.Context, string) error
}, id string, attempts int) error {
	var err error
	for attempt := 0; attempt < attempts; attempt++ {
		if err = c.NetworkRemove(ctx, id); err == nil || dockerx.IsNotFound(err) {
			return nil
		}
		sleep(ctx, 500*time.Millisecond)
	}
	return err
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func describeMachine(ctx context.Context, d *dockerx.Client) string {
	mem := "?"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
				kib, _ := strconv.ParseInt(f[1], 10, 64)
				mem = fmt.Sprintf("%.1f GiB", float64(kib)/(1<<20))
			}
		}
	}
	kernel := "?"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	docker := "?"
	if v, err := d.API().ServerVersion(ctx); err == nil {
		docker = fmt.Sprintf("%s (API %s, storage driver ", v.Version, v.APIVersion)
		if info, err := d.API().Info(ctx); err == nil {
			docker += info.Driver + ")"
		} else {
			docker += "?)"
		}
	}
	return fmt.Sprintf("machine: %d CPUs (nproc), %s memory, kernel %s, Docker %s, %s",
		runtime.NumCPU(), mem, kernel, docker, runtime.Version())
}

// report prints the tables (one line a pair), the medians and the targets.
func report(w io.Writer, machine string, o options, rows []row, sc *scaleResult, final procStats, total time.Duration) {
	fmt.Fprintln(w)
	fmt.Fprintln(w, machine)
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "Up (s)\tN\tpair\tHomeroom\tsequential\tdaemon limit\tHomeroom/limit\tsequential/Homeroom\tcontroller CPU s\t")
	for _, r := range rows {
		if r.embedded {
			continue // the Up does not touch the object store
		}
		seq, seqRatio := "-", "-"
		if r.seqUp > 0 {
			seq, seqRatio = fmt.Sprintf("%.2f", r.seqUp.Seconds()), fmt.Sprintf("%.2f×", ratio(r.seqUp, r.homeUp))
		}
		fmt.Fprintf(tw, "\t%d\t%d\t%.2f\t%s\t%.2f\t%.2f×\t%s\t%.2f\t\n", r.n, r.pair, r.homeUp.Seconds(), seq, r.limitUp.Seconds(),
			ratio(r.homeUp, r.limitUp), seqRatio, r.upCPU)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "Down (s), %d KiB a sandbox\tN\tobject store\tpair\tHomeroom\tcopy-then-remove\tHomeroom/copy-then-remove\tcontroller CPU s\tcontroller peak RSS MiB\t\n", o.fileBytes>>10)
	for _, r := range rows {
		fmt.Fprintf(tw, "\t%d\t%s\t%d\t%.2f\t%.2f\t%.2f×\t%.2f\t%.1f\t\n", r.n, storeName(r.embedded), r.pair, r.homeDown.Seconds(), r.limitDown.Seconds(),
			ratio(r.homeDown, r.limitDown), r.downCPU, float64(r.hwmKiB)/1024)
	}
	tw.Flush()
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Up: from the Up request at the API to status Up with every student running. Sequential: the class")
	fmt.Fprintln(w, "network, then each container created and started in turn. Daemon limit: the network, then every")
	fmt.Fprintln(w, "create+start at once. Down: from the Down request to status Down, every student's workspace and")
	fmt.Fprintln(w, "logs uploaded, verified and checkpointed, containers, work volumes and network removed;")
	fmt.Fprintln(w, "copy-then-remove: every workspace read out through the archive API and its container removed,")
	fmt.Fprintln(w, "all at once. Each pair measures the baselines and Homeroom on the same daemon, the baselines")
	fmt.Fprintln(w, "first in odd pairs and last in even ones.")
	fmt.Fprintln(w)

	up, down := map[int]spread{}, map[int]spread{}
	var downEmbedded *spread
	for _, n := range o.sizes {
		var u, d, de []float64
		for _, r := range rows {
			switch {
			case r.n == n && r.embedded:
				de = append(de, ratio(r.homeDown, r.limitDown))
			case r.n == n:
				u, d = append(u, ratio(r.homeUp, r.limitUp)), append(d, ratio(r.homeDown, r.limitDown))
			}
		}
		up[n], down[n] = spreadOf(u), spreadOf(d)
		fmt.Fprintf(w, "N=%d over %d pairs: Up %s of the daemon's limit, Down %s of copy-then-remove\n", n, len(u), up[n], down[n])
		if len(de) > 0 {
			s := spreadOf(de)
			downEmbedded = &s
			fmt.Fprintf(w, "N=%d over %d pairs, the apiserver's own object store: Down %s of copy-then-remove\n", n, len(de), s)
		}
	}
	fmt.Fprintln(w)

	var big *row
	for i := range rows {
		if rows[i].callsPerPass >= 0 {
			big = &rows[i]
		}
	}
	if big != nil {
		fmt.Fprintf(w, "Steady state, converged class of %d: %.2f Docker calls a pass (%.0f calls over %.0f passes, after subtracting %.0f for a scrape)\n",
			big.n, big.callsPerPass, big.calls, big.passes, big.scrapeCalibration)
	}
	if sc != nil {
		fmt.Fprintf(w, "Scale: %d classes × %d = %d containers Up in %.1f s; controller RSS %.1f MiB with all managed, peak %.1f MiB;\n",
			sc.classes, sc.students, sc.classes*sc.students, sc.up.Seconds(), float64(sc.rssKiB)/1024, float64(sc.hwmKiB)/1024)
		fmt.Fprintf(w, "       idle %.2f CPU s over %s (%.2f%% of one core)\n", sc.idleCPU, sc.idle, 100*sc.idleCPU/sc.idle.Seconds())
	}
	fmt.Fprintf(w, "Controller over the whole run: %.2f CPU s, peak RSS %.1f MiB. Total bench time %s.\n",
		final.cpu, float64(final.hwmKiB)/1024, total.Round(time.Second))
	fmt.Fprintln(w)

	fmt.Fprintln(w, "Targets (ratios: the median of the pairs):")
	check := func(ok bool, format string, args ...any) {
		verdict := "MISS"
		if ok {
			verdict = "PASS"
		}
		fmt.Fprintf(w, "  %s  %s\n", verdict, fmt.Sprintf(format, args...))
	}
	checkRatio := func(s spread, target float64, what string) {
		check(s.median <= target, "%s within %.2f×: %s%s", what, target, s, s.note(target))
	}
	for _, n := range []int{10, 50, 100} {
		if s, ok := up[n]; ok {
			checkRatio(s, 1.15, fmt.Sprintf("Up of %d, of the daemon's limit,", n))
		}
	}
	if s, ok := down[100]; ok {
		checkRatio(s, 1.3, "Down of 100 with a separate S3 server, of copy-then-remove,")
		if downEmbedded != nil {
			checkRatio(*downEmbedded, 1.3, "Down of 100 with the apiserver's own object store, of copy-then-remove,")
		}
	} else {
		fmt.Fprintln(w, "  ----  Down of 100: not measured (-sizes has no 100)")
	}
	if big != nil && big.n >= 100 {
		check(big.callsPerPass <= 3, "a converged class of %d costs at most 3 Docker calls a pass: %.2f", big.n, big.callsPerPass)
	} else {
		fmt.Fprintln(w, "  ----  Docker calls a pass: not measured on a class of 100")
	}
	if sc != nil {
		managed := sc.classes * sc.students
		check(final.hwmKiB < 150<<10 && managed >= 500, "controller RSS under 150 MiB with 500 managed containers: peak %.1f MiB over the run, %d managed",
			float64(final.hwmKiB)/1024, managed)
		// Near zero: under 1% of one core, resyncs included.
		check(sc.idleCPU/sc.idle.Seconds() < 0.01, "idle CPU near zero (under 1%% of one core): %.2f%%", 100*sc.idleCPU/sc.idle.Seconds())
	}
	if o.defaults {
		check(total < 15*time.Minute, "the default run (the classes part, with its defaults) under 15 minutes: %s", total.Round(time.Second))
	}
}

func storeName(embedded bool) string {
	if embedded {
		return "embedded"
	}
	return "separate"
}

// spread is the median of some ratios and their range.
type spread struct{ median, min, max float64 }

func spreadOf(v []float64) spread {
	if len(v) == 0 {
		return spread{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return spread{median: m, min: s[0], max: s[len(s)-1]}
}

// note says when some pairs pass the target and some miss it: the median
// decides, but one more run could decide otherwise.
func (s spread) note(target float64) string {
	if s.min <= target && target < s.max {
		return "; the pairs straddle the target, too wide a spread for a firm verdict"
	}
	return ""
}

func (s spread) String() string {
	return fmt.Sprintf("%.2f× (%.2f× to %.2f×)", s.median, s.min, s.max)
}

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return a.Seconds() / b.Seconds()
}

// system is the Homeroom processes under test and the S3 server they use.
type system struct {
	dir  string
	keep bool
	// embedded: the apiserver runs its own object store (a versitygw of
	// its own); else s3 is a separate versitygw.
	embedded   bool
	s3         *versitygw.Process
	apiserver  *process
	controller *process // nil while stopped
	api        *apiClient
	once       sync.Once

	// How to start the controller again, and what the ones stopped spent.
	ctlBin, ctlListen string
	ctlEnv, ctlArgs   []string
	spent             procStats
}

// startController starts the system's controller and waits until it is
// ready.
func (s *system) startController(ctx context.Context) error {
	p, err := startProcess(s.dir, "controller", s.ctlBin, s.ctlEnv, s.ctlArgs...)
	if err != nil {
		return err
	}
	p.metricsURL = "http://" + s.ctlListen + "/metrics"
	s.controller = p
	if err := waitHTTP(ctx, "http://"+s.ctlListen+"/readyz", time.Minute); err != nil {
		return fmt.Errorf("controller: %w\n%s", err, p.tail())
	}
	return nil
}

// stopController stops the controller, keeping what it spent.
func (s *system) stopController() {
	if s.controller == nil {
		return
	}
	p := s.controller.proc()
	s.controller.stop()
	s.controller = nil
	s.spent.cpu += p.cpu
	s.spent.hwmKiB = max(s.spent.hwmKiB, p.hwmKiB)
}

// controllerTotals is the CPU of every controller the system ran, and the
// highest peak RSS among them.
func (s *system) controllerTotals() procStats {
	t := s.spent
	if s.controller != nil {
		p := s.controller.proc()
		t.cpu += p.cpu
		t.hwmKiB = max(t.hwmKiB, p.hwmKiB)
		t.rssKiB = p.rssKiB
	}
	return t
}

// startSystem starts the apiserver and, with controller, the controller,
// with a separate S3 server or, embedded, the apiserver's own.
// sysConfig is what differs between the bench's systems.
type sysConfig struct {
	embedded   bool   // the apiserver's own object store, as make run has it
	controller bool   // start the controller now (else startController later)
	policy     string // the policy file's text; "" the built-in policy
	// traefik names the Traefik container the controller routes through
	// ("" none: the bench measures Docker and collection, not routing);
	// traefikURL is its entrypoint, where readiness sees hosts routed.
	traefik, traefikURL string
	// s3Host is where the separate S3 server listens ("" loopback); env is
	// added to both processes' environment.
	s3Host string
	env    []string
}

func startSystem(ctx context.Context, o options, c sysConfig) (*system, error) {
	dir, err := os.MkdirTemp("", "homeroom-bench-")
	if err != nil {
		return nil, err
	}
	s := &system{dir: dir, keep: o.keep, embedded: c.embedded}
	ok := false
	defer func() {
		if !ok {
			s.stop()
		}
	}()
	s3Env := []string{"HOMEROOM_S3_ENDPOINT=", "HOMEROOM_VERSITYGW=" + o.versitygw}
	if !c.embedded {
		bucketDir, sidecar := filepath.Join(dir, "objects"), filepath.Join(dir, "metadata")
		os.MkdirAll(bucketDir, 0o755)
		os.MkdirAll(sidecar, 0o755)
		s3Addr, access, secret := freeAddr(), "bench", strings.ToLower(rand.Text())
		if c.s3Host != "" {
			s3Addr = freeAddrOn(c.s3Host)
		}
		if s.s3, err = versitygw.Start(ctx, versitygw.Options{Binary: o.versitygw, Addr: s3Addr, Dir: bucketDir, Sidecar: sidecar,
			AccessKey: access, SecretKey: secret}); err != nil {
			return nil, fmt.Errorf("%w (run scripts/ensure-versitygw.sh)", err)
		}
		s3Env = []string{"HOMEROOM_S3_ENDPOINT=" + s3Addr, "HOMEROOM_S3_ACCESS_KEY=" + access, "HOMEROOM_S3_SECRET_KEY=" + secret,
			"HOMEROOM_S3_BUCKET=homeroom", "HOMEROOM_S3_SECURE=false"}
	}

	pol := "" // the built-in one
	if c.policy != "" {
		pol = filepath.Join(dir, "policy.yaml")
		if err := os.WriteFile(pol, []byte(c.policy), 0o644); err != nil {
			return nil, err
		}
	}
	traefik := c.traefik
	if traefik == "" {
		traefik = "homeroom-bench-no-router"
	}
	listen, ctlListen := freeAddr(), freeAddr()
	token := rand.Text()
	env := []string{
		"HOMEROOM_DATA_DIR=" + filepath.Join(dir, "data"),
		"HOMEROOM_LISTEN=" + listen,
		"HOMEROOM_CONTROLLER_LISTEN=" + ctlListen,
		"HOMEROOM_EMBEDDED_S3_ADDR=" + freeAddr(),
		"HOMEROOM_MONGO_URI=",
		"HOMEROOM_ADMIN_TOKEN=" + token,
		"HOMEROOM_POLICY=" + pol,
		"HOMEROOM_DOMAIN=" + domain,
		"HOMEROOM_TRAEFIK_CONTAINER=" + traefik,
		"HOMEROOM_TRAEFIK_URL=" + c.traefikURL,
		// The bench polls the API several times a second for several classes.
		"HOMEROOM_RATE_LIMIT=1000", "HOMEROOM_RATE_BURST=1000",
	}
	env = append(env, s3Env...)
	env = append(env, c.env...)
	if s.apiserver, err = startProcess(dir, "apiserver", filepath.Join(o.bin, "apiserver"), env); err != nil {
		return nil, err
	}
	if err := waitHTTP(ctx, "http://"+listen+"/readyz", time.Minute); err != nil {
		return nil, fmt.Errorf("apiserver: %w\n%s", err, s.apiserver.tail())
	}
	s.ctlBin, s.ctlListen, s.ctlEnv, s.ctlArgs = filepath.Join(o.bin, "controller"), ctlListen, env, o.controllerArgs
	if c.controller {
		if err := s.startController(ctx); err != nil {
			return nil, err
		}
	}
	s.api = &apiClient{base: "http://" + listen, token: token, http: &http.Client{Timeout: 30 * time.Second}}
	ok = true
	return s, nil
}

// benchPolicy is the built-in template with quotas wide enough for the
// scale measurement.
const benchPolicy = `templates:
  - name: sandbox
    image: homeroom/sandbox:dev
    port: 8080
    user: "65534:65534"
    collectPaths: [/workspace]
    memoryMiB: 128
    cpus: 0.5
    pids: 64
    readOnlyRootFS: true
    internet: false
defaults:
  maxStudentsPerClass: 500
  maxClassesUp: 20
  maxContainers: 2000
  maxCPUs: 1000
  maxMemoryMiB: 256000
`

// stop stops the controller first (it holds a lease in the store the
// apiserver serves), then the apiserver and the S3 server.
func (s *system) stop() {
	s.once.Do(func() {
		s.stopController()
		if s.apiserver != nil {
			s.apiserver.stop()
		}
		if s.s3 != nil {
			s.s3.Stop(10 * time.Second)
		}
		if s.keep {
			fmt.Fprintln(os.Stderr, "logs and data kept in", s.dir)
		} else {
			os.RemoveAll(s.dir)
		}
	})
}

type process struct {
	name       string
	cmd        *exec.Cmd
	log        string
	done       chan struct{}
	metricsURL string
}

func startProcess(dir, name, bin string, env []string, args ...string) (*process, error) {
	logPath := filepath.Join(dir, name+".log")
	// Appended: a controller started again keeps the earlier one's lines.
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	// A bench killed without its cleanup takes its processes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &process{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { cmd.Wait(); f.Close(); close(p.done) }()
	return p, nil
}

// stop asks politely, then insists.
func (p *process) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(40 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// explain writes what the process logged about class beyond the usual
// (its warnings and errors, its failed and retried passes): a measurement
// far off its baseline is a question the run should answer itself, and
// the logs go with the run unless -keep-logs.
func (p *process) explain(w io.Writer, class string) {
	f, err := os.Open(p.log)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(w, "%s over twice its baseline; what the %s logged of it beyond the usual:\n", class, p.name)
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l struct {
			Level   string `json:"level"`
			Msg     string `json:"msg"`
			ClassID string `json:"classId"`
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.ClassID != class || (l.Level == "info" && !strings.Contains(l.Msg, "retry")) {
			continue
		}
		fmt.Fprintf(w, "  %s\n", sc.Bytes())
	}
}

func (p *process) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

type procStats struct {
	cpu            float64 // user+system seconds
	rssKiB, hwmKiB int64
}

// proc reads the process's CPU time from /proc/<pid>/stat and its resident
// memory, now and at its peak, from /proc/<pid>/status.
func (p *process) proc() procStats { return procOf(p.cmd.Process.Pid) }

// procOf is proc of any process, a container's too (the bench shares the
// daemon's host).
func procOf(pid int) procStats {
	var st procStats
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		s := string(b)
		// Fields after the command name, which may hold spaces: utime and
		// stime are the 14th and 15th of the whole line, in clock ticks.
		if f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]); len(f) > 12 {
			ut, _ := strconv.ParseFloat(f[11], 64)
			sy, _ := strconv.ParseFloat(f[12], 64)
			st.cpu = (ut + sy) / clockTicks
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) < 2 {
				continue
			}
			v, _ := strconv.ParseInt(f[1], 10, 64)
			switch f[0] {
			case "VmRSS:":
				st.rssKiB = v
			case "VmHWM:":
				st.hwmKiB = v
			}
		}
	}
	return st
}

// clockTicks is USER_HZ, 100 on every Linux architecture Go runs on.
const clockTicks = 100

type scrape struct {
	calls, passes, poolFree, poolWarm float64
	// resyncCalls are the calls only a resync makes (its workspace
	// measurement and search for orphans): when they moved, one ran.
	resyncCalls float64
	// steps are, by step kind, the seconds spent in it and its count.
	steps map[string][2]float64
}

// scrape sums the controller's Docker calls and reconcile passes, and
// reads the swarm runtime's free pool networks.
func (p *process) scrape(ctx context.Context) (scrape, error) {
	s := scrape{steps: map[string][2]float64{}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.metricsURL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return s, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) != 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch {
		case strings.HasPrefix(f[0], "homeroom_docker_calls_total{"):
			// Not a pass's calls: what a resync does once for every class
			// (the workspace measurement, the search for orphans, grading's
			// look for leftover graders), which may fall in the window.
			switch {
			case strings.Contains(f[0], `operation="disk_usage"`), strings.Contains(f[0], `operation="orphan_list"`):
				s.resyncCalls += v
			case !strings.Contains(f[0], `operation="grader_list"`):
				s.calls += v
			}
		case strings.HasPrefix(f[0], "homeroom_reconcile_passes_total{"):
			s.passes += v
		case f[0] == "homeroom_swarm_network_pool_free":
			s.poolFree = v
		case f[0] == "homeroom_swarm_network_pool_warm":
			s.poolWarm = v
		case strings.HasPrefix(f[0], "homeroom_step_duration_seconds_sum{"), strings.HasPrefix(f[0], "homeroom_step_duration_seconds_count{"):
			_, step, _ := strings.Cut(f[0], `step="`)
			step, _, _ = strings.Cut(step, `"`)
			sc := s.steps[step]
			if strings.Contains(f[0], "_sum{") {
				sc[0] = v
			} else {
				sc[1] = v
			}
			s.steps[step] = sc
		}
	}
	return s, nil
}

func freeAddr() string { return freeAddrOn("127.0.0.1") }

// freeAddrOn is a free port on one of this machine's addresses.
func freeAddrOn(host string) string {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitHTTP(ctx context.Context, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		sleep(ctx, 100*time.Millisecond)
	}
	return fmt.Errorf("%s did not answer 200 within %s", url, timeout)
}

// apiClient speaks to the apiserver as a teacher's script would.
type apiClient struct {
	base, token string
	http        *http.Client
}

func (c *apiClient) call(ctx context.Context, method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: %s %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	if out != nil {
		return resp.StatusCode, json.Unmarshal(b, out)
	}
	return resp.StatusCode, nil
}

func (c *apiClient) putClass(ctx context.Context, id string, students []string) error {
	_, err := c.call(ctx, http.MethodPut, "/api/v1/classes/"+id, map[string]any{
		"subject": "bench", "template": "sandbox", "students": students, "ttlSeconds": 7200,
	}, nil)
	return err
}

func (c *apiClient) deleteClass(ctx context.Context, id string) error {
	_, err := c.call(ctx, http.MethodDelete, "/api/v1/classes/"+id, nil, nil)
	return err
}

// upAndWait asks for Up and returns how long the class took to be Up with
// every student running: from just before the request to the status's
// upAt, the moment the controller found them all running, which the
// teacher's page shows; only the status write that carries it follows.
// The bench follows the class by long poll, as that page does, rather than
// reading it every few milliseconds: on two cores the apiserver's answers
// to a read of a class of 50 every 50 ms cost half a CPU second in an Up
// of 10 s, taken from the Up being timed, and the reads' interval added
// itself to every time.
func (c *apiClient) upAndWait(ctx context.Context, id string, n int) (time.Duration, error) {
	start := time.Now()
	if _, err := c.call(ctx, http.MethodPost, "/api/v1/classes/"+id+"/up", nil, nil); err != nil {
		return 0, err
	}
	var last api.Class
	if _, err := c.follow(ctx, id, start, func(cl *api.Class) bool {
		last = *cl
		if cl.Status.Phase != api.PhaseUp || cl.Status.ObservedGeneration != cl.Generation || len(cl.Status.Students) != n {
			return false
		}
		for _, s := range cl.Status.Students {
			if s.State != "running" {
				return false
			}
		}
		return true
	}); err != nil {
		return 0, err
	}
	return since(start, last.Status.UpAt, "status.upAt")
}

// downAndWait asks for Down and returns how long the class took to be Down
// with every student's work collected (at least size bytes each): from just
// before the request to the long poll's answer saying so. The status has no
// time of its own for that: the run's completedAt is taken before its index
// is written and the status saved, work the Down includes.
func (c *apiClient) downAndWait(ctx context.Context, id string, n int, size int64) (time.Duration, error) {
	start := time.Now()
	if _, err := c.call(ctx, http.MethodPost, "/api/v1/classes/"+id+"/down", nil, nil); err != nil {
		return 0, err
	}
	var last api.Class
	d, err := c.follow(ctx, id, start, func(cl *api.Class) bool {
		last = *cl
		return cl.Status.Phase == api.PhaseDown && cl.Status.ObservedGeneration == cl.Generation &&
			cl.Status.Run != nil && cl.Status.Run.CompletedAt != nil
	})
	if err != nil {
		return 0, err
	}
	collected := 0
	for _, s := range last.Status.Students {
		if a := s.Artifacts; a != nil && a.RunID == last.Status.Run.ID && a.Bytes >= size {
			collected++
		}
	}
	if collected != n {
		return 0, fmt.Errorf("%d of %d students collected with their file", collected, n)
	}
	return d, nil
}

// since is how long after start the status says a change was complete; the
// controller's clock is this machine's.
func since(start time.Time, at *time.Time, field string) (time.Duration, error) {
	// The store keeps milliseconds.
	if at == nil || at.Before(start.Truncate(time.Millisecond)) {
		return 0, fmt.Errorf("%s is %v, not after the request at %s", field, at, start.Format(time.RFC3339Nano))
	}
	return max(at.Sub(start), 0), nil
}

// follow is wait by long poll, as the teacher pages follow a class: each
// GET …?wait= returns when the class changed. For a wait of many seconds
// in which the class changes a few times (a regrade), where polling a class
// of 100 five times a second would cost the store more than the wait
// measures.
func (c *apiClient) follow(ctx context.Context, id string, start time.Time, done func(*api.Class) bool) (time.Duration, error) {
	deadline := start.Add(5 * time.Minute)
	var cl api.Class
	if _, err := c.call(ctx, http.MethodGet, "/api/v1/classes/"+id, nil, &cl); err != nil {
		return 0, err
	}
	for !done(&cl) {
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("class %s not there after 5 minutes: phase %s, conditions %+v", id, cl.Status.Phase, cl.Status.Conditions)
		}
		// Within the client's 30 s timeout.
		if _, err := c.call(ctx, http.MethodGet, fmt.Sprintf("/api/v1/classes/%s?wait=20s&resourceVersion=%d", id, cl.Version), nil, &cl); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

func (c *apiClient) wait(ctx context.Context, id string, start time.Time, every time.Duration, done func(*api.Class) bool) (time.Duration, error) {
	deadline := start.Add(5 * time.Minute)
	var cl api.Class
	for time.Now().Before(deadline) {
		if _, err := c.call(ctx, http.MethodGet, "/api/v1/classes/"+id, nil, &cl); err != nil {
			return 0, err
		}
		if done(&cl) {
			return time.Since(start), nil
		}
		sleep(ctx, every)
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
	}
	return 0, fmt.Errorf("class %s not there after 5 minutes: phase %s, conditions %+v", id, cl.Status.Phase, cl.Status.Conditions)
}
