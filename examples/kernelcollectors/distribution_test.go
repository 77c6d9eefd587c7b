// The test of this package builds the distribution of builder-config.yaml
// with ocb, runs it with config.yaml, and checks that the example
// collectors' data (an exec event this test causes, the forks metric)
// arrives in its files beside the built-in collectors'.
package kernelcollectors

import (
	"context"
	"fmt"
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

	"github.com/otelcol-kernel/otelcol-kernel/pkg/testenv"
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
	// From this directory: config.yaml is relative to it.
	col := testenv.StartCollector(t, bin, testenv.CollectorOptions{LogPath: filepath.Join(dir, "collector.log"), Poll: 500 * time.Millisecond, Args: []string{
		"--config", "config.yaml",
		"--set=receivers::kernel::collection_interval=1s",
		"--set=receivers::kernel::execsnoop::filename_prefix=" + filepath.Dir(program) + "/",
		"--set=exporters::file/events::path=" + filepath.Join(dir, "events.jsonl"),
		"--set=exporters::file/metrics::path=" + filepath.Join(dir, "metrics.jsonl"),
		"--set=service::telemetry::metrics::level=none",
	}})
	var metrics []pmetric.Metrics
	var logs []plog.Logs
	read := func() {
		var err error
		if metrics, err = testenv.ReadMetricsFile(filepath.Join(dir, "metrics.jsonl")); err != nil {
			t.Fatal(err)
		}
		if logs, err = testenv.ReadLogsFile(filepath.Join(dir, "events.jsonl")); err != nil {
			t.Fatal(err)
		}
	}

	// The receiver reports each attached BPF program; execing before
	// execsnoop attached would be missed.
	col.WaitUntil(t, "execsnoop attached its program", waitFor, func() (bool, string) {
		read()
		p := testenv.NumberPoints(metrics, "kernel.receiver.bpf.program.attached", map[string]string{tracing.AttrCollector: "execsnoop"})
		return len(p) > 0, fmt.Sprintf("%d metrics batches", len(metrics))
	})

	pids := map[string]bool{}
	var found pcommon.Map
	col.WaitUntil(t, "a kernel.process.exec event for "+program, waitFor, func() (bool, string) {
		cmd := exec.Command(program)
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
		pids[strconv.Itoa(cmd.Process.Pid)] = true
		read()
		for _, lr := range testenv.Records(logs, "kernel.process.exec") {
			if v, ok := lr.Attributes().Get("process.executable.path"); ok && v.Str() == program {
				found = lr.Attributes()
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d kernel.process.exec records, none for %s", len(testenv.Records(logs, "kernel.process.exec")), program)
	})
	if pid, _ := found.Get("process.pid"); !pids[pid.AsString()] {
		t.Errorf("event for pid %s, not one of the %d this test ran: %v", pid.AsString(), len(pids), found.AsRaw())
	}
	if name, _ := found.Get("thread.name"); name.AsString() != "exectest-dist" {
		t.Errorf("thread.name %q, want exectest-dist: %v", name.AsString(), found.AsRaw())
	}
	// The prefix filter holds in the distribution too: every event is of a
	// program under it, and so ran by this test.
	for _, lr := range testenv.Records(logs, "kernel.process.exec") {
		if v, _ := lr.Attributes().Get("process.executable.path"); v.Str() != program {
			t.Errorf("event of %s, outside the filename_prefix", v.Str())
		}
	}

	col.WaitUntil(t, "the example metrics, and the built-in collectors beside them", waitFor, func() (bool, string) {
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
			var attrs map[string]string
			if want.key != "" {
				attrs = map[string]string{want.key: want.value}
			}
			p := testenv.NumberPoints(metrics, want.name, attrs)
			if len(p) == 0 {
				missing = append(missing, strings.TrimSuffix(want.name+"{"+want.key+"="+want.value, "{=")+"}")
				continue
			}
			last := testenv.PointValue(p[len(p)-1])
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

	if _, code, err := col.Stop(syscall.SIGTERM, 10*time.Second); err != nil || code != 0 {
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
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, testenv.Tail(string(out), 60))
	}
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
