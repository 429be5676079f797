package client_test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/internal/versitygw"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/apiserver"
	"github.com/homeroom/homeroom/pkg/artifacts"
	"github.com/homeroom/homeroom/pkg/client"
	"github.com/homeroom/homeroom/pkg/policy"
	"github.com/homeroom/homeroom/pkg/store"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"
)

const adminToken = "test-admin-token"

// newServer serves the API in the test's process over an embedded store
// and an embedded S3, as pkg/apiserver's tests do.
func newServer(t *testing.T) (url string, st *store.Store, art *artifacts.Store) {
	t.Helper()
	return newServerWith(t, policy.Default())
}

// newServerWith is newServer with the policy pol.
func newServerWith(t *testing.T, pol *policy.Policy) (url string, st *store.Store, art *artifacts.Store) {
	t.Helper()
	uri, db := testenv.StoreURI(t)
	st = testenv.OpenStore(t, uri, db)
	emb, err := versitygw.StartEmbedded(context.Background(), t.TempDir(), "127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emb.Stop(context.Background()) })
	art, err = artifacts.New(context.Background(), emb.Config("homeroom"))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	s := apiserver.New(st, art, pol, adminToken, zaptest.NewLogger(t), reg, reg,
		apiserver.WithRateLimit(10000, 10000), apiserver.WithAuthFailureLimit(10000, 10000))
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(s.Close)
	return srv.URL, st, art
}

func newClient(t *testing.T, url, token string, opts ...client.Option) *client.Client {
	t.Helper()
	c, err := client.New(url, token, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func apiError(t *testing.T, err error, status int, code string) *client.Error {
	t.Helper()
	var e *client.Error
	if !errors.As(err, &e) || e.Status != status || e.Code != code {
		t.Fatalf("want %d %s, got %v", status, code, err)
	}
	if e.Message == "" {
		t.Errorf("error without the server's message: %+v", e)
	}
	return e
}

func TestClassCalls(t *testing.T) {
	url, st, _ := newServer(t)
	c := newClient(t, url+"/", adminToken) // a trailing slash is fine
	ctx := context.Background()
	spec := client.ClassSpec{Subject: "cs101", Template: "sandbox", Students: []string{"alice", "bob"}, TTLSeconds: 600}

	cl, created, err := c.PutClass(ctx, "cs101-a", spec)
	if err != nil || !created || cl.Generation != 1 || cl.Status.Phase != api.PhasePending {
		t.Fatalf("create: %v %v %+v", err, created, cl)
	}
	spec.Students = append(spec.Students, "carol")
	if cl, created, err = c.PutClass(ctx, "cs101-a", spec); err != nil || created || cl.Generation != 2 {
		t.Fatalf("replace: %v %v %+v", err, created, cl)
	}
	_, _, err = c.PutClass(ctx, "cs101-b", client.ClassSpec{Subject: "cs101", Template: "nope", Students: []string{"a"}})
	apiError(t, err, http.StatusUnprocessableEntity, "unknown_template")
	_, _, err = c.PutClass(ctx, "Bad_ID", spec)
	apiError(t, err, http.StatusBadRequest, "invalid_id")

	if cl, err = c.Up(ctx, "cs101-a"); err != nil || cl.DesiredPhase != api.PhaseUp || cl.Generation != 3 {
		t.Fatalf("up: %v %+v", err, cl)
	}
	e := apiError(t, c.Delete(ctx, "cs101-a"), http.StatusConflict, "not_down")
	if !e.IsClientError() || !strings.Contains(e.Error(), "409 not_down") {
		t.Errorf("error text: %q", e.Error())
	}
	if cl, err = c.Down(ctx, "cs101-a"); err != nil || cl.DesiredPhase != api.PhaseDown {
		t.Fatalf("down: %v %+v", err, cl)
	}
	// Down, with work a lost node still holds: kept, unless given up.
	cur, _ := st.Get(ctx, "cs101-a")
	if _, err := st.UpdateStatus(ctx, "cs101-a", cur.Version, api.ClassStatus{Phase: api.PhaseDown, ObservedGeneration: cur.Generation,
		LeftBehind: map[string][]api.LeftBehind{"a": {{On: "node3", Since: time.Now()}}}}); err != nil {
		t.Fatal(err)
	}
	if cl, err = c.GetClass(ctx, "cs101-a"); err != nil || cl.Status.Phase != api.PhaseDown || len(cl.Spec.Students) != 3 {
		t.Fatalf("get: %v %+v", err, cl)
	}
	cls, err := c.ListClasses(ctx)
	if err != nil || len(cls) != 1 || cls[0].ID != "cs101-a" {
		t.Fatalf("list: %v %+v", err, cls)
	}
	apiError(t, c.Delete(ctx, "cs101-a"), http.StatusConflict, "work_left_behind")
	if err := c.DeleteAbandoningLeftBehind(ctx, "cs101-a"); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetClass(ctx, "cs101-a")
	apiError(t, err, http.StatusNotFound, "not_found")
	if !client.IsNotFound(err) {
		t.Error("IsNotFound")
	}
	if cls, err = c.ListClasses(ctx); err != nil || len(cls) != 0 {
		t.Fatalf("list after delete: %v %+v", err, cls)
	}

	ts, err := c.ListTemplates(ctx)
	if err != nil || len(ts) == 0 || ts[0].Name != "sandbox" || ts[0].Image == "" || ts[0].Port == 0 {
		t.Fatalf("templates: %v %+v", err, ts)
	}
}

func TestAuthAndNetworkErrors(t *testing.T) {
	url, _, _ := newServer(t)
	ctx := context.Background()
	_, err := newClient(t, url, "wrong").ListClasses(ctx)
	apiError(t, err, http.StatusUnauthorized, "unauthorized")
	_, err = newClient(t, url, "").ListTemplates(ctx)
	apiError(t, err, http.StatusUnauthorized, "unauthorized")

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	_, err = newClient(t, dead, adminToken).ListClasses(ctx)
	var ae *client.Error
	if err == nil || errors.As(err, &ae) {
		t.Fatalf("unreachable server: %v", err)
	}

	for _, bad := range []string{"", "localhost:8080", "ftp://x", "http://"} {
		if _, err := client.New(bad, ""); err == nil {
			t.Errorf("New(%q) accepted", bad)
		}
	}
}

// Every call is bounded by the client's timeout, a streamed artifact by it
// until the headers come.
func TestTimeouts(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	c := newClient(t, slow.URL, adminToken, client.WithTimeout(100*time.Millisecond))
	start := time.Now()
	if _, err := c.ListClasses(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("list against a stuck server: %v", err)
	}
	if _, err := c.GetArtifact(context.Background(), "c", "s", "logs/container.log", ""); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("artifact against a stuck server: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("timeouts took %s", d)
	}

	// A non-JSON error body still becomes an *Error.
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "bad gateway", http.StatusBadGateway)
	}))
	defer plain.Close()
	_, err := newClient(t, plain.URL, "").ListClasses(context.Background())
	var e *client.Error
	if !errors.As(err, &e) || e.Status != http.StatusBadGateway || e.Code != "" || e.Message != "bad gateway" || e.IsClientError() {
		t.Errorf("plain 502: %#v", err)
	}
}

