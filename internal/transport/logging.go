package transport

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/herald-ws/herald/third_party/nbio/logging"
)

// nbio logs through a process-wide logger; it is pointed at the slog
// logger of the most recently created Server. nbio's Info messages
// (listening, stopping) are logged at Debug, its Debug messages dropped.
var nbioLog atomic.Pointer[slog.Logger]

type nbioLogger struct{}

func (nbioLogger) Debug(string, ...any) {}

func (nbioLogger) Info(format string, v ...any) { logNbio(slog.LevelDebug, format, v) }

func (nbioLogger) Warn(format string, v ...any) { logNbio(slog.LevelWarn, format, v) }

func (nbioLogger) Error(format string, v ...any) { logNbio(slog.LevelError, format, v) }

func logNbio(level slog.Level, format string, v []any) {
	l := nbioLog.Load()
	if l == nil || !l.Enabled(context.Background(), level) {
		return
	}
	l.Log(context.Background(), level, "nbio: "+fmt.Sprintf(format, v...))
}

func setNbioLogger(l *slog.Logger) {
	nbioLog.Store(l)
	logging.SetLogger(nbioLogger{})
}
