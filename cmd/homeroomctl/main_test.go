package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/internal/versitygw"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/apiserver"
	"github.com/homeroom/homeroom/pkg/artifacts"
	"github.com/homeroom/homeroom/pkg/policy"
	"github.com/homeroom/homeroom/pkg/store"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"
)

const adminToken = "test-admin-token"

// env is an apiserver in the test's process over an embedded store and an
// embedded S3, as in pkg/apiserver's tests. No controller runs: tests write
// status into the store as the controller would.
type env struct {
	t     *testing.T
	url   string
	store *store.Store
	art   *artifacts.Store
	xdg   string // XDG_CONFIG_HOME of the commands run, empty at first
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, policy.Default())
}

// newEnvWith is newEnv with the policy pol.
func newEnvWith(t *testing.T, pol *policy.Policy) *env {
	t.Helper()
	uri, db := testenv.StoreURI(t)
	st := testenv.OpenStore(t, uri, db)
	emb, err := versitygw.StartEmbedded(context.Background(), t.TempDir(), "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emb.Stop(context.Background()) })
	art, err := artifacts.New(context.Background(), emb.Config("homeroom"))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	s := apiserver.New(st, art, pol, adminToken, zaptest.NewLogger(t), reg, reg,
		apiserver.WithRateLimit(10000, 10000), apiserver.WithAuthFailureLimit(10000, 10000))
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(s.Close)
	return &env{t: t, url: srv.URL, store: st, art: art, xdg: t.TempDir()}
}

type result struct {
	code     int
	out, err string
}

// runWith runs one command line in-process with the given environment
// (XDG_CONFIG_HOME pointing at an empty directory unless vars set it).
func (e *env) runWith(vars map[string]string, stdin string, tty bool, args ...string) result {
	e.t.Helper()
	var out, errb bytes.Buffer
	a := &app{
		streams: streams{in: strings.NewReader(stdin), out: &out, err: &errb},
		getenv: func(k string) string {
			if v, ok := vars[k]; ok {
				return v
			}
			if k == "XDG_CONFIG_HOME" {
				return e.xdg
			}
			return ""
		},
		isTTY: func() bool { return tty },
	}
	code := a.execute(args)
	return result{code: code, out: out.String(), err: errb.String()}
}

// run runs a command line against the test's server with the admin token.
func (e *env) run(args ...string) result {
	e.t.Helper()
	return e.runWith(map[string]string{envServer: e.url, envToken: adminToken}, "", false, args...)
}

func (e *env) runStdin(stdin string, args ...string) result {
	e.t.Helper()
	return e.runWith(map[string]string{envServer: e.url, envToken: adminToken}, stdin, false, args...)
}

func (r result) want(t *testing.T, code int, outHas ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, code, r.out, r.err)
	}
	for _, s := range outHas {
		if !strings.Contains(r.out+r.err, s) {
			t.Fatalf("output lacks %q\nstdout: %s\nstderr: %s", s, r.out, r.err)
		}
	}
}

// setStatus writes what the controller would once class id reached phase
// for its current generation, each student in state.
func (e *env) setStatus(id string, phase api.Phase, state string) {
	e.t.Helper()
	ctx := context.Background()
	cur, err := e.store.Get(ctx, id)
	if err != nil {
		e.t.Error(err)
		return
	}
	st := api.ClassStatus{Phase: phase, ObservedGeneration: cur.Generation}
	for _, s := range cur.Spec.Students {
		st.Students = append(st.Students, api.StudentStatus{ID: s, Container: api.ContainerName(id, s), State: state})
	}
	if phase == api.PhaseFailed {
		st.Conditions = []api.Condition{{Type: api.ConditionReady, Status: "False", Reason: "UnknownTemplate", Message: `template "sandbox" is not in the policy`}}
	}
	if _, err := e.store.UpdateStatus(ctx, id, cur.Version, st); err != nil {
		e.t.Error(err)
	}
}

// controllerLater plays the controller: once class id's desired phase is
// desired, it waits a little and writes phase.
func (e *env) controllerLater(id string, desired, phase api.Phase, state string) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if c, err := e.store.Get(context.Background(), id); err == nil && c.DesiredPhase == desired {
				time.Sleep(150 * time.Millisecond)
				e.setStatus(id, phase, state)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		e.t.Errorf("class %s never got desired phase %s", id, desired)
	}()
	return done
}

const classYAML = `id: cs101-a
subject: cs101
template: sandbox
students: [alice, bob, carol]
ttlSeconds: 7200
`

const classJSON = `{"id": "bio-1", "subject": "bio", "template": "sandbox", "students": ["ann", "ben"]}`

