// Package testenv starts and finds the real services integration tests run
// against. Outside CI a missing service skips the test; in CI (CI=true) it
// fails it, so that a green run always means the integration tests ran.
package testenv

import (
	"net"
	"os"
	"testing"
)

// InCI reports whether the tests run in CI, where nothing may be skipped.
func InCI() bool { return os.Getenv("CI") == "true" }

// Unavailable skips the test, or fails it in CI, because a service is missing.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("required service unavailable in CI: "+format, args...)
	}
	t.Skipf("service unavailable: "+format, args...)
}

// FreeAddr returns a loopback address with a port nobody listens on now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func splitHostPort(addr string) (string, string, error) { return net.SplitHostPort(addr) }
