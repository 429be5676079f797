package versitygw

import (
	"os"
	"path/filepath"
	"syscall"
)

// DirHasXattrs reports whether files in dir can carry user.* extended
// attributes, where the posix backend keeps object metadata; where they
// cannot, the server needs a sidecar directory.
func DirHasXattrs(dir string) bool {
	probe := filepath.Join(dir, ".xattr-probe")
	if err := os.WriteFile(probe, nil, 0o600); err != nil {
		return false
	}
	defer os.Remove(probe)
	return syscall.Setxattr(probe, "user.homeroom.probe", []byte("1"), 0) == nil
}

// procAttr makes the kernel kill the server when the process that started
// it dies, however it dies.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
