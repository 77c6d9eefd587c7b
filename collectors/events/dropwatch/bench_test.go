package dropwatch

import (
	"context"
	"net"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.uber.org/zap"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/bpf"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/ksym"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/storage"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/testenv"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/tracing/tracingtest"
)

// benchHarness runs dropwatch filtered to one closed UDP port, with the
// kernel's BPF statistics on, and returns what the benchmark sends to and
// how many datagrams it sent to see the hook attached.
func benchHarness(b *testing.B, cfg *Config, opts bpf.Options) (*tracingtest.Harness, net.PacketConn, *net.UDPAddr, uint64) {
	testenv.RequireRoot(b, "loading BPF programs")
	testenv.Sysctl(b, "kernel/bpf_stats_enabled", "1")
	if opts.Force != nil {
		testenv.Tracefs(b)
	}
	port := 0
	{
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		port = c.LocalAddr().(*net.UDPAddr).Port
		c.Close()
	}
	cfg.Protocol, cfg.Port = "udp", port
	h := tracingtest.New(b, "dropwatch", cfg, tracingtest.BPFOptions(opts))
	h.Run(b)
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
	deadline := time.Now().Add(10 * time.Second)
	var pokes uint64
	for h.Logs.LogRecordCount() == 0 { // attached once a drop shows up
		if time.Now().After(deadline) {
			b.Fatal("dropwatch never reported a drop")
		}
		conn.WriteTo([]byte("x"), to)
		pokes++
		time.Sleep(20 * time.Millisecond)
	}
	return h, conn, to, pokes
}

func programStats(b *testing.B, h *tracingtest.Harness) (runs, ns uint64) {
	for _, p := range h.Programs.List() {
		r, t, ok := p.Stats()
		if !ok {
			b.Fatal("no BPF statistics")
		}
		runs, ns = runs+r, ns+t
	}
	return runs, ns
}

// BenchmarkKernelCost measures what the kfree_skb program costs the kernel
// per run (kernel.bpf_stats_enabled), for each hook candidate side by side,
// on a steady stream of drops that all pass the filter and all become
// events: the most expensive path. bench/kernel-cost measures the default
// settings (no filter, cap 100) against bpftrace. One op is one packet.
func BenchmarkKernelCost(b *testing.B) {
	for _, tc := range []struct {
		name string
		opts bpf.Options
	}{
		{"tp_btf", bpf.Options{Force: nil}},
		{"tracepoint", bpf.Options{Force: map[string]bpf.Kind{"kfree_skb": bpf.Tracepoint}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h, conn, to, _ := benchHarness(b, &Config{}, tc.opts)
			runs0, ns0 := programStats(b, h)
			for b.Loop() {
				conn.WriteTo([]byte("x"), to)
			}
			runs1, ns1 := programStats(b, h)
			// The program runs for every freed packet, filtered or not.
			b.ReportMetric(float64(ns1-ns0)/float64(runs1-runs0), "kernel-ns/run")
			b.ReportMetric(float64(runs1-runs0)/float64(b.N), "runs/op")
		})
	}
}

