package tracing

import (
	"sort"
	"sync"
)

// Program is one attached BPF program, as the receiver reports it.
type Program struct {
	Collector string
	// Hook is the collector's logical hook ("kfree_skb"), Attach the
	// candidate it ended on ("tp_btf:kfree_skb_btf"), Name the program.
	Hook, Attach, Name string
	// Stats reads the kernel's run count and run time; ok is false when it
	// cannot (the program is closed, or the kernel lacks the counters).
	Stats func() (runs uint64, runTimeNs uint64, ok bool)
}

// Programs is the set of BPF programs one receiver has attached. The BPF
// platform adds to it as collectors load and removes on close; the
// manager reports it. It belongs to a receiver instance.
type Programs struct {
	mu   sync.Mutex
	next int
	set  map[int]Program
}

// NewPrograms returns an empty set.
func NewPrograms() *Programs { return &Programs{set: map[int]Program{}} }

// For returns the view of ps that a collector's Settings carry.
func (ps *Programs) For(collector string) *CollectorPrograms {
	return &CollectorPrograms{collector: collector, all: ps}
}

// Add records p and returns the function that removes it again.
func (ps *Programs) Add(p Program) (remove func()) {
	if ps == nil {
		return func() {}
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	id := ps.next
	ps.next++
	ps.set[id] = p
	return func() {
		ps.mu.Lock()
		defer ps.mu.Unlock()
		delete(ps.set, id)
	}
}

// List returns the programs, sorted by collector, hook and name.
func (ps *Programs) List() []Program {
	if ps == nil {
		return nil
	}
	ps.mu.Lock()
	out := make([]Program, 0, len(ps.set))
	for _, p := range ps.set {
		out = append(out, p)
	}
	ps.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Collector != b.Collector {
			return a.Collector < b.Collector
		}
		if a.Hook != b.Hook {
			return a.Hook < b.Hook
		}
		return a.Name < b.Name
	})
	return out
}
