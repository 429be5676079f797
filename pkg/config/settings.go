package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A Setting is one thing a binary can be told: a flag, and the environment
// variable that sets it when the flag is not given. Value holds the default
// until one of them sets it.
type Setting struct {
	Flag  string // without the dash: "workers"
	Env   string // "HOMEROOM_WORKERS"
	Help  string // what it means; the variable's name is added to it
	Value flag.Value
}

// MapLookup is a lookup for Parse over a map of variables instead of the
// environment.
func MapLookup(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// Parse sets settings from the environment (lookup, e.g. os.LookupEnv),
// then from args, which override it. Both go through the setting's own
// Value.Set, so a value that does not parse, or that is out of range, is
// refused the same way from either, naming the variable or flag and the
// value. An empty variable counts as unset. With -h or -help, Parse writes
// the usage to usage and returns flag.ErrHelp.
func Parse(name string, settings []Setting, args []string, lookup func(string) (string, bool), usage io.Writer) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	// The flag package prints usage after each error; a bad value deserves
	// one line, and -h the usage, both printed here.
	fs.SetOutput(io.Discard)
	for _, s := range settings {
		fs.Var(s.Value, s.Flag, s.Help)
	}
	for _, s := range settings {
		v, ok := lookup(s.Env)
		if !ok || v == "" {
			continue
		}
		if err := fs.Set(s.Flag, v); err != nil {
			return fmt.Errorf("invalid value %q in %s (the variable of -%s): %w", v, s.Env, s.Flag, err)
		}
	}
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		printUsage(usage, fs, settings)
		return err
	}
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: %s takes only flags", fs.Arg(0), name)
	}
	return nil
}

// printUsage lists the settings in their own order, each flag with what it
// takes, its variable and its default (as registered, before the
// environment set any).
func printUsage(w io.Writer, fs *flag.FlagSet, settings []Setting) {
	fmt.Fprintf(w, "Usage of %s (each flag overrides its variable):\n", fs.Name())
	for _, s := range settings {
		arg := " value"
		if k, ok := s.Value.(interface{ kind() string }); ok {
			arg = " " + k.kind()
		}
		if b, ok := s.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			arg = ""
		}
		def := ""
		if d := fs.Lookup(s.Flag).DefValue; d != "" {
			def = "; default " + d
		}
		fmt.Fprintf(w, "  -%s%s\n    \t%s (%s%s)\n", s.Flag, arg, s.Help, s.Env, def)
	}
}

// value is a flag.Value that parses, and so checks, with parse.
type value[T any] struct {
	p      *T
	parse  func(string) (T, error)
	format func(T) string
	isBool bool
	what   string // what it takes, for the usage
}

func newValue[T any](p *T, def T, what string, parse func(string) (T, error), format func(T) string) *value[T] {
	*p = def
	return &value[T]{p: p, parse: parse, format: format, what: what}
}

func (v *value[T]) kind() string { return v.what }

func (v *value[T]) Set(s string) error {
	x, err := v.parse(s)
	if err != nil {
		return err
	}
	*v.p = x
	return nil
}

// String may be called on a zero value: the flag package does.
func (v *value[T]) String() string {
	if v == nil || v.p == nil {
		return ""
	}
	return v.format(*v.p)
}

func (v *value[T]) IsBoolFlag() bool { return v != nil && v.isBool }

// String is any text.
func String(p *string, def string) flag.Value {
	return newValue(p, def, "string", func(s string) (string, error) { return s, nil }, func(s string) string { return s })
}

// Checked is text that check accepts.
func Checked(p *string, def string, check func(string) error) flag.Value {
	return newValue(p, def, "string", func(s string) (string, error) { return s, check(s) }, func(s string) string { return s })
}

// OneOf is one of choices.
func OneOf(p *string, def string, choices ...string) flag.Value {
	return newValue(p, def, strings.Join(choices, "|"), func(s string) (string, error) {
		if !slices.Contains(choices, s) {
			return "", fmt.Errorf("want one of %s", strings.Join(choices, ", "))
		}
		return s, nil
	}, func(s string) string { return s })
}

// Bool is true or false (also 1, 0, t, f, TRUE, …: strconv.ParseBool).
func Bool(p *bool, def bool) flag.Value {
	v := newValue(p, def, "", func(s string) (bool, error) {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return false, errors.New("want true or false")
		}
		return b, nil
	}, strconv.FormatBool)
	v.isBool = true
	return v
}

// Int is a whole number of at least min.
func Int(p *int, def, min int) flag.Value { return IntBetween(p, def, min, math.MaxInt) }

// IntBetween is a whole number from min to max.
func IntBetween(p *int, def, min, max int) flag.Value {
	return newValue(p, def, "int", func(s string) (int, error) {
		n, err := strconv.Atoi(s)
		if err != nil {
			return 0, errors.New("not a whole number")
		}
		if n < min {
			return 0, fmt.Errorf("want at least %d", min)
		}
		if n > max {
			return 0, fmt.Errorf("want at most %d", max)
		}
		return n, nil
	}, strconv.Itoa)
}

