package bpf

import (
	"sync/atomic"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/metric"
)

// EventCounters keeps an event collector's kernel-side counts (events the
// rate limiter held back, events lost to a full buffer) for its Update.
// Pass its Refresh to ServeEvents.
type EventCounters struct {
	limited, lost atomic.Uint64
}

// EventCounterDescs declares the metrics Data reports, in the collector's
// unit for one event ("{event}", "{task}", ...).
func EventCounterDescs(unit string) []metric.Desc {
	return []metric.Desc{
		{Name: "events.limited", Kind: metric.Counter, Unit: unit, Description: "events held back by the collector's events_per_second cap, in the kernel"},
		{Name: "events.lost", Kind: metric.Counter, Unit: unit, Description: "events lost in the kernel because the buffer to user space was full"},
	}
}

// Refresh copies the counts from the kernel.
func (c *EventCounters) Refresh(obj *Object, rd *EventReader) {
	if _, limited, err := obj.RateCounts(); err == nil {
		c.limited.Store(limited)
	}
	if lost, err := rd.Lost(); err == nil {
		c.lost.Store(lost)
	}
}

// Limited and Lost are the counts as of the last Refresh.
func (c *EventCounters) Limited() uint64 { return c.limited.Load() }
func (c *EventCounters) Lost() uint64    { return c.lost.Load() }

// Data reports the counts as counter points.
func (c *EventCounters) Data() []*metric.Data {
	return []*metric.Data{
		metric.NewCounterData("events.limited", float64(c.limited.Load()), "", nil),
		metric.NewCounterData("events.lost", float64(c.lost.Load()), "", nil),
	}
}
