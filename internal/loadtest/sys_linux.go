package loadtest

import "syscall"

// ipBindAddressNoPort is IP_BIND_ADDRESS_NO_PORT (linux/in.h): with it, a
// socket bound to a source address gets its port at connect time, chosen
// for the full 4-tuple, so ports in TIME_WAIT towards another target and
// tcp_tw_reuse still apply.
const ipBindAddressNoPort = 24

func bindAddressNoPort(network, address string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
	}); err != nil {
		return err
	}
	// An IPv6 socket or an old kernel refuses the option; binding still
	// works without it, only less economically.
	_ = serr
	return nil
}

// raiseFileLimit raises the soft RLIMIT_NOFILE to the hard limit and
// returns the soft limit in force afterwards.
func raiseFileLimit() (uint64, error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, err
	}
	if r.Cur < r.Max {
		r.Cur = r.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
			return r.Cur, err
		}
		if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
			return 0, err
		}
	}
	return r.Cur, nil
}

// selfCPUSeconds returns the user+system CPU time of this process.
func selfCPUSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// delayAck asks the kernel to delay the ACK of what was just read (TCP
// quick-ack off). Without it, a connection that only receives small
// segments ACKs each one from inside read(2): on loopback that ACK runs
// the whole TCP path into the server's socket within the tool's read, about
// a third of the tool's CPU per delivery, right in the middle of the burst
// being measured. A remote client's ACK costs the server's box nothing of
// the kind. The kernel leaves this mode again when a delayed ACK goes out,
// so it is set after every read.
func delayAck(fd uintptr) {
	_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 0)
}
