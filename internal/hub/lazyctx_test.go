package hub

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/testwait"
)

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestLazyDeadlineWithoutWaiter: nobody asked for Done, so no timer ran,
// yet Err reports the deadline once it has passed, and a Done asked for
// afterwards is closed already.
func TestLazyDeadlineWithoutWaiter(t *testing.T) {
	start := time.Now()
	ctx, cancel := withLazyTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if d, ok := ctx.Deadline(); !ok || d.Before(start.Add(30*time.Millisecond)) || d.After(time.Now().Add(30*time.Millisecond)) {
		t.Fatalf("Deadline() = %v, %v", d, ok)
	}
	if err := ctx.Err(); err != nil && time.Since(start) < 30*time.Millisecond {
		t.Fatalf("Err() = %v before the deadline", err)
	}
	testwait.For(t, 5*time.Second, "the deadline", func() bool { return ctx.Err() != nil })
	if err := ctx.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Err() = %v, want DeadlineExceeded", err)
	}
	if !isClosed(ctx.Done()) {
		t.Fatal("Done() is open after the deadline")
	}
	if ctx.(*lazyDeadline).timer != nil {
		t.Fatal("a timer was armed although nobody waited")
	}
}

// TestLazyDeadlineDone: a waiter on Done is woken at the deadline.
func TestLazyDeadlineDone(t *testing.T) {
	ctx, cancel := withLazyTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		// Both may be ready after the process was stopped: only an open
		// Done fails.
		if !isClosed(ctx.Done()) {
			t.Fatal("Done() not closed 10 s after a 20 ms deadline")
		}
	}
	if err := ctx.Err(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Err() = %v, want DeadlineExceeded", err)
	}
}

// TestLazyDeadlineCancel: cancel ends it, whether Done was asked for
// before or after, and the first reason stays.
func TestLazyDeadlineCancel(t *testing.T) {
	for _, doneFirst := range []bool{false, true} {
		ctx, cancel := withLazyTimeout(context.Background(), time.Hour)
		var done <-chan struct{}
		if doneFirst {
			done = ctx.Done()
			if isClosed(done) || ctx.Err() != nil {
				t.Fatal("ended before cancel")
			}
		}
		cancel()
		cancel()
		if done == nil {
			done = ctx.Done()
		}
		if !isClosed(done) || !errors.Is(ctx.Err(), context.Canceled) {
			t.Fatalf("doneFirst=%v: after cancel, Done closed %v, Err %v", doneFirst, isClosed(done), ctx.Err())
		}
	}
}

// TestLazyDeadlineParent: the parent's end is the child's, with or without
// a waiter, and an earlier parent deadline is the child's.
func TestLazyDeadlineParent(t *testing.T) {
	for _, doneFirst := range []bool{false, true} {
		parent, pcancel := context.WithCancel(context.Background())
		ctx, cancel := withLazyTimeout(parent, time.Hour)
		var done <-chan struct{}
		if doneFirst {
			done = ctx.Done()
		}
		pcancel()
		if doneFirst {
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				if !isClosed(done) {
					t.Fatal("Done() not closed after the parent's cancel")
				}
			}
		}
		if !errors.Is(ctx.Err(), context.Canceled) || !isClosed(ctx.Done()) {
			t.Fatalf("doneFirst=%v: Err() = %v after the parent's cancel", doneFirst, ctx.Err())
		}
		cancel()
	}
	parent, pcancel := context.WithTimeout(context.Background(), time.Minute)
	defer pcancel()
	ctx, cancel := withLazyTimeout(parent, time.Hour)
	defer cancel()
	pd, _ := parent.Deadline()
	if d, _ := ctx.Deadline(); !d.Equal(pd) {
		t.Fatalf("Deadline() = %v, want the parent's %v", d, pd)
	}
}

// TestLazyDeadlineChildren: contexts derived from it (as a Redis State
// derives its own bound) end with it, through AfterFunc.
func TestLazyDeadlineChildren(t *testing.T) {
	ctx, cancel := withLazyTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	child, ccancel := context.WithTimeout(ctx, time.Hour)
	defer ccancel()
	if d, _ := child.Deadline(); !d.Equal(ctx.(*lazyDeadline).deadline) {
		t.Fatalf("child's deadline %v, want the parent's", d)
	}
	select {
	case <-child.Done():
	case <-time.After(10 * time.Second):
		if !isClosed(child.Done()) {
			t.Fatal("the child did not end with the parent's deadline")
		}
	}
	if !errors.Is(child.Err(), context.DeadlineExceeded) {
		t.Fatalf("child Err() = %v", child.Err())
	}

	// A stopped AfterFunc does not run; one registered after the end runs.
	ctx2, cancel2 := withLazyTimeout(context.Background(), time.Hour)
	ran := make(chan string, 2)
	stop := ctx2.(*lazyDeadline).AfterFunc(func() { ran <- "stopped" })
	if !stop() || stop() {
		t.Fatal("stop() did not report the first stop alone")
	}
	cancel2()
	ctx2.(*lazyDeadline).AfterFunc(func() { ran <- "late" })
	select {
	case s := <-ran:
		if s != "late" {
			t.Fatalf("%s func ran", s)
		}
	case <-time.After(10 * time.Second):
		select {
		case s := <-ran:
			if s != "late" {
				t.Fatalf("%s func ran", s)
			}
		default:
			t.Fatal("an AfterFunc registered after the end did not run")
		}
	}
}
