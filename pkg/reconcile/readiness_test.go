package reconcile_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/pkg/stdcopy"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/policy"
	"github.com/homeroom/homeroom/pkg/reconcile"
	"github.com/homeroom/homeroom/pkg/signin"
	"go.uber.org/zap/zaptest"
)

// probes stands in for the sandboxes' answers to their readiness check and
// for Traefik's, by URL and Host.
type probes struct {
	mu      sync.Mutex
	answers map[string]int // URL or Host → status; absent: connection refused
	asked   map[string]int
	cookies map[string]string // Host → the Cookie header last sent with it
}

func (p *probes) probe(_ context.Context, url, host, cookie string) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	key := url
	if host != "" {
		key = host
	}
	p.asked[key]++
	if host != "" {
		p.cookies[host] = cookie
	}
	if code, ok := p.answers[key]; ok {
		return code, nil
	}
	return 0, errors.New("connection refused")
}

func (p *probes) set(key string, code int) {
	p.mu.Lock()
	p.answers[key] = code
	p.mu.Unlock()
}

// answer makes a student's sandbox answer its check, and Traefik route it.
func (p *probes) answer(student string) {
	p.set(probeURL(student), 200)
	p.set(api.Host(classID, student, domain), 401)
}

func (p *probes) count(student string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.asked[probeURL(student)]
}

func probeURL(student string) string { return "http://ip-of-" + cname(student) + ":8888/api" }

// readyEnv is a class of the notebook-like template with a readiness check
// of timeout seconds.
func readyEnv(t *testing.T, timeout int) (*env, *probes) {
	return readyEnvWith(t, timeout, nil)
}

// readyEnvWith is readyEnv with the controller given probeKey, as on a
// swarm.
func readyEnvWith(t *testing.T, timeout int, probeKey []byte) (*env, *probes) {
	e := newEnv(t)
	pol, err := policy.Parse([]byte(`templates:
  - {name: sandbox, image: homeroom/notebook:x, port: 8888, collectPaths: [/home/jovyan], memoryMiB: 512, cpus: 1, pids: 128, readOnlyRootFS: true,
     readiness: {path: /api, timeoutSeconds: ` + strconv.Itoa(timeout) + `}}
`))
	if err != nil {
		t.Fatal(err)
	}
	p := &probes{answers: map[string]int{}, asked: map[string]int{}, cookies: map[string]string{}}
	e.rec = reconcile.New(e.store, e.docker, e.art, pol, reconcile.Options{
		Domain: domain, TraefikContainer: traefikName, CollectTimeout: 10 * time.Second, Now: e.now, Probe: p.probe, RouterURL: routerURL,
		ProbeKey: probeKey,
	}, zaptest.NewLogger(t))
	return e, p
}

const routerURL = "http://traefik.test:80"

// A sandbox that answers counts only once Traefik routes its student's
// host: Traefik applies a new container's route a moment after its start,
// and until then the student would get Traefik's 404.
func TestSandboxCountsOnceTraefikRoutesIt(t *testing.T) {
	e, p := readyEnv(t, 120)
	e.putClass(api.PhaseUp, "alice")
	e.mustConverge()
	p.answer("alice")
	host := api.Host(classID, "alice", domain)
	p.set(host, 404)
	e.mustConverge()
	if c := e.class(); c.Status.Phase == api.PhaseUp || studentState(c, "alice").State != api.StateStarting {
		t.Fatalf("with Traefik's 404: phase %s, alice %+v", c.Status.Phase, studentState(c, "alice"))
	}
	p.set(host, 502)
	e.mustConverge()
	if c := e.class(); c.Status.Phase == api.PhaseUp {
		t.Fatal("Up while Traefik answers 502")
	}
	p.set(host, 401) // the sign-in check's answer to a request without a session
	e.mustConverge()
	if c := e.class(); c.Status.Phase != api.PhaseUp || studentState(c, "alice").State != "running" {
		t.Fatalf("with the host routed: phase %s, alice %+v", c.Status.Phase, studentState(c, "alice"))
	}
	p.mu.Lock()
	asked := p.asked[host]
	p.mu.Unlock()
	if asked == 0 {
		t.Error("Traefik was never asked")
	}
}

func studentState(c *api.Class, id string) api.StudentStatus {
	for _, s := range c.Status.Students {
		if s.ID == id {
			return s
		}
	}
	return api.StudentStatus{}
}

