package main

// The sign-in check's cost: requests to a student's host through a real
// Traefik to a real sandbox, once with the check in front (Traefik's
// forwardAuth asks the apiserver about every request) and once without, at
// a fixed rate, alternated in pairs so that whatever else the machine does
// falls on both.
//
// The apiserver runs alone (no controller): the class is Up in the store,
// which is all the check looks at, and its two containers are made here
// from Homeroom's own spec builder on a class network made the same way.
// Student "checked" has the sign-in middleware, "open" none; the bench signs
// in to "checked" by following its link through Traefik, as a browser would.

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/config"
	"github.com/homeroom/homeroom/pkg/dockerx"
	"github.com/homeroom/homeroom/pkg/policy"
	"github.com/homeroom/homeroom/pkg/reconcile"
	"github.com/homeroom/homeroom/pkg/signin"
	"github.com/homeroom/homeroom/pkg/store"
)

type faOptions struct {
	rate     int           // requests a second
	duration time.Duration // each case's total, split over the pairs
	pairs    int
}

const (
	faClass   = classPrefix + "forwardauth"
	faChecked = "checked" // behind the sign-in check
	faOpen    = "open"    // no middleware
	// traefikImage is built by scripts/ensure-traefik.sh (make traefik).
	traefikImage = "homeroom/traefik:v3.6.12"
	traefikName  = "homeroom-bench-traefik"
	// faWarmup is sent to each case, unmeasured, before the first pair:
	// connections open and caches fill.
	faWarmup = 3 * time.Second
	// faTarget bounds the median p50 ratio, with the check over without.
	faTarget = 1.25
)

// slice is one case measured once: the time each request took, from the
// moment it was due until it was answered or failed, and the failures.
type slice struct {
	lat      []time.Duration // sorted
	errors   int
	firstErr string
	// checks and checkSeconds come from the apiserver's
	// homeroom_forwardauth_duration_seconds; the CPU is in seconds.
	checks, checkSeconds     float64
	apiserverCPU, traefikCPU float64
}

func (s slice) pct(p float64) time.Duration {
	if len(s.lat) == 0 {
		return 0
	}
	i := int(float64(len(s.lat))*p+0.999999) - 1
	return s.lat[min(max(i, 0), len(s.lat)-1)]
}

// merge puts slices of one case together.
func merge(ss []slice) slice {
	var m slice
	for _, s := range ss {
		m.lat = append(m.lat, s.lat...)
		m.errors += s.errors
		if m.firstErr == "" {
			m.firstErr = s.firstErr
		}
		m.checks += s.checks
		m.checkSeconds += s.checkSeconds
		m.apiserverCPU += s.apiserverCPU
		m.traefikCPU += s.traefikCPU
	}
	slices.Sort(m.lat)
	return m
}

type faResult struct {
	o             faOptions
	with, without []slice // one of each a pair
}

// faEnv is what the measurement runs on; stop removes all of it.
type faEnv struct {
	d           *dockerx.Client
	dir         string
	keep        bool
	apiserver   *process
	apiURL      string
	api         *apiClient
	network     string
	containers  []string
	traefik     string // container id, once created
	traefikPID  int
	traefikAddr string
	once        sync.Once
}

