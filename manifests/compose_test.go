package manifests

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// Paths are relative to this directory, where `go test` runs the tests.
const (
	composePath    = "compose.yaml"
	dockerfilePath = "Dockerfile"
	readmePath     = "../README.md"
	repoRoot       = ".."
	modulePath     = "github.com/homeroom/homeroom"
)

// The names other parts of Homeroom rely on.
const (
	dockerSocket = "/var/run/docker.sock"
	traefikName  = "homeroom-traefik" // HOMEROOM_TRAEFIK_CONTAINER's default
)

var homeroomServices = []string{"apiserver", "controller"}

// composeFile is the part of the Compose specification the manifests use.
// Fields that accept several forms (short or long syntax, string or list) are
// normalised by their types' UnmarshalYAML.
type composeFile struct {
	Name     string             `yaml:"name"`
	Services map[string]service `yaml:"services"`
	Networks map[string]any     `yaml:"networks"`
	Volumes  map[string]any     `yaml:"volumes"`
}

type service struct {
	Image         string       `yaml:"image"`
	Build         *build       `yaml:"build"`
	ContainerName string       `yaml:"container_name"`
	Command       stringList   `yaml:"command"`
	Entrypoint    stringList   `yaml:"entrypoint"`
	Environment   environment  `yaml:"environment"`
	Volumes       []mount      `yaml:"volumes"`
	Ports         []port       `yaml:"ports"`
	Networks      nameSet      `yaml:"networks"`
	DependsOn     dependsOn    `yaml:"depends_on"`
	Healthcheck   *healthcheck `yaml:"healthcheck"`
	Privileged    bool         `yaml:"privileged"`
	NetworkMode   string       `yaml:"network_mode"`
	Pid           string       `yaml:"pid"`
	Ipc           string       `yaml:"ipc"`
	UsernsMode    string       `yaml:"userns_mode"`
	CapAdd        []string     `yaml:"cap_add"`
	CapDrop       []string     `yaml:"cap_drop"`
	SecurityOpt   []string     `yaml:"security_opt"`
	Devices       []any        `yaml:"devices"`
	User          string       `yaml:"user"`
	Restart       string       `yaml:"restart"`
	Deploy        *deploy      `yaml:"deploy"` // a swarm stack's
}

// deploy is the part of a stack service's deploy key the manifests use.
type deploy struct {
	Placement struct {
		Constraints []string `yaml:"constraints"`
	} `yaml:"placement"`
}

type healthcheck struct {
	Test    stringList `yaml:"test"`
	Disable bool       `yaml:"disable"`
}

// stringList is a command: a list, or a string split on spaces.
type stringList []string

func (l *stringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*l = strings.Fields(n.Value)
		return nil
	}
	var s []string
	if err := n.Decode(&s); err != nil {
		return err
	}
	*l = s
	return nil
}

// environment is a map, or a list of KEY=VALUE.
type environment map[string]string

func (e *environment) UnmarshalYAML(n *yaml.Node) error {
	*e = environment{}
	if n.Kind == yaml.SequenceNode {
		var items []string
		if err := n.Decode(&items); err != nil {
			return err
		}
		for _, it := range items {
			k, v, _ := strings.Cut(it, "=")
			(*e)[k] = v
		}
		return nil
	}
	var m map[string]any
	if err := n.Decode(&m); err != nil {
		return err
	}
	for k, v := range m {
		if v == nil {
			(*e)[k] = ""
		} else {
			(*e)[k] = fmt.Sprint(v)
		}
	}
	return nil
}

// nameSet is a list of names, or a map keyed by them (networks, depends_on).
type nameSet []string

func (s *nameSet) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.SequenceNode {
		var l []string
		if err := n.Decode(&l); err != nil {
			return err
		}
		*s = l
		return nil
	}
	var m map[string]any
	if err := n.Decode(&m); err != nil {
		return err
	}
	for k := range m {
		*s = append(*s, k)
	}
	sort.Strings(*s)
	return nil
}

// dependsOn maps a service to its condition (service_started for the list form).
type dependsOn map[string]string

func (d *dependsOn) UnmarshalYAML(n *yaml.Node) error {
	*d = dependsOn{}
	if n.Kind == yaml.SequenceNode {
		var l []string
		if err := n.Decode(&l); err != nil {
			return err
		}
		for _, s := range l {
			(*d)[s] = "service_started"
		}
		return nil
	}
	var m map[string]struct {
		Condition string `yaml:"condition"`
	}
	if err := n.Decode(&m); err != nil {
		return err
	}
	for k, v := range m {
		c := v.Condition
		if c == "" {
			c = "service_started"
		}
		(*d)[k] = c
	}
	return nil
}

// build is a context path, or a context and a Dockerfile.
type build struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

func (b *build) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		b.Context = n.Value
		return nil
	}
	type plain build
	return n.Decode((*plain)(b))
}

// mount is a volume in short ("src:dst[:mode]") or long syntax.
type mount struct {
	Source, Target string
	ReadOnly       bool
}

