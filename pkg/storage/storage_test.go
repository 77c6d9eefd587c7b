package storage

import (
	"context"
	"errors"
	"flag"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/golden"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/pdatatest/plogtest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var update = flag.Bool("update", false, "rewrite the golden files")

// Types exercising every rule of the mapping (see attributes.go).
type header struct { // embedded: fields join the parent
	Pid  uint32   `json:"pid" doc:"pid"`
	Comm [16]int8 `json:"comm" doc:"C char array"`
}

type sock struct {
	Saddr netip.Addr `json:"saddr" doc:"TextMarshaler"`
	Dport uint16     `json:"dport" doc:"nested"`
}

type frame struct {
	Symbol string `json:"symbol" doc:"symbol"`
	Offset uint64 `json:"offset" doc:"offset"`
}

type richEvent struct {
	header
	Sock      sock              `json:"sock" doc:"flattened with a dot"`
	Optional  *sock             `json:"optional" doc:"nil pointer: omitted"`
	Latency   time.Duration     `json:"latency_ns" doc:"duration"`
	Address   uint64            `json:"address" doc:"above MaxInt64"`
	Ratio     float32           `json:"ratio" doc:"double"`
	Killed    bool              `json:"killed" doc:"bool"`
	Raw       []byte            `json:"raw" doc:"bytes"`
	Stack     []frame           `json:"stack" doc:"array of maps"`
	CPUs      []int             `json:"cpus" doc:"array of ints"`
	Memstat   map[string]uint64 `json:"memstat" doc:"map"`
	Empty     string            `json:"empty,omitempty" doc:"omitempty"`
	NoTag     int               `doc:"lower-cased Go name"`
	Skipped   string            `json:"-"`
	unexposed int
}

func (richEvent) Severity() plog.SeverityNumber { return plog.SeverityNumberWarn }
func (richEvent) Summary() string               { return "task 42 was killed" }

func sampleEvent() *richEvent {
	e := &richEvent{
		Sock:    sock{Saddr: netip.MustParseAddr("10.1.2.3"), Dport: 53},
		Latency: 1500 * time.Microsecond,
		Address: 0xffffffff81000000,
		Ratio:   0.5,
		Killed:  true,
		Raw:     []byte{0xde, 0xad},
		Stack:   []frame{{"do_syscall_64", 0x5e}, {"entry_SYSCALL_64", 0x76}},
		CPUs:    []int{0, 1},
		Memstat: map[string]uint64{"rss": 4096},
		NoTag:   7,
		Skipped: "never exported",
	}
	e.Pid = 42
	copy(e.Comm[:], []int8{'s', 't', 'r', 'e', 's', 's', 0, 'x'})
	e.unexposed = 1
	return e
}

func newTestSink(t *testing.T, next consumer.Logs, opts Options) *Sink {
	s := NewSink(next, opts, zaptest.NewLogger(t))
	s.Start()
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	return s
}

func TestSaveGolden(t *testing.T) {
	logs := &consumertest.LogsSink{}
	s := newTestSink(t, logs, Options{FlushInterval: time.Hour, BatchSize: 1000})
	when := time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)
	ev := s.For("event")
	require.NoError(t, ev.Save("oom", "", when, sampleEvent()))
	require.NoError(t, ev.Save("oom", "0123abcd", when.Add(time.Second), map[string]any{"victim": "python3", "pid": 7}))
	require.NoError(t, s.For("autotracing").Save("cpuidle", "0123abcd", when.Add(2*time.Second), nil))
	require.NoError(t, ev.Save("plain", "", when, 17))
	require.NoError(t, s.Shutdown(context.Background())) // flushes

	require.Len(t, logs.AllLogs(), 1, "one batch")
	got := logs.AllLogs()[0]
	path := filepath.Join("testdata", "events.yaml")
	if *update {
		require.NoError(t, golden.WriteLogs(t, path, got))
	}
	want, err := golden.ReadLogs(path)
	require.NoError(t, err)
	require.NoError(t, plogtest.CompareLogs(want, got, plogtest.IgnoreObservedTimestamp(), plogtest.IgnoreResourceAttributeValue("os.version")))

	// The observed time is when Save ran, not the event time.
	lr := got.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0)
	assert.WithinDuration(t, time.Now(), lr.ObservedTimestamp().AsTime(), time.Minute)
}

func TestOneResourcePerContainer(t *testing.T) {
	logs := &consumertest.LogsSink{}
	s := newTestSink(t, logs, Options{FlushInterval: time.Hour})
	st := s.For("event")
	for _, id := range []string{"a", "", "b", "a", "", "a"} {
		require.NoError(t, st.Save("x", id, time.Now(), nil))
	}
	require.NoError(t, s.Shutdown(context.Background()))
	counts := map[string]int{}
	ld := logs.AllLogs()[0]
	for _, rl := range ld.ResourceLogs().All() {
		id := ""
		if v, ok := rl.Resource().Attributes().Get("container.id"); ok {
			id = v.Str()
		}
		_, dup := counts[id]
		require.False(t, dup, "container %q has two Resources", id)
		counts[id] = rl.ScopeLogs().At(0).LogRecords().Len()
	}
	assert.Equal(t, map[string]int{"a": 3, "": 2, "b": 1}, counts)
}

