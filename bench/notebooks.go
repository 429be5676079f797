package main

// A class of notebooks: how soon every student's Jupyter answers through
// Traefik, signed in, after the Up request, next to the daemon's own limit
// for the same containers, in the same run.
//
// Homeroom: the real apiserver and controller with the built-in policy and
// its `notebook` template, a real Traefik on the host's network as make run
// has it, and the sign-in check in front of every sandbox. From the Up
// request each student, at once and on their own, follows their personal
// link through Traefik until it signs them in (Traefik routes a host only
// once its container runs), then asks GET /api of their notebook with that
// session until it answers 200: Traefik answers 404 while it has no route
// and 502 while Jupyter does not listen yet.
//
// The daemon's limit: the class network, then every container of the same
// spec (reconcile.ContainerSpec, without Traefik's labels) created and
// started at once, and each asked GET /api at its address on the network
// until it answers 200. Pairs alternate the two, as the other rows do.

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/volume"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/dockerx"
	"github.com/homeroom/homeroom/pkg/policy"
	"github.com/homeroom/homeroom/pkg/reconcile"
	"github.com/homeroom/homeroom/pkg/signin"
	"golang.org/x/sync/errgroup"
)

type nbOptions struct {
	students int // in the class
	pairs    int
	poll     time.Duration // how often each student asks while waiting
}

const (
	// nbTarget bounds the median ratio, Homeroom over the daemon's limit.
	nbTarget = 1.2
	// nbIdle is how long the class rests before its memory is read.
	nbIdle = 5 * time.Second
	// nbTimeout bounds one side's wait for every notebook.
	nbTimeout = 5 * time.Minute
)

// nbPair is one baseline and one Homeroom Up of the class.
type nbPair struct {
	limit, home time.Duration
	// limitStarted, homeStarted: the last container of each side started
	// (its start returned; Homeroom's from the daemon's StartedAt).
	limitStarted, homeStarted time.Duration
	// signedIn: the last student's link signed them in (their host was
	// routed); statusUp: the class read phase Up with every student
	// running (0: not seen before the notebooks answered and 10 s after).
	signedIn, statusUp time.Duration
	// answers counts what the students got through Traefik while waiting,
	// by status code (0: no answer).
	answers map[int]int
	// CPU seconds while Homeroom's side was timed, and the bench's own on
	// each side (its asking included).
	traefikCPU, apiserverCPU, controllerCPU float64
	homeBenchCPU, limitBenchCPU             float64
}

type nbResult struct {
	o     nbOptions
	tmpl  *policy.Template
	pairs []nbPair
	// memMiB is each notebook's memory after the last Homeroom Up, idle
	// for nbIdle: what docker stats shows (usage less inactive file pages).
	memMiB []float64
	total  time.Duration
}

// nbEnv is the system under test; stop removes all of it.
type nbEnv struct {
	d           *dockerx.Client
	tmpl        *policy.Template
	prefix      string
	sys         *system
	traefik     string // container id, once created
	traefikName string
	traefikAddr string
	traefikPID  int
	classes     []string // every class id made, raw and Homeroom's
	leaked      []string
	client      *http.Client
	once        sync.Once
}

