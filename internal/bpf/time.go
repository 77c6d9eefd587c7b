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
