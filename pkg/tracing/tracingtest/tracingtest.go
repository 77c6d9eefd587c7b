// Package tracingtest runs one registered collector in a test, the way a
// receiver would, and checks that what it emits matches what it declared.
// It is public so that a collector in another module is tested exactly as
// the built-in ones are.
//
//	h := tracingtest.New(t, "netdev", &netdev.Config{...})
//	h.Run(t)                                  // Start in the background until the test ends
//	recs := h.WaitEvents(t, 5*time.Second, 1, func(r tracingtest.Event) bool { ... })
//	data := h.Update(t)                       // Update, checked against the declared metrics
//
// Options take the branches this kernel would not take by itself:
//
//	tracingtest.New(t, "dropwatch", cfg, tracingtest.ForceHook("kfree_skb", bpf.Tracepoint), tracingtest.PerfBuffer())
//
// and Create returns the factory's error instead of failing, for testing
// a collector's config errors.
package tracingtest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.uber.org/zap/zaptest"

	"github.com/otelcol-kernel/otelcol-kernel/internal/cgroupwatch"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/bpf"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/container"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/metric"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/storage"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/tracing"
)

// Harness is one collector created for a test.
type Harness struct {
	Reg  *tracing.Registration
	Attr *tracing.EventTracingAttr
	// Logs receives every batch the collector's events were saved into.
	Logs *consumertest.LogsSink
	Sink *storage.Sink
	// Programs holds the BPF programs the collector attached.
	Programs *tracing.Programs
	// Containers is the collector's container resolver, fed by the cgroup
	// watcher as in a receiver; nil where the host's cgroups cannot be read.
	Containers *container.Resolver
}

// Option changes how the harness creates the collector.
type Option func(*tracing.Settings)

// ForceHook restricts the named hook to candidates of one attach kind, so
// that a test proves the fallback (a classic tracepoint where the kernel
// also has tp_btf, a kprobe where it has both). On a kernel without that
// kind the collector's Start fails with tracing.ErrNotSupported: guard the
// test with testenv.RequireKprobes and the like.
func ForceHook(hook string, kind bpf.Kind) Option {
	return func(s *tracing.Settings) {
		if s.BPF.Force == nil {
			s.BPF.Force = map[string]string{}
		}
		s.BPF.Force[hook] = string(kind)
	}
}

// PerfBuffer makes events travel through the perf buffer, the path of
// kernels without ring buffers (before 5.8), on any kernel.
func PerfBuffer() Option {
	return func(s *tracing.Settings) { s.BPF.PerfBuffer = true }
}

// BPFOptions applies the Force and PerfBuffer choices of o, for tests that
// keep their cases as bpf.Options.
func BPFOptions(o bpf.Options) Option {
	return func(s *tracing.Settings) {
		for hook, kind := range o.Force {
			ForceHook(hook, kind)(s)
		}
		if o.PerfBuffer {
			PerfBuffer()(s)
		}
	}
}

// New creates the registered collector name with cfg (nil means its
// defaults) and an event sink that flushes every 10ms into h.Logs. The sink
// is shut down when the test ends. It fails the test if the factory fails.
func New(t testing.TB, name string, cfg any, opts ...Option) *Harness {
	t.Helper()
	h, err := Create(t, name, cfg, opts...)
	if err != nil {
		t.Fatalf("creating %s: %v", name, err)
	}
	return h
}

