//go:build !unix

package main

import (
	"log/slog"

	"github.com/herald-ws/herald/internal/config"
)

// newRestarter: no restarts in place here, only the pid file.
func newRestarter(cfg *config.Config, log *slog.Logger) (restarts, error) {
	return newPIDFile(cfg, log), nil
}
