//go:build !linux

package testenv

import "syscall"

// s3DirHasXattrs is not probed off Linux: use the sidecar directory.
func s3DirHasXattrs(string) bool { return false }

func s3ProcAttr() *syscall.SysProcAttr { return nil }