// Create is New returning the factory's error rather than failing the
// test: a collector's own checks of its config (a bad regular expression,
// an impossible combination) are tested through it. cfg is passed as
// given, without the receiver's Validate.
func Create(t testing.TB, name string, cfg any, opts ...Option) (*Harness, error) {
	t.Helper()
	reg, ok := tracing.Lookup(name)
	if !ok {
		t.Fatalf("no collector %q registered (missing import?)", name)
	}
	if cfg == nil && reg.DefaultConfig != nil {
		cfg = reg.DefaultConfig()
	}
	logs := &consumertest.LogsSink{}
	containers := newResolver(t)
	// Every saved event whose AttributeWriter (the fast path) disagrees with
	// the reflective mapping fails the test, so the two cannot drift.
	// (Not in benchmarks, which measure the path as the receiver runs it.)
	var checkWriters func(string, error)
	if _, bench := t.(*testing.B); !bench {
		checkWriters = func(event string, err error) { t.Errorf("event %s: %v", event, err) }
	}
	sink := storage.NewSink(logs, storage.Options{QueueSize: 1 << 16, BatchSize: 256, FlushInterval: 10 * time.Millisecond, Containers: containers, CheckWriters: checkWriters}, zaptest.NewLogger(t))
	sink.Start()
	t.Cleanup(func() { _ = sink.Shutdown(context.Background()) })
	programs := tracing.NewPrograms()
	settings := tracing.Settings{
		Name:       name,
		Logger:     zaptest.NewLogger(t).Named(name),
		Storage:    sink.For(string(reg.Type)),
		Config:     cfg,
		Programs:   programs.For(name),
		Containers: containers,
	}
	for _, o := range opts {
		o(&settings)
	}
	attr, err := reg.Factory(settings)
	if err != nil {
		return nil, err
	}
	return &Harness{Reg: reg, Attr: attr, Logs: logs, Sink: sink, Programs: programs, Containers: containers}, nil
}

// newResolver sets up container attribution as a receiver does: a
// resolver over this host's hierarchies, fed by the cgroup watcher (when it
// can attach; otherwise by walking) until the test ends.
func newResolver(t testing.TB) *container.Resolver {
	layout, err := container.ReadLayout("/proc")
	if err != nil {
		t.Logf("no container attribution in this test: %v", err)
		return nil
	}
	r := container.NewResolver(layout, container.Options{})
	// Its programs are the receiver's, not the collector's under test.
	opts := bpf.Options{Programs: tracing.NewPrograms().For(tracing.SelfName)}
	if w, err := cgroupwatch.Start(r, opts, zaptest.NewLogger(t).Named("cgroupwatch")); err != nil {
		t.Logf("cgroups not tracked in this test (found by walking): %v", err)
	} else {
		t.Cleanup(func() { _ = w.Close() })
	}
	r.Refresh()
	return r
}