// A class whose template has a readiness check is Up only once every
// sandbox answers it; until then the students that have not are
// "starting", the class says how many are ready, and it is passed again soon.
func TestClassIsUpOnlyWhenEverySandboxAnswers(t *testing.T) {
	e, p := readyEnv(t, 120)
	e.putClass(api.PhaseUp, "alice", "bob")
	res := e.mustConverge()
	c := e.class()
	if c.Status.Phase != api.PhaseProvisioning {
		t.Fatalf("phase %s with no sandbox answering, want Provisioning", c.Status.Phase)
	}
	if s := studentState(c, "alice"); s.State != api.StateStarting {
		t.Errorf("alice is %q before her sandbox answers, want %q", s.State, api.StateStarting)
	}
	if rd := cond(c, api.ConditionReady); rd.Status != "False" || rd.Message != "0 of 2 students ready" {
		t.Errorf("Ready = %+v", rd)
	}
	if res.RequeueAfter <= 0 || res.RequeueAfter > time.Second {
		t.Errorf("a class with sandboxes starting is passed again in %v, want within a second", res.RequeueAfter)
	}

	p.answer("alice")
	e.mustConverge()
	c = e.class()
	if c.Status.Phase != api.PhaseProvisioning || studentState(c, "alice").State != "running" || studentState(c, "bob").State != api.StateStarting {
		t.Fatalf("with alice answering: phase %s, students %+v", c.Status.Phase, c.Status.Students)
	}
	if rd := cond(c, api.ConditionReady); rd.Message != "1 of 2 students ready" {
		t.Errorf("Ready = %+v", rd)
	}

	p.answer("bob")
	res = e.mustConverge()
	c = e.class()
	if c.Status.Phase != api.PhaseUp {
		t.Fatalf("phase %s with both answering, want Up", c.Status.Phase)
	}
	if rd := cond(c, api.ConditionReady); rd.Status != "True" || rd.Message != "2 of 2 students ready" {
		t.Errorf("Ready = %+v", rd)
	}
	if res.RequeueAfter > 0 && res.RequeueAfter < time.Minute {
		t.Errorf("a ready class is passed again in %v", res.RequeueAfter)
	}

	// Once answered, a sandbox is not asked again, pass after pass.
	asked := p.count("alice")
	e.mustConverge()
	if p.count("alice") != asked {
		t.Errorf("alice's ready sandbox was checked again")
	}

	// One that stopped and was started again is checked again: it is
	// starting until it answers.
	p.mu.Lock()
	delete(p.answers, probeURL("bob"))
	p.mu.Unlock()
	e.docker.mu.Lock()
	e.docker.lookup(cname("bob")).state = "exited"
	e.docker.mu.Unlock()
	e.mustConverge() // started again at once: it ran long enough before
	c = e.class()
	if s := studentState(c, "bob"); s.State != api.StateStarting || c.Status.Phase == api.PhaseUp {
		t.Errorf("bob's restarted sandbox: %q, class %s; want starting, not Up", s.State, c.Status.Phase)
	}
}

// A sandbox that never answers is reported, past the check's timeout, with
// what the check got and its last log lines, and is still checked: it is
// never counted as running.
func TestSandboxThatNeverAnswersIsReportedWithItsLog(t *testing.T) {
	e, p := readyEnv(t, 30)
	e.putClass(api.PhaseUp, "alice", "bob")
	e.mustConverge()
	p.answer("alice")
	e.docker.mu.Lock()
	bob := e.docker.lookup(cname("bob"))
	for i := range 30 {
		bob.logs = append(bob.logs, logFrame{stdcopy.Stdout, "line " + strconv.Itoa(i) + "\n"})
	}
	bob.logs = append(bob.logs, logFrame{stdcopy.Stderr, "ModuleNotFoundError: No module named 'notebook'\n"})
	e.docker.mu.Unlock()

	e.mustConverge()
	if s := studentState(e.class(), "bob"); s.State != api.StateStarting || s.Message != "" {
		t.Fatalf("bob before the timeout: %+v", s)
	}
	e.advance(31 * time.Second)
	res := e.mustConverge()
	c := e.class()
	s := studentState(c, "bob")
	if s.State != api.StateUnready {
		t.Fatalf("bob past the timeout is %q, want %q", s.State, api.StateUnready)
	}
	for _, want := range []string{"GET /api", "within 30 s", "connection refused", "No module named 'notebook'", "line 29"} {
		if !strings.Contains(s.Message, want) {
			t.Errorf("bob's message lacks %q:\n%s", want, s.Message)
		}
	}
	if strings.Contains(s.Message, "line 5\n") {
		t.Errorf("bob's message has more than the last log lines:\n%s", s.Message)
	}
	if c.Status.Phase == api.PhaseUp {
		t.Error("the class is Up with a sandbox that never answered")
	}
	if rd := cond(c, api.ConditionReady); rd.Reason != "StudentsNotReady" || !strings.Contains(rd.Message, "1 of 2 students ready") || !strings.Contains(rd.Message, "bob") {
		t.Errorf("Ready = %+v", rd)
	}
	if res.RequeueAfter <= 0 {
		t.Error("an unready sandbox is not checked again")
	}

	// Its log is read once, not at every pass.
	e.docker.resetCalls()
	e.mustConverge()
	if strings.Contains(strings.Join(e.docker.calls, " "), "LogTail") {
		t.Error("the log of an unready sandbox was read again")
	}

	// Late is better than never: it counts once it answers.
	p.answer("bob")
	e.mustConverge()
	if c := e.class(); c.Status.Phase != api.PhaseUp || studentState(c, "bob").Message != "" {
		t.Errorf("after bob answered: phase %s, bob %+v", c.Status.Phase, studentState(c, "bob"))
	}
}

