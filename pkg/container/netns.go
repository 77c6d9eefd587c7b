package container

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// netnsCache remembers which container owns a network namespace: finding
// out reads a link of every process on the host.
type netnsCache struct {
	mu      sync.Mutex
	entries map[uint32]netnsEntry
	host    uint32 // the host's namespace (pid 1's), 0 until read
}

type netnsEntry struct {
	c  Container
	at time.Time
}

// netnsTTL bounds how stale an answer may be: a namespace inode is not
// reused while the namespace lives, but a container may start in a
// namespace first seen empty.
const netnsTTL = 30 * time.Second

// ContainerOfNetns returns the container whose processes are in the
// network namespace with inode ino (as in /proc/PID/ns/net), or the host
// for the host's namespace (shared by hostNetwork pods) and for one no
// container's process is in. Host processes in a container's namespace
// are passing visitors (ip netns exec, nsenter) and do not count.
//
// The host's namespace is the one of the first process whose namespace can
// be read: init's, or with a pid namespace of our own (a DaemonSet without
// hostPID) the first process of that namespace.
//
// Containers of one Kubernetes pod share a namespace; it is attributed to
// the container with the lowest pid there, normally the pod's sandbox, and
// the Resource carries the pod's uid, on which k8s_attributes associates.
func (r *Resolver) ContainerOfNetns(ino uint32) Container {
	if r == nil || ino == 0 {
		return Container{}
	}
	nc := &r.netns
	nc.mu.Lock()
	defer nc.mu.Unlock()
	if nc.host == 0 {
		nc.host = r.hostNetns()
	}
	if ino == nc.host {
		return Container{}
	}
	now := r.now()
	if e, ok := nc.entries[ino]; ok && now.Sub(e.at) < netnsTTL {
		return e.c
	}
	c := r.note(r.scanNetns(ino))
	if nc.entries == nil || len(nc.entries) > 4096 {
		nc.entries = map[uint32]netnsEntry{}
	}
	nc.entries[ino] = netnsEntry{c: c, at: now}
	return c
}

func (r *Resolver) scanNetns(ino uint32) Container {
	dirs, err := os.ReadDir(r.opts.ProcRoot)
	if err != nil {
		return Container{}
	}
	best, bestPid := Container{}, 0
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || netnsInode(filepath.Join(r.opts.ProcRoot, d.Name(), "ns/net")) != ino {
			continue
		}
		if c, ok := r.containerOfPID(pid); ok && !c.IsZero() && (bestPid == 0 || pid < bestPid) {
			best, bestPid = c, pid
		}
	}
	return best
}

// hostNetns is the namespace of the lowest pid whose namespace can be read.
func (r *Resolver) hostNetns() uint32 {
	dirs, err := os.ReadDir(r.opts.ProcRoot)
	if err != nil {
		return 0
	}
	host, hostPid := uint32(0), 0
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || (hostPid != 0 && pid > hostPid) {
			continue
		}
		if ino := netnsInode(filepath.Join(r.opts.ProcRoot, d.Name(), "ns/net")); ino != 0 {
			host, hostPid = ino, pid
		}
	}
	return host
}

// netnsInode reads a namespace link, "net:[4026531840]", as its inode.
func netnsInode(link string) uint32 {
	s, err := os.Readlink(link)
	if err != nil {
		return 0
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "net:["), "]")
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0
	}
	return uint32(n)
}
