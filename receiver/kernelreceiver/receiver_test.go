//go:build linux

package kernelreceiver

import (
	"context"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/container"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/testenv"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/tracing"
	"github.com/otelcol-kernel/otelcol-kernel/receiver/kernelreceiver/internal/metadata"
)

// pingTracer saves one event each time it starts, then waits for shutdown.
type pingTracer struct{ s tracing.Settings }

type pingEvent struct {
	Seq int `json:"seq" doc:"sequence number"`
}

func (p *pingTracer) Start(ctx context.Context) error {
	if err := p.s.Storage.Save("test.ping", "", time.Now(), pingEvent{Seq: 1}); err != nil {
		return err
	}
	<-ctx.Done()
	return nil
}

func registerPing(t *testing.T) {
	tracing.RegisterEventTracing("rcvtest_ping", func(s tracing.Settings) (*tracing.EventTracingAttr, error) {
		return &tracing.EventTracingAttr{TracingData: &pingTracer{s}, Interval: time.Second, Flag: tracing.FlagTracing}, nil
	}, tracing.WithDescription("test"), tracing.WithEvent("test.ping", pingEvent{}, "a ping"))
	t.Cleanup(func() { tracing.Unregister("rcvtest_ping") })
}

func TestOneInstanceServesBothPipelines(t *testing.T) {
	registerPing(t)
	f := NewFactory()
	cfg := f.CreateDefaultConfig().(*Config)
	cfg.CollectionInterval = 100 * time.Millisecond
	set := receivertest.NewNopSettings(metadata.Type)
	logs, metrics := &consumertest.LogsSink{}, &consumertest.MetricsSink{}
	lr, err := f.CreateLogs(context.Background(), set, cfg, logs)
	require.NoError(t, err)
	mr, err := f.CreateMetrics(context.Background(), set, cfg, metrics)
	require.NoError(t, err)
	require.Same(t, lr, mr, "one receiver instance per component ID")

	host := componenttest.NewNopHost()
	require.NoError(t, lr.Start(context.Background(), host))
	require.NoError(t, mr.Start(context.Background(), host)) // the second Start is a no-op

	// The other collectors run too and may save events of their own: count pings.
	require.Eventually(t, func() bool { return pings(logs) == 1 }, 5*time.Second, 10*time.Millisecond)

	require.Eventually(t, func() bool { return len(metrics.AllMetrics()) >= 2 }, 5*time.Second, 10*time.Millisecond)
	names := metricNames(metrics.AllMetrics()[0])
	assert.Contains(t, names, "kernel.loadavg.load1")
	assert.Contains(t, names, "kernel.receiver.collector.active")

	require.NoError(t, lr.Shutdown(context.Background()))
	require.NoError(t, mr.Shutdown(context.Background()))
	assert.Equal(t, 1, pings(logs), "the tracer was not started twice")

	again, err := f.CreateLogs(context.Background(), set, cfg, logs)
	require.NoError(t, err)
	assert.NotSame(t, lr, again, "a shut-down instance is not reused")
	require.NoError(t, again.Shutdown(context.Background()))
}

func TestLogsOnlyAndMetricsOnly(t *testing.T) {
	registerPing(t)
	f := NewFactory()
	cfg := f.CreateDefaultConfig().(*Config)
	cfg.CollectionInterval = 100 * time.Millisecond

	logs := &consumertest.LogsSink{}
	lr, err := f.CreateLogs(context.Background(), receivertest.NewNopSettings(metadata.Type), cfg, logs)
	require.NoError(t, err)
	require.NoError(t, lr.Start(context.Background(), componenttest.NewNopHost()))
	require.Eventually(t, func() bool { return pings(logs) == 1 }, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, lr.Shutdown(context.Background()))

	metrics := &consumertest.MetricsSink{}
	mr, err := f.CreateMetrics(context.Background(), receivertest.NewNopSettings(metadata.Type), cfg, metrics)
	require.NoError(t, err)
	require.NoError(t, mr.Start(context.Background(), componenttest.NewNopHost()))
	require.Eventually(t, func() bool { return len(metrics.AllMetrics()) >= 1 }, 5*time.Second, 10*time.Millisecond)
	require.NoError(t, mr.Shutdown(context.Background()))
	assert.Contains(t, metricNames(metrics.AllMetrics()[0]), "kernel.loadavg.load1")
}

