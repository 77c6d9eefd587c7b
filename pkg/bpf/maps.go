package bpf

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/cilium/ebpf"
)

// noBatchOps is set once the kernel has refused a batch lookup as not
// supported (BPF_MAP_LOOKUP_BATCH is 5.6+), so later reads go straight to
// the per-key fallback.
var noBatchOps atomic.Bool

// SumPerCPU reads every slot of a per-CPU array of uint64 counters and
// returns each slot's sum over CPUs. It is one syscall for the whole map
// (BPF_MAP_LOOKUP_BATCH) where the kernel has batch operations, and one
// lookup per slot where it does not; collectors call it once per
// collection round, never per event or on a timer of their own.
func SumPerCPU(m *ebpf.Map) ([]uint64, error) {
	if m == nil {
		return nil, errors.New("bpf: no map")
	}
	if m.Type() != ebpf.PerCPUArray || m.ValueSize() != 8 {
		return nil, fmt.Errorf("bpf: map %s is %s with %d-byte values, not a per-CPU array of uint64", m, m.Type(), m.ValueSize())
	}
	if !noBatchOps.Load() {
		sums, err := sumPerCPUBatch(m)
		if err == nil {
			return sums, nil
		}
		if !errors.Is(err, ebpf.ErrNotSupported) {
			return nil, err
		}
		noBatchOps.Store(true)
	}
	return sumPerCPUEach(m)
}

func sumPerCPUBatch(m *ebpf.Map) ([]uint64, error) {
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, err
	}
	n := int(m.MaxEntries())
	keys := make([]uint32, n)
	values := make([]uint64, n*cpus)
	var cursor ebpf.MapBatchCursor
	got, err := m.BatchLookup(&cursor, keys, values, nil)
	// An array answers ENOENT ("no more keys") along with its last batch.
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return nil, err
	}
	if got != n {
		return nil, fmt.Errorf("bpf: batch lookup of %s returned %d of %d slots", m, got, n)
	}
	sums := make([]uint64, n)
	for i, k := range keys {
		if int(k) >= n {
			return nil, fmt.Errorf("bpf: batch lookup of %s returned key %d past its %d slots", m, k, n)
		}
		var s uint64
		for _, v := range values[i*cpus : (i+1)*cpus] {
			s += v
		}
		sums[k] = s
	}
	return sums, nil
}

func sumPerCPUEach(m *ebpf.Map) ([]uint64, error) {
	sums := make([]uint64, m.MaxEntries())
	var perCPU []uint64
	for k := range sums {
		if err := m.Lookup(uint32(k), &perCPU); err != nil {
			return nil, fmt.Errorf("bpf: reading %s[%d]: %w", m, k, err)
		}
		for _, v := range perCPU {
			sums[k] += v
		}
	}
	return sums, nil
}
