//go:build failpoints

package failpoint

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
)

// Enabled reports whether this build has failpoints.
const Enabled = true

var (
	armed string
	after int64 = 1
	hits  atomic.Int64
)

func init() {
	armed, after = parse(os.Getenv(Env))
}

// parse splits "name" or "name:N" into the point and the hit that kills; a
// missing or invalid N is 1.
func parse(v string) (name string, n int64) {
	name, count, found := strings.Cut(v, ":")
	n = 1
	if found {
		if c, err := strconv.ParseInt(count, 10, 64); err == nil && c > 0 {
			n = c
		}
	}
	return name, n
}

// Hit kills the process if name is the armed point and this is its Nth hit.
func Hit(name string) {
	if armed == "" || name != armed {
		return
	}
	if hits.Add(1) != after {
		return
	}
	fmt.Fprintf(os.Stderr, killMessage, name)
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal is on its way; do nothing more
}
