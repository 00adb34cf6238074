package dashboard

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"reflect"
	"strconv"
	"time"

	"github.com/herald-ws/herald/internal/apps"
)

// The apps admin API (docs/apps.md): the operations of `herald apps`
// behind the dashboard login, used by the Apps page. Every state change is
// a POST (so the login's CSRF and Origin checks apply). With the config
// store everything but the listing answers 409: it is read-only.

// AppsAdmin is the write side of the apps store for the admin API.
type AppsAdmin struct {
	// Writer changes the store; nil means read-only (the config store).
	Writer apps.Writer
	// Store describes the store for the page, password redacted.
	Store string
	// Changed is told of every app changed through the API, so that this
	// node serves the change at once (other nodes within the TTL).
	Changed func(a *apps.App)
}

func (d *Dashboard) adminRoutes(m *http.ServeMux, p string) {
	m.HandleFunc("GET "+p+"/apps", d.appsPage)
	m.HandleFunc("GET "+p+"/api/admin/apps", d.auth(d.adminList))
	m.HandleFunc("POST "+p+"/api/admin/apps", d.auth(d.adminCreate))
	m.HandleFunc("GET "+p+"/api/admin/apps/{id}", d.auth(d.adminShow))
	m.HandleFunc("POST "+p+"/api/admin/apps/{id}", d.auth(d.adminUpdate))
	m.HandleFunc("POST "+p+"/api/admin/apps/{id}/rotate-secret", d.auth(d.adminChange(rotate)))
	m.HandleFunc("POST "+p+"/api/admin/apps/{id}/disable", d.auth(d.adminChange(setEnabled(false))))
	m.HandleFunc("POST "+p+"/api/admin/apps/{id}/enable", d.auth(d.adminChange(setEnabled(true))))
	m.HandleFunc("POST "+p+"/api/admin/apps/{id}/delete", d.auth(d.adminDelete))
}

// maxAdminBody bounds an admin request (settings are at most
// apps.MaxSettingsBytes).
const maxAdminBody = apps.MaxSettingsBytes + 4096

type settingView struct {
	Key     string `json:"key"`
	Type    string `json:"type"`
	Expect  string `json:"expect"`
	Default any    `json:"default"`
}

func (d *Dashboard) adminList(w http.ResponseWriter, r *http.Request, _ *session) {
	all, err := d.opt.Apps.All(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, "The apps could not be listed: the apps store is unreachable")
		return
	}
	list := make([]map[string]any, 0, len(all))
	for _, a := range all {
		list = append(list, apps.View(a))
	}
	settings := []settingView{}
	def := apps.Defaults()
	defs := apps.View(&def)
	for _, s := range apps.Settings() {
		settings = append(settings, settingView{Key: s.Key, Type: settingType(s), Expect: s.Expect, Default: defs[s.Key]})
	}
	out := map[string]any{"writable": d.opt.Admin.Writer != nil, "store": d.opt.Admin.Store, "apps": list, "settings": settings}
	if d.opt.Admin.Writer == nil {
		out["read_only_reason"] = apps.ErrReadOnly.Error()
	}
	writeJSON(w, http.StatusOK, out)
}

// settingType is the form field a setting needs.
func settingType(s apps.Setting) string {
	switch {
	case s.Type == reflect.TypeFor[time.Duration]():
		return "duration"
	case s.Type.Kind() == reflect.Bool:
		return "bool"
	case s.Type.Kind() == reflect.Int:
		return "int"
	case s.Type.Kind() == reflect.Slice && s.Type.Elem().Kind() == reflect.String:
		return "list"
	case s.Type.Kind() == reflect.String:
		return "string"
	}
	return "json" // webhooks: a list of objects
}

func (d *Dashboard) adminShow(w http.ResponseWriter, r *http.Request, _ *session) {
	a := d.adminApp(w, r)
	if a == nil {
		return
	}
	writeJSON(w, http.StatusOK, apps.View(a))
}

// adminApp finds the app of the path in the store itself (not a cache:
// an edit starts from the stored version).
func (d *Dashboard) adminApp(w http.ResponseWriter, r *http.Request) *apps.App {
	var src apps.Store = d.opt.Apps
	if d.opt.Admin.Writer != nil {
		src = d.opt.Admin.Writer
	}
	a, err := src.ByID(r.Context(), r.PathValue("id"))
	if err != nil {
		d.storeError(w, err)
		return nil
	}
	return a
}

// appRequest is the body of create and update. Settings are the per-app
// settings by YAML key, decoded and validated as a store row is.
type appRequest struct {
	ID       string          `json:"id"`
	Key      string          `json:"key"`
	Secret   string          `json:"secret"`
	Enabled  *bool           `json:"enabled"`
	Settings json.RawMessage `json:"settings"`
}

func (d *Dashboard) readAppRequest(w http.ResponseWriter, r *http.Request) (*appRequest, bool) {
	if d.opt.Admin.Writer == nil {
		writeError(w, http.StatusConflict, apps.ErrReadOnly.Error())
		return nil, false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxAdminBody)
	var req appRequest
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			writeError(w, http.StatusRequestEntityTooLarge, "The request is too large")
			return nil, false
		}
		writeError(w, http.StatusBadRequest, `The body must be JSON {"id","key","secret","enabled","settings":{...}}`)
		return nil, false
	}
	return &req, true
}

