package bpf

import (
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/testenv"
)

// Both ways of reading a per-CPU counter array (the batch lookup and the
// per-key fallback) give each slot's sum over CPUs.
func TestSumPerCPU(t *testing.T) {
	testenv.RequireRoot(t, "creating BPF maps")
	cpus, err := ebpf.PossibleCPU()
	require.NoError(t, err)
	const slots = 130
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: slots})
	require.NoError(t, err)
	defer m.Close()
	want := make([]uint64, slots)
	for k := range uint32(slots) {
		perCPU := make([]uint64, cpus)
		for c := range perCPU {
			perCPU[c] = uint64(k)*1000 + uint64(c) + 1
			want[k] += perCPU[c]
		}
		require.NoError(t, m.Put(k, perCPU))
	}
	batch, err := sumPerCPUBatch(m)
	require.NoError(t, err, "this kernel has batch lookups (5.6+)")
	assert.Equal(t, want, batch)
	each, err := sumPerCPUEach(m)
	require.NoError(t, err)
	assert.Equal(t, want, each)
	got, err := SumPerCPU(m)
	require.NoError(t, err)
	assert.Equal(t, want, got)
}

func TestSumPerCPURefusesOtherMaps(t *testing.T) {
	testenv.RequireRoot(t, "creating BPF maps")
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 4})
	require.NoError(t, err)
	defer m.Close()
	_, err = SumPerCPU(m)
	assert.ErrorContains(t, err, "not a per-CPU array of uint64")
}

func TestDecode(t *testing.T) {
	type rec struct {
		A uint32
		B uint16
		_ [2]byte
		C [3]uint64
	}
	raw := []byte{1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0}
	var r rec
	r.C[2] = 77 // not in raw: must read as zero
	require.NoError(t, Decode(raw, &r, 8))
	assert.Equal(t, rec{A: 1, B: 2, C: [3]uint64{3, 0, 0}}, r)
	assert.ErrorContains(t, Decode(raw[:7], &r, 8), "event of 7 bytes, want at least 8")
	assert.ErrorContains(t, Decode(raw, &r, 0), "event of 16 bytes, want at least 32")
}

// Loads in flight share one decoded kernel BTF, which is dropped once
// nothing has used it for a while.
func TestKernelBTFIsReleased(t *testing.T) {
	testenv.RequireRoot(t, "reading kernel BTF")
	old := btfLinger
	btfLinger = 50 * time.Millisecond
	t.Cleanup(func() { btfLinger = old })
	a := acquireBTF()
	b := acquireBTF()
	assert.Same(t, a, b, "concurrent users share one cache")
	_, err := a.Kernel()
	require.NoError(t, err)
	releaseBTF()
	releaseBTF()
	assert.True(t, kernelBTFHeld(), "kept for the next load for a while")
	assert.Eventually(t, func() bool { return !kernelBTFHeld() }, 5*time.Second, 10*time.Millisecond)
	c := acquireBTF()
	defer releaseBTF()
	assert.NotSame(t, a, c, "a later load decodes it again")
}
