package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"strconv"

	"github.com/herald-ws/herald/internal/config"
	"github.com/herald-ws/herald/internal/server"
)

// restarts is what serve needs of restarts in place: the options that let
// the node's sockets outlive it, a call once it serves, and one at exit.
type restarts interface {
	options() []server.Option
	ready()
	close()
}

// pidFile is restarts without restarts in place (where SIGHUP and
// tableflip's fd handoff do not exist, and in tests): it only keeps the pid
// file, written once the node serves and removed at exit.
type pidFile struct {
	log     *slog.Logger
	pidFile string
}

func newPIDFile(cfg *config.Config, log *slog.Logger) *pidFile {
	return &pidFile{log: log.With("component", "restart"), pidFile: cfg.PIDFile}
}

// options: the node opens its own listeners.
func (r *pidFile) options() []server.Option { return nil }

func (r *pidFile) ready() {
	if r.pidFile == "" {
		return
	}
	if err := os.WriteFile(r.pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		r.log.Error("could not write the pid file", "file", r.pidFile, "err", fmt.Errorf("pid file: %w", err))
	}
}

func (r *pidFile) close() {
	if r.pidFile == "" {
		return
	}
	b, err := os.ReadFile(r.pidFile)
	if err == nil && string(bytes.TrimSpace(b)) == strconv.Itoa(os.Getpid()) {
		_ = os.Remove(r.pidFile)
	}
}