func (m *mount) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		parts := strings.Split(n.Value, ":")
		switch len(parts) {
		case 1:
			m.Target = parts[0]
		case 2, 3:
			m.Source, m.Target = parts[0], parts[1]
			if len(parts) == 3 {
				m.ReadOnly = slices.Contains(strings.Split(parts[2], ","), "ro")
			}
		default:
			return fmt.Errorf("line %d: volume %q: not src:dst[:mode]", n.Line, n.Value)
		}
		return nil
	}
	var long struct {
		Source   string `yaml:"source"`
		Target   string `yaml:"target"`
		ReadOnly bool   `yaml:"read_only"`
	}
	if err := n.Decode(&long); err != nil {
		return err
	}
	*m = mount{Source: long.Source, Target: long.Target, ReadOnly: long.ReadOnly}
	return nil
}

// port is a port mapping in short ("[ip:]host:container[/proto]") or long syntax.
type port struct {
	HostIP, Published, Target string
	Mode                      string // long syntax: ingress (the default) or host
}

func (p *port) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		v, _, _ := strings.Cut(n.Value, "/")
		parts := strings.Split(v, ":")
		switch len(parts) {
		case 1: // a random host port, on every interface
			p.Target = parts[0]
		case 2:
			p.Published, p.Target = parts[0], parts[1]
		case 3:
			p.HostIP, p.Published, p.Target = parts[0], parts[1], parts[2]
		default:
			return fmt.Errorf("line %d: port %q: IPv6 addresses are not supported by this test", n.Line, n.Value)
		}
		return nil
	}
	var long struct {
		HostIP    string `yaml:"host_ip"`
		Published any    `yaml:"published"`
		Target    any    `yaml:"target"`
		Mode      string `yaml:"mode"`
	}
	if err := n.Decode(&long); err != nil {
		return err
	}
	p.HostIP, p.Mode = long.HostIP, long.Mode
	if long.Published != nil {
		p.Published = fmt.Sprint(long.Published)
	}
	p.Target = fmt.Sprint(long.Target)
	return nil
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	return loadComposeFile(t, composePath)
}

// loadComposeFile reads a Compose file (compose.yaml, or the stack file).
func loadComposeFile(t *testing.T, path string) composeFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(c.Services) == 0 {
		t.Fatalf("%s: no services", path)
	}
	return c
}

func svc(t *testing.T, c composeFile, name string) service {
	t.Helper()
	s, ok := c.Services[name]
	if !ok {
		t.Fatalf("%s: no service %q", composePath, name)
	}
	return s
}

var interpolation = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// interpolate resolves ${VAR}, ${VAR:-default} and ${VAR:?message} the way
// Compose does, with vars standing for the environment.
func interpolate(s string, vars map[string]string) (string, error) {
	var errs []string
	out := interpolation.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$$" {
			return "$"
		}
		sm := interpolation.FindStringSubmatch(m)
		name, op, arg := sm[1], sm[2], sm[3]
		if name == "" {
			name = sm[4]
		}
		v, set := vars[name]
		switch op {
		case ":-":
			if v == "" {
				return arg
			}
		case "-":
			if !set {
				return arg
			}
		case ":?":
			if v == "" {
				errs = append(errs, name+": "+arg)
			}
		case "?":
			if !set {
				errs = append(errs, name+": "+arg)
			}
		}
		return v
	})
	if len(errs) > 0 {
		return "", fmt.Errorf("required variables unset: %s", strings.Join(errs, "; "))
	}
	return out, nil
}

// requiredVar matches a value that is one required variable: ${VAR:?message}.
var requiredVar = regexp.MustCompile(`^\$\{([A-Z][A-Z0-9_]*):\?[^}]+\}$`)

// testEnv stands for the variables an operator must set.
var testEnv = map[string]string{
	"HOMEROOM_ADMIN_TOKEN": "test-admin-token",
	"MINIO_ROOT_USER":      "homeroom",
	"MINIO_ROOT_PASSWORD":  "test-minio-password",
}

func TestComposeHasTheServices(t *testing.T) {
	c := loadCompose(t)
	for _, name := range []string{"traefik", "mongo", "minio", "apiserver", "controller"} {
		if _, ok := c.Services[name]; !ok {
			t.Errorf("no service %q", name)
		}
	}
}

func TestComposeImagesAreOfficialAndPinned(t *testing.T) {
	c := loadCompose(t)
	for name, repo := range map[string]string{"traefik": "traefik", "mongo": "mongo", "minio": "minio/minio"} {
		s := svc(t, c, name)
		if gotRepo, _, ok := strings.Cut(s.Image, ":"); !ok || gotRepo != repo {
			t.Errorf("%s: image %q, want the official %s:<tag>", name, s.Image, repo)
		}
		if s.Build != nil {
			t.Errorf("%s: builds an image; want the official %s image", name, repo)
		}
	}
	if tag := imageTag(svc(t, c, "traefik").Image); !strings.HasPrefix(tag, "v3.6.") {
		t.Errorf("traefik: tag %q; want v3.6.x (the Traefik version Homeroom is tested with)", tag)
	}
	if tag := imageTag(svc(t, c, "minio").Image); !strings.HasPrefix(tag, "RELEASE.") {
		t.Errorf("minio: tag %q; want a RELEASE.… tag", tag)
	}
	for name, s := range c.Services {
		if s.Image == "" {
			continue
		}
		if tag := imageTag(s.Image); tag == "" || tag == "latest" || strings.Contains(tag, "$") {
			t.Errorf("%s: image %q is not pinned to a tag", name, s.Image)
		}
	}
}

