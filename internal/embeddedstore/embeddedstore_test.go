package embeddedstore_test

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/homeroom/homeroom/internal/embeddedstore"
	"github.com/homeroom/homeroom/internal/testenv"
	"github.com/homeroom/homeroom/pkg/api"
	"github.com/homeroom/homeroom/pkg/config"
	"github.com/homeroom/homeroom/pkg/store"
)

func TestMain(m *testing.M) {
	testenv.DialHelper()
	os.Exit(m.Run())
}

// start starts a server laid out as the apiserver lays out its data dir,
// and stops it when the test ends.
func start(t *testing.T, data string, log *zap.Logger) *embeddedstore.Server {
	t.Helper()
	e, err := embeddedstore.Start(t.Context(), filepath.Join(data, "store"), filepath.Join(data, "store.sock"), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Stop() })
	return e
}

func open(t *testing.T, uri string) *store.Store {
	t.Helper()
	s, err := store.Open(t.Context(), uri, "", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(t.Context()) })
	return s
}

func spec() api.ClassSpec {
	return api.ClassSpec{Subject: "cs101", Template: "sandbox", Students: []string{"alice"}, TTLSeconds: 7200}
}

// TestOtherUsersCannotConnect: FerretDB checks no credentials, so the
// store is only as private as its sockets. Another local user is refused by
// the kernel on both: the proxy's socket by its own mode (the directories
// above it are opened to everyone here, so nothing else stands in the way)
// and FerretDB's by the store directory's.
func TestOtherUsersCannotConnect(t *testing.T) {
	data, err := os.MkdirTemp("", "homeroom-store-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(data) })
	if err := os.Chmod(data, 0o755); err != nil {
		t.Fatal(err)
	}
	e := start(t, data, zap.NewNop())
	sock, dir := filepath.Join(data, "store.sock"), filepath.Join(data, "store")
	ferret := filepath.Join(dir, "ferretdb.sock")

	for path, want := range map[string]os.FileMode{sock: os.ModeSocket | 0o600, dir: os.ModeDir | 0o700} {
		if fi, err := os.Lstat(path); err != nil || fi.Mode() != want {
			t.Errorf("%s: mode %v (%v), want %v", path, fi.Mode(), err, want)
		}
	}
	if fi, err := os.Lstat(ferret); err != nil || fi.Mode().Type() != os.ModeSocket {
		t.Errorf("FerretDB's socket %s: %v (%v)", ferret, fi.Mode(), err)
	}

	// The other user can connect to a socket that lets them, beside ours:
	// a refusal below is the modes' doing, not the helper's.
	ln, err := net.Listen("unix", filepath.Join(data, "open.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := os.Chmod(filepath.Join(data, "open.sock"), 0o666); err != nil {
		t.Fatal(err)
	}
	if err := testenv.DialUnixAsOther(t, filepath.Join(data, "open.sock")); err != nil {
		t.Fatalf("another user could not connect to an open socket beside the store's: %v", err)
	}

	for _, path := range []string{sock, ferret} {
		err := testenv.DialUnixAsOther(t, path)
		if !errors.Is(err, os.ErrPermission) {
			t.Errorf("another user connecting to %s: %v, want permission denied", path, err)
		}
	}
	// And the store still serves its own user.
	if _, _, err := open(t, e.URI).PutSpec(t.Context(), "c", spec()); err != nil {
		t.Errorf("write through %s: %v", e.URI, err)
	}
}

// TestURIMatchesConfig: the controller connects where config.StoreURI says,
// the apiserver serves where the server's URI says; they must agree, for a
// path with characters a URI escapes too.
func TestURIMatchesConfig(t *testing.T) {
	data := filepath.Join(t.TempDir(), "a b+c@d")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	e, err := embeddedstore.Start(t.Context(), t.TempDir(), filepath.Join(data, "store.sock"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Stop() })
	uri, err := config.Config{DataDir: data}.StoreURI()
	if err != nil {
		t.Fatal(err)
	}
	if uri != e.URI {
		t.Errorf("config.StoreURI = %q, the server's URI = %q", uri, e.URI)
	}
	if !strings.HasPrefix(e.URI, "mongodb://%2F") {
		t.Errorf("URI %q: want the socket's absolute path, escaped", e.URI)
	}
	if _, _, err := open(t, uri).PutSpec(t.Context(), "c", spec()); err != nil {
		t.Errorf("write through %s: %v", uri, err)
	}
}

// TestStartAfterCrash: sockets left behind by a process that died (kill -9
// leaves both) do not stop the next start, and the data is still there.
func TestStartAfterCrash(t *testing.T) {
	data := t.TempDir()
	for _, p := range []string{filepath.Join(data, "store.sock"), filepath.Join(data, "store", "ferretdb.sock")} {
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("unix", p)
		if err != nil {
			t.Fatal(err)
		}
		// As a killed process leaves it: the file stays, nobody listens.
		l.(*net.UnixListener).SetUnlinkOnClose(false)
		l.Close()
	}
	e := start(t, data, zap.NewNop())
	if _, _, err := open(t, e.URI).PutSpec(t.Context(), "c", spec()); err != nil {
		t.Errorf("write after a start over stale sockets: %v", err)
	}
}

// TestStartRefusesLiveOrForeignSocketPath: a second server on a data dir in
// use is refused rather than taking its socket over, and a file that is not
// a socket is never removed.
func TestStartRefusesLiveOrForeignSocketPath(t *testing.T) {
	data := t.TempDir()
	e := start(t, data, zap.NewNop())
	if e2, err := embeddedstore.Start(t.Context(), filepath.Join(data, "store"), filepath.Join(data, "store.sock"), nil); err == nil {
		_ = e2.Stop()
		t.Fatal("a second server on the same data dir started")
	} else {
		t.Logf("second server: %v", err)
	}
	if _, _, err := open(t, e.URI).PutSpec(t.Context(), "c", spec()); err != nil {
		t.Errorf("the first server after the second was refused: %v", err)
	}

	other := t.TempDir()
	file := filepath.Join(other, "store.sock")
	if err := os.WriteFile(file, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if e3, err := embeddedstore.Start(t.Context(), filepath.Join(other, "store"), file, nil); err == nil {
		_ = e3.Stop()
		t.Fatal("started over a regular file")
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep me" {
		t.Errorf("the regular file at the socket's path: %q, %v", b, err)
	}
}

// TestStartRefusesLongSocketPath: the kernel takes 107 bytes of a socket's
// path; a longer one is refused at start, saying so.
func TestStartRefusesLongSocketPath(t *testing.T) {
	data := filepath.Join(t.TempDir(), strings.Repeat("d", 100))
	e, err := embeddedstore.Start(t.Context(), filepath.Join(data, "store"), filepath.Join(data, "store.sock"), nil)
	if err == nil {
		_ = e.Stop()
		t.Fatal("started with a socket path over 107 bytes")
	}
	if !strings.Contains(err.Error(), "107") {
		t.Errorf("error %q does not give the limit", err)
	}
}

// TestRestartKeepsData stops the server and starts another on the same
// directory, as a restart of Homeroom does.
func TestRestartKeepsData(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	e := start(t, data, zap.NewNop())
	s := open(t, e.URI)
	c, _, err := s.PutSpec(t.Context(), "c", spec())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}

	e = start(t, data, zap.NewNop())
	s = open(t, e.URI)
	got, err := s.Get(t.Context(), "c")
	if err != nil || got.Version != c.Version {
		t.Fatalf("after restart: %+v, %v; want version %d", got, err, c.Version)
	}
	if _, err := s.SetDesiredPhase(t.Context(), "c", api.PhaseUp); err != nil {
		t.Errorf("write after restart: %v", err)
	}
}

// TestLifecycleIsQuiet keeps FerretDB's routine chatter out of operators'
// logs: a whole lifecycle, client disconnect included (FerretDB v1 warns
// about the driver's endSessions), must log no warning.
func TestLifecycleIsQuiet(t *testing.T) {
	t.Parallel()
	core, logs := observer.New(zapcore.WarnLevel)
	log := zap.New(core)
	ctx := t.Context()

	e := start(t, t.TempDir(), log)
	s, err := store.Open(ctx, e.URI, "", log)
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := s.PutSpec(ctx, "c", spec())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateStatus(ctx, "c", c.Version+1, api.ClassStatus{}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("UpdateStatus with a wrong version: %v", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := e.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	for _, l := range logs.All() {
		t.Errorf("logged %s %q %v", l.Level, l.Message, l.ContextMap())
	}
}

// TestStartRejectsUnusableDir: FerretDB would otherwise start and then fail
// on the first write, or write somewhere else.
func TestStartRejectsUnusableDir(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"100%", "what?", "no#1"} {
		data := t.TempDir()
		e, err := embeddedstore.Start(t.Context(), filepath.Join(data, name), filepath.Join(data, "store.sock"), nil)
		if err == nil {
			_ = e.Stop()
			t.Errorf("Start in %q succeeded", name)
		}
	}
}
