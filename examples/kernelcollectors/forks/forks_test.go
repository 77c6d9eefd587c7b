package forks

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/metric"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/tracing/tracingtest"
)

// processesLine reads the kernel's count directly, without procfs, so the
// test does not share the collector's parser.
func processesLine(t *testing.T) float64 {
	t.Helper()
	b, err := os.ReadFile("/proc/stat")
	require.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "processes "); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			require.NoError(t, err)
			return float64(n)
		}
	}
	t.Fatal("/proc/stat has no processes line")
	return 0
}

func created(t *testing.T, h *tracingtest.Harness) float64 {
	t.Helper()
	// h.Update also fails the test on a point the collector did not declare.
	data := h.Update(t)
	require.Len(t, data, 1)
	d := data[0]
	assert.Equal(t, "created", d.Name)
	assert.Equal(t, metric.Counter, h.Reg.Metrics[0].Kind)
	return d.Value
}

func TestCreatedMatchesProcStat(t *testing.T) {
	h := tracingtest.New(t, "forks", nil)

	// Other tasks on the host fork meanwhile: the reading lies between two
	// direct reads taken around it.
	before := processesLine(t)
	got := created(t, h)
	after := processesLine(t)
	assert.GreaterOrEqual(t, got, before)
	assert.LessOrEqual(t, got, after)

	// Each child this test starts is one more task created.
	const children = 5
	for range children {
		require.NoError(t, exec.Command("true").Run())
	}
	assert.GreaterOrEqual(t, created(t, h), after+children)
}
