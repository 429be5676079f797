package failpoint_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/homeroom/homeroom/internal/failpoint"
	"github.com/homeroom/homeroom/internal/testenv"
)

// A controller built as for production has no failpoints: its binary holds
// none of the code that kills, and a set HOMEROOM_FAILPOINT only earns a
// warning at start. The same controller built with -tags failpoints holds
// that code, so the check looks for something that would be there.
func TestProductionControllerIsInert(t *testing.T) {
	prod := filepath.Join(testenv.BuildBinaries(t, "controller"), "controller")
	tagged := filepath.Join(testenv.BuildBinariesWithTags(t, []string{"failpoints"}, "controller"), "controller")
	marker := []byte(failpoint.KillMarker)
	for _, c := range []struct {
		bin  string
		want bool
	}{{prod, false}, {tagged, true}} {
		b, err := os.ReadFile(c.bin)
		if err != nil {
			t.Fatal(err)
		}
		if got := bytes.Contains(b, marker); got != c.want {
			t.Errorf("%s: holds the failpoints' kill code: %v, want %v", c.bin, got, c.want)
		}
	}

	// -h stops after flag parsing, before any service is needed; package
	// initialization has run by then.
	cmd := exec.Command(prod, "-h")
	cmd.Env = append(os.Environ(), failpoint.Env+"=before-complete-run")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("controller -h: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), failpoint.IgnoredMarker) {
		t.Errorf("no warning that %s is ignored:\n%s", failpoint.Env, out)
	}
}