// forwardAuthCost sets everything up, signs in, warms both cases up, then
// measures them in pairs; whatever it made is gone when it returns.
func forwardAuthCost(ctx context.Context, o options, d *dockerx.Client, tmpl *policy.Template) (*faResult, error) {
	if _, err := d.API().ImageInspect(ctx, traefikImage); err != nil {
		return nil, fmt.Errorf("image %s (run make traefik): %w", traefikImage, err)
	}
	e, err := startFAEnv(ctx, o, d, tmpl)
	if err != nil {
		return nil, err
	}
	defer e.stop()
	cookie, err := e.signIn(ctx)
	if err != nil {
		return nil, err
	}

	client := &http.Client{
		// Its own transport: no proxy from the environment, and as many
		// connections kept open as the requests in flight need.
		Transport:     &http.Transport{MaxIdleConnsPerHost: 1024, DisableCompression: true},
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer client.CloseIdleConnections()
	with := func(dur time.Duration) slice {
		return e.load(ctx, client, api.Host(faClass, faChecked, domain), cookie, o.fa.rate, dur)
	}
	without := func(dur time.Duration) slice {
		return e.load(ctx, client, api.Host(faClass, faOpen, domain), "", o.fa.rate, dur)
	}
	with(faWarmup)
	without(faWarmup)
	r := &faResult{o: o.fa}
	each := o.fa.duration / time.Duration(o.fa.pairs)
	for i := 0; i < o.fa.pairs; i++ {
		r.with = append(r.with, with(each))
		r.without = append(r.without, without(each))
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		fmt.Fprintf(os.Stderr, "forwardauth: pair %d of %d: p50 %s with the check, %s without\n", i+1, o.fa.pairs,
			ms(r.with[i].pct(.5)), ms(r.without[i].pct(.5)))
	}
	return r, nil
}

// startFAEnv starts the apiserver, brings the class Up in its store, and
// makes the class network, both sandboxes and Traefik.
func startFAEnv(ctx context.Context, o options, d *dockerx.Client, tmpl *policy.Template) (*faEnv, error) {
	dir, err := os.MkdirTemp("", "homeroom-bench-fa-")
	if err != nil {
		return nil, err
	}
	e := &faEnv{d: d, dir: dir, keep: o.keep}
	ok := false
	defer func() {
		if !ok {
			e.stop()
		}
	}()

	cfg := config.Config{Listen: freeAddr(), DataDir: filepath.Join(dir, "data"), Database: "homeroom"}
	token := rand.Text()
	env := []string{
		"HOMEROOM_DATA_DIR=" + cfg.DataDir,
		"HOMEROOM_LISTEN=" + cfg.Listen,
		"HOMEROOM_EMBEDDED_S3_ADDR=" + freeAddr(),
		"HOMEROOM_MONGO_URI=", "HOMEROOM_MONGO_DATABASE=" + cfg.Database, "HOMEROOM_S3_ENDPOINT=",
		"HOMEROOM_ADMIN_TOKEN=" + token, "HOMEROOM_POLICY=", "HOMEROOM_DOMAIN=" + domain,
	}
	if e.apiserver, err = startProcess(dir, "apiserver", filepath.Join(o.bin, "apiserver"), env); err != nil {
		return nil, err
	}
	e.apiURL = "http://" + cfg.Listen
	if err := waitHTTP(ctx, e.apiURL+"/readyz", time.Minute); err != nil {
		return nil, fmt.Errorf("apiserver: %w\n%s", err, e.apiserver.tail())
	}
	e.api = &apiClient{base: e.apiURL, token: token, http: &http.Client{Timeout: 30 * time.Second}}

	// The check's address holds a secret of the installation's, kept in the
	// store: the controller reads it the same way.
	uri, err := cfg.StoreURI()
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, uri, cfg.Database, nil)
	if err != nil {
		return nil, err
	}
	sec, err := st.SignInSecrets(ctx)
	st.Close(context.WithoutCancel(ctx))
	if err != nil {
		return nil, err
	}
	check := cfg.ForwardAuthAddress(sec.ForwardAuth)

	if err := e.api.putClass(ctx, faClass, []string{faChecked, faOpen}); err != nil {
		return nil, err
	}
	if _, err := e.api.call(ctx, http.MethodPost, "/api/v1/classes/"+faClass+"/up", nil, nil); err != nil {
		return nil, err
	}

	c := d.API()
	subnet, err := freeSubnet(ctx, d)
	if err != nil {
		return nil, err
	}
	opts := reconcile.NetworkCreateOptions(faClass, tmpl, subnet)
	delete(opts.Labels, api.LabelManagedBy)
	opts.Labels[benchLabel] = "forwardauth"
	if _, err := c.NetworkCreate(ctx, api.NetworkName(faClass), opts); err != nil {
		return nil, err
	}
	e.network = api.NetworkName(faClass)
	for student, fa := range map[string]string{faChecked: check, faOpen: ""} {
		s := rawContainerSpec(faClass, student, tmpl, fa)
		resp, err := c.ContainerCreate(ctx, s.Config, s.HostConfig, s.Networking, nil, s.Name)
		if err != nil {
			return nil, err
		}
		e.containers = append(e.containers, resp.ID)
		if err := c.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
			return nil, err
		}
	}
	if err := e.startTraefik(ctx); err != nil {
		return nil, err
	}
	ok = true
	return e, nil
}

