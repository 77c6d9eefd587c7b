// Package storage turns the events collectors save into OpenTelemetry
// LogRecords and hands them, batched, to the receiver's logs pipeline.
//
// A collector calls Save exactly as in the seed:
//
//	t.storage.Save("oom", containerID, time.Now(), &oomEvent{...})
//
// Save converts at once (so the caller may reuse data afterwards) and queues
// the record; it never blocks on the pipeline. When the queue is full the
// record is dropped, counted, and Save returns ErrQueueFull.
package storage

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.uber.org/zap"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/container"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/utf8safe"
)

// EventNamePrefix is prepended to the name given to Save to form the
// LogRecord's EventName.
const EventNamePrefix = "kernel."

// AttrTracerType is the LogRecord attribute naming the kind of tracer that
// saved the event: "event" or "autotracing".
const AttrTracerType = "kernel.tracer.type"

// ErrQueueFull is returned by Save when the event was dropped because the
// pipeline is not keeping up.
var ErrQueueFull = errors.New("event queue full: event dropped")

// ErrStopped is returned by Save after the sink has shut down.
var ErrStopped = errors.New("event sink stopped: event dropped")

// Severity is implemented by event data that knows how bad it is. Events
// without it are logged at INFO.
type Severity interface {
	Severity() plog.SeverityNumber
}

// Summary is implemented by event data that can say in one line what
// happened; the line becomes the LogRecord body.
type Summary interface {
	Summary() string
}

// Options tune the queue between collectors and the logs pipeline.
type Options struct {
	// QueueSize bounds the records waiting for the pipeline.
	QueueSize int
	// BatchSize is the most records passed to the pipeline in one call.
	BatchSize int
	// FlushInterval is the longest a record waits for its batch to fill.
	FlushInterval time.Duration
	// Containers describes a container id for its Resource (runtime, pod
	// uid); nil puts the bare id.
	Containers container.Describer
	// ScopeAttributes are put on the instrumentation scope of every batch
	// (the receiver names itself there: otelcol.component.id).
	ScopeAttributes map[string]string
	// ShutdownTimeout bounds Shutdown: what the pipeline has not taken by
	// then is dropped and counted (DropShutdown). 0 means 4s.
	ShutdownTimeout time.Duration
	// CheckWriters, when set, is called for every saved event whose
	// AttributeWriter disagrees with the reflective mapping (tests set it;
	// it doubles the conversion cost).
	CheckWriters func(name string, err error)
}

// shutdownGrace is how long Shutdown still waits, after ShutdownTimeout,
// for a pipeline call it cancelled to return before leaving it behind.
const shutdownGrace = time.Second

// Drop reasons, as reported in Stats.Dropped and the self-telemetry.
const (
	DropQueueFull     = "queue_full"
	DropConsumerError = "consumer_error"
	DropStopped       = "stopped"
	// DropShutdown: queued, or being handed to the pipeline, when Shutdown
	// ran out of time (ShutdownTimeout).
	DropShutdown = "shutdown"
)

// DropReasons lists every reason, in the order the self-telemetry reports them.
var DropReasons = []string{DropQueueFull, DropConsumerError, DropStopped, DropShutdown}

// Stats are the sink's counters since it was created.
type Stats struct {
	Saved   uint64            // accepted into the queue
	Emitted uint64            // accepted by the logs pipeline
	Dropped map[string]uint64 // by reason
}

// Sink is the event path of one receiver instance.
type Sink struct {
	next   consumer.Logs
	logger *zap.Logger
	opts   Options

	queue   chan record
	stopped chan struct{}
	done    chan struct{}
	once    sync.Once
	cancel  context.CancelFunc
	saveMu  sync.RWMutex // Save holds R while sending; Shutdown takes W to close the queue.
	closed  bool
	dropLog dropLogger

	saved, emitted                        atomic.Uint64
	dropQueueFull, dropConsumer, dropStop atomic.Uint64
	dropShutdown                          atomic.Uint64

	// settleMu orders the run goroutine's accounting of a batch against
	// Shutdown giving up on it, so that no record is counted twice.
	settleMu sync.Mutex
	gaveUp   bool
	inFlight int // records taken from the queue and not yet settled
}

type record struct {
	container container.Container
	lr        plog.LogRecord
}

// NewSink returns a sink feeding next. A nil next (no logs pipeline) makes
// Save a cheap no-op. Start must be called before records flow.
func NewSink(next consumer.Logs, opts Options, logger *zap.Logger) *Sink {
	if opts.QueueSize <= 0 {
		opts.QueueSize = 4096
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 512
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 200 * time.Millisecond
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 4 * time.Second
	}
	return &Sink{
		next: next, logger: logger, opts: opts,
		queue:   make(chan record, opts.QueueSize),
		stopped: make(chan struct{}),
		done:    make(chan struct{}),
		dropLog: dropLogger{logger: logger, every: 10 * time.Second},
	}
}

