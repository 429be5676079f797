package apiserver_test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/apiserver"
	"github.com/homeroom/homeroom/pkg/artifacts"
	"github.com/homeroom/homeroom/pkg/policy"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"
)

// newS3Env is newEnv over a real S3 server (versitygw) instead of the
// embedded one; it also returns the server, for tests that stop it.
func newS3Env(t *testing.T) (*env, *testenv.S3Server) {
	t.Helper()
	s3 := testenv.StartS3(t)
	uri, db := testenv.StoreURI(t)
	st := testenv.OpenStore(t, uri, db)
	cfg := s3.Config()
	// A stopped server must fail a read quickly, not after minutes.
	cfg.IdleTimeout = 5 * time.Second
	art, err := artifacts.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	s := apiserver.New(st, art, policy.Default(), token, zaptest.NewLogger(t), reg, reg,
		apiserver.WithRateLimit(10000, 10000), apiserver.WithAuthFailureLimit(10000, 10000))
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(s.Close)
	return &env{t: t, srv: srv, api: s, store: st, art: art, uri: uri, db: db}, s3
}

// archived is what a run's archive must hold: entry name → bytes.
type archived map[string][]byte

// storeStudent stores one student's collection of a run as the controller
// does, through pkg/artifacts: each file with PutStream, the log, then the
// manifest. files are path (relative to /) → content. It adds to want what
// the archive must hold for the student, the manifest as stored included.
func (e *env) storeStudent(want archived, class, run, student string, files map[string][]byte) {
	e.t.Helper()
	ctx := context.Background()
	exit := 0
	m := &artifacts.Manifest{ClassID: class, Subject: "cs101", StudentID: student, RunID: run, Template: "sandbox",
		Container:   artifacts.ContainerInfo{Name: api.ContainerName(class, student), State: "exited", ExitCode: &exit},
		CollectedAt: time.Date(2026, 11, 29, 13, 52, 0, 0, time.UTC)}
	prefix := m.Prefix()
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		b := files[p]
		obj, err := e.art.PutStream(ctx, artifacts.FilesKey(prefix, p), bytes.NewReader(b), int64(len(b)), "")
		if err != nil {
			e.t.Fatal(err)
		}
		m.Files = append(m.Files, artifacts.File{Path: p, Key: obj.Key, Size: obj.Size, SHA256: obj.SHA256})
		want[student+"/files/"+p] = b
	}
	log := []byte(fmt.Sprintf("2026-11-29T13:51:00Z %s ran\n", student))
	var err error
	if m.Logs, err = e.art.UploadLogs(ctx, prefix, bytes.NewReader(log), -1); err != nil {
		e.t.Fatal(err)
	}
	want[student+"/logs/container.log"] = log
	if _, err := e.art.PutManifest(ctx, m); err != nil {
		e.t.Fatal(err)
	}
	want[student+"/manifest.json"] = e.stored(artifacts.ManifestKey(prefix))
}

