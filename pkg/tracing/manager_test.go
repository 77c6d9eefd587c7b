package tracing

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/metric"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/storage"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeTracer is a scriptable collector: start decides what each Start call does.
type fakeTracer struct {
	mu     sync.Mutex
	calls  []time.Time
	start  func(ctx context.Context, call int) error
	update func() ([]*metric.Data, error)
}

func (f *fakeTracer) Start(ctx context.Context) error {
	f.mu.Lock()
	f.calls = append(f.calls, time.Now())
	n := len(f.calls)
	f.mu.Unlock()
	return f.start(ctx, n)
}

func (f *fakeTracer) Update() ([]*metric.Data, error) { return f.update() }

func (f *fakeTracer) callTimes() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.calls...)
}

var testSeq atomic.Int64

// register registers a collector under a fresh name for this test only.
func register(t *testing.T, factory Factory, opts ...Option) string {
	t.Helper()
	name := fmt.Sprintf("test_%d", testSeq.Add(1))
	RegisterEventTracing(name, factory, append([]Option{WithDescription("test collector")}, opts...)...)
	t.Cleanup(func() { Unregister(name) })
	return name
}

func registerTracer(t *testing.T, interval time.Duration, flag Flag, opts ...Option) (string, *fakeTracer) {
	f := &fakeTracer{
		start:  func(ctx context.Context, _ int) error { <-ctx.Done(); return ctx.Err() },
		update: func() ([]*metric.Data, error) { return nil, nil },
	}
	name := register(t, func(Settings) (*EventTracingAttr, error) {
		return &EventTracingAttr{TracingData: f, Interval: interval, Flag: flag}, nil
	}, opts...)
	return name, f
}

func newManager(t *testing.T, names ...string) *Manager {
	t.Helper()
	sink := storage.NewSink(&consumertest.LogsSink{}, storage.Options{}, zaptest.NewLogger(t))
	sink.Start()
	t.Cleanup(func() { require.NoError(t, sink.Shutdown(context.Background())) })
	var enabled []Enabled
	for _, n := range names {
		enabled = append(enabled, Enabled{Name: n})
	}
	m, err := NewManager(zaptest.NewLogger(t), sink, enabled)
	require.NoError(t, err)
	return m
}

func statusOf(m *Manager, name string) Status {
	for _, s := range m.Status() {
		if s.Name == name {
			return s
		}
	}
	return Status{}
}

func shutdown(t *testing.T, m *Manager) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, m.Shutdown(ctx))
}

func TestStartRunsAgainAfterInterval(t *testing.T) {
	const interval = 30 * time.Millisecond
	name, f := registerTracer(t, interval, FlagTracing)
	f.start = func(context.Context, int) error { return nil } // returns at once, every time
	m := newManager(t, name)
	m.Start()
	require.Eventually(t, func() bool { return len(f.callTimes()) >= 4 }, 5*time.Second, 5*time.Millisecond)
	shutdown(t, m)

	calls := f.callTimes()
	for i := 1; i < len(calls); i++ {
		assert.GreaterOrEqual(t, calls[i].Sub(calls[i-1]), interval, "call %d came too soon", i)
	}
	s := statusOf(m, name)
	assert.Equal(t, uint64(len(calls)-1), s.Restarts)
	assert.Equal(t, StateStopped, s.State)
}

func TestErrorReturnIsRestartedAndRecorded(t *testing.T) {
	name, f := registerTracer(t, 10*time.Millisecond, FlagTracing)
	f.start = func(ctx context.Context, call int) error {
		if call == 1 {
			return errors.New("probe went away")
		}
		<-ctx.Done()
		return nil
	}
	m := newManager(t, name)
	m.Start()
	require.Eventually(t, func() bool { return len(f.callTimes()) == 2 }, 5*time.Second, 5*time.Millisecond)
	s := statusOf(m, name)
	assert.Equal(t, StateActive, s.State)
	assert.Equal(t, "probe went away", s.LastError)
	assert.Equal(t, uint64(1), s.Restarts)
	shutdown(t, m)
}

func TestPanicIsRecoveredAndOthersKeepRunning(t *testing.T) {
	bad, fb := registerTracer(t, 10*time.Millisecond, FlagTracing)
	fb.start = func(ctx context.Context, call int) error {
		if call <= 2 {
			var m map[string]int
			m["boom"]++ // nil map write: a real runtime panic
		}
		<-ctx.Done()
		return nil
	}
	good, fg := registerTracer(t, 10*time.Millisecond, FlagTracing)
	m := newManager(t, bad, good)
	m.Start()
	require.Eventually(t, func() bool { return len(fb.callTimes()) == 3 }, 5*time.Second, 5*time.Millisecond)

	s := statusOf(m, bad)
	assert.Equal(t, uint64(2), s.Panics)
	assert.Equal(t, uint64(2), s.Restarts)
	assert.Contains(t, s.LastError, "assignment to entry in nil map")
	assert.Contains(t, s.LastError, "manager_test.go", "the stack is kept")
	assert.Len(t, fg.callTimes(), 1, "the healthy collector was never disturbed")
	assert.Equal(t, StateActive, statusOf(m, good).State)
	shutdown(t, m)
}

