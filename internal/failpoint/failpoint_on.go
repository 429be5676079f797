// Package failpoint lets crash tests stop the controller at a named point of
// its work, the way kill -9 or the OOM killer would. It is inert unless
// HOMEROOM_FAILPOINT names a point ("name" or "name:N"); then the process
// SIGKILLs itself the Nth time (default: the first) that point is reached.
// Proving that a Down survives a crash anywhere needs crashes at exact
// places, which no timing can give reliably.
package failpoint

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
)

// Env names the variable that arms a failpoint.
const Env = "HOMEROOM_FAILPOINT"

var (
	armed string
	after int64 = 1
	hits  atomic.Int64
)

func init() {
	v := os.Getenv(Env)
	if v == "" {
		return
	}
	name, n, found := strings.Cut(v, ":")
	armed = name
	if found {
		if c, err := strconv.ParseInt(n, 10, 64); err == nil && c > 0 {
			after = c
		}
	}
}

// Hit kills the process if name is the armed point and this is its Nth hit.
func Hit(name string) {
	if armed == "" || name != armed {
		return
	}
	if hits.Add(1) != after {
		return
	}
	fmt.Fprintf(os.Stderr, "failpoint %s reached: killing the process\n", name)
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal is on its way; do nothing more
}
