package container

import (
	"container/list"
	"io/fs"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// CgroupIDs are the cgroup identities a BPF event header carries for a task
// (bpf/include/common.h): kernfs ids, which are the inode numbers of the
// cgroup directories.
type CgroupIDs struct {
	// Unified is the task's cgroup2 cgroup (bpf_get_current_cgroup_id).
	Unified uint64
	// Memory is the cgroup of the task's memory controller: on the v1
	// memory hierarchy where there is one, else a cgroup2 cgroup.
	Memory uint64
	// CPU is the same for the cpu controller.
	CPU uint64
}

// Options tune a Resolver.
type Options struct {
	// CacheSize bounds the cgroups remembered (least recently used go
	// first). Default 8192.
	CacheSize int
	// RemovedRetention is how long a removed cgroup is still resolved:
	// events are read after the fact, and a container's last events (its
	// OOM kill) often arrive after its runtime removed the cgroup.
	// Default 2m.
	RemovedRetention time.Duration
	// WalkInterval is the least time between two walks of one hierarchy
	// made because a cgroup id was not known (a walk reads every cgroup
	// directory). Default 1s.
	WalkInterval time.Duration
	// Parser maps paths to containers.
	Parser PathParser
	// ProcRoot is the proc filesystem for ContainerOfPID (default /proc).
	ProcRoot string
	// MinAge is how long a container must have existed for Containers to
	// list it.
	MinAge time.Duration
}

// Lookup results, as counted in Stats.Lookups.
const (
	LookupHit         = "hit"          // the cgroup was known
	LookupWalk        = "walk"         // found by walking its hierarchy
	LookupNotFound    = "not_found"    // walked, and no such cgroup (removed before it was seen)
	LookupRateLimited = "rate_limited" // unknown, and the hierarchy was walked less than WalkInterval ago
)

// Stats are a Resolver's counters since it was made.
type Stats struct {
	Entries    int               // cgroups remembered now
	Containers int               // containers among them
	Lookups    map[string]uint64 // by result
	Evictions  uint64            // cgroups forgotten to stay within CacheSize
	Walks      uint64            // hierarchy walks
	// Tracked says the cgroup_mkdir/rmdir hooks feed the resolver; the
	// watcher's records cut short or lost are found by walking instead.
	Tracked                       bool
	TrackerLost, TrackerTruncated uint64
}

type cacheKey struct {
	hierarchy int
	id        uint64
}

type entry struct {
	key       cacheKey
	path      string
	container Container
	created   time.Time
	removed   time.Time // zero while the cgroup exists
}

// Resolver maps the cgroup ids in kernel events to containers. It remembers
// every cgroup it has seen, fed by a walk of each hierarchy at Start and
// then by Created and Removed (the cgroup_mkdir and cgroup_rmdir
// tracepoints, see internal/cgroupwatch); an unknown id triggers
// a walk of its hierarchy, at most once per WalkInterval.
//
// It belongs to one receiver instance and is safe for concurrent use.
type Resolver struct {
	layout Layout
	opts   Options
	now    func() time.Time

	mu         sync.Mutex
	lru        *list.List // of *entry, most recently used first
	entries    map[cacheKey]*list.Element
	containers map[string]*containerRef // by container id, for Describe
	lastWalk   map[int]time.Time
	lookups    map[string]uint64
	evictions  uint64
	walks      uint64

	tracked                       bool
	trackerLost, trackerTruncated uint64
	trackerCounts                 func() (lost, truncated uint64)

	netns netnsCache

	// described holds containers found from /proc or a path rather than
	// from a cgroup id, so that Describe knows their runtime and pod too.
	// Bounded by starting afresh when full.
	described map[string]Container
}

// describedMax bounds Resolver.described.
const describedMax = 4096

// note remembers c for Describe.
func (r *Resolver) note(c Container) Container {
	if c.IsZero() {
		return c
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.described == nil || len(r.described) >= describedMax {
		r.described = map[string]Container{}
	}
	r.described[c.ID] = c
	return c
}

// ContainerOfPath returns the container of a cgroup path read elsewhere (a
// victim's /proc/PID/cgroup), remembering it for Describe.
func (r *Resolver) ContainerOfPath(path string) Container {
	if r == nil {
		return Container{}
	}
	return r.note(r.opts.Parser.Parse(path))
}

type containerRef struct {
	c    Container
	refs int // entries naming it
}

// NewResolver returns a Resolver for the hierarchies of layout.
func NewResolver(layout Layout, opts Options) *Resolver {
	if opts.CacheSize <= 0 {
		opts.CacheSize = 8192
	}
	if opts.RemovedRetention <= 0 {
		opts.RemovedRetention = 2 * time.Minute
	}
	if opts.WalkInterval <= 0 {
		opts.WalkInterval = time.Second
	}
	if opts.ProcRoot == "" {
		opts.ProcRoot = "/proc"
	}
	return &Resolver{
		layout: layout, opts: opts, now: time.Now,
		lru:        list.New(),
		entries:    map[cacheKey]*list.Element{},
		containers: map[string]*containerRef{},
		lastWalk:   map[int]time.Time{},
		lookups:    map[string]uint64{},
	}
}

// Layout returns the hierarchies the resolver reads (none for nil).
func (r *Resolver) Layout() Layout {
	if r == nil {
		return Layout{}
	}
	return r.layout
}

// Parser returns the path parser the resolver uses.
func (r *Resolver) Parser() PathParser { return r.opts.Parser }

// Refresh walks every hierarchy, remembering each cgroup in it.
func (r *Resolver) Refresh() {
	for _, h := range r.layout.Hierarchies() {
		r.walk(h)
	}
}

// Resolve returns the container of a task whose cgroups are ids: the first
// of its cgroup2, memory and cpu cgroups that belongs to a container. On a
// hybrid host a runtime may place a container in the v1 hierarchies only,
// so the cgroup2 cgroup alone would call it a host task.
func (r *Resolver) Resolve(ids CgroupIDs) Container {
	if r == nil {
		return Container{}
	}
	try := func(h *Hierarchy, id uint64) (Container, bool) {
		if h == nil || id == 0 {
			return Container{}, false
		}
		c, _ := r.lookup(h, id)
		return c, !c.IsZero()
	}
	if c, ok := try(r.layout.Unified, ids.Unified); ok {
		return c
	}
	if c, ok := try(r.layout.MemoryHierarchy(), ids.Memory); ok {
		return c
	}
	if c, ok := try(r.layout.CPUHierarchy(), ids.CPU); ok {
		return c
	}
	return Container{}
}

// MemoryCgroupPath returns the path of cgroup id in the hierarchy the
// memory controller is on, or false when it is not known.
func (r *Resolver) MemoryCgroupPath(id uint64) (string, bool) {
	if r == nil {
		return "", false
	}
	h := r.layout.MemoryHierarchy()
	if h == nil || id == 0 {
		return "", false
	}
	_, p := r.lookup(h, id)
	return p, p != ""
}

// lookup returns the container and path of cgroup id in h, walking h if the
// id is unknown and h was not walked in the last WalkInterval.
func (r *Resolver) lookup(h *Hierarchy, id uint64) (Container, string) {
	key := cacheKey{h.ID, id}
	r.mu.Lock()
	if el, ok := r.entries[key]; ok {
		r.lru.MoveToFront(el)
		r.lookups[LookupHit]++
		e := el.Value.(*entry)
		r.mu.Unlock()
		return e.container, e.path
	}
	if r.now().Sub(r.lastWalk[h.ID]) < r.opts.WalkInterval {
		r.lookups[LookupRateLimited]++
		r.mu.Unlock()
		return Container{}, ""
	}
	r.claimWalkLocked(h) // before unlocking: concurrent misses do not all walk
	r.mu.Unlock()

	r.walkClaimed(h)

	r.mu.Lock()
	defer r.mu.Unlock()
	if el, ok := r.entries[key]; ok {
		r.lookups[LookupWalk]++
		e := el.Value.(*entry)
		return e.container, e.path
	}
	r.lookups[LookupNotFound]++
	return Container{}, ""
}

// walk remembers every cgroup directory of h.
func (r *Resolver) walk(h *Hierarchy) {
	r.mu.Lock()
	r.claimWalkLocked(h)
	r.mu.Unlock()
	r.walkClaimed(h)
}

func (r *Resolver) claimWalkLocked(h *Hierarchy) {
	r.lastWalk[h.ID] = r.now()
	r.walks++
}

func (r *Resolver) walkClaimed(h *Hierarchy) {
	walkHierarchy(h, func(dir, path string) {
		if ino, created, ok := cgroupStat(dir); ok {
			r.remember(h.ID, ino, path, created, false)
		}
	})
}

// walkHierarchy calls fn, parents first, for every cgroup directory of h
// with its path on this host's filesystem and its path in the hierarchy.
func walkHierarchy(h *Hierarchy, fn func(dir, path string)) {
	_ = filepath.WalkDir(h.Mount, func(dir string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil // a cgroup removed during the walk
		}
		rel, _ := filepath.Rel(h.Mount, dir)
		fn(dir, h.Path(rel))
		return nil
	})
}

// cgroupStat returns a cgroup directory's id (its inode number) and when
// it was made (its change time), or false if it is gone.
func cgroupStat(path string) (ino uint64, created time.Time, ok bool) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return 0, time.Time{}, false
	}
	return st.Ino, time.Unix(st.Ctim.Unix()), true
}

