package artifacts_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"go.uber.org/zap"

	"github.com/homeroom/homeroom/internal/versitygw"
	"github.com/homeroom/homeroom/pkg/artifacts"
)

func TestEmbeddedPersistsAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	const bucket = "homeroom-artifacts"
	data := randomBytes(2*testPartSize+99, 10) // multipart, unknown size
	doc := map[string]string{"student": "alice"}

	e := startEmbedded(t, dir)
	s := newStore(t, e.Config(bucket))
	ctx := testContext(t)
	streamed, err := s.PutStream(ctx, "classes/c1/r1/alice/files/workspace/data.bin", onlyReader{bytes.NewReader(data)}, -1, "")
	if err != nil {
		t.Fatal(err)
	}
	jsonObj, err := s.PutJSON(ctx, "classes/c1/r1/alice/manifest.json", doc)
	if err != nil {
		t.Fatal(err)
	}
	stopEmbedded(t, e)
	if err := s.Ping(ctx); err == nil {
		t.Fatal("Ping succeeded with the embedded server stopped")
	}

	e2 := startEmbedded(t, dir)
	s2 := newStore(t, e2.Config(bucket))
	keys, err := s2.ListKeys(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{streamed.Key, jsonObj.Key}; !slices.Equal(keys, want) {
		t.Errorf("after restart the bucket holds %v, want %v", keys, want)
	}
	// The JSON object is verified by its stored sha256 metadata, the
	// streamed one by reading it back: both survived the restart.
	if err := s2.Verify(ctx, []artifacts.Object{streamed, jsonObj}); err != nil {
		t.Errorf("Verify after restart: %v", err)
	}
	var got map[string]string
	if err := s2.GetJSON(ctx, jsonObj.Key, &got); err != nil || got["student"] != "alice" {
		t.Errorf("GetJSON after restart = %v, %v", got, err)
	}
}

func TestEmbeddedRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:9000"} {
		if e, err := versitygw.StartEmbedded(testContext(t), t.TempDir(), addr, zap.NewNop()); err == nil {
			stopEmbedded(t, e)
			t.Errorf("StartEmbedded(%q): no error", addr)
		}
	}
}

// TestEmbeddedRefusesWrongKeys: the embedded store is a real S3 server that
// checks signatures; only its own keys get in.
func TestEmbeddedRefusesWrongKeys(t *testing.T) {
	e := startEmbedded(t, t.TempDir())
	ctx := testContext(t)
	const bucket = "homeroom-artifacts"
	s := newStore(t, e.Config(bucket)) // makes the bucket
	if _, err := s.PutJSON(ctx, "classes/c1/doc.json", map[string]string{"a": "b"}); err != nil {
		t.Fatal(err)
	}

	for name, keys := range map[string][2]string{
		"wrong secret":     {e.AccessKey, e.SecretKey + "x"},
		"wrong access key": {"homeroom-someone", e.SecretKey},
		"placeholder keys": {"homeroom", "homeroom-embedded"}, // those of releases before versitygw
	} {
		c, err := minio.New(e.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(keys[0], keys[1], ""), MaxRetries: 1})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.StatObject(ctx, bucket, "classes/c1/doc.json", minio.StatObjectOptions{})
		if !refused(err) {
			t.Errorf("%s: stat = %v (%+v), want access denied", name, err, minio.ToErrorResponse(err))
		}
		_, err = c.PutObject(ctx, bucket, "classes/c1/intruder", strings.NewReader("x"), 1, minio.PutObjectOptions{})
		if !refused(err) {
			t.Errorf("%s: put = %v (%+v), want access denied", name, err, minio.ToErrorResponse(err))
		}
	}

	// Unsigned requests: anonymous access is refused too.
	for _, req := range []struct{ method, path string }{
		{"GET", "/"},
		{"GET", "/" + bucket + "?list-type=2"},
		{"GET", "/" + bucket + "/classes/c1/doc.json"},
		{"PUT", "/" + bucket + "/classes/c1/intruder"},
	} {
		r, _ := http.NewRequestWithContext(ctx, req.method, "http://"+e.Endpoint+req.path, strings.NewReader("x"))
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("unsigned %s %s: %d %s, want 403", req.method, req.path, resp.StatusCode, body)
		}
	}
	if keys, err := s.ListKeys(ctx, ""); err != nil || !slices.Equal(keys, []string{"classes/c1/doc.json"}) {
		t.Errorf("after the refused requests the bucket holds %v (%v)", keys, err)
	}
}

// refused reports whether err is S3's refusal of a request's credentials:
// 403 (SignatureDoesNotMatch, AccessDenied, ...), or versitygw's answer to
// an access key it does not know, 404 XAdminUserNotFound (S3 answers 403
// InvalidAccessKeyId).
func refused(err error) bool {
	resp := minio.ToErrorResponse(err)
	return err != nil && (resp.StatusCode == http.StatusForbidden || resp.Code == "XAdminUserNotFound")
}