func imageTag(image string) string {
	image, _, _ = strings.Cut(image, "@")
	if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
		return image[i+1:]
	}
	return ""
}

func TestComposeBuildsHomeroomFromTheDockerfile(t *testing.T) {
	c := loadCompose(t)
	wantDockerfile, _ := filepath.Abs(dockerfilePath)
	wantContext, _ := filepath.Abs(repoRoot)
	df := parseDockerfile(t)
	binaries := df.finalFiles()
	for _, name := range homeroomServices {
		s := svc(t, c, name)
		if s.Build == nil {
			t.Errorf("%s: no build; want manifests/Dockerfile", name)
			continue
		}
		ctx, _ := filepath.Abs(s.Build.Context)
		file := s.Build.Dockerfile
		if file == "" {
			file = "Dockerfile"
		}
		if !filepath.IsAbs(file) {
			file = filepath.Join(ctx, file)
		}
		if file != wantDockerfile {
			t.Errorf("%s: builds from %s; want %s", name, file, wantDockerfile)
		}
		if ctx != wantContext {
			t.Errorf("%s: build context %s; want the repository root %s (the Dockerfile copies go.mod)", name, ctx, wantContext)
		}
		if len(s.Entrypoint) == 0 {
			t.Errorf("%s: no entrypoint: the image holds two binaries and must be told which", name)
			continue
		}
		if bin := s.Entrypoint[0]; bin != "/"+name || !binaries[bin] {
			t.Errorf("%s: entrypoint %q; want /%s, a binary the Dockerfile's final stage holds (%v)", name, bin, name, keys(binaries))
		}
	}
}

func TestComposeDockerSocketOnlyInTraefikAndController(t *testing.T) {
	c := loadCompose(t)
	got := map[string]mount{}
	for name, s := range c.Services {
		for _, m := range s.Volumes {
			if m.Source == dockerSocket || m.Source == "/run/docker.sock" {
				got[name] = m
			}
		}
	}
	if !slices.Equal(keys(got), []string{"controller", "traefik"}) {
		t.Errorf("the Docker socket is mounted into %v; want exactly [controller traefik]", keys(got))
	}
	if m, ok := got["traefik"]; ok && !m.ReadOnly {
		t.Errorf("traefik: the Docker socket is mounted read-write; want :ro")
	}
	for name, m := range got {
		if m.Target != dockerSocket {
			t.Errorf("%s: the socket is at %s; want %s, where the Docker client looks", name, m.Target, dockerSocket)
		}
	}
	for name, s := range c.Services {
		if v, ok := s.Environment["DOCKER_HOST"]; ok {
			t.Errorf("%s: DOCKER_HOST=%s; the socket mount is the only way to Docker", name, v)
		}
	}
}

