package metric

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkUpdateToPdata converts one collection round of 1000 points (half
// gauges, half labelled counters, over 10 containers) into pmetric.Metrics.
func BenchmarkUpdateToPdata(b *testing.B) {
	descs := map[string]Desc{
		"g": {Name: "g", Kind: Gauge, Unit: "1", Description: "g", PerContainer: true},
		"c": {Name: "c", Kind: Counter, Unit: "1", Description: "c", PerContainer: true, Labels: []Label{{"device", "d"}}},
	}
	var data []*Data
	for i := range 500 {
		cid := fmt.Sprintf("container%d", i%10)
		data = append(data,
			NewContainerGaugeData(cid, "g", float64(i), "", nil),
			NewContainerCounterData(cid, "c", float64(i), "", map[string]string{"device": fmt.Sprintf("eth%d", i)}))
	}
	builder := NewBuilder("bench", "")
	starts := NewStartTracker(time.Now())
	now := time.Now()
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		builder.Append("bench", descs, starts, now, data)
		starts.EndRound()
		if builder.Emit().DataPointCount() != len(data) {
			b.Fatal("points lost")
		}
	}
	b.ReportMetric(float64(b.N*len(data))/time.Since(start).Seconds(), "points/s")
}
