package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// Chromium returns the path of a Chromium for the browser tests:
// $HOMEROOM_CHROMIUM, or Debian's chromium (`make chromium` installs it).
func Chromium(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("browser test: needs Chromium")
	}
	if p := os.Getenv("HOMEROOM_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	Unavailable(t, "chromium (run make chromium)")
	return ""
}