func TestBatchesBySizeAndInterval(t *testing.T) {
	logs := &consumertest.LogsSink{}
	s := newTestSink(t, logs, Options{BatchSize: 10, FlushInterval: 50 * time.Millisecond})
	st := s.For("event")
	for range 25 {
		require.NoError(t, st.Save("x", "", time.Now(), nil))
	}
	// Two full batches go at once; the last 5 wait for the flush interval.
	require.Eventually(t, func() bool { return logs.LogRecordCount() == 25 }, 5*time.Second, 5*time.Millisecond)
	var sizes []int
	for _, ld := range logs.AllLogs() {
		sizes = append(sizes, ld.LogRecordCount())
	}
	assert.Equal(t, []int{10, 10, 5}, sizes)
}

// blockingConsumer holds every ConsumeLogs call until released or cancelled.
type blockingConsumer struct {
	release chan struct{}
	mu      sync.Mutex
	got     int
}

func (b *blockingConsumer) Capabilities() consumer.Capabilities { return consumer.Capabilities{} }
func (b *blockingConsumer) ConsumeLogs(ctx context.Context, ld plog.Logs) error {
	select {
	case <-b.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	b.mu.Lock()
	b.got += ld.LogRecordCount()
	b.mu.Unlock()
	return nil
}

func TestSlowConsumerNeverBlocksSave(t *testing.T) {
	c := &blockingConsumer{release: make(chan struct{})}
	s := newTestSink(t, c, Options{QueueSize: 8, BatchSize: 1, FlushInterval: time.Millisecond})
	st := s.For("event")
	var full int
	begin := time.Now()
	for range 100 {
		if err := st.Save("x", "", time.Now(), nil); errors.Is(err, ErrQueueFull) {
			full++
		}
	}
	assert.Less(t, time.Since(begin), 2*time.Second, "Save must not wait for the pipeline")
	// One record is held by the blocked consumer, 8 wait in the queue.
	assert.GreaterOrEqual(t, full, 100-9-1)
	stats := s.Stats()
	assert.Equal(t, uint64(full), stats.Dropped[DropQueueFull])
	assert.Equal(t, uint64(100), stats.Saved+stats.Dropped[DropQueueFull])

	close(c.release)
	require.NoError(t, s.Shutdown(context.Background()))
	assert.Equal(t, int(s.Stats().Saved), c.got, "everything queued reaches the pipeline at shutdown")
	assert.Equal(t, s.Stats().Saved, s.Stats().Emitted)
	assert.ErrorIs(t, st.Save("x", "", time.Now(), nil), ErrStopped)
	assert.Equal(t, uint64(1), s.Stats().Dropped[DropStopped])
}

func TestShutdownDeadlineCancelsStuckConsumer(t *testing.T) {
	c := &blockingConsumer{release: make(chan struct{})} // never released
	s := NewSink(c, Options{BatchSize: 1, FlushInterval: time.Millisecond}, zaptest.NewLogger(t))
	s.Start()
	require.NoError(t, s.For("event").Save("x", "", time.Now(), nil))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	assert.ErrorIs(t, s.Shutdown(ctx), context.DeadlineExceeded)
	assert.Equal(t, uint64(1), s.Stats().Dropped[DropShutdown])
}

// retryingConsumer is an exporter without a sending queue whose backend is
// down: every call waits out its retries, giving up only when ctx ends.
type retryingConsumer struct{ calls atomic.Int64 }

func (r *retryingConsumer) Capabilities() consumer.Capabilities { return consumer.Capabilities{} }
func (r *retryingConsumer) ConsumeLogs(ctx context.Context, _ plog.Logs) error {
	r.calls.Add(1)
	<-ctx.Done()
	return ctx.Err()
}

// deafConsumer ignores cancellation altogether.
type deafConsumer struct{ release chan struct{} }

func (d *deafConsumer) Capabilities() consumer.Capabilities { return consumer.Capabilities{} }
func (d *deafConsumer) ConsumeLogs(context.Context, plog.Logs) error {
	<-d.release
	return nil
}

// The receiver's Shutdown is given a context without deadline by the
// collector; the sink's own bound must end it, and count what was lost.
func TestShutdownIsBoundedWhateverThePipelineDoes(t *testing.T) {
	deaf := &deafConsumer{release: make(chan struct{})}
	defer close(deaf.release) // let the abandoned call end, for goleak
	for name, next := range map[string]consumer.Logs{"retrying": &retryingConsumer{}, "ignoring its ctx": deaf} {
		t.Run(name, func(t *testing.T) {
			const timeout = 300 * time.Millisecond
			s := NewSink(next, Options{QueueSize: 4096, BatchSize: 512, FlushInterval: time.Millisecond, ShutdownTimeout: timeout}, zaptest.NewLogger(t))
			s.Start()
			for range 3000 {
				require.NoError(t, s.For("event").Save("x", "", time.Now(), nil))
			}
			begin := time.Now()
			err := s.Shutdown(context.Background())
			took := time.Since(begin)
			require.Error(t, err)
			assert.Contains(t, err.Error(), "3000 events not delivered at shutdown")
			assert.GreaterOrEqual(t, took, timeout)
			assert.Less(t, took, timeout+shutdownGrace+500*time.Millisecond, "Shutdown must end within its bound")
			st := s.Stats()
			assert.Equal(t, uint64(3000), st.Saved)
			assert.Equal(t, uint64(3000), st.Dropped[DropShutdown], "every queued event is counted once")
			assert.Zero(t, st.Emitted+st.Dropped[DropConsumerError])
		})
	}
}

func TestInvalidUTF8IsReplaced(t *testing.T) {
	logs := &consumertest.LogsSink{}
	s := newTestSink(t, logs, Options{FlushInterval: time.Hour, ScopeAttributes: map[string]string{"otelcol.component.id": "kernel/b"}})
	type ev struct {
		Comm   [16]int8          `json:"comm"`
		Ifname string            `json:"ifname"`
		Stack  []string          `json:"stack"`
		Labels map[string]string `json:"labels"`
	}
	e := ev{Ifname: "eth\xff0", Stack: []string{"ok", "f\xc3"}, Labels: map[string]string{"k\xfe": "v\x80"}}
	for i, b := range []byte("bad\xff\xfecomm") {
		e.Comm[i] = int8(b)
	}
	require.NoError(t, s.For("event").Save("x", "", time.Now(), &e))
	require.NoError(t, s.Shutdown(context.Background()))
	require.Len(t, logs.AllLogs(), 1)
	sl := logs.AllLogs()[0].ResourceLogs().At(0).ScopeLogs().At(0)
	v, _ := sl.Scope().Attributes().Get("otelcol.component.id")
	assert.Equal(t, "kernel/b", v.Str())
	attrs := sl.LogRecords().At(0).Attributes()
	assert.Equal(t, map[string]any{
		"kernel.tracer.type": "event",
		"comm":               "bad\uFFFD\uFFFDcomm",
		"ifname":             "eth\uFFFD0",
		"stack":              []any{"ok", "f\uFFFD"},
		"labels":             map[string]any{"k\uFFFD": "v\uFFFD"},
	}, attrs.AsRaw())
}

func TestConsumerErrorsAreCounted(t *testing.T) {
	failing := consumertest.NewErr(errors.New("exporter down"))
	s := newTestSink(t, failing, Options{BatchSize: 4, FlushInterval: time.Hour})
	for range 10 {
		require.NoError(t, s.For("event").Save("x", "", time.Now(), nil))
	}
	require.NoError(t, s.Shutdown(context.Background()))
	stats := s.Stats()
	assert.Equal(t, uint64(10), stats.Dropped[DropConsumerError])
	assert.Zero(t, stats.Emitted)
}

func TestNoLogsPipelineIsANoOp(t *testing.T) {
	s := newTestSink(t, nil, Options{})
	require.NoError(t, s.For("event").Save("x", "", time.Now(), sampleEvent()))
	assert.Zero(t, s.Stats().Saved)
}

func TestFieldsDocumentTheMapping(t *testing.T) {
	var names, elements []string
	for _, f := range Fields(reflectTypeOf[richEvent]()) {
		if f.Nested {
			elements = append(elements, f.Name+":"+f.Type+":"+f.Key)
			continue
		}
		names = append(names, f.Name+":"+f.Type)
	}
	assert.Equal(t, []string{
		"pid:int", "comm:string", "sock.saddr:string", "sock.dport:int",
		"optional.saddr:string", "optional.dport:int", "latency_ns:int (ns)",
		"address:int (string above 2^63-1)", "ratio:double", "killed:bool", "raw:bytes",
		"stack:array of map", "cpus:array of int", "memstat:map", "empty:string", "notag:int",
	}, names)
	// The elements of an array of structs are described too, under parent[].
	assert.Equal(t, []string{"stack[].symbol:string:symbol", "stack[].offset:int (string above 2^63-1):offset"}, elements)

	// Every documented field name is what Save produces (no drift between the two).
	attrs := pcommon.NewMap()
	e := sampleEvent()
	e.Optional = &sock{Dport: 1}
	e.Empty = "set"
	PutAttributes(attrs, e)
	top := 0
	for _, f := range Fields(reflectTypeOf[richEvent]()) {
		if f.Nested {
			parent, _, _ := strings.Cut(f.Name, "[].")
			v, _ := attrs.Get(parent)
			_, ok := v.Slice().At(0).Map().Get(f.Key)
			assert.True(t, ok, "documented element field %s not produced", f.Name)
			continue
		}
		top++
		_, ok := attrs.Get(f.Name)
		assert.True(t, ok, "documented field %s not produced", f.Name)
	}
	assert.Equal(t, top, attrs.Len())
}

func reflectTypeOf[T any]() reflect.Type { return reflect.TypeFor[T]() }
