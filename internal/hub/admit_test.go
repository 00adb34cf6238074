package hub

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/apps"
	"github.com/herald-ws/herald/internal/protocol"
)

// keyApps is an AppLookup over apps by key; the key "broken" fails.
type keyApps map[string]*apps.App

func (k keyApps) ByKey(_ context.Context, key string) (*apps.App, error) {
	if key == "broken" {
		return nil, errors.New("store down")
	}
	if a, ok := k[key]; ok {
		return a, nil
	}
	return nil, apps.ErrNotFound
}

func (k keyApps) ByID(_ context.Context, id string) (*apps.App, error) {
	for _, a := range k {
		if a.ID == id {
			return a, nil
		}
	}
	return nil, apps.ErrNotFound
}

func admitApps() keyApps {
	mk := func(key string, mod func(*apps.App)) *apps.App {
		a := apps.Defaults()
		a.ID, a.Key, a.Secret = "id-"+key, key, "secret"
		if mod != nil {
			mod(&a)
		}
		return &a
	}
	return keyApps{
		"key":      mk("key", nil),
		"tls":      mk("tls", func(a *apps.App) { a.RequireTLS = true }),
		"disabled": mk("disabled", func(a *apps.App) { a.Enabled = false }),
		"origins":  mk("origins", func(a *apps.App) { a.AllowedOrigins = []string{"https://a.com"} }),
		"full":     mk("full", func(a *apps.App) { a.MaxConnections = 0 }),
	}
}

func wantRefused(t *testing.T, err error, code int, msg string) {
	t.Helper()
	ce, ok := errors.AsType[*ConnectError](err)
	if !ok || ce.Code != code || ce.Message != msg || ce.CloseCode() != code {
		t.Fatalf("got %v, want ConnectError %d %q", err, code, msg)
	}
}

// Admit decides every refusal of protocol §1.2, with the codes, messages
// and refusal counts the transport used to produce itself.
func TestAdmitRefusals(t *testing.T) {
	ref := &recRefusals{}
	h := New(withMemoryEngine(Options{Apps: admitApps(), Refusals: ref}))
	cases := []struct {
		name  string
		info  ConnInfo
		code  int
		msg   string
		limit string // counted refusal, "" for none
	}{
		{"protocol not an integer", ConnInfo{Key: "key", Protocol: "abc", HasProtocol: true}, 4006, "Invalid version string format", ""},
		{"empty protocol", ConnInfo{Key: "key", HasProtocol: true}, 4006, "Invalid version string format", ""},
		{"protocol too old", ConnInfo{Key: "key", Protocol: "3", HasProtocol: true}, 4007, "Unsupported protocol version", ""},
		{"protocol too new", ConnInfo{Key: "key", Protocol: "8", HasProtocol: true}, 4007, "Unsupported protocol version", ""},
		{"unknown key", ConnInfo{Key: "nope"}, 4001, "Application does not exist", ""},
		{"lookup fails", ConnInfo{Key: "broken"}, 4100, "Over capacity", ""},
		{"tls required", ConnInfo{Key: "tls"}, 4000, "Application only accepts SSL connections, reconnect using wss://", "id-tls/" + LimitRequireTLS},
		{"disabled", ConnInfo{Key: "disabled"}, 4003, "Application disabled", ""},
		{"origin refused", ConnInfo{Key: "origins", Origin: "https://evil.com"}, 4009, "Origin not allowed", "id-origins/" + LimitOrigin},
		{"over quota", ConnInfo{Key: "full"}, 4004, "Application is over connection quota", "id-full/" + LimitConnections},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fc := &fakeConn{}
			s, err := h.Admit(context.Background(), fc, tc.info)
			if s != nil {
				t.Fatalf("session %v returned with a refusal", s)
			}
			wantRefused(t, err, tc.code, tc.msg)
			if tc.limit != "" && ref.get(tc.limit) != 1 {
				t.Fatalf("%s not counted once", tc.limit)
			}
			if len(fc.frames) != 0 {
				t.Fatalf("frames sent to a refused connection: %q", fc.frames)
			}
			// Bound only once the app's own checks passed (quota is after).
			if want := tc.code == 4004; (fc.appID != "") != want {
				t.Fatalf("Bind(%q) on a %d refusal", fc.appID, tc.code)
			}
		})
	}
	for _, info := range []ConnInfo{
		{Key: "key"},
		{Key: "key", Protocol: "4", HasProtocol: true},
		{Key: "tls", TLS: true},
		{Key: "origins", Origin: "https://a.com"},
		{Key: "origins"},
	} {
		fc := &fakeConn{}
		s, err := h.Admit(context.Background(), fc, info)
		if err != nil {
			t.Fatalf("%+v refused: %v", info, err)
		}
		if _, ok := s.(*Client); !ok || fc.appID != "id-"+info.Key {
			t.Fatalf("%+v: session %T, bound to %q", info, s, fc.appID)
		}
		if f := fc.next(t); f.Event != protocol.EventConnectionEstablished {
			t.Fatalf("first frame %s", f.raw)
		}
	}
	if n := h.adm.admitted.Load(); n != 5 {
		t.Fatalf("%d slots held by 5 connections", n)
	}
}

