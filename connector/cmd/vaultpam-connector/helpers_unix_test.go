package main

import "golang.org/x/sys/unix"

func unixDup(fd int) (int, error) { return unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 10) }