// notebooks measures the pairs; whatever it made is gone when it returns.
func notebooks(ctx context.Context, o options, d *dockerx.Client) (*nbResult, error) {
	begin := time.Now()
	tmpl, ok := policy.Default().Template("notebook")
	if !ok {
		return nil, errors.New("the built-in policy has no notebook template")
	}
	if _, err := d.API().ImageInspect(ctx, tmpl.Image); err != nil {
		return nil, fmt.Errorf("image %s (run make notebook): %w", tmpl.Image, err)
	}
	if _, err := d.API().ImageInspect(ctx, traefikImage); err != nil {
		return nil, fmt.Errorf("image %s (run make traefik): %w", traefikImage, err)
	}
	e := &nbEnv{d: d, tmpl: tmpl, prefix: classPrefix + strings.ToLower(rand.Text()[:4]) + "-",
		client: &http.Client{
			// As many connections kept open as students ask at once; no
			// proxy from the environment.
			Transport:     &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true},
			Timeout:       10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}}
	defer e.stop()
	if err := e.start(ctx, o); err != nil {
		return nil, err
	}
	r := &nbResult{o: o.nb, tmpl: tmpl}
	for pair := 1; pair <= o.nb.pairs; pair++ {
		var p nbPair
		var err error
		if err = e.baseline(ctx, o.nb, pair, &p); err != nil {
			return nil, fmt.Errorf("pair %d, daemon limit: %w", pair, err)
		}
		settle(ctx)
		var mem []float64
		if mem, err = e.homeroom(ctx, o.nb, pair, &p, pair == o.nb.pairs); err != nil {
			return nil, fmt.Errorf("pair %d, Homeroom: %w", pair, err)
		}
		if mem != nil {
			r.memMiB = mem
		}
		r.pairs = append(r.pairs, p)
		fmt.Fprintf(os.Stderr, "notebooks: pair %d of %d done at %s: every notebook answering in %.2f s through Homeroom, %.2f s by the daemon alone: %.2f×\n",
			pair, o.nb.pairs, time.Since(begin).Round(time.Second), p.home.Seconds(), p.limit.Seconds(), ratio(p.home, p.limit))
		settle(ctx)
	}
	r.total = time.Since(begin)
	return r, nil
}

// start starts Traefik, then the apiserver (its own object store, the
// built-in policy, the sign-in check on) and the controller, which is told
// Traefik's name and address so that it checks the routing as make run has it.
func (e *nbEnv) start(ctx context.Context, o options) error {
	e.traefikName = "homeroom-" + e.prefix + "traefik"
	if err := e.startTraefik(ctx); err != nil {
		return fmt.Errorf("traefik: %w", err)
	}
	sys, err := startSystem(ctx, o, sysConfig{embedded: true, controller: true,
		traefik: e.traefikName, traefikURL: "http://" + e.traefikAddr})
	if err != nil {
		return err
	}
	e.sys = sys
	return nil
}

// startTraefik runs Traefik as make run does and waits until it answers.
func (e *nbEnv) startTraefik(ctx context.Context) error {
	t, err := runTraefik(ctx, e.d, e.traefikName)
	e.traefik = t.id // removed at the end, even if it did not start
	if err != nil {
		return err
	}
	e.traefikAddr, e.traefikPID = t.addr, t.pid
	// A host it has no route for: 404 once it listens.
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if code, _ := e.get(ctx, "nobody."+domain, "/", ""); code == http.StatusNotFound {
			return nil
		}
		sleep(ctx, 100*time.Millisecond)
	}
	return errors.New("Traefik did not answer within a minute")
}

// get sends GET path to host through Traefik with cookie, if not "", and
// returns the status (0 when there is no answer) and the answer's cookies.
func (e *nbEnv) get(ctx context.Context, host, path, cookie string) (int, []*http.Cookie) {
	return getStatus(ctx, e.client, "http://"+e.traefikAddr+path, host, cookie)
}

func getStatus(ctx context.Context, client *http.Client, url, host, cookie string) (int, []*http.Cookie) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil
	}
	if host != "" {
		req.Host = host
	}
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Cookies()
}