// stored reads an object back as stored.
func (e *env) stored(key string) []byte {
	e.t.Helper()
	rc, _, err := e.art.Open(context.Background(), key)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

// completeRun writes the run's index, as the controller does when its
// Down completes, and adds it to want.
func (e *env) completeRun(want archived, class, run string, roster []string) {
	e.t.Helper()
	started := time.Date(2026, 11, 29, 13, 50, 50, 0, time.UTC)
	if _, err := e.art.WriteRunIndex(context.Background(), class, run, roster, started, started.Add(3*time.Minute), artifacts.RunInfo{Subject: "cs101"}); err != nil {
		e.t.Fatal(err)
	}
	if want != nil {
		want["index.json"] = e.stored(artifacts.RunIndexKey(class, run))
	}
}

// randomBytes are n bytes that do not compress.
func randomBytes(r *rand.ChaCha8, n int) []byte {
	b := make([]byte, n)
	r.Read(b)
	return b
}

type download struct {
	code   int
	header http.Header
	body   []byte
	// err is set when the transfer broke: no answer, or a body cut off.
	err error
}

// download GETs path as tok, reading the body whatever happens; hdr are
// header name/value pairs.
func (e *env) download(tok, path string, hdr ...string) download {
	e.t.Helper()
	req, err := http.NewRequest("GET", e.srv.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return download{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return download{code: resp.StatusCode, header: resp.Header, body: b, err: err}
}

// unpack reads an archive of the format named and returns its entries in
// order; an archive that is not whole is an error.
func unpack(format string, b []byte) ([]string, archived, error) {
	var names []string
	got := archived{}
	add := func(name string, r io.Reader) error {
		if _, dup := got[name]; dup {
			return fmt.Errorf("%s twice", name)
		}
		data, err := io.ReadAll(r)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		names = append(names, name)
		got[name] = data
		return nil
	}
	switch format {
	case "zip":
		zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return nil, nil, err
		}
		for _, f := range zr.File {
			if f.Method != zip.Deflate {
				return nil, nil, fmt.Errorf("%s stored with method %d", f.Name, f.Method)
			}
			rc, err := f.Open()
			if err != nil {
				return nil, nil, err
			}
			err = add(f.Name, rc) // the reader checks the CRC at EOF
			rc.Close()
			if err != nil {
				return nil, nil, err
			}
		}
	case "tar.gz":
		gz, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, nil, err
		}
		tr := tar.NewReader(gz)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, nil, err
			}
			if h.Typeflag != tar.TypeReg {
				return nil, nil, fmt.Errorf("%s has type %c", h.Name, h.Typeflag)
			}
			if err := add(h.Name, tr); err != nil {
				return nil, nil, err
			}
		}
		// The gzip trailer's CRC and length, past tar's end.
		if _, err := io.Copy(io.Discard, gz); err != nil {
			return nil, nil, err
		}
		if err := gz.Close(); err != nil {
			return nil, nil, err
		}
	default:
		return nil, nil, fmt.Errorf("format %q", format)
	}
	return names, got, nil
}

// sameFiles compares an archive's entries with what it must hold, entry by
// entry.
func sameFiles(t *testing.T, what string, got, want archived) {
	t.Helper()
	for name, w := range want {
		g, ok := got[name]
		switch {
		case !ok:
			t.Errorf("%s: %s is missing", what, name)
		case !bytes.Equal(g, w):
			t.Errorf("%s: %s has %d bytes that differ from the %d stored", what, name, len(g), len(w))
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: %s should not be there", what, name)
		}
	}
}