func TestNotSupportedFromStartMakesInactive(t *testing.T) {
	name, f := registerTracer(t, 5*time.Millisecond, FlagTracing|FlagMetric)
	f.start = func(context.Context, int) error { return NotSupported("no tracepoint skb/kfree_skb") }
	updates := atomic.Int32{}
	f.update = func() ([]*metric.Data, error) { updates.Add(1); return nil, nil }
	m := newManager(t, name)
	m.Start()
	require.Eventually(t, func() bool { return statusOf(m, name).State == StateInactive }, 5*time.Second, 5*time.Millisecond)
	time.Sleep(50 * time.Millisecond) // ten intervals: it must not run again
	assert.Len(t, f.callTimes(), 1)
	s := statusOf(m, name)
	assert.Equal(t, "not supported: no tracepoint skb/kfree_skb", s.Reason)

	m.Collect(context.Background(), metric.NewBuilder("test", ""))
	assert.Zero(t, updates.Load(), "an inactive collector is not updated")
	shutdown(t, m)
	assert.Equal(t, StateInactive, statusOf(m, name).State, "shutdown keeps the reason it was off")
}

func TestFactoryOutcomes(t *testing.T) {
	unsupported := register(t, func(Settings) (*EventTracingAttr, error) { return nil, NotSupported("cgroup v1 only") })
	failing := register(t, func(Settings) (*EventTracingAttr, error) { return nil, errors.New("bad knob") })
	panicking := register(t, func(Settings) (*EventTracingAttr, error) { panic("factory bug") })
	noFlag := register(t, func(Settings) (*EventTracingAttr, error) { return &EventTracingAttr{TracingData: &fakeTracer{}}, nil })
	tinyInterval := register(t, func(Settings) (*EventTracingAttr, error) {
		return &EventTracingAttr{TracingData: &fakeTracer{}, Interval: 10, Flag: FlagTracing}, nil
	})
	notCollector := register(t, func(Settings) (*EventTracingAttr, error) {
		return &EventTracingAttr{TracingData: struct{}{}, Flag: FlagMetric}, nil
	})
	healthy, f := registerTracer(t, time.Second, FlagTracing)

	m := newManager(t, unsupported, failing, panicking, noFlag, tinyInterval, notCollector, healthy)
	m.Start()
	want := map[string]struct {
		state  State
		reason string
	}{
		unsupported:  {StateInactive, "not supported: cgroup v1 only"},
		failing:      {StateFailed, "bad knob"},
		panicking:    {StateFailed, "factory panicked: factory bug"},
		noFlag:       {StateFailed, "want FlagTracing, FlagMetric or both"},
		tinyInterval: {StateFailed, "Interval 10ns is below 1ms"},
		notCollector: {StateFailed, "has no Update() ([]*metric.Data, error) method"},
		healthy:      {StateActive, ""},
	}
	for name, w := range want {
		s := statusOf(m, name)
		assert.Equal(t, w.state, s.State, name)
		assert.Contains(t, s.Reason, w.reason, name)
	}
	require.Eventually(t, func() bool { return len(f.callTimes()) == 1 }, 5*time.Second, 5*time.Millisecond)
	shutdown(t, m)
}

func TestShutdownReturnsAtDeadlineNamingStuckCollector(t *testing.T) {
	name, f := registerTracer(t, time.Second, FlagTracing)
	release := make(chan struct{})
	f.start = func(context.Context, int) error { <-release; return nil } // ignores ctx
	m := newManager(t, name)
	m.Start()
	require.Eventually(t, func() bool { return len(f.callTimes()) == 1 }, 5*time.Second, 5*time.Millisecond)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	begin := time.Now()
	err := m.Shutdown(ctx)
	require.Error(t, err)
	assert.Less(t, time.Since(begin), 2*time.Second)
	assert.Contains(t, err.Error(), name)
	assert.ErrorIs(t, err, context.DeadlineExceeded)

	close(release) // let the goroutine end so the leak check passes
	shutdown(t, m)
}