const (
	runA = "20261129T135050Z-650d3d"
	runB = "20261130T090000Z-a1b2c3"
)

func collected(t *testing.T, art *artifacts.Store, class, run, student string, files map[string]string) {
	t.Helper()
	collectedAs(t, art, class, run, student, "sandbox", files)
}

// collectedAs is collected with a manifest naming template.
func collectedAs(t *testing.T, art *artifacts.Store, class, run, student, template string, files map[string]string) {
	t.Helper()
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
	fs, skipped, err := art.UploadTree(ctx, m.Prefix(), "/workspace", &buf, 0)
	if err != nil {
		t.Fatal(err)
	}
	m.Files, m.Skipped = fs, skipped
	if m.Logs, err = art.UploadLogs(ctx, m.Prefix(), strings.NewReader(student+" ran\n"), -1); err != nil {
		t.Fatal(err)
	}
	if _, err := art.PutManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
}

func TestArtifactsAndRuns(t *testing.T) {
	url, _, art := newServer(t)
	c := newClient(t, url, adminToken)
	ctx := context.Background()
	collected(t, art, "cs101-a", runA, "alice", map[string]string{"hello.py": "draft\n"})
	collected(t, art, "cs101-a", runB, "alice", map[string]string{"hello.py": "final\n", "dir/a b.txt": "spaced\n"})
	started := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	if _, err := art.WriteRunIndex(ctx, "cs101-a", runB, []string{"alice"}, started, started.Add(time.Minute), artifacts.RunInfo{}); err != nil {
		t.Fatal(err)
	}

	items, err := c.ListArtifacts(ctx, "cs101-a", "")
	if err != nil || len(items) != 5 {
		t.Fatalf("all runs: %v %+v", err, items)
	}
	items, err = c.ListArtifacts(ctx, "cs101-a", runA)
	if err != nil || len(items) != 2 {
		t.Fatalf("run A: %v %+v", err, items)
	}
	for _, it := range items {
		if it.RunID != runA || it.Student != "alice" || it.Key == "" || it.SHA256 == "" || it.Size == 0 {
			t.Errorf("item: %+v", it)
		}
	}
	_, err = c.ListArtifacts(ctx, "cs101-a", "20270101T000000Z-000000")
	apiError(t, err, http.StatusNotFound, "not_found")

	read := func(student, path, run string) string {
		t.Helper()
		rc, err := c.GetArtifact(ctx, "cs101-a", student, path, run)
		if err != nil {
			t.Fatalf("get %s %s %s: %v", student, path, run, err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := read("alice", "files/workspace/hello.py", ""); got != "final\n" {
		t.Errorf("latest: %q", got)
	}
	if got := read("alice", "files/workspace/hello.py", runA); got != "draft\n" {
		t.Errorf("run A: %q", got)
	}
	if got := read("alice", "files/workspace/dir/a b.txt", ""); got != "spaced\n" {
		t.Errorf("a path with a space: %q", got)
	}
	if got := read("alice", "logs/container.log", ""); got != "alice ran\n" {
		t.Errorf("logs: %q", got)
	}
	_, err = c.GetArtifact(ctx, "cs101-a", "alice", "files/workspace/nope", "")
	apiError(t, err, http.StatusNotFound, "not_found")

	runs, err := c.ListRuns(ctx, "cs101-a")
	if err != nil || len(runs) != 2 || runs[0].RunID != runA || runs[1].RunID != runB || !runs[1].Complete || runs[1].CompletedAt == nil {
		t.Fatalf("runs: %v %+v", err, runs)
	}
}

// A completed run comes whole as a zip or a tar.gz; a run under way is
// refused; a download the server cuts off is an error.
func TestDownloadRun(t *testing.T) {
	url, _, art := newServer(t)
	c := newClient(t, url, adminToken)
	ctx := context.Background()
	collected(t, art, "cs101-a", runA, "alice", map[string]string{"hello.py": "final\n", "dir/a b.txt": "spaced\n"})
	collected(t, art, "cs101-a", runA, "bob", map[string]string{"notes.txt": "bob\n"})
	started := time.Date(2026, 11, 29, 13, 50, 50, 0, time.UTC)
	if _, err := art.WriteRunIndex(ctx, "cs101-a", runA, []string{"alice", "bob", "carol"}, started, started.Add(time.Minute), artifacts.RunInfo{}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"alice/files/workspace/hello.py":    "final\n",
		"alice/files/workspace/dir/a b.txt": "spaced\n",
		"alice/logs/container.log":          "alice ran\n",
		"bob/files/workspace/notes.txt":     "bob\n",
		"bob/logs/container.log":            "bob ran\n",
	}
	for _, format := range []string{"", client.ArchiveZip, client.ArchiveTarGz} {
		var buf bytes.Buffer
		n, err := c.DownloadRun(ctx, "cs101-a", runA, format, &buf)
		if err != nil || n != int64(buf.Len()) || n == 0 {
			t.Fatalf("format %q: %d bytes (%d written): %v", format, n, buf.Len(), err)
		}
		got := map[string]string{}
		if format == client.ArchiveTarGz {
			gz, err := gzip.NewReader(&buf)
			if err != nil {
				t.Fatal(err)
			}
			tr := tar.NewReader(gz)
			for {
				h, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(tr)
				got[h.Name] = string(b)
			}
		} else {
			zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
			if err != nil {
				t.Fatalf("format %q: %v", format, err)
			}
			for _, f := range zr.File {
				rc, err := f.Open()
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					t.Fatal(err)
				}
				got[f.Name] = string(b)
			}
		}
		for name, body := range want {
			if got[name] != body {
				t.Errorf("format %q: %s is %q, want %q", format, name, got[name], body)
			}
		}
		if !strings.Contains(got["index.json"], `"carol"`) || !strings.Contains(got["bob/manifest.json"], `"studentId": "bob"`) || len(got) != len(want)+3 {
			t.Errorf("format %q: %d entries, index %q", format, len(got), got["index.json"])
		}
	}

	// A run under way has no index yet.
	collected(t, art, "cs101-a", runB, "alice", map[string]string{"hello.py": "more\n"})
	_, err := c.DownloadRun(ctx, "cs101-a", runB, "", io.Discard)
	apiError(t, err, http.StatusConflict, "run_incomplete")
	_, err = c.DownloadRun(ctx, "cs101-a", "20270101T000000Z-000000", "", io.Discard)
	apiError(t, err, http.StatusNotFound, "not_found")
	if _, err := c.DownloadRun(ctx, "cs101-a", runA, "rar", io.Discard); err == nil || !strings.Contains(err.Error(), "rar") {
		t.Errorf("format rar: %v", err)
	}

	// The server cuts the download off in the middle, as it does when an
	// object does not match its manifest.
	cut := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("format") != "zip" || r.Header.Get("Accept") != "application/zip" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/zip")
		w.Write(bytes.Repeat([]byte("PK"), 10000))
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}))
	defer cut.Close()
	var buf bytes.Buffer
	n, err := newClient(t, cut.URL, adminToken).DownloadRun(ctx, "cs101-a", runA, "zip", &buf)
	if !errors.Is(err, client.ErrCutOff) || n != 20000 || buf.Len() != 20000 {
		t.Errorf("a download cut off: %d bytes, %v", n, err)
	}
}