// The node's own limits come first and answer 4100; a refused connection
// gives its slot back, a closed one too.
func TestAdmitNodeLimits(t *testing.T) {
	ref := &recRefusals{}
	h := New(withMemoryEngine(Options{Apps: admitApps(), Refusals: ref, NodeLimits: NodeLimits{MaxConnections: 2, IPConnectionsPerSecond: 0.001, IPConnectionsBurst: 1}}))
	ctx := context.Background()
	pub := netip.MustParseAddr("198.51.100.1")
	s1, err := h.Admit(ctx, &fakeConn{}, ConnInfo{Key: "key", ClientIP: pub})
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.Admit(ctx, &fakeConn{}, ConnInfo{Key: "key", ClientIP: pub})
	wantRefused(t, err, 4100, "Over capacity: too many new connections from your address")
	if ref.get("/"+LimitIPConnections) != 1 {
		t.Fatal("per-IP refusal not counted")
	}
	// A refusal of the app's takes no slot.
	_, err = h.Admit(ctx, &fakeConn{}, ConnInfo{Key: "full"})
	wantRefused(t, err, 4004, "Application is over connection quota")
	if _, err := h.Admit(ctx, &fakeConn{}, ConnInfo{Key: "key"}); err != nil {
		t.Fatal(err)
	}
	// The node cap comes before the app: an unknown key over it is 4100.
	_, err = h.Admit(ctx, &fakeConn{}, ConnInfo{Key: "nope"})
	wantRefused(t, err, 4100, "Over capacity")
	if ref.get("/"+LimitNodeConnections) != 1 {
		t.Fatal("node cap refusal not counted")
	}
	s1.Closed()
	if _, err := h.Admit(ctx, &fakeConn{}, ConnInfo{Key: "key"}); err != nil {
		t.Fatalf("after a close: %v", err)
	}

	m := New(withMemoryEngine(Options{Apps: admitApps(), Refusals: ref, NodeLimits: NodeLimits{MemoryLimit: 1 << 20, MemoryGuardPercent: 90}}))
	_, err = m.Admit(ctx, &fakeConn{}, ConnInfo{Key: "key"})
	wantRefused(t, err, 4100, "Over capacity")
	if ref.get("/"+LimitMemory) != 1 {
		t.Fatal("memory refusal not counted")
	}
}

func TestAdmitDraining(t *testing.T) {
	h := New(withMemoryEngine(Options{Apps: admitApps()}))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := h.Drain(ctx, 0); err != nil {
		t.Fatal(err)
	}
	_, err := h.Admit(context.Background(), &fakeConn{}, ConnInfo{Key: "key"})
	wantRefused(t, err, protocol.CodeReconnect, "Server is shutting down, please reconnect")
	if n := h.adm.admitted.Load(); n != 0 {
		t.Fatalf("%d slots held after a refusal", n)
	}
}
