// Package testenv starts and finds the real services integration tests run
// against. Outside CI a missing service skips the test; in CI (CI=true) it
// fails it, so that a green run always means the integration tests ran.
package testenv

import (
	"fmt"
	mrand "math/rand/v2"
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

// FreeAddr returns a loopback address with a port nobody listens on now,
// for a process the test starts to listen on later.
//
// The port is drawn below the kernel's ephemeral range (32768 and up here),
// which is where a port asked for with ":0" comes from and also where every
// outgoing connection's local port comes from: a port from there can be
// taken by some client's connection before the process binds it ("address
// already in use"). Below that range only listeners take ports.
func FreeAddr(t testing.TB) string {
	t.Helper()
	return FreeAddrOn(t, "127.0.0.1")
}

// FreeAddrOn is FreeAddr on another of the machine's addresses.
func FreeAddrOn(t testing.TB, host string) string {
	t.Helper()
	for range 100 {
		port := 20000 + mrand.IntN(12000)
		l, err := net.Listen("tcp", net.JoinHostPort(host, fmt.Sprint(port)))
		if err != nil {
			continue // taken; draw again
		}
		addr := l.Addr().String()
		l.Close()
		return addr
	}
	t.Fatal("free port: 100 draws between 20000 and 32000 were all taken")
	return ""
}

func splitHostPort(addr string) (string, string, error) { return net.SplitHostPort(addr) }
