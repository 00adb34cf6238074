//go:build !unix

package redistest

import "errors"

var errNoPause = errors.New("redistest: pausing a process needs SIGSTOP (unix)")

// Pause is unix only (SIGSTOP).
func (p *Proc) Pause() error { return errNoPause }

// Resume is unix only (SIGCONT).
func (p *Proc) Resume() error { return errNoPause }
