package bpf

import (
	"time"

	"golang.org/x/sys/unix"
)

// WallTime converts a bpf_ktime_get_ns timestamp (CLOCK_MONOTONIC) to wall
// clock time, using the offset between the two clocks now. The offset
// moves only when the wall clock is stepped, which is fine for events that
// are a few milliseconds old.
func WallTime(monotonicNs uint64) time.Time {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return time.Now()
	}
	age := time.Duration(ts.Nano() - int64(monotonicNs))
	return time.Now().Add(-age)
}

// CString reads a C char array from a generated event type (bpf2go makes
// them [N]int8) up to its first NUL.
func CString(b []int8) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		out = append(out, byte(c))
	}
	return string(out)
}