func TestApplyGetList(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	yamlFile := filepath.Join(dir, "class.yaml")
	os.WriteFile(yamlFile, []byte(classYAML), 0o644)

	e.run("apply", "-f", yamlFile).want(t, exitOK, "class/cs101-a created (generation 1)")
	e.run("apply", "-f", yamlFile).want(t, exitOK, "class/cs101-a configured (generation 1)")
	e.runStdin(classJSON, "apply", "-f", "-").want(t, exitOK, "class/bio-1 created")
	// JSON from a file, YAML from stdin, with -o json.
	jsonFile := filepath.Join(dir, "class.json")
	os.WriteFile(jsonFile, []byte(`{"id": "bio-1", "subject": "bio", "template": "sandbox", "students": ["ann", "ben", "cy"]}`), 0o644)
	r := e.run("-o", "json", "apply", "-f", jsonFile)
	r.want(t, exitOK)
	var cl api.Class
	if err := json.Unmarshal([]byte(r.out), &cl); err != nil || cl.ID != "bio-1" || len(cl.Spec.Students) != 3 || cl.Generation != 2 {
		t.Fatalf("apply -o json: %v %s", err, r.out)
	}
	e.runStdin("id: geo-1\nsubject: geo\ntemplate: sandbox\nstudents: [x1]\n---\nid: geo-2\nsubject: geo\ntemplate: sandbox\nstudents: [x2]\n",
		"apply", "-f", "-").want(t, exitOK, "class/geo-1 created", "class/geo-2 created")

	// Bad input is exit 1, without asking the server; a spec the server
	// refuses is exit 2 with its message.
	e.runStdin("id: x\nsubjekt: cs\n", "apply", "-f", "-").want(t, exitUsage, "subjekt")
	e.runStdin("subject: cs\n", "apply", "-f", "-").want(t, exitUsage, "no id")
	e.run("apply", "-f", filepath.Join(dir, "missing.yaml")).want(t, exitUsage, "missing.yaml")
	e.run("apply").want(t, exitUsage, "-f")
	e.runStdin(`{"id": "cs101-b", "subject": "cs101", "template": "nope", "students": ["a"]}`, "apply", "-f", "-").
		want(t, exitRefused, "unknown_template")

	r = e.run("get", "cs101-a")
	r.want(t, exitOK, "CLASS", "cs101-a", "cs101", "sandbox", "Pending", "0/3", "STUDENT", "alice", "carol")
	// A sandbox that never answered its readiness check: why, under the table.
	if cur, err := e.store.Get(context.Background(), "cs101-a"); err == nil {
		st := cur.Status
		st.Students = []api.StudentStatus{{ID: "alice", State: api.StateUnready,
			Message: "no answer to GET /api on port 8888 within 120 s (last: connection refused); its last log lines:\nTraceback\nModuleNotFoundError: No module named 'notebook'"}}
		if _, err := e.store.UpdateStatus(context.Background(), "cs101-a", cur.Version, st); err != nil {
			t.Fatal(err)
		}
	}
	r = e.run("get", "cs101-a")
	r.want(t, exitOK, "unready  -", "alice (unready): no answer to GET /api", "\n    ModuleNotFoundError: No module named 'notebook'")
	r = e.run("get", "cs101-a", "-o", "json")
	r.want(t, exitOK)
	if err := json.Unmarshal([]byte(r.out), &cl); err != nil || cl.ID != "cs101-a" || cl.Spec.TTLSeconds != 7200 {
		t.Fatalf("get -o json: %v %s", err, r.out)
	}
	e.run("get", "nope").want(t, exitRefused, "not_found")
	e.run("get").want(t, exitUsage, "accepts 1 arg")

	r = e.run("list")
	r.want(t, exitOK, "CLASS", "SUBJECT", "PHASE", "cs101-a", "bio-1", "geo-2")
	if lines := strings.Split(strings.TrimSpace(r.out), "\n"); len(lines) != 5 {
		t.Errorf("list: want a header and 4 classes:\n%s", r.out)
	}
	r = e.run("list", "-o", "json")
	var l struct{ Items []api.Class }
	if err := json.Unmarshal([]byte(r.out), &l); err != nil || len(l.Items) != 4 {
		t.Fatalf("list -o json: %v %s", err, r.out)
	}
	e.run("list", "-o", "yaml").want(t, exitUsage, "table or json")
}

