package config

import (
	"errors"
	"flag"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// fromEnv is the configuration the apiserver reads from this environment
// and no flags.
func fromEnv(t *testing.T) Config {
	t.Helper()
	var c Config
	if err := c.Load(Apiserver, nil, nil, os.LookupEnv, io.Discard); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestLoadDefaults(t *testing.T) {
	var c Config
	if err := c.Load(Controller, nil, nil, MapLookup(nil), io.Discard); err != nil {
		t.Fatal(err)
	}
	want := Config{
		Listen: "127.0.0.1:8080", ControllerListen: "127.0.0.1:8081", DataDir: "./data", Database: "homeroom",
		S3Bucket: "homeroom", Traefik: "homeroom-traefik", Domain: "lab.localhost", LogLevel: "info", LogFormat: "json",
		SubnetPool: "10.200.0.0/15", SubnetBits: 23, EmbeddedS3: "127.0.0.1:9100",
		Runtime: "docker", SwarmJobImage: "homeroom/nodejob:dev", SwarmNodeSocket: "/var/run/docker.sock", SwarmNodeLostAfter: time.Minute, SwarmNetworkPool: 32,
	}
	if c != want {
		t.Errorf("defaults:\n%+v\nwant\n%+v", c, want)
	}
}

// TestLoadEnvironmentThenFlags: a variable sets what its flag does, a flag
// given wins, and an empty variable is unset.
func TestLoadEnvironmentThenFlags(t *testing.T) {
	var c Config
	v := MapLookup(map[string]string{
		"HOMEROOM_LISTEN": "0.0.0.0:9000", "HOMEROOM_S3_SECURE": "true", "HOMEROOM_LOG_LEVEL": "debug",
		"HOMEROOM_DOMAIN": "", "HOMEROOM_MONGO_URI": "mongodb://env", "HOMEROOM_TRUSTED_PROXIES": "10.0.0.0/8",
	})
	if err := c.Load(Apiserver, nil, []string{"-mongo-uri=mongodb://flag", "-s3-secure=false", "-log-format", "console"}, v, io.Discard); err != nil {
		t.Fatal(err)
	}
	if c.Listen != "0.0.0.0:9000" || c.S3Secure || c.LogLevel != "debug" || c.LogFormat != "console" ||
		c.Domain != "lab.localhost" || c.MongoURI != "mongodb://flag" || c.TrustedProxies != "10.0.0.0/8" {
		t.Errorf("%+v", c)
	}
}

// TestLoadRefusesBadValues: a value of each kind that does not parse, or
// is out of range, stops the start, from a variable as from a flag, naming
// it and the value. Before, pkg/config took a word for a number as the
// default and anything but "true" as false.
func TestLoadRefusesBadValues(t *testing.T) {
	var (
		n  int
		f  float64
		d  time.Duration
		b  bool
		s  string
		ok string
	)
	extra := []Setting{
		{"count", "HOMEROOM_COUNT", "an int", Int(&n, 1, 1)},
		{"rate", "HOMEROOM_RATE", "a float", Float(&f, 1, 0)},
		{"period", "HOMEROOM_PERIOD", "a duration", Duration(&d, time.Second, time.Millisecond, 0)},
		{"wait", "HOMEROOM_WAIT", "a bounded duration", Duration(&d, time.Minute, time.Second, 10*time.Minute)},
		{"on", "HOMEROOM_ON", "a bool", Bool(&b, false)},
		{"kind", "HOMEROOM_KIND", "a choice", OneOf(&s, "a", "a", "b")},
		{"even", "HOMEROOM_EVEN", "checked", Checked(&ok, "", func(v string) error {
			if len(v)%2 != 0 {
				return errors.New("odd")
			}
			return nil
		})},
	}
	for _, tc := range []struct{ env, flag, value string }{
		{"HOMEROOM_COUNT", "count", "four"},
		{"HOMEROOM_COUNT", "count", "0"},
		{"HOMEROOM_COUNT", "count", "1.5"},
		{"HOMEROOM_RATE", "rate", "fast"},
		{"HOMEROOM_RATE", "rate", "-1"},
		{"HOMEROOM_RATE", "rate", "NaN"},
		{"HOMEROOM_PERIOD", "period", "-30s"},
		{"HOMEROOM_PERIOD", "period", "0s"},
		{"HOMEROOM_PERIOD", "period", "30"},
		{"HOMEROOM_WAIT", "wait", "1h"},
		{"HOMEROOM_ON", "on", "yes"},
		{"HOMEROOM_ON", "on", "enabled"},
		{"HOMEROOM_KIND", "kind", "c"},
		{"HOMEROOM_EVEN", "even", "odd"},
		// Config's own
		{"HOMEROOM_S3_SECURE", "s3-secure", "yes"},
		{"HOMEROOM_LOG_LEVEL", "log-level", "verbose"},
		{"HOMEROOM_LOG_FORMAT", "log-format", "text"},
		{"HOMEROOM_SUBNET_BITS", "subnet-bits", "abc"},
		{"HOMEROOM_SUBNET_POOL", "subnet-pool", "fd00::/8"},
		{"HOMEROOM_TRUSTED_PROXIES", "trusted-proxies", "proxy.example"},
	} {
		b := Controller
		if tc.env == "HOMEROOM_TRUSTED_PROXIES" {
			b = Apiserver
		}
		t.Run(tc.env+"="+tc.value, func(t *testing.T) {
			var c Config
			err := c.Load(b, extra, nil, MapLookup(map[string]string{tc.env: tc.value}), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.env) || !strings.Contains(err.Error(), `"`+tc.value+`"`) {
				t.Errorf("from the environment: %v; want an error naming %s and %q", err, tc.env, tc.value)
			}
		})
		t.Run("-"+tc.flag+"="+tc.value, func(t *testing.T) {
			var c Config
			err := c.Load(b, extra, []string{"-" + tc.flag + "=" + tc.value}, MapLookup(nil), io.Discard)
			if err == nil || !strings.Contains(err.Error(), "-"+tc.flag) || !strings.Contains(err.Error(), `"`+tc.value+`"`) {
				t.Errorf("from a flag: %v; want an error naming -%s and %q", err, tc.flag, tc.value)
			}
		})
	}

	var c Config
	if err := c.Load(Controller, nil, []string{"-subnet-bits=24", "extra"}, MapLookup(nil), io.Discard); err == nil {
		t.Error("an argument that is no flag was accepted")
	}
	if err := c.Load(Apiserver, nil, []string{"-subnet-bits=24"}, MapLookup(nil), io.Discard); err == nil {
		t.Error("the apiserver took a controller flag")
	}
	c = Config{SubnetPool: "10.200.0.0/15", SubnetBits: 14}
	if _, err := c.CheckSubnets(); err == nil || !strings.Contains(err.Error(), "HOMEROOM_SUBNET_BITS") {
		t.Errorf("subnets larger than the pool: %v", err)
	}
}

// TestHelpNamesVariables: -h lists every flag with its variable and its
// default, not what the environment set.
func TestHelpNamesVariables(t *testing.T) {
	for _, b := range []Binary{Apiserver, Controller} {
		var c Config
		var out strings.Builder
		if err := c.Load(b, nil, []string{"-h"}, MapLookup(map[string]string{"HOMEROOM_DOMAIN": "school.example"}), &out); !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("-h: %v", err)
		}
		if !strings.Contains(out.String(), "(HOMEROOM_DOMAIN; default lab.localhost)") {
			t.Errorf("-h does not show -domain's default:\n%s", out.String())
		}
		for _, s := range c.Settings(b) {
			if !strings.Contains(out.String(), "-"+s.Flag) || !strings.Contains(out.String(), "("+s.Env) {
				t.Errorf("-h does not show -%s with %s:\n%s", s.Flag, s.Env, out.String())
			}
		}
	}
}

// TestReadmeTable: README.md's table of settings reads as one, its binary
// column names a binary, and a variable names one setting of each binary.
// cmd/apiserver and cmd/controller check it against all they register.
func TestReadmeTable(t *testing.T) {
	rows, err := ReadmeSettings("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range rows {
		if r.Binary != "apiserver" && r.Binary != "controller" && r.Binary != "both" {
			t.Errorf("%s: binary %q", r.Env, r.Binary)
		}
		if !strings.HasPrefix(r.Env, "HOMEROOM_") || r.Flag == "" {
			t.Errorf("a row without a variable or a flag: %+v", r)
		}
		for _, bin := range []string{"apiserver", "controller"} {
			if r.Binary == bin || r.Binary == "both" {
				if seen[bin+" "+r.Env] {
					t.Errorf("%s: two rows for the %s", r.Env, bin)
				}
				seen[bin+" "+r.Env] = true
			}
		}
	}
	for _, b := range []Binary{Apiserver, Controller} {
		var c Config
		name := map[Binary]string{Apiserver: "apiserver", Controller: "controller"}[b]
		problems := CheckDocumented(rows, name, c.Settings(b))
		for _, p := range problems {
			// The binaries' own settings are checked in cmd/.
			if !strings.Contains(p, "which has no such flag") {
				t.Error(p)
			}
		}
	}
}
