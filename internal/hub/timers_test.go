package hub

import (
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/protocol"
)

func wheelLen(h *Hub) int {
	h.timers.mu.Lock()
	defer h.timers.mu.Unlock()
	n := 0
	for _, s := range h.timers.slots {
		n += len(s)
	}
	return n
}

func TestWheelHoldsEachClientOnceAndForgetsClosedOnes(t *testing.T) {
	e := newEnv(t, nil)
	var cs []*Client
	for range 50 {
		c, _ := e.connect()
		cs = append(cs, c)
	}
	if n := wheelLen(e.h); n != 50 {
		t.Fatalf("wheel holds %d entries, want 50", n)
	}
	for _, c := range cs[:20] {
		c.Closed()
	}
	if n := wheelLen(e.h); n != 30 {
		t.Fatalf("after 20 disconnects the wheel holds %d, want 30", n)
	}
	// A tick before any deadline visits nothing and moves nobody.
	e.clk.Advance(time.Minute)
	e.h.sweep()
	if n := wheelLen(e.h); n != 30 {
		t.Fatalf("wheel holds %d after an early tick", n)
	}
}

func TestWheelReschedulesActiveClientsWithoutPinging(t *testing.T) {
	e := newEnv(t, nil) // activity 120 s
	c, fc := e.connect()
	for range 10 {
		e.clk.Advance(100 * time.Second)
		c.Touch()
		e.h.sweep()
	}
	fc.none(t)
	if n := wheelLen(e.h); n != 1 {
		t.Fatalf("wheel holds %d entries", n)
	}
	e.clk.Advance(120 * time.Second)
	e.h.sweep()
	if f := fc.next(t); f.Event != protocol.EventPing {
		t.Fatalf("want a ping after 120 s of silence, got %s", f.raw)
	}
}

func TestWheelCatchesUpAfterAClockJump(t *testing.T) {
	e := newEnv(t, nil)
	_, fc := e.connect()
	e.h.sweep()
	// Longer than the wheel's span: every slot is looked at once.
	e.clk.Advance(time.Duration(wheelSlots+100) * time.Second)
	e.h.sweep()
	if f := fc.next(t); f.Event != protocol.EventPing {
		t.Fatalf("want a ping, got %s", f.raw)
	}
	e.clk.Advance(30 * time.Second)
	e.h.sweep()
	wantClosed(t, fc, protocol.CodePongNotReceived)
	if n := wheelLen(e.h); n != 0 {
		t.Fatalf("a closed client stays in the wheel (%d)", n)
	}
}

func TestWheelDeadlineLongerThanTheWheel(t *testing.T) {
	e := newEnv(t, nil)
	e.app.ActivityTimeout = time.Hour // several rounds of the wheel
	_, fc := e.connect()
	for range 59 {
		e.clk.Advance(time.Minute)
		e.h.sweep()
	}
	fc.none(t)
	e.clk.Advance(time.Minute)
	e.h.sweep()
	if f := fc.next(t); f.Event != protocol.EventPing {
		t.Fatalf("want a ping after an hour, got %s", f.raw)
	}
}

func BenchmarkSweepIdle(b *testing.B) {
	e := newEnv(b, nil)
	for range 20000 {
		e.connect()
	}
	b.ResetTimer()
	for range b.N {
		e.clk.Advance(time.Second / 4)
		e.h.sweep()
	}
}
