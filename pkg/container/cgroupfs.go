package container

import (
	"os"
	"strconv"
	"strings"
)

// ReadKeyValues reads a cgroup file of "key value" lines (memory.stat,
// memory.events, memory.oom_control).
func ReadKeyValues(path string) (map[string]uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseKeyValues(b), nil
}

// ParseKeyValues reads "key value" lines (memory.stat, memory.events);
// lines that are not a key and an unsigned number are skipped.
func ParseKeyValues(b []byte) map[string]uint64 {
	out := map[string]uint64{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if !ok || k == "" {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		if err != nil {
			continue
		}
		out[k] = n
	}
	return out
}

// ReadUint reads a cgroup file holding one number; "max" (no limit) reads
// as ok=false.
func ReadUint(path string) (n uint64, ok bool, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false, err
	}
	return ParseUint(b)
}

// ParseUint reads a cgroup file's one number; "max" reads as ok=false.
func ParseUint(b []byte) (n uint64, ok bool, err error) {
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 0, false, nil
	}
	n, err = strconv.ParseUint(s, 10, 64)
	return n, err == nil, err
}
