// The kprobe candidate reads its argument through x86 pt_regs, and
// bpf/include/vmlinux.h is x86 BTF: this object is built for amd64 only
// (other architectures get oom_other.go).

package oom

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang-16 -cflags "-O2 -g -Wall -Werror" -target amd64 -type oom_event bpf oom.bpf.c -- -I../../../bpf/include
