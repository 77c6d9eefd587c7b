package storage

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
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

// BenchmarkPdataFloor is the least any event path built on pdata can cost
// per event: a LogRecord with the 18 attributes of a drop event (constant
// strings, so no formatting or decoding is counted), moved into a batch of
// 512 that is then dropped. It bounds what decode → LogRecord can reach on
// this machine, whatever the collector does before it.
func BenchmarkPdataFloor(b *testing.B) {
	keys := []string{"kernel.drop.reason", "kernel.drop.location", "code.function.name", "network.transport",
		"network.type", "source.address", "destination.address", "network.interface.name", "kernel.netns.inode",
		"thread.name", "kernel.tracer.type"}
	ints := []string{"kernel.drop.reason_code", "source.port", "destination.port", "kernel.packet.size",
		"kernel.interface.index", "thread.id", "process.pid"}
	ld := plog.NewLogs()
	slot := ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords()
	now := pcommon.NewTimestampFromTime(time.Now())
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		lr := slot.AppendEmpty()
		lr.SetEventName("kernel.packet.drop")
		lr.SetTimestamp(now)
		lr.SetObservedTimestamp(now)
		lr.SetSeverityNumber(plog.SeverityNumberWarn)
		lr.SetSeverityText("WARN")
		attrs := lr.Attributes()
		attrs.EnsureCapacity(len(keys) + len(ints))
		for _, k := range keys {
			attrs.PutStr(k, "value")
		}
		for i, k := range ints {
			attrs.PutInt(k, int64(i))
		}
		if n++; n == 512 {
			ld = plog.NewLogs()
			slot = ld.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords()
			n = 0
		}
	}
}
