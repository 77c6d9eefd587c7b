// The test of this package builds the distribution of builder-config.yaml
// with ocb, runs it with config.yaml, and checks that the example
// collectors' data (an exec event this test causes, the forks metric)
// arrives in its files beside the built-in collectors'.
package kernelcollectors

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/tracing"
)

const waitFor = 30 * time.Second

func TestDistribution(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs Linux (the kernel receiver only runs there)")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (loading BPF programs)")
	}
	bin := build(t)

	dir := t.TempDir()
	program := copyProgram(t, "true", filepath.Join(dir, "watched", "exectest-dist"))
	col := start(t, bin, dir,
		"--config", "config.yaml",
		"--set=receivers::kernel::collection_interval=1s",
		"--set=receivers::kernel::execsnoop::filename_prefix="+filepath.Dir(program)+"/",
		"--set=exporters::file/events::path="+filepath.Join(dir, "events.jsonl"),
		"--set=exporters::file/metrics::path="+filepath.Join(dir, "metrics.jsonl"),
		"--set=service::telemetry::metrics::level=none",
	)
	var metrics []pmetric.Metrics
	var logs []plog.Logs
	read := func() {
		var err error
		if metrics, err = readLines(filepath.Join(dir, "metrics.jsonl"), (&pmetric.JSONUnmarshaler{}).UnmarshalMetrics); err != nil {
			t.Fatal(err)
		}
		if logs, err = readLines(filepath.Join(dir, "events.jsonl"), (&plog.JSONUnmarshaler{}).UnmarshalLogs); err != nil {
			t.Fatal(err)
		}
	}

	// The receiver reports each attached BPF program; execing before
	// execsnoop attached would be missed.
	col.waitUntil(t, "execsnoop attached its program", func() (bool, string) {
		read()
		p := points(metrics, "kernel.receiver.bpf.program.attached", tracing.AttrCollector, "execsnoop")
		return len(p) > 0, fmt.Sprintf("%d metrics batches", len(metrics))
	})

	pids := map[string]bool{}
	var found pcommon.Map
	col.waitUntil(t, "a kernel.process.exec event for "+program, func() (bool, string) {
		cmd := exec.Command(program)
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		pids[strconv.Itoa(cmd.Process.Pid)] = true
		read()
		for _, lr := range records(logs, "kernel.process.exec") {
			if v, ok := lr.Attributes().Get("process.executable.path"); ok && v.Str() == program {
				found = lr.Attributes()
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d kernel.process.exec records, none for %s", len(records(logs, "kernel.process.exec")), program)
	})
	if pid, _ := found.Get("process.pid"); !pids[pid.AsString()] {
		t.Errorf("event for pid %s, not one of the %d this test ran: %v", pid.AsString(), len(pids), found.AsRaw())
	}
	if name, _ := found.Get("thread.name"); name.AsString() != "exectest-dist" {
		t.Errorf("thread.name %q, want exectest-dist: %v", name.AsString(), found.AsRaw())
	}
	// The prefix filter holds in the distribution too: every event is of a
	// program under it, and so ran by this test.
	for _, lr := range records(logs, "kernel.process.exec") {
		if v, _ := lr.Attributes().Get("process.executable.path"); v.Str() != program {
			t.Errorf("event of %s, outside the filename_prefix", v.Str())
		}
	}

	col.waitUntil(t, "the example metrics, and the built-in collectors beside them", func() (bool, string) {
		read()
		var missing []string
		for _, want := range []struct{ name, key, value string }{
			{"kernel.forks.created", "", ""},
			{"kernel.execsnoop.execs", "", ""},
			{"kernel.loadavg.load1", "", ""}, // a built-in collector
			{"kernel.receiver.collector.active", tracing.AttrCollector, "forks"},
			{"kernel.receiver.collector.active", tracing.AttrCollector, "execsnoop"},
			{"kernel.receiver.collector.active", tracing.AttrCollector, "loadavg"},
		} {
			p := points(metrics, want.name, want.key, want.value)
			if len(p) == 0 {
				missing = append(missing, strings.TrimSuffix(want.name+"{"+want.key+"="+want.value, "{=")+"}")
				continue
			}
			last := value(p[len(p)-1])
			switch {
			case want.name == "kernel.receiver.collector.active" && last != 1:
				missing = append(missing, fmt.Sprintf("%s{%s=%s} is %v, not 1", want.name, want.key, want.value, last))
			case want.name == "kernel.execsnoop.execs" && last < 1:
				missing = append(missing, fmt.Sprintf("%s is %v", want.name, last))
			case want.name == "kernel.forks.created" && last <= float64(len(pids)):
				missing = append(missing, fmt.Sprintf("%s is %v, fewer than this test's own %d", want.name, last, len(pids)))
			}
		}
		return len(missing) == 0, strings.Join(missing, "; ")
	})

	if code, err := col.stop(10 * time.Second); err != nil || code != 0 {
		t.Errorf("stop: exit code %d, %v", code, err)
	}
}

// build runs ocb on builder-config.yaml in its two steps (see the comment
// there) and returns the binary. ocb comes from the repository's
// `make tools`; the Go build cache is shared with the main distribution's
// build, so a warm build takes seconds.
func build(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	ocb := filepath.Join(root, ".tools", "ocb")
	if _, err := os.Stat(ocb); err != nil {
		if _, err := exec.LookPath("make"); err != nil {
			t.Skipf("needs the make program to build ocb (%s is missing)", ocb)
		}
		runLogged(t, "make", "--no-print-directory", "-C", root, "tools")
	}
	start := time.Now()
	runLogged(t, ocb, "--config", "builder-config.yaml", "--skip-compilation")
	runLogged(t, ocb, "--config", "builder-config.yaml", "--skip-generate", "--skip-get-modules")
	t.Logf("ocb built the distribution in %s", time.Since(start).Round(100*time.Millisecond))
	bin, err := filepath.Abs(filepath.Join("_build", "otelcol-kernelcollectors"))
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

func runLogged(t *testing.T, name string, args ...string) {
	t.Helper()
	ctx := context.Background()
	if deadline, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline.Add(-30*time.Second))
		defer cancel()
	}
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, tail(string(out), 60))
	}
}

