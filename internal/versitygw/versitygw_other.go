//go:build !linux

package versitygw

import "syscall"

// DirHasXattrs is not probed off Linux: use a sidecar directory.
func DirHasXattrs(string) bool { return false }

func procAttr() *syscall.SysProcAttr { return nil }