// Float is a number of at least min.
func Float(p *float64, def, min float64) flag.Value {
	return newValue(p, def, "number", func(s string) (float64, error) {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, errors.New("not a number")
		}
		if f < min {
			return 0, fmt.Errorf("want at least %g", min)
		}
		return f, nil
	}, func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) })
}

// Duration is a duration with a unit (300ms, 30s, 5m) between min and max;
// max 0: no upper bound.
func Duration(p *time.Duration, def, min, max time.Duration) flag.Value {
	return newValue(p, def, "duration", func(s string) (time.Duration, error) {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, errors.New("not a duration with a unit, such as 500ms, 30s or 5m")
		}
		if d < min || max > 0 && d > max {
			if max > 0 {
				return 0, fmt.Errorf("want between %v and %v", min, max)
			}
			return 0, fmt.Errorf("want at least %v", min)
		}
		return d, nil
	}, time.Duration.String)
}

// Binary is one of Homeroom's two servers, or both.
type Binary uint8

const (
	Apiserver Binary = 1 << iota
	Controller
	Both = Apiserver | Controller
)

// Load reads the settings binary b takes: Config's own (Settings) and
// the binary's extra ones, as Parse does.
func (c *Config) Load(b Binary, extra []Setting, args []string, lookup func(string) (string, bool), usage io.Writer) error {
	name := "apiserver"
	if b == Controller {
		name = "controller"
	}
	if err := Parse(name, append(c.Settings(b), extra...), args, lookup, usage); err != nil {
		return err
	}
	// Not a setting any more, only read to be refused (EmbeddedStoreSocket).
	c.embeddedMongoAddr, _ = lookup("HOMEROOM_EMBEDDED_MONGO_ADDR")
	return nil
}

