package kafkabroker

import "syscall"

// sysProcAttr kills the broker when the process that started it dies, so a
// crashed or killed test binary does not leave a JVM behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
