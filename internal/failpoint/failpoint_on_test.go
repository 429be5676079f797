//go:build failpoints

package failpoint

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		name string
		n    int64
	}{
		{"", "", 1},
		{"file-uploaded", "file-uploaded", 1},
		{"file-uploaded:4", "file-uploaded", 4},
		{"file-uploaded:", "file-uploaded", 1},
		{"file-uploaded:0", "file-uploaded", 1},
		{"file-uploaded:-2", "file-uploaded", 1},
		{"file-uploaded:x", "file-uploaded", 1},
	} {
		if name, n := parse(tc.in); name != tc.name || n != tc.n {
			t.Errorf("parse(%q) = %q, %d; want %q, %d", tc.in, name, n, tc.name, tc.n)
		}
	}
}

// With failpoints, the armed point kills the process with SIGKILL on its
// Nth hit and not before.
func TestHitKillsOnTheNthHit(t *testing.T) {
	if !Enabled {
		t.Fatal("Enabled is false in a build with failpoints")
	}
	if inChild(t) {
		Hit("mid-upload")
		os.Stdout.WriteString("after hit 1\n")
		Hit("mid-upload")
		os.Stdout.WriteString("survived hit 2\n")
		os.Exit(0)
	}
	out, ws := runChild(t, "mid-upload:2")
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want SIGKILL:\n%s", ws, out)
	}
	if !strings.Contains(out, "after hit 1") || strings.Contains(out, "survived") ||
		!strings.Contains(out, fmt.Sprintf(killMessage, "mid-upload")) {
		t.Fatalf("want a kill on the second hit, announced:\n%s", out)
	}
}
