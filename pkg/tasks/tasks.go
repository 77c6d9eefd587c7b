// Package tasks walks the host's threads through /proc.
package tasks

import (
	"bytes"
	"fmt"
	"os"
	"strconv"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// Thread is one thread and its /proc/<tgid>/task/<tid>/stat.
type Thread struct {
	Tgid, Tid int
	Stat      procfs.ProcStat
}

// Uninterruptible returns every thread in uninterruptible sleep (state D).
// The kernel exports no list of them, so this reads each thread's stat
// file under /proc, and parses in full (through fs) only the threads in
// state D. Threads that exit during the walk are skipped: the result is a
// snapshot, not exact.
func Uninterruptible(fs procfs.FS) ([]Thread, error) {
	var out []Thread
	err := scan(procfs.DefaultMountPoint, func(tgid, tid int) {
		t, err := fs.Proc(tgid)
		if err != nil {
			return
		}
		th, err := t.Thread(tid)
		if err != nil {
			return
		}
		st, err := th.Stat()
		if err != nil || st.State != "D" { // exited, or woke up meanwhile
			return
		}
		out = append(out, Thread{Tgid: tgid, Tid: tid, Stat: st})
	})
	return out, err
}

// CountUninterruptible is how many threads are in state D, read the same
// way as Uninterruptible but without parsing anything past each stat
// file's state field: the per-interval cost of loadavg's count.
func CountUninterruptible() (int, error) {
	n := 0
	err := scan(procfs.DefaultMountPoint, func(int, int) { n++ })
	return n, err
}

// scan calls found for every thread whose stat file says state D. One
// open, read and close per thread, into a buffer reused for all.
func scan(root string, found func(tgid, tid int)) error {
	pids, err := readNumericDir(root)
	if err != nil {
		return fmt.Errorf("listing %s: %w", root, err)
	}
	var buf [512]byte
	for _, tgid := range pids {
		taskDir := root + "/" + strconv.Itoa(tgid) + "/task/"
		tids, err := readNumericDir(taskDir)
		if err != nil {
			continue // exited
		}
		for _, tid := range tids {
			if state(taskDir+strconv.Itoa(tid)+"/stat", buf[:]) == 'D' {
				found(tgid, tid)
			}
		}
	}
	return nil
}

// state reads the state letter of a stat file: the field after the
// command name, which ends at the last ')'.
func state(path string, buf []byte) byte {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0
	}
	n, err := unix.Read(fd, buf)
	unix.Close(fd)
	if err != nil || n <= 0 {
		return 0
	}
	b := buf[:n]
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}

func readNumericDir(dir string) ([]int, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	out := make([]int, 0, len(names))
	for _, name := range names {
		if n, err := strconv.Atoi(name); err == nil {
			out = append(out, n)
		}
	}
	return out, nil
}
