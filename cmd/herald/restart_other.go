//go:build !unix

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

// restarter, where restarts in place (SIGHUP, tableflip's fd handoff) do
// not exist, only keeps the pid file: written once the node serves,
// removed at exit.
type restarter struct {
	log     *slog.Logger
	pidFile string
}

func newRestarter(cfg *config.Config, log *slog.Logger) (*restarter, error) {
	return &restarter{log: log.With("component", "restart"), pidFile: cfg.PIDFile}, nil
}

// options: the node opens its own listeners.
func (r *restarter) options() []server.Option { return nil }

func (r *restarter) ready() {
	if r.pidFile == "" {
		return
	}
	if err := os.WriteFile(r.pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		r.log.Error("could not write the pid file", "file", r.pidFile, "err", fmt.Errorf("pid file: %w", err))
	}
}

func (r *restarter) close() {
	if r.pidFile == "" {
		return
	}
	b, err := os.ReadFile(r.pidFile)
	if err == nil && string(bytes.TrimSpace(b)) == strconv.Itoa(os.Getpid()) {
		_ = os.Remove(r.pidFile)
	}
}
