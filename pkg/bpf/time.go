package bpf

import (
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// WallTime converts a bpf_ktime_get_ns timestamp (CLOCK_MONOTONIC) to wall
// clock time, through the offset between the two clocks. The offset is
// measured at most once a second (a clock_gettime syscall), not per
// event, and moves only when the wall clock is stepped, which a second
// later shows.
func WallTime(monotonicNs uint64) time.Time {
	now := time.Now()
	o := clockOffset.Load()
	if o == nil || now.Sub(o.measured) > time.Second || now.Before(o.measured) {
		var ts unix.Timespec
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
			return now
		}
		o = &offset{measured: now, wallMinusMono: now.UnixNano() - ts.Nano()}
		clockOffset.Store(o)
	}
	return time.Unix(0, int64(monotonicNs)+o.wallMinusMono)
}

type offset struct {
	measured      time.Time
	wallMinusMono int64
}

var clockOffset atomic.Pointer[offset]

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