// TestEmbeddedCredentials: the keys are generated once, kept private beside
// the store's directory, and used again by the next start.
func TestEmbeddedCredentials(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	dir := filepath.Join(data, "artifacts")
	e := startEmbedded(t, dir)
	file := filepath.Join(data, "artifacts.credentials")
	if got := artifacts.EmbeddedCredentialsFile(dir); got != file {
		t.Errorf("EmbeddedCredentialsFile = %s, want %s", got, file)
	}
	for path, want := range map[string]os.FileMode{file: 0o600, data: 0o700, dir: 0o700} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v, %v; want mode %v", path, fi.Mode().Perm(), err, want)
		}
	}
	if len(e.SecretKey) < 40 || e.AccessKey == "" {
		t.Errorf("keys %q/%d characters: want generated ones", e.AccessKey, len(e.SecretKey))
	}
	access, secret, err := artifacts.LoadEmbeddedCredentials(dir)
	if err != nil || access != e.AccessKey || secret != e.SecretKey {
		t.Errorf("LoadEmbeddedCredentials = %q, %v: not the server's keys", access, err)
	}
	stopEmbedded(t, e)

	// Loosened by hand: made private again, and the same keys are used.
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	e2 := startEmbedded(t, dir)
	if e2.AccessKey != e.AccessKey || e2.SecretKey != e.SecretKey {
		t.Errorf("a restart made new keys")
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("credentials file mode %v after restart, want 0600", fi.Mode().Perm())
	}
	if err := newStore(t, e2.Config("homeroom-artifacts")).Ping(testContext(t)); err != nil {
		t.Errorf("Ping with the kept keys: %v", err)
	}

	if _, _, err := artifacts.LoadEmbeddedCredentials(t.TempDir()); err == nil {
		t.Errorf("LoadEmbeddedCredentials without a file: no error")
	}
}

// TestEmbeddedRestartsItsServer: a versitygw that dies is started again on
// the same address, with the same keys and objects; Stop ends it for good.
func TestEmbeddedRestartsItsServer(t *testing.T) {
	e := startEmbedded(t, t.TempDir())
	ctx := testContext(t)
	s := newStore(t, e.Config("homeroom-artifacts"))
	obj, err := s.PutJSON(ctx, "classes/c1/doc.json", map[string]string{"a": "b"})
	if err != nil {
		t.Fatal(err)
	}
	first := e.Pid()
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for e.Pid() == first || s.Ping(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("versitygw was not started again (pid %d, first %d)", e.Pid(), first)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := s.Verify(ctx, []artifacts.Object{obj}); err != nil {
		t.Errorf("Verify after the server was started again: %v", err)
	}

	second := e.Pid()
	stopEmbedded(t, e)
	if err := syscall.Kill(second, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("versitygw (pid %d) still there after Stop: %v", second, err)
	}
	time.Sleep(restartGrace)
	if e.Pid() != second {
		t.Errorf("a stopped store started its server again")
	}
}

// restartGrace is longer than the first restart delay.
const restartGrace = time.Second

// TestEmbeddedServesOldLayout: objects kept by the file backend of releases
// before versitygw (dir/buckets/<bucket>/<key>) are served as they are.
func TestEmbeddedServesOldLayout(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "buckets", "homeroom-artifacts", "classes", "c1", "r1", "alice", "files", "main.py")
	if err := os.MkdirAll(filepath.Dir(old), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(old, []byte("print('hi')\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "metadata", "homeroom-artifacts"), 0o755); err != nil {
		t.Fatal(err)
	}
	e := startEmbedded(t, dir)
	s := newStore(t, e.Config("homeroom-artifacts"))
	ctx := testContext(t)
	keys, err := s.ListKeys(ctx, "")
	if want := []string{"classes/c1/r1/alice/files/main.py"}; err != nil || !slices.Equal(keys, want) {
		t.Fatalf("ListKeys = %v, %v; want %v", keys, err, want)
	}
	rc, _, err := s.Open(ctx, keys[0])
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if b, err := io.ReadAll(rc); err != nil || string(b) != "print('hi')\n" {
		t.Errorf("read %q, %v", b, err)
	}
}

func TestEmbeddedWithoutBinary(t *testing.T) {
	t.Setenv(versitygw.EnvBinary, filepath.Join(t.TempDir(), "versitygw"))
	e, err := versitygw.StartEmbedded(context.Background(), t.TempDir(), "127.0.0.1:0", nil)
	if err == nil {
		stopEmbedded(t, e)
		t.Fatal("StartEmbedded without a versitygw binary: no error")
	}
	if !strings.Contains(err.Error(), "scripts/ensure-versitygw.sh") {
		t.Errorf("error %q does not say how to build versitygw", err)
	}
}