func TestUpWaitDownDelete(t *testing.T) {
	e := newEnv(t)
	e.runStdin(classYAML, "apply", "-f", "-").want(t, exitOK)

	// Without --wait: the desired phase is written, nothing waited for.
	e.run("up", "cs101-a").want(t, exitOK, "class/cs101-a desired phase Up (generation 2)")

	// No controller runs: the phase never changes, so --wait times out.
	start := time.Now()
	r := e.run("up", "cs101-a", "--wait", "--timeout", "300ms", "--poll-interval", "50ms")
	r.want(t, exitTimeout, "timed out after 300ms", "Pending", "0/3 students ready")
	if time.Since(start) > 5*time.Second {
		t.Errorf("--timeout 300ms took %s", time.Since(start))
	}

	// Delete is refused while the class is not Down, with the server's word.
	e.run("delete", "cs101-a").want(t, exitRefused, "not_down", "409")

	// The "controller" reports Up a little later: --wait sees it.
	e.setStatus("cs101-a", api.PhaseProvisioning, "created")
	done := e.controllerLater("cs101-a", api.PhaseUp, api.PhaseUp, "running")
	r = e.run("up", "cs101-a", "--wait", "--timeout", "10s", "--poll-interval", "30ms")
	<-done
	r.want(t, exitOK, "class/cs101-a is Up: 3/3 students ready")
	if !strings.Contains(r.err, "0/3 students ready") || !strings.Contains(r.err, "3/3 students ready") {
		t.Errorf("progress lines: %q", r.err)
	}
	if strings.Contains(r.err, "\r") {
		t.Errorf("progress off a terminal should be plain lines: %q", r.err)
	}
	e.run("list").want(t, exitOK, "Up", "3/3")

	// Down with --wait on a terminal: progress redrawn in place; JSON out.
	done = e.controllerLater("cs101-a", api.PhaseDown, api.PhaseDown, "removed")
	r = e.runWith(map[string]string{envServer: e.url, envToken: adminToken}, "", true,
		"down", "cs101-a", "--wait", "--timeout", "10s", "--poll-interval", "30ms", "-o", "json")
	<-done
	r.want(t, exitOK)
	if !strings.Contains(r.err, "\r\033[K") || !strings.Contains(r.err, "collecting: 0 left") || !strings.Contains(r.err, "collecting: 3 left") {
		t.Errorf("terminal progress: %q", r.err)
	}
	var cl api.Class
	if err := json.Unmarshal([]byte(r.out), &cl); err != nil || cl.Status.Phase != api.PhaseDown {
		t.Fatalf("down --wait -o json: %v %s", err, r.out)
	}

	// Work a lost swarm node still holds keeps the class, unless given up.
	cur, err := e.store.Get(context.Background(), "cs101-a")
	if err != nil {
		t.Fatal(err)
	}
	st := cur.Status
	st.LeftBehind = map[string][]api.LeftBehind{"s1": {{On: "node3", Since: time.Now()}}}
	if _, err := e.store.UpdateStatus(context.Background(), "cs101-a", cur.Version, st); err != nil {
		t.Fatal(err)
	}
	e.run("delete", "cs101-a").want(t, exitRefused, "work_left_behind", "node3", "abandon")
	e.run("delete", "cs101-a", "--abandon-left-behind").want(t, exitOK, "class/cs101-a deleted")
	e.run("get", "cs101-a").want(t, exitRefused, "not_found")
	e.run("up", "cs101-a").want(t, exitRefused, "not_found")
}

func TestWaitEndsFailed(t *testing.T) {
	e := newEnv(t)
	e.runStdin(classJSON, "apply", "-f", "-").want(t, exitOK)
	done := e.controllerLater("bio-1", api.PhaseUp, api.PhaseFailed, "missing")
	r := e.run("up", "bio-1", "--wait", "--timeout", "10s", "--poll-interval", "30ms")
	<-done
	r.want(t, exitFailed, "class bio-1 is Failed", "not in the policy")
}

func TestRefusedAndUnreachable(t *testing.T) {
	e := newEnv(t)
	r := e.runWith(map[string]string{envServer: e.url, envToken: "wrong"}, "", false, "list")
	r.want(t, exitRefused, "401")
	r = e.runWith(map[string]string{envServer: e.url}, "", false, "templates")
	r.want(t, exitRefused, "401")

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	e.runWith(map[string]string{envServer: dead, envToken: adminToken}, "", false, "list").want(t, exitServer, "connection refused")
	e.runWith(map[string]string{envServer: dead, envToken: adminToken}, "", false, "up", "x", "--wait").want(t, exitServer)
	e.runWith(map[string]string{envServer: "ftp://x", envToken: adminToken}, "", false, "list").want(t, exitUsage, "server URL")

	// A 5xx is exit 3 as well.
	broken := httptest.NewServer(brokenHandler{})
	defer broken.Close()
	e.runWith(map[string]string{envServer: broken.URL, envToken: adminToken}, "", false, "list").want(t, exitServer, "store down", "503")
}

func TestTemplates(t *testing.T) {
	e := newEnv(t)
	e.run("templates").want(t, exitOK, "NAME", "sandbox", "homeroom/sandbox:dev", "8080")
	r := e.run("templates", "-o", "json")
	var l struct {
		Items []struct{ Name, Image string }
	}
	if err := json.Unmarshal([]byte(r.out), &l); err != nil || len(l.Items) == 0 || l.Items[0].Name != "sandbox" {
		t.Fatalf("templates -o json: %v %s", err, r.out)
	}
}

const (
	runA = "20261129T135050Z-650d3d"
	runB = "20261130T090000Z-a1b2c3"
)

// collected stores a student's collection of a run through pkg/artifacts,
// as the controller does.
func (e *env) collected(class, run, student string, files map[string]string) {
	e.t.Helper()
	e.collectedAs(class, run, student, "sandbox", files)
}