// applyRequest sets req's settings on a and validates the result; false
// means it answered 400 naming the fields.
func applyRequest(w http.ResponseWriter, req *appRequest, a *apps.App) bool {
	if req.Enabled != nil {
		a.Enabled = *req.Enabled
	}
	var errs []apps.FieldError
	if len(req.Settings) > 0 {
		errs = apps.DecodeSettings(req.Settings, a)
	}
	if len(errs) == 0 {
		errs = apps.Validate(a)
	}
	if len(errs) > 0 {
		fields := make(map[string]string, len(errs))
		for _, e := range errs {
			fields[e.Path] = e.Msg
		}
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": "Invalid app: " + (&apps.InvalidError{Fields: errs}).Error(), "code": http.StatusBadRequest, "fields": fields})
		return false
	}
	return true
}

func (d *Dashboard) adminCreate(w http.ResponseWriter, r *http.Request, _ *session) {
	req, ok := d.readAppRequest(w, r)
	if !ok {
		return
	}
	a := apps.Defaults()
	a.ID, a.Key, a.Secret = req.ID, req.Key, req.Secret
	if a.ID == "" {
		n, _ := rand.Int(rand.Reader, big.NewInt(9_000_000))
		a.ID = strconv.FormatInt(n.Int64()+1_000_000, 10)
	}
	if a.Key == "" {
		a.Key = hexToken(10)
	}
	if a.Secret == "" {
		a.Secret = hexToken(16)
	}
	if !applyRequest(w, req, &a) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if err := d.opt.Admin.Writer.Create(ctx, &a); err != nil {
		d.storeError(w, err)
		return
	}
	d.changed(&a)
	d.log.Info("app created", "app_id", a.ID)
	v := apps.View(&a)
	v["secret"] = a.Secret // shown once
	writeJSON(w, http.StatusCreated, v)
}

func (d *Dashboard) adminUpdate(w http.ResponseWriter, r *http.Request, _ *session) {
	req, ok := d.readAppRequest(w, r)
	if !ok {
		return
	}
	if req.ID != "" || req.Secret != "" {
		writeError(w, http.StatusBadRequest, "The id cannot change, and the secret changes only with rotate-secret")
		return
	}
	cur := d.adminApp(w, r)
	if cur == nil {
		return
	}
	next := *cur
	if req.Key != "" {
		next.Key = req.Key
	}
	if !applyRequest(w, req, &next) {
		return
	}
	d.write(w, r, cur, &next, false)
}

func rotate(a *apps.App)                   { a.Secret = hexToken(16) }
func setEnabled(on bool) func(a *apps.App) { return func(a *apps.App) { a.Enabled = on } }

func (d *Dashboard) adminChange(f func(a *apps.App)) func(http.ResponseWriter, *http.Request, *session) {
	return func(w http.ResponseWriter, r *http.Request, _ *session) {
		if d.opt.Admin.Writer == nil {
			writeError(w, http.StatusConflict, apps.ErrReadOnly.Error())
			return
		}
		cur := d.adminApp(w, r)
		if cur == nil {
			return
		}
		next := *cur
		f(&next)
		d.write(w, r, cur, &next, next.Secret != cur.Secret)
	}
}

// write stores next (the new version of cur) and answers it.
func (d *Dashboard) write(w http.ResponseWriter, r *http.Request, cur, next *apps.App, showSecret bool) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if err := d.opt.Admin.Writer.Update(ctx, next); err != nil {
		d.storeError(w, err)
		return
	}
	d.changed(cur)
	d.changed(next)
	d.log.Info("app changed", "app_id", next.ID, "enabled", next.Enabled, "secret_rotated", showSecret)
	v := apps.View(next)
	if showSecret {
		v["secret"] = next.Secret
	}
	writeJSON(w, http.StatusOK, v)
}

func (d *Dashboard) adminDelete(w http.ResponseWriter, r *http.Request, _ *session) {
	if d.opt.Admin.Writer == nil {
		writeError(w, http.StatusConflict, apps.ErrReadOnly.Error())
		return
	}
	cur := d.adminApp(w, r)
	if cur == nil {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if err := d.opt.Admin.Writer.Delete(ctx, cur.ID); err != nil {
		d.storeError(w, err)
		return
	}
	d.changed(cur)
	d.log.Info("app deleted", "app_id", cur.ID)
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

func (d *Dashboard) changed(a *apps.App) {
	if d.opt.Admin.Changed != nil {
		d.opt.Admin.Changed(a)
	}
}

// storeError answers a store error as JSON: 404, 409, 400 or 503.
func (d *Dashboard) storeError(w http.ResponseWriter, err error) {
	var ie *apps.InvalidError
	switch {
	case errors.Is(err, apps.ErrNotFound):
		writeError(w, http.StatusNotFound, "No such app")
	case errors.Is(err, apps.ErrExists):
		writeError(w, http.StatusConflict, "An app with this id or key already exists")
	case errors.As(err, &ie):
		writeError(w, http.StatusBadRequest, "The stored app is invalid (fix the row with SQL or delete the app): "+ie.Error())
	default:
		d.log.Warn("apps store failed", "err", err)
		writeError(w, http.StatusServiceUnavailable, "The apps store is unreachable; try again")
	}
}

func hexToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// appsPage is the Apps page (assets/apps.html), behind the login.
func (d *Dashboard) appsPage(w http.ResponseWriter, r *http.Request) {
	if _, s := d.session(r); s == nil {
		d.loginPage(w, http.StatusOK, "")
		return
	}
	serveAsset(w, "apps.html")
}
