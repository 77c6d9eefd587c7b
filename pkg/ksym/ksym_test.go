package ksym

import (
	"bufio"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/testenv"
)

const listing = `ffffffff81000000 T _stext
ffffffff81001000 t do_one_initcall
ffffffff81002000 D some_data
ffffffff81003000 T kfree_skb_reason
ffffffffc0001000 t veth_xmit	[veth]
`

func TestResolve(t *testing.T) {
	tab, err := Parse(strings.NewReader(listing))
	require.NoError(t, err)
	assert.Equal(t, 4, tab.Len(), "data symbols are left out")
	for addr, want := range map[uint64]string{
		0xffffffff81000010: "_stext+0x10",
		0xffffffff81001000: "do_one_initcall+0x0",
		0xffffffff81002500: "do_one_initcall+0x1500", // data symbols do not split text
		0xffffffff8100305e: "kfree_skb_reason+0x5e",
		0xffffffffc0001020: "veth_xmit [veth]+0x20",
		0x1000:             "0x1000",
		0xffffffffc0201020: "0xffffffffc0201020", // 2 MiB past veth_xmit: not inside it
	} {
		assert.Equal(t, want, tab.Symbolize(addr))
	}
	assert.Equal(t, []string{"kfree_skb_reason+0x1", "_stext+0x0"}, tab.Stack([]uint64{0xffffffff81003001, 0xffffffff81000000, 0, 0xffffffff81000001}))
}

func TestHiddenAddresses(t *testing.T) {
	_, err := Parse(strings.NewReader("0000000000000000 T _stext\n0000000000000000 T kfree_skb\n"))
	assert.ErrorIs(t, err, ErrHidden)
}

// The running kernel's table resolves the address it lists for a known
// function to that function.
func TestRunningKernel(t *testing.T) {
	testenv.RequireRoot(t, "reading kernel addresses from /proc/kallsyms")
	tab, err := Load()
	require.NoError(t, err)
	require.Greater(t, tab.Len(), 1000)
	f, err := os.Open("/proc/kallsyms")
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 3 && fields[2] == "do_sys_openat2" {
			addr, err := strconv.ParseUint(fields[0], 16, 64)
			require.NoError(t, err)
			name, off, ok := tab.Resolve(addr + 4)
			require.True(t, ok)
			assert.Equal(t, uint64(4), off)
			assert.Equal(t, "do_sys_openat2", name)
			return
		}
	}
	t.Fatal("do_sys_openat2 not in /proc/kallsyms")
}

// A listing out of address order (modules are listed after the kernel,
// and may load below it) is sorted, each name kept with its address.
func TestUnsortedListing(t *testing.T) {
	tab, err := Parse(strings.NewReader("ffffffff81003000 T c_func\nffffffff81001000 t a_func\nffffffffc0001000 t m_func\t[mod]\nffffffff81002000 T b_func\n"))
	require.NoError(t, err)
	assert.Equal(t, "a_func+0x10", tab.Symbolize(0xffffffff81001010))
	assert.Equal(t, "b_func+0x0", tab.Symbolize(0xffffffff81002000))
	assert.Equal(t, "c_func+0x1", tab.Symbolize(0xffffffff81003001))
	assert.Equal(t, "m_func [mod]+0x2", tab.Symbolize(0xffffffffc0001002))
}

func TestSharedIsReadOnce(t *testing.T) {
	testenv.RequireRoot(t, "reading kernel addresses from /proc/kallsyms")
	a, err := Shared()
	require.NoError(t, err)
	b, err := Shared()
	require.NoError(t, err)
	assert.Same(t, a, b)
}

// BenchmarkLoad is the one-time cost of reading the running kernel's
// table, with the memory the table keeps (B/op includes the growth).
func BenchmarkLoad(b *testing.B) {
	testenv.RequireRoot(b, "reading kernel addresses from /proc/kallsyms")
	var tab *Table
	for b.Loop() {
		var err error
		if tab, err = Load(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(tab.Len()), "symbols")
	b.ReportMetric(float64(len(tab.addrs)*8+len(tab.ends)*4+len(tab.names))/(1<<20), "MiB-kept")
}

func TestBadAddress(t *testing.T) {
	_, err := Parse(strings.NewReader("ffffffff8100zz00 T f\n"))
	assert.ErrorContains(t, err, `bad address "ffffffff8100zz00"`)
}

// TestSymbolizeAgreesWithTheTable: the one-pass lookup gives what a whole
// table read from the same kernel gives, for addresses inside, at the start
// of and below kernel functions.
func TestSymbolizeAgreesWithTheTable(t *testing.T) {
	table, err := Load()
	if errors.Is(err, ErrHidden) || errors.Is(err, os.ErrPermission) {
		t.Skip("needs CAP_SYSLOG to read kernel symbol addresses")
	}
	require.NoError(t, err)
	require.Greater(t, table.Len(), 1000)
	addrs := []uint64{1}
	for _, i := range []int{0, table.Len() / 3, table.Len() / 2, table.Len() - 2} {
		addrs = append(addrs, table.addrs[i], table.addrs[i]+0x10)
	}
	got, err := Symbolize(addrs)
	require.NoError(t, err)
	for _, addr := range addrs {
		want := table.Symbolize(addr)
		if strings.HasPrefix(want, "0x") {
			assert.NotContains(t, got, addr, "%#x is below every symbol", addr)
			continue
		}
		assert.Equal(t, want, got[addr], "%#x", addr)
	}
}