// collectedAs is collected with a manifest naming template.
func (e *env) collectedAs(class, run, student, template string, files map[string]string) {
	e.t.Helper()
	ctx := context.Background()
	var buf bytes.Buffer
	w := tar.NewWriter(&buf)
	for name, body := range files {
		w.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "workspace/" + name, Size: int64(len(body)), Mode: 0o644})
		w.Write([]byte(body))
	}
	w.Close()
	exit := 0
	m := &artifacts.Manifest{ClassID: class, StudentID: student, RunID: run, Template: template,
		Container: artifacts.ContainerInfo{Name: api.ContainerName(class, student), State: "exited", ExitCode: &exit}}
	fs, skipped, err := e.art.UploadTree(ctx, m.Prefix(), "/workspace", &buf, 0)
	if err != nil {
		e.t.Fatal(err)
	}
	m.Files, m.Skipped = fs, skipped
	if m.Logs, err = e.art.UploadLogs(ctx, m.Prefix(), strings.NewReader(student+" ran\n"), -1); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.art.PutManifest(ctx, m); err != nil {
		e.t.Fatal(err)
	}
}

func TestArtifactsAndRuns(t *testing.T) {
	e := newEnv(t)
	e.collected("cs101-a", runA, "alice", map[string]string{"hello.py": "print('draft')\n"})
	e.collected("cs101-a", runB, "alice", map[string]string{"hello.py": "print('final')\n"})
	e.collected("cs101-a", runB, "bob", map[string]string{"notes.txt": "bob's notes\n"})
	started := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	if _, err := e.art.WriteRunIndex(context.Background(), "cs101-a", runB, []string{"alice", "bob"}, started, started.Add(time.Minute), artifacts.RunInfo{}); err != nil {
		t.Fatal(err)
	}

	r := e.run("artifacts", "ls", "cs101-a")
	r.want(t, exitOK, "STUDENT", "alice", "bob", runA, runB, "files/workspace/hello.py", "logs/container.log", "files/workspace/notes.txt")
	r = e.run("artifacts", "ls", "cs101-a", "--run", runA, "-o", "json")
	var l struct {
		Items []struct{ Student, RunID, Path string }
	}
	if err := json.Unmarshal([]byte(r.out), &l); err != nil || len(l.Items) != 2 {
		t.Fatalf("artifacts ls --run -o json: %v %s", err, r.out)
	}
	for _, it := range l.Items {
		if it.RunID != runA || it.Student != "alice" {
			t.Errorf("item of another run: %+v", it)
		}
	}
	e.run("artifacts", "ls", "cs101-a", "--run", "20270101T000000Z-000000").want(t, exitRefused, "404")
	e.run("artifacts", "ls", "cs101-a", "--run", "bad").want(t, exitRefused, "invalid_run")

	// The latest run to stdout, an older one to a file.
	e.run("artifacts", "get", "cs101-a", "alice", "files/workspace/hello.py").want(t, exitOK, "print('final')")
	out := filepath.Join(t.TempDir(), "hello.py")
	e.run("artifacts", "get", "cs101-a", "alice", "files/workspace/hello.py", "--run", runA, "-O", out).want(t, exitOK)
	if b, err := os.ReadFile(out); err != nil || string(b) != "print('draft')\n" {
		t.Fatalf("-O file: %v %q", err, b)
	}
	e.run("artifacts", "get", "cs101-a", "bob", "logs/container.log").want(t, exitOK, "bob ran")
	missing := filepath.Join(t.TempDir(), "nothing")
	e.run("artifacts", "get", "cs101-a", "alice", "files/workspace/nope.py", "-O", missing).want(t, exitRefused, "404")
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("a failed get left %s: %v", missing, err)
	}

	e.run("runs", "cs101-a").want(t, exitOK, "RUN", runA, runB, "true")
}

// unzipped reads a zip archive's entries; an archive that is not whole is
// an error.
func unzipped(b []byte) (map[string]string, error) {
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, err
	}
	got := map[string]string{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			return nil, err
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
		got[f.Name] = string(data)
	}
	return got, nil
}

