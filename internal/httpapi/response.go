package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// apiError is a request failure answered with status and msg.
type apiError struct {
	status int
	msg    string
	limit  string // the limit that refused the request, if one did
}

func (e *apiError) Error() string { return e.msg }

func errorf(status int, format string, args ...any) *apiError {
	return &apiError{status: status, msg: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) *apiError {
	return errorf(http.StatusBadRequest, format, args...)
}

// writeError answers {"error":msg,"code":status}.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, struct {
		Error string `json:"error"`
		Code  int    `json:"code"`
	}{msg, status})
}

// writeJSON answers v encoded as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own response types reach here, and they always encode.
		status = http.StatusInternalServerError
		b = []byte(`{"error":"Internal server error","code":500}`)
	}
	writeBytes(w, status, b)
}

// Constant bodies, shared by every response (a ResponseWriter must not
// retain or modify what it is given).
var (
	bodyEmpty    = []byte(`{}`)
	bodyUp       = []byte(`{"status":"ok"}`)
	bodyReady    = []byte(`{"status":"ready"}`)
	bodyNotFound = []byte(`{"error":"Not found","code":404}`)
)

// writeBytes answers an encoded JSON body.
func writeBytes(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
