package testenv

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// OtherUID is the user DialUnixAsOther connects as: nobody, who owns none of
// what a test makes.
const OtherUID = 65534

// dialEnv names the socket a test binary started by DialUnixAsOther
// connects to instead of running tests.
const dialEnv = "HOMEROOM_TEST_DIAL_UNIX"

// Exit codes of the dialing child.
const (
	dialConnected = 0
	dialDenied    = 3
	dialFailed    = 4
)

// DialHelper makes a test binary serve as DialUnixAsOther's child: a
// package that uses DialUnixAsOther calls it first thing in TestMain. In a
// binary started normally it returns at once.
func DialHelper() {
	path := os.Getenv(dialEnv)
	if path == "" {
		return
	}
	c, err := net.Dial("unix", path)
	switch {
	case err == nil:
		c.Close()
		os.Exit(dialConnected)
	case errors.Is(err, syscall.EACCES):
		fmt.Fprintln(os.Stderr, err)
		os.Exit(dialDenied)
	default:
		fmt.Fprintln(os.Stderr, err)
		os.Exit(dialFailed)
	}
}

// DialUnixAsOther connects to the Unix socket at path from a process that
// runs as another local user (OtherUID), as someone else on the machine
// would, and reports what happened: nil if it connected, an error that
// matches os.ErrPermission if the kernel refused it for want of permission
// (on the socket or a directory above it), any other error otherwise.
//
// The child is a copy of the running test binary (whose own directory only
// root may enter) whose TestMain calls DialHelper. Only root can start a
// process as another user: elsewhere the test is skipped, and in CI failed.
func DialUnixAsOther(t testing.TB, path string) error {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "running a process as another user needs root")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "homeroom-otheruser-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "dial")
	if err := copyFile(self, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env = []string{dialEnv + "=" + path}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: OtherUID, Gid: OtherUID}}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &exit) && exit.ExitCode() == dialDenied:
		return fmt.Errorf("uid %d: %s: %w", OtherUID, strings.TrimSpace(string(out)), os.ErrPermission)
	default:
		return fmt.Errorf("uid %d: %v: %s", OtherUID, err, strings.TrimSpace(string(out)))
	}
}

func copyFile(from, to string, mode os.FileMode) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, err = io.Copy(dst, src)
	return errors.Join(err, dst.Close())
}