func TestTwoReceiversAreIndependent(t *testing.T) {
	f := NewFactory()
	cfg := f.CreateDefaultConfig().(*Config)
	cfg.CollectionInterval = 100 * time.Millisecond
	setA, setB := receivertest.NewNopSettings(metadata.Type), receivertest.NewNopSettings(metadata.Type)
	setA.ID = component.MustNewIDWithName("kernel", "a")
	setB.ID = component.MustNewIDWithName("kernel", "b")
	sinkA, sinkB := &consumertest.MetricsSink{}, &consumertest.MetricsSink{}
	ra, err := f.CreateMetrics(context.Background(), setA, cfg, sinkA)
	require.NoError(t, err)
	rb, err := f.CreateMetrics(context.Background(), setB, cfg, sinkB)
	require.NoError(t, err)
	require.NotSame(t, ra, rb)
	require.NoError(t, ra.Start(context.Background(), componenttest.NewNopHost()))
	require.NoError(t, rb.Start(context.Background(), componenttest.NewNopHost()))
	require.NoError(t, ra.Shutdown(context.Background()))

	// b keeps collecting after a stopped.
	n := len(sinkB.AllMetrics())
	require.Eventually(t, func() bool { return len(sinkB.AllMetrics()) >= n+2 }, 5*time.Second, 10*time.Millisecond)
	stoppedAt := len(sinkA.AllMetrics())
	time.Sleep(300 * time.Millisecond)
	assert.Equal(t, stoppedAt, len(sinkA.AllMetrics()), "a stopped for good")
	require.NoError(t, rb.Shutdown(context.Background()))

	// In one collector the two would otherwise send identical Resources,
	// scopes and attributes: the scope names the receiver.
	for sink, want := range map[*consumertest.MetricsSink]string{sinkA: "kernel/a", sinkB: "kernel/b"} {
		for _, md := range sink.AllMetrics() {
			for _, rm := range md.ResourceMetrics().All() {
				for _, sm := range rm.ScopeMetrics().All() {
					v, ok := sm.Scope().Attributes().Get(ScopeAttrComponentID)
					require.True(t, ok, "scope without %s", ScopeAttrComponentID)
					require.Equal(t, want, v.Str())
				}
			}
		}
	}
}

// pings counts the kernel.test.ping events in sink.
func pings(sink *consumertest.LogsSink) int {
	n := 0
	for _, ld := range sink.AllLogs() {
		for _, rl := range ld.ResourceLogs().All() {
			for _, sl := range rl.ScopeLogs().All() {
				for _, lr := range sl.LogRecords().All() {
					if lr.EventName() == "kernel.test.ping" {
						n++
					}
				}
			}
		}
	}
	return n
}

func metricNames(md pmetric.Metrics) []string {
	var out []string
	for _, rm := range md.ResourceMetrics().All() {
		for _, sm := range rm.ScopeMetrics().All() {
			for _, m := range sm.Metrics().All() {
				out = append(out, m.Name())
			}
		}
	}
	return out
}

// TestBPFProgramSelfTelemetry: every attached program is reported with the
// hook candidate it attached through, and with its kernel run count and
// time while kernel.bpf_stats_enabled is on.
func TestBPFProgramSelfTelemetry(t *testing.T) {
	testenv.Sysctl(t, "kernel/bpf_stats_enabled", "1")
	f := NewFactory()
	cfg := f.CreateDefaultConfig().(*Config)
	cfg.CollectionInterval = 200 * time.Millisecond
	metrics := &consumertest.MetricsSink{}
	r, err := f.CreateMetrics(context.Background(), receivertest.NewNopSettings(metadata.Type), cfg, metrics)
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	defer func() { require.NoError(t, r.Shutdown(context.Background())) }()

	// Drops for dropwatch's program to run on: UDP to a closed port.
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer conn.Close()
	var attach string
	var runs float64
	require.Eventually(t, func() bool {
		_, _ = conn.WriteTo([]byte("x"), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9})
		all := metrics.AllMetrics()
		if len(all) == 0 {
			return false
		}
		attach, runs = "", 0
		forEachPoint(all[len(all)-1], func(name string, attrs map[string]any, v float64) {
			if attrs["kernel.collector.name"] != "dropwatch" {
				return
			}
			switch name {
			case "kernel.receiver.bpf.program.attached":
				attach = attrs["kernel.bpf.attach_point"].(string)
			case "kernel.receiver.bpf.program.runs":
				runs = v
			}
		})
		return attach != "" && runs > 0
	}, 10*time.Second, 100*time.Millisecond, "attach %q runs %v", attach, runs)
	assert.Contains(t, []string{"tp_btf:kfree_skb_btf", "tracepoint:skb/kfree_skb"}, attach)
}

