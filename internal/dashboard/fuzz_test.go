package dashboard

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzAdminAPI sends arbitrary paths, bodies, Origins and CSRF headers
// with a live session: every answer under api/ is JSON with a matching
// code, and nothing panics.
func FuzzAdminAPI(f *testing.F) {
	f.Add("POST", "/dashboard/api/apps/app-id/events", `{"channel":"a","event":"e","data":"{}"}`, "", true)
	f.Add("GET", "/dashboard/api/apps/app-id/log?after=18446744073709551616", "", "", true)
	f.Add("GET", "/dashboard/api/apps/app-id/channels/presence-%00/members", "", "", true)
	f.Add("POST", "/dashboard/api/apps/app-id/events", `{"channel":"`+strings.Repeat("a", 300)+`","event":"e"}`, "http://x", false)
	f.Add("POST", "/dashboard/login", "token=%zz", "null", false)
	f.Fuzz(func(t *testing.T, method, target, body, origin string, csrf bool) {
		if !strings.HasPrefix(target, "/") || strings.ContainsAny(target, " \r\n\t") || method == "" || strings.ContainsAny(method, " \r\n\t()<>@,;:\\\"/[]?={}") {
			return
		}
		d, _ := newDash(t, nil)
		id, s := d.newSession()
		req, err := http.NewRequest(method, "http://herald.test"+target, strings.NewReader(body))
		if err != nil {
			return
		}
		req.Host = "herald.test"
		req.AddCookie(&http.Cookie{Name: cookieName, Value: id})
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		if csrf {
			req.Header.Set("X-CSRF-Token", s.csrf)
		}
		w := httptest.NewRecorder()
		d.ServeHTTP(w, req)
		if strings.HasPrefix(req.URL.Path, "/dashboard/api/") {
			var e struct {
				Code int `json:"code"`
			}
			if w.Code >= 400 {
				if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Code != w.Code {
					t.Fatalf("%s %s: %d %q", method, target, w.Code, w.Body.String())
				}
			}
		}
	})
}
