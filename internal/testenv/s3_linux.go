package testenv

import (
	"os"
	"path/filepath"
	"syscall"
)

// s3DirHasXattrs reports whether files in dir can carry user.* attributes.
func s3DirHasXattrs(dir string) bool {
	probe := filepath.Join(dir, ".xattr-probe")
	if err := os.WriteFile(probe, nil, 0o600); err != nil {
		return false
	}
	defer os.Remove(probe)
	return syscall.Setxattr(probe, "user.homeroom.probe", []byte("1"), 0) == nil
}

// s3ProcAttr makes the kernel kill a server started by a test if the test
// binary dies without running its cleanups.
func s3ProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
