package dropwatch

import (
	"net"
	"testing"
	"time"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/bpf"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/testenv"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/tracing/tracingtest"
)

// benchHarness runs dropwatch filtered to one closed UDP port, with the
// kernel's BPF statistics on, and returns what the benchmark sends to.
func benchHarness(b *testing.B, cfg *Config, opts bpf.Options) (*tracingtest.Harness, net.PacketConn, *net.UDPAddr) {
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
	for h.Logs.LogRecordCount() == 0 { // attached once a drop shows up
		if time.Now().After(deadline) {
			b.Fatal("dropwatch never reported a drop")
		}
		conn.WriteTo([]byte("x"), to)
		time.Sleep(20 * time.Millisecond)
	}
	return h, conn, to
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
// events. One op is one dropped packet.
func BenchmarkKernelCost(b *testing.B) {
	for _, tc := range []struct {
		name string
		opts bpf.Options
	}{
		{"tp_btf", bpf.Options{Force: nil}},
		{"tracepoint", bpf.Options{Force: map[string]bpf.Kind{"kfree_skb": bpf.Tracepoint}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h, conn, to := benchHarness(b, &Config{}, tc.opts)
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
// LogRecords per second through each event channel, with what was lost
// (buffer full) and limited (cap) reported beside. The cap is off: this is
// the saturation of the BPF → Go → pdata path.
func BenchmarkEventThroughput(b *testing.B) {
	for _, tc := range []struct {
		name string
		opts bpf.Options
	}{
		{"ringbuf", bpf.Options{}},
		{"perfbuf", bpf.Options{PerfBuffer: true}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h, conn, to := benchHarness(b, &Config{}, tc.opts)
			c := h.Attr.TracingData.(*dropwatchCollector)
			before := h.Sink.Stats().Saved
			start := time.Now()
			for b.Loop() {
				conn.WriteTo([]byte("x"), to)
			}
			// Let the reader drain what the kernel handed over.
			want := before + uint64(b.N)
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				if h.Sink.Stats().Saved+c.counters.Lost() >= want {
					break
				}
			}
			elapsed := time.Since(start)
			saved := h.Sink.Stats().Saved - before
			time.Sleep(1100 * time.Millisecond) // the counters refresh every second
			b.ReportMetric(float64(saved)/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(c.counters.Lost()), "lost")
			b.ReportMetric(float64(c.counters.Limited()), "limited")
			b.ReportMetric(float64(h.Sink.Stats().Dropped["queue_full"]), "queue_full")
		})
	}
}
