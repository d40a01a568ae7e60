package services

import "syscall"

// childAttr puts a server in its own process group (a Ctrl-C at the terminal
// reaches the parent, which stops the server in order) and has the kernel send
// it deathSig if the parent dies without stopping it.
func childAttr(cred *syscall.Credential, deathSig syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Credential: cred, Pdeathsig: deathSig}
}
