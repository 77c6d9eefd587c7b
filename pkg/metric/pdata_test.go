package metric

import (
	"errors"
	"flag"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/golden"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/pdatatest/pmetrictest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var testDescs = map[string]Desc{
	"load1":   {Name: "load1", Kind: Gauge, Unit: "{thread}", Description: "1-minute load"},
	"changes": {Name: "changes", Kind: Counter, Unit: "{change}", Description: "link changes", Labels: []Label{{"device", "d"}}},
	"latency": {Name: "latency", Kind: Histogram, Unit: "s", Description: "run queue latency", PerContainer: true},
	"oom":     {Name: "oom", FullName: "system.oom.kills", Kind: Counter, Unit: "{kill}", Description: "oom kills", PerContainer: true},
}

var (
	t0 = time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)
	t1 = t0.Add(10 * time.Second)
)

func TestBuilderGolden(t *testing.T) {
	b := NewBuilder("scope", "v1.2.3")
	starts := NewStartTracker(t0)
	boot := t0.Add(-time.Hour)
	dropped, errs := b.Append("demo", testDescs, starts, t1, []*Data{
		NewGaugeData("load1", 0.25, "", nil),
		NewCounterData("changes", 2, "", map[string]string{"device": "eth0"}),
		NewCounterData("changes", 5, "", map[string]string{"device": "eth1"}),
		NewContainerCounterData("c1", "oom", 1, "", nil).WithStartTime(boot),
		{Name: "latency", Kind: Histogram, ContainerID: "c1",
			Histogram: &HistogramValue{Bounds: []float64{0.001, 0.01}, Counts: []uint64{5, 3, 1}, Sum: 0.042}},
		NewGaugeData("undeclared", 1, "a metric nobody declared", nil),
	})
	assert.Zero(t, dropped)
	require.Len(t, errs, 1)
	assert.ErrorIs(t, errs[0], ErrUndeclared)

	got := b.Emit()
	path := filepath.Join("testdata", "metrics.yaml")
	if *update {
		require.NoError(t, golden.WriteMetrics(t, path, got, golden.SkipMetricTimestampNormalization()))
	}
	want, err := golden.ReadMetrics(path)
	require.NoError(t, err)
	require.NoError(t, pmetrictest.CompareMetrics(want, got, pmetrictest.IgnoreResourceAttributeValue("os.version")))
	assert.Zero(t, b.Emit().DataPointCount(), "Emit starts afresh")
}

func TestMalformedPointsAreDroppedOthersKept(t *testing.T) {
	b := NewBuilder("scope", "")
	dropped, errs := b.Append("demo", testDescs, NewStartTracker(t0), t1, []*Data{
		NewCounterData("changes", -1, "", nil),
		NewCounterData("changes", math.NaN(), "", nil),
		{Name: "latency", Kind: Histogram, Histogram: &HistogramValue{Bounds: []float64{1}, Counts: []uint64{1}}},
		{Name: "latency", Kind: Histogram, Histogram: &HistogramValue{Bounds: []float64{2, 1}, Counts: []uint64{1, 1, 1}}},
		{Name: "latency", Kind: Histogram},
		NewGaugeData("changes", 1, "", nil), // declared a counter
		{Kind: Gauge},
		NewGaugeData("load1", 1, "", nil),
	})
	assert.Equal(t, 7, dropped)
	assert.Len(t, errs, 7)
	for _, err := range errs {
		assert.False(t, errors.Is(err, ErrUndeclared))
	}
	md := b.Emit()
	assert.Equal(t, 1, md.DataPointCount())
	assert.Equal(t, "kernel.demo.load1", md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Name())
}

func TestCounterStartTimes(t *testing.T) {
	starts := NewStartTracker(t0)
	start := func(now time.Time, v float64) time.Time {
		b := NewBuilder("s", "")
		_, errs := b.Append("demo", testDescs, starts, now, []*Data{NewCounterData("changes", v, "", map[string]string{"device": "eth0"})})
		require.Empty(t, errs)
		starts.EndRound()
		return b.Emit().ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0).Sum().DataPoints().At(0).StartTimestamp().AsTime()
	}
	assert.Equal(t, t0, start(t1, 3), "first sight: the collector's start")
	assert.Equal(t, t0, start(t1.Add(10*time.Second), 5), "growing: unchanged")
	assert.Equal(t, t1.Add(10*time.Second), start(t1.Add(20*time.Second), 1), "a drop is a reset: start moves to the previous sample")
	assert.Equal(t, t1.Add(10*time.Second), start(t1.Add(30*time.Second), 4))
}

func TestStartTrackerForgetsVanishedSeries(t *testing.T) {
	starts := NewStartTracker(t0)
	b := NewBuilder("s", "")
	for i := range 3 {
		b.Append("demo", testDescs, starts, t1, []*Data{NewCounterData("changes", 1, "", map[string]string{"device": string(rune('a' + i))})})
	}
	starts.EndRound()
	assert.Equal(t, 3, starts.Len())
	for range forgetAfter + 1 {
		starts.EndRound()
	}
	assert.Zero(t, starts.Len(), "series not seen for a while are forgotten")
}

func TestCheckDeclared(t *testing.T) {
	descs := []Desc{testDescs["changes"], testDescs["load1"]}
	errs := CheckDeclared(descs, []*Data{
		NewCounterData("changes", 1, "", map[string]string{"device": "eth0"}),
		NewCounterData("changes", 1, "", map[string]string{"driver": "veth"}),
		NewGaugeData("changes", 1, "", nil),
		NewContainerGaugeData("c", "load1", 1, "", nil),
		NewGaugeData("nope", 1, "", nil),
	})
	var msgs []string
	for _, e := range errs {
		msgs = append(msgs, e.Error())
	}
	assert.Equal(t, []string{
		`metric "changes": label "driver" is not declared`,
		`metric "changes" is declared a counter but reported as a gauge`,
		`metric "load1" is declared host-only but has a container point`,
		`metric "nope" is not declared`,
	}, msgs)
}

func TestHistogramTemporality(t *testing.T) {
	b := NewBuilder("s", "")
	b.Append("demo", testDescs, NewStartTracker(t0), t1, []*Data{
		NewHistogramData("latency", []float64{1}, []uint64{2, 3}, 7, "", nil),
	})
	m := b.Emit().ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().At(0)
	assert.Equal(t, pmetric.AggregationTemporalityCumulative, m.Histogram().AggregationTemporality())
	assert.Equal(t, uint64(5), m.Histogram().DataPoints().At(0).Count())
}

// Label values come from interface names, commands and cgroup paths: any
// bytes a process chose. They leave valid UTF-8, and the receiver's scope
// attributes are on every scope.
func TestLabelsAreValidUTF8AndScopeAttributes(t *testing.T) {
	b := NewBuilder("s", "")
	b.SetScopeAttributes(map[string]string{"otelcol.component.id": "kernel/a"})
	_, errs := b.Append("demo", testDescs, NewStartTracker(t0), t1, []*Data{
		NewCounterData("changes", 1, "", map[string]string{"device": "veth\xff\xfe"}),
	})
	require.Empty(t, errs)
	md := b.Emit()
	sm := md.ResourceMetrics().At(0).ScopeMetrics().At(0)
	v, ok := sm.Scope().Attributes().Get("otelcol.component.id")
	require.True(t, ok)
	assert.Equal(t, "kernel/a", v.Str())
	dev, _ := sm.Metrics().At(0).Sum().DataPoints().At(0).Attributes().Get("device")
	assert.Equal(t, "veth\uFFFD\uFFFD", dev.Str())
}
