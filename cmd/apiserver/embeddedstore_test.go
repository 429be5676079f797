package main

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/config"
	"github.com/homeroom/homeroom/pkg/store"
)

func TestMain(m *testing.M) {
	testenv.DialHelper()
	os.Exit(m.Run())
}

// TestEmbeddedStoreIsPrivate runs the apiserver binary with the embedded
// defaults. Its store (FerretDB, which checks no credentials) listens on no
// TCP port, only on Unix sockets other local users cannot connect to; the
// controller finds it from the data dir alone; and a kill -9, which leaves
// the sockets behind, does not keep it from starting again.
func TestEmbeddedStoreIsPrivate(t *testing.T) {
	bin, data, listen, _, env := embeddedDefaults(t)
	start := func() *testenv.Process {
		t.Helper()
		p := testenv.StartProcess(t, bin, env)
		testenv.WaitHTTP(t, "http://"+listen+"/readyz")
		return p
	}
	api1 := start()

	sock, dir := filepath.Join(data, "store.sock"), filepath.Join(data, "store")
	ferret := filepath.Join(dir, "ferretdb.sock")
	for path, want := range map[string]os.FileMode{
		data: os.ModeDir | 0o700, sock: os.ModeSocket | 0o600, dir: os.ModeDir | 0o700,
	} {
		if fi, err := os.Lstat(path); err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v (%v), want %v", path, fi.Mode(), err, want)
		}
	}
	if fi, err := os.Lstat(ferret); err != nil || fi.Mode().Type() != os.ModeSocket {
		t.Errorf("FerretDB's socket %s: %v (%v)", ferret, fi.Mode(), err)
	}
	_, port, _ := strings.Cut(listen, ":")
	if ports := tcpListenPorts(t, api1.Pid()); len(ports) != 1 || ports[0] != port {
		t.Errorf("the apiserver listens on TCP ports %v, want only the API's %s", ports, port)
	}
	for _, path := range []string{sock, ferret} {
		if err := testenv.DialUnixAsOther(t, path); !errors.Is(err, os.ErrPermission) {
			t.Errorf("another user connecting to %s: %v, want permission denied", path, err)
		}
	}

	// The controller's way in: the data dir, nothing else.
	uri, err := config.Config{DataDir: data}.StoreURI()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	st, err := store.Open(ctx, uri, "", nil)
	if err != nil {
		t.Fatalf("open %s as the controller does: %v", uri, err)
	}
	if _, _, err := st.PutSpec(ctx, "c1", api.ClassSpec{Subject: "cs101", Template: "sandbox", Students: []string{"alice"}, TTLSeconds: 3600}); err != nil {
		t.Fatal(err)
	}
	st.Close(ctx)

	api1.Kill()
	for _, path := range []string{sock, ferret} {
		if _, err := os.Lstat(path); err != nil {
			t.Fatalf("after kill -9, %s: %v; want it left behind, as a crash leaves it", path, err)
		}
	}
	start()
	st, err = store.Open(ctx, uri, "", nil)
	if err != nil {
		t.Fatalf("after a restart over stale sockets: %v", err)
	}
	defer st.Close(context.Background())
	if _, err := st.Get(ctx, "c1"); err != nil {
		t.Errorf("the class written before the kill: %v", err)
	}
}

// TestEmbeddedStoreRefusals: settings the embedded store cannot honour stop
// the apiserver at start, saying what to change.
func TestEmbeddedStoreRefusals(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the apiserver")
	}
	bin := filepath.Join(testenv.BuildBinaries(t, "apiserver"), "apiserver")
	long := filepath.Join(t.TempDir(), strings.Repeat("d", 100))
	for _, tc := range []struct {
		desc string
		env  []string
		want []string
	}{
		{
			desc: "the TCP address of earlier releases",
			env:  []string{"HOMEROOM_DATA_DIR=" + t.TempDir(), "HOMEROOM_EMBEDDED_MONGO_ADDR=127.0.0.1:27018"},
			want: []string{"HOMEROOM_EMBEDDED_MONGO_ADDR", "store.sock", "HOMEROOM_MONGO_URI"},
		},
		{
			desc: "a data dir too long for a socket's path",
			env:  []string{"HOMEROOM_DATA_DIR=" + long},
			want: []string{"HOMEROOM_DATA_DIR", "107"},
		},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin)
			cmd.Env = append(os.Environ(), append([]string{
				"HOMEROOM_LISTEN=" + testenv.FreeAddr(t), "HOMEROOM_EMBEDDED_S3_ADDR=" + testenv.FreeAddr(t),
				"HOMEROOM_MONGO_URI=", "HOMEROOM_S3_ENDPOINT=", "HOMEROOM_ADMIN_TOKEN=",
			}, tc.env...)...)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the apiserver exited cleanly:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(out), w) {
					t.Errorf("output does not name %s:\n%s", w, out)
				}
			}
		})
	}
}

// tcpListenPorts lists the TCP ports the process pid listens on, from the
// kernel's socket tables and the process's descriptors.
func tcpListenPorts(t *testing.T, pid int) []string {
	t.Helper()
	listening := map[string]string{} // socket inode -> port
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(table)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // the header
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != "0A" { // TCP_LISTEN
				continue
			}
			_, hexPort, _ := strings.Cut(fields[1], ":")
			port, err := strconv.ParseUint(hexPort, 16, 16)
			if err != nil {
				t.Fatalf("%s: %q", table, sc.Text())
			}
			listening[fields[9]] = strconv.FormatUint(port, 10)
		}
		f.Close()
	}
	fds, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	var ports []string
	for _, fd := range fds {
		target, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/fd/" + fd.Name())
		if err != nil {
			continue
		}
		if inode, ok := strings.CutPrefix(target, "socket:["); ok {
			if port, ok := listening[strings.TrimSuffix(inode, "]")]; ok {
				ports = append(ports, port)
			}
		}
	}
	return ports
}