// Created records a cgroup the kernel just made.
func (r *Resolver) Created(hierarchy int, id uint64, path string, t time.Time) {
	r.remember(hierarchy, id, path, t, true)
}

// Removed marks a cgroup the kernel removed; it is still resolved for
// RemovedRetention.
func (r *Resolver) Removed(hierarchy int, id uint64, t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if el, ok := r.entries[cacheKey{hierarchy, id}]; ok {
		el.Value.(*entry).removed = t
	}
	r.expireLocked(t)
}

// remember adds or refreshes one cgroup. A walk does not move a known
// cgroup to the front: walking is not using.
func (r *Resolver) remember(hierarchy int, id uint64, path string, created time.Time, used bool) {
	key := cacheKey{hierarchy, id}
	r.mu.Lock()
	defer r.mu.Unlock()
	if el, ok := r.entries[key]; ok {
		if used {
			r.lru.MoveToFront(el)
		}
		return
	}
	e := &entry{key: key, path: path, container: r.opts.Parser.Parse(path), created: created}
	r.entries[key] = r.lru.PushFront(e)
	if !e.container.IsZero() {
		ref := r.containers[e.container.ID]
		if ref == nil {
			ref = &containerRef{c: e.container}
			r.containers[e.container.ID] = ref
		} else if ref.c.PodUID == "" && e.container.PodUID != "" {
			ref.c = e.container
		}
		ref.refs++
	}
	for r.lru.Len() > r.opts.CacheSize {
		r.removeLocked(r.lru.Back())
		r.evictions++
	}
}

