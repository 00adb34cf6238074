package client

import (
	"encoding/json"
	"fmt"
	"sync"
)

// Event is one event delivered to a binding.
type Event struct {
	// Channel is the channel the event came on ("" for connection-level
	// events such as pusher:error).
	Channel string
	// Name is the event name: an app event ("order-shipped"), a client
	// event ("client-typing") or one of the pusher: events the client
	// raises (pusher:subscription_succeeded, pusher:subscription_error,
	// pusher:cache_miss, pusher:member_added, pusher:member_removed,
	// pusher:subscription_count, pusher:signin_success, pusher:error).
	Name string
	// Data is the payload. The HTTP API sends data as a JSON string; Data
	// is that string's content (usually JSON text, but any text is legal).
	// Client events sent by pusher-js carry a JSON object; Data is its raw
	// JSON. On an encrypted channel Data is the decrypted plaintext.
	Data []byte
	// UserID is the sender's user id on a client event relayed on a
	// presence channel, else "".
	UserID string
	// Position is the event's place in the channel's history on a Herald
	// server with history for the channel (also on
	// pusher:subscription_succeeded: the channel's top then), else zero.
	Position Position
}

// Unmarshal decodes the event's JSON data into v.
func (e Event) Unmarshal(v any) error {
	if err := json.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("event %s on %q: %w", e.Name, e.Channel, err)
	}
	return nil
}

// Names of the events the client raises itself.
const (
	EventSubscriptionSucceeded = "pusher:subscription_succeeded"
	EventSubscriptionError     = "pusher:subscription_error"
	EventCacheMiss             = "pusher:cache_miss"
	EventMemberAdded           = "pusher:member_added"
	EventMemberRemoved         = "pusher:member_removed"
	EventSubscriptionCount     = "pusher:subscription_count"
	EventSigninSuccess         = "pusher:signin_success"
	EventError                 = "pusher:error"
)

// bindings is a set of handlers, by event name and for every event. A
// handler is looked up when its event is dispatched, so one unbound before
// then does not run.
type bindings[T any] struct {
	mu     sync.Mutex
	next   uint64
	byName map[string][]binding[T]
	all    []binding[T]
}

type binding[T any] struct {
	id uint64
	fn func(T)
}

// bind adds fn for name ("" means every event) and returns its remover.
func (b *bindings[T]) bind(name string, fn func(T)) func() {
	if fn == nil {
		return func() {}
	}
	b.mu.Lock()
	b.next++
	id := b.next
	if name == "" {
		b.all = append(b.all, binding[T]{id, fn})
	} else {
		if b.byName == nil {
			b.byName = make(map[string][]binding[T])
		}
		b.byName[name] = append(b.byName[name], binding[T]{id, fn})
	}
	b.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			if name == "" {
				b.all = remove(b.all, id)
				return
			}
			if l := remove(b.byName[name], id); len(l) > 0 {
				b.byName[name] = l
			} else {
				delete(b.byName, name)
			}
		})
	}
}

func remove[T any](l []binding[T], id uint64) []binding[T] {
	for i, x := range l {
		if x.id == id {
			out := make([]binding[T], 0, len(l)-1)
			out = append(out, l[:i]...)
			return append(out, l[i+1:]...)
		}
	}
	return l
}

// handlers returns the handlers for an event named name: the named ones
// first, then the catch-all ones, as pusher-js orders them.
func (b *bindings[T]) handlers(name string) []func(T) {
	b.mu.Lock()
	defer b.mu.Unlock()
	named := b.byName[name]
	if len(named)+len(b.all) == 0 {
		return nil
	}
	out := make([]func(T), 0, len(named)+len(b.all))
	for _, x := range named {
		out = append(out, x.fn)
	}
	for _, x := range b.all {
		out = append(out, x.fn)
	}
	return out
}

// dispatcher runs handlers one at a time, in the order they were queued,
// on a goroutine of its own, so a handler may block or call any Client
// method without stalling the connection (pings, other events). The
// goroutine exists only while there is work: an idle client holds none.
type dispatcher struct {
	mu      sync.Mutex
	queue   []func()
	running bool
	stopped bool
	wg      sync.WaitGroup
	recover func(any)
}

func newDispatcher(onPanic func(any)) *dispatcher {
	return &dispatcher{recover: onPanic}
}

func (d *dispatcher) push(fn func()) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return
	}
	d.queue = append(d.queue, fn)
	if !d.running {
		d.running = true
		d.wg.Add(1)
		go d.drain()
	}
}

// drain runs queued functions until the queue is empty.
func (d *dispatcher) drain() {
	defer d.wg.Done()
	for {
		d.mu.Lock()
		q := d.queue
		d.queue = nil
		if len(q) == 0 {
			d.running = false
			d.mu.Unlock()
			return
		}
		d.mu.Unlock()
		for _, fn := range q {
			d.call(fn)
		}
	}
}

func (d *dispatcher) call(fn func()) {
	defer func() {
		if r := recover(); r != nil {
			d.recover(r)
		}
	}()
	fn()
}

// stop refuses new work and waits until what was queued has run.
func (d *dispatcher) stop() {
	d.mu.Lock()
	d.stopped = true
	d.mu.Unlock()
	d.wg.Wait()
}
