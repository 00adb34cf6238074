package transport

import (
	"bytes"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/testwait"
)

// parkedWorkers counts the executor's goroutines waiting for a job.
func parkedWorkers() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	parked := 0
	for g := range bytes.SplitSeq(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte("[select")) && bytes.Contains(g, []byte("transport.(*Server).workerLoop")) {
			parked++
		}
	}
	return parked
}

// TestBurstWorkersStayWarm: the goroutines started for a burst of jobs
// (more than the idle workers) stay as warm workers, so the next burst of
// the same size starts none; before, each burst started (and grew the
// stacks of) as many goroutines again, about 6 % of the server's CPU
// under connection churn.
func TestBurstWorkersStayWarm(t *testing.T) {
	const burst = 8
	s := &Server{jobs: make(chan func()), workersQuit: make(chan struct{})}
	s.pool.max = 100
	s.pool.keep = burst
	defer func() {
		close(s.workersQuit)
		s.execWG.Wait()
	}()
	run := func() int {
		s.pool.mu.Lock()
		before := s.pool.spawned
		s.pool.mu.Unlock()
		gate := make(chan struct{})
		var started, done sync.WaitGroup
		started.Add(burst)
		done.Add(burst)
		for range burst {
			s.execute(func() {
				started.Done()
				<-gate
				done.Done()
			})
		}
		started.Wait() // all at once: none of them waited for another
		close(gate)
		done.Wait()
		s.pool.mu.Lock()
		defer s.pool.mu.Unlock()
		return s.pool.spawned - before
	}
	if n := run(); n != burst {
		t.Fatalf("first burst started %d goroutines, want %d (no worker yet)", n, burst)
	}
	testwait.For(t, 10*time.Second, "the burst's goroutines to wait for jobs", func() bool { return parkedWorkers() == burst })
	if n := run(); n != 0 {
		t.Fatalf("second burst started %d goroutines, want 0 (the first burst's stayed)", n)
	}
	s.pool.mu.Lock()
	defer s.pool.mu.Unlock()
	if s.pool.running != 0 || s.pool.kept != burst {
		t.Fatalf("running %d, kept %d; want 0, %d", s.pool.running, s.pool.kept, burst)
	}
}
