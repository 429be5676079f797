// Package config reads Homeroom's configuration from the environment, the
// contract in API.md; the binaries' flags mirror it.
package config

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Config is shared by the apiserver and the controller.
type Config struct {
	Listen string
	// ControllerListen serves the controller's metrics and health checks.
	ControllerListen string
	DataDir          string
	MongoURI         string
	Database         string
	S3Endpoint       string
	S3Access         string
	S3Secret         string
	S3Bucket         string
	S3Secure         bool
	AdminToken       string
	PolicyPath       string
	Traefik          string
	Domain           string
	// SignInCheckURL is where Traefik reaches the apiserver for the
	// students' sign-in check (controller only: it goes into Traefik's
	// labels on every sandbox).
	SignInCheckURL string
	LogLevel       string
	LogFormat      string
	// TrustedProxies (apiserver only) is HOMEROOM_TRUSTED_PROXIES as given:
	// the proxies whose X-Forwarded-For names the client, as a
	// comma-separated list of CIDRs and IPs. Empty: none, the client is
	// the connection's peer. Read it with TrustedProxyNets.
	TrustedProxies string
	// SubnetPool and SubnetBits size class networks (controller only).
	SubnetPool string
	SubnetBits int
	// The embedded store and artifact server: run by the apiserver when no
	// external ones are configured, and found there by the controller.
	EmbeddedMongo string
	EmbeddedS3    string
}

// FromEnv reads the environment, with API.md's defaults.
func FromEnv() Config {
	return Config{
		Listen:           env("HOMEROOM_LISTEN", "127.0.0.1:8080"),
		ControllerListen: env("HOMEROOM_CONTROLLER_LISTEN", "127.0.0.1:8081"),
		DataDir:          env("HOMEROOM_DATA_DIR", "./data"),
		MongoURI:         os.Getenv("HOMEROOM_MONGO_URI"),
		Database:         env("HOMEROOM_MONGO_DATABASE", "homeroom"),
		S3Endpoint:       os.Getenv("HOMEROOM_S3_ENDPOINT"),
		S3Access:         os.Getenv("HOMEROOM_S3_ACCESS_KEY"),
		S3Secret:         os.Getenv("HOMEROOM_S3_SECRET_KEY"),
		S3Bucket:         env("HOMEROOM_S3_BUCKET", "homeroom"),
		S3Secure:         os.Getenv("HOMEROOM_S3_SECURE") == "true",
		AdminToken:       os.Getenv("HOMEROOM_ADMIN_TOKEN"),
		PolicyPath:       os.Getenv("HOMEROOM_POLICY"),
		Traefik:          env("HOMEROOM_TRAEFIK_CONTAINER", "homeroom-traefik"),
		Domain:           env("HOMEROOM_DOMAIN", "lab.localhost"),
		SignInCheckURL:   os.Getenv("HOMEROOM_SIGNIN_CHECK_URL"),
		TrustedProxies:   os.Getenv("HOMEROOM_TRUSTED_PROXIES"),
		LogLevel:         env("HOMEROOM_LOG_LEVEL", "info"),
		LogFormat:        os.Getenv("HOMEROOM_LOG_FORMAT"),
		SubnetPool:       env("HOMEROOM_SUBNET_POOL", "10.200.0.0/15"),
		SubnetBits:       envInt("HOMEROOM_SUBNET_BITS", 23),
		EmbeddedMongo:    env("HOMEROOM_EMBEDDED_MONGO_ADDR", "127.0.0.1:27018"),
		EmbeddedS3:       env("HOMEROOM_EMBEDDED_S3_ADDR", "127.0.0.1:9100"),
	}
}

// CommonFlags lets both binaries' flags override what they share.
func (c *Config) CommonFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.PolicyPath, "policy", c.PolicyPath, "policy file (HOMEROOM_POLICY; empty: built-in)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error (HOMEROOM_LOG_LEVEL)")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "json (default) or console (HOMEROOM_LOG_FORMAT)")
}

