package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/internal/versitygw"
	"github.com/homeroom/homeroom/pkg/artifacts"
)

// embeddedDefaults builds the apiserver and prepares it to run with the
// embedded defaults (no store or S3 server configured) under a fresh data
// dir: the binary, the data dir, the API and the artifact store's addresses,
// and the environment. The tests read the process's children and sockets
// from /proc, so they run on Linux only.
func embeddedDefaults(t *testing.T) (bin, data, listen, s3 string, env []string) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("reads the apiserver's children and sockets in /proc")
	}
	if testing.Short() {
		t.Skip("builds and runs the apiserver")
	}
	if _, err := versitygw.Binary(); err != nil {
		testenv.Unavailable(t, "%v", err)
	}
	bin = filepath.Join(testenv.BuildBinaries(t, "apiserver"), "apiserver")
	data = filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(data, 0o755); err != nil { // as `mkdir -p` in scripts/run.sh makes it
		t.Fatal(err)
	}
	listen, s3 = testenv.FreeAddr(t), testenv.FreeAddr(t)
	env = []string{
		"HOMEROOM_DATA_DIR=" + data, "HOMEROOM_LISTEN=" + listen,
		"HOMEROOM_EMBEDDED_S3_ADDR=" + s3,
		"HOMEROOM_MONGO_URI=", "HOMEROOM_S3_ENDPOINT=", "HOMEROOM_ADMIN_TOKEN=",
	}
	return bin, data, listen, s3, env
}

// TestEmbeddedArtifactStore runs the apiserver binary with the embedded
// defaults: its artifact store is a versitygw child on loopback that
// refuses other keys, its keys are kept private and reused, and the child
// goes away with the apiserver, whether it is stopped or killed.
func TestEmbeddedArtifactStore(t *testing.T) {
	bin, data, listen, s3, env := embeddedDefaults(t)
	start := func() (*testenv.Process, []int) {
		t.Helper()
		p := testenv.StartProcess(t, bin, env)
		testenv.WaitHTTP(t, "http://"+listen+"/readyz")
		children := versitygwsServing(t, data)
		if len(children) != 1 {
			t.Fatalf("versitygw processes serving %s: %v, want one", data, children)
		}
		return p, children
	}

	api, children := start()
	credFile := filepath.Join(data, "artifacts.credentials")
	for path, want := range map[string]os.FileMode{credFile: 0o600, data: 0o700} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v), want %v", path, fi.Mode().Perm(), err, want)
		}
	}
	keys, err := os.ReadFile(credFile)
	if err != nil {
		t.Fatal(err)
	}
	access, secret, err := artifacts.LoadEmbeddedCredentials(filepath.Join(data, "artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	client := func(access, secret string) *minio.Client {
		c, err := minio.New(s3, &minio.Options{Creds: credentials.NewStaticV4(access, secret, ""), MaxRetries: 1})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// The apiserver made its bucket with the generated keys.
	if ok, err := client(access, secret).BucketExists(ctx, "homeroom"); err != nil || !ok {
		t.Errorf("with the generated keys: bucket homeroom exists = %v, %v", ok, err)
	}
	_, err = client(access, secret+"x").BucketExists(ctx, "homeroom")
	if resp := minio.ToErrorResponse(err); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a wrong secret: %v (%+v), want 403", err, resp)
	}
	if resp, err := http.Get("http://" + s3 + "/homeroom?list-type=2"); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("an unsigned listing: %v, %v; want 403", resp, err)
	} else {
		resp.Body.Close()
	}

	api.Stop() // SIGTERM
	waitGone(t, children, "the apiserver stopped")

	api, children = start()
	if again, err := os.ReadFile(credFile); err != nil || !bytes.Equal(again, keys) {
		t.Errorf("credentials after a restart differ (%v)", err)
	}
	api.Kill() // SIGKILL: no shutdown runs, the kernel ends the child
	waitGone(t, children, "the apiserver was killed")
}

// versitygwsServing lists the processes serving the embedded store of the
// data dir.
func versitygwsServing(t *testing.T, data string) []int {
	t.Helper()
	root := []byte(filepath.Join(data, "artifacts", "buckets"))
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := bytes.Split(bytes.TrimRight(cmdline, "\x00"), []byte{0})
		if len(args) > 0 && filepath.Base(string(args[0])) == "versitygw" &&
			slices.ContainsFunc(args, func(a []byte) bool { return bytes.Equal(a, root) }) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func waitGone(t *testing.T, pids []int, after string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var left []int
		for _, pid := range pids {
			// A zombie has no cmdline left: it is gone too.
			if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); err == nil && len(b) > 0 {
				left = append(left, pid)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("versitygw %v still running after %s", left, after)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