func (r *Resolver) removeLocked(el *list.Element) {
	e := el.Value.(*entry)
	r.lru.Remove(el)
	delete(r.entries, e.key)
	if ref := r.containers[e.container.ID]; ref != nil {
		if ref.refs--; ref.refs <= 0 {
			delete(r.containers, e.container.ID)
		}
	}
}

// expireLocked forgets cgroups removed longer than RemovedRetention ago.
// Removed cgroups are few next to the cache, so a scan on each removal
// is cheap enough and keeps no second index.
func (r *Resolver) expireLocked(now time.Time) {
	for el := r.lru.Back(); el != nil; {
		prev := el.Prev()
		if e := el.Value.(*entry); !e.removed.IsZero() && now.Sub(e.removed) > r.opts.RemovedRetention {
			r.removeLocked(el)
		}
		el = prev
	}
}

// Known reports whether the resolver still has a cgroup of container id:
// one that exists, or one removed less than RemovedRetention ago. A
// collector drops a container's series once it is false, so the series of
// a removed container end RemovedRetention after its cgroups went. Without
// cgroup tracking removals are not seen, and a container is forgotten only
// when the cache evicts it.
func (r *Resolver) Known(id string) bool {
	if r == nil || id == "" {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expireLocked(r.now())
	return r.containers[id] != nil
}

// Describe returns what the resolver knows of container id: its runtime and
// pod. An id it never resolved comes back bare.
func (r *Resolver) Describe(id string) Container {
	if r == nil {
		return Container{ID: id}
	}
	if id == "" {
		return Container{}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if ref := r.containers[id]; ref != nil {
		return ref.c
	}
	if c, ok := r.described[id]; ok {
		return c
	}
	return Container{ID: id}
}

// ContainerOfPID returns the container of process pid from its
// /proc/PID/cgroup, for context read from /proc rather than from a BPF
// event (other blocked tasks, the processes in a network namespace).
func (r *Resolver) ContainerOfPID(pid int) Container {
	if r == nil {
		return Container{}
	}
	c, _ := r.containerOfPID(pid)
	return r.note(c)
}

// containerOfPID also says whether pid's cgroups could be read at all.
func (r *Resolver) containerOfPID(pid int) (Container, bool) {
	fs, err := procfs.NewFS(r.opts.ProcRoot)
	if err != nil {
		return Container{}, false
	}
	p, err := fs.Proc(pid)
	if err != nil {
		return Container{}, false
	}
	cgroups, err := p.Cgroups()
	if err != nil {
		return Container{}, false
	}
	// cgroup2 first, as Resolve does, then the v1 memory and cpu lines.
	sort.SliceStable(cgroups, func(i, j int) bool { return cgroups[i].HierarchyID == 0 && cgroups[j].HierarchyID != 0 })
	for _, cg := range cgroups {
		if cg.HierarchyID != 0 && !hasController(cg.Controllers, "memory", "cpu") {
			continue
		}
		if c := r.opts.Parser.Parse(cg.Path); !c.IsZero() {
			return c, true
		}
	}
	return Container{}, true
}

func hasController(have []string, want ...string) bool {
	for _, h := range have {
		for _, w := range want {
			if h == w {
				return true
			}
		}
	}
	return false
}

// NoteTracker records the state of the cgroup watcher feeding Created and
// Removed, for Stats.
func (r *Resolver) NoteTracker(tracked bool, lost, truncated uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tracked, r.trackerLost, r.trackerTruncated = tracked, lost, truncated
}

// TrackerCounts makes Stats ask counts for the watcher's lost and
// truncated records, so the watcher reads its kernel counter only when the
// self-telemetry asks, not on a timer. It replaces the counts NoteTracker
// gave.
func (r *Resolver) TrackerCounts(counts func() (lost, truncated uint64)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.trackerCounts = counts
}

// Stats returns the counters.
func (r *Resolver) Stats() Stats {
	r.mu.Lock()
	counts := r.trackerCounts
	r.mu.Unlock()
	if counts != nil {
		lost, truncated := counts()
		r.mu.Lock()
		r.trackerLost, r.trackerTruncated = lost, truncated
		r.mu.Unlock()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Stats{Entries: r.lru.Len(), Containers: len(r.containers), Evictions: r.evictions, Walks: r.walks, Lookups: map[string]uint64{},
		Tracked: r.tracked, TrackerLost: r.trackerLost, TrackerTruncated: r.trackerTruncated}
	for k, v := range r.lookups {
		s.Lookups[k] = v
	}
	return s
}

// Info is one container found on the host, with its cgroup directories.
type Info struct {
	Container
	// Unified, Memory and CPU are the container's cgroup directories on
	// this host's filesystem: the top directory the runtime made (the
	// container's own sub-cgroups are below it) in cgroup2 and in the
	// memory and cpu controllers' hierarchies (the cgroup2 directory where
	// a controller is not on v1). Empty where the container has none.
	Unified, Memory, CPU string
	// Created is the earliest change time of those directories: when the
	// runtime made them, or later if the kernel dropped and re-read the
	// inode, which only delays a container's listing.
	Created time.Time
}

// Containers walks the hierarchies and returns the containers that have
// existed for at least Options.MinAge, sorted by id: the list per-container
// metric collectors report on. MinAge is the guard against label churn: a
// container that lives a few seconds would otherwise become series that
// appear once and never again.
func (r *Resolver) Containers() []Info {
	if r == nil {
		return nil
	}
	minAge := r.opts.MinAge
	byID := map[string]*Info{}
	now := r.now()
	for _, h := range r.layout.Hierarchies() {
		walkHierarchy(h, func(dir, path string) {
			c := r.opts.Parser.Parse(path)
			if c.IsZero() {
				return
			}
			// The walk is pre-order: a container's first directory is its
			// top one, the rest are its own sub-cgroups. A container nested
			// in it (docker in docker) has another id and is listed too.
			if in := byID[c.ID]; in != nil && *r.dirsFor(h, in)[0] != "" {
				return
			}
			ino, created, ok := cgroupStat(dir)
			if !ok {
				return
			}
			r.remember(h.ID, ino, path, created, false)
			in := byID[c.ID]
			if in == nil {
				in = &Info{Container: c, Created: created}
				byID[c.ID] = in
			}
			if created.Before(in.Created) {
				in.Created = created
			}
			for _, field := range r.dirsFor(h, in) {
				if *field == "" {
					*field = dir
				}
			}
		})
	}
	out := make([]Info, 0, len(byID))
	for _, in := range byID {
		if now.Sub(in.Created) >= minAge {
			out = append(out, *in)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// dirsFor returns the Info fields that directories of h fill: cgroup2
// fills the memory and cpu fields too where those controllers are not on v1.
func (r *Resolver) dirsFor(h *Hierarchy, in *Info) []*string {
	var out []*string
	if h == r.layout.Unified {
		out = append(out, &in.Unified)
	}
	if h == r.layout.MemoryHierarchy() {
		out = append(out, &in.Memory)
	}
	if h == r.layout.CPUHierarchy() {
		out = append(out, &in.CPU)
	}
	return out
}
