package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// shutdownSignals returns a context cancelled by the first SIGTERM or
// SIGINT (the drain starts); a second one calls hurry (the drain is cut
// short, queued webhooks are still handed over, the process exits). stop
// releases the signals and waits for the watcher.
func shutdownSignals(log *slog.Logger, hurry func()) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		n := 0
		for {
			select {
			case sig := <-sigs:
				n++
				if n == 1 {
					log.Info("shutting down: draining (send the signal again to stop at once)", "signal", sig.String())
					cancel()
					continue
				}
				log.Warn("second signal: stopping the drain", "signal", sig.String())
				hurry()
			case <-quit:
				return
			}
		}
	}()
	return ctx, func() {
		signal.Stop(sigs)
		close(quit)
		<-done
		cancel()
	}
}
