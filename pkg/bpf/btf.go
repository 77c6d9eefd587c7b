package bpf

import (
	"runtime/debug"
	"sync"
	"time"

	"github.com/cilium/ebpf/btf"
)

// The kernel's BTF (several MB decoded) is needed while programs load, for
// CO-RE relocations and BTF-typed attach points, and by KernelEnum; never
// after. Every load in flight shares one decoded copy, so a receiver
// starting five BPF collectors decodes it once, not once per collection.
// When nothing has used it for btfLinger the copy is dropped and the
// memory given back to the system, so it does not stay in a long-running
// collector.
var kernelBTF struct {
	mu    sync.Mutex
	cache *btf.Cache
	users int
	timer *time.Timer
}

// btfLinger bridges the gaps between collectors that start one after the
// other (the Manager starts them concurrently, but their Start functions
// reach Load at different times).
var btfLinger = 2 * time.Second

// acquireBTF returns the shared cache; release it with releaseBTF.
func acquireBTF() *btf.Cache {
	k := &kernelBTF
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.timer != nil {
		k.timer.Stop()
		k.timer = nil
	}
	if k.cache == nil {
		k.cache = btf.NewCache()
	}
	k.users++
	return k.cache
}

func releaseBTF() {
	k := &kernelBTF
	k.mu.Lock()
	defer k.mu.Unlock()
	k.users--
	if k.users > 0 {
		return
	}
	k.timer = time.AfterFunc(btfLinger, dropBTF)
}

func dropBTF() {
	k := &kernelBTF
	k.mu.Lock()
	if k.users > 0 || k.cache == nil {
		k.mu.Unlock()
		return
	}
	k.cache, k.timer = nil, nil
	k.mu.Unlock()
	// The decoded types are garbage now, and the mapping of
	// /sys/kernel/btf/vmlinux is released by a cleanup that only a GC
	// runs; with little allocation after start-up that GC could be minutes
	// away. Collect now and return the start-up garbage to the system.
	debug.FreeOSMemory()
}

// kernelBTFHeld says whether a decoded kernel BTF is held (for tests).
func kernelBTFHeld() bool {
	kernelBTF.mu.Lock()
	defer kernelBTF.mu.Unlock()
	return kernelBTF.cache != nil
}
