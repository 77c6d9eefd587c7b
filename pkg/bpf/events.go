package bpf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/perf"
	"github.com/cilium/ebpf/ringbuf"
)

// Names the event channel has in every program that includes events.h.
const (
	eventsRingMap  = "events"
	eventsPerfMap  = "events_perf"
	eventsLostMap  = "events_lost"
	usePerfBuffer  = "use_perf_buffer"
	defaultRingLen = 256 * 1024
)

// ErrClosed is returned by EventReader.Read after Close.
var ErrClosed = errors.New("event reader closed")

// hasEventChannel says whether the collection includes events.h.
func hasEventChannel(cs *ebpf.CollectionSpec) bool {
	_, ring := cs.Maps[eventsRingMap]
	_, perfArr := cs.Maps[eventsPerfMap]
	_, knob := cs.Variables[usePerfBuffer]
	return ring && perfArr && knob
}

// prepareEventChannel picks ring buffer or perf buffer for this kernel
// (or as forced) and adjusts the spec: on the perf path the ring buffer map
// becomes a one-entry array, since a kernel without ring buffers cannot
// create one and no reachable instruction uses it.
func prepareEventChannel(cs *ebpf.CollectionSpec, opts Options) (usePerf bool, err error) {
	usePerf = opts.PerfBuffer || features.HaveMapType(ebpf.RingBuf) != nil
	if err := cs.Variables[usePerfBuffer].Set(usePerf); err != nil {
		return false, fmt.Errorf("bpf: setting %s: %w", usePerfBuffer, err)
	}
	ring := cs.Maps[eventsRingMap]
	if usePerf {
		ring.Type, ring.KeySize, ring.ValueSize, ring.MaxEntries = ebpf.Array, 4, 4, 1
		return true, nil
	}
	if opts.RingBufferBytes > 0 {
		ring.MaxEntries = opts.RingBufferBytes
	}
	return false, nil
}

// SmallRing is a ring buffer size for collectors whose events are rare
// (an OOM kill, a hung task): n bytes, at least a page. The ring buffer's
// pages are resident, mapped twice into the reader, for the receiver's
// whole life: 256 KiB for a few events an hour is half a MB of RSS each.
func SmallRing(n uint32) uint32 {
	return max(n, uint32(os.Getpagesize()))
}

// EventReader reads the events a collection emits through events.h,
// whichever channel the kernel got.
type EventReader struct {
	ring    *ringbuf.Reader
	perf    *perf.Reader
	lost    *ebpf.Map
	ringRec ringbuf.Record
	perfRec perf.Record
}

// NewEventReader opens the collection's event channel. perCPUBytes sizes
// each CPU's perf buffer on the perf path (0: 64 KiB). On that path the
// kernel can only write once the reader exists: events fired between
// Load and NewEventReader are lost (and counted in Lost).
func (o *Object) NewEventReader(perCPUBytes int) (*EventReader, error) {
	if !o.events {
		return nil, errors.New("bpf: the collection has no event channel (events.h)")
	}
	r := &EventReader{lost: o.Collection.Maps[eventsLostMap]}
	var err error
	if o.PerfBuffer {
		if perCPUBytes <= 0 {
			perCPUBytes = 64 * 1024
		}
		r.perf, err = perf.NewReader(o.Collection.Maps[eventsPerfMap], perCPUBytes)
	} else {
		r.ring, err = ringbuf.NewReader(o.Collection.Maps[eventsRingMap])
	}
	if err != nil {
		return nil, fmt.Errorf("bpf: opening the event channel: %w", err)
	}
	return r, nil
}

// Read blocks until an event arrives and returns its bytes, which the
// caller owns. It returns ErrClosed once Close was called, and
// os.ErrDeadlineExceeded after a SetDeadline passes.
func (r *EventReader) Read() ([]byte, error) {
	raw, err := r.next()
	return bytes.Clone(raw), err
}

// next is Read into the reader's own buffer, which the next call reuses:
// no allocation per event.
func (r *EventReader) next() ([]byte, error) {
	if r.ring != nil {
		err := r.ring.ReadInto(&r.ringRec)
		if errors.Is(err, ringbuf.ErrClosed) {
			return nil, ErrClosed
		}
		return r.ringRec.RawSample, err
	}
	for {
		rec := &r.perfRec
		err := r.perf.ReadInto(rec)
		if errors.Is(err, perf.ErrClosed) {
			return nil, ErrClosed
		}
		if err != nil {
			return nil, err
		}
		if rec.LostSamples > 0 {
			// Already counted: every sample the kernel could not write
			// made bpf_perf_event_output fail, which events.h counts.
			continue
		}
		return rec.RawSample, nil
	}
}

// SetDeadline makes Read return os.ErrDeadlineExceeded after t.
func (r *EventReader) SetDeadline(t time.Time) {
	if r.ring != nil {
		r.ring.SetDeadline(t)
	} else {
		r.perf.SetDeadline(t)
	}
}

// Lost is how many events never reached user space because the buffer
// was full, counted in the kernel by events.h on both paths.
func (r *EventReader) Lost() (uint64, error) {
	return sumMap(r.lost, eventsLostMap)
}

// EventsLost is EventReader.Lost without a reader: it reads the object's
// loss counter, so an Update can report it without touching the reader.
func (o *Object) EventsLost() (uint64, error) {
	if !o.events {
		return 0, errors.New("bpf: the collection has no event channel (events.h)")
	}
	return sumMap(o.Collection.Maps[eventsLostMap], eventsLostMap)
}

func sumMap(m *ebpf.Map, name string) (uint64, error) {
	sums, err := SumPerCPU(m)
	if err != nil {
		return 0, fmt.Errorf("bpf: reading %s: %w", name, err)
	}
	var n uint64
	for _, v := range sums {
		n += v
	}
	return n, nil
}

// Close ends any Read in progress and releases the reader.
func (r *EventReader) Close() error {
	if r.ring != nil {
		return r.ring.Close()
	}
	return r.perf.Close()
}

// ServeEvents reads the collection's events until ctx ends or reading
// fails, calling handle with each event's bytes. The bytes are reused for
// the next event: handle decodes them and must not keep them.
// It wakes only for events: kernel-side counters are for the collector's
// Update to read (EventCounters), not polled here.
func (o *Object) ServeEvents(ctx context.Context, perCPUBytes int, handle func(raw []byte)) error {
	rd, err := o.NewEventReader(perCPUBytes)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { rd.Close() }) // ends the Read below
	defer func() {
		if stop() { // ctx did not end: reading failed
			rd.Close()
		}
	}()
	for {
		raw, err := rd.next()
		if errors.Is(err, ErrClosed) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("bpf: reading events: %w", err)
		}
		handle(raw)
	}
}

// RateCounts returns how many events the in-kernel rate limiter (common.h)
// let through and held back, summed over CPUs.
func (o *Object) RateCounts() (passed, limited uint64, err error) {
	m := o.Collection.Maps["rate_counters"]
	if m == nil {
		return 0, 0, errors.New("bpf: the collection has no rate limiter")
	}
	sums, err := SumPerCPU(m)
	if err != nil {
		return 0, 0, err
	}
	if len(sums) < 2 {
		return 0, 0, fmt.Errorf("bpf: rate_counters has %d slots, not 2", len(sums))
	}
	return sums[0], sums[1], nil
}