func envInt(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil {
		return v
	}
	return def
}

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// ForwardAuthAddress is the address Traefik calls to check a request to a
// student's host: HOMEROOM_SIGNIN_CHECK_URL (default: the apiserver's listen
// address, which Traefik on the host's network reaches) followed by the
// path only Traefik knows.
func (c Config) ForwardAuthAddress(secret string) string {
	base := c.SignInCheckURL
	if base == "" {
		host, port, err := net.SplitHostPort(c.Listen)
		if err != nil || host == "" || host == "0.0.0.0" || host == "::" {
			host = "127.0.0.1"
		}
		base = "http://" + net.JoinHostPort(host, port)
	}
	return strings.TrimSuffix(base, "/") + SignInCheckPath + secret
}

// TrustedProxyNets parses TrustedProxies; a value that does not parse is an
// error naming HOMEROOM_TRUSTED_PROXIES, for the apiserver to refuse to
// start with.
func (c Config) TrustedProxyNets() ([]*net.IPNet, error) {
	nets, err := ParseTrustedProxies(c.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("trusted proxies %q (HOMEROOM_TRUSTED_PROXIES, -trusted-proxies): %w", c.TrustedProxies, err)
	}
	return nets, nil
}

// ParseTrustedProxies parses a comma-separated list of CIDRs (10.0.0.0/8,
// fd00::/8) and single IPs (127.0.0.1, ::1, taken as /32 and /128); spaces
// around entries are ignored. An empty list is nil: no proxy is trusted.
// Host names, empty entries, prefix lengths out of range (10.0.0.0/33) and
// anything else that is not an address are refused.
func ParseTrustedProxies(s string) ([]*net.IPNet, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var nets []*net.IPNet
	for i, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			return nil, fmt.Errorf("entry %d is empty; give CIDRs or IPs separated by commas", i+1)
		}
		if strings.Contains(entry, "/") {
			_, n, err := net.ParseCIDR(entry)
			if err != nil {
				return nil, fmt.Errorf("%q is not a CIDR (e.g. 10.0.0.0/8) or an IP", entry)
			}
			nets = append(nets, n)
			continue
		}
		ip := net.ParseIP(entry)
		if ip == nil {
			return nil, fmt.Errorf("%q is not an IP or a CIDR (host names are not accepted)", entry)
		}
		bits := 8 * net.IPv6len
		if v4 := ip.To4(); v4 != nil {
			ip, bits = v4, 8*net.IPv4len
		}
		nets = append(nets, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
	}
	return nets, nil
}

// SignInCheckPath is where the apiserver answers Traefik's sign-in checks,
// followed by the installation's secret.
const SignInCheckPath = "/signin/check/"

// StoreURI is the MongoDB URI to use: the configured one or the embedded one.
func (c Config) StoreURI() string {
	if c.MongoURI != "" {
		return c.MongoURI
	}
	return "mongodb://" + c.EmbeddedMongo + "/"
}

// S3 returns the artifact endpoint and keys: configured or embedded. The
// embedded store's keys are generated by the apiserver into
// <data dir>/artifacts.credentials: for it, access and secret are empty
// (artifacts.LoadEmbeddedCredentials reads them).
func (c Config) S3() (endpoint, access, secret string, secure bool) {
	if c.S3Endpoint != "" {
		return c.S3Endpoint, c.S3Access, c.S3Secret, c.S3Secure
	}
	return c.EmbeddedS3, "", "", false
}

// LoadOrCreateToken returns the admin token: the configured one, or one
// generated on first start and kept in <data dir>/admin.token.
func (c Config) LoadOrCreateToken() (string, error) {
	if c.AdminToken != "" {
		return c.AdminToken, nil
	}
	path := filepath.Join(c.DataDir, "admin.token")
	b, err := os.ReadFile(path)
	if err == nil {
		if tok := strings.TrimSpace(string(b)); tok != "" {
			return tok, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read admin token: %w", err)
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	tok := hex.EncodeToString(raw)
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write admin token: %w", err)
	}
	return tok, nil
}
