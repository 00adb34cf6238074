package hub

import (
	"context"
	"sync"
	"time"
)

// lazyDeadline is context.WithTimeout without the runtime timer until
// something waits for it. Every State call and app lookup the hub makes
// is bounded by a deadline, but the memory State and the config store
// never look at theirs: a timer armed and stopped per call (two per
// subscribe, one per admission) was 3-4 % of the server's CPU under
// connection churn (docs/benchmarks.md, "Session 7: churn"). Deadline and
// Err answer from the clock; the timer (and the watch of the parent) is
// armed on the first Done or AfterFunc, which is how a Redis client and
// context.WithTimeout/WithCancel of a child wait.
//
// context.Cause of a lazyDeadline whose parent is a cancelable context
// reports the parent's cause only (the context package finds its own
// contexts through an unexported key): the hub never asks for it.
type lazyDeadline struct {
	parent   context.Context
	deadline time.Time

	mu         sync.Mutex
	err        error
	done       chan struct{} // made by Done
	armed      bool
	timer      *time.Timer
	stopParent func() bool
	funcs      map[*afterFunc]struct{}
}

type afterFunc struct{ f func() }

// withLazyTimeout is context.WithTimeout(parent, d) with a lazyDeadline.
func withLazyTimeout(parent context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	c := &lazyDeadline{parent: parent, deadline: time.Now().Add(d)}
	if pd, ok := parent.Deadline(); ok && pd.Before(c.deadline) {
		c.deadline = pd
	}
	return c, func() { c.cancel(context.Canceled) }
}

func (c *lazyDeadline) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *lazyDeadline) Value(key any) any { return c.parent.Value(key) }

func (c *lazyDeadline) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checkLocked()
	return c.err
}

func (c *lazyDeadline) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		c.checkLocked()
		if c.err != nil {
			close(c.done)
		}
	}
	c.armLocked()
	return c.done
}

// AfterFunc arranges for f to run in a goroutine of its own once c is done
// (context.AfterFunc's contract); context.WithCancel and WithTimeout of a
// child use it instead of a goroutine that waits on Done.
func (c *lazyDeadline) AfterFunc(f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.checkLocked()
	if c.err != nil {
		go f()
		return func() bool { return false }
	}
	a := &afterFunc{f: f}
	if c.funcs == nil {
		c.funcs = make(map[*afterFunc]struct{})
	}
	c.funcs[a] = struct{}{}
	c.armLocked()
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		_, ok := c.funcs[a]
		delete(c.funcs, a)
		return ok
	}
}

// checkLocked ends c when its parent has ended or its deadline has passed,
// whether or not a timer was armed to notice it.
func (c *lazyDeadline) checkLocked() {
	if c.err != nil {
		return
	}
	if err := c.parent.Err(); err != nil {
		c.endLocked(err)
	} else if !time.Now().Before(c.deadline) {
		c.endLocked(context.DeadlineExceeded)
	}
}

// armLocked starts the timer and the watch of the parent, once, while c
// is not done.
func (c *lazyDeadline) armLocked() {
	if c.armed || c.err != nil {
		return
	}
	c.armed = true
	c.timer = time.AfterFunc(time.Until(c.deadline), func() { c.cancel(context.DeadlineExceeded) })
	if c.parent.Done() != nil {
		c.stopParent = context.AfterFunc(c.parent, func() { c.cancel(c.parent.Err()) })
	}
}

func (c *lazyDeadline) cancel(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.endLocked(err)
}

func (c *lazyDeadline) endLocked(err error) {
	if c.err != nil {
		return
	}
	c.err = err
	if c.done != nil {
		close(c.done)
	}
	if c.timer != nil {
		c.timer.Stop()
	}
	if c.stopParent != nil {
		c.stopParent()
	}
	for a := range c.funcs {
		go a.f()
	}
	c.funcs = nil
}
