// Package notebook runs classes of the built-in notebook template for real:
// the apiserver and controller binaries, a real Traefik with the sign-in
// check, the Docker daemon and homeroom/notebook (Jupyter from Debian's
// packages). A class is Up only once every notebook answers, its students
// reach their notebooks through Traefik, kernels included, and what a cell
// does without bound meets the sandbox's limits, not the machine's.
package notebook

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/network"

	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/dockerx"
	"github.com/homeroom/homeroom/pkg/policy"
	"github.com/homeroom/homeroom/pkg/signin"
)

const (
	classID = "nb-e2e"
	domain  = "lab.localhost"
)

func host(student string) string { return api.Host(classID, student, domain) }

// notebookTemplate is the built-in template, which the controller uses.
func notebookTemplate(t *testing.T) *policy.Template {
	tmpl, ok := policy.Default().Template("notebook")
	if !ok {
		t.Fatal("the built-in policy has no notebook template")
	}
	return tmpl
}

func TestNotebookClass(t *testing.T) {
	d := testenv.Docker(t)
	testenv.NotebookImage(t, d)
	tr := testenv.StartTraefik(t, d)
	testenv.CleanupClass(t, d, classID)
	// As `make run` does: the controller sees each student's host routed
	// before a notebook counts as ready.
	sys := testenv.StartSystem(t, tr.Name, "HOMEROOM_TRAEFIK_URL=http://"+tr.Addr)
	admin := sys.AdminToken
	students := []string{"alice", "bob", "carol"}
	for _, c := range []struct {
		method, path string
		body         any
	}{
		{"PUT", "/api/v1/subjects/ds101", map[string]any{"title": "Data science"}},
		{"PUT", "/api/v1/rosters/" + classID, map[string]any{"subject": "ds101", "students": students}},
		{"PUT", "/api/v1/classes/" + classID, map[string]any{"subject": "ds101", "template": "notebook", "students": students}},
	} {
		if code := sys.Call(t, admin, c.method, c.path, c.body, nil); code/100 != 2 {
			t.Fatalf("%s %s: %d", c.method, c.path, code)
		}
	}

	// Up, watched closely: the class says how many notebooks answer, and
	// it is Up only once all do.
	if code := sys.Call(t, admin, "POST", "/api/v1/classes/"+classID+"/up", nil, nil); code != http.StatusAccepted {
		t.Fatalf("up: %d", code)
	}
	var seen []string
	deadline := time.Now().Add(4 * time.Minute)
	for {
		var c api.Class
		if code := sys.Call(t, admin, "GET", "/api/v1/classes/"+classID, nil, &c); code != http.StatusOK {
			t.Fatalf("get class: %d", code)
		}
		if rd := api.FindCondition(c.Status.Conditions, api.ConditionReady); rd != nil && (len(seen) == 0 || seen[len(seen)-1] != rd.Message) {
			seen = append(seen, rd.Message)
		}
		if c.Status.Phase == api.PhaseUp && c.Status.ObservedGeneration == c.Generation {
			for _, s := range c.Status.Students {
				if s.State != "running" {
					t.Errorf("the class is Up with %s %q", s.ID, s.State)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the class never came Up; it is %s: %+v", c.Status.Phase, c.Status.Students)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("the Ready condition said, in turn: %q", seen)
	if last := seen[len(seen)-1]; last != "3 of 3 students ready" {
		t.Errorf("Ready says %q once Up", last)
	}

	// The moment the class is Up, each student's link leads to a notebook
	// that answers: one try each, no retry, so a 502 (Jupyter still
	// starting) or a 404 (not yet routed) fails.
	var issued struct {
		Items []struct{ Student, URL string }
	}
	if code := sys.Call(t, admin, "POST", "/api/v1/classes/"+classID+"/links", nil, &issued); code != http.StatusOK {
		t.Fatalf("links: %d", code)
	}
	browsers := map[string]*student{}
	for _, l := range issued.Items {
		s := newStudent(t, tr, l.Student)
		resp, err := s.http.Get(l.URL) // → the sign-in, then / → Jupyter's /tree
		if err != nil {
			t.Fatalf("%s follows their link: %v", l.Student, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Jupyter") || resp.Request.URL.Path != "/tree" {
			t.Errorf("%s's link led to %s: %d %.200s", l.Student, resp.Request.URL, resp.StatusCode, body)
		}
		if code, body := s.get("/api"); code != http.StatusOK || !strings.Contains(body, `"version"`) {
			t.Errorf("%s's notebook API: %d %.200s", l.Student, code, body)
		}
		browsers[l.Student] = s
	}
	alice, bob := browsers["alice"], browsers["bob"]
	if alice == nil || bob == nil {
		t.Fatalf("links for %v", issued.Items)
	}

	t.Run("another student's session does not open alice's notebook", func(t *testing.T) {
		// bob's browser keeps his cookie to his own host; a hostile bob
		// sends it to alice's by hand.
		u, _ := url.Parse(bob.base + "/")
		var session string
		for _, c := range bob.http.Jar.Cookies(u) {
			if c.Name == signin.CookieName {
				session = c.Name + "=" + c.Value
			}
		}
		if session == "" {
			t.Fatal("bob has no session cookie")
		}
		req, _ := http.NewRequest("GET", alice.base+"/api/contents", nil)
		req.Header.Set("Cookie", session)
		resp, err := (&http.Client{Transport: bob.http.Transport, Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("bob's session on alice's notebook: %d, want 403", resp.StatusCode)
		}
	})

	tmpl := notebookTemplate(t)
	t.Run("notebooks are hardened as every sandbox is", func(t *testing.T) {
		for _, s := range students {
			info, err := d.InspectContainer(context.Background(), api.ContainerName(classID, s))
			if err != nil {
				t.Fatal(err)
			}
			testenv.CheckHardened(t, info, tmpl)
		}
		n, err := d.API().NetworkInspect(context.Background(), api.NetworkName(classID), network.InspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !n.Internal || n.Options["com.docker.network.bridge.enable_icc"] != "false" {
			t.Errorf("class network internal %v, options %v: want no internet and no classmates", n.Internal, n.Options)
		}
	})

	k := alice.startKernel()
	t.Run("a cell runs as the sandbox's user in the student's own home", func(t *testing.T) {
		out := k.must(`import os
open("answer.txt", "w").write("42\n")
print(os.getuid(), os.stat(".").st_uid, os.getcwd())
print(os.environ["HOMEROOM_CLASS"], os.environ["HOMEROOM_STUDENT"], os.environ["HOMEROOM_BASE_URL"])`)
		want := "1000 1000 /home/jovyan\n" + classID + " alice http://" + host("alice") + "\n"
		if out != want {
			t.Errorf("the cell printed %q, want %q", out, want)
		}
		// No internet: the class network has no route out.
		out = k.must(`import socket
try:
    socket.create_connection(("1.1.1.1", 80), timeout=3)
    print("reached the internet")
except OSError as e:
    print("no route:", e)`)
		if !strings.HasPrefix(out, "no route") {
			t.Errorf("a cell tried the internet: %q", out)
		}
	})

	// bob works meanwhile: his notebook must not notice alice's cells.
	bobAnswers := func(t *testing.T, during string) {
		t.Helper()
		if code, _ := bob.get("/api/contents"); code != http.StatusOK {
			t.Errorf("bob's notebook answered %d while %s", code, during)
		}
	}

	t.Run("a cell that allocates without bound kills only its kernel, which starts again with the files", func(t *testing.T) {
		id := containerID(t, d, "alice")
		before := testenv.OOMKills(t, id)
		r := k.run(`blocks = []
while True:
    blocks.append(b"x" * (64 << 20))`, 3*time.Minute)
		if r.Status != "restarting" && r.Status != "dead" {
			t.Fatalf("the memory hog ended as %+v, want its kernel killed", r)
		}
		if after := testenv.OOMKills(t, id); after <= before {
			t.Errorf("oom_kill %d → %d: the hog was not stopped by the sandbox's memory limit", before, after)
		}
		bobAnswers(t, "alice's kernel was killed")
		k.connect()
		k.waitAlive()
		if out := k.must(`print(open("answer.txt").read(), end="")`); out != "42\n" {
			t.Errorf("after the restart answer.txt holds %q", out)
		}
		info, err := d.InspectContainer(context.Background(), id)
		if err != nil || !info.State.Running || info.State.OOMKilled {
			t.Errorf("alice's notebook after the hog: running %v, OOMKilled %v (%v)", info.State.Running, info.State.OOMKilled, err)
		}
	})

	t.Run("a kernel's restart ends the processes its cells started", func(t *testing.T) {
		id := containerID(t, d, "alice")
		before := pidsCurrent(t, id)
		k.must(`import os, time
for _ in range(20):
    if os.fork() == 0:
        time.sleep(3600)
        os._exit(0)`)
		if during := pidsCurrent(t, id); during < before+20 {
			t.Fatalf("%d processes before, %d with 20 children sleeping", before, during)
		}
		if code := k.restart(); code != http.StatusOK {
			t.Fatalf("restart the kernel: %d", code)
		}
		if after := pidsCurrent(t, id); after > before {
			t.Errorf("%d processes before, %d after the kernel's restart: its children outlived it", before, after)
		}
	})

	t.Run("a cell that forks without bound meets the process limit, and the notebook restarts with the files", func(t *testing.T) {
		r := k.run(`import os, time
n = 0
while True:
    try:
        pid = os.fork()
    except OSError as e:
        print("fork refused after", n, "children:", e.strerror)
        break
    if pid == 0:
        time.sleep(3600)
        os._exit(0)
    n += 1`, 2*time.Minute)
		if r.Status != "ok" || !strings.Contains(r.Stdout, "fork refused after") {
			t.Fatalf("the fork bomb ended as %+v", r)
		}
		t.Log(strings.TrimSpace(r.Stdout))
		n, _ := strconv.Atoi(strings.Fields(r.Stdout)[3])
		if n >= int(tmpl.PIDs) {
			t.Errorf("%d children forked under a limit of %d processes", n, tmpl.PIDs)
		}
		if cur := pidsCurrent(t, containerID(t, d, "alice")); cur > tmpl.PIDs {
			t.Errorf("pids.current %d over the limit %d", cur, tmpl.PIDs)
		}
		bobAnswers(t, "alice's cell forked without bound")
		// Each child soon holds its own copy of what it touches of the
		// kernel's memory, so the bomb may meet the memory limit too, and
		// the kernel killer may take the notebook server: then the sandbox
		// stops, and Homeroom starts it again on the same home.
		if code := k.restart(); code != http.StatusOK {
			t.Logf("restarting the kernel answered %d: the notebook server went down with the fork bomb", code)
			k.conn.CloseNow()
			alice.waitAnswers()
			k = alice.startKernel()
		}
		if cur := pidsCurrent(t, containerID(t, d, "alice")); cur > tmpl.PIDs/2 {
			t.Errorf("after the restart %d processes are left of the fork bomb", cur)
		}
		if out := k.must(`print(open("answer.txt").read(), end="")`); out != "42\n" {
			t.Errorf("after the restart answer.txt holds %q", out)
		}
	})
	k.conn.CloseNow()

	// Down: the student's work is collected, then every notebook goes.
	if code := sys.Call(t, admin, "POST", "/api/v1/classes/"+classID+"/down", nil, nil); code != http.StatusAccepted {
		t.Fatalf("down: %d", code)
	}
	deadline = time.Now().Add(3 * time.Minute)
	for {
		var c api.Class
		sys.Call(t, admin, "GET", "/api/v1/classes/"+classID, nil, &c)
		if c.Status.Phase == api.PhaseDown && c.Status.ObservedGeneration == c.Generation {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the class never went Down: %s", c.Status.Phase)
		}
		time.Sleep(200 * time.Millisecond)
	}
	req, _ := http.NewRequest("GET", sys.URL+"/api/v1/classes/"+classID+"/artifacts/alice/files/home/jovyan/answer.txt", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(got) != "42\n" {
		t.Errorf("alice's collected answer.txt: %d %q", resp.StatusCode, got)
	}
}

func containerID(t *testing.T, d *dockerx.Client, student string) string {
	t.Helper()
	info, err := d.InspectContainer(context.Background(), api.ContainerName(classID, student))
	if err != nil {
		t.Fatal(err)
	}
	return info.ID
}

func pidsCurrent(t *testing.T, id string) int64 {
	t.Helper()
	path, ok := testenv.CgroupFile(id, "pids", "pids.current")
	if !ok {
		t.Skip("the container's cgroup is not visible from here")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
