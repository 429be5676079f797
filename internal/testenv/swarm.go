package testenv

import (
	"context"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/docker/go-connections/nat"
)

// NodeJobImage is the image of the Swarm runtime's jobs, which `make images`
// builds.
const NodeJobImage = "homeroom/nodejob:dev"

// Swarm is a swarm of Docker daemons on this machine, made by
// scripts/swarm-nodes.sh: node 1 is the manager.
type Swarm struct {
	t      testing.TB
	script string
	// Nodes are the nodes' Docker clients, by node number less one.
	Nodes []*client.Client
	// HostAddr is the machine's address on the nodes' network, where a
	// server the nodes must reach listens.
	HostAddr string
	// NodeSocket is where each node's socket is, on that node.
	NodeSocket string
	// Root holds each node's data root, nodeK.
	Root string

	managerAddr string
	images      []string
}

// StartSwarm makes a swarm of n nodes, each with the lab image, the jobs'
// image and the images given, and removes it when the test ends. It needs
// root and the host's daemon with those images (`make images`).
func StartSwarm(t testing.TB, n int, images ...string) *Swarm {
	t.Helper()
	Docker(t) // the host's daemon and the lab image, or skip (fail in CI)
	if os.Geteuid() != 0 {
		Unavailable(t, "a swarm of daemons in network namespaces needs root")
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	s := &Swarm{t: t, script: filepath.Join(root, "scripts", "swarm-nodes.sh"), HostAddr: "10.231.7.1",
		NodeSocket: "/run/homeroom-node/docker.sock", Root: "/var/lib/homeroom-swarm", managerAddr: "10.231.7.11", images: append([]string{SandboxImage, NodeJobImage}, images...)}
	s.run("down") // what a killed run left
	t.Cleanup(func() { s.run("down") })
	out := s.run("up", fmt.Sprint(n))
	if !strings.HasPrefix(out, "unix://") {
		t.Fatalf("swarm-nodes.sh up printed %q, not the manager's socket", out)
	}
	for k := 1; k <= n; k++ {
		c, err := client.NewClientWithOpts(client.WithHost(fmt.Sprintf("unix:///run/homeroom-swarm/node%d/docker.sock", k)), client.WithAPIVersionNegotiation())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		s.Nodes = append(s.Nodes, c)
	}
	return s
}

func (s *Swarm) run(args ...string) string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.script, args...)
	cmd.Env = append(os.Environ(), "HOMEROOM_SWARM_IMAGES="+strings.Join(s.images, " "))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		s.t.Fatalf("swarm-nodes.sh %v: %v\n%s", args, err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// ManagerHost is the manager's DOCKER_HOST.
func (s *Swarm) ManagerHost() string { return "unix:///run/homeroom-swarm/node1/docker.sock" }

// StopNode stops node k's daemon (1-based), as a lost machine would go.
func (s *Swarm) StopNode(k int) { s.run("stop", fmt.Sprint(k)) }

// StartNode starts node k's daemon again.
func (s *Swarm) StartNode(k int) { s.run("start", fmt.Sprint(k)) }

// VolumeDir is where node k (1-based) keeps the named volume's files.
func (s *Swarm) VolumeDir(k int, volume string) string {
	return filepath.Join(s.Root, fmt.Sprintf("node%d", k), "volumes", volume, "_data")
}

// repoRoot is the directory of go.mod above the test's own.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// SwarmTraefik is a real Traefik with the Swarm provider, as a plain
// container on the manager (where the controller attaches it to each class
// network), publishing its web entrypoint on the manager's address.
type SwarmTraefik struct {
	Name string
	// Addr is host:port of its web entrypoint, reached from this machine.
	Addr string
}

// StartTraefik runs Traefik on the manager; it goes with the swarm.
func (s *Swarm) StartTraefik(t testing.TB) *SwarmTraefik {
	t.Helper()
	ctx := context.Background()
	m := s.Nodes[0]
	if _, err := m.ImageInspect(ctx, TraefikImage); err != nil {
		t.Fatalf("the manager has no %s (StartSwarm loads it): %v", TraefikImage, err)
	}
	port := 30000 + mrand.IntN(2000)
	tr := &SwarmTraefik{Name: "hr-swarm-traefik", Addr: fmt.Sprintf("%s:%d", s.managerAddr, port)}
	cfg := &container.Config{
		Image: TraefikImage,
		Cmd: []string{
			"--providers.swarm=true",
			"--providers.swarm.endpoint=unix:///var/run/docker.sock",
			"--providers.swarm.exposedbydefault=false",
			"--providers.swarm.refreshSeconds=1s",
			"--entrypoints.web.address=:80",
			"--log.level=INFO",
		},
		ExposedPorts: nat.PortSet{"80/tcp": {}},
	}
	host := &container.HostConfig{
		Binds:        []string{s.NodeSocket + ":/var/run/docker.sock:ro"},
		PortBindings: nat.PortMap{"80/tcp": {{HostIP: s.managerAddr, HostPort: fmt.Sprint(port)}}},
	}
	resp, err := m.ContainerCreate(ctx, cfg, host, nil, nil, tr.Name)
	if err != nil {
		t.Fatalf("create traefik on the manager: %v", err)
	}
	if err := m.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
		t.Fatalf("start traefik on the manager: %v", err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		rc, err := m.ContainerLogs(context.Background(), resp.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true, Tail: "40"})
		if err != nil {
			return
		}
		defer rc.Close()
		var b strings.Builder
		stdcopy.StdCopy(&b, &b, rc)
		t.Logf("traefik's last lines:\n%s", b.String())
	})
	waitTraefik(t, tr.Addr)
	return tr
}