// Run calls Start in the background. It returns a stop function (also run
// when the test ends) that cancels Start, waits for it, and fails the test
// if Start returned an error other than the cancellation.
func (h *Harness) Run(t testing.TB) (stop func()) {
	t.Helper()
	tracer, ok := h.Attr.TracingData.(tracing.ITracingEvent)
	if !ok {
		t.Fatalf("%s is not a tracing collector", h.Reg.Name)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tracer.Start(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil && !errors.Is(err, context.Canceled) {
					t.Errorf("%s: Start returned %v", h.Reg.Name, err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("%s: Start did not return within 10s of cancellation", h.Reg.Name)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// WaitAttached waits until the collector (after Run) has attached its BPF
// programs, rather than for a guessed time: loading takes a few
// milliseconds on a host and a second or more in an emulated guest.
func (h *Harness) WaitAttached(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for len(h.Programs.List()) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s attached no BPF program within %v", h.Reg.Name, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Update calls Update and fails the test on an error or on a point that
// does not match the collector's declarations.
func (h *Harness) Update(t testing.TB) []*metric.Data {
	t.Helper()
	c, ok := h.Attr.TracingData.(metric.Collector)
	if !ok {
		t.Fatalf("%s is not a metric collector", h.Reg.Name)
	}
	data, err := c.Update()
	if err != nil {
		t.Fatalf("%s: Update: %v", h.Reg.Name, err)
	}
	for _, err := range metric.CheckDeclared(h.Reg.Metrics, data) {
		t.Errorf("%s: %v", h.Reg.Name, err)
	}
	return data
}

// Event is one saved event with the Resource it was saved under.
type Event struct {
	plog.LogRecord
	Resource pcommon.Resource
}

// ContainerID is the container.id of the event's Resource ("" for the host).
func (e Event) ContainerID() string {
	v, ok := e.Resource.Attributes().Get(container.AttrContainerID)
	if !ok {
		return ""
	}
	return v.Str()
}

// Attr returns attribute key as a string ("" if absent).
func (e Event) Attr(key string) string {
	v, ok := e.Attributes().Get(key)
	if !ok {
		return ""
	}
	return v.AsString()
}

// Events returns every event saved so far, in order, each checked against
// the collector's declared events.
func (h *Harness) Events(t testing.TB) []Event {
	t.Helper()
	var out []Event
	for _, ld := range h.Logs.AllLogs() {
		for _, rl := range ld.ResourceLogs().All() {
			for _, sl := range rl.ScopeLogs().All() {
				for _, lr := range sl.LogRecords().All() {
					if err := h.checkDeclared(lr); err != nil {
						t.Errorf("%s: %v", h.Reg.Name, err)
					}
					out = append(out, Event{LogRecord: lr, Resource: rl.Resource()})
				}
			}
		}
	}
	return out
}

// WaitEvents waits until at least n saved events satisfy match (nil matches
// all) and returns those events; it fails the test at the timeout.
func (h *Harness) WaitEvents(t testing.TB, timeout time.Duration, n int, match func(Event) bool) []Event {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var got []Event
		for _, e := range h.Events(t) {
			if match == nil || match(e) {
				got = append(got, e)
			}
		}
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d matching events after %v, want %d; all events: %v", h.Reg.Name, len(got), timeout, n, describe(h.Events(t)))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// undeclaredElementKeys checks the keys inside the elements of an array of
// maps (a slice of structs in the data) against their declarations, which
// storage.Fields names parent[].key.
func undeclaredElementKeys(parent string, v pcommon.Value, declared map[string]bool) []string {
	if v.Type() != pcommon.ValueTypeSlice {
		return nil
	}
	var unknown []string
	for _, el := range v.Slice().All() {
		if el.Type() != pcommon.ValueTypeMap {
			continue
		}
		for k := range el.Map().All() {
			if name := parent + "[]." + k; !declared[name] && !slices.Contains(unknown, name) {
				unknown = append(unknown, name)
			}
		}
	}
	return unknown
}

// SelfMetric returns the value of one of the receiver's self metrics
// (tracing.SelfMetrics: "events.saved", "bpf.program.attached", …) for this
// collector as a receiver would report it, from the harness's event sink,
// the programs the collector attached and its container resolver; labels
// select the point (nil: the point without labels). ok is false when no
// point matches.
func (h *Harness) SelfMetric(name string, labels map[string]string) (value float64, ok bool) {
	status := tracing.Status{Name: h.Reg.Name, Type: h.Reg.Type, State: tracing.StateActive}
	if h.Attr != nil {
		status.Flag = h.Attr.Flag
	}
	data := append(tracing.SelfData([]tracing.Status{status}, h.Sink.Stats(), h.Programs.List()), tracing.ContainerSelfData(h.Containers)...)
	for _, d := range data {
		if d.Name == name && maps.Equal(d.Labels, labels) {
			return d.Value, true
		}
	}
	return 0, false
}

// Point returns the value of the point named name with exactly labels
// (nil: none) among data, as Update returned it.
func Point(data []*metric.Data, name string, labels map[string]string) (value float64, ok bool) {
	for _, d := range data {
		if d.Name == name && maps.Equal(d.Labels, labels) {
			return d.Value, true
		}
	}
	return 0, false
}

func describe(events []Event) []string {
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = fmt.Sprintf("%s %v", e.EventName(), e.Attributes().AsRaw())
	}
	return out
}

// checkDeclared reports an event whose name or attributes were not declared.
func (h *Harness) checkDeclared(lr plog.LogRecord) error {
	for _, ev := range h.Reg.Events {
		if storage.EventNamePrefix+ev.Name != lr.EventName() {
			continue
		}
		declared := map[string]bool{}
		for _, f := range storage.Fields(ev.Data) {
			declared[f.Name] = true
		}
		var unknown []string
		for k, v := range lr.Attributes().All() {
			if k == storage.AttrTracerType {
				continue
			}
			if !declared[k] {
				unknown = append(unknown, k)
				continue
			}
			unknown = append(unknown, undeclaredElementKeys(k, v, declared)...)
		}
		if len(unknown) > 0 {
			return fmt.Errorf("event %s has undeclared attributes %v", lr.EventName(), unknown)
		}
		return nil
	}
	return fmt.Errorf("event %s is not declared", lr.EventName())
}
