package metrics

import (
	"testing"
	"time"

	"github.com/herald-ws/herald/internal/hub"
)

// BenchmarkFanout is the cost the hub pays per message and channel.
func BenchmarkFanout(b *testing.B) {
	m := New(Options{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Fanout("app-id", hub.SourceAPI, 1000, 50*time.Microsecond)
		}
	})
}

// BenchmarkBytesOut is the cost the transport pays per completed write.
func BenchmarkBytesOut(b *testing.B) {
	s := New(Options{}).App("app-id")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s.BytesOut(4096)
		}
	})
}
