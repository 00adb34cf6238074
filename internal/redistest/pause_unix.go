//go:build unix

package redistest

import "syscall"

// Pause stops the process (SIGSTOP): its sockets stay open and nothing
// answers, as a replica that stopped acknowledging would.
func (p *Proc) Pause() error { return p.cmd.Process.Signal(syscall.SIGSTOP) }

// Resume continues a paused process (SIGCONT).
func (p *Proc) Resume() error { return p.cmd.Process.Signal(syscall.SIGCONT) }