// artifacts get --all: the latest completed run by default, into
// <class>-<run>.zip; an existing file is kept unless --force; a download
// the server cuts off leaves no file, not even a temporary one.
func TestArtifactsGetAll(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	t.Chdir(dir)
	e.run("artifacts", "get", "cs101-a", "--all").want(t, exitRefused, "no completed run")

	e.collected("cs101-a", runA, "alice", map[string]string{"hello.py": "print('draft')\n"})
	e.collected("cs101-a", runA, "bob", map[string]string{"notes.txt": "bob's notes\n"})
	started := time.Date(2026, 11, 29, 13, 50, 50, 0, time.UTC)
	if _, err := e.art.WriteRunIndex(context.Background(), "cs101-a", runA, []string{"alice", "bob"}, started, started.Add(time.Minute), artifacts.RunInfo{}); err != nil {
		t.Fatal(err)
	}
	// Run B is under way: the latest completed run is A.
	e.collected("cs101-a", runB, "alice", map[string]string{"hello.py": "print('final')\n"})

	name := "cs101-a-" + runA + ".zip"
	e.run("artifacts", "get", "cs101-a", "--all").want(t, exitOK, name)
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	got, err := unzipped(b)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if got["alice/files/workspace/hello.py"] != "print('draft')\n" || got["bob/files/workspace/notes.txt"] != "bob's notes\n" ||
		got["bob/logs/container.log"] != "bob ran\n" || !strings.Contains(got["index.json"], runA) || got["alice/manifest.json"] == "" {
		t.Errorf("%s holds %v", name, got)
	}

	// Kept unless --force.
	os.WriteFile(name, []byte("mine"), 0o600)
	e.run("artifacts", "get", "cs101-a", "--all").want(t, exitUsage, name+" exists", "--force")
	if b, _ := os.ReadFile(name); string(b) != "mine" {
		t.Errorf("the existing file was changed: %q", b)
	}
	e.run("artifacts", "get", "cs101-a", "--all", "--force", "-o", "json").want(t, exitOK, `"runId": "`+runA+`"`, `"file": "`+name+`"`)
	if b, _ := os.ReadFile(name); string(b) == "mine" {
		t.Error("--force did not replace the file")
	}

	// tar.gz to a file named, and to stdout.
	out := filepath.Join(t.TempDir(), "run.tgz")
	e.run("artifacts", "get", "cs101-a", "--all", "--run", runA, "--format", "tar.gz", "-O", out).want(t, exitOK, out)
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
	if len(names) != 7 || names[0] != "index.json" {
		t.Errorf("tar.gz entries %v", names)
	}
	r := e.run("artifacts", "get", "cs101-a", "--all", "-O", "-")
	r.want(t, exitOK)
	if got, err := unzipped([]byte(r.out)); err != nil || len(got) != 7 {
		t.Errorf("to stdout: %v, %d entries", err, len(got))
	}

	// Refusals.
	e.run("artifacts", "get", "cs101-a", "--all", "--run", runB).want(t, exitRefused, "run_incomplete")
	e.run("artifacts", "get", "cs101-a", "--all", "--run", "20270101T000000Z-000000", "-O", "x.zip").want(t, exitRefused, "404")
	e.run("artifacts", "get", "cs101-a", "--all", "--format", "rar").want(t, exitUsage, "rar")
	e.run("artifacts", "get", "cs101-a", "alice", "--all").want(t, exitUsage, "--all takes the class alone")
	e.run("artifacts", "get", "cs101-a", "alice", "files/workspace/hello.py", "--format", "zip").want(t, exitUsage, "go with --all")

	// An object changed after its manifest was written: the server cuts the
	// download off, and nothing is left in the directory.
	key := artifacts.FilesKey(api.ArtifactPrefix("cs101-a", runA, "bob"), "workspace/notes.txt")
	if _, err := e.art.PutStream(context.Background(), key, strings.NewReader("tampered\n"), -1, ""); err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	e.run("artifacts", "get", "cs101-a", "--all", "-O", filepath.Join(empty, "run.zip")).want(t, exitServer, "cut off")
	if left, _ := os.ReadDir(empty); len(left) != 0 {
		t.Errorf("a download cut off left %v", left)
	}
}

func TestConfigPrecedence(t *testing.T) {
	e := newEnv(t)
	// The default path under XDG_CONFIG_HOME: server and token from the file.
	os.MkdirAll(filepath.Join(e.xdg, "homeroom"), 0o755)
	def := filepath.Join(e.xdg, "homeroom", "config.yaml")
	os.WriteFile(def, []byte("server: "+e.url+"\ntoken: "+adminToken+"\n"), 0o600)
	e.runWith(nil, "", false, "list").want(t, exitOK)

	// Environment beats the file, flags beat the environment.
	e.runWith(map[string]string{envToken: "wrong"}, "", false, "list").want(t, exitRefused, "401")
	e.runWith(map[string]string{envToken: "wrong"}, "", false, "--token", adminToken, "list").want(t, exitOK)
	e.runWith(nil, "", false, "--token", "wrong", "list").want(t, exitRefused, "401")

	// --config names another file; it beats the default one.
	other := filepath.Join(t.TempDir(), "other.yaml")
	os.WriteFile(other, []byte("server: "+e.url+"\ntoken: wrong\n"), 0o600)
	e.runWith(nil, "", false, "--config", other, "list").want(t, exitRefused, "401")
	e.runWith(map[string]string{envToken: adminToken}, "", false, "--config", other, "list").want(t, exitOK)

	// HOME/.config when XDG_CONFIG_HOME is unset.
	home := t.TempDir()
	os.MkdirAll(filepath.Join(home, ".config", "homeroom"), 0o755)
	os.WriteFile(filepath.Join(home, ".config", "homeroom", "config.yaml"), []byte("server: "+e.url+"\ntoken: "+adminToken+"\n"), 0o600)
	e.runWith(map[string]string{"XDG_CONFIG_HOME": "", "HOME": home}, "", false, "list").want(t, exitOK)

	// A named file that is missing or malformed is bad input.
	e.runWith(nil, "", false, "--config", filepath.Join(t.TempDir(), "none.yaml"), "list").want(t, exitUsage, "none.yaml")
	os.WriteFile(other, []byte("sever: x\n"), 0o600)
	e.runWith(nil, "", false, "--config", other, "list").want(t, exitUsage, "sever")
}