// archiveCount is homeroom_run_archives_total for format and outcome.
func (e *env) archiveCount(format, outcome string) int {
	e.t.Helper()
	r := e.do("GET", "/metrics", "")
	m := regexp.MustCompile(`(?m)^homeroom_run_archives_total\{format="` + regexp.QuoteMeta(format) + `",outcome="` + outcome + `"\} (\d+)$`).FindSubmatch(r.body)
	if m == nil {
		e.t.Fatalf("no homeroom_run_archives_total{format=%q,outcome=%q} in /metrics", format, outcome)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// TestArchiveOfARun: a run of 30 students written through pkg/artifacts to
// a real S3 server comes back whole as a zip and as a tar.gz, file by
// file, with every manifest and the index; every Accept gets the format it
// asks for or a 406; an object changed after its manifest was written
// breaks the download instead of giving an archive that looks whole.
func TestArchiveOfARun(t *testing.T) {
	e, _ := newS3Env(t)
	s := e.school() // ada teaches cs101 (cs-a's subject), bob bio
	const class = "cs-a"
	rnd := rand.NewChaCha8([32]byte{1})
	want := archived{}
	var students []string
	for i := range 30 {
		st := fmt.Sprintf("s%02d", i)
		students = append(students, st)
		e.storeStudent(want, class, runA, st, map[string][]byte{
			"workspace/notes.txt":              []byte(st + "'s notes\n"),
			"workspace/empty.txt":              {},
			"workspace/src/pkg/deep/main.py":   []byte("print('" + st + "')\n"),
			"workspace/data/blob.bin":          randomBytes(rnd, 1000+i*3000),
			"workspace/repeated.txt":           bytes.Repeat([]byte(st+" "), 5000),
			"workspace/with space/ünïcode.txt": []byte("ü\n"),
		})
	}
	// Two students of the roster were never collected: the index says so,
	// and the archive has nothing of theirs.
	e.completeRun(want, class, runA, append(slices.Clone(students), "zz-absent", "zz-gone"))
	base := "/api/v1/classes/" + class + "/runs/" + runA + "/archive"
	// A run of one student, for the ways of asking for a format.
	const small = "cs-small"
	wantSmall := archived{}
	e.storeStudent(wantSmall, small, runA, "alice", map[string][]byte{"workspace/notes.txt": []byte("alice's notes\n")})
	e.completeRun(wantSmall, small, runA, []string{"alice"})

	for _, tc := range []struct {
		desc, format, query string
		hdr                 []string
		whole               bool // the run of 30, not the small one
	}{
		{desc: "the run of 30 as a zip", format: "zip", whole: true},
		{desc: "the run of 30 as a tar.gz", format: "tar.gz", hdr: []string{"Accept", "application/gzip"}, whole: true},
		{desc: "no Accept", format: "zip"},
		{desc: "any type", format: "zip", hdr: []string{"Accept", "*/*"}},
		{desc: "a browser's Accept", format: "zip", hdr: []string{"Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}},
		{desc: "zip", format: "zip", hdr: []string{"Accept", "application/zip"}},
		{desc: "gzip", format: "tar.gz", hdr: []string{"Accept", "application/gzip"}},
		{desc: "x-gzip", format: "tar.gz", hdr: []string{"Accept", "application/x-gzip"}},
		{desc: "x-tar+gzip", format: "tar.gz", hdr: []string{"Accept", "application/x-tar+gzip"}},
		{desc: "gzip preferred by quality", format: "tar.gz", hdr: []string{"Accept", "application/zip;q=0.5, application/gzip"}},
		{desc: "zip refused, anything else", format: "tar.gz", hdr: []string{"Accept", "application/zip;q=0, */*"}},
		{desc: "the query wins over Accept", format: "tar.gz", query: "?format=tar.gz", hdr: []string{"Accept", "application/json"}},
		{desc: "the query wins over Accept, zip", format: "zip", query: "?format=zip", hdr: []string{"Accept", "application/gzip"}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			cls, path, expect, entries := small, "/api/v1/classes/"+small+"/runs/"+runA+"/archive", wantSmall, 4
			if tc.whole {
				cls, path, expect, entries = class, base, want, 30*8+1
			}
			d := e.download(token, path+tc.query, tc.hdr...)
			if d.err != nil || d.code != http.StatusOK {
				t.Fatalf("%d %v %.300s", d.code, d.err, d.body)
			}
			ext, ct := ".zip", "application/zip"
			if tc.format == "tar.gz" {
				ext, ct = ".tar.gz", "application/gzip"
			}
			if got := d.header.Get("Content-Type"); got != ct {
				t.Errorf("Content-Type %q, want %q", got, ct)
			}
			if got, w := d.header.Get("Content-Disposition"), `attachment; filename="`+cls+"-"+runA+ext+`"`; got != w {
				t.Errorf("Content-Disposition %q, want %q", got, w)
			}
			if d.header.Get("X-Homeroom-Run-Id") != runA || d.header.Get("Content-Length") != "" {
				t.Errorf("headers %v", d.header)
			}
			names, got, err := unpack(tc.format, d.body)
			if err != nil {
				t.Fatalf("unpack %s: %v", tc.format, err)
			}
			if len(names) == 0 || names[0] != "index.json" {
				t.Errorf("the index is not first: %v", names[:min(3, len(names))])
			}
			sameFiles(t, tc.format, got, expect)
			if n := len(got); n != entries {
				t.Errorf("%d entries, want %d", n, entries)
			}
		})
	}

	// Authorization is that of the run's other reads: ada teaches cs101,
	// bob does not.
	if d := e.download(s.ada, base); d.err != nil || d.code != http.StatusOK {
		t.Errorf("ada, who teaches the class's subject: %d %v %.200s", d.code, d.err, d.body)
	} else if _, got, err := unpack("zip", d.body); err != nil {
		t.Errorf("ada's archive: %v", err)
	} else {
		sameFiles(t, "ada's zip", got, want)
	}
	index := e.doAs(s.bob, "GET", "/api/v1/classes/"+class+"/runs/"+runA, "")
	r := e.doAs(s.bob, "GET", base, "")
	if r.code != http.StatusForbidden || r.code != index.code || errorOf(t, r).Code != errorOf(t, index).Code {
		t.Errorf("bob: archive %d %s, index %d %s; want both 403", r.code, r.body, index.code, index.body)
	}
	if r := e.doAs(s.bob, "GET", "/api/v1/classes/nowhere/runs/"+runA+"/archive", ""); r.code != http.StatusForbidden {
		t.Errorf("bob, a class that exists nowhere: %d %s", r.code, r.body)
	}

	// A run under way (no index yet), one that does not exist, a bad id.
	e.storeStudent(archived{}, class, runB, "s00", map[string][]byte{"workspace/a.txt": []byte("a\n")})
	for _, tc := range []struct {
		desc, path string
		code       int
		errCode    string
		hdr        []string
	}{
		{"incomplete run", "/api/v1/classes/" + class + "/runs/" + runB + "/archive", http.StatusConflict, "run_incomplete", nil},
		{"unknown run", "/api/v1/classes/" + class + "/runs/" + runUnknown + "/archive", http.StatusNotFound, "not_found", nil},
		{"run of another class", "/api/v1/classes/cs-b/runs/" + runA + "/archive", http.StatusNotFound, "not_found", nil},
		{"bad run id", "/api/v1/classes/" + class + "/runs/latest/archive", http.StatusBadRequest, "invalid_run", nil},
		{"JSON only", base, http.StatusNotAcceptable, "not_acceptable", []string{"Accept", "application/json"}},
		{"text only", base, http.StatusNotAcceptable, "not_acceptable", []string{"Accept", "text/plain, text/html"}},
		{"zip refused", base, http.StatusNotAcceptable, "not_acceptable", []string{"Accept", "application/zip;q=0"}},
		{"unknown format", base + "?format=rar", http.StatusBadRequest, "invalid_query", nil},
		{"format twice", base + "?format=zip&format=zip", http.StatusBadRequest, "invalid_query", nil},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			r := e.do("GET", tc.path, "", tc.hdr...)
			if r.code != tc.code || errorOf(t, r).Code != tc.errCode || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
				t.Errorf("%d %s, want %d %s", r.code, r.body, tc.code, tc.errCode)
			}
		})
	}

	// An object overwritten after the manifest was written, in the middle
	// of the run: same size, other bytes; then another size.
	completeBefore := e.archiveCount("zip", "complete") + e.archiveCount("tar.gz", "complete")
	failedBefore := e.archiveCount("zip", "failed") + e.archiveCount("tar.gz", "failed")
	key := artifacts.FilesKey(api.ArtifactPrefix(class, runA, "s15"), "workspace/data/blob.bin")
	orig := want["s15/files/workspace/data/blob.bin"]
	for _, corrupt := range [][]byte{
		append([]byte{orig[0] ^ 0xff}, orig[1:]...),
		append(slices.Clone(orig), '!'),
	} {
		if _, err := e.art.PutStream(context.Background(), key, bytes.NewReader(corrupt), int64(len(corrupt)), ""); err != nil {
			t.Fatal(err)
		}
		for _, format := range []string{"zip", "tar.gz"} {
			d := e.download(token, base+"?format="+format)
			if d.err == nil {
				t.Errorf("%s with %s changed to %d bytes: the download ended normally (%d, %d bytes)", format, key, len(corrupt), d.code, len(d.body))
			}
			if _, _, err := unpack(format, d.body); err == nil {
				t.Errorf("%s with %s changed: what arrived (%d bytes) unpacks as a whole archive", format, key, len(d.body))
			}
		}
	}
	if got := e.archiveCount("zip", "failed") + e.archiveCount("tar.gz", "failed"); got != failedBefore+4 {
		t.Errorf("failed downloads counted %d, want %d", got, failedBefore+4)
	}
	if got := e.archiveCount("zip", "complete") + e.archiveCount("tar.gz", "complete"); got != completeBefore {
		t.Errorf("complete downloads counted %d, want %d", got, completeBefore)
	}
}