// startTraefik runs Traefik as Homeroom deploys it (scripts/run.sh), then
// waits until it routes both hosts.
func (e *faEnv) startTraefik(ctx context.Context) error {
	t, err := runTraefik(ctx, e.d, traefikName)
	e.traefik = t.id // removed at the end, even if it did not start
	if err != nil {
		return err
	}
	e.traefikAddr, e.traefikPID = t.addr, t.pid
	// No session yet: the check answers the sign-in page's 401.
	for host, want := range map[string]int{api.Host(faClass, faOpen, domain): http.StatusOK,
		api.Host(faClass, faChecked, domain): http.StatusUnauthorized} {
		if err := e.waitRoute(ctx, host, want); err != nil {
			return err
		}
	}
	return nil
}

// benchTraefik is a Traefik container the bench started.
type benchTraefik struct {
	addr, id string
	pid      int
}

// runTraefik starts Traefik as make run does (scripts/run.sh): the Docker
// provider, on the host's network, here on a loopback port of its own.
func runTraefik(ctx context.Context, d *dockerx.Client, name string) (benchTraefik, error) {
	t := benchTraefik{addr: freeAddr()}
	c := d.API()
	resp, err := c.ContainerCreate(ctx, &container.Config{
		Image: traefikImage,
		Cmd: []string{
			"--providers.docker=true",
			"--providers.docker.exposedbydefault=false",
			"--entrypoints.web.address=" + t.addr,
			"--log.level=WARN",
		},
		Labels: map[string]string{benchLabel: "traefik"},
	}, &container.HostConfig{
		NetworkMode: "host",
		Binds:       []string{"/var/run/docker.sock:/var/run/docker.sock:ro"},
	}, nil, nil, name)
	if err != nil {
		return t, err
	}
	t.id = resp.ID
	if err := c.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
		return t, err
	}
	info, err := c.ContainerInspect(ctx, resp.ID)
	if err != nil {
		return t, err
	}
	if info.State != nil {
		t.pid = info.State.Pid
	}
	return t, nil
}

func (e *faEnv) waitRoute(ctx context.Context, host string, want int) error {
	deadline := time.Now().Add(time.Minute)
	last := ""
	for time.Now().Before(deadline) && ctx.Err() == nil {
		resp, err := e.get(ctx, http.DefaultClient, host, "/", "")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == want {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		sleep(ctx, 200*time.Millisecond)
	}
	return fmt.Errorf("%s through Traefik never answered %d (last: %s)", host, want, last)
}

// get sends GET path to host through Traefik, with cookie if not "".
func (e *faEnv) get(ctx context.Context, client *http.Client, host, path, cookie string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+e.traefikAddr+path, nil)
	if err != nil {
		return nil, err
	}
	req.Host = host
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	return client.Do(req)
}

