package storage

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.uber.org/zap"
)

// A drop event of the shape the BPF collectors will save: a header, a
// nested socket, a reason string and a short stack.
type benchEvent struct {
	header
	Sock   sock     `json:"sock" doc:"socket"`
	Reason string   `json:"reason" doc:"reason"`
	Iface  string   `json:"ifname" doc:"interface"`
	Netns  uint32   `json:"netns" doc:"netns inode"`
	Stack  []string `json:"stack" doc:"stack"`
}

func newBenchEvent() *benchEvent {
	e := &benchEvent{Reason: "NO_SOCKET", Iface: "lo", Netns: 4026531840,
		Stack: []string{"kfree_skb_reason+0x5e", "udp_rcv+0x1a", "ip_local_deliver+0x76"}}
	e.Pid = 1234
	copy(e.Comm[:], []int8{'c', 'u', 'r', 'l'})
	e.Sock.Dport = 9
	return e
}

// BenchmarkPutAttributes is the reflection mapping alone.
func BenchmarkPutAttributes(b *testing.B) {
	e := newBenchEvent()
	b.ReportAllocs()
	for b.Loop() {
		PutAttributes(pcommon.NewMap(), e)
	}
}

// BenchmarkSaveToPipeline is Save → queue → batch → ConsumeLogs with a
// consumer that does nothing: the receiver's own cost per event.
func BenchmarkSaveToPipeline(b *testing.B) {
	s := NewSink(consumertest.NewNop(), Options{QueueSize: 1 << 20, BatchSize: 512, FlushInterval: 100 * time.Millisecond}, zap.NewNop())
	s.Start()
	st := s.For("event")
	e := newBenchEvent()
	now := time.Now()
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		_ = st.Save("dropwatch", "", now, e)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	stats := s.Stats()
	b.ReportMetric(float64(stats.Emitted)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(stats.Dropped[DropQueueFull]), "dropped")
}