// A template without a readiness check counts a running container as
// running, as before: no sandbox is asked anything.
func TestNoReadinessCheckNoProbe(t *testing.T) {
	e := newEnv(t)
	e.putClass(api.PhaseUp, "alice")
	res := e.mustConverge()
	if c := e.class(); c.Status.Phase != api.PhaseUp || studentState(c, "alice").State != "running" {
		t.Errorf("phase %s, alice %+v", c.Status.Phase, studentState(c, "alice"))
	}
	if res.RequeueAfter > 0 && res.RequeueAfter < time.Minute {
		t.Errorf("passed again in %v", res.RequeueAfter)
	}
}

// A sandbox is told its class, its student and the URL students reach it at.
func TestSandboxKnowsWhoAndWhereItIs(t *testing.T) {
	e := newEnv(t)
	e.putClass(api.PhaseUp, "alice")
	e.mustConverge()
	specs := e.docker.createdSpecs()
	if len(specs) != 1 {
		t.Fatalf("%d sandboxes made", len(specs))
	}
	env := specs[0].Config.Env
	for _, want := range []string{"HOMEROOM_CLASS=" + classID, "HOMEROOM_STUDENT=alice", "HOMEROOM_BASE_URL=" + api.Endpoint(classID, "alice", domain)} {
		if !slices.Contains(env, want) {
			t.Errorf("env %q lacks %q", env, want)
		}
	}
}

// Where the controller cannot reach the sandboxes (a swarm), the check goes
// through Traefik only, with a probe token for that student's sandbox that
// the sign-in check lets through: the sandbox's own answer there decides,
// and its address is never asked.
func TestSandboxCheckedThroughTraefikWithAProbeToken(t *testing.T) {
	key := []byte(strings.Repeat("k", signin.KeyBytes))
	e, p := readyEnvWith(t, 120, key)
	e.putClass(api.PhaseUp, "alice", "bob")
	e.mustConverge()
	for st, code := range map[string]int{"alice": 200, "bob": 404} {
		p.set(probeURL(st), 200) // never asked
		p.set(api.Host(classID, st, domain), code)
	}
	e.mustConverge()
	c := e.class()
	if a, b := studentState(c, "alice"), studentState(c, "bob"); a.State != "running" || b.State != api.StateStarting {
		t.Errorf("alice answering through Traefik: %+v; bob with Traefik's 404: %+v", a, b)
	}
	if c.Status.Phase == api.PhaseUp {
		t.Error("Up while bob's host answers 404")
	}
	if n := p.count("alice") + p.count("bob"); n != 0 {
		t.Errorf("the sandboxes' addresses were asked %d times", n)
	}
	for _, st := range []string{"alice", "bob"} {
		p.mu.Lock()
		ck := p.cookies[api.Host(classID, st, domain)]
		p.mu.Unlock()
		name, token, _ := strings.Cut(ck, "=")
		if name != signin.ProbeCookieName || !signin.ValidProbe(key, classID, st, token, time.Now()) {
			t.Errorf("%s's check carried %q, not a probe token for %s's sandbox", st, ck, st)
		}
	}
	p.set(api.Host(classID, "bob", domain), 200)
	e.mustConverge()
	if c := e.class(); c.Status.Phase != api.PhaseUp {
		t.Errorf("both answering through Traefik: phase %s", c.Status.Phase)
	}
}
