// Package config reads Homeroom's configuration: every setting of the two
// binaries is a flag and an environment variable (the variables are the
// contract in API.md), read one way by Parse, which refuses a bad value
// from either (settings.go).
package config

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
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
	// TraefikURL is Traefik's entrypoint as the controller reaches it, to
	// see that students' hosts are routed (controller only; "" does not).
	TraefikURL string
	Domain     string
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
	// Runtime is where classes run (controller only): "docker", the daemon
	// of DOCKER_HOST; "swarm", the swarm whose manager that daemon is. The
	// Swarm* settings are the swarm runtime's.
	Runtime string
	// SwarmJobImage runs cmd/nodejob on the nodes; every node must have it.
	SwarmJobImage string
	// SwarmNodeSocket is each node's Docker socket, on that node.
	SwarmNodeSocket string
	// SwarmStoreEndpoint is the object store as the nodes reach it.
	SwarmStoreEndpoint string
	// SwarmNodeLostAfter is how long a node is down before its sandboxes
	// are made again elsewhere with their last autosave.
	SwarmNodeLostAfter time.Duration
	// SwarmNetworkPool is how many students' own networks are kept made
	// ahead of an Up.
	SwarmNetworkPool int
	// The embedded artifact server's address: run by the apiserver when no
	// external one is configured, and found there by the controller. The
	// embedded store has no address: see EmbeddedStoreSocket.
	EmbeddedS3 string

	// embeddedMongoAddr is HOMEROOM_EMBEDDED_MONGO_ADDR, which is no longer
	// read; kept only to refuse it (see EmbeddedStoreSocket).
	embeddedMongoAddr string
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

// maxSocketPath is the longest path a Unix socket may have: the kernel's
// sockaddr_un holds 108 bytes, the last a NUL.
const maxSocketPath = 107

// EmbeddedStoreSocket is the Unix socket the apiserver serves its embedded
// store on and the controller connects to: <data dir>/store.sock, as an
// absolute path, so that both find it whatever their working directory.
// A path too long for a socket or with a colon, or a set
// HOMEROOM_EMBEDDED_MONGO_ADDR (the store listened on TCP before), is an
// error to stop at start with.
func (c Config) EmbeddedStoreSocket() (string, error) {
	dir, err := filepath.Abs(c.DataDir)
	if err != nil {
		return "", fmt.Errorf("data dir %q (HOMEROOM_DATA_DIR): %w", c.DataDir, err)
	}
	sock := filepath.Join(dir, "store.sock")
	if c.embeddedMongoAddr != "" {
		return "", fmt.Errorf("HOMEROOM_EMBEDDED_MONGO_ADDR=%s is no longer read: the embedded store now listens only on the Unix socket %s (<HOMEROOM_DATA_DIR>/store.sock), which no other user can connect to; unset it, and use HOMEROOM_MONGO_URI for a MongoDB of your own", c.embeddedMongoAddr, sock)
	}
	if len(sock) > maxSocketPath {
		return "", fmt.Errorf("the embedded store's socket %s is %d bytes, longer than the %d a Unix socket's path may have: choose a shorter HOMEROOM_DATA_DIR", sock, len(sock), maxSocketPath)
	}
	// The driver splits a host at its colon before it sees a socket.
	if strings.Contains(sock, ":") {
		return "", fmt.Errorf("the embedded store's socket %s: the MongoDB driver cannot connect to a path with a colon; choose another HOMEROOM_DATA_DIR", sock)
	}
	return sock, nil
}

// StoreURI is the MongoDB URI to use: HOMEROOM_MONGO_URI, or the embedded
// store's socket. The driver takes a host ending in "sock" for a socket's
// path, decoded with url.QueryUnescape: url.QueryEscape is its inverse (with
// url.PathEscape a "+" in the path would come back as a space).
func (c Config) StoreURI() (string, error) {
	if c.MongoURI != "" {
		return c.MongoURI, nil
	}
	sock, err := c.EmbeddedStoreSocket()
	if err != nil {
		return "", err
	}
	return "mongodb://" + url.QueryEscape(sock), nil
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
