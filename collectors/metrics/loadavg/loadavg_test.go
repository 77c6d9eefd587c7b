package loadavg

import (
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/metric"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/tasks"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/testenv"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/tracing/tracingtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func values(data []*metric.Data) map[string]float64 {
	out := map[string]float64{}
	for _, d := range data {
		out[d.Name] = d.Value
	}
	return out
}

func TestUpdateMatchesProcfs(t *testing.T) {
	h := tracingtest.New(t, "loadavg", nil)
	got := values(h.Update(t))
	require.Len(t, got, 6)

	fields := strings.Fields(readFile(t, "/proc/loadavg"))
	load1, err := strconv.ParseFloat(fields[0], 64)
	require.NoError(t, err)
	// The kernel recomputes the averages every 5 s: allow one step of drift.
	assert.InDelta(t, load1, got["load1"], 1.0)
	assert.GreaterOrEqual(t, got["nr_running"], 1.0, "this test itself is running")
	for _, k := range []string{"load5", "load15", "nr_blocked", "nr_uninterruptible"} {
		assert.GreaterOrEqual(t, got[k], 0.0, k)
	}
}

// TestCountsTasksInDState pins writers in D state on a frozen filesystem
// and checks nr_uninterruptible counts them, through the task iterator and
// through the /proc scan it falls back to, and that the iterator agrees with
// an independent count from /proc.
func TestCountsTasksInDState(t *testing.T) {
	for _, path := range []string{"task iterator", "/proc scan"} {
		t.Run(path, func(t *testing.T) {
			fs := testenv.NewFrozenFS(t)
			h := tracingtest.New(t, "loadavg", nil)
			if path == "task iterator" {
				testenv.RequireRoot(t, "loading the BPF task iterator")
				h.Run(t)
				h.WaitAttached(t, 30*time.Second)
				attach := h.Programs.List()[0].Attach
				assert.Equal(t, "iter:count_uninterruptible", attach)
			}
			before := values(h.Update(t))["nr_uninterruptible"]

			const writers = 5
			fs.StartWriters(writers)
			during := values(h.Update(t))["nr_uninterruptible"]
			// Other tasks on the host may enter or leave D meanwhile; ours are pinned there.
			assert.GreaterOrEqual(t, during, before+writers-1)
			assert.GreaterOrEqual(t, during, float64(writers))
			if path == "task iterator" {
				// The same figure read independently, from every thread's
				// /proc stat file, around the iterator's reading.
				p1, err := tasks.CountUninterruptible()
				require.NoError(t, err)
				it := values(h.Update(t))["nr_uninterruptible"]
				p2, err := tasks.CountUninterruptible()
				require.NoError(t, err)
				assert.InDelta(t, float64(p1+p2)/2, it, 2+math.Abs(float64(p1-p2))/2, "iterator %v, /proc %d and %d", it, p1, p2)
			}

			fs.Thaw()
			require.Eventually(t, func() bool {
				return values(h.Update(t))["nr_uninterruptible"] < during-writers+1
			}, 10*time.Second, 50*time.Millisecond, "the writers left D state after the thaw")
		})
	}
}

func TestScanThreadsOff(t *testing.T) {
	h := tracingtest.New(t, "loadavg", &Config{ScanThreads: false})
	got := values(h.Update(t))
	assert.NotContains(t, got, "nr_uninterruptible")
	assert.Contains(t, got, "load1")
}

func readFile(t *testing.T, path string) string {
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

// BenchmarkCountUninterruptible compares, side by side, one count of the
// D-state threads through the task iterator and through the /proc scan.
func BenchmarkCountUninterruptible(b *testing.B) {
	testenv.RequireRoot(b, "loading the BPF task iterator")
	h := tracingtest.New(b, "loadavg", nil)
	h.Run(b)
	h.WaitAttached(b, 30*time.Second)
	c := h.Attr.TracingData.(*loadavgCollector)
	b.Run("task iterator", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.countUninterruptible(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("/proc scan", func(b *testing.B) {
		for b.Loop() {
			if _, err := tasks.CountUninterruptible(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
