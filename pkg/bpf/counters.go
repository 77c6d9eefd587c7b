package bpf

import (
	"sync"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/metric"
)

// EventCounters keeps an event collector's kernel-side counts (events the
// rate limiter held back, events lost to a full buffer) for its Update.
// The kernel's maps are read when Update asks (Refresh), once per
// collection round, not on a timer: between rounds nobody looks at them.
//
// A collector's Start attaches the loaded object and detaches it before
// closing it:
//
//	defer obj.Close()
//	c.counters.Attach(obj, nil)
//	defer c.counters.Detach()
//
// Detach takes a last reading, so Update keeps reporting the final counts
// after the object is gone, and never reads a closed map.
type EventCounters struct {
	mu      sync.Mutex
	obj     *Object
	extra   func(*Object)
	limited uint64
	lost    uint64
}

// EventCounterDescs declares the metrics Data reports, in the collector's
// unit for one event ("{event}", "{task}", ...).
func EventCounterDescs(unit string) []metric.Desc {
	return []metric.Desc{
		{Name: "events.limited", Kind: metric.Counter, Unit: unit, Description: "events held back by the collector's events_per_second cap, in the kernel"},
		{Name: "events.lost", Kind: metric.Counter, Unit: unit, Description: "events lost in the kernel because the buffer to user space was full"},
	}
}

// Attach makes Refresh read obj's counters; extra, when set, is called
// with obj on every Refresh too, under the same lock, for the collector's
// own maps.
func (c *EventCounters) Attach(obj *Object, extra func(*Object)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.obj, c.extra = obj, extra
}

// Detach takes a last reading and forgets the object.
func (c *EventCounters) Detach() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.read()
	c.obj, c.extra = nil, nil
}

// Refresh copies the counts from the kernel, if an object is attached.
func (c *EventCounters) Refresh() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.read()
}

func (c *EventCounters) read() {
	if c.obj == nil {
		return
	}
	if _, limited, err := c.obj.RateCounts(); err == nil {
		c.limited = limited
	}
	if lost, err := c.obj.EventsLost(); err == nil {
		c.lost = lost
	}
	if c.extra != nil {
		c.extra(c.obj)
	}
}

// Limited and Lost are the counts as of the last Refresh.
func (c *EventCounters) Limited() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.limited
}

func (c *EventCounters) Lost() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lost
}

// Data refreshes and reports the counts as counter points.
func (c *EventCounters) Data() []*metric.Data {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.read()
	return []*metric.Data{
		metric.NewCounterData("events.limited", float64(c.limited), "", nil),
		metric.NewCounterData("events.lost", float64(c.lost), "", nil),
	}
}