func TestCompletionAndHelp(t *testing.T) {
	e := newEnv(t)
	for _, sh := range []string{"bash", "zsh", "fish"} {
		r := e.run("completion", sh)
		r.want(t, exitOK)
		if len(r.out) < 100 || !strings.Contains(r.out, "homeroomctl") {
			t.Errorf("completion %s: %d bytes", sh, len(r.out))
		}
	}
	e.runStdin(classJSON, "apply", "-f", "-").want(t, exitOK)
	e.run("__complete", "get", "").want(t, exitOK, "bio-1")
	for _, args := range [][]string{{"--help"}, {"up", "--help"}, {"artifacts", "get", "--help"}} {
		e.run(args...).want(t, exitOK, "Exit codes:", "4  --wait timed out")
	}
	e.run("nope").want(t, exitUsage, "unknown command")
	e.run("up", "--nope").want(t, exitUsage, "unknown flag")
}

type brokenHandler struct{}

func (brokenHandler) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusServiceUnavailable)
	w.Write([]byte(`{"error": {"code": "unavailable", "message": "store down"}}`))
}

// A school's nightly roster file, imported by a script: a bad file is
// refused line by line with nothing registered, --dry-run registers
// nothing, and the import registers exactly what the file says.
func TestRostersImportAndList(t *testing.T) {
	e := newEnv(t)
	if _, _, err := e.store.PutSubject(context.Background(), "bio101", "Biology"); err != nil {
		t.Fatal(err)
	}
	registered := func() []api.Roster {
		t.Helper()
		rs, err := e.store.ListRosters(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte("class,subject,student\nbio101-a,bio101,alice\nbio101-a,chem,bob\nbio101-a,bio101,Carol X\n"), 0o644)
	r := e.run("rosters", "import", "-f", bad)
	r.want(t, exitRefused, "invalid_csv", "bad.csv line 3:", "bad.csv line 4:")
	if strings.Contains(r.err, "line 2:") {
		t.Errorf("a good line reported bad: %s", r.err)
	}
	if rs := registered(); len(rs) != 0 {
		t.Fatalf("a refused file registered %+v", rs)
	}

	good := "student,class,subject\nalice,bio101-a,bio101\nbob,bio101-a,bio101\ndan,bio101-b,bio101\n"
	e.runStdin(good, "rosters", "import", "-f", "-", "--dry-run").
		want(t, exitOK, "2 classes, 3 students checked, nothing registered", "new: bio101-a, bio101-b")
	if rs := registered(); len(rs) != 0 {
		t.Fatalf("--dry-run registered %+v", rs)
	}
	e.runStdin(good, "rosters", "import", "-f", "-").want(t, exitOK, "2 classes, 3 students registered", "new: bio101-a, bio101-b")
	r = e.runStdin(good, "-o", "json", "rosters", "import", "-f", "-")
	r.want(t, exitOK)
	var res struct {
		Classes   int      `json:"classes"`
		Unchanged []string `json:"unchanged"`
	}
	if err := json.Unmarshal([]byte(r.out), &res); err != nil || res.Classes != 2 || strings.Join(res.Unchanged, ",") != "bio101-a,bio101-b" {
		t.Errorf("the same file again, -o json: %v %s", err, r.out)
	}
	rs := registered()
	if len(rs) != 2 || rs[0].ClassID != "bio101-a" || strings.Join(rs[0].Students, ",") != "alice,bob" {
		t.Errorf("registered: %+v", rs)
	}
	e.run("rosters", "list").want(t, exitOK, "CLASS", "bio101-a", "bio101", "alice,bob", "bio101-b")

	e.run("rosters", "import").want(t, exitUsage, "-f")
	e.run("rosters", "import", "-f", filepath.Join(dir, "missing.csv")).want(t, exitUsage, "missing.csv")
	// A teacher may list their subject's classes but not import.
	if _, _, err := e.store.PutUser(context.Background(), "ada", api.RoleTeacher, []string{"bio101"}); err != nil {
		t.Fatal(err)
	}
	tok := e.run("token", "issue", "ada")
	tok.want(t, exitOK)
	teacher := map[string]string{envServer: e.url, envToken: strings.TrimSpace(tok.out)}
	e.runWith(teacher, "", false, "rosters", "list").want(t, exitOK, "bio101-a")
	e.runWith(teacher, good, false, "rosters", "import", "-f", "-").want(t, exitRefused, "403")
}

// An admin's script gives a teacher a token: printed alone on stdout, it
// works at once; with -o json it comes with its id and expiry.
func TestTokenIssue(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, _, err := e.store.PutSubject(ctx, "cs101", ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.store.PutUser(ctx, "grace", api.RoleTeacher, []string{"cs101"}); err != nil {
		t.Fatal(err)
	}
	r := e.run("token", "issue", "grace", "--description", "grace's laptop")
	r.want(t, exitOK)
	secret := strings.TrimSpace(r.out)
	if strings.Contains(secret, "\n") || secret == "" {
		t.Fatalf("stdout is not just the token: %q", r.out)
	}
	as := func(token string, args ...string) result {
		return e.runWith(map[string]string{envServer: e.url, envToken: token}, "", false, args...)
	}
	as(secret, "list").want(t, exitOK, "no classes")

	r = e.run("-o", "json", "token", "issue", "grace", "--expires", "720h")
	r.want(t, exitOK)
	var tok struct {
		Token       string     `json:"token"`
		ID          string     `json:"id"`
		User        string     `json:"user"`
		Description string     `json:"description"`
		ExpiresAt   *time.Time `json:"expiresAt"`
	}
	if err := json.Unmarshal([]byte(r.out), &tok); err != nil || tok.Token == "" || tok.ID == "" || tok.User != "grace" || tok.ExpiresAt == nil {
		t.Fatalf("-o json: %v %s", err, r.out)
	}
	if d := time.Until(*tok.ExpiresAt); d < 719*time.Hour || d > 720*time.Hour {
		t.Errorf("expires in %s, want 720h", d)
	}
	as(tok.Token, "list").want(t, exitOK)

	e.run("token", "issue", "nobody").want(t, exitRefused, "404")
	e.run("token", "issue", "grace", "--expires", "-1h").want(t, exitUsage, "--expires")
	as(secret, "token", "issue", "grace").want(t, exitRefused, "403")
	e.run("token", "issue").want(t, exitUsage)
}

// A teacher's script issues the students' links of a class that is Up and
// prints them as a table, CSV for a mail merge, or JSON; a class that is not
// Up and students not in the class are refused, each student named.
func TestLinks(t *testing.T) {
	e := newEnv(t)
	e.runStdin(classYAML, "apply", "-f", "-").want(t, exitOK)
	e.run("links", "cs101-a").want(t, exitRefused, "not_up", "409")
	e.run("up", "cs101-a").want(t, exitOK)

	r := e.run("links", "cs101-a")
	r.want(t, exitOK, "STUDENT", "EXPIRES", "URL", "3 links issued, shown only now")
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	if len(lines) != 4 {
		t.Fatalf("want a header and 3 links:\n%s", r.out)
	}
	for i, s := range []string{"alice", "bob", "carol"} {
		f := strings.Fields(lines[i+1])
		if len(f) != 3 || f[0] != s || !strings.HasPrefix(f[2], "http://"+s+".cs101-a.lab.localhost/.homeroom/signin/hrl_") {
			t.Errorf("line %d: %q", i+1, lines[i+1])
		}
		if _, err := time.Parse(time.RFC3339, f[1]); err != nil {
			t.Errorf("expiry of %s: %v", s, err)
		}
	}

	r = e.run("links", "cs101-a", "-o", "csv")
	r.want(t, exitOK)
	recs, err := csv.NewReader(strings.NewReader(r.out)).ReadAll()
	if err != nil || len(recs) != 4 || strings.Join(recs[0], ",") != "student,holder,url,expiresAt" {
		t.Fatalf("-o csv: %v\n%s", err, r.out)
	}
	for _, rec := range recs[1:] {
		// A link ends with the class's time limit (2 hours here) at the latest.
		exp, err := time.Parse(time.RFC3339, rec[3])
		if rec[0] != rec[1] || !strings.Contains(rec[2], "/.homeroom/signin/hrl_") || err != nil || time.Until(exp) > 2*time.Hour || time.Until(exp) < time.Hour {
			t.Errorf("-o csv line: %q (%v)", rec, err)
		}
	}

	// One student again: a new link, and only theirs.
	r = e.run("links", "cs101-a", "--student", "bob", "-o", "json")
	r.want(t, exitOK)
	var l struct {
		Items []struct {
			Student, Holder, URL string
			ExpiresAt            time.Time
		}
	}
	if err := json.Unmarshal([]byte(r.out), &l); err != nil || len(l.Items) != 1 || l.Items[0].Student != "bob" || l.Items[0].Holder != "bob" || l.Items[0].ExpiresAt.IsZero() {
		t.Fatalf("--student bob -o json: %v %s", err, r.out)
	}
	if l.Items[0].URL == recs[2][2] {
		t.Errorf("bob's link issued again is the same: %s", l.Items[0].URL)
	}

	// The caller's own links, to help.
	r = e.run("links", "cs101-a", "--teacher", "--student", "alice,carol", "-o", "csv")
	r.want(t, exitOK, "the students' own links are unchanged")
	if recs, err := csv.NewReader(strings.NewReader(r.out)).ReadAll(); err != nil || len(recs) != 3 ||
		recs[1][0] != "alice" || recs[1][1] != "admin" || recs[2][0] != "carol" || recs[2][1] != "admin" {
		t.Errorf("--teacher -o csv: %v\n%s", err, r.out)
	}

	r = e.run("links", "cs101-a", "--student", "zed", "--student", "alice", "--student", "yan")
	r.want(t, exitRefused, "not_in_class", `student "zed": not a student of this class`, `student "yan"`)
	if r.out != "" {
		t.Errorf("a refusal printed links: %s", r.out)
	}
	e.run("links", "cs101-a", "--student", "Bob").want(t, exitRefused, "invalid_id")
	e.run("links", "nope").want(t, exitRefused, "not_found")
	e.run("links").want(t, exitUsage, "accepts 1 arg")
	e.run("links", "cs101-a", "-o", "yaml").want(t, exitUsage, "want table, csv or json")
	e.run("list", "-o", "csv").want(t, exitUsage, "want table or json")
	e.run("links", "--help").want(t, exitOK, "Exit codes:", "signs them out")
	e.run("__complete", "links", "cs101-a", "-o", "").want(t, exitOK, "csv")

	// A teacher of another subject may not.
	ctx := context.Background()
	if _, _, err := e.store.PutSubject(ctx, "bio", ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.store.PutUser(ctx, "ada", api.RoleTeacher, []string{"bio"}); err != nil {
		t.Fatal(err)
	}
	tok := e.run("token", "issue", "ada")
	tok.want(t, exitOK)
	e.runWith(map[string]string{envServer: e.url, envToken: strings.TrimSpace(tok.out)}, "", false, "links", "cs101-a").
		want(t, exitRefused, "403")
}

// links --list prints the live links of a class without the links
// themselves, as a table, CSV or JSON: whose, who holds it, when and by whom
// it was issued, until when it signs in.
func TestLinksList(t *testing.T) {
	e := newEnv(t)
	e.runStdin(classYAML, "apply", "-f", "-").want(t, exitOK)
	r := e.run("links", "cs101-a", "--list")
	r.want(t, exitOK, "no live links")
	if r.out != "" {
		t.Errorf("no live links, yet stdout: %q", r.out)
	}
	e.run("up", "cs101-a").want(t, exitOK)
	e.run("links", "cs101-a", "--list", "-o", "json").want(t, exitOK, `"items": []`)
	before := time.Now().Add(-time.Second)
	e.run("links", "cs101-a", "--student", "alice,bob", "-o", "csv").want(t, exitOK)
	e.run("links", "cs101-a", "--student", "carol", "--teacher").want(t, exitOK)

	r = e.run("links", "cs101-a", "--list")
	r.want(t, exitOK, "STUDENT", "HOLDER", "ISSUED BY", "EXPIRES")
	if strings.Contains(r.out, "hrl_") || strings.Contains(r.out, "http") {
		t.Fatalf("--list shows links:\n%s", r.out)
	}
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	if len(lines) != 4 {
		t.Fatalf("want a header and 3 live links:\n%s", r.out)
	}
	rows := map[string][]string{}
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) != 5 {
			t.Fatalf("line %q", line)
		}
		rows[f[0]+"/"+f[1]] = f
	}
	for _, k := range []string{"alice/alice", "bob/bob", "carol/admin"} {
		f, ok := rows[k]
		if !ok {
			t.Fatalf("no live link %s:\n%s", k, r.out)
		}
		issued, err1 := time.Parse(time.RFC3339, f[2])
		expires, err2 := time.Parse(time.RFC3339, f[4])
		// Issued now, by the admin; ends with the class's time limit (2
		// hours) at the latest.
		if err1 != nil || err2 != nil || f[3] != "admin" || issued.Before(before.Truncate(time.Second)) ||
			time.Until(expires) > 2*time.Hour || time.Until(expires) < time.Hour {
			t.Errorf("live link %s: %q (%v, %v)", k, f, err1, err2)
		}
	}

	r = e.run("links", "cs101-a", "--list", "-o", "csv")
	r.want(t, exitOK)
	recs, err := csv.NewReader(strings.NewReader(r.out)).ReadAll()
	if err != nil || len(recs) != 4 || strings.Join(recs[0], ",") != "student,holder,issuedAt,issuedBy,expiresAt" {
		t.Fatalf("--list -o csv: %v\n%s", err, r.out)
	}

	// Only bob's, as JSON.
	r = e.run("links", "cs101-a", "--list", "--student", "bob", "-o", "json")
	r.want(t, exitOK)
	var l struct {
		Items []struct {
			Student, Holder, IssuedBy, URL string
			IssuedAt, ExpiresAt            time.Time
		}
	}
	if err := json.Unmarshal([]byte(r.out), &l); err != nil || len(l.Items) != 1 || l.Items[0].Student != "bob" || l.Items[0].Holder != "bob" ||
		l.Items[0].IssuedBy != "admin" || l.Items[0].IssuedAt.IsZero() || !l.Items[0].ExpiresAt.After(l.Items[0].IssuedAt) || l.Items[0].URL != "" {
		t.Fatalf("--list --student bob -o json: %v %s", err, r.out)
	}

	e.run("links", "cs101-a", "--list", "--teacher").want(t, exitUsage, "leave out --teacher")
	e.run("links", "nope", "--list").want(t, exitRefused, "not_found")
	e.run("links", "cs101-a", "--list", "-o", "yaml").want(t, exitUsage, "want table, csv or json")
	e.run("links", "--help").want(t, exitOK, "--list", "issued by")

	// Once the class is Down no link signs in, and none is listed.
	e.run("down", "cs101-a").want(t, exitOK)
	r = e.run("links", "cs101-a", "--list", "-o", "csv")
	r.want(t, exitOK)
	if strings.TrimSpace(r.out) != "student,holder,issuedAt,issuedBy,expiresAt" {
		t.Errorf("live links of a class that is Down:\n%s", r.out)
	}
}
