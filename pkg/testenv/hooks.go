package testenv

import (
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// RequireKprobes skips the test, naming the capability, unless this kernel
// can create kprobes (it has the kprobe PMU: CONFIG_KPROBES with perf
// events). The kernel-matrix runner (test/kernels) runs such tests on
// kernels that have them.
func RequireKprobes(t testing.TB) {
	t.Helper()
	if !HaveKprobes() {
		t.Skip("needs kprobes: this kernel has no kprobe PMU (/sys/bus/event_source/devices/kprobe)")
	}
}

// HaveKprobes says whether this kernel can create kprobes at all.
func HaveKprobes() bool {
	_, err := os.Stat("/sys/bus/event_source/devices/kprobe")
	return err == nil
}

// RequireFentry skips the test, naming the capability, unless this kernel
// can attach fentry programs (BPF trampolines). It asks the kernel with a
// program of its own, independent of the code under test.
func RequireFentry(t testing.TB) {
	t.Helper()
	RequireRoot(t, "loading BPF programs")
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.Tracing,
		AttachType:   ebpf.AttachTraceFEntry,
		AttachTo:     "__do_sys_getppid", // in BTF on 6.1 to 6.18, unlike the __x64_ wrapper
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
	})
	if err != nil {
		t.Skipf("needs fentry (BPF trampolines): this kernel cannot load one: %v", err)
	}
	defer prog.Close()
	l, err := link.AttachTracing(link.TracingOptions{Program: prog})
	if err != nil {
		t.Skipf("needs fentry (BPF trampolines): this kernel cannot attach one: %v", err)
	}
	l.Close()
}