// Start runs the batching goroutine until Shutdown.
func (s *Sink) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.run(ctx)
}

// Shutdown flushes what is queued and stops. Records saved afterwards are
// dropped with ErrStopped. It returns within ShutdownTimeout (or when ctx
// ends, if sooner) plus a second's grace, whatever the pipeline does: at
// that point the pipeline call in flight is cancelled, nothing more is
// handed on, and the records not delivered are counted as DropShutdown.
// A pipeline that ignores the cancellation is left behind after the grace.
func (s *Sink) Shutdown(ctx context.Context) error {
	s.once.Do(func() {
		s.saveMu.Lock()
		s.closed = true
		close(s.stopped)
		s.saveMu.Unlock()
	})
	if s.cancel == nil { // never started
		return nil
	}
	bound := time.NewTimer(s.opts.ShutdownTimeout)
	defer bound.Stop()
	var why error
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		why = ctx.Err()
	case <-bound.C:
		why = fmt.Errorf("the logs pipeline did not take the queued events within %v", s.opts.ShutdownTimeout)
	}
	s.cancel()
	grace := time.NewTimer(shutdownGrace)
	defer grace.Stop()
	select {
	case <-s.done:
	case <-grace.C:
		// The pipeline ignores cancellation: count what it holds and what is
		// still queued, and stop accounting for the run goroutine.
		s.settleMu.Lock()
		s.gaveUp = true
		lost := s.inFlight + len(s.queue)
		s.inFlight = 0
		s.settleMu.Unlock()
		s.dropShutdown.Add(uint64(lost))
	}
	if n := s.dropShutdown.Load(); n > 0 {
		s.logger.Warn("kernel events not delivered at shutdown", zap.Uint64("dropped", n), zap.Error(why))
		return fmt.Errorf("event sink: %d events not delivered at shutdown: %w", n, why)
	}
	return nil
}

// Stats returns the counters.
func (s *Sink) Stats() Stats {
	return Stats{
		Saved:   s.saved.Load(),
		Emitted: s.emitted.Load(),
		Dropped: map[string]uint64{
			DropQueueFull:     s.dropQueueFull.Load(),
			DropConsumerError: s.dropConsumer.Load(),
			DropStopped:       s.dropStop.Load(),
			DropShutdown:      s.dropShutdown.Load(),
		},
	}
}

// For returns the Storage a collector of the given tracer type saves through.
func (s *Sink) For(tracerType string) *Storage {
	return &Storage{sink: s, tracerType: tracerType}
}

// Storage is a collector's handle on the sink: Save is the seed's API.
type Storage struct {
	sink       *Sink
	tracerType string
}

// Save records one event: name becomes the EventName "kernel.<name>",
// containerID ("" for the host) selects the Resource, t is the time the
// event happened, and data becomes the attributes (see PutAttributes).
func (s *Storage) Save(name, containerID string, t time.Time, data any) error {
	sink := s.sink
	if sink.next == nil {
		return nil
	}
	lr := NewRecord(s.tracerType, name, t, data)
	if check := sink.opts.CheckWriters; check != nil {
		if err := CheckWriter(data); err != nil {
			check(name, err)
		}
	}
	return sink.enqueue(record{container: container.Describe(sink.opts.Containers, containerID), lr: lr})
}

// NewRecord is the LogRecord Save makes of an event (see Save), for tests
// and fuzz targets that check what a collector's data becomes.
func NewRecord(tracerType, name string, t time.Time, data any) plog.LogRecord {
	lr := plog.NewLogRecord()
	lr.SetEventName(EventNamePrefix + name)
	lr.SetTimestamp(pcommon.NewTimestampFromTime(t))
	lr.SetObservedTimestamp(pcommon.NewTimestampFromTime(time.Now()))
	sev := plog.SeverityNumberInfo
	if sv, ok := data.(Severity); ok {
		sev = sv.Severity()
	}
	lr.SetSeverityNumber(sev)
	lr.SetSeverityText(sev.String())
	if sm, ok := data.(Summary); ok {
		lr.Body().SetStr(sm.Summary())
	}
	attrs := lr.Attributes()
	attrs.PutStr(AttrTracerType, tracerType)
	putData(attrs, data)
	// Whichever way the attributes were written, every string in the record
	// leaves valid UTF-8: comm, interface names and cgroup paths come from
	// other processes and can be any bytes. This is the one place for it.
	utf8safe.Map(attrs)
	utf8safe.Value(lr.Body())
	return lr
}

