package execsnoop

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/bpf"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/testenv"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/tracing"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/tracing/tracingtest"
)

// Every BPF reader and goroutine the collector started is gone once the
// harness has stopped it.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestExecIsReported runs a program from a directory of its own, with the
// collector filtering on that directory, and checks its event, once per
// hook candidate and event channel: a program this test started is the
// only one that can match, and one run just outside the prefix must not.
func TestExecIsReported(t *testing.T) {
	for _, tc := range []struct {
		name  string
		force bpf.Kind // "": the best candidate this kernel has
		opts  []tracingtest.Option
	}{
		{"best hook", "", nil},
		{"tracepoint", bpf.Tracepoint, []tracingtest.Option{tracingtest.ForceHook("sched_process_exec", bpf.Tracepoint)}},
		{"perf buffer", "", []tracingtest.Option{tracingtest.PerfBuffer()}},
	} {
		t.Run(tc.name, func(t *testing.T) { testExec(t, tc.force, tc.opts...) })
	}
}

func testExec(t *testing.T, force bpf.Kind, opts ...tracingtest.Option) {
	testenv.Tracefs(t) // the classic tracepoint attaches through tracefs
	dir := t.TempDir()
	inside := copyProgram(t, "true", filepath.Join(dir, "watched", "exectest-probe"))
	outside := copyProgram(t, "true", filepath.Join(dir, "exectest-other"))

	h := tracingtest.New(t, "execsnoop", &Config{FilenamePrefix: filepath.Join(dir, "watched") + "/"}, opts...)
	h.Run(t)
	h.WaitAttached(t, 30*time.Second)
	if force != "" {
		for _, p := range h.Programs.List() {
			assert.True(t, strings.HasPrefix(p.Attach, string(force)+":"), "forced %s, attached through %s", force, p.Attach)
		}
	}

	outsideCmd := exec.Command(outside)
	require.NoError(t, outsideCmd.Run())
	cmd := exec.Command(inside)
	require.NoError(t, cmd.Run())
	pid := strconv.Itoa(cmd.Process.Pid)

	events := h.WaitEvents(t, 10*time.Second, 1, func(e tracingtest.Event) bool { return e.Attr("process.pid") == pid })
	e := events[0]
	assert.Equal(t, "kernel.process.exec", e.EventName())
	assert.Equal(t, "exec "+inside+" (pid "+pid+", parent "+strconv.Itoa(os.Getpid())+")", e.Body().Str())
	assert.Equal(t, inside, e.Attr("process.executable.path"))
	assert.Equal(t, "exectest-probe", e.Attr("thread.name"), "comm is the basename of the program")
	assert.Equal(t, strconv.Itoa(os.Getpid()), e.Attr("process.parent_pid"), "this test started it")
	assert.Equal(t, pid, e.Attr("thread.id"), "a single-threaded exec")
	assert.Equal(t, "Info", e.SeverityText())
	assert.Equal(t, "", e.ContainerID(), "run on the host")

	// The filter ran in the kernel: the program outside the prefix, run
	// first, never produced an event.
	for _, ev := range h.Events(t) {
		assert.NotEqual(t, outside, ev.Attr("process.executable.path"))
		assert.NotEqual(t, strconv.Itoa(outsideCmd.Process.Pid), ev.Attr("process.pid"))
	}

	data := h.Update(t)
	execs, _ := tracingtest.Point(data, "execs", nil)
	assert.Equal(t, float64(len(h.Events(t))), execs)
	limited, _ := tracingtest.Point(data, "events.limited", nil)
	assert.Zero(t, limited)
	lost, _ := tracingtest.Point(data, "events.lost", nil)
	assert.Zero(t, lost)
	// What the receiver would report about this collector's program.
	prog := h.Programs.List()[0]
	attached, ok := h.SelfMetric("bpf.program.attached", map[string]string{
		tracing.AttrCollector: "execsnoop", tracing.AttrHook: "sched_process_exec", tracing.AttrAttachPoint: prog.Attach, tracing.AttrProgram: prog.Name,
	})
	assert.True(t, ok)
	assert.Equal(t, 1.0, attached)
}

// TestRateCap lets one event a second through and checks that the kernel
// counts the rest as limited rather than sending them.
func TestRateCap(t *testing.T) {
	testenv.Tracefs(t)
	dir := t.TempDir()
	prog := copyProgram(t, "true", filepath.Join(dir, "exectest-capped"))
	h := tracingtest.New(t, "execsnoop", &Config{FilenamePrefix: prog, EventsPerSecond: 1})
	h.Run(t)
	h.WaitAttached(t, 30*time.Second)

	const runs = 5
	start := time.Now()
	for range runs {
		require.NoError(t, exec.Command(prog).Run())
	}
	h.WaitEvents(t, 10*time.Second, 1, nil)
	// The cap's window is one second: runs done within it give one event.
	if time.Since(start) >= time.Second {
		t.Skipf("the %d runs took %v, longer than the cap's window: too slow a host to check the cap", runs, time.Since(start))
	}
	require.Eventually(t, func() bool {
		data := h.Update(t)
		execs, _ := tracingtest.Point(data, "execs", nil)
		limited, _ := tracingtest.Point(data, "events.limited", nil)
		return execs == 1 && limited == runs-1
	}, 10*time.Second, 50*time.Millisecond, "1 event sent, %d limited", runs-1)
}

func TestValidate(t *testing.T) {
	long := make([]byte, filenameLen)
	for i := range long {
		long[i] = 'a'
	}
	assert.ErrorContains(t, (&Config{FilenamePrefix: string(long)}).Validate(), "filename_prefix: 128 bytes, at most 127")
	assert.NoError(t, (&Config{FilenamePrefix: string(long[:filenameLen-1])}).Validate())
}

// copyProgram copies the program name (looked up in PATH) to path, so that
// the test controls the path its exec event carries.
func copyProgram(t *testing.T, name, path string) string {
	t.Helper()
	src, err := exec.LookPath(name)
	require.NoError(t, err)
	in, err := os.Open(src)
	require.NoError(t, err)
	defer in.Close()
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	out, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	require.NoError(t, err)
	_, err = io.Copy(out, in)
	require.NoError(t, err)
	require.NoError(t, out.Close())
	return path
}
