package devstack

import "golang.org/x/sys/unix"

func setXattr(path, name string, value []byte) error {
	return unix.Setxattr(path, name, value, 0)
}
