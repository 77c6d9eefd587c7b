package container

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// MemoryCgroupRoot returns where the memory controller's hierarchy is
// mounted and whether it is cgroup v1: the v1 memory mount on v1 and
// hybrid hosts, else the cgroup2 mount.
func MemoryCgroupRoot() (root string, v1 bool, err error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	var v2 string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS ... - FSTYPE SOURCE SUPEROPTS
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		fields, tail := strings.Fields(pre), strings.Fields(post)
		if len(fields) < 5 || len(tail) < 3 {
			continue
		}
		switch tail[0] {
		case "cgroup":
			for _, opt := range strings.Split(tail[2], ",") {
				if opt == "memory" {
					return fields[4], true, nil
				}
			}
		case "cgroup2":
			if v2 == "" {
				v2 = fields[4]
			}
		}
	}
	if v2 == "" {
		return "", false, errors.New("no memory cgroup hierarchy is mounted")
	}
	return v2, false, sc.Err()
}

// FindCgroupByID returns the path, relative to root (with a leading
// slash), of the cgroup directory whose kernfs id is id: the id the kernel
// gives a cgroup is the inode number of its directory.
func FindCgroupByID(root string, id uint64) (string, error) {
	if id == 0 {
		return "", errors.New("no cgroup id")
	}
	found := ""
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // a cgroup removed during the walk
		}
		if !d.IsDir() {
			return nil
		}
		var st syscall.Stat_t
		if syscall.Stat(path, &st) == nil && st.Ino == id {
			found = path
			return filepath.SkipAll
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if found == "" {
		return "", fmt.Errorf("no cgroup with id %d under %s (removed already?)", id, root)
	}
	rel, err := filepath.Rel(root, found)
	if err != nil {
		return "", err
	}
	if rel == "." {
		return "/", nil
	}
	return "/" + rel, nil
}

// ReadKeyValues reads a cgroup file of "key value" lines (memory.stat,
// memory.events, memory.oom_control).
func ReadKeyValues(path string) (map[string]uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			continue
		}
		out[k] = n
	}
	return out, nil
}

// ReadUint reads a cgroup file holding one number; "max" (no limit) reads
// as ok=false.
func ReadUint(path string) (n uint64, ok bool, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false, err
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 0, false, nil
	}
	n, err = strconv.ParseUint(s, 10, 64)
	return n, err == nil, err
}