// TestComposeTraefik checks Traefik on the host's network: class networks let
// no container reach another (enable_icc=false), so Traefik reaches sandboxes,
// and the apiserver's sign-in check, from the host.
func TestComposeTraefik(t *testing.T) {
	c := loadCompose(t)
	tr := svc(t, c, "traefik")
	if !slices.Contains(tr.Command, "--providers.docker=true") && !slices.Contains(tr.Command, "--providers.docker") {
		t.Errorf("traefik: the Docker provider is not enabled: %q", tr.Command)
	}
	if !slices.Contains(tr.Command, "--providers.docker.exposedbydefault=false") {
		t.Errorf("traefik: command lacks --providers.docker.exposedbydefault=false: %q", tr.Command)
	}

	if tr.NetworkMode != "host" {
		t.Errorf("traefik: network_mode %q; want host: class networks refuse traffic between containers, so Traefik reaches sandboxes from the host", tr.NetworkMode)
	}
	// On the host's network, ports and networks mean nothing (Compose refuses
	// networks with network_mode): Traefik listens on the host's ports itself.
	if len(tr.Ports) > 0 {
		t.Errorf("traefik: ports %+v; on the host's network it publishes nothing", tr.Ports)
	}
	if len(tr.Networks) > 0 {
		t.Errorf("traefik: networks %q; on the host's network it joins none", tr.Networks)
	}

	// Its entrypoints are listeners on the host: web on :80, and none on a
	// port another service publishes on the host.
	entrypoints := map[string]string{}
	internal := false // api, ping or metrics: Traefik's own entrypoint, :8080 unless set
	for _, arg := range tr.Command {
		if rest, ok := strings.CutPrefix(arg, "--entrypoints."); ok {
			if name, addr, ok := strings.Cut(rest, ".address="); ok {
				if _, dup := entrypoints[name]; dup {
					t.Errorf("traefik: entrypoint %s's address is given twice", name)
				}
				entrypoints[name] = addr
			}
		}
		for _, p := range []string{"--api", "--ping", "--metrics."} {
			if strings.HasPrefix(arg, p) && !strings.HasSuffix(arg, "=false") {
				internal = true
			}
		}
	}
	if addr, ok := entrypoints["web"]; !ok || addr != ":80" {
		t.Errorf("traefik: entrypoint web on %q; want --entrypoints.web.address=:80, the host's port 80 students are sent to", addr)
	}
	if _, ok := entrypoints["traefik"]; internal && !ok {
		t.Errorf("traefik: its api, ping or metrics are on with no --entrypoints.traefik.address: it would take the host's port 8080")
	}
	published := map[string]string{} // by the other services
	for name, s := range c.Services {
		if name == "traefik" {
			continue
		}
		for _, p := range s.Ports {
			published[p.Published] = name
		}
	}
	for ep, addr := range entrypoints {
		_, p, err := net.SplitHostPort(addr)
		if err != nil {
			t.Errorf("traefik: entrypoint %s: address %q: %v", ep, addr, err)
			continue
		}
		if other, ok := published[p]; ok {
			t.Errorf("traefik: entrypoint %s listens on the host's port %s, which %s publishes", ep, p, other)
		}
	}

	// The host's network is everything Traefik may reach: it keeps only what
	// it needs to bind port 80.
	if !slices.Contains(tr.CapDrop, "ALL") {
		t.Errorf("traefik: cap_drop %q; want ALL", tr.CapDrop)
	}
	if !slices.Equal(tr.CapAdd, []string{"NET_BIND_SERVICE"}) {
		t.Errorf("traefik: cap_add %q; want only NET_BIND_SERVICE, for port 80", tr.CapAdd)
	}
	if !slices.Contains(tr.SecurityOpt, "no-new-privileges:true") {
		t.Errorf("traefik: security_opt %q; want no-new-privileges:true", tr.SecurityOpt)
	}

	ctl := svc(t, c, "controller")
	want, err := interpolate(ctl.Environment["HOMEROOM_TRAEFIK_CONTAINER"], testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if want == "" {
		want = traefikName
	}
	if tr.ContainerName != want {
		t.Errorf("traefik: container_name %q; the controller looks for %q (HOMEROOM_TRAEFIK_CONTAINER)", tr.ContainerName, want)
	}

	// From the host Traefik reaches whatever is published there, loopback
	// included: the store and the artifact store must publish nothing.
	for _, name := range []string{"mongo", "minio"} {
		if s := svc(t, c, name); len(s.Ports) > 0 {
			t.Errorf("%s: publishes %+v; Traefik, on the host's network, would reach it", name, s.Ports)
		}
	}
}

// TestComposeSignInCheck checks that Traefik can reach the apiserver's
// sign-in check where the controller tells it to (every sandbox's forwardAuth
// address is HOMEROOM_SIGNIN_CHECK_URL followed by the check's path).
func TestComposeSignInCheck(t *testing.T) {
	c := loadCompose(t)
	api, ctl := svc(t, c, "apiserver"), svc(t, c, "controller")

	raw, ok := ctl.Environment["HOMEROOM_SIGNIN_CHECK_URL"]
	if !ok {
		t.Fatalf("controller: no HOMEROOM_SIGNIN_CHECK_URL; its default comes from the controller's own HOMEROOM_LISTEN, not the apiserver's")
	}
	val, err := interpolate(raw, testEnv)
	if err != nil {
		t.Fatalf("controller: HOMEROOM_SIGNIN_CHECK_URL: %v", err)
	}
	u, err := url.Parse(val)
	if err != nil {
		t.Fatalf("controller: HOMEROOM_SIGNIN_CHECK_URL=%q: %v", val, err)
	}
	if u.Scheme != "http" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/") {
		t.Errorf("controller: HOMEROOM_SIGNIN_CHECK_URL=%q; want http://<address>:<port> (the apiserver serves plain HTTP, and the check's path is appended)", val)
	}
	host, uport := u.Hostname(), u.Port()
	if addr, err := netip.ParseAddr(host); err != nil || !addr.IsLoopback() {
		t.Errorf("controller: HOMEROOM_SIGNIN_CHECK_URL=%q; want a loopback address: Traefik, on the host's network, reaches the apiserver's port published there", val)
	}

	// The apiserver's port published on the host for its HOMEROOM_LISTEN.
	listen, err := interpolate(api.Environment["HOMEROOM_LISTEN"], testEnv)
	if err != nil {
		t.Fatalf("apiserver: HOMEROOM_LISTEN: %v", err)
	}
	_, lport, err := net.SplitHostPort(listen)
	if err != nil {
		t.Fatalf("apiserver: HOMEROOM_LISTEN=%q: %v", listen, err)
	}
	i := slices.IndexFunc(api.Ports, func(p port) bool { return p.Target == lport })
	if i < 0 {
		t.Fatalf("apiserver: HOMEROOM_LISTEN port %s is not published: %+v", lport, api.Ports)
	}
	pub := api.Ports[i]
	if pub.Published == "" {
		t.Errorf("apiserver: port %s is published on a random host port; Traefik needs a fixed one", lport)
	}
	if uport != pub.Published {
		t.Errorf("controller: HOMEROOM_SIGNIN_CHECK_URL=%q names port %q; the apiserver's port %s is published on the host's port %q", val, uport, lport, pub.Published)
	}
	if pub.HostIP != "" && pub.HostIP != "0.0.0.0" && host != pub.HostIP {
		t.Errorf("controller: HOMEROOM_SIGNIN_CHECK_URL=%q; the apiserver is published on %s only", val, pub.HostIP)
	}
}

