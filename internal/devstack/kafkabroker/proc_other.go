//go:build !linux

package kafkabroker

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return nil }
