//go:build !failpoints

package failpoint

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// Without failpoints, even the armed point does nothing: the process runs
// on, and says at start that the variable is ignored.
func TestHitIsInertWithoutFailpoints(t *testing.T) {
	if Enabled {
		t.Fatal("Enabled is true in a build without failpoints")
	}
	if inChild(t) {
		for range 5 {
			Hit("mid-upload")
		}
		os.Stdout.WriteString("survived\n")
		os.Exit(0)
	}
	out, ws := runChild(t, "mid-upload")
	if ws.Signaled() || ws.ExitStatus() != 0 || !strings.Contains(out, "survived") {
		t.Fatalf("child ended with %v, want exit 0 past the armed point:\n%s", ws, out)
	}
	if want := fmt.Sprintf(ignoredMessage, Env, "mid-upload"); !strings.Contains(out, want) {
		t.Errorf("no warning %q:\n%s", want, out)
	}
	if strings.Contains(out, "killing the process") {
		t.Errorf("a build without failpoints announced a kill:\n%s", out)
	}
}
