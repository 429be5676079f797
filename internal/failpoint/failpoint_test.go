package failpoint

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// childEnv marks a copy of the test binary run by runChild: the test of
// that name then plays its child's part instead.
const childEnv = "HOMEROOM_FAILPOINT_TEST_CHILD"

// inChild reports whether this process is the child of test t.
func inChild(t *testing.T) bool { return os.Getenv(childEnv) == t.Name() }

// runChild runs test t again in a new process whose HOMEROOM_FAILPOINT is
// armed, and returns its output and how it ended.
func runChild(t *testing.T, armed string) (string, syscall.WaitStatus) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"="+t.Name(), Env+"="+armed)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		<-done
		t.Fatalf("child still running after a minute:\n%s", out.String())
	}
	return out.String(), cmd.ProcessState.Sys().(syscall.WaitStatus)
}

// Points other than the armed one never stop the process, with or without
// failpoints.
func TestOtherPointsPassThrough(t *testing.T) {
	if inChild(t) {
		for range 5 {
			Hit("not-armed")
		}
		os.Stdout.WriteString("passed through\n")
		os.Exit(0)
	}
	out, ws := runChild(t, "armed")
	if ws.Signaled() || ws.ExitStatus() != 0 || !strings.Contains(out, "passed through") {
		t.Fatalf("child ended with %v, want exit 0 past every point:\n%s", ws, out)
	}
}