func TestCollectIsolatesFailures(t *testing.T) {
	descs := WithMetrics(metric.Desc{Name: "x", Kind: metric.Gauge, Unit: "1", Description: "x"})
	good, fg := registerTracer(t, time.Second, FlagMetric, descs)
	fg.update = func() ([]*metric.Data, error) { return []*metric.Data{metric.NewGaugeData("x", 7, "", nil)}, nil }
	partial, fp := registerTracer(t, time.Second, FlagMetric, descs)
	fp.update = func() ([]*metric.Data, error) {
		return []*metric.Data{metric.NewGaugeData("x", 1, "", nil)}, errors.New("one file unreadable")
	}
	panicking, fpan := registerTracer(t, time.Second, FlagMetric, descs)
	fpan.update = func() ([]*metric.Data, error) { panic("update bug") }
	slow, fs := registerTracer(t, time.Second, FlagMetric, descs)
	unblock := make(chan struct{})
	slowCalls := atomic.Int32{}
	fs.update = func() ([]*metric.Data, error) {
		slowCalls.Add(1)
		<-unblock
		return []*metric.Data{metric.NewGaugeData("x", 3, "", nil)}, nil
	}

	m := newManager(t, good, partial, panicking, slow)
	b := metric.NewBuilder("test", "")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	m.Collect(ctx, b)
	cancel()
	md := b.Emit()
	assert.Equal(t, map[string]float64{"kernel." + good + ".x": 7, "kernel." + partial + ".x": 1}, gaugeValues(md, "kernel.test_"))

	assert.Equal(t, uint64(1), statusOf(m, partial).UpdateErrors)
	assert.Equal(t, "one file unreadable", statusOf(m, partial).LastError)
	assert.Equal(t, uint64(1), statusOf(m, panicking).Panics)
	assert.Equal(t, uint64(1), statusOf(m, slow).UpdateErrors, "the overrun is counted")

	// The slow Update is still running: the next round skips it instead of piling up.
	ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	m.Collect(ctx, b)
	cancel()
	assert.Equal(t, int32(1), slowCalls.Load())
	assert.Equal(t, uint64(2), statusOf(m, slow).UpdateErrors)
	close(unblock)
	shutdown(t, m)
}

func TestCollectAddsSelfMetrics(t *testing.T) {
	name, _ := registerTracer(t, time.Second, FlagTracing)
	off := register(t, func(Settings) (*EventTracingAttr, error) { return nil, NotSupported("no BTF") })
	m := newManager(t, name, off)
	m.Start()
	b := metric.NewBuilder("test", "")
	m.Collect(context.Background(), b)
	md := b.Emit()
	shutdown(t, m)

	active := map[string]float64{}
	for _, rm := range md.ResourceMetrics().All() {
		for _, sm := range rm.ScopeMetrics().All() {
			for _, mt := range sm.Metrics().All() {
				if mt.Name() != "kernel.receiver.collector.active" {
					continue
				}
				for _, dp := range mt.Gauge().DataPoints().All() {
					c, _ := dp.Attributes().Get(AttrCollector)
					active[c.Str()] = dp.DoubleValue()
				}
			}
		}
	}
	assert.Equal(t, map[string]float64{name: 1, off: 0}, active)
}

func TestTwoManagersShareNoState(t *testing.T) {
	// The factory runs once per manager: each receiver owns its collector.
	var created atomic.Int32
	var mu sync.Mutex
	instances := map[*fakeTracer]bool{}
	name := register(t, func(Settings) (*EventTracingAttr, error) {
		created.Add(1)
		f := &fakeTracer{start: func(ctx context.Context, _ int) error { <-ctx.Done(); return nil }}
		mu.Lock()
		instances[f] = true
		mu.Unlock()
		return &EventTracingAttr{TracingData: f, Interval: time.Second, Flag: FlagTracing}, nil
	})
	a, b := newManager(t, name), newManager(t, name)
	a.Start()
	b.Start()
	shutdown(t, a)
	assert.Equal(t, int32(2), created.Load())
	assert.Len(t, instances, 2)
	assert.Equal(t, StateStopped, statusOf(a, name).State)
	assert.Equal(t, StateActive, statusOf(b, name).State, "stopping one receiver leaves the other running")
	shutdown(t, b)
}

func TestRegistrationErrorsPanic(t *testing.T) {
	f := func(Settings) (*EventTracingAttr, error) { return nil, nil }
	type undocumented struct {
		Field int `json:"field"`
	}
	cases := map[string]func(){
		"bad name":       func() { RegisterEventTracing("Bad-Name", f, WithDescription("x")) },
		"reserved":       func() { RegisterEventTracing(SelfName, f, WithDescription("x")) },
		"no description": func() { RegisterEventTracing("nodesc", f) },
		"undocumented field": func() {
			RegisterEventTracing("undoc", f, WithDescription("x"), WithEvent("undoc", undocumented{}, "an event"))
		},
		"metric without unit": func() {
			RegisterEventTracing("nounit", f, WithDescription("x"), WithMetrics(metric.Desc{Name: "m", Description: "m"}))
		},
	}
	for name, register := range cases {
		t.Run(name, func(t *testing.T) { assert.Panics(t, register) })
	}
	name := register(t, f)
	assert.PanicsWithValue(t, fmt.Sprintf("tracing.RegisterEventTracing(%q): registered twice", name), func() {
		RegisterEventTracing(name, f, WithDescription("again"))
	})
}

func gaugeValues(md pmetric.Metrics, prefix string) map[string]float64 {
	out := map[string]float64{}
	for _, rm := range md.ResourceMetrics().All() {
		for _, sm := range rm.ScopeMetrics().All() {
			for _, m := range sm.Metrics().All() {
				if !strings.HasPrefix(m.Name(), prefix) || m.Type() != pmetric.MetricTypeGauge {
					continue
				}
				for _, dp := range m.Gauge().DataPoints().All() {
					out[m.Name()] = dp.DoubleValue()
				}
			}
		}
	}
	return out
}