// BenchmarkEventThroughput floods drops and measures how many become
// LogRecords per second through each event channel. The cap is off: this
// is the saturation of the BPF → Go → pdata path. Every datagram sent is
// accounted for, exactly: saved into the pipeline, dropped at the full
// queue, lost in the kernel (buffer full) or held back by the cap.
func BenchmarkEventThroughput(b *testing.B) {
	for _, tc := range []struct {
		name string
		opts bpf.Options
	}{
		{"ringbuf", bpf.Options{}},
		{"perfbuf", bpf.Options{PerfBuffer: true}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h, conn, to, _ := benchHarness(b, &Config{}, tc.opts)
			c := h.Attr.TracingData.(*dropwatchCollector)
			// The harness's consumer keeps every batch; empty it as the
			// benchmark goes so that memory stays flat.
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				for ctx.Err() == nil {
					h.Logs.Reset()
					time.Sleep(50 * time.Millisecond)
				}
			}()
			defer func() { cancel(); <-done }()
			accounted := func() (saved, queueFull, lost, limited uint64) {
				c.counters.Refresh()
				st := h.Sink.Stats()
				return st.Saved, st.Dropped[storage.DropQueueFull], c.counters.Lost(), c.counters.Limited()
			}
			// The datagrams that found the hook attached are settled by
			// now (benchHarness waited 20 ms after the last one); one sent
			// before it attached is in no count, so only what the loop
			// sends is accounted for.
			s0, q0, l0, m0 := accounted()
			before := s0
			start := time.Now()
			for b.Loop() {
				conn.WriteTo([]byte("x"), to)
			}
			sent := s0 + q0 + l0 + m0 + uint64(b.N)
			// Let the reader drain what the kernel handed over.
			var saved, queueFull, lost, limited uint64
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
				if saved, queueFull, lost, limited = accounted(); saved+queueFull+lost+limited >= sent {
					break
				}
			}
			elapsed := time.Since(start)
			if got := saved + queueFull + lost + limited; got != sent {
				b.Fatalf("sent %d datagrams (with the earlier ones), accounted for %d (saved %d, queue_full %d, lost %d, limited %d)", sent, got, saved, queueFull, lost, limited)
			}
			b.ReportMetric(float64(saved-before)/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(lost), "lost")
			b.ReportMetric(float64(limited), "limited")
			b.ReportMetric(float64(queueFull), "queue_full")
		})
	}
}

// BenchmarkDecodeToLogRecord is the Go side of one drop event, without the
// kernel: the raw record as the ring buffer hands it over (IPv4, no
// stack) decoded, symbolized, attributed and saved into a sink whose
// batcher hands 512-record batches to a consumer that does nothing.
// cpu-events/s divides the events by the CPU time the process used (both
// goroutines), i.e. events per second per core.
func BenchmarkDecodeToLogRecord(b *testing.B) {
	var ev bpfDropEvent
	ev.Hdr.Pid, ev.Hdr.Tgid, ev.Hdr.TimestampNs = 1234, 1234, 1
	copy(ev.Hdr.Comm[:], []int8{'c', 'u', 'r', 'l'})
	ev.Reason, ev.Len, ev.L3Proto, ev.L4Proto, ev.IpVersion = 3, 29, 0x0800, 17, 4
	ev.Sport, ev.Dport, ev.Ifindex, ev.Netns = 40000, 9, 1, 4026531840
	copy(ev.Saddr[:], []byte{127, 0, 0, 1})
	copy(ev.Daddr[:], []byte{127, 0, 0, 1})
	copy(ev.Ifname[:], []int8{'l', 'o'})
	c := &dropwatchCollector{cfg: &Config{}, logger: zap.NewNop(), drops: map[uint32]uint64{}}
	reasons := map[uint64]string{3: "NO_SOCKET"}
	c.reasons.Store(&reasons)
	if syms, err := ksym.Shared(); err == nil {
		c.syms = syms
		if name, _, ok := syms.Resolve(0xffffffff81000000); ok {
			b.Logf("symbolizing against the running kernel's table (%d symbols, first %s)", syms.Len(), name)
		}
		ev.Location = 0xffffffff81000000 + 0x1a
	} else {
		c.syms = &ksym.Table{}
	}
	raw := unsafe.Slice((*byte)(unsafe.Pointer(&ev)), eventMinLen)

	sink := storage.NewSink(consumertest.NewNop(), storage.Options{QueueSize: 1 << 20, BatchSize: 512, FlushInterval: 100 * time.Millisecond}, zap.NewNop())
	sink.Start()
	c.storage = sink.For("event")
	var in bpfDropEvent
	handle := func(raw []byte) {
		if err := bpf.Decode(raw, &in, eventMinLen); err != nil {
			b.Fatal(err)
		}
		_ = c.storage.Save("dropwatch", c.container(&in).ID, bpf.WallTime(in.Hdr.TimestampNs), c.decode(&in))
	}
	cpu0 := cpuTime()
	start := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		handle(raw)
	}
	if err := sink.Shutdown(context.Background()); err != nil {
		b.Fatal(err)
	}
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	st := sink.Stats()
	if st.Emitted != uint64(b.N) {
		b.Fatalf("emitted %d of %d", st.Emitted, b.N)
	}
	b.ReportMetric(float64(st.Emitted)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(st.Emitted)/cpu.Seconds(), "cpu-events/s")
}

// cpuTime is the CPU time this process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