// signIn issues the checked student's link, follows it through Traefik
// without following the redirect, and returns the session cookie it set,
// checked to let a request through.
func (e *faEnv) signIn(ctx context.Context) (string, error) {
	var links struct {
		Items []struct{ URL string }
	}
	if _, err := e.api.call(ctx, http.MethodPost, "/api/v1/classes/"+faClass+"/links",
		map[string]any{"students": []string{faChecked}}, &links); err != nil {
		return "", err
	}
	if len(links.Items) != 1 {
		return "", fmt.Errorf("%d links issued, want 1", len(links.Items))
	}
	u, err := url.Parse(links.Items[0].URL)
	if err != nil {
		return "", err
	}
	noRedirect := &http.Client{Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := e.get(ctx, noRedirect, u.Host, u.Path, "")
	if err != nil {
		return "", err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	cookie := ""
	for _, ck := range resp.Cookies() {
		if ck.Name == signin.CookieName && ck.Value != "" {
			cookie = ck.Name + "=" + ck.Value
		}
	}
	if resp.StatusCode != http.StatusFound || cookie == "" {
		return "", fmt.Errorf("following the link: %s, session cookie %t", resp.Status, cookie != "")
	}
	resp, err = e.get(ctx, noRedirect, u.Host, "/", cookie)
	if err != nil {
		return "", err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("signed in, GET / answers %s", resp.Status)
	}
	return cookie, nil
}

// load sends GET / to host through Traefik, rate times a second for d, on a
// schedule fixed in advance (open loop): each request goes out when due,
// whether or not earlier ones were answered, and its latency counts from
// when it was due, so a stall shows in the latencies rather than slowing
// the sending down (coordinated omission). Anything but a 200 is an error.
func (e *faEnv) load(ctx context.Context, client *http.Client, host, cookie string, rate int, d time.Duration) slice {
	n := int(float64(rate) * d.Seconds())
	interval := time.Second / time.Duration(rate)
	lat := make([]time.Duration, n)
	var (
		mu     sync.Mutex
		errs   int
		first  string
		wg     sync.WaitGroup
		checks = e.scrapeChecks(ctx)
		api0   = e.apiserver.proc().cpu
		tr0    = procOf(e.traefikPID).cpu
	)
	start := time.Now()
	sent := 0
	for ; sent < n && ctx.Err() == nil; sent++ {
		due := start.Add(time.Duration(sent) * interval)
		time.Sleep(time.Until(due))
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			resp, err := e.get(ctx, client, host, "/", cookie)
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode != http.StatusOK {
					err = errors.New(resp.Status)
				}
			}
			lat[i] = time.Since(due)
			if err != nil {
				mu.Lock()
				if errs++; first == "" {
					first = err.Error()
				}
				mu.Unlock()
			}
		}(sent)
	}
	wg.Wait()
	s := slice{lat: lat[:sent], errors: errs, firstErr: first}
	slices.Sort(s.lat)
	after := e.scrapeChecks(ctx)
	s.checks, s.checkSeconds = after[1]-checks[1], after[0]-checks[0]
	s.apiserverCPU = e.apiserver.proc().cpu - api0
	s.traefikCPU = procOf(e.traefikPID).cpu - tr0
	return s
}

// scrapeChecks reads the sum and the count of the apiserver's
// homeroom_forwardauth_duration_seconds.
func (e *faEnv) scrapeChecks(ctx context.Context) [2]float64 {
	var out [2]float64
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.apiURL+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) != 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch f[0] {
		case "homeroom_forwardauth_duration_seconds_sum":
			out[0] = v
		case "homeroom_forwardauth_duration_seconds_count":
			out[1] = v
		}
	}
	return out
}

// stop removes the containers, Traefik and the network, and stops the
// apiserver; whatever was made, however far the start got.
func (e *faEnv) stop() {
	e.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		c := e.d.API()
		for _, id := range append(e.containers, e.traefik) {
			if id == "" {
				continue
			}
			if err := c.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !dockerx.IsNotFound(err) {
				fmt.Fprintln(os.Stderr, "bench: forwardauth cleanup:", err)
			}
		}
		if e.network != "" {
			if err := removeNetwork(ctx, c, e.network, 10); err != nil {
				fmt.Fprintln(os.Stderr, "bench: forwardauth cleanup:", err)
			}
		}
		if e.apiserver != nil {
			e.apiserver.stop()
		}
		if e.keep {
			fmt.Fprintln(os.Stderr, "forwardauth: apiserver log and data kept in", e.dir)
		} else {
			os.RemoveAll(e.dir)
		}
	})
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", d.Seconds()*1000) }

