//go:build unix

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/cloudflare/tableflip"

	"github.com/herald-ws/herald/internal/config"
	"github.com/herald-ws/herald/internal/server"
)

// restarter runs restarts in place (docs/restarts.md). On SIGHUP it starts
// a new process, the binary now at the path this one was started from,
// with the same arguments and environment (so a changed config file or an
// upgraded binary takes effect), which inherits the listening sockets
// through tableflip. Once the new process serves, this one hands over
// (server.WithHandOff): it stops accepting and drains. A new process that
// exits or is not ready within restart_timeout changes nothing.
//
// The pid file always names the process that serves: tableflip writes it
// when a process is ready (atomically, by rename), and the last owner
// removes it at exit.
type restarter struct {
	upg     *tableflip.Upgrader
	log     *slog.Logger
	pidFile string

	handOff    chan struct{} // closed once a new process is ready
	relay      chan net.Conn // to the other process while both run (server.WithRelay)
	parentGone chan struct{} // closed once the previous process (if any) has exited
	hup        chan os.Signal
	ctx        context.Context // done at close
	stop       context.CancelFunc
	wg         sync.WaitGroup
	busy       atomic.Bool // a restart runs, or this process has handed over
	useRelay   bool        // alone: in a cluster Redis carries the events
}

func newRestarter(cfg *config.Config, log *slog.Logger) (*restarter, error) {
	upg, err := tableflip.New(tableflip.Options{PIDFile: cfg.PIDFile, UpgradeTimeout: cfg.RestartTimeout})
	if err != nil {
		return nil, fmt.Errorf("restarts: %w", err)
	}
	r := &restarter{
		upg:        upg,
		log:        log.With("component", "restart", "pid", os.Getpid()),
		pidFile:    cfg.PIDFile,
		handOff:    make(chan struct{}),
		parentGone: make(chan struct{}),
		hup:        make(chan os.Signal, 1),
		relay:      make(chan net.Conn, 1),
		useRelay:   cfg.RedisURL == "",
	}
	r.ctx, r.stop = context.WithCancel(context.Background())
	// After a SIGHUP: the relay to the previous process.
	if f, err := upg.Fds.File(relayFile); err != nil {
		r.log.Warn("no relay to the previous process", "err", err)
	} else if f != nil {
		c, err := net.FileConn(f)
		_ = f.Close()
		if err != nil {
			r.log.Warn("no relay to the previous process", "err", err)
		} else {
			r.offerRelay(c)
		}
	}
	signal.Notify(r.hup, syscall.SIGHUP)
	r.wg.Add(2)
	go r.waitParent()
	go r.loop()
	return r, nil
}

// options are the server options that let the node's sockets outlive it.
func (r *restarter) options() []server.Option {
	return []server.Option{server.WithListen(r.listen), server.WithHandOff(r.handOff), server.WithRelay(r.relay)}
}

// listen hands out the listener inherited from the previous process, or
// opens a new one as the node would (server.ListenTCP: keep-alive set on
// the listening socket, not per connection).
func (r *restarter) listen(network, addr string) (net.Listener, error) {
	return r.upg.Fds.ListenWithCallback(network, addr, server.ListenTCP)
}

// ready is called once the node serves: it writes the pid file and, after
// a SIGHUP, tells the previous process to hand over.
func (r *restarter) ready() {
	if err := r.upg.Ready(); err != nil {
		r.log.Error("could not signal readiness", "err", err)
		return
	}
	if r.upg.HasParent() {
		r.log.Info("took over from the previous process, which now drains")
	}
}

func (r *restarter) waitParent() {
	defer r.wg.Done()
	err := r.upg.WaitForParent(r.ctx)
	switch {
	case err != nil && !errors.Is(err, context.Canceled):
		r.log.Warn("the previous process ended abnormally", "err", err)
	case err == nil && r.upg.HasParent():
		r.log.Info("the previous process has exited")
	}
	close(r.parentGone)
}

func (r *restarter) loop() {
	defer r.wg.Done()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-r.hup:
			r.restart()
		}
	}
}

// restart starts one restart unless another one runs or cannot run yet;
// the wait for the new process runs on a goroutine of its own so that a
// second SIGHUP meanwhile is answered (refused) at once.
func (r *restarter) restart() {
	select {
	case <-r.parentGone:
	default:
		r.log.Warn("SIGHUP ignored: the previous process is still draining; try again when it has exited")
		return
	}
	if !r.busy.CompareAndSwap(false, true) {
		r.log.Warn("SIGHUP ignored: a restart is already in progress, or this process has handed over")
		return
	}
	exe, _ := os.Executable()
	r.log.Info("restarting: starting a new process on the same sockets", "binary", os.Args[0], "resolved", exe)
	var mine net.Conn
	var err error
	if r.useRelay {
		mine, err = r.newRelay()
	}
	if err != nil {
		r.log.Warn("restart without a relay: events published during the drain reach only the clients of the process that got them", "err", err)
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		if err := r.upg.Upgrade(); err != nil {
			if mine != nil {
				_ = mine.Close()
			}
			r.busy.Store(false)
			select {
			case <-r.ctx.Done(): // shutting down: Upgrade was interrupted
			default:
				r.log.Error("restart failed: this process keeps serving", "err", err)
			}
			return
		}
		r.log.Info("the new process is ready: handing over")
		if mine != nil {
			r.offerRelay(mine)
		}
		close(r.handOff)
	}()
}

// offerRelay hands c to the server; a server with no relay running (in a
// cluster) has none, and c is closed.
func (r *restarter) offerRelay(c net.Conn) {
	select {
	case r.relay <- c:
	default:
		_ = c.Close()
	}
}

// relayFile names the relay's socket among the files a new process
// inherits.
const relayFile = "herald-relay"

// newRelay makes the socket pair of the relay (server.WithRelay) between
// this process and the next: one end is handed to the next process, the
// other returned. (tableflip keeps a copy of the next process's end until
// a following restart replaces it: one file after a failed restart, and
// in the new process its end of the relay to the previous one.)
func (r *restarter) newRelay() (net.Conn, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	// Only through tableflip, which dups it for the new process.
	syscall.CloseOnExec(fds[0])
	syscall.CloseOnExec(fds[1])
	mine, theirs := os.NewFile(uintptr(fds[0]), "relay"), os.NewFile(uintptr(fds[1]), relayFile)
	defer mine.Close()
	defer theirs.Close()
	if err := r.upg.Fds.AddFile(relayFile, theirs); err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	c, err := net.FileConn(mine)
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	return c, nil
}

// handedOver reports whether a new process took over.
func (r *restarter) handedOver() bool {
	select {
	case <-r.handOff:
		return true
	default:
		return false
	}
}

// close stops the restarts (a new process still starting is killed) and
// removes the pid file when this process is its last owner.
func (r *restarter) close() {
	signal.Stop(r.hup)
	r.stop()
	r.upg.Stop()
	r.wg.Wait()
	if r.pidFile == "" || r.handedOver() {
		return
	}
	b, err := os.ReadFile(r.pidFile)
	if err != nil {
		return
	}
	if string(bytes.TrimSpace(b)) == strconv.Itoa(os.Getpid()) {
		if err := os.Remove(r.pidFile); err != nil {
			r.log.Warn("could not remove the pid file", "file", r.pidFile, "err", err)
		}
	}
}
