package webhooks

import (
	"container/heap"
	"context"
	"errors"
	"sync"
	"time"
)

// Delivery is one signed batch for one target: what is POSTed, as often as
// it takes. Body and Signature never change after the batch is made, so a
// retry is byte-for-byte the same request.
type Delivery struct {
	// ID is the batch id, sent as X-Herald-Batch-Id.
	ID    string `json:"id"`
	AppID string `json:"app"`
	URL   string `json:"url"`
	// Headers were the target's extra headers; they are no longer stored
	// (batches of older versions may have them) and never used: the URL
	// only identifies the target, whose headers, key and secret are taken
	// from the configuration at delivery.
	Headers   map[string]string `json:"headers,omitempty"`
	Key       string            `json:"key"`
	Signature string            `json:"sig"`
	Body      []byte            `json:"body"`
	// Events is the number of events in Body (for the counters).
	Events int `json:"events"`
	// CreatedMs is the batch's time_ms; retries stop RetryFor after it.
	CreatedMs int64 `json:"created_ms"`
	// TimeoutMs bounds one attempt and RetryForMs the retries (after
	// CreatedMs); 0 (a batch queued by an older version) means the
	// dispatcher's Timeout and RetryFor.
	TimeoutMs  int64 `json:"timeout_ms,omitempty"`
	RetryForMs int64 `json:"retry_for_ms,omitempty"`
	// Attempts is the number of attempts made so far.
	Attempts int `json:"attempts"`

	due   time.Time // memory queue: when the batch is next due
	index int       // memory queue: heap position
}

// ErrQueueFull is returned by Queue.Push when the queue is at its bound; the
// batch is dropped and counted.
var ErrQueueFull = errors.New("webhooks: delivery queue full")

// Queue holds the batches waiting for delivery or for a retry. A batch
// handed out by Next is leased to the caller until it calls Done or Retry;
// a durable queue gives it to another caller (possibly on another node)
// when the lease ends first, which makes delivery at least once.
// Implementations are safe for concurrent use.
type Queue interface {
	// Push adds a new batch, due now. It returns ErrQueueFull at the bound.
	Push(ctx context.Context, d *Delivery) error
	// Next blocks until a batch is due and leases it, or ctx ends.
	Next(ctx context.Context) (*Delivery, error)
	// Retry returns a leased batch, due again after the delay, with its
	// Attempts as updated by the caller.
	Retry(ctx context.Context, d *Delivery, after time.Duration) error
	// Done removes a leased batch for good (delivered or given up).
	Done(ctx context.Context, d *Delivery) error
	// Len is the number of batches pending or leased.
	Len(ctx context.Context) (int, error)
	// Durable reports whether the batches outlive the process. Close waits
	// for a memory queue to empty; a durable queue keeps what is left.
	Durable() bool
}

// MemoryQueue is a bounded in-process Queue, ordered by due time.
type MemoryQueue struct {
	mu       sync.Mutex
	h        dueHeap
	leased   int
	limit    int
	bytes    int64 // body bytes held, pending and leased
	maxBytes int64 // 0: no byte bound
	wake     chan struct{}
}

// NewMemoryQueue returns a MemoryQueue holding at most limit batches
// (pending and leased).
func NewMemoryQueue(limit int) *MemoryQueue {
	return NewMemoryQueueBytes(limit, 0)
}

// NewMemoryQueueBytes returns a MemoryQueue holding at most limit batches
// and maxBytes of batch bodies (pending and leased; 0: no byte bound). A
// Push past either bound is refused (ErrQueueFull): the newest batch is the
// one dropped.
func NewMemoryQueueBytes(limit int, maxBytes int64) *MemoryQueue {
	if limit <= 0 {
		limit = 1
	}
	return &MemoryQueue{limit: limit, maxBytes: maxBytes, wake: make(chan struct{}, 1)}
}

func (q *MemoryQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Push implements Queue.
func (q *MemoryQueue) Push(_ context.Context, d *Delivery) error {
	q.mu.Lock()
	size := int64(len(d.Body))
	if len(q.h)+q.leased >= q.limit || q.maxBytes > 0 && q.bytes+size > q.maxBytes {
		q.mu.Unlock()
		return ErrQueueFull
	}
	q.bytes += size
	d.due = time.Now()
	heap.Push(&q.h, d)
	q.mu.Unlock()
	q.signal()
	return nil
}

// Next implements Queue.
func (q *MemoryQueue) Next(ctx context.Context) (*Delivery, error) {
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		q.mu.Lock()
		wait := time.Hour
		if len(q.h) > 0 {
			top := q.h[0]
			if wait = time.Until(top.due); wait <= 0 {
				heap.Pop(&q.h)
				q.leased++
				more := len(q.h) > 0
				q.mu.Unlock()
				if more {
					q.signal() // another worker may take the next one
				}
				return top, nil
			}
		}
		q.mu.Unlock()
		if err := sleepOrWake(ctx, &t, wait, q.wake); err != nil {
			return nil, err
		}
	}
}

// Retry implements Queue.
func (q *MemoryQueue) Retry(_ context.Context, d *Delivery, after time.Duration) error {
	q.mu.Lock()
	q.leased--
	d.due = time.Now().Add(after)
	heap.Push(&q.h, d)
	q.mu.Unlock()
	q.signal()
	return nil
}

// Done implements Queue.
func (q *MemoryQueue) Done(_ context.Context, d *Delivery) error {
	q.mu.Lock()
	q.leased--
	q.bytes -= int64(len(d.Body))
	q.mu.Unlock()
	return nil
}

// Bytes is the size of the batch bodies held, pending and leased.
func (q *MemoryQueue) Bytes() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes
}

// Len implements Queue.
func (q *MemoryQueue) Len(context.Context) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.h) + q.leased, nil
}

// Durable implements Queue: a MemoryQueue is not.
func (q *MemoryQueue) Durable() bool { return false }

// drain removes and returns every pending batch (at shutdown).
func (q *MemoryQueue) drain() []*Delivery {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := []*Delivery(q.h)
	q.h = nil
	for _, d := range out {
		q.bytes -= int64(len(d.Body))
	}
	return out
}

// dueHeap orders deliveries by due time.
type dueHeap []*Delivery

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *dueHeap) Push(x any) {
	d := x.(*Delivery)
	d.index = len(*h)
	*h = append(*h, d)
}
func (h *dueHeap) Pop() any {
	old := *h
	n := len(old)
	d := old[n-1]
	old[n-1] = nil
	*h = old[:n-1]
	return d
}

// sleepOrWake waits for d, a signal on wake or the end of ctx, reusing the
// timer in *t (created on first use; the caller stops it).
func sleepOrWake(ctx context.Context, t **time.Timer, d time.Duration, wake <-chan struct{}) error {
	if *t == nil {
		*t = time.NewTimer(d)
	} else {
		(*t).Reset(d)
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-wake:
	case <-(*t).C:
	}
	return nil
}
