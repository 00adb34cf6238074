package httpapi

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/hub"
	"github.com/herald-ws/herald/internal/protocol"
)

// call is one authenticated API request: its app, its query (the same
// values the signature covered) and its body.
type call struct {
	app   *apps.App
	query url.Values
	body  []byte
	now   time.Time
}

// signed wraps fn with the checks every /apps/{id}/... request passes
// through, in this order: the app exists (404), the body fits (413), the
// signature is valid (401), the app is enabled (403) and, for reads, the
// read rate limit (429). The signature is checked before the app's state
// so that an unsigned caller learns nothing but whether the id exists.
func (h *handler) signed(kind rateKind, fn func(http.ResponseWriter, *http.Request, *call) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		buf := bufPool.Get().(*bytes.Buffer)
		defer putBuffer(buf)
		c, err := h.authenticate(w, r, buf)
		if err == nil && kind == rateRead {
			err = h.allow(w, c, rateRead, 1)
		}
		if err == nil {
			err = fn(w, r, c)
		}
		if err != nil {
			if c != nil {
				h.countRefusal(c.app.ID, err)
			}
			h.fail(w, r, err)
		}
	}
}

func (h *handler) authenticate(w http.ResponseWriter, r *http.Request, buf *bytes.Buffer) (*call, error) {
	id := r.PathValue("id")
	app, err := h.apps.ByID(r.Context(), id)
	if err != nil || app == nil {
		if err == nil || errors.Is(err, apps.ErrNotFound) {
			return nil, errorf(http.StatusNotFound, "App %s not found", clip(id))
		}
		h.log.Error("app lookup failed", "app_id", clip(id), "err", err)
		return nil, errorf(http.StatusServiceUnavailable, "App %s could not be looked up; try again later", clip(id))
	}
	noteApp(w, app.ID)
	body, err := h.readBody(w, r, buf)
	if err != nil {
		h.countRefusal(app.ID, err)
		return nil, err
	}
	c := &call{app: app, query: r.URL.Query(), body: body, now: h.now()}
	if err := h.verify(r, c); err != nil {
		return nil, err
	}
	if !app.Enabled {
		return nil, errorf(http.StatusForbidden, "App %s is disabled", clip(id))
	}
	return c, nil
}

// readBody reads the whole body into buf within the size cap.
func (h *handler) readBody(w http.ResponseWriter, r *http.Request, buf *bytes.Buffer) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	var rd io.Reader = r.Body
	if h.maxBody > 0 {
		if r.ContentLength > h.maxBody {
			return nil, h.tooLarge()
		}
		rd = http.MaxBytesReader(w, r.Body, h.maxBody)
	}
	if r.ContentLength > 0 && r.ContentLength < 1<<20 {
		buf.Grow(int(r.ContentLength))
	}
	if _, err := buf.ReadFrom(rd); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, h.tooLarge()
		}
		return nil, badRequest("Could not read the request body: %v", err)
	}
	return buf.Bytes(), nil
}

func (h *handler) tooLarge() error {
	return overLimit(hub.LimitRequestBody, errorf(http.StatusRequestEntityTooLarge, "The request body exceeds the allowed maximum (%d bytes)", h.maxBody))
}

// verify checks the signature against the path without the prefix. The
// SDKs sign the path as they build it, before any escaping by their HTTP
// client, so the decoded path is tried first and the escaped form, when it
// differs, second.
func (h *handler) verify(r *http.Request, c *call) error {
	sr := protocol.SignedRequest{Method: r.Method, Path: r.URL.Path, Query: c.query, Body: c.body}
	err := protocol.VerifyRequest(sr, c.app.Key, c.app.Secret, c.now, h.window)
	if err == nil {
		return nil
	}
	if ep := r.URL.EscapedPath(); ep != sr.Path {
		sr.Path = ep
		if protocol.VerifyRequest(sr, c.app.Key, c.app.Secret, c.now, h.window) == nil {
			return nil
		}
	}
	return err
}

// clip shortens a caller-supplied value for use in a message, cutting on
// a character boundary.
func clip(s string) string {
	return protocol.Clip(s, 64)
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func putBuffer(b *bytes.Buffer) {
	if b.Cap() > 256<<10 {
		return // let large buffers go rather than pin them
	}
	b.Reset()
	bufPool.Put(b)
}
