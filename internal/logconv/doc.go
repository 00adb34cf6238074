// Package logconv holds no code: its test keeps every log call in internal/
// and cmd/ to the logging convention of docs/monitoring.md ("Logs"), so that
// a drift is caught by go test rather than by an operator's log query.
package logconv
