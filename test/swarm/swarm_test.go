// Package swarm tests Homeroom's Swarm runtime on a real multi-node swarm
// made on this machine (scripts/swarm-nodes.sh): three Docker daemons, each
// in its own network namespace, joined to one swarm. The apiserver and the
// controller run as `make run` runs them, with HOMEROOM_RUNTIME=swarm and the
// manager's socket as DOCKER_HOST.
package swarm

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/volume"
	"github.com/homeroom/homeroom/internal/failpoint"
	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/artifacts"
	"github.com/homeroom/homeroom/pkg/dockerx"
	"github.com/homeroom/homeroom/pkg/signin"
	hrswarm "github.com/homeroom/homeroom/pkg/swarm"
)

type system struct {
	*testenv.System
	t       *testing.T
	sw      *testenv.Swarm
	store   *artifacts.Store
	id      string
	tr      *testenv.SwarmTraefik // nil unless routed
	stopped map[int]bool          // nodes stopped by the test
}

func start(t *testing.T, id string) *system {
	return startWith(t, id, false)
}

// startWith starts the system on a swarm of three, with a Traefik on the
// manager when routed, and env added to the system's.
func startWith(t *testing.T, id string, routed bool, env ...string) *system {
	var sw *testenv.Swarm
	router := "hr-swarm-no-router"
	if routed {
		sw = testenv.StartSwarm(t, 3, testenv.TraefikImage)
	} else {
		sw = testenv.StartSwarm(t, 3)
	}
	var tr *testenv.SwarmTraefik
	if routed {
		tr = sw.StartTraefik(t)
		router = tr.Name
		// Where the controller checks readiness, through Traefik.
		env = append(env, "HOMEROOM_TRAEFIK_URL=http://"+tr.Addr)
	}
	// The collection jobs upload from the nodes, and Traefik on the
	// manager asks the apiserver's sign-in check: both listen where the
	// nodes reach the machine.
	s3 := testenv.StartS3On(t, sw.HostAddr)
	cfg := s3.Config()
	sys := testenv.StartSystem(t, router, append([]string{
		"DOCKER_HOST=" + sw.ManagerHost(), "HOMEROOM_RUNTIME=swarm", "HOMEROOM_SWARM_NODE_SOCKET=" + sw.NodeSocket,
		"HOMEROOM_S3_ENDPOINT=" + cfg.Endpoint, "HOMEROOM_S3_ACCESS_KEY=" + cfg.AccessKey, "HOMEROOM_S3_SECRET_KEY=" + cfg.SecretKey,
		"HOMEROOM_S3_BUCKET=" + cfg.Bucket, "HOMEROOM_LISTEN=" + testenv.FreeAddrOn(t, sw.HostAddr)}, env...)...)
	t.Cleanup(sys.Kill) // before the swarm goes, registered earlier
	store, err := artifacts.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &system{System: sys, t: t, sw: sw, store: store, id: id, tr: tr}
}

func (s *system) call(method, path string, body, out any) int {
	return s.Call(s.t, s.AdminToken, method, path, body, out)
}

