// Package tasks walks the host's threads through /proc.
package tasks

import (
	"fmt"

	"github.com/prometheus/procfs"
)

// Thread is one thread and its /proc/<tgid>/task/<tid>/stat.
type Thread struct {
	Tgid, Tid int
	Stat      procfs.ProcStat
}

// Uninterruptible returns every thread in uninterruptible sleep (state D).
// The kernel exports no list of them, so this reads each thread's stat
// file. Threads that exit during the walk are skipped: the result is a
// snapshot, not exact.
func Uninterruptible(fs procfs.FS) ([]Thread, error) {
	procs, err := fs.AllProcs()
	if err != nil {
		return nil, fmt.Errorf("listing /proc: %w", err)
	}
	var out []Thread
	for _, p := range procs {
		threads, err := fs.AllThreads(p.PID)
		if err != nil {
			continue // exited
		}
		for _, t := range threads {
			st, err := t.Stat()
			if err != nil {
				continue // exited during the walk
			}
			if st.State == "D" {
				out = append(out, Thread{Tgid: p.PID, Tid: t.PID, Stat: st})
			}
		}
	}
	return out, nil
}