// baseline brings the class's containers up by the daemon alone, every one
// at once, and records in p the time until each answers GET /api at its
// address, until the last one started, and the bench's CPU meanwhile; they
// are removed before it returns.
func (e *nbEnv) baseline(ctx context.Context, o nbOptions, pair int, p *nbPair) error {
	id := fmt.Sprintf("%sraw-%d", e.prefix, pair)
	e.classes = append(e.classes, id)
	subnet, err := freeSubnet(ctx, e.d)
	if err != nil {
		return err
	}
	opts := reconcile.NetworkCreateOptions(id, e.tmpl, subnet)
	delete(opts.Labels, api.LabelManagedBy)
	opts.Labels[benchLabel] = "raw"
	c := e.d.API()
	direct := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}, Timeout: 10 * time.Second}
	defer func() {
		if err := e.removeClass(context.WithoutCancel(ctx), id); err != nil {
			fmt.Fprintln(os.Stderr, "bench: notebooks cleanup:", err)
		}
	}()

	wctx, cancel := context.WithTimeout(ctx, nbTimeout)
	defer cancel()
	var (
		mu      sync.Mutex
		started time.Duration
	)
	cpu0 := procOf(os.Getpid()).cpu
	start := time.Now()
	if _, err := c.NetworkCreate(wctx, api.NetworkName(id), opts); err != nil {
		return err
	}
	var g errgroup.Group
	for _, s := range roster(o.students) {
		g.Go(func() error {
			spec := rawContainerSpec(id, s, e.tmpl, "")
			// A docker run of the image: Traefik has no business with it.
			for k := range spec.Config.Labels {
				if strings.HasPrefix(k, "traefik.") {
					delete(spec.Config.Labels, k)
				}
			}
			resp, err := c.ContainerCreate(wctx, spec.Config, spec.HostConfig, spec.Networking, nil, spec.Name)
			if err != nil {
				return err
			}
			if err := c.ContainerStart(wctx, resp.ID, container.StartOptions{}); err != nil {
				return err
			}
			mu.Lock()
			started = max(started, time.Since(start))
			mu.Unlock()
			info, err := c.ContainerInspect(wctx, resp.ID)
			if err != nil {
				return err
			}
			ep := info.NetworkSettings.Networks[api.NetworkName(id)]
			if ep == nil || ep.IPAddress == "" {
				return fmt.Errorf("%s has no address on its network", spec.Name)
			}
			u := "http://" + net.JoinHostPort(ep.IPAddress, strconv.Itoa(e.tmpl.Port)) + "/api"
			for t := time.Now(); ; t = t.Add(o.poll) {
				if code, _ := getStatus(wctx, direct, u, "", ""); code == http.StatusOK {
					return nil
				}
				if err := wctx.Err(); err != nil {
					return fmt.Errorf("%s did not answer 200 on %s: %w", spec.Name, u, err)
				}
				sleep(wctx, time.Until(t.Add(o.poll)))
			}
		})
	}
	err = g.Wait()
	p.limit, p.limitStarted, p.limitBenchCPU = time.Since(start), started, procOf(os.Getpid()).cpu-cpu0
	return err
}

