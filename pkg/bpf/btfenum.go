package bpf

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cilium/ebpf/btf"
)

// KernelEnum returns the running kernel's names for the values of enum
// name, read from its BTF, with trimPrefix removed from each name. Reading
// them at run time, rather than from a table frozen when we built, keeps
// names right on kernels that add, remove or renumber values (the drop
// reasons of skb/kfree_skb change in most releases). It shares the decoded
// kernel BTF with the program loads running at the same time.
func KernelEnum(name, trimPrefix string) (map[uint64]string, error) {
	cache := acquireBTF()
	defer releaseBTF()
	spec, err := cache.Kernel()
	if err != nil {
		return nil, fmt.Errorf("loading kernel BTF: %w", err)
	}
	return enumFrom(spec, name, trimPrefix)
}

func enumFrom(spec *btf.Spec, name, trimPrefix string) (map[uint64]string, error) {
	var enum *btf.Enum
	if err := spec.TypeByName(name, &enum); err != nil {
		if errors.Is(err, btf.ErrNotFound) {
			return nil, fmt.Errorf("the kernel's BTF has no enum %s: %w", name, err)
		}
		return nil, err
	}
	out := make(map[uint64]string, len(enum.Values))
	for _, v := range enum.Values {
		out[v.Value] = strings.TrimPrefix(v.Name, trimPrefix)
	}
	return out, nil
}

// EnumSlots is how many array slots index every value of names (its
// largest value plus one), at least minSlots: what a BPF map counting per
// enum value needs on this kernel, rather than a fixed guess.
func EnumSlots(names map[uint64]string, minSlots uint32) uint32 {
	n := minSlots
	for v := range names {
		if v < 1<<20 && uint32(v)+1 > n {
			n = uint32(v) + 1
		}
	}
	return n
}