// TestArchiveOutlivesTimeoutsAndBreaksWithTheStore: an archive that takes
// longer than the server's read and write timeouts still arrives whole as
// long as it moves; when the S3 server goes away in the middle, the
// download breaks.
func TestArchiveOutlivesTimeoutsAndBreaksWithTheStore(t *testing.T) {
	e, s3 := newS3Env(t)
	const class = "cs101-a"
	rnd := rand.NewChaCha8([32]byte{2})
	want := archived{}
	var students []string
	for i := range 5 {
		st := fmt.Sprintf("big%d", i)
		students = append(students, st)
		e.storeStudent(want, class, runA, st, map[string][]byte{"workspace/big.bin": randomBytes(rnd, 600<<10)})
	}
	e.completeRun(want, class, runA, students)
	path := "/api/v1/classes/" + class + "/runs/" + runA + "/archive"

	// cmd/apiserver's timeouts, shortened: both end long before the
	// download below does. Small socket buffers on both sides hold the
	// apiserver back while the client pauses, as a slow network would.
	const buffer = 128 << 10
	slow := httptest.NewUnstartedServer(e.api.Handler())
	slow.Config.ReadTimeout = 500 * time.Millisecond
	slow.Config.WriteTimeout = 500 * time.Millisecond
	slow.Listener = smallBuffers{slow.Listener, buffer}
	slow.Start()
	t.Cleanup(slow.Close)
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			err = c.(*net.TCPConn).SetReadBuffer(buffer)
		}
		return c, err
	}}}
	pausing := func(pause func()) ([]byte, error) {
		req, _ := http.NewRequest("GET", slow.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("status %d", resp.StatusCode)
		}
		head := make([]byte, 64<<10)
		if _, err := io.ReadFull(resp.Body, head); err != nil {
			return nil, err
		}
		pause()
		rest, err := io.ReadAll(resp.Body)
		return append(head, rest...), err
	}
	b, err := pausing(func() { time.Sleep(1500 * time.Millisecond) })
	if err != nil {
		t.Fatalf("a download that pauses past the server's timeouts: %v", err)
	}
	_, got, err := unpack("zip", b)
	if err != nil {
		t.Fatalf("unpack: %v", err)
	}
	sameFiles(t, "zip", got, want)

	// The S3 server stops once the download has begun. It waits for the
	// read in flight, which waits for the client: stop it aside.
	stopped := make(chan struct{})
	b, err = pausing(func() {
		go func() { defer close(stopped); s3.Stop() }()
		time.Sleep(200 * time.Millisecond)
	})
	<-stopped
	if err == nil {
		t.Errorf("the S3 server stopped in the middle, yet the download ended normally (%d bytes)", len(b))
	}
	if _, _, err := unpack("zip", b); err == nil {
		t.Error("the S3 server stopped in the middle, yet what arrived unpacks as a whole archive")
	}
	if n := e.archiveCount("zip", "failed"); n != 1 {
		t.Errorf("failed downloads counted %d, want 1", n)
	}
}