// homeroom brings a class Up through the API and times it until every
// student's notebook answers through Traefik with their session; with mem,
// it then reads each notebook's idle memory. The class is taken Down and
// deleted before it returns.
func (e *nbEnv) homeroom(ctx context.Context, o nbOptions, pair int, p *nbPair, mem bool) ([]float64, error) {
	id := fmt.Sprintf("%sclass-%d", e.prefix, pair)
	e.classes = append(e.classes, id)
	a := e.sys.api
	if _, err := a.call(ctx, http.MethodPut, "/api/v1/classes/"+id, map[string]any{
		"subject": "bench", "template": e.tmpl.Name, "students": roster(o.students), "ttlSeconds": 7200,
	}, nil); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, nbTimeout)
	defer cancel()

	tr0, api0, ctl0, b0 := procOf(e.traefikPID).cpu, e.sys.apiserver.proc().cpu, e.sys.controller.proc().cpu, procOf(os.Getpid()).cpu
	start := time.Now()
	if _, err := a.call(wctx, http.MethodPost, "/api/v1/classes/"+id+"/up", nil, nil); err != nil {
		return nil, err
	}
	// The teacher hands out the links as soon as the class is asked Up.
	var links struct {
		Items []struct{ Student, URL string }
	}
	if _, err := a.call(wctx, http.MethodPost, "/api/v1/classes/"+id+"/links", map[string]any{}, &links); err != nil {
		return nil, err
	}
	if len(links.Items) != o.students {
		return nil, fmt.Errorf("%d links issued, want %d", len(links.Items), o.students)
	}

	// The class's own status, for the table: when it said Up.
	answered := make(chan struct{})
	statusDone := make(chan struct{})
	go func() {
		defer close(statusDone)
		done := (<-chan struct{})(answered)
		var after <-chan time.Time
		for wctx.Err() == nil {
			var cl api.Class
			if _, err := a.call(wctx, http.MethodGet, "/api/v1/classes/"+id, nil, &cl); err == nil && classRunning(&cl, o.students) {
				p.statusUp = time.Since(start)
				return
			}
			select {
			case <-wctx.Done():
				return
			case <-done:
				done, after = nil, time.After(10*time.Second)
			case <-after:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()

	var (
		mu       sync.Mutex
		signedIn time.Duration
		answers  = map[int]int{}
	)
	var g errgroup.Group
	for _, l := range links.Items {
		g.Go(func() error {
			u, err := url.Parse(l.URL)
			if err != nil {
				return err
			}
			seen := map[int]int{}
			defer func() {
				mu.Lock()
				for k, v := range seen {
					answers[k] += v
				}
				mu.Unlock()
			}()
			cookie := ""
			for t := time.Now(); ; t = t.Add(o.poll) {
				if cookie == "" {
					code, cks := e.get(wctx, u.Host, u.Path, "")
					seen[code]++
					for _, ck := range cks {
						if ck.Name == signin.CookieName && ck.Value != "" && code == http.StatusFound {
							cookie = ck.Name + "=" + ck.Value
						}
					}
					if cookie != "" {
						d := time.Since(start)
						mu.Lock()
						signedIn = max(signedIn, d)
						mu.Unlock()
						continue // at once, with the session
					}
				} else {
					code, _ := e.get(wctx, u.Host, "/api", cookie)
					seen[code]++
					if code == http.StatusOK {
						return nil
					}
				}
				if err := wctx.Err(); err != nil {
					return fmt.Errorf("%s's notebook did not answer 200 through Traefik (signed in: %t): %w", l.Student, cookie != "", err)
				}
				sleep(wctx, time.Until(t.Add(o.poll)))
			}
		})
	}
	err := g.Wait()
	p.home = time.Since(start)
	p.traefikCPU, p.apiserverCPU = procOf(e.traefikPID).cpu-tr0, e.sys.apiserver.proc().cpu-api0
	p.controllerCPU, p.homeBenchCPU = e.sys.controller.proc().cpu-ctl0, procOf(os.Getpid()).cpu-b0
	close(answered)
	<-statusDone
	p.signedIn, p.answers = signedIn, answers
	if err != nil {
		return nil, err
	}
	if last, err := e.lastStarted(ctx, id); err == nil {
		p.homeStarted = last.Sub(start)
	} else {
		return nil, err
	}

	var mib []float64
	if mem {
		sleep(ctx, nbIdle)
		if mib, err = e.memory(ctx, id); err != nil {
			return nil, err
		}
	}
	// Down, which collects every home, and the class deleted.
	if _, err := a.call(ctx, http.MethodPost, "/api/v1/classes/"+id+"/down", nil, nil); err != nil {
		return nil, err
	}
	if _, err := a.wait(ctx, id, time.Now(), 200*time.Millisecond, func(cl *api.Class) bool {
		return cl.Status.Phase == api.PhaseDown && cl.Status.ObservedGeneration == cl.Generation &&
			cl.Status.Run != nil && cl.Status.Run.CompletedAt != nil
	}); err != nil {
		return nil, fmt.Errorf("Down: %w", err)
	}
	if err := a.deleteClass(ctx, id); err != nil {
		return nil, err
	}
	if left, err := e.list(ctx, id); err != nil || len(left) > 0 {
		return nil, fmt.Errorf("after Down, %d containers of %s are left (%v)", len(left), id, err)
	}
	return mib, nil
}

// lastStarted is when the last container of the class started, as the
// daemon recorded it.
func (e *nbEnv) lastStarted(ctx context.Context, classID string) (time.Time, error) {
	cs, err := e.list(ctx, classID)
	if err != nil {
		return time.Time{}, err
	}
	var last time.Time
	for _, ctr := range cs {
		info, err := e.d.API().ContainerInspect(ctx, ctr.ID)
		if err != nil {
			return time.Time{}, err
		}
		if info.State == nil {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, info.State.StartedAt)
		if err != nil {
			return time.Time{}, fmt.Errorf("%s started at %q: %w", ctr.Names, info.State.StartedAt, err)
		}
		if t.After(last) {
			last = t
		}
	}
	return last, nil
}

// classRunning is what the classes' rows time: status Up, current, with
// every student running.
func classRunning(cl *api.Class, n int) bool {
	if cl.Status.Phase != api.PhaseUp || cl.Status.ObservedGeneration != cl.Generation || len(cl.Status.Students) != n {
		return false
	}
	for _, s := range cl.Status.Students {
		if s.State != "running" {
			return false
		}
	}
	return true
}

// memory reads every container of the class once, as docker stats does:
// the cgroup's usage less its inactive file pages, in MiB.
func (e *nbEnv) memory(ctx context.Context, classID string) ([]float64, error) {
	cs, err := e.list(ctx, classID)
	if err != nil {
		return nil, err
	}
	out := make([]float64, len(cs))
	var g errgroup.Group
	for i, ctr := range cs {
		g.Go(func() error {
			resp, err := e.d.API().ContainerStatsOneShot(ctx, ctr.ID)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			var st container.StatsResponse
			if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
				return err
			}
			used := st.MemoryStats.Usage
			inactive, ok := st.MemoryStats.Stats["total_inactive_file"] // cgroup v1
			if !ok {
				inactive = st.MemoryStats.Stats["inactive_file"] // v2
			}
			if inactive < used {
				used -= inactive
			}
			out[i] = float64(used) / (1 << 20)
			return nil
		})
	}
	return out, g.Wait()
}

func (e *nbEnv) list(ctx context.Context, classID string) ([]container.Summary, error) {
	return e.d.API().ContainerList(ctx, container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", api.LabelClass+"="+classID))})
}

// removeClass removes a class's containers, volumes and network, whoever
// made them.
func (e *nbEnv) removeClass(ctx context.Context, classID string) error {
	c := e.d.API()
	cs, err := e.list(ctx, classID)
	if err != nil {
		return err
	}
	var g errgroup.Group
	// Not timed: stopped first and a few at once, as Homeroom's Down does.
	// Force-removing running notebooks all at once left the daemon a network
	// it then refused to remove ("has active endpoints") in one pair of three.
	g.SetLimit(8)
	for _, ctr := range cs {
		g.Go(func() error {
			grace := 2
			c.ContainerStop(ctx, ctr.ID, container.StopOptions{Timeout: &grace})
			err := c.ContainerRemove(ctx, ctr.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
			if err != nil && !dockerx.IsNotFound(err) {
				return err
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	vs, err := c.VolumeList(ctx, volume.ListOptions{Filters: filters.NewArgs(filters.Arg("label", api.LabelClass+"="+classID))})
	if err != nil {
		return err
	}
	for _, v := range vs.Volumes {
		if err := c.VolumeRemove(ctx, v.Name, true); err != nil && !dockerx.IsNotFound(err) {
			return err
		}
	}
	err = removeNetwork(ctx, c, api.NetworkName(classID), 20)
	if endpointsKept(err) {
		if !slices.Contains(e.leaked, api.NetworkName(classID)) {
			e.leaked = append(e.leaked, api.NetworkName(classID))
		}
		return nil
	}
	return err
}

// stop stops the controller and the apiserver, then removes whatever is
// left of the classes and Traefik.
func (e *nbEnv) stop() {
	e.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		e.client.CloseIdleConnections()
		if e.sys != nil {
			e.sys.stop() // the controller first: it would make them again
		}
		for _, id := range e.classes {
			if err := e.removeClass(ctx, id); err != nil {
				fmt.Fprintln(os.Stderr, "bench: notebooks cleanup:", err)
			}
		}
		if e.traefik != "" {
			if err := e.d.API().ContainerRemove(ctx, e.traefik, container.RemoveOptions{Force: true}); err != nil && !dockerx.IsNotFound(err) {
				fmt.Fprintln(os.Stderr, "bench: notebooks cleanup:", err)
			}
		}
		if len(e.leaked) > 0 {
			fmt.Fprintf(os.Stderr, "notebooks: networks the daemon would not remove: %s\n", strings.Join(e.leaked, ", "))
		}
	})
}

// report prints one row a pair, the median ratio, the idle memory and the
// target.
func (r *nbResult) report(w io.Writer, machine string) {
	fmt.Fprintln(w)
	fmt.Fprintln(w, machine)
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Notebooks: a class of %d of template %q (%s, port %d, %d MiB, %g CPU each), %d pairs\n\n",
		r.o.students, r.tmpl.Name, r.tmpl.Image, r.tmpl.Port, r.tmpl.MemoryMiB, r.tmpl.CPUs, len(r.pairs))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "pair\tHomeroom s\tdaemon limit s\tHomeroom/limit\tlast started s (Homeroom, limit)\tlast signed in s\tstatus Up s\tanswers through Traefik while waiting\t")
	var ratios []float64
	for i, p := range r.pairs {
		up := "-"
		if p.statusUp > 0 {
			up = fmt.Sprintf("%.2f", p.statusUp.Seconds())
		}
		fmt.Fprintf(tw, "%d\t%.2f\t%.2f\t%.2f×\t%.2f, %.2f\t%.2f\t%s\t%s\t\n", i+1, p.home.Seconds(), p.limit.Seconds(), ratio(p.home, p.limit),
			p.homeStarted.Seconds(), p.limitStarted.Seconds(), p.signedIn.Seconds(), up, answerCounts(p.answers))
		ratios = append(ratios, ratio(p.home, p.limit))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "CPU s while timed\tpair\tTraefik\tapiserver\tcontroller\tbench, Homeroom\tbench, limit\t")
	for i, p := range r.pairs {
		fmt.Fprintf(tw, "\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t\n", i+1, p.traefikCPU, p.apiserverCPU, p.controllerCPU, p.homeBenchCPU, p.limitBenchCPU)
	}
	tw.Flush()
	s := spreadOf(ratios)
	m := spreadOf(r.memMiB)
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Homeroom/limit: median %s over %d pairs\n", s, len(ratios))
	if len(r.memMiB) > 0 {
		fmt.Fprintf(w, "Idle memory a notebook (docker stats, %s after the last Up, %d notebooks): median %.1f MiB, max %.1f MiB (min %.1f) of %d MiB\n",
			nbIdle, len(r.memMiB), m.median, m.max, m.min, r.tmpl.MemoryMiB)
	}
	fmt.Fprintf(w, "The notebooks part took %s.\n", r.total.Round(time.Second))
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Homeroom: from POST …/up to every student's GET /api answering 200 through Traefik with their\n")
	fmt.Fprintf(w, "session; each student follows their link (issued right after the Up request) until it signs\n")
	fmt.Fprintf(w, "them in, then asks, every %s. Daemon limit: the class network, then every container of the\n", r.o.poll)
	fmt.Fprintf(w, "same spec created and started at once, each asked GET /api at its address every %s.\n", r.o.poll)
	fmt.Fprintln(w, "Last started: the last container's start. Last signed in: the last student's link worked (Traefik")
	fmt.Fprintln(w, "routed the host). Status Up: the class read Up with every student running (the Up rows' end point).")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Targets:")
	verdict := "MISS"
	if s.median <= nbTarget {
		verdict = "PASS"
	}
	fmt.Fprintf(w, "  %s  every notebook of %d answering through Traefik, signed in, within %.2f× the daemon's limit: %s%s\n",
		verdict, r.o.students, nbTarget, s, s.note(nbTarget))
}

// answerCounts is "404: n, 502: m, …" in the order of the codes.
func answerCounts(m map[int]int) string {
	codes := make([]int, 0, len(m))
	for c := range m {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	var parts []string
	for _, c := range codes {
		name := strconv.Itoa(c)
		if c == 0 {
			name = "none"
		}
		parts = append(parts, fmt.Sprintf("%s: %d", name, m[c]))
	}
	return strings.Join(parts, ", ")
}