func durRatio(a, b time.Duration) float64 {
	if b <= 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// report prints one row a pair, one for all pairs together, the median p50
// ratio and the targets.
func (r *faResult) report(w io.Writer, machine string) {
	fmt.Fprintln(w)
	fmt.Fprintln(w, machine)
	fmt.Fprintln(w)
	each := r.o.duration / time.Duration(r.o.pairs)
	fmt.Fprintf(w, "forwardAuth: GET / of a sandbox through Traefik, %d requests/s open loop, %d pairs of %s with the sign-in check then %s without\n\n",
		r.o.rate, r.o.pairs, each, each)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "pair\twith p50 ms\twith p99 ms\twithout p50 ms\twithout p99 ms\tp50 with/without\tp99 with/without\terrors with\terrors without\t")
	row := func(name string, a, b slice) {
		fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f×\t%.2f×\t%d of %d\t%d of %d\t\n", name,
			a.pct(.5).Seconds()*1000, a.pct(.99).Seconds()*1000, b.pct(.5).Seconds()*1000, b.pct(.99).Seconds()*1000,
			durRatio(a.pct(.5), b.pct(.5)), durRatio(a.pct(.99), b.pct(.99)), a.errors, len(a.lat), b.errors, len(b.lat))
	}
	var ratios []float64
	for i := range r.with {
		row(strconv.Itoa(i+1), r.with[i], r.without[i])
		ratios = append(ratios, durRatio(r.with[i].pct(.5), r.without[i].pct(.5)))
	}
	with, without := merge(r.with), merge(r.without)
	row("all", with, without)
	tw.Flush()
	slices.Sort(ratios)
	median := ratios[len(ratios)/2]
	if len(ratios)%2 == 0 {
		median = (ratios[len(ratios)/2-1] + ratios[len(ratios)/2]) / 2
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "p50 with/without: median %.2f× over %d pairs (%.2f× to %.2f×)\n", median, len(ratios), ratios[0], ratios[len(ratios)-1])
	if with.checks > 0 {
		// The apiserver's CPU while only the sandbox without the check is
		// asked is its own background work (the embedded store among it).
		idle := without.apiserverCPU * float64(len(with.lat)) / float64(max(len(without.lat), 1))
		fmt.Fprintf(w, "the check in the apiserver (homeroom_forwardauth_duration_seconds): mean %.3f ms over %.0f checks;\n", 1000*with.checkSeconds/with.checks, with.checks)
		fmt.Fprintf(w, "  apiserver %.3f CPU ms a check, after %.3f CPU ms/s of its own background work (measured without)\n",
			1000*(with.apiserverCPU-idle)/with.checks, 1000*without.apiserverCPU/(float64(len(without.lat))/float64(r.o.rate)))
	}
	if n := len(with.lat); n > 0 && len(without.lat) > 0 && with.traefikCPU > 0 {
		fmt.Fprintf(w, "Traefik: %.3f CPU ms a request with the check, %.3f without\n",
			1000*with.traefikCPU/float64(n), 1000*without.traefikCPU/float64(len(without.lat)))
	}
	for _, c := range []struct {
		name string
		s    slice
	}{{"with", with}, {"without", without}} {
		if c.s.firstErr != "" {
			fmt.Fprintf(w, "first error %s the check: %s\n", c.name, c.s.firstErr)
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Latency: from when a request was due (the schedule is fixed in advance) to its whole answer.")
	fmt.Fprintln(w, "With: the sandbox's router has Homeroom's forwardAuth middleware and the request carries a")
	fmt.Fprintln(w, "session cookie got by following a sign-in link; without: the same sandbox spec, no middleware.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Targets:")
	check := func(ok bool, format string, args ...any) {
		verdict := "MISS"
		if ok {
			verdict = "PASS"
		}
		fmt.Fprintf(w, "  %s  %s\n", verdict, fmt.Sprintf(format, args...))
	}
	check(median <= faTarget, "p50 with the sign-in check within %.2f× without (median over pairs): %.2f×", faTarget, median)
	errs := with.errors + without.errors
	check(errs == 0, "no errors through Traefik: %d of %d requests", errs, len(with.lat)+len(without.lat))
}