// smallBuffers accepts connections with a small send buffer.
type smallBuffers struct {
	net.Listener
	size int
}

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		err = c.(*net.TCPConn).SetWriteBuffer(l.size)
	}
	return c, err
}

// TestArchiveDownloadButton: the class page lists the class's collections,
// and a complete one's "Download all (zip)" saves the run's archive; one
// whose object no longer matches its manifest saves nothing and says so.
func TestArchiveDownloadButton(t *testing.T) {
	chromium := testenv.Chromium(t)
	e, _ := newS3Env(t)
	const class = "cs101-a"
	if r := e.do("PUT", "/api/v1/classes/"+class, spec); r.code != http.StatusCreated {
		t.Fatalf("create: %d %s", r.code, r.body)
	}
	want := archived{}
	e.storeStudent(want, class, runA, "alice", map[string][]byte{"workspace/notes.txt": []byte("alice's notes\n"), "workspace/empty.txt": {}})
	e.storeStudent(want, class, runA, "bob", map[string][]byte{"workspace/src/main.py": []byte("print('bob')\n")})
	e.completeRun(want, class, runA, []string{"alice", "bob"})
	e.storeStudent(archived{}, class, runB, "alice", map[string][]byte{"workspace/notes.txt": []byte("more\n")})

	downloads := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-component-update", true), chromedp.UserDataDir(t.TempDir()))...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer cancelBrowser()
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	if _, err := chromedp.CallBrowser(bctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads}); err != nil {
		t.Fatal(err)
	}
	wait := func(what, js string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			if _, err := chromedp.Poll[bool](js, chromedp.WithPollingTimeout(20*time.Second), chromedp.WithPollingInterval(100*time.Millisecond))(ctx, tg); err != nil {
				return fmt.Errorf("waiting for %s: %w", what, err)
			}
			return nil
		})
	}
	do := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, actions...); err != nil {
			html, _ := chromedp.Run(bctx, chromedp.OuterHTML(chromedp.CSS("body")))
			t.Fatalf("%s: %v\nthe page: %.3000s", step, err, html)
		}
	}
	button := `#download-` + runA
	do("sign in and open the class",
		chromedp.Navigate(e.srv.URL+"/ui/"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), token+kb.Enter),
		wait("the class list", `document.querySelector("main").textContent.includes("`+class+`")`),
		chromedp.Navigate(e.srv.URL+"/ui/#/classes/"+class),
		wait("the collections", `!!document.querySelector("`+button+`")`),
		wait("the incomplete run without a button", `!!document.querySelector('#runs li[data-run="`+runB+`"]') && !document.querySelector('#runs li[data-run="`+runB+`"] button')`),
		chromedp.Click(chromedp.CSS(button)),
	)
	name := filepath.Join(downloads, class+"-"+runA+".zip")
	var b []byte
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var err error
		b, err = os.ReadFile(name)
		if _, cerr := os.Stat(name + ".crdownload"); err == nil && os.IsNotExist(cerr) {
			break
		}
		if time.Now().After(deadline) {
			entries, _ := os.ReadDir(downloads)
			t.Fatalf("no download at %s; the folder holds %v", name, entries)
		}
	}
	_, got, err := unpack("zip", b)
	if err != nil {
		t.Fatalf("the zip the page saved: %v", err)
	}
	sameFiles(t, "the zip the page saved", got, want)

	// An object changed since it was collected: the download breaks off,
	// the page says so, and nothing is saved.
	key := artifacts.FilesKey(api.ArtifactPrefix(class, runA, "bob"), "workspace/src/main.py")
	if _, err := e.art.PutStream(context.Background(), key, strings.NewReader("print('eve')\n"), -1, ""); err != nil {
		t.Fatal(err)
	}
	os.Remove(name)
	do("download the changed run",
		wait("the button ready again", `!document.querySelector("`+button+`").disabled`),
		chromedp.Click(chromedp.CSS(button)),
		wait("the refusal", `document.querySelector("#notice").textContent.includes("could not be downloaded")`),
		wait("the button ready again", `!document.querySelector("`+button+`").disabled`),
	)
	time.Sleep(500 * time.Millisecond)
	if entries, _ := os.ReadDir(downloads); len(entries) != 0 {
		t.Errorf("a download that broke off saved %v", entries)
	}
}