func (s *Sink) enqueue(r record) error {
	s.saveMu.RLock()
	defer s.saveMu.RUnlock()
	if s.closed {
		s.dropStop.Add(1)
		return ErrStopped
	}
	select {
	case s.queue <- r:
		s.saved.Add(1)
		return nil
	default:
		s.dropQueueFull.Add(1)
		s.dropLog.note(DropQueueFull, nil)
		return ErrQueueFull
	}
}

func (s *Sink) run(ctx context.Context) {
	defer close(s.done)
	b := s.newBatch()
	// The flush timer runs only while a batch waits: an idle sink does not
	// wake up.
	timer := time.NewTimer(s.opts.FlushInterval)
	timer.Stop()
	defer timer.Stop()
	var flushC <-chan time.Time
	for {
		select {
		case r := <-s.queue:
			s.add(ctx, b, r)
			switch b.n {
			case 0: // sent on by size
				timer.Stop()
				flushC = nil
			case 1: // a new batch: flush it by the interval at the latest
				timer.Reset(s.opts.FlushInterval)
				flushC = timer.C
			}
		case <-flushC:
			s.flush(ctx, b)
			flushC = nil
		case <-s.stopped:
			// No Save can send any more: drain what is queued and go.
			for {
				select {
				case r := <-s.queue:
					s.add(ctx, b, r)
				default:
					s.flush(ctx, b)
					return
				}
			}
		}
	}
}

// add puts r in the batch and sends the batch on once it is full.
func (s *Sink) add(ctx context.Context, b *logBatch, r record) {
	s.settleMu.Lock()
	s.inFlight++
	s.settleMu.Unlock()
	b.add(r)
	if b.n >= s.opts.BatchSize {
		s.flush(ctx, b)
	}
}

func (s *Sink) flush(ctx context.Context, b *logBatch) {
	if b.n == 0 {
		return
	}
	ld, n := b.take()
	var err error
	handed := ctx.Err() == nil
	if handed {
		err = s.next.ConsumeLogs(ctx, ld)
	}
	s.settleMu.Lock()
	defer s.settleMu.Unlock()
	if s.gaveUp {
		return // Shutdown counted these already
	}
	s.inFlight -= n
	switch {
	case handed && err == nil:
		s.emitted.Add(uint64(n))
	case ctx.Err() != nil:
		// Shutdown's time is up: not handed on, or cancelled on the way.
		s.dropShutdown.Add(uint64(n))
	case err != nil:
		s.dropConsumer.Add(uint64(n))
		s.dropLog.note(DropConsumerError, err)
	}
}

// logBatch groups records into one ResourceLogs per container.
type logBatch struct {
	ld         plog.Logs
	slots      map[string]plog.LogRecordSlice
	n          int
	scopeAttrs map[string]string
}

func (s *Sink) newBatch() *logBatch {
	return &logBatch{ld: plog.NewLogs(), slots: map[string]plog.LogRecordSlice{}, scopeAttrs: s.opts.ScopeAttributes}
}

// ScopeName is the instrumentation scope of everything the receiver emits.
const ScopeName = "github.com/otelcol-kernel/otelcol-kernel/receiver/kernelreceiver"

func (b *logBatch) add(r record) {
	slot, ok := b.slots[r.container.ID]
	if !ok {
		rl := b.ld.ResourceLogs().AppendEmpty()
		container.PutResource(rl.Resource().Attributes(), r.container)
		utf8safe.Map(rl.Resource().Attributes())
		sl := rl.ScopeLogs().AppendEmpty()
		sl.Scope().SetName(ScopeName)
		for k, v := range b.scopeAttrs {
			sl.Scope().Attributes().PutStr(k, v)
		}
		slot = sl.LogRecords()
		b.slots[r.container.ID] = slot
	}
	r.lr.MoveTo(slot.AppendEmpty())
	b.n++
}

func (b *logBatch) take() (plog.Logs, int) {
	ld, n := b.ld, b.n
	b.ld, b.n = plog.NewLogs(), 0
	clear(b.slots)
	return ld, n
}

// dropLogger logs drops at most once per period, with the count since the
// last line, so a flood of drops cannot flood the log.
type dropLogger struct {
	logger *zap.Logger
	every  time.Duration
	mu     sync.Mutex
	last   time.Time
	counts map[string]int
}

func (d *dropLogger) note(reason string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.counts == nil {
		d.counts = map[string]int{}
	}
	d.counts[reason]++
	now := time.Now()
	if now.Sub(d.last) < d.every {
		return
	}
	fields := []zap.Field{zap.Any("dropped_since_last_report", d.counts)}
	if err != nil {
		fields = append(fields, zap.Error(err))
	}
	d.logger.Warn("kernel events dropped", fields...)
	d.last = now
	d.counts = map[string]int{}
}
