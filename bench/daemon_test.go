package main

import (
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/homeroom/homeroom/pkg/dockerx"
	"github.com/homeroom/homeroom/pkg/policy"
)

// hungDaemon serves the Docker API on a socket of its own: it answers the
// version ping, lists no networks and creates one, and leaves every other
// request without an answer, as a deadlocked daemon does.
func hungDaemon(t *testing.T) *dockerx.Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "docker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("API-Version", "1.41")
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasSuffix(r.URL.Path, "/_ping"):
			w.Write([]byte("OK"))
		case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/networks"):
			w.Write([]byte("[]"))
		case strings.HasSuffix(r.URL.Path, "/networks/create"):
			w.WriteHeader(http.StatusCreated)
			w.Write([]byte(`{"Id":"n1"}`))
		default:
			<-r.Context().Done()
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	t.Setenv("DOCKER_HOST", "unix://"+sock)
	d, err := dockerx.New(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// A daemon that stops answering in the middle of a baseline ends the run
// with an error that says so, rather than holding it for ever.
func TestABaselineOnAHungDaemonEnds(t *testing.T) {
	tmpl, ok := policy.Default().Template("sandbox")
	if !ok {
		t.Fatal("the built-in policy has no sandbox template")
	}
	b := &bench{prefix: "bench-test-", d: hungDaemon(t), tmpl: tmpl}
	defer func(d time.Duration) { rawTimeout = d }(rawTimeout)
	rawTimeout = 200 * time.Millisecond

	if _, err := b.rawUp(t.Context(), "bench-test-raw-3-1", 3, 3); !errors.Is(err, errDaemonHung) || !strings.Contains(err.Error(), "restart dockerd") {
		t.Errorf("rawUp on a daemon that stopped answering: %v; want %v", err, errDaemonHung)
	}
	if err := b.rawRemove(t.Context(), "bench-test-raw-3-1", true); !errors.Is(err, errDaemonHung) {
		t.Errorf("rawRemove on a daemon that stopped answering: %v; want %v", err, errDaemonHung)
	}
}