// Links are issued only while a class is Up: for every student by default,
// for the students named, or as the caller's own links to help; students
// outside the class are named in the refusal.
func TestIssueLinks(t *testing.T) {
	url, _, _ := newServer(t)
	c := newClient(t, url, adminToken)
	ctx := context.Background()
	spec := client.ClassSpec{Subject: "cs101", Template: "sandbox", Students: []string{"alice", "bob"}}
	if _, _, err := c.PutClass(ctx, "cs101-a", spec); err != nil {
		t.Fatal(err)
	}
	_, err := c.IssueLinks(ctx, "cs101-a", nil, false)
	apiError(t, err, http.StatusConflict, "not_up")
	if _, err := c.Up(ctx, "cs101-a"); err != nil {
		t.Fatal(err)
	}

	links, err := c.IssueLinks(ctx, "cs101-a", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(links) != 2 {
		t.Fatalf("links: %+v", links)
	}
	for i, want := range []string{"alice", "bob"} {
		l := links[i]
		if l.Student != want || l.Holder != want || !strings.HasPrefix(l.URL, "http://"+want+".cs101-a.lab.localhost/.homeroom/signin/hrl_") {
			t.Errorf("link %d: %+v", i, l)
		}
		if d := time.Until(l.ExpiresAt); d <= 0 || d > 13*time.Hour {
			t.Errorf("link %d expires in %s", i, d)
		}
	}

	again, err := c.IssueLinks(ctx, "cs101-a", []string{"bob"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != 1 || again[0].Student != "bob" || again[0].URL == links[1].URL {
		t.Errorf("bob's new link: %+v (old %s)", again, links[1].URL)
	}
	help, err := c.IssueLinks(ctx, "cs101-a", []string{"alice"}, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(help) != 1 || help[0].Student != "alice" || help[0].Holder != "admin" || !strings.Contains(help[0].URL, "alice.cs101-a.") {
		t.Errorf("the admin's link to alice's sandbox: %+v", help)
	}

	_, err = c.IssueLinks(ctx, "cs101-a", []string{"alice", "zed", "yan"}, false)
	e := apiError(t, err, http.StatusUnprocessableEntity, "not_in_class")
	if len(e.Details) != 2 || e.Details[0].Value != "zed" || e.Details[1].Value != "yan" {
		t.Errorf("details: %+v", e.Details)
	}
	_, err = c.IssueLinks(ctx, "cs101-a", []string{"Alice"}, false)
	apiError(t, err, http.StatusBadRequest, "invalid_id")
	_, err = c.IssueLinks(ctx, "nope", nil, false)
	apiError(t, err, http.StatusNotFound, "not_found")
}

// The live links of a class are listed without their secrets: the
// students' own and a teacher's to help, each with who issued it and when;
// a link issued again is listed once, with its new time; a class that is
// Down has none.
func TestListLinks(t *testing.T) {
	url, _, _ := newServer(t)
	c := newClient(t, url, adminToken)
	ctx := context.Background()
	spec := client.ClassSpec{Subject: "cs101", Template: "sandbox", Students: []string{"alice", "bob"}}
	if _, _, err := c.PutClass(ctx, "cs101-a", spec); err != nil {
		t.Fatal(err)
	}
	if live, err := c.ListLinks(ctx, "cs101-a"); err != nil || len(live) != 0 {
		t.Fatalf("a class that is not Up: %v %+v", err, live)
	}
	if _, err := c.Up(ctx, "cs101-a"); err != nil {
		t.Fatal(err)
	}
	if live, err := c.ListLinks(ctx, "cs101-a"); err != nil || len(live) != 0 {
		t.Fatalf("before any link: %v %+v", err, live)
	}
	before := time.Now().Add(-time.Second)
	issued, err := c.IssueLinks(ctx, "cs101-a", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.IssueLinks(ctx, "cs101-a", []string{"bob"}, true); err != nil {
		t.Fatal(err)
	}
	live, err := c.ListLinks(ctx, "cs101-a")
	if err != nil {
		t.Fatal(err)
	}
	byHolder := map[string]client.LiveLink{}
	for _, l := range live {
		byHolder[l.Student+"/"+l.Holder] = l
	}
	if len(live) != 3 || len(byHolder) != 3 {
		t.Fatalf("live links: %+v", live)
	}
	for _, k := range []string{"alice/alice", "bob/bob", "bob/admin"} {
		l, ok := byHolder[k]
		if !ok {
			t.Errorf("no live link %s: %+v", k, live)
			continue
		}
		if l.IssuedBy != "admin" || l.IssuedAt.Before(before) || l.IssuedAt.After(time.Now()) || !l.ExpiresAt.After(l.IssuedAt) {
			t.Errorf("live link %s: %+v", k, l)
		}
	}
	if !byHolder["alice/alice"].ExpiresAt.Equal(issued[0].ExpiresAt) {
		t.Errorf("alice's link expires at %s, listed %s", issued[0].ExpiresAt, byHolder["alice/alice"].ExpiresAt)
	}

	time.Sleep(5 * time.Millisecond)
	if _, err := c.IssueLinks(ctx, "cs101-a", []string{"alice"}, false); err != nil {
		t.Fatal(err)
	}
	again, err := c.ListLinks(ctx, "cs101-a")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range again {
		if l.Student == "alice" && l.Holder == "alice" {
			n++
			if !l.IssuedAt.After(byHolder["alice/alice"].IssuedAt) {
				t.Errorf("alice's link issued again: listed as issued %s, before %s", l.IssuedAt, byHolder["alice/alice"].IssuedAt)
			}
		}
	}
	if n != 1 || len(again) != 3 {
		t.Errorf("after alice's link was issued again: %+v", again)
	}

	if _, err := c.Down(ctx, "cs101-a"); err != nil {
		t.Fatal(err)
	}
	if live, err := c.ListLinks(ctx, "cs101-a"); err != nil || len(live) != 0 {
		t.Errorf("a class that is Down: %v %+v", err, live)
	}
	_, err = c.ListLinks(ctx, "nope")
	apiError(t, err, http.StatusNotFound, "not_found")
}