func forEachPoint(md pmetric.Metrics, f func(name string, attrs map[string]any, v float64)) {
	for _, rm := range md.ResourceMetrics().All() {
		for _, sm := range rm.ScopeMetrics().All() {
			for _, m := range sm.Metrics().All() {
				switch m.Type() {
				case pmetric.MetricTypeGauge:
					for _, dp := range m.Gauge().DataPoints().All() {
						f(m.Name(), dp.Attributes().AsRaw(), dp.DoubleValue())
					}
				case pmetric.MetricTypeSum:
					for _, dp := range m.Sum().DataPoints().All() {
						f(m.Name(), dp.Attributes().AsRaw(), dp.DoubleValue())
					}
				}
			}
		}
	}
}

// TestEventsAndSelfTelemetryOfContainerAttribution runs the whole receiver:
// a drop from a process in a docker container's cgroups arrives on that
// container's Resource (the sink asks the receiver's resolver for the
// runtime), and the resolver reports itself in kernel.receiver.container.*.
func TestEventsAndSelfTelemetryOfContainerAttribution(t *testing.T) {
	testenv.RequireRoot(t, "loading BPF programs and making cgroups")
	f := NewFactory()
	cfg := f.CreateDefaultConfig().(*Config)
	cfg.CollectionInterval = 200 * time.Millisecond
	cfg.EventQueue.FlushInterval = 20 * time.Millisecond
	logs, metrics := &consumertest.LogsSink{}, &consumertest.MetricsSink{}
	set := receivertest.NewNopSettings(metadata.Type)
	lr, err := f.CreateLogs(context.Background(), set, cfg, logs)
	require.NoError(t, err)
	mr, err := f.CreateMetrics(context.Background(), set, cfg, metrics)
	require.NoError(t, err)
	require.NoError(t, lr.Start(context.Background(), componenttest.NewNopHost()))
	require.NoError(t, mr.Start(context.Background(), componenttest.NewNopHost()))
	defer func() {
		require.NoError(t, lr.Shutdown(context.Background()))
		require.NoError(t, mr.Shutdown(context.Background()))
	}()

	id := testenv.RandomContainerID()
	cg := testenv.NewContainerCgroups(t, "docker/"+id)
	var pid int
	var resource map[string]any
	require.Eventually(t, func() bool {
		// Port 9 (discard) on loopback: nothing listens, so NO_SOCKET drops.
		pid = testenv.RunUDPSender(t, 9, 1, cg.Dirs...)
		time.Sleep(100 * time.Millisecond)
		for _, ld := range logs.AllLogs() {
			for _, rl := range ld.ResourceLogs().All() {
				for _, sl := range rl.ScopeLogs().All() {
					for _, rec := range sl.LogRecords().All() {
						if p, ok := rec.Attributes().Get("process.pid"); ok && rec.EventName() == "kernel.packet.drop" && p.Int() == int64(pid) {
							resource = rl.Resource().Attributes().AsRaw()
							return true
						}
					}
				}
			}
		}
		return false
	}, 10*time.Second, 50*time.Millisecond, "a drop event from the container's process")
	assert.Equal(t, map[string]any{"container.id": id, "container.runtime.name": "docker", "os.type": "linux", "os.version": container.KernelRelease()}, resource)

	self := map[string]float64{}
	attached := map[string]string{}
	require.Eventually(t, func() bool {
		all := metrics.AllMetrics()
		if len(all) == 0 {
			return false
		}
		forEachPoint(all[len(all)-1], func(name string, attrs map[string]any, v float64) {
			switch {
			case name == "kernel.receiver.container.lookups":
				self[name+"."+attrs["kernel.container.lookup.result"].(string)] = v
			case name == "kernel.receiver.bpf.program.attached" && attrs["kernel.collector.name"] == "receiver":
				attached[attrs["kernel.bpf.hook"].(string)] = attrs["kernel.bpf.attach_point"].(string)
			default:
				self[name] = v
			}
		})
		return self["kernel.receiver.container.lookups.hit"] > 0
	}, 10*time.Second, 100*time.Millisecond, "self telemetry %v", self)
	assert.Equal(t, 1.0, self["kernel.receiver.container.tracked"])
	assert.Positive(t, self["kernel.receiver.container.cache.entries"])
	assert.GreaterOrEqual(t, self["kernel.receiver.container.walks"], 1.0, "the walk at start")
	assert.Equal(t, map[string]string{"cgroup_mkdir": "tp_btf:mkdir_btf", "cgroup_rmdir": "tp_btf:rmdir_btf"}, attached)
}

