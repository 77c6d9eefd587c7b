package bpf

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"golang.org/x/sys/unix"
)

func TestWallTime(t *testing.T) {
	var ts unix.Timespec
	for range 3 { // the first call measures the offset, later ones reuse it
		if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		assert.WithinDuration(t, now, WallTime(uint64(ts.Nano())), 5*time.Millisecond)
		assert.WithinDuration(t, now.Add(-1500*time.Millisecond), WallTime(uint64(ts.Nano()-int64(1500*time.Millisecond))), 5*time.Millisecond)
	}
}
