// Package metric is the data type collectors return from Update, and the
// descriptors they declare so that every metric has a documented name, unit
// and label set.
//
// A collector builds its values with the seed's constructors:
//
//	metric.NewGaugeData("load1", 0.42, "1-minute load average", nil)
//	metric.NewCounterData("changes", 3, "link state changes", map[string]string{"device": "eth0"})
//
// The short name ("load1") is qualified by the framework: it becomes
// kernel.<collector>.<name> unless the collector declared another full name
// in its Desc.
package metric

import (
	"maps"
	"time"
)

// Kind is how a value is exported.
type Kind int

const (
	// Gauge is a value sampled at the time of Update.
	Gauge Kind = iota
	// Counter is a monotonic cumulative sum.
	Counter
	// Histogram is a cumulative distribution with explicit bucket bounds.
	Histogram
)

func (k Kind) String() string {
	switch k {
	case Gauge:
		return "gauge"
	case Counter:
		return "counter"
	case Histogram:
		return "histogram"
	}
	return "unknown"
}

// Data is one data point a collector reports from Update.
type Data struct {
	// Name is the short, collector-local name ("load1").
	Name string
	// Help describes the metric; the declared Desc wins when both are set.
	Help string
	Kind Kind
	// Value is the gauge or counter value; unused for histograms.
	Value float64
	// Labels become data point attributes.
	Labels map[string]string
	// ContainerID puts the point in that container's Resource; empty means the host.
	ContainerID string
	// StartTime is when a counter or histogram began accumulating. Zero means
	// "when this collector started", which is right for counts the collector
	// keeps itself; set it to the boot time for counters the kernel keeps
	// since boot (the kernel's boot time, e.g. procfs Stat.BootTime).
	StartTime time.Time
	// Histogram holds the distribution when Kind is Histogram.
	Histogram *HistogramValue
}

// HistogramValue is a cumulative explicit-bucket distribution. Counts has
// len(Bounds)+1 entries: Counts[i] holds values <= Bounds[i] (and above
// Bounds[i-1]); the last entry holds values above the last bound.
type HistogramValue struct {
	Bounds []float64
	Counts []uint64
	Sum    float64
}

// Count is the total number of observations.
func (h *HistogramValue) Count() uint64 {
	var n uint64
	for _, c := range h.Counts {
		n += c
	}
	return n
}

// NewGaugeData returns a host gauge point. labels may be nil.
func NewGaugeData(name string, value float64, help string, labels map[string]string) *Data {
	return &Data{Name: name, Value: value, Help: help, Kind: Gauge, Labels: maps.Clone(labels)}
}

// NewCounterData returns a host counter point holding a cumulative value.
func NewCounterData(name string, value float64, help string, labels map[string]string) *Data {
	return &Data{Name: name, Value: value, Help: help, Kind: Counter, Labels: maps.Clone(labels)}
}

// NewHistogramData returns a host histogram point. See HistogramValue for
// the layout of counts.
func NewHistogramData(name string, bounds []float64, counts []uint64, sum float64, help string, labels map[string]string) *Data {
	return &Data{
		Name: name, Help: help, Kind: Histogram, Labels: maps.Clone(labels),
		Histogram: &HistogramValue{Bounds: bounds, Counts: counts, Sum: sum},
	}
}

// NewContainerGaugeData returns a gauge point for one container.
func NewContainerGaugeData(containerID, name string, value float64, help string, labels map[string]string) *Data {
	d := NewGaugeData(name, value, help, labels)
	d.ContainerID = containerID
	return d
}

// NewContainerCounterData returns a counter point for one container.
func NewContainerCounterData(containerID, name string, value float64, help string, labels map[string]string) *Data {
	d := NewCounterData(name, value, help, labels)
	d.ContainerID = containerID
	return d
}

// WithStartTime sets the start time of a counter or histogram and returns d.
func (d *Data) WithStartTime(t time.Time) *Data {
	d.StartTime = t
	return d
}

// Collector is a collector that reports metrics: Update is called once per
// collection interval and returns the current points. Returning points and
// an error is allowed: the points are kept and the error is logged.
type Collector interface {
	Update() ([]*Data, error)
}