// Without the cgroup hooks, attribution still works by walking.
func TestContainerAttributionWithoutTracking(t *testing.T) {
	testenv.RequireRoot(t, "loading BPF programs and making cgroups")
	f := NewFactory()
	cfg := f.CreateDefaultConfig().(*Config)
	cfg.Containers.TrackCgroups = false
	cfg.EventQueue.FlushInterval = 20 * time.Millisecond
	logs := &consumertest.LogsSink{}
	r, err := f.CreateLogs(context.Background(), receivertest.NewNopSettings(metadata.Type), cfg, logs)
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	defer func() { require.NoError(t, r.Shutdown(context.Background())) }()
	kr := r.(*kernelReceiver)
	require.NotNil(t, kr.containers)
	assert.Nil(t, kr.watcher)

	id := testenv.RandomContainerID()
	cg := testenv.NewContainerCgroups(t, "kubepods/burstable/pod"+testenv.RandomPodUID()+"/crio-"+id)
	ids := container.CgroupIDs{}
	for _, dir := range cg.Dirs {
		var st syscall.Stat_t
		require.NoError(t, syscall.Stat(dir, &st))
		ids.Unified, ids.Memory, ids.CPU = st.Ino, st.Ino, st.Ino // whichever hierarchy it is in, one matches
		require.Eventually(t, func() bool { return kr.containers.Resolve(ids).ID == id }, 5*time.Second, 100*time.Millisecond,
			"found by walking %s", dir)
	}
	assert.False(t, kr.containers.Stats().Tracked)
	assert.Positive(t, kr.containers.Stats().Lookups[container.LookupWalk])
}

// burstTracer saves n events as fast as it can, then waits for shutdown.
type burstTracer struct {
	s tracing.Settings
	n int
}

func (b *burstTracer) Start(ctx context.Context) error {
	for i := range b.n {
		for b.s.Storage.Save("test.burst", "", time.Now(), pingEvent{Seq: i}) != nil {
			time.Sleep(time.Millisecond) // queue full: let the pipeline catch up
		}
	}
	<-ctx.Done()
	return nil
}

// asyncConsumer takes each batch over, as an asynchronous processor does:
// it empties it on another goroutine right after ConsumeLogs returns.
type asyncConsumer struct {
	mu    sync.Mutex
	count int
	wg    sync.WaitGroup
}

func (a *asyncConsumer) Capabilities() consumer.Capabilities {
	return consumer.Capabilities{MutatesData: true}
}
func (a *asyncConsumer) ConsumeLogs(_ context.Context, ld plog.Logs) error {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		n := ld.LogRecordCount()
		ld.ResourceLogs().RemoveIf(func(plog.ResourceLogs) bool { return true })
		a.mu.Lock()
		a.count += n
		a.mu.Unlock()
	}()
	return nil
}

// The standard receiver telemetry counts each record once, taken before the
// batch is handed on: an asynchronous consumer that empties the batch at
// once neither makes the count low nor (under -race) races with it.
func TestAcceptedRecordsAreCountedBeforeHandOff(t *testing.T) {
	const n = 5000
	tracing.RegisterEventTracing("rcvtest_burst", func(s tracing.Settings) (*tracing.EventTracingAttr, error) {
		return &tracing.EventTracingAttr{TracingData: &burstTracer{s, n}, Interval: time.Hour, Flag: tracing.FlagTracing}, nil
	}, tracing.WithDescription("test"), tracing.WithEvent("test.burst", pingEvent{}, "a burst"))
	t.Cleanup(func() { tracing.Unregister("rcvtest_burst") })

	tt := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tt.Shutdown(context.Background()) })
	set := receivertest.NewNopSettings(metadata.Type)
	set.TelemetrySettings = tt.NewTelemetrySettings()
	f := NewFactory()
	cfg := f.CreateDefaultConfig().(*Config)
	for _, name := range tracing.Names() { // only the burst saves events
		if cc, _ := cfg.Collector(name); name != "rcvtest_burst" {
			cc.Enabled = false
		}
	}
	next := &asyncConsumer{}
	r, err := f.CreateLogs(context.Background(), set, cfg, next)
	require.NoError(t, err)
	require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
	require.Eventually(t, func() bool {
		next.mu.Lock()
		defer next.mu.Unlock()
		return next.count == n
	}, 20*time.Second, 10*time.Millisecond)
	require.NoError(t, r.Shutdown(context.Background()))
	next.wg.Wait()

	m, err := tt.GetMetric("otelcol_receiver_accepted_log_records")
	require.NoError(t, err)
	var accepted int64
	for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
		accepted += dp.Value
	}
	assert.Equal(t, int64(n), accepted)
}
