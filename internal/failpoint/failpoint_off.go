//go:build !failpoints

package failpoint

import (
	"fmt"
	"os"
)

// Enabled reports whether this build has failpoints.
const Enabled = false

func init() {
	if v := os.Getenv(Env); v != "" {
		fmt.Fprintf(os.Stderr, ignoredMessage, Env, v)
	}
}

// Hit does nothing: this build has no failpoints. Being empty, it is
// inlined away and its callers keep no trace of it.
func Hit(string) {}
