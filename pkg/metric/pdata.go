package metric

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/container"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/utf8safe"
)

// ErrUndeclared marks a point whose metric has no Desc. Such points are still
// exported (with the Help text and no unit) so nothing is lost, but the
// caller should say so once.
var ErrUndeclared = errors.New("metric not declared")

// Builder gathers the points of one collection round into pmetric.Metrics:
// one ResourceMetrics for the host and one per container, all points of one
// exported name in one Metric.
type Builder struct {
	scopeName, scopeVersion string
	scopeAttrs              map[string]string
	containers              container.Describer

	md      pmetric.Metrics
	scopes  map[string]pmetric.MetricSlice // by container id ("" = host)
	metrics map[metricKey]pmetric.Metric
}

type metricKey struct{ container, name string }

// NewBuilder returns a Builder whose metrics carry the given instrumentation scope.
func NewBuilder(scopeName, scopeVersion string) *Builder {
	b := &Builder{scopeName: scopeName, scopeVersion: scopeVersion}
	b.reset()
	return b
}

func (b *Builder) reset() {
	b.md = pmetric.NewMetrics()
	b.scopes = map[string]pmetric.MetricSlice{}
	b.metrics = map[metricKey]pmetric.Metric{}
}

// DescribeContainers makes the Builder ask d for each container's runtime
// and pod, for its Resource.
func (b *Builder) DescribeContainers(d container.Describer) { b.containers = d }

// SetScopeAttributes puts attrs on the instrumentation scope of every
// ResourceMetrics built from now on (the receiver names itself there).
func (b *Builder) SetScopeAttributes(attrs map[string]string) { b.scopeAttrs = attrs }

// Emit returns what was appended since the last Emit and starts afresh.
func (b *Builder) Emit() pmetric.Metrics {
	md := b.md
	b.reset()
	return md
}

// Append adds one collector's points, timestamped now. descs maps short
// names to declarations; starts gives counters their start timestamps.
// It returns how many points were dropped and why (a malformed point is
// dropped, an undeclared one is kept and reported with ErrUndeclared).
func (b *Builder) Append(collector string, descs map[string]Desc, starts *StartTracker, now time.Time, data []*Data) (dropped int, errs []error) {
	ts := pcommon.NewTimestampFromTime(now)
	for _, p := range data {
		if p == nil {
			continue
		}
		if err := p.check(); err != nil {
			dropped++
			errs = append(errs, fmt.Errorf("%s: dropped metric %q: %w", collector, p.Name, err))
			continue
		}
		desc, declared := descs[p.Name]
		if !declared {
			desc = Desc{Name: p.Name, Kind: p.Kind, Description: p.Help}
			errs = append(errs, fmt.Errorf("%s: metric %q: %w", collector, p.Name, ErrUndeclared))
		} else if desc.Kind != p.Kind {
			dropped++
			errs = append(errs, fmt.Errorf("%s: dropped metric %q: declared a %s, reported as a %s", collector, p.Name, desc.Kind, p.Kind))
			continue
		}
		m := b.metric(p.ContainerID, collector, desc, p.Help)
		switch p.Kind {
		case Gauge:
			dp := m.Gauge().DataPoints().AppendEmpty()
			dp.SetTimestamp(ts)
			dp.SetDoubleValue(p.Value)
			putLabels(dp.Attributes(), p.Labels)
		case Counter:
			dp := m.Sum().DataPoints().AppendEmpty()
			dp.SetTimestamp(ts)
			dp.SetStartTimestamp(pcommon.NewTimestampFromTime(starts.start(p, p.Value, now)))
			dp.SetDoubleValue(p.Value)
			putLabels(dp.Attributes(), p.Labels)
		case Histogram:
			h := p.Histogram
			dp := m.Histogram().DataPoints().AppendEmpty()
			dp.SetTimestamp(ts)
			dp.SetStartTimestamp(pcommon.NewTimestampFromTime(starts.start(p, float64(h.Count()), now)))
			dp.ExplicitBounds().FromRaw(h.Bounds)
			dp.BucketCounts().FromRaw(h.Counts)
			dp.SetCount(h.Count())
			dp.SetSum(h.Sum)
			putLabels(dp.Attributes(), p.Labels)
		}
	}
	return dropped, errs
}