// TestComposeDomain checks that the apiserver, which makes students' sign-in
// links, and the controller, which routes their hosts, agree on the domain.
func TestComposeDomain(t *testing.T) {
	c := loadCompose(t)
	api, ctl := svc(t, c, "apiserver"), svc(t, c, "controller")
	for _, name := range homeroomServices {
		if _, ok := svc(t, c, name).Environment["HOMEROOM_DOMAIN"]; !ok {
			t.Errorf("%s: no HOMEROOM_DOMAIN", name)
		}
	}
	for _, domain := range []string{"", "school.example"} {
		env := map[string]string{}
		for k, v := range testEnv {
			env[k] = v
		}
		if domain != "" {
			env["HOMEROOM_DOMAIN"] = domain
		}
		a, errA := interpolate(api.Environment["HOMEROOM_DOMAIN"], env)
		b, errB := interpolate(ctl.Environment["HOMEROOM_DOMAIN"], env)
		if errA != nil || errB != nil {
			t.Errorf("HOMEROOM_DOMAIN=%q: %v, %v", domain, errA, errB)
			continue
		}
		if a != b {
			t.Errorf("HOMEROOM_DOMAIN=%q in the environment: apiserver %q, controller %q; they must agree", domain, a, b)
		}
		if domain != "" && a != domain {
			t.Errorf("HOMEROOM_DOMAIN=%q in the environment: the services use %q", domain, a)
		}
	}
}

// TestComposeNetworks checks that every network a service names is declared,
// and every declared one is used.
func TestComposeNetworks(t *testing.T) {
	c := loadCompose(t)
	used := map[string]bool{}
	for name, s := range c.Services {
		for _, n := range s.Networks {
			used[n] = true
			if _, ok := c.Networks[n]; !ok && n != "default" {
				t.Errorf("%s: network %q is not declared under networks:", name, n)
			}
		}
	}
	for n := range c.Networks {
		if !used[n] && n != "default" {
			t.Errorf("network %q is declared but no service uses it", n)
		}
	}
}

func TestComposeVariablesAreDocumented(t *testing.T) {
	documented := readmeConfigVariables(t)
	used := map[string][]string{}
	homeroomVar := regexp.MustCompile(`HOMEROOM_[A-Z0-9_]*[A-Z0-9]`)
	// Comments count: a commented-out setting is an instruction to operators.
	for _, file := range []string{composePath, dockerfilePath} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range homeroomVar.FindAllString(string(b), -1) {
			used[v] = append(used[v], file)
		}
	}
	if len(used) == 0 {
		t.Fatal("no HOMEROOM_ variable found in the manifests")
	}
	for v, files := range used {
		if !documented[v] {
			t.Errorf("%s (used in %s) is not in README.md's Configuration table", v, strings.Join(slices.Compact(files), ", "))
		}
	}
}

