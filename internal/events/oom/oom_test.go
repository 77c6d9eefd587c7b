package oom

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/otelcol-kernel/otelcol-kernel/internal/bpf"
	"github.com/otelcol-kernel/otelcol-kernel/internal/testenv"
	"github.com/otelcol-kernel/otelcol-kernel/internal/tracing/tracingtest"
)

func TestMain(m *testing.M) {
	testenv.MaybeRunMemoryHog()
	goleak.VerifyTestMain(m)
}

func TestCgroupOOMKill(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts bpf.Options
	}{
		{"best hook", bpf.Options{}},
		{"tracepoint", bpf.Options{Force: map[string]bpf.Kind{"oom_victim": bpf.Tracepoint}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.opts.Force != nil {
				testenv.Tracefs(t)
			}
			name := fmt.Sprintf("kps-oom-%d-%d", os.Getpid(), time.Now().UnixNano()%100000)
			dir := testenv.MemoryCgroupV1(t, name, 64<<20)
			h := tracingtest.New(t, "oom", nil)
			setOpts(h.Attr.TracingData.(*oomCollector), tc.opts)
			h.Run(t)
			time.Sleep(300 * time.Millisecond) // attached

			pid := testenv.RunMemoryHog(t, dir)
			events := h.WaitEvents(t, 10*time.Second, 1, func(e tracingtest.Event) bool { return e.Attr("pid") == strconv.Itoa(pid) })
			time.Sleep(300 * time.Millisecond)
			var mine []tracingtest.Event
			for _, e := range h.Events(t) {
				if e.Attr("pid") == strconv.Itoa(pid) {
					mine = append(mine, e)
				}
			}
			require.Len(t, mine, 1, "exactly one event for the victim")
			e := events[0]
			assert.Equal(t, "kernel.oom", e.EventName())
			assert.Equal(t, "oom.test", e.Attr("comm"))
			assert.Equal(t, "Error", e.SeverityText())
			assert.Equal(t, "cgroup", e.Attr("scope"))
			assert.Equal(t, "/"+name, e.Attr("oom_cgroup"))
			assert.Equal(t, "/"+name, e.Attr("memory_cgroup.path"))
			assert.Equal(t, strconv.Itoa(64<<20), e.Attr("memory_cgroup.limit_bytes"))
			assert.Equal(t, "inferred", e.Attr("scope_source"), "no kprobes here")
			stat, ok := e.Attributes().Get("memory_cgroup.stat")
			require.True(t, ok)
			_, ok = stat.Map().Get("rss")
			assert.True(t, ok, "memory.stat snapshot")
			mi, ok := e.Attributes().Get("host.meminfo")
			require.True(t, ok)
			total, _ := mi.Map().Get("MemTotal")
			assert.Positive(t, total.Int())

			var kills float64
			for _, d := range h.Update(t) {
				if d.Labels["memory_cgroup"] == "/"+name {
					kills += d.Value
					assert.Equal(t, "cgroup", d.Labels["scope"])
				}
			}
			assert.Equal(t, 1.0, kills)
		})
	}
}

// setOpts applies a test's hook or channel choice, keeping the program registry.
func setOpts(c *oomCollector, o bpf.Options) {
	c.opts.Force, c.opts.PerfBuffer = o.Force, o.PerfBuffer
}