func (b *Builder) metric(containerID, collector string, desc Desc, help string) pmetric.Metric {
	name := desc.ExportedName(collector)
	key := metricKey{containerID, name}
	if m, ok := b.metrics[key]; ok {
		return m
	}
	ms, ok := b.scopes[containerID]
	if !ok {
		rm := b.md.ResourceMetrics().AppendEmpty()
		container.PutResource(rm.Resource().Attributes(), container.Describe(b.containers, containerID))
		utf8safe.Map(rm.Resource().Attributes())
		sm := rm.ScopeMetrics().AppendEmpty()
		sm.Scope().SetName(b.scopeName)
		sm.Scope().SetVersion(b.scopeVersion)
		for k, v := range b.scopeAttrs {
			sm.Scope().Attributes().PutStr(k, v)
		}
		ms = sm.Metrics()
		b.scopes[containerID] = ms
	}
	m := ms.AppendEmpty()
	m.SetName(utf8safe.String(name))
	m.SetUnit(desc.Unit)
	if desc.Description != "" {
		m.SetDescription(desc.Description)
	} else {
		m.SetDescription(help)
	}
	switch desc.Kind {
	case Gauge:
		m.SetEmptyGauge()
	case Counter:
		s := m.SetEmptySum()
		s.SetIsMonotonic(true)
		s.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	case Histogram:
		m.SetEmptyHistogram().SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	}
	b.metrics[key] = m
	return m
}

// putLabels copies a point's labels, made valid UTF-8: label values are
// often interface names, commands or cgroup paths, which any process can
// fill with arbitrary bytes.
func putLabels(attrs pcommon.Map, labels map[string]string) {
	attrs.EnsureCapacity(len(labels))
	for k, v := range labels {
		attrs.PutStr(utf8safe.String(k), utf8safe.String(v))
	}
}

func (p *Data) check() error {
	if p.Name == "" {
		return errors.New("empty name")
	}
	switch p.Kind {
	case Gauge:
	case Counter:
		if p.Value < 0 || math.IsNaN(p.Value) || math.IsInf(p.Value, 0) {
			return fmt.Errorf("counter value %v is not a finite non-negative number", p.Value)
		}
	case Histogram:
		h := p.Histogram
		if h == nil {
			return errors.New("histogram without a value")
		}
		if len(h.Counts) != len(h.Bounds)+1 {
			return fmt.Errorf("histogram has %d counts for %d bounds (want bounds+1)", len(h.Counts), len(h.Bounds))
		}
		if !slices.IsSorted(h.Bounds) {
			return errors.New("histogram bounds are not sorted")
		}
	default:
		return fmt.Errorf("unknown kind %d", p.Kind)
	}
	return nil
}

// StartTracker gives cumulative points their start timestamp: the collector's
// start (or the point's own StartTime), moved forward when the value goes
// down, which means the source was reset. One tracker belongs to one
// collector of one receiver.
type StartTracker struct {
	defaultStart time.Time
	round        uint64
	series       map[string]*seriesStart
}

type seriesStart struct {
	start     time.Time
	last      float64
	lastTime  time.Time
	seenRound uint64
}

// forgetAfter is how many rounds a series may be absent before its state is
// dropped, so that churning label sets (containers coming and going) cannot
// grow the tracker without bound.
const forgetAfter = 5

// NewStartTracker returns a tracker whose default start time is start.
func NewStartTracker(start time.Time) *StartTracker {
	return &StartTracker{defaultStart: start, series: map[string]*seriesStart{}}
}

func (t *StartTracker) start(p *Data, value float64, now time.Time) time.Time {
	key := seriesKey(p)
	s, ok := t.series[key]
	switch {
	case !ok:
		s = &seriesStart{start: t.defaultStart}
		if !p.StartTime.IsZero() {
			s.start = p.StartTime
		}
		t.series[key] = s
	case value < s.last:
		// A reset: the new accumulation began after the previous sample.
		s.start = s.lastTime
	}
	s.last, s.lastTime, s.seenRound = value, now, t.round
	return s.start
}

// EndRound closes one collection round and forgets series not seen lately.
func (t *StartTracker) EndRound() {
	t.round++
	for k, s := range t.series {
		if t.round-s.seenRound > forgetAfter {
			delete(t.series, k)
		}
	}
}

// Len is the number of series tracked.
func (t *StartTracker) Len() int { return len(t.series) }

func seriesKey(p *Data) string {
	var sb strings.Builder
	sb.WriteString(p.Name)
	sb.WriteByte(0)
	sb.WriteString(p.ContainerID)
	keys := make([]string, 0, len(p.Labels))
	for k := range p.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		sb.WriteByte(0)
		sb.WriteString(k)
		sb.WriteByte('=')
		sb.WriteString(p.Labels[k])
	}
	return sb.String()
}
