package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// metricsBatch is one OTLP-JSON line as the file exporter writes it: a gauge
// name with one double point per value, each with attribute k=v, under a
// scope whose otelcol.component.id is scope.
func metricsBatch(t *testing.T, scope, name, k, v string, value float64) []byte {
	t.Helper()
	md := pmetric.NewMetrics()
	sm := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty()
	sm.Scope().Attributes().PutStr("otelcol.component.id", scope)
	m := sm.Metrics().AppendEmpty()
	m.SetName(name)
	dp := m.SetEmptyGauge().DataPoints().AppendEmpty()
	dp.SetDoubleValue(value)
	dp.Attributes().PutStr(k, v)
	b, err := (&pmetric.JSONMarshaler{}).MarshalMetrics(md)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func logsBatch(t *testing.T, host string, events ...string) []byte {
	t.Helper()
	ld := plog.NewLogs()
	rl := ld.ResourceLogs().AppendEmpty()
	rl.Resource().Attributes().PutStr("host.name", host)
	sl := rl.ScopeLogs().AppendEmpty()
	for i, e := range events {
		lr := sl.LogRecords().AppendEmpty()
		lr.SetEventName(e)
		lr.Attributes().PutInt("n", int64(i))
	}
	b, err := (&plog.JSONMarshaler{}).MarshalLogs(ld)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeLines(t *testing.T, lines ...[]byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "out.jsonl")
	var all []byte
	for _, l := range lines {
		all = append(all, l...)
	}
	if err := os.WriteFile(path, all, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func nl(b []byte) []byte { return append(b, '\n') }

func TestReadMetricsFileBatchesAndPartialLine(t *testing.T) {
	full := metricsBatch(t, "kernel/b", "m", "reason", "NO_SOCKET", 3)
	path := writeLines(t,
		nl(metricsBatch(t, "kernel", "m", "reason", "NO_SOCKET", 1)),
		[]byte("\n"), // an empty line is no batch
		nl(metricsBatch(t, "kernel", "m", "reason", "OTHER", 2)),
		nl(full),
		full[:len(full)/2], // the exporter is still writing this one
	)
	batches, err := ReadMetricsFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(batches) != 3 {
		t.Fatalf("%d batches, want 3 (the partial last line left out)", len(batches))
	}
	var got []float64
	for _, dp := range NumberPoints(batches, "m", map[string]string{"reason": "NO_SOCKET"}) {
		got = append(got, PointValue(dp))
	}
	if len(got) != 2 || got[0] != 1 || got[1] != 3 {
		t.Errorf("NO_SOCKET points %v, want [1 3] in file order", got)
	}
	if n := len(NumberPoints(batches, "m", nil)); n != 3 {
		t.Errorf("%d points with no attribute filter, want 3", n)
	}
	if n := len(NumberPoints(batches, "other", nil)); n != 0 {
		t.Errorf("%d points of a metric never written", n)
	}
	scoped := ScopedNumberPoints(batches, map[string]string{"otelcol.component.id": "kernel/b"}, "m", nil)
	if len(scoped) != 1 || PointValue(scoped[0]) != 3 {
		t.Errorf("kernel/b points %d, want the one of value 3", len(scoped))
	}

	// Once the line is complete the next read has it.
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(nl(full[len(full)/2:])); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if batches, err = ReadMetricsFile(path); err != nil || len(batches) != 4 {
		t.Fatalf("after the line completed: %d batches, %v; want 4", len(batches), err)
	}
}

func TestReadLogsFileRecordsByEventName(t *testing.T) {
	second := logsBatch(t, "b", "x.event", "x.event")
	path := writeLines(t, nl(logsBatch(t, "a", "x.event", "y.event")), nl(second), second[:10])
	batches, err := ReadLogsFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(batches) != 2 {
		t.Fatalf("%d batches, want 2", len(batches))
	}
	recs := Records(batches, "x.event")
	var hosts []string
	for _, r := range recs {
		h, _ := r.Resource.Attributes().Get("host.name")
		hosts = append(hosts, h.Str())
	}
	if strings.Join(hosts, ",") != "a,b,b" {
		t.Errorf("x.event records under hosts %v, want a,b,b", hosts)
	}
	if n := len(Records(batches, "y.event")); n != 1 {
		t.Errorf("%d y.event records, want 1", n)
	}
	if !AttributesMatch(recs[2].Attributes(), map[string]string{"n": "1"}) {
		t.Errorf("third record's attributes %v, want n=1 (an int matched by its string form)", recs[2].Attributes().AsRaw())
	}
}

func TestReadOTLPFileMissingAndCorrupt(t *testing.T) {
	if b, err := ReadLogsFile(filepath.Join(t.TempDir(), "none.jsonl")); err != nil || b != nil {
		t.Errorf("missing file: %v, %v; want no batches and no error", b, err)
	}
	path := writeLines(t, nl(logsBatch(t, "a", "x")), []byte("{\"resourceLogs\": [\n"))
	if _, err := ReadLogsFile(path); err == nil || !strings.Contains(err.Error(), path+" line 2") {
		t.Errorf("a complete line that is not OTLP JSON: error %v, want one naming %s line 2", err, path)
	}
}

func TestCollectorStopWaitAndLog(t *testing.T) {
	sh := "/bin/sh"
	if _, err := os.Stat(sh); err != nil {
		t.Skip("needs /bin/sh")
	}
	dir := t.TempDir()
	logPath := filepath.Join(dir, "collector.log")
	// A stand-in collector: says it is ready, exits 3 on SIGTERM.
	c := StartCollector(t, sh, CollectorOptions{
		Args:    []string{"-c", `trap 'echo stopping; exit 3' TERM; echo ready; while :; do sleep 0.05; done`},
		WorkDir: dir,
		LogPath: logPath,
		Poll:    10 * time.Millisecond,
	})
	c.WaitUntil(t, "the process says ready", 10*time.Second, func() (bool, string) {
		return strings.Contains(c.Log(), "ready"), c.Log()
	})
	if !c.Running() || c.Pid() <= 0 {
		t.Fatalf("running %v, pid %d", c.Running(), c.Pid())
	}
	took, code, err := c.Stop(syscall.SIGTERM, 10*time.Second)
	if err != nil || code != 3 || took <= 0 {
		t.Fatalf("Stop: took %v, code %d, %v; want exit status 3", took, code, err)
	}
	if c.Running() {
		t.Error("still running after Stop returned")
	}
	if _, _, err := c.Stop(syscall.SIGTERM, time.Second); err == nil {
		t.Error("Stop of an exited collector gave no error")
	}
	b, err := os.ReadFile(logPath)
	if err != nil || string(b) != "ready\nstopping\n" || c.Log() != string(b) {
		t.Errorf("log file %q (%v), Log %q; want both ready, stopping", b, err, c.Log())
	}
}

func TestTail(t *testing.T) {
	long := strings.Repeat("x", 500)
	got := Tail("a\nb\nc\n"+long+"\n", 2)
	if want := "c\n" + strings.Repeat("x", 400) + "…"; got != want {
		t.Errorf("Tail = %q, want %q", got, want)
	}
	if got := Tail("a\nb", 5); got != "a\nb" {
		t.Errorf("Tail of fewer lines = %q", got)
	}
}
