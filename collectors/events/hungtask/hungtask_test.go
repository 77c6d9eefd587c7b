package hungtask

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/bpf"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/testenv"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/tracing/tracingtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestHungWritersAreReported freezes a filesystem under two writers, lets
// the hung-task detector (timeout lowered to 2 s for the test) find them,
// and checks the events, once per hook candidate and event channel.
func TestHungWritersAreReported(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts bpf.Options
	}{
		{"best hook", bpf.Options{}},
		{"tracepoint", bpf.Options{Force: map[string]bpf.Kind{"sched_process_hang": bpf.Tracepoint}}},
		{"perf buffer", bpf.Options{PerfBuffer: true}},
	} {
		t.Run(tc.name, func(t *testing.T) { testHungWriters(t, tc.opts) })
	}
}

func testHungWriters(t *testing.T, opts bpf.Options) {
	testenv.Tracefs(t)
	testenv.Sysctl(t, "kernel/hung_task_timeout_secs", "2")
	// Each report uses up one of the detector's log warnings; put them back.
	testenv.Sysctl(t, "kernel/hung_task_warnings", "10")
	// Made before the frozen fs, so that they are removed after its
	// writers have finished (cleanups run last in, first out).
	id := testenv.RandomContainerID()
	cg := testenv.NewContainerCgroups(t, "system.slice/docker-"+id+".scope")
	fs := testenv.NewFrozenFS(t)

	h := tracingtest.New(t, "hungtask", nil, tracingtest.BPFOptions(opts))
	h.Run(t)
	h.WaitAttached(t, 30*time.Second)

	writers := fs.StartWriters(2)
	// The first writer is a container's, the second the host's.
	for _, dir := range cg.Dirs {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(writers[0])), 0o644))
	}
	wantContainer := map[string]string{strconv.Itoa(writers[0]): id, strconv.Itoa(writers[1]): ""}
	want := map[string]bool{strconv.Itoa(writers[0]): true, strconv.Itoa(writers[1]): true}
	events := h.WaitEvents(t, 20*time.Second, 2, func(e tracingtest.Event) bool { return want[e.Attr("thread.id")] })
	fs.Thaw()

	seen := map[string]bool{}
	for _, e := range events {
		pid := e.Attr("thread.id")
		seen[pid] = true
		assert.Equal(t, "kernel.task.hung", e.EventName())
		assert.Equal(t, "sh", e.Attr("thread.name"))
		assert.Equal(t, pid, e.Attr("process.pid"), "a single-threaded shell")
		assert.Equal(t, "2", e.Attr("kernel.hung_task.timeout"))
		assert.Equal(t, "Error", e.SeverityText())
		assert.Equal(t, wantContainer[pid], e.ContainerID(), "writer %s", pid)

		frames := strings.Split(e.Attr("code.stacktrace"), "\n")
		require.NotEmpty(t, frames[0])
		assert.True(t, slices.ContainsFunc(frames, func(f string) bool { return strings.Contains(f, "percpu_rwsem") }),
			"a writer to a frozen fs waits on the superblock's rwsem: %v", frames)

		// The other writer is among the blocked tasks, with its stack.
		blocked, ok := e.Attributes().Get("kernel.blocked_tasks.list")
		require.True(t, ok)
		var others []string
		for _, b := range blocked.Slice().All() {
			m := b.Map()
			p, _ := m.Get("thread.id")
			others = append(others, p.AsString())
			if want[p.AsString()] {
				s, _ := m.Get("code.stacktrace")
				assert.NotEmpty(t, s.Str())
				got := ""
				if c, ok := m.Get("container.id"); ok {
					got = c.Str()
				}
				assert.Equal(t, wantContainer[p.AsString()], got, "blocked task %s", p.AsString())
			}
		}
		for other := range want {
			if other != pid {
				assert.Contains(t, others, other)
			}
		}
		n, _ := e.Attributes().Get("kernel.blocked_tasks.count")
		assert.GreaterOrEqual(t, n.Int(), int64(1))
	}
	assert.Len(t, seen, 2)

	reports, ok := tracingtest.Point(h.Update(t), "reports", nil)
	assert.True(t, ok)
	assert.GreaterOrEqual(t, reports, 2.0)
}

func TestStartStopsCleanly(t *testing.T) {
	testenv.Tracefs(t)
	h := tracingtest.New(t, "hungtask", nil)
	for range 3 {
		var wg sync.WaitGroup
		ctx, cancel := context.WithCancel(context.Background())
		wg.Add(1)
		var err error
		go func() { defer wg.Done(); err = h.Attr.TracingData.(*hungtaskCollector).Start(ctx) }()
		time.Sleep(200 * time.Millisecond)
		cancel()
		wg.Wait()
		require.NoError(t, err)
	}
}

func TestValidate(t *testing.T) {
	assert.ErrorContains(t, (&Config{MaxBlockedTasks: -1}).Validate(), "max_blocked_tasks: -1")
	assert.NoError(t, (&Config{MaxBlockedTasks: 3}).Validate())
}
