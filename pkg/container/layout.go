package container

import (
	"errors"
	"fmt"
	"path"
	"slices"

	"github.com/prometheus/procfs"
)

// Hierarchy is one mounted cgroup hierarchy the resolver reads.
type Hierarchy struct {
	// ID is the kernel's hierarchy id (/proc/cgroups; 0 is cgroup2), which
	// the cgroup_mkdir tracepoint reports as "root".
	ID int
	// Mount is where it is mounted.
	Mount string
	// Root is the hierarchy path the mount shows ("/" unless the mount is
	// of a sub-tree, as inside a cgroup namespace).
	Root string
}

// Path returns the hierarchy path of the directory at rel below the mount.
func (h *Hierarchy) Path(rel string) string {
	return path.Join("/", h.Root, rel)
}

// Layout is how a host mounts the hierarchies events name: cgroup2, and
// the cgroup v1 memory and cpu hierarchies where those controllers are on
// v1. A v2 host has only Unified; a v1 host without a cgroup2 mount only
// Memory and CPU; a hybrid host all three.
type Layout struct {
	Unified *Hierarchy
	Memory  *Hierarchy
	CPU     *Hierarchy
}

// MemoryHierarchy is the hierarchy the memory controller is on: the v1
// memory hierarchy, or cgroup2 where memory is not on v1 (nil if neither).
func (l Layout) MemoryHierarchy() *Hierarchy {
	if l.Memory != nil {
		return l.Memory
	}
	return l.Unified
}

// CPUHierarchy is the same for the cpu controller.
func (l Layout) CPUHierarchy() *Hierarchy {
	if l.CPU != nil {
		return l.CPU
	}
	return l.Unified
}

// Hierarchies lists the layout's hierarchies, cgroup2 first.
func (l Layout) Hierarchies() []*Hierarchy {
	var out []*Hierarchy
	for _, h := range []*Hierarchy{l.Unified, l.Memory, l.CPU} {
		if h != nil {
			out = append(out, h)
		}
	}
	return out
}

// ReadLayout reads the layout from a proc filesystem (normally /proc): the
// mounts of the calling process and the hierarchy ids in /proc/cgroups.
func ReadLayout(procRoot string) (Layout, error) {
	fs, err := procfs.NewFS(procRoot)
	if err != nil {
		return Layout{}, err
	}
	mounts, err := fs.GetMounts()
	if err != nil {
		return Layout{}, fmt.Errorf("reading mounts: %w", err)
	}
	summaries, err := fs.CgroupSummarys()
	if err != nil {
		return Layout{}, fmt.Errorf("reading %s/cgroups: %w", procRoot, err)
	}
	hierarchyOf := map[string]int{}
	for _, s := range summaries {
		if s.Enabled == 1 {
			hierarchyOf[s.SubsysName] = s.Hierarchy
		}
	}
	var l Layout
	for _, m := range mounts {
		h := &Hierarchy{Mount: m.MountPoint, Root: m.Root}
		switch m.FSType {
		case "cgroup2":
			if l.Unified == nil { // the first mount; later ones are bind mounts of it
				l.Unified = h
			}
		case "cgroup":
			if _, ok := m.SuperOptions["memory"]; ok && l.Memory == nil {
				h.ID = hierarchyOf["memory"]
				l.Memory = h
			}
			if _, ok := m.SuperOptions["cpu"]; ok && l.CPU == nil {
				h.ID = hierarchyOf["cpu"]
				l.CPU = h
			}
		}
	}
	if l.Unified == nil && l.Memory == nil && l.CPU == nil {
		return l, errors.New("no cgroup2 mount and no cgroup v1 memory or cpu mount")
	}
	return l, nil
}

// hierarchyIDs are the kernel hierarchy ids the layout reads.
func (l Layout) hierarchyIDs() []int {
	var ids []int
	for _, h := range l.Hierarchies() {
		if !slices.Contains(ids, h.ID) {
			ids = append(ids, h.ID)
		}
	}
	return ids
}