type collector struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // of Wait, once done is closed
}

// start runs bin from this directory (config.yaml is relative to it) with
// its output in dir/collector.log, shown if the test fails; it is killed
// at the end of the test if it still runs.
func start(t *testing.T, bin, dir string, args ...string) *collector {
	t.Helper()
	logPath := filepath.Join(dir, "collector.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &collector{cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		logFile.Close()
		close(c.done)
	}()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			_ = cmd.Process.Kill()
			<-c.done
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("collector log, last lines:\n%s", tail(string(b), 60))
		}
	})
	return c
}

// stop sends SIGTERM and returns the exit status.
func (c *collector) stop(timeout time.Duration) (int, error) {
	select {
	case <-c.done:
		return c.cmd.ProcessState.ExitCode(), fmt.Errorf("the collector had already exited: %v", c.err)
	default:
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return -1, err
	}
	select {
	case <-c.done:
		return c.cmd.ProcessState.ExitCode(), nil
	case <-time.After(timeout):
		return -1, fmt.Errorf("the collector still runs %s after SIGTERM", timeout)
	}
}

// waitUntil polls cond every half second until it holds, failing the test
// after waitFor or as soon as the collector exits.
func (c *collector) waitUntil(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		ok, state := cond()
		if ok {
			return
		}
		select {
		case <-c.done:
			t.Fatalf("the collector exited (%v) while waiting until %s", c.err, what)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s; last: %s", waitFor, what, state)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// readLines parses a file exporter's output, one OTLP-JSON batch a line;
// a last line still being written is left for the next read.
func readLines[T any](path string, unmarshal func([]byte) (T, error)) ([]T, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []T
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadBytes('\n')
		if err == io.EOF {
			return out, nil
		} else if err != nil {
			return nil, err
		}
		v, err := unmarshal(bytes.TrimSpace(line))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, v)
	}
}

// points returns the data points, in file order, of the gauge or sum
// named name, only those whose attribute key is value when key is set.
func points(batches []pmetric.Metrics, name, key, value string) []pmetric.NumberDataPoint {
	var out []pmetric.NumberDataPoint
	for _, md := range batches {
		for _, rm := range md.ResourceMetrics().All() {
			for _, sm := range rm.ScopeMetrics().All() {
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
						if v, ok := dp.Attributes().Get(key); key == "" || ok && v.AsString() == value {
							out = append(out, dp)
						}
					}
				}
			}
		}
	}
	return out
}

func value(dp pmetric.NumberDataPoint) float64 {
	if dp.ValueType() == pmetric.NumberDataPointValueTypeInt {
		return float64(dp.IntValue())
	}
	return dp.DoubleValue()
}

// records returns the log records with EventName event.
func records(batches []plog.Logs, event string) []plog.LogRecord {
	var out []plog.LogRecord
	for _, ld := range batches {
		for _, rl := range ld.ResourceLogs().All() {
			for _, sl := range rl.ScopeLogs().All() {
				for _, lr := range sl.LogRecords().All() {
					if lr.EventName() == event {
						out = append(out, lr)
					}
				}
			}
		}
	}
	return out
}

// copyProgram copies the program name (looked up in PATH) to path, so
// that the test knows the path its exec event carries.
func copyProgram(t *testing.T, name, path string) string {
	t.Helper()
	src, err := exec.LookPath(name)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