func (s *system) waitFor(what string, timeout time.Duration, ok func(api.Class) bool) api.Class {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	var c api.Class
	for time.Now().Before(deadline) {
		c = api.Class{} // a field the answer leaves out is not the last answer's
		if code := s.call("GET", "/api/v1/classes/"+s.id, nil, &c); code == http.StatusOK && ok(c) {
			return c
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.t.Fatalf("class %s not %s after %s: phase %s, conditions %+v, controller log:\n%s", s.id, what, timeout, c.Status.Phase, c.Status.Conditions, tail(s.Controller.Output(), 40))
	return c
}

func tail(s string, lines int) string {
	ls := strings.Split(s, "\n")
	return strings.Join(ls[max(0, len(ls)-lines):], "\n")
}

func settled(phase api.Phase) func(api.Class) bool {
	return func(c api.Class) bool {
		return c.Status.Phase == phase && c.Status.ObservedGeneration == c.Generation
	}
}

// nodeNames maps the swarm's node ids to their host names (hr-node-K).
func (s *system) nodeNames() map[string]string {
	ns, err := s.sw.Nodes[0].NodeList(context.Background(), swarm.NodeListOptions{})
	if err != nil {
		s.t.Fatal(err)
	}
	out := map[string]string{}
	for _, n := range ns {
		out[n.ID] = n.Description.Hostname
	}
	return out
}

// placement is the node (1-based) each student's sandbox runs on.
func (s *system) placement() map[string]int {
	ctx := context.Background()
	names := s.nodeNames()
	f := filters.NewArgs(filters.Arg("label", api.LabelClass+"="+s.id), filters.Arg("desired-state", "running"))
	ts, err := s.sw.Nodes[0].TaskList(ctx, swarm.TaskListOptions{Filters: f})
	if err != nil {
		s.t.Fatal(err)
	}
	out := map[string]int{}
	for _, t := range ts {
		if t.Status.State != swarm.TaskStateRunning {
			continue
		}
		var k int
		if _, err := fmt.Sscanf(names[t.NodeID], "hr-node-%d", &k); err != nil {
			s.t.Fatalf("task on node %s (%q): %v", t.NodeID, names[t.NodeID], err)
		}
		out[t.Spec.ContainerSpec.Labels[api.LabelStudent]] = k
	}
	return out
}

// leftovers lists what of the class any node still holds: containers,
// volumes, and (on the manager) services and the class network.
func (s *system) leftovers() []string {
	ctx := context.Background()
	f := filters.NewArgs(filters.Arg("label", api.LabelClass+"="+s.id))
	var left []string
	for i, n := range s.sw.Nodes {
		if s.stopped[i+1] {
			continue // what it holds is checked once it is back
		}
		cs, err := n.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
		if err != nil {
			s.t.Fatal(err)
		}
		for _, c := range cs {
			left = append(left, fmt.Sprintf("node %d: container %s", i+1, c.Names))
		}
		vs, err := n.VolumeList(ctx, volume.ListOptions{Filters: f})
		if err != nil {
			s.t.Fatal(err)
		}
		for _, v := range vs.Volumes {
			left = append(left, fmt.Sprintf("node %d: volume %s", i+1, v.Name))
		}
	}
	svcs, err := s.sw.Nodes[0].ServiceList(ctx, swarm.ServiceListOptions{Filters: filters.NewArgs(filters.Arg("label", api.LabelManagedBy+"="+api.ManagedByValue))})
	if err != nil {
		s.t.Fatal(err)
	}
	for _, sv := range svcs {
		if _, ok := sv.Spec.Labels["homeroom.warms"]; ok {
			continue // the pool's, no class's: see waitForPool
		}
		left = append(left, "service "+sv.Spec.Name)
	}
	ns, err := s.sw.Nodes[0].NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		s.t.Fatal(err)
	}
	for _, n := range ns {
		left = append(left, "network "+n.Name)
	}
	return left
}

// up brings a class of n students Up and returns them.
func (s *system) up(n int) []string {
	s.t.Helper()
	var students []string
	for i := 1; i <= n; i++ {
		students = append(students, fmt.Sprintf("s%02d", i))
	}
	if code := s.call("PUT", "/api/v1/classes/"+s.id, map[string]any{"subject": "cs", "template": "sandbox", "students": students}, nil); code != http.StatusCreated {
		s.t.Fatalf("put: %d", code)
	}
	s.call("POST", "/api/v1/classes/"+s.id+"/up", nil, nil)
	c := s.waitFor("Up", 5*time.Minute, settled(api.PhaseUp))
	for _, st := range c.Status.Students {
		if st.State != "running" {
			s.t.Errorf("%s: %s, want running", st.ID, st.State)
		}
	}
	return students
}

// work writes each student's work where their sandbox keeps it: in its
// work volume, on the node that runs it. s01's includes a file larger
// than one part of a multipart upload.
func (s *system) work(students []string, where map[string]int) map[string]map[string][]byte {
	s.t.Helper()
	want := map[string]map[string][]byte{}
	for _, st := range students {
		dir := s.sw.VolumeDir(where[st], api.VolumeName(s.id, st, "/workspace"))
		files := map[string][]byte{
			"answer.txt":    []byte("the answer of " + st + "\n"),
			"notes/day1.md": []byte(strings.Repeat(st+" wrote this. ", 1000)),
		}
		if st == "s01" {
			big := make([]byte, 3<<20)
			for i := range big {
				big[i] = byte(i*7 + i/251)
			}
			files["data.bin"] = big
		}
		for name, body := range files {
			p := filepath.Join(dir, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				s.t.Fatalf("%s's volume on node %d: %v", st, where[st], err)
			}
			if err := os.WriteFile(p, body, 0o644); err != nil {
				s.t.Fatal(err)
			}
			_ = os.Chown(p, 65534, 65534)
		}
		want[st] = files
	}
	return want
}

// collected checks that the run holds every student's work byte for byte,
// and that the Down left nothing on any node nor in staging.
func (s *system) collected(run string, want map[string]map[string][]byte, where map[string]int) {
	s.t.Helper()
	ctx := context.Background()
	for st, files := range want {
		for name, body := range files {
			key := api.ArtifactPrefix(s.id, run, st) + "files/workspace/" + name
			rc, _, err := s.store.Open(ctx, key)
			if err != nil {
				s.t.Errorf("%s's %s (from node %d): %v", st, name, where[st], err)
				continue
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				s.t.Fatal(err)
			}
			if string(got) != string(body) {
				s.t.Errorf("%s's %s: %d bytes collected, want the %d written", st, name, len(got), len(body))
			}
		}
	}
	// The nodes remove the containers of removed services (the jobs') on
	// their own time, soon after.
	left := s.leftovers()
	for deadline := time.Now().Add(time.Minute); len(left) > 0 && time.Now().Before(deadline); left = s.leftovers() {
		time.Sleep(500 * time.Millisecond)
	}
	if len(left) > 0 {
		s.t.Errorf("Down left on the swarm: %v", left)
	}
	keys, err := s.store.ListKeys(ctx, "staging/")
	if err != nil {
		s.t.Fatal(err)
	}
	if len(keys) > 0 {
		s.t.Errorf("staging objects left in the object store: %v", keys)
	}
}

func (s *system) down() api.Class {
	s.t.Helper()
	s.call("POST", "/api/v1/classes/"+s.id+"/down", nil, nil)
	c := s.waitFor("Down", 5*time.Minute, settled(api.PhaseDown))
	if c.Status.Run == nil || c.Status.Run.CompletedAt == nil {
		s.t.Fatalf("no completed run: %+v", c.Status.Run)
	}
	return c
}

// A class of 12 comes Up spread over the three nodes; the one student whose
// workspace passes the template's cap is stopped, named in the status;
// each student's work (written on the node that runs their sandbox) is
// collected byte for byte at Down, and Down leaves nothing of the class on
// any node.
func TestAClassAcrossThreeNodes(t *testing.T) {
	// A workspace cap of 2 MiB, which s01's work passes (see work), and
	// workspaces measured every few seconds.
	pol := policyWith(t, "workspaceMiB: 2")
	s := startWith(t, "swarm12", false, "HOMEROOM_POLICY="+pol, "HOMEROOM_RESYNC=3s")
	students := s.up(12)
	where := s.placement()
	if len(where) != len(students) {
		t.Fatalf("%d sandboxes run, want %d: %v", len(where), len(students), where)
	}
	per := map[int]int{}
	for _, k := range where {
		per[k]++
	}
	t.Logf("sandboxes per node: %v", per)
	for k := 1; k <= 3; k++ {
		if per[k] < 3 {
			t.Errorf("node %d runs %d of the 12 sandboxes; a class spreads over the nodes (%v)", k, per[k], per)
		}
	}
	want := s.work(students, where)
	// The cap holds on a swarm as on one host: s01's workspace, on its
	// node, is measured there, and s01 alone is stopped, named.
	c := s.waitFor("with s01 over its workspace cap", 2*time.Minute, func(c api.Class) bool {
		for _, cond := range c.Status.Conditions {
			if cond.Type == api.ConditionWorkspaceFull && cond.Status == "True" {
				return strings.Contains(cond.Message, "s01 (3 MiB)") && !strings.Contains(cond.Message, "s02")
			}
		}
		return false
	})
	c = s.waitFor("with s01 stopped", time.Minute, func(c api.Class) bool {
		for _, st := range c.Status.Students {
			if (st.ID == "s01") == (st.State == "running") {
				return false
			}
		}
		return true
	})
	// A sandbox's service removed by hand is made again on the node that
	// holds its work, which the Down then collects: a student not on the
	// node a new sandbox would go to otherwise (the one with the smallest
	// id, as all hold as many).
	first := ""
	for id := range s.nodeNames() {
		if first == "" || id < first {
			first = id
		}
	}
	var k1 int
	fmt.Sscanf(s.nodeNames()[first], "hr-node-%d", &k1)
	moved := ""
	for _, st := range students[1:] {
		if where[st] != k1 {
			moved = st
			break
		}
	}
	if err := s.sw.Nodes[0].ServiceRemove(context.Background(), api.ContainerName(s.id, moved)); err != nil {
		t.Fatal(err)
	}
	now := s.placement()
	for deadline := time.Now().Add(2 * time.Minute); now[moved] == 0 && time.Now().Before(deadline); now = s.placement() {
		time.Sleep(500 * time.Millisecond)
	}
	if now[moved] != where[moved] {
		t.Fatalf("%s's service, removed by hand, was made again on node %d; its work is on node %d", moved, now[moved], where[moved])
	}
	c = s.down()
	s.collected(c.Status.Run.ID, want, where)
}

// A node that is down when its students' work is to be collected holds the
// class in Collecting, with the node named in its status, and nothing of
// those students is removed; once the node is back the Down completes with
// every student's work.
func TestCollectionWaitsForANodeThatIsDown(t *testing.T) {
	s := start(t, "swarmdown")
	students := s.up(6)
	where := s.placement()
	if len(where) != len(students) {
		t.Fatalf("%d sandboxes run, want %d: %v", len(where), len(students), where)
	}
	want := s.work(students, where)
	var onNode3 []string
	for st, k := range where {
		if k == 3 {
			onNode3 = append(onNode3, st)
		}
	}
	if len(onNode3) == 0 {
		t.Fatalf("no sandbox on node 3: %v", where)
	}

	s.sw.StopNode(3)
	s.call("POST", "/api/v1/classes/"+s.id+"/down", nil, nil)
	c := s.waitFor("reporting node 3", 3*time.Minute, func(c api.Class) bool {
		for _, cd := range c.Status.Conditions {
			if strings.Contains(cd.Message, "hr-node-3") {
				return true
			}
		}
		return false
	})
	if c.Status.Phase != api.PhaseCollecting {
		t.Errorf("phase %s while node 3 is down, want Collecting", c.Status.Phase)
	}
	for _, cd := range c.Status.Conditions {
		if strings.Contains(cd.Message, "hr-node-3") {
			t.Logf("%s %s: %s", cd.Type, cd.Reason, cd.Message)
		}
	}
	for _, st := range c.Status.Students {
		if where[st.ID] == 3 && st.Artifacts != nil {
			t.Errorf("%s on the node that is down has artifacts %+v", st.ID, st.Artifacts)
		}
	}
	for _, st := range onNode3 {
		if _, err := os.Stat(s.sw.VolumeDir(3, api.VolumeName(s.id, st, "/workspace"))); err != nil {
			t.Errorf("%s's work on node 3 while it is down: %v", st, err)
		}
	}

	s.sw.StartNode(3)
	c = s.waitFor("Down", 5*time.Minute, settled(api.PhaseDown))
	if c.Status.Run == nil || c.Status.Run.CompletedAt == nil {
		t.Fatalf("no completed run: %+v", c.Status.Run)
	}
	s.collected(c.Status.Run.ID, want, where)
}

// Students on a swarm reach their sandboxes through Traefik on the
// manager, with the sign-in check in front: each student reaches their
// own, wherever the swarm placed it, and no one else's. The template has a
// readiness check, which the controller, out of reach of the overlay
// networks, makes through Traefik: the class is Up once every sandbox
// answers there.
func TestStudentsReachOnlyTheirOwnSandbox(t *testing.T) {
	pol := policyWith(t, "readiness: {path: /, timeoutSeconds: 120}")
	// A pool of networks smaller than the class: some sandboxes take one
	// made ahead, the others have theirs made as they are.
	s := startWith(t, "swarmroute", true, "HOMEROOM_POLICY="+pol, "HOMEROOM_SWARM_NETWORK_POOL=4")
	pooled := s.waitForPool(4, nil)
	// A crash after a sandbox's removal took Traefik off its pool network,
	// before the network went: after a restart, that network is removed,
	// never handed out. The controller comes back with a pool of two: of
	// the three free networks it keeps two as they are, and removes one.
	spoiled := pooled[0]
	if err := s.sw.Nodes[0].NetworkDisconnect(context.Background(), spoiled, s.tr.Name, true); err != nil {
		t.Fatal(err)
	}
	s.RestartController(t, "HOMEROOM_SWARM_NETWORK_POOL=2")
	kept := pooled[1:]
	pooled = s.waitForPool(2, []string{spoiled})
	for _, n := range pooled {
		if !slices.Contains(kept, n) {
			t.Errorf("the pool's network %s is new: the free ones %v were not kept across the restart", n, kept)
		}
	}
	students := s.up(6)
	where := s.placement()
	// The placeholders that kept the taken networks set up on their nodes
	// go once the sandboxes run; everything below is checked without them.
	s.waitForPlaceholders(pooled, false)
	// Each network of the pool is one sandbox's own, and only its.
	on := map[string]string{}
	for _, st := range students {
		_, own := s.ipOf(st)
		if other, ok := on[own]; ok {
			t.Errorf("%s and %s share the network %s", other, st, own)
		}
		on[own] = st
	}
	for _, n := range pooled {
		if on[n] == "" {
			t.Errorf("the pool's network %s went to no sandbox: %v", n, on)
		}
	}
	host := func(st string) string { return api.Host(s.id, st, "lab.localhost") }
	// Traefik reads the swarm's services every second: wait until each
	// host is routed, that is until the sign-in check answers for it.
	for _, st := range students {
		deadline := time.Now().Add(time.Minute)
		for {
			code, _, _ := testenv.Through(s.t, s.tr.Addr, "GET", "http://"+host(st)+"/", "", "")
			if code == http.StatusUnauthorized {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s's host is not routed to the sign-in check: %d", st, code)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	var links struct {
		Items []struct{ Student, URL string }
	}
	if code := s.call("POST", "/api/v1/classes/"+s.id+"/links", nil, &links); code != http.StatusOK {
		t.Fatalf("links: %d", code)
	}
	cookies := map[string]string{}
	for _, l := range links.Items {
		code, h, body := testenv.Through(s.t, s.tr.Addr, "GET", l.URL, "", "")
		if code != http.StatusFound {
			t.Fatalf("following %s's link: %d %s", l.Student, code, body)
		}
		for _, ck := range (&http.Response{Header: h}).Cookies() {
			if ck.Name == signin.CookieName {
				cookies[l.Student] = ck.Name + "=" + ck.Value
			}
		}
	}
	for i, st := range students {
		other := students[(i+1)%len(students)]
		code, _, body := testenv.Through(s.t, s.tr.Addr, "GET", "http://"+host(st)+"/", cookies[st], "")
		if code != http.StatusOK || !strings.Contains(body, `"student":"`+st+`"`) {
			t.Errorf("%s on their own host (sandbox on node %d): %d %.200s", st, where[st], code, body)
		}
		if code, _, body := testenv.Through(s.t, s.tr.Addr, "GET", "http://"+host(other)+"/", cookies[st], ""); code != http.StatusForbidden {
			t.Errorf("%s's session on %s's host (node %d): %d %.200s, want 403", st, other, where[other], code, body)
		}
		if code, _, _ := testenv.Through(s.t, s.tr.Addr, "GET", "http://"+host(st)+"/", "", ""); code != http.StatusUnauthorized {
			t.Errorf("no session on %s's host: %d, want 401", st, code)
		}
	}
	// From inside: a program on s01's network (where s01's sandbox is)
	// reaches s01's sandbox, and no classmate's, even by address.
	ip, own := s.ipOf("s01")
	if got := testenv.ProbeOn(t, s.sw.Nodes[0], own, "http://"+ip+":8080/", ""); got != 0 {
		t.Errorf("a program beside s01's sandbox could not reach it: probe exit %d, want 0", got)
	}
	for _, other := range students[1:] {
		ip, _ := s.ipOf(other)
		if got := testenv.ProbeOn(t, s.sw.Nodes[0], own, "http://"+ip+":8080/", ""); got != 1 {
			t.Errorf("a program beside s01's sandbox reached %s's (node %d) by its address: probe exit %d, want 1", other, where[other], got)
		}
	}
	nodes := map[int]bool{}
	for _, k := range where {
		nodes[k] = true
	}
	// Traefik's attachments to the class's networks count as tasks on the
	// manager, which the scheduler then fills last.
	if len(nodes) < 2 {
		t.Errorf("the class ran on %d node, want several: %v", len(nodes), where)
	}
	c := s.down()
	s.collected(c.Status.Run.ID, s.work(nil, nil), where)
	// The networks the sandboxes used went with them; the pool is made up
	// with new ones.
	s.waitForPool(2, pooled)
}

// waitForPlaceholders waits until every one of the networks has a
// placeholder running on the node it was made for (want), or none has one.
func (s *system) waitForPlaceholders(nets []string, want bool) {
	s.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ok := true
		for _, n := range nets {
			if s.placeholderOf(n, want) != want {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("placeholders of %v: want running %v; controller log:\n%s", nets, want, tail(s.Controller.Output(), 40))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// placeholderOf reports whether a placeholder service is on the pool
// network; with running, only where its container runs on the node the
// network names, hardened, without the Docker socket.
func (s *system) placeholderOf(net string, running bool) bool {
	s.t.Helper()
	ctx := context.Background()
	f := filters.NewArgs(filters.Arg("label", "homeroom.warms="+net))
	svcs, err := s.sw.Nodes[0].ServiceList(ctx, swarm.ServiceListOptions{Filters: f})
	if err != nil {
		s.t.Fatal(err)
	}
	if len(svcs) == 0 || !running {
		return len(svcs) > 0
	}
	nw, err := s.sw.Nodes[0].NetworkInspect(ctx, net, network.InspectOptions{})
	if err != nil {
		s.t.Fatal(err)
	}
	var k int
	if _, err := fmt.Sscanf(s.nodeNames()[nw.Labels["homeroom.pool-node"]], "hr-node-%d", &k); err != nil {
		s.t.Fatalf("pool network %s is made for no node of the swarm: %v", net, nw.Labels)
	}
	f.Add("status", "running")
	cs, err := s.sw.Nodes[k-1].ContainerList(ctx, container.ListOptions{Filters: f})
	if err != nil {
		s.t.Fatal(err)
	}
	if len(cs) != 1 {
		return false
	}
	c, err := s.sw.Nodes[k-1].ContainerInspect(ctx, cs[0].ID)
	if err != nil {
		s.t.Fatal(err)
	}
	if c.Config.User != "65534:65534" || !c.HostConfig.ReadonlyRootfs || len(c.Mounts) > 0 || !slices.Contains(c.HostConfig.CapDrop, "ALL") {
		s.t.Fatalf("placeholder on %s runs as %q, read-only %v, mounts %v, dropping %v: want nobody, read-only, no mounts, no capabilities",
			net, c.Config.User, c.HostConfig.ReadonlyRootfs, c.Mounts, c.HostConfig.CapDrop)
	}
	if _, ok := c.NetworkSettings.Networks[net]; !ok {
		s.t.Fatalf("placeholder of %s is on %v", net, c.NetworkSettings.Networks)
	}
	return true
}

// waitForPool waits until the pool holds n networks with Traefik on them,
// each warmed by a placeholder on its node, and none of those named not,
// and returns their names; no placeholder is left on another network.
func (s *system) waitForPool(n int, not []string) []string {
	s.t.Helper()
	ctx := context.Background()
	f := filters.NewArgs(filters.Arg("label", api.LabelManagedBy+"="+api.ManagedByValue), filters.Arg("label", "homeroom.network-pool=true"))
	deadline := time.Now().Add(2 * time.Minute)
	var names []string
	for {
		ns, err := s.sw.Nodes[0].NetworkList(ctx, network.ListOptions{Filters: f})
		if err != nil {
			s.t.Fatal(err)
		}
		tr, err := s.sw.Nodes[0].ContainerInspect(ctx, s.tr.Name)
		if err != nil {
			s.t.Fatal(err)
		}
		names = names[:0]
		joined, stale := 0, false
		for _, nw := range ns {
			names = append(names, nw.Name)
			if _, ok := tr.NetworkSettings.Networks[nw.Name]; ok {
				joined++
			}
			stale = stale || slices.Contains(not, nw.Name)
		}
		if len(ns) == n && joined == n && !stale {
			ph, err := s.sw.Nodes[0].ServiceList(ctx, swarm.ServiceListOptions{Filters: filters.NewArgs(filters.Arg("label", "homeroom.warms"))})
			if err != nil {
				s.t.Fatal(err)
			}
			warm := len(ph) == n
			for _, nw := range names {
				warm = warm && s.placeholderOf(nw, true)
			}
			if warm {
				return names
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("the pool holds %v, %d with Traefik on them; want %d, none of %v; controller log:\n%s", names, joined, n, not, tail(s.Controller.Output(), 40))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// ipOf is the address of the student's running sandbox, and the network
// it has it on.
func (s *system) ipOf(student string) (string, string) {
	s.t.Helper()
	f := filters.NewArgs(filters.Arg("service", api.ContainerName(s.id, student)), filters.Arg("desired-state", "running"))
	ts, err := s.sw.Nodes[0].TaskList(context.Background(), swarm.TaskListOptions{Filters: f})
	if err != nil {
		s.t.Fatal(err)
	}
	for _, t := range ts {
		for _, a := range t.NetworksAttachments {
			if len(a.Addresses) > 0 {
				ip, _, _ := strings.Cut(a.Addresses[0], "/")
				return ip, a.Network.Spec.Name
			}
		}
	}
	s.t.Fatalf("%s's sandbox has no address", student)
	return "", ""
}

// lostPolicy is the built-in sandbox template, autosaved every minute.
const lostPolicy = `templates:
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
    autosaveMinutes: 1
`

// policyWith writes lostPolicy's template with line in place of its
// autosave, and returns the file.
func policyWith(t *testing.T, line string) string {
	t.Helper()
	pol := strings.Replace(lostPolicy, "    autosaveMinutes: 1\n", "    "+line+"\n", 1)
	if pol == lostPolicy {
		t.Fatal("lostPolicy has no autosave line to replace")
	}
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte(pol), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// A worker lost mid-class: its students' sandboxes are made again on the
// other nodes with their last autosave put back before they start, even
// with the controller killed on the way, and their status says what was
// restored and from when. What they wrote after that autosave, left on the
// worker, is collected into a run of its own once the worker is back, and
// removed there; the Down that follows collects every student's work and
// leaves nothing on any node.
func TestANodeLostMidClass(t *testing.T) {
	// Built first: the autosave's timing below leaves no room for a build.
	crashing := testenv.BuildBinariesWithTags(t, []string{"failpoints"}, "controller")
	pol := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(pol, []byte(lostPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	s := startWith(t, "swarmlost", false, "HOMEROOM_POLICY="+pol, "HOMEROOM_SWARM_NODE_LOST_AFTER=5s")
	students := s.up(6)
	where := s.placement()
	var onNode3 []string
	for _, st := range students {
		if where[st] == 3 {
			onNode3 = append(onNode3, st)
		}
	}
	if len(onNode3) == 0 {
		t.Fatalf("no sandbox on node 3: %v", where)
	}
	written := time.Now()
	want := s.work(students, where)
	c := s.waitFor("autosaved with every student's work", 4*time.Minute, func(c api.Class) bool {
		a := c.Status.Autosave
		return a != nil && a.StartedAt.After(written) && a.Collected == len(students)
	})
	autosave := c.Status.Autosave.RunID
	// What node 3's students write after that autosave stays on node 3.
	after := map[string][]byte{}
	for _, st := range onNode3 {
		after[st] = []byte(strings.Repeat("written by "+st+" after the autosave\n", 100))
		p := filepath.Join(s.sw.VolumeDir(3, api.VolumeName(s.id, st, "/workspace")), "after.txt")
		if err := os.WriteFile(p, after[st], 0o644); err != nil {
			t.Fatal(err)
		}
		_ = os.Chown(p, 65534, 65534)
	}

	// The controller that makes node 3's sandboxes again is killed on the
	// way, as a crash would: first after removing a lost sandbox and
	// before making its replacement, then before putting its work back.
	// Each time the next controller must still restore the work before
	// the new sandbox first starts.
	s.ReplaceController(t, crashing, failpoint.Env+"=replaced-before-create")
	s.sw.StopNode(3)
	s.stopped = map[int]bool{3: true}
	if st := s.Controller.Wait(4 * time.Minute); !testenv.KilledBy(st, syscall.SIGKILL) {
		t.Fatalf("the controller was not killed after removing a lost sandbox: %v\n%s", st, tail(s.Controller.Output(), 40))
	}
	s.call("GET", "/api/v1/classes/"+s.id, nil, &c)
	pending := 0
	for _, st := range onNode3 {
		if r := c.Status.Restored[st]; r.Pending && strings.Contains(r.Reason, "hr-node-3") {
			pending++
		}
	}
	if pending == 0 {
		t.Fatalf("no restore of node 3's students is pending after the crash: %+v", c.Status.Restored)
	}
	s.ReplaceController(t, crashing, failpoint.Env+"=before-restore")
	if st := s.Controller.Wait(4 * time.Minute); !testenv.KilledBy(st, syscall.SIGKILL) {
		t.Fatalf("the controller was not killed before a restore: %v\n%s", st, tail(s.Controller.Output(), 40))
	}
	s.RestartController(t)
	c = s.waitFor("with node 3's students made again", 4*time.Minute, func(c api.Class) bool {
		// Not the status the killed controller left (its restores
		// pending, its sandboxes last seen running): the next one's.
		for _, st := range onNode3 {
			if r, ok := c.Status.Restored[st]; !ok || r.Pending {
				return false
			}
		}
		running := 0
		for _, st := range c.Status.Students {
			if st.State == "running" {
				running++
			}
		}
		return running == len(students) && settled(api.PhaseUp)(c)
	})
	// The status is written at a pass's end: the swarm itself says where
	// each runs.
	moved := s.placement()
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); moved = s.placement() {
		all := true
		for _, st := range onNode3 {
			all = all && moved[st] != 0
		}
		if all {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	for _, st := range onNode3 {
		r := c.Status.Restored[st]
		t.Logf("%s: restored %+v", st, r)
		if r.Pending || r.RunID != autosave || r.Files != len(want[st]) || r.CollectedAt.IsZero() || !strings.Contains(r.Reason, "hr-node-3") {
			t.Errorf("%s: restored %+v; want autosave %s's %d files, collected at a time, because of hr-node-3", st, r, autosave, len(want[st]))
		}
		k := moved[st]
		if k == 0 || k == 3 {
			t.Fatalf("%s runs on node %d, want another node than 3 (%v)", st, k, moved)
		}
		dir := s.sw.VolumeDir(k, api.VolumeName(s.id, st, "/workspace"))
		for name, body := range want[st] {
			got, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil || string(got) != string(body) {
				t.Errorf("%s's %s in the new sandbox on node %d: %d bytes (%v), want the %d autosaved", st, name, k, len(got), err, len(body))
			}
		}
	}
	for _, st := range students {
		if where[st] != 3 {
			if _, ok := c.Status.Restored[st]; ok || moved[st] != where[st] {
				t.Errorf("%s, on node %d, was moved or restored: now on %d, %+v", st, where[st], moved[st], c.Status.Restored[st])
			}
		}
	}
	left := c.Status.LeftBehind
	for _, st := range onNode3 {
		if lb := left[st]; len(lb) != 1 || lb[0].CollectedAt != nil || !strings.Contains(lb[0].Reason, "hr-node-3") {
			t.Errorf("%s's work left on node 3: %+v", st, lb)
		}
	}

	// Node 3 comes back: what its students wrote after the autosave is
	// collected, each into a run of kind recovered, and removed there.
	s.sw.StartNode(3)
	s.stopped = nil
	c = s.waitFor("with the work left on node 3 collected", 4*time.Minute, func(c api.Class) bool { return len(c.Status.LeftBehind) == 0 })
	var runs struct {
		Items []struct{ RunID, Kind string }
	}
	if code := s.call("GET", "/api/v1/classes/"+s.id+"/runs", nil, &runs); code != http.StatusOK {
		t.Fatalf("runs: %d", code)
	}
	recovered := map[string]bool{}
	for _, r := range runs.Items {
		if r.Kind == "recovered" {
			recovered[r.RunID] = true
		}
	}
	for _, st := range onNode3 {
		run := left[st][0].RunID
		if !recovered[run] {
			t.Errorf("%s's run %s is not listed as recovered: %+v", st, run, runs.Items)
		}
		got := s.stored(run, st, "after.txt")
		if string(got) != string(after[st]) {
			t.Errorf("%s's after.txt, recovered from node 3: %d bytes, want the %d written", st, len(got), len(after[st]))
		}
		if _, err := os.Stat(s.sw.VolumeDir(3, api.VolumeName(s.id, st, "/workspace"))); !os.IsNotExist(err) {
			t.Errorf("%s's old volume on node 3 is still there (%v)", st, err)
		}
	}

	// Removing a volume left on a node never takes the volume of the
	// sandbox pinned there now, which has the same name.
	t.Setenv("DOCKER_HOST", s.sw.ManagerHost())
	dc, err := dockerx.New(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	rt := hrswarm.New(dc, s.store, hrswarm.Options{JobImage: "homeroom/nodejob:dev", NodeSocket: s.sw.NodeSocket})
	ids := map[string]string{}
	for id, name := range s.nodeNames() {
		ids[name] = id
	}
	st := onNode3[0]
	vol := api.VolumeName(s.id, st, "/workspace")
	err = rt.RemoveVolumeOn(context.Background(), ids[fmt.Sprintf("hr-node-%d", moved[st])], vol)
	if err == nil || !strings.Contains(err.Error(), "sandbox is on that node now") {
		t.Errorf("removing %s on node %d, where %s's sandbox runs: %v", vol, moved[st], st, err)
	}
	if _, err := os.Stat(s.sw.VolumeDir(moved[st], vol)); err != nil {
		t.Errorf("%s's live volume on node %d: %v", st, moved[st], err)
	}

	// The Down's controller is killed between removing a sandbox's work
	// volume and removing the sandbox: the next one still knows the node
	// the volume was on, and the Down leaves nothing on any node.
	s.ReplaceController(t, crashing, failpoint.Env+"=container-removed")
	s.call("POST", "/api/v1/classes/"+s.id+"/down", nil, nil)
	if st := s.Controller.Wait(4 * time.Minute); !testenv.KilledBy(st, syscall.SIGKILL) {
		t.Fatalf("the controller was not killed between a sandbox's removals: %v\n%s", st, tail(s.Controller.Output(), 40))
	}
	s.RestartController(t)
	c = s.down()
	s.collected(c.Status.Run.ID, want, moved)
}

// stored is the collected content of a student's file in a run.
func (s *system) stored(run, student, name string) []byte {
	s.t.Helper()
	rc, _, err := s.store.Open(context.Background(), api.ArtifactPrefix(s.id, run, student)+"files/workspace/"+name)
	if err != nil {
		s.t.Errorf("%s's %s in run %s: %v", student, name, run, err)
		return nil
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		s.t.Fatal(err)
	}
	return b
}
