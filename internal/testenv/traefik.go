package testenv

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/homeroom/homeroom/pkg/dockerx"
)

// TraefikImage is pulled or built by scripts/ensure-traefik.sh (part of make
// test); either kind takes the same flags.
const TraefikImage = "homeroom/traefik:v3.6.12"

// Traefik is a real Traefik container with the Docker provider, as Homeroom
// is deployed with: on the host's network (from where it reaches sandboxes
// that accept no traffic from other containers), listening on a loopback
// port of the test's own.
type Traefik struct {
	t    testing.TB
	d    *dockerx.Client
	Name string
	// Addr is host:port of its web entrypoint on loopback.
	Addr string
	// Listen is the entrypoint's address: Addr, or every interface of the
	// host (as a school's Traefik listens) with StartTraefikEverywhere.
	Listen string
	ID     string
}

// StartTraefik runs Traefik under a name of its own; it is removed when the
// test ends.
func StartTraefik(t testing.TB, d *dockerx.Client) *Traefik {
	t.Helper()
	return startTraefik(t, d, false)
}

// StartTraefikEverywhere is StartTraefik listening on every interface of
// the host, sandboxes' class networks included, as it does where students
// reach it from other machines.
func StartTraefikEverywhere(t testing.TB, d *dockerx.Client) *Traefik {
	t.Helper()
	return startTraefik(t, d, true)
}

func startTraefik(t testing.TB, d *dockerx.Client, everywhere bool) *Traefik {
	t.Helper()
	if _, err := d.API().ImageInspect(context.Background(), TraefikImage); err != nil {
		Unavailable(t, "image %s (run scripts/ensure-traefik.sh or make test): %v", TraefikImage, err)
	}
	tr := &Traefik{t: t, d: d, Name: fmt.Sprintf("hr-test-traefik-%d", time.Now().UnixNano()), Addr: FreeAddr(t)}
	tr.Listen = tr.Addr
	if everywhere {
		_, port, _ := splitHostPort(tr.Addr)
		tr.Listen = ":" + port
	}
	t.Cleanup(func() {
		d.API().ContainerRemove(context.Background(), tr.Name, container.RemoveOptions{Force: true})
	})
	tr.Start()
	return tr
}

// Start creates and starts the container; after Remove it makes a new one of
// the same name, as an operator replacing Traefik would.
func (tr *Traefik) Start() {
	tr.t.Helper()
	ctx := context.Background()
	cfg := &container.Config{
		Image: TraefikImage,
		Cmd: []string{
			"--providers.docker=true",
			"--providers.docker.exposedbydefault=false",
			"--entrypoints.web.address=" + tr.Listen,
			"--log.level=INFO",
		},
	}
	host := &container.HostConfig{
		NetworkMode: "host",
		Binds:       []string{"/var/run/docker.sock:/var/run/docker.sock:ro"},
	}
	resp, err := tr.d.API().ContainerCreate(ctx, cfg, host, nil, nil, tr.Name)
	if err != nil {
		tr.t.Fatalf("create traefik: %v", err)
	}
	tr.ID = resp.ID
	if err := tr.d.API().ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
		tr.t.Fatalf("start traefik: %v", err)
	}
	waitTraefik(tr.t, tr.Addr)
}

// waitTraefik waits up to 30 s for Traefik to answer on addr (404 for an
// unknown host): then it is up.
func waitTraefik(t testing.TB, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("traefik did not answer on %s: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Remove deletes the container.
func (tr *Traefik) Remove() {
	tr.t.Helper()
	if err := tr.d.API().ContainerRemove(context.Background(), tr.Name, container.RemoveOptions{Force: true}); err != nil {
		tr.t.Fatalf("remove traefik: %v", err)
	}
}

// Get sends a request for host through Traefik.
func (tr *Traefik) Get(host, path string) (*http.Response, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+tr.Addr+path, nil)
	req.Host = host
	return (&http.Client{Timeout: 10 * time.Second}).Do(req)
}

// Through sends a request for rawURL to Traefik's entrypoint at addr, with
// rawURL's host as the Host header and cookie (if any) as the Cookie
// header, as a script would, never following redirects, and returns the
// answer's status, header and body.
func Through(t testing.TB, addr, method, rawURL, cookie, body string) (int, http.Header, string) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(method, "http://"+addr+u.RequestURI(), strings.NewReader(body))
	req.Host = u.Host
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	c := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, rawURL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}
