package bpf

import (
	"errors"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/tracing"
)

// Capability numbers (linux/capability.h).
const (
	CapNetAdmin = 12
	CapSysAdmin = 21
	CapPerfmon  = 38
	CapBPF      = 39
)

var capNames = map[int]string{CapNetAdmin: "CAP_NET_ADMIN", CapSysAdmin: "CAP_SYS_ADMIN", CapPerfmon: "CAP_PERFMON", CapBPF: "CAP_BPF"}

// HaveCapability reports whether the calling thread has capability c in
// its effective set. Go runs every thread with the process's set unless a
// thread changed its own, which this program never does.
func HaveCapability(c int) bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[c/32].Effective&(1<<(c%32)) != 0
}

// kernelKnowsCap reports whether the running kernel has capability c
// (CAP_BPF and CAP_PERFMON came in 5.8; before, CAP_SYS_ADMIN covers both).
func kernelKnowsCap(c int) bool {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return true
	}
	last, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return err != nil || c <= last
}

// CheckPrivileges says, as an error wrapping tracing.ErrNotPermitted, which
// capabilities this process lacks to load and attach tracing BPF
// programs: CAP_BPF (maps, programs, BTF) and CAP_PERFMON (tracing
// program types, perf events), or CAP_SYS_ADMIN for both (and alone on
// kernels before 5.8). Without it the kernel answers EPERM, which
// cilium/ebpf presents as a MEMLOCK limit, a condition retrying never fixes.
func CheckPrivileges() error {
	if HaveCapability(CapSysAdmin) {
		return nil
	}
	var missing []string
	for _, c := range []int{CapBPF, CapPerfmon} {
		if !kernelKnowsCap(c) {
			return tracing.NotPermitted("loading BPF programs needs CAP_SYS_ADMIN on this kernel (it predates CAP_BPF and CAP_PERFMON), which this process lacks")
		}
		if !HaveCapability(c) {
			missing = append(missing, capNames[c])
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return tracing.NotPermitted("loading and attaching tracing BPF programs needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN); this process lacks %s", strings.Join(missing, " and "))
}

// classifyPermission turns an EPERM from the kernel into ErrNotPermitted
// when the capabilities are there all the same: the kernel then refuses
// for a reason that does not pass either (a user namespace, whose
// capabilities do not count for BPF; lockdown; a security module).
func classifyPermission(err error) error {
	if err == nil || !errors.Is(err, unix.EPERM) || errors.Is(err, tracing.ErrNotSupported) {
		return err
	}
	return tracing.NotPermitted("the kernel refused (EPERM) although this process has CAP_BPF and CAP_PERFMON or CAP_SYS_ADMIN: they must be held in the initial user namespace, and lockdown or a security module may forbid BPF: %v", err)
}
