//go:build !linux

package services

import "syscall"

// childAttr puts a server in its own process group (a Ctrl-C at the terminal
// reaches the parent, which stops the server in order).
func childAttr(cred *syscall.Credential, _ syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Credential: cred}
}