// readmeConfigVariables returns every HOMEROOM_ variable named in the tables
// of README.md's "## Configuration" section.
func readmeConfigVariables(t *testing.T) map[string]bool {
	t.Helper()
	f, err := os.Open(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	vars := map[string]bool{}
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			in = strings.TrimSpace(strings.TrimPrefix(line, "## ")) == "Configuration"
			continue
		}
		if in && strings.HasPrefix(strings.TrimSpace(line), "|") {
			for _, v := range regexp.MustCompile(`HOMEROOM_[A-Z0-9_]*[A-Z0-9]`).FindAllString(line, -1) {
				vars[v] = true
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(vars) == 0 {
		t.Fatalf("%s: no HOMEROOM_ variable in a table under \"## Configuration\"", readmePath)
	}
	return vars
}

func TestComposeSecretsComeFromTheEnvironment(t *testing.T) {
	c := loadCompose(t)
	required := map[string][]string{
		"apiserver":  {"HOMEROOM_ADMIN_TOKEN", "HOMEROOM_S3_ACCESS_KEY", "HOMEROOM_S3_SECRET_KEY"},
		"controller": {"HOMEROOM_S3_ACCESS_KEY", "HOMEROOM_S3_SECRET_KEY"},
		"minio":      {"MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"},
	}
	for name, vars := range required {
		s := svc(t, c, name)
		for _, v := range vars {
			if val := s.Environment[v]; !requiredVar.MatchString(val) {
				t.Errorf("%s: %s=%q; want a required variable, ${NAME:?message}", name, v, val)
			}
		}
	}
	// Homeroom signs with the keys MinIO was started with.
	mi, api := svc(t, c, "minio"), svc(t, c, "apiserver")
	if api.Environment["HOMEROOM_S3_ACCESS_KEY"] != mi.Environment["MINIO_ROOT_USER"] ||
		api.Environment["HOMEROOM_S3_SECRET_KEY"] != mi.Environment["MINIO_ROOT_PASSWORD"] {
		t.Errorf("apiserver's S3 keys are not MinIO's: %q/%q vs %q/%q",
			api.Environment["HOMEROOM_S3_ACCESS_KEY"], api.Environment["HOMEROOM_S3_SECRET_KEY"],
			mi.Environment["MINIO_ROOT_USER"], mi.Environment["MINIO_ROOT_PASSWORD"])
	}
	if _, ok := svc(t, c, "controller").Environment["HOMEROOM_ADMIN_TOKEN"]; ok {
		t.Errorf("controller: has HOMEROOM_ADMIN_TOKEN; it serves no API")
	}
}

func TestComposeApiserverAndControllerShareTheStores(t *testing.T) {
	c := loadCompose(t)
	api, ctl := svc(t, c, "apiserver"), svc(t, c, "controller")
	shared := []string{"HOMEROOM_MONGO_URI", "HOMEROOM_MONGO_DATABASE", "HOMEROOM_S3_ENDPOINT",
		"HOMEROOM_S3_ACCESS_KEY", "HOMEROOM_S3_SECRET_KEY", "HOMEROOM_S3_BUCKET", "HOMEROOM_S3_SECURE", "HOMEROOM_POLICY"}
	for _, v := range shared {
		if api.Environment[v] != ctl.Environment[v] {
			t.Errorf("%s: apiserver %q, controller %q; they must agree", v, api.Environment[v], ctl.Environment[v])
		}
	}
	// Without these the binaries fall back to the embedded, single-machine stores.
	for v, host := range map[string]string{"HOMEROOM_MONGO_URI": "mongo", "HOMEROOM_S3_ENDPOINT": "minio"} {
		val := api.Environment[v]
		rest := strings.TrimPrefix(val, "mongodb://")
		if h, _, _ := strings.Cut(rest, ":"); h != host {
			t.Errorf("%s=%q; want the %s service", v, val, host)
		}
	}
	if v := api.Environment["HOMEROOM_ADMIN_TOKEN"]; v == "" {
		t.Errorf("apiserver: no HOMEROOM_ADMIN_TOKEN; it would write a generated one into a read-only data dir")
	}
}

// TestComposePublishesOnlyOnLoopback: Traefik, on the host's network,
// publishes nothing and listens on the host's port 80 itself (TestComposeTraefik).
func TestComposePublishesOnlyOnLoopback(t *testing.T) {
	c := loadCompose(t)
	for name, s := range c.Services {
		for _, p := range s.Ports {
			if p.HostIP != "127.0.0.1" {
				t.Errorf("%s: port %s published on %q; want 127.0.0.1 only", name, p.Target, p.HostIP)
			}
		}
	}
	api := svc(t, c, "apiserver")
	listen := api.Environment["HOMEROOM_LISTEN"]
	host, lport, _ := strings.Cut(listen, ":")
	if host != "0.0.0.0" && host != "" {
		t.Errorf("apiserver: HOMEROOM_LISTEN=%q; inside its container it must listen on every interface to be published", listen)
	}
	if !slices.ContainsFunc(api.Ports, func(p port) bool { return p.HostIP == "127.0.0.1" && p.Target == lport }) {
		t.Errorf("apiserver: HOMEROOM_LISTEN port %s is not published on 127.0.0.1: %+v", lport, api.Ports)
	}
}

func TestComposeNothingPrivileged(t *testing.T) {
	c := loadCompose(t)
	for name, s := range c.Services {
		if s.Privileged {
			t.Errorf("%s: privileged", name)
		}
		for what, mode := range map[string]string{"pid": s.Pid, "ipc": s.Ipc, "userns_mode": s.UsernsMode} {
			if mode == "host" {
				t.Errorf("%s: %s: host", name, what)
			}
		}
		// Only Traefik shares the host's network (TestComposeTraefik says why);
		// nothing joins it there through Traefik's own namespace either.
		if name != "traefik" {
			switch m := s.NetworkMode; {
			case m == "host":
				t.Errorf("%s: network_mode: host; only traefik may", name)
			case m == "service:traefik" || m == "container:"+c.Services["traefik"].ContainerName || m == "container:"+traefikName:
				t.Errorf("%s: network_mode %s: Traefik's namespace is the host's network", name, m)
			}
		}
		if len(s.Devices) > 0 {
			t.Errorf("%s: devices %v", name, s.Devices)
		}
		for _, capName := range s.CapAdd {
			if capName != "NET_BIND_SERVICE" {
				t.Errorf("%s: cap_add %s", name, capName)
			}
		}
		for _, m := range s.Volumes {
			if m.Source == "/" || m.Source == "/proc" || m.Source == "/sys" || m.Source == "/var/lib/docker" {
				t.Errorf("%s: mounts the host's %s", name, m.Source)
			}
		}
	}
}

func TestComposeLongRunningServices(t *testing.T) {
	c := loadCompose(t)
	for name, s := range c.Services {
		if s.Restart != "unless-stopped" {
			t.Errorf("%s: restart %q; want unless-stopped", name, s.Restart)
		}
	}
	// Data outlives containers: named volumes, declared at the top level.
	for name, dir := range map[string]string{"mongo": "/data/db", "minio": "/data"} {
		s := svc(t, c, name)
		i := slices.IndexFunc(s.Volumes, func(m mount) bool { return m.Target == dir })
		if i < 0 {
			t.Errorf("%s: no volume at %s", name, dir)
			continue
		}
		if src := s.Volumes[i].Source; strings.ContainsAny(src, "/.~$") || src == "" {
			t.Errorf("%s: %s is on %q; want a named volume", name, dir, src)
		} else if _, ok := c.Volumes[src]; !ok {
			t.Errorf("%s: volume %q is not declared under volumes:", name, src)
		}
	}
}

func TestComposeHealthAndStartOrder(t *testing.T) {
	c := loadCompose(t)
	for _, name := range []string{"mongo", "minio"} {
		if h := svc(t, c, name).Healthcheck; h == nil || h.Disable || len(h.Test) == 0 {
			t.Errorf("%s: no healthcheck", name)
		}
	}
	for _, name := range homeroomServices {
		s := svc(t, c, name)
		// FROM scratch: no shell, no curl.
		if h := s.Healthcheck; h != nil && !h.Disable && len(h.Test) > 0 && h.Test[0] == "CMD-SHELL" {
			t.Errorf("%s: a CMD-SHELL healthcheck in an image without a shell", name)
		}
		for _, dep := range []string{"mongo", "minio"} {
			if s.DependsOn[dep] != "service_healthy" {
				t.Errorf("%s: depends_on %s: %q; want service_healthy", name, dep, s.DependsOn[dep])
			}
		}
	}
	for name, s := range c.Services {
		for dep, cond := range s.DependsOn {
			d, ok := c.Services[dep]
			switch {
			case !ok:
				t.Errorf("%s: depends on unknown service %q", name, dep)
			case cond == "service_healthy" && (d.Healthcheck == nil || d.Healthcheck.Disable):
				t.Errorf("%s: waits for %s to be healthy, which has no healthcheck", name, dep)
			}
		}
	}
}

// dockerfile is a parsed Dockerfile: its stages in order.
type dockerfile struct{ stages []stage }

type stage struct {
	from, name string
	copies     []copyInstr
	runs       []string
	user       string
}

type copyInstr struct {
	from string
	srcs []string
	dst  string
}

// finalFiles returns the paths the final stage copies files to.
func (d dockerfile) finalFiles() map[string]bool {
	files := map[string]bool{}
	for _, c := range d.stages[len(d.stages)-1].copies {
		if len(c.srcs) == 1 && !strings.HasSuffix(c.dst, "/") {
			files[c.dst] = true
			continue
		}
		for _, s := range c.srcs {
			files[path.Join(c.dst, path.Base(s))] = true
		}
	}
	return files
}

func parseDockerfile(t *testing.T) dockerfile {
	t.Helper()
	b, err := os.ReadFile(dockerfilePath)
	if err != nil {
		t.Fatal(err)
	}
	var d dockerfile
	var logical []string
	cur := ""
	for _, line := range strings.Split(string(b), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur == "") {
			continue
		}
		if strings.HasSuffix(trimmed, `\`) {
			cur += strings.TrimSuffix(trimmed, `\`) + " "
			continue
		}
		logical = append(logical, cur+trimmed)
		cur = ""
	}
	for _, l := range logical {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		args := f[1:]
		switch strings.ToUpper(f[0]) {
		case "FROM":
			st := stage{}
			args = slices.DeleteFunc(args, func(a string) bool { return strings.HasPrefix(a, "--") })
			if len(args) > 0 {
				st.from = args[0]
			}
			if len(args) == 3 && strings.EqualFold(args[1], "AS") {
				st.name = args[2]
			}
			d.stages = append(d.stages, st)
		case "COPY", "ADD":
			if len(d.stages) == 0 {
				t.Fatalf("%s: %s before FROM", dockerfilePath, l)
			}
			var c copyInstr
			var rest []string
			for _, a := range args {
				if v, ok := strings.CutPrefix(a, "--from="); ok {
					c.from = v
				} else if !strings.HasPrefix(a, "--") {
					rest = append(rest, a)
				}
			}
			if len(rest) < 2 {
				t.Fatalf("%s: %q: want sources and a destination", dockerfilePath, l)
			}
			c.srcs, c.dst = rest[:len(rest)-1], rest[len(rest)-1]
			st := &d.stages[len(d.stages)-1]
			st.copies = append(st.copies, c)
		case "RUN":
			st := &d.stages[len(d.stages)-1]
			st.runs = append(st.runs, strings.Join(args, " "))
		case "USER":
			d.stages[len(d.stages)-1].user = strings.Join(args, " ")
		}
	}
	if len(d.stages) < 2 {
		t.Fatalf("%s: %d stages; want a builder and a minimal final stage", dockerfilePath, len(d.stages))
	}
	return d
}

func TestDockerfile(t *testing.T) {
	d := parseDockerfile(t)
	builder, final := d.stages[0], d.stages[len(d.stages)-1]
	if !strings.HasPrefix(builder.from, "golang:1.26") {
		t.Errorf("builder FROM %q; want golang:1.26", builder.from)
	}
	if final.from != "scratch" && !strings.HasPrefix(final.from, "gcr.io/distroless/static") {
		t.Errorf("final stage FROM %q; want scratch (or distroless/static)", final.from)
	}
	build := ""
	for _, r := range builder.runs {
		if strings.Contains(r, "go build") {
			build = r
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "./cmd/apiserver", "./cmd/controller"} {
		if !strings.Contains(build, want) {
			t.Errorf("the builder's go build lacks %s: %q", want, build)
		}
	}
	files := d.finalFiles()
	for _, want := range []string{"/apiserver", "/controller", "/etc/ssl/certs/ca-certificates.crt"} {
		if !files[want] {
			t.Errorf("the final stage does not copy %s (it copies %v)", want, keys(files))
		}
	}
	for _, c := range final.copies {
		if c.from == "" {
			t.Errorf("the final stage copies %v from the build context; want only the builder's output", c.srcs)
		}
	}
	if u, _, _ := strings.Cut(final.user, ":"); u == "" || u == "0" || u == "root" {
		t.Errorf("the final stage's USER is %q; want a non-root default (compose.yaml makes the controller root)", final.user)
	}
}

// TestDockerfileCopiesEverySource checks that the builder is given every
// directory of the module the two binaries are built from.
func TestDockerfileCopiesEverySource(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command in PATH")
	}
	d := parseDockerfile(t)
	copied := map[string]bool{}
	for _, c := range d.stages[0].copies {
		if c.from != "" {
			continue
		}
		for _, s := range c.srcs {
			copied[strings.Trim(path.Clean(s), "/")] = true
		}
	}
	if copied["."] {
		return // the whole context
	}
	for _, f := range []string{"go.mod", "go.sum"} {
		if !copied[f] {
			t.Errorf("the builder does not copy %s", f)
		}
	}
	cmd := exec.Command(goBin, "list", "-deps", "-f", "{{.ImportPath}}", "./cmd/apiserver", "./cmd/controller")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "GOPROXY=off")
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Skipf("go list: %v: %s", err, stderr)
	}
	for _, pkg := range strings.Fields(string(out)) {
		rel, ok := strings.CutPrefix(pkg, modulePath+"/")
		if !ok {
			continue
		}
		covered := false
		for dir := rel; dir != "." && !covered; dir = path.Dir(dir) {
			covered = copied[dir]
		}
		if !covered {
			t.Errorf("package %s is built but %s is not copied into the builder", pkg, rel)
		}
	}
}

// TestComposeConfig has Docker Compose itself validate the file, where the
// compose plugin is installed.
func TestComposeConfig(t *testing.T) {
	docker, err := exec.LookPath("docker")
	if err != nil {
		t.Skip("no docker command")
	}
	if exec.Command(docker, "compose", "version").Run() != nil {
		t.Skip("docker compose is not installed")
	}
	// An empty env file stands for manifests/.env, which an operator may have.
	envFile := filepath.Join(t.TempDir(), "empty.env")
	if err := os.WriteFile(envFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(env map[string]string) ([]byte, error) {
		cmd := exec.Command(docker, "compose", "--env-file", envFile, "-f", composePath, "config", "-q")
		for _, kv := range os.Environ() {
			k, _, _ := strings.Cut(kv, "=")
			if _, ours := testEnv[k]; !ours && k != "HOMEROOM_DOMAIN" {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.Bytes(), err
	}
	if out, err := run(testEnv); err != nil {
		t.Errorf("docker compose config: %v\n%s", err, out)
	}
	requiresEach(t, "docker compose config", testEnv, run)
}

// requiresEach checks that run, a command reading a Compose file, refuses
// the file without each of env's variables and names the one missing.
func requiresEach(t *testing.T, what string, env map[string]string, run func(map[string]string) ([]byte, error)) {
	t.Helper()
	for v := range env {
		without := map[string]string{}
		for k, val := range env {
			if k != v {
				without[k] = val
			}
		}
		if out, err := run(without); err == nil {
			t.Errorf("%s accepts the file without %s", what, v)
		} else if !strings.Contains(string(out), v) {
			t.Errorf("without %s, %s fails without naming it:\n%s", v, what, out)
		}
	}
}

// TestInterpolate checks the test's own reading of Compose's variables.
func TestInterpolate(t *testing.T) {
	vars := map[string]string{"SET": "x", "EMPTY": ""}
	for _, tc := range []struct {
		in, want string
		err      bool
	}{
		{in: "${SET}", want: "x"},
		{in: "a$SET-b", want: "ax-b"},
		{in: "${UNSET:-d}", want: "d"},
		{in: "${EMPTY:-d}", want: "d"},
		{in: "${EMPTY-d}", want: ""},
		{in: "${SET:?must}", want: "x"},
		{in: "${EMPTY:?must}", err: true},
		{in: "${UNSET?must}", err: true},
		{in: "$${SET}", want: "${SET}"},
	} {
		got, err := interpolate(tc.in, vars)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("interpolate(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
	if !requiredVar.MatchString("${HOMEROOM_ADMIN_TOKEN:?set an admin token}") || requiredVar.MatchString("${X:-d}") {
		t.Errorf("requiredVar matches the wrong forms")
	}
}

func keys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
