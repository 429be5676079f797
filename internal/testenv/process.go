package testenv

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BuildBinaries builds Homeroom's commands (e.g. "apiserver", "controller")
// into a temporary directory and returns it. They are built as for
// production: without failpoints.
func BuildBinaries(t testing.TB, names ...string) string {
	t.Helper()
	return BuildBinariesWithTags(t, nil, names...)
}

// BuildBinariesWithTags is BuildBinaries with build tags, e.g. "failpoints"
// for a controller that HOMEROOM_FAILPOINT can kill (internal/failpoint).
func BuildBinariesWithTags(t testing.TB, tags []string, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	args := []string{"build", "-o", dir + "/"}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	for _, n := range names {
		args = append(args, "github.com/homeroom/homeroom/cmd/"+n)
	}
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %v with tags %v: %v\n%s", names, tags, err, out)
	}
	return dir
}

// Process is a Homeroom binary run by a test.
type Process struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	out  syncBuffer
	done chan struct{}
	err  error
}

// syncBuffer collects a process's output, written by the copiers of its
// pipes while a test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// StartProcess runs bin with the test's environment plus env. It is killed
// when the test ends, and its output logged if the test failed.
func StartProcess(t testing.TB, bin string, env []string, args ...string) *Process {
	t.Helper()
	p := &Process{t: t, name: filepath.Base(bin), cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s output:\n%s", p.name, p.out.String())
		}
	})
	return p
}

// Pid is the process's id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Output is what the process printed so far.
func (p *Process) Output() string { return p.out.String() }

// Wait waits up to timeout for the process to exit by itself and returns
// its state; it fails the test on timeout.
func (p *Process) Wait(timeout time.Duration) *os.ProcessState {
	p.t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState
	case <-time.After(timeout):
		p.t.Fatalf("%s still running after %s", p.name, timeout)
		return nil
	}
}

// Stop sends SIGTERM, as Ctrl-C or an orchestrator would, and wants a clean
// exit within 30 seconds.
func (p *Process) Stop() {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	st := p.Wait(30 * time.Second)
	if st != nil && !st.Success() {
		p.t.Errorf("%s exited with %v after SIGTERM", p.name, p.err)
	}
}

// KilledBy reports whether the process ended by signal sig.
func KilledBy(st *os.ProcessState, sig syscall.Signal) bool {
	ws, ok := st.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == sig
}

// Kill ends the process with SIGKILL, as a crash or the OOM killer would.
func (p *Process) Kill() {
	p.t.Helper()
	p.cmd.Process.Kill()
	p.Wait(30 * time.Second)
}

// Signal sends sig, e.g. SIGSTOP and SIGCONT to pause and resume it.
func (p *Process) Signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %s: %v", p.name, err)
	}
}