// A student whose collection is incomplete is in the archive with what was
// collected, and a file whose name is not UTF-8 keeps its exact name.
func TestArchiveKeepsIncompleteStudentsAndRawNames(t *testing.T) {
	e, _ := newS3Env(t)
	e.school()
	const class = "cs-raw"
	ctx := context.Background()
	latin1 := "workspace/r\xe9sum\xe9.txt"
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, body := range map[string]string{"workspace/r\xe9sum\xe9.txt": "latin-1", "workspace/ok.txt": "ok", "/etc/evil": "x"} {
		tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))})
		io.WriteString(tw, body)
	}
	tw.Close()
	m := &artifacts.Manifest{ClassID: class, Subject: "cs101", StudentID: "mallory", RunID: runA, Template: "sandbox"}
	fs, skipped, err := e.art.UploadTree(ctx, m.Prefix(), "/workspace", &buf, 0)
	if err != nil {
		t.Fatal(err)
	}
	m.Files, m.Skipped = fs, skipped
	if _, err := e.art.PutManifest(ctx, m); err != nil {
		t.Fatal(err)
	}
	e.completeRun(nil, class, runA, []string{"mallory"})
	if idx, err := e.art.GetRunIndex(ctx, class, runA); err != nil || idx.Students[0].Outcome != artifacts.OutcomeIncomplete {
		t.Fatalf("index: %+v, %v", idx, err)
	}
	for _, format := range []string{"zip", "tar.gz"} {
		d := e.download(token, "/api/v1/classes/"+class+"/runs/"+runA+"/archive?format="+format)
		if d.err != nil || d.code != http.StatusOK {
			t.Fatalf("%s: %d %v %.300s", format, d.code, d.err, d.body)
		}
		_, got, err := unpack(format, d.body)
		if err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		if string(got["mallory/files/"+latin1]) != "latin-1" || string(got["mallory/files/workspace/ok.txt"]) != "ok" {
			t.Errorf("%s: the incomplete student's files: %q", format, keysOf(got))
		}
	}
}

func keysOf(a archived) []string {
	var out []string
	for k := range a {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
