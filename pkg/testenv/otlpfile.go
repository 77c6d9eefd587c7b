package testenv

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// ReadMetricsFile parses what a file exporter wrote to path, one OTLP-JSON
// batch a line. A missing file is no batches yet; a last line without its
// newline is still being written and is left for the next read; a complete
// line that does not parse is an error naming the file and line.
func ReadMetricsFile(path string) ([]pmetric.Metrics, error) {
	return readOTLPLines(path, (&pmetric.JSONUnmarshaler{}).UnmarshalMetrics)
}

// ReadLogsFile is ReadMetricsFile for a logs pipeline's file exporter.
func ReadLogsFile(path string) ([]plog.Logs, error) {
	return readOTLPLines(path, (&plog.JSONUnmarshaler{}).UnmarshalLogs)
}

func readOTLPLines[T any](path string, unmarshal func([]byte) (T, error)) ([]T, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []T
	r := bufio.NewReader(f)
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if err == io.EOF {
			return out, nil // line, if any, is the partial one
		} else if err != nil {
			return nil, err
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		v, err := unmarshal(line)
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, n, err)
		}
		out = append(out, v)
	}
}

// NumberPoints returns, in file order, the data points of every gauge or
// sum named name whose attributes include want (compared as strings, as
// pcommon.Value.AsString renders them). A nil want matches every point.
func NumberPoints(batches []pmetric.Metrics, name string, want map[string]string) []pmetric.NumberDataPoint {
	return ScopedNumberPoints(batches, nil, name, want)
}

// ScopedNumberPoints is NumberPoints restricted to the scopes whose
// attributes include scopeWant, e.g. {"otelcol.component.id": "kernel/b"}
// to tell two receivers of one collector apart.
func ScopedNumberPoints(batches []pmetric.Metrics, scopeWant map[string]string, name string, want map[string]string) []pmetric.NumberDataPoint {
	var out []pmetric.NumberDataPoint
	for _, md := range batches {
		for _, rm := range md.ResourceMetrics().All() {
			for _, sm := range rm.ScopeMetrics().All() {
				if !AttributesMatch(sm.Scope().Attributes(), scopeWant) {
					continue
				}
				for _, m := range sm.Metrics().All() {
					if m.Name() != name {
						continue
					}
					var dps pmetric.NumberDataPointSlice
					switch m.Type() {
					case pmetric.MetricTypeGauge:
						dps = m.Gauge().DataPoints()
					case pmetric.MetricTypeSum:
						dps = m.Sum().DataPoints()
					default:
						continue
					}
					for _, dp := range dps.All() {
						if AttributesMatch(dp.Attributes(), want) {
							out = append(out, dp)
						}
					}
				}
			}
		}
	}
	return out
}

// PointValue is dp's value as a float64, whether it holds an int or a double.
func PointValue(dp pmetric.NumberDataPoint) float64 {
	if dp.ValueType() == pmetric.NumberDataPointValueTypeInt {
		return float64(dp.IntValue())
	}
	return dp.DoubleValue()
}

// AttributesMatch reports whether attrs has every key of want with the
// string form of its value equal to want's.
func AttributesMatch(attrs pcommon.Map, want map[string]string) bool {
	for k, w := range want {
		if v, ok := attrs.Get(k); !ok || v.AsString() != w {
			return false
		}
	}
	return true
}

// Record is a log record with the Resource it was exported under.
type Record struct {
	plog.LogRecord
	Resource pcommon.Resource
}

// Records returns, in file order, the log records whose EventName is event.
func Records(batches []plog.Logs, event string) []Record {
	var out []Record
	for _, ld := range batches {
		for _, rl := range ld.ResourceLogs().All() {
			for _, sl := range rl.ScopeLogs().All() {
				for _, lr := range sl.LogRecords().All() {
					if lr.EventName() == event {
						out = append(out, Record{LogRecord: lr, Resource: rl.Resource()})
					}
				}
			}
		}
	}
	return out
}