// Settings are the settings of Config that binary b takes, bound to c, and
// c set to their defaults. Each binary adds its own (cmd/apiserver,
// cmd/controller); README.md's Configuration table lists them all.
func (c *Config) Settings(b Binary) []Setting {
	all := []struct {
		bin Binary
		Setting
	}{
		{Apiserver, Setting{"listen", "HOMEROOM_LISTEN", "address to serve the API on", String(&c.Listen, "127.0.0.1:8080")}},
		{Controller, Setting{"listen", "HOMEROOM_CONTROLLER_LISTEN", "address for /metrics, /healthz and /readyz", String(&c.ControllerListen, "127.0.0.1:8081")}},
		{Controller, Setting{"apiserver-listen", "HOMEROOM_LISTEN", "the apiserver's -listen, from which -signin-check-url defaults", String(&c.Listen, "127.0.0.1:8080")}},
		{Both, Setting{"data-dir", "HOMEROOM_DATA_DIR", "where the embedded store and artifact store keep their data, and admin.token", String(&c.DataDir, "./data")}},
		{Both, Setting{"mongo-uri", "HOMEROOM_MONGO_URI", "MongoDB URI of the store; empty: the embedded one", String(&c.MongoURI, "")}},
		{Both, Setting{"mongo-database", "HOMEROOM_MONGO_DATABASE", "database in the store", String(&c.Database, "homeroom")}},
		{Both, Setting{"s3-endpoint", "HOMEROOM_S3_ENDPOINT", "S3 endpoint (host:port) of the artifact store; empty: the embedded one", String(&c.S3Endpoint, "")}},
		{Both, Setting{"s3-access-key", "HOMEROOM_S3_ACCESS_KEY", "the S3 endpoint's access key", String(&c.S3Access, "")}},
		{Both, Setting{"s3-secret-key", "HOMEROOM_S3_SECRET_KEY", "the S3 endpoint's secret key; prefer the variable, a flag shows in the process list", String(&c.S3Secret, "")}},
		{Both, Setting{"s3-bucket", "HOMEROOM_S3_BUCKET", "bucket of the artifact store", String(&c.S3Bucket, "homeroom")}},
		{Both, Setting{"s3-secure", "HOMEROOM_S3_SECURE", "reach the S3 endpoint over TLS", Bool(&c.S3Secure, false)}},
		{Both, Setting{"embedded-s3-addr", "HOMEROOM_EMBEDDED_S3_ADDR", "loopback address the apiserver serves the embedded artifact store on, and the controller finds it at", String(&c.EmbeddedS3, "127.0.0.1:9100")}},
		{Apiserver, Setting{"admin-token", "HOMEROOM_ADMIN_TOKEN", "the bootstrap admin's bearer token; empty: generated once into <data dir>/admin.token; prefer the variable, a flag shows in the process list", String(&c.AdminToken, "")}},
		{Apiserver, Setting{"trusted-proxies", "HOMEROOM_TRUSTED_PROXIES", "comma-separated CIDRs and IPs of proxies whose X-Forwarded-For names the client; empty: the connection's peer is the client", Checked(&c.TrustedProxies, "", func(s string) error { _, err := ParseTrustedProxies(s); return err })}},
		{Both, Setting{"policy", "HOMEROOM_POLICY", "policy file (templates and quotas); empty: the built-in one", String(&c.PolicyPath, "")}},
		{Both, Setting{"domain", "HOMEROOM_DOMAIN", "students are at <student>.<class>.<domain>", String(&c.Domain, "lab.localhost")}},
		{Controller, Setting{"traefik-container", "HOMEROOM_TRAEFIK_CONTAINER", "name of the Traefik container that routes to sandboxes", String(&c.Traefik, "homeroom-traefik")}},
		{Controller, Setting{"traefik-url", "HOMEROOM_TRAEFIK_URL", "where the controller reaches Traefik's entrypoint (http://host:port), to see that a student's host is routed before a sandbox with a readiness check counts as running; empty: not checked", Checked(&c.TraefikURL, "", checkTraefikURL)}},
		{Controller, Setting{"signin-check-url", "HOMEROOM_SIGNIN_CHECK_URL", "where Traefik reaches the apiserver's sign-in check; empty: http:// and -apiserver-listen, 0.0.0.0 read as 127.0.0.1", String(&c.SignInCheckURL, "")}},
		{Controller, Setting{"subnet-pool", "HOMEROOM_SUBNET_POOL", "IPv4 pool class networks take their subnets from", Checked(&c.SubnetPool, "10.200.0.0/15", checkSubnetPool)}},
		{Controller, Setting{"subnet-bits", "HOMEROOM_SUBNET_BITS", "prefix length of one class network's subnet, between the pool's and 28", Int(&c.SubnetBits, 23, 1)}},
		{Controller, Setting{"runtime", "HOMEROOM_RUNTIME", "where classes run: docker, the daemon of DOCKER_HOST; swarm, the swarm that daemon manages", OneOf(&c.Runtime, "docker", "docker", "swarm")}},
		{Controller, Setting{"swarm-job-image", "HOMEROOM_SWARM_JOB_IMAGE", "with -runtime swarm: the image of the jobs run on the nodes (cmd/nodejob), which every node must have", String(&c.SwarmJobImage, "homeroom/nodejob:dev")}},
		{Controller, Setting{"swarm-node-socket", "HOMEROOM_SWARM_NODE_SOCKET", "with -runtime swarm: each node's Docker socket, on that node, which the jobs use", String(&c.SwarmNodeSocket, "/var/run/docker.sock")}},
		{Controller, Setting{"swarm-store-endpoint", "HOMEROOM_SWARM_STORE_ENDPOINT", "with -runtime swarm: the object store as the nodes reach it (host:port or URL), for the collection jobs' uploads; empty: -s3-endpoint", String(&c.SwarmStoreEndpoint, "")}},
		{Controller, Setting{"swarm-node-lost-after", "HOMEROOM_SWARM_NODE_LOST_AFTER", "with -runtime swarm: how long a node is down before its sandboxes are made again on other nodes with their last autosave", Duration(&c.SwarmNodeLostAfter, time.Minute, time.Second, 24*time.Hour)}},
		{Controller, Setting{"swarm-network-pool", "HOMEROOM_SWARM_NETWORK_POOL", "with -runtime swarm: how many students' own networks are kept made, with Traefik on them, ahead of an Up (a class's size or more brings it Up fastest); 0: each is made as its sandbox is", IntBetween(&c.SwarmNetworkPool, 32, 0, 1000)}},
		{Both, Setting{"log-level", "HOMEROOM_LOG_LEVEL", "the least severe log lines written", OneOf(&c.LogLevel, "info", "debug", "info", "warn", "error")}},
		{Both, Setting{"log-format", "HOMEROOM_LOG_FORMAT", "the log lines' format; console suits a terminal", OneOf(&c.LogFormat, "json", "json", "console")}},
	}
	var out []Setting
	for _, s := range all {
		if s.bin&b != 0 {
			out = append(out, s.Setting)
		}
	}
	return out
}

// checkTraefikURL accepts "" or http(s)://host[:port] with no path.
func checkTraefikURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.User != nil {
		return errors.New("want http://host:port (Traefik's entrypoint, no path), or nothing")
	}
	return nil
}

func checkSubnetPool(s string) error {
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() {
		return errors.New("want an IPv4 prefix such as 10.200.0.0/15")
	}
	return nil
}

// CheckSubnets refuses a subnet size the pool cannot hold.
func (c Config) CheckSubnets() (netip.Prefix, error) {
	pool, err := netip.ParsePrefix(c.SubnetPool)
	if err != nil || !pool.Addr().Is4() || c.SubnetBits < pool.Bits() || c.SubnetBits > 28 {
		return netip.Prefix{}, fmt.Errorf("subnet pool %q (HOMEROOM_SUBNET_POOL, -subnet-pool) with /%d subnets (HOMEROOM_SUBNET_BITS, -subnet-bits): want an IPv4 prefix and a prefix length between its own and 28", c.SubnetPool, c.SubnetBits)
	}
	return pool, nil
}
