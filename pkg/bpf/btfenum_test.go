package bpf

import (
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/testenv"
)

// The kernel's own rendering of drop reasons (the kfree_skb tracepoint's
// print format) must agree with what we read from BTF.
func TestKernelEnumMatchesTheTracepointFormat(t *testing.T) {
	testenv.Tracefs(t)
	format, err := os.ReadFile(filepath.Join(TracefsPath, "events/skb/kfree_skb/format"))
	if os.IsNotExist(err) {
		t.Skip("needs the skb/kfree_skb tracepoint")
	}
	require.NoError(t, err)
	pairs := regexp.MustCompile(`\{ (\d+), "([A-Z0-9_]+)" \}`).FindAllStringSubmatch(string(format), -1)
	require.NotEmpty(t, pairs, "the format lists the reasons")

	names, err := KernelEnum("skb_drop_reason", "SKB_DROP_REASON_")
	require.NoError(t, err)
	for _, p := range pairs {
		v, err := strconv.ParseUint(p[1], 10, 64)
		require.NoError(t, err)
		assert.Equal(t, p[2], names[v], "reason %d", v)
	}
	// The numbering differs between kernels (NO_SOCKET is 2 on 6.1, 3 on
	// 6.18): only the name may be relied on.
	assert.True(t, slices.Contains(slices.Collect(maps.Values(names)), "NO_SOCKET"), "NO_SOCKET is a reason")
}

func TestKernelEnumUnknown(t *testing.T) {
	testenv.RequireRoot(t, "reading kernel BTF")
	_, err := KernelEnum("no_such_enum_anywhere", "")
	assert.ErrorContains(t, err, "no enum no_such_enum_anywhere")
}
