package container

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fixtureHost is a fake host in a temporary directory: a proc tree with
// mountinfo and /proc/cgroups, and empty directories standing in for the
// mounted cgroup hierarchies. Cgroup ids are inode numbers, as in cgroupfs.
type fixtureHost struct {
	proc   string
	mounts map[string]string // "unified", "memory", "cpu" -> mount point
}

// The three ways a host mounts cgroups.
var fixtureLayouts = map[string][]string{
	"v1":     {"memory", "cpu"},
	"v2":     {"unified"},
	"hybrid": {"memory", "cpu", "unified"},
}

func newFixtureHost(t *testing.T, hierarchies []string) *fixtureHost {
	root := t.TempDir()
	h := &fixtureHost{proc: filepath.Join(root, "proc"), mounts: map[string]string{}}
	require.NoError(t, os.MkdirAll(filepath.Join(h.proc, "self"), 0o755))
	var mountinfo strings.Builder
	fmt.Fprintf(&mountinfo, "22 1 259:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n")
	cgroups := "#subsys_name\thierarchy\tnum_cgroups\tenabled\n"
	memoryID, cpuID := 0, 0
	for i, name := range hierarchies {
		mnt := filepath.Join(root, "sys/fs/cgroup", name)
		require.NoError(t, os.MkdirAll(mnt, 0o755))
		h.mounts[name] = mnt
		switch name {
		case "unified":
			fmt.Fprintf(&mountinfo, "%d 22 0:%d / %s rw,nosuid shared:%d - cgroup2 cgroup2 rw,nsdelegate\n", 30+i, 26+i, mnt, 10+i)
		case "memory":
			memoryID = 4
			fmt.Fprintf(&mountinfo, "%d 22 0:%d / %s rw,nosuid shared:%d - cgroup cgroup rw,memory\n", 30+i, 26+i, mnt, 10+i)
		case "cpu":
			cpuID = 2
			fmt.Fprintf(&mountinfo, "%d 22 0:%d / %s rw,nosuid shared:%d - cgroup cgroup rw,cpu,cpuacct\n", 30+i, 26+i, mnt, 10+i)
		}
	}
	cgroups += fmt.Sprintf("cpu\t%d\t1\t1\ncpuacct\t%d\t1\t1\nmemory\t%d\t1\t1\npids\t0\t1\t1\n", cpuID, cpuID, memoryID)
	require.NoError(t, os.WriteFile(filepath.Join(h.proc, "self/mountinfo"), []byte(mountinfo.String()), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(h.proc, "cgroups"), []byte(cgroups), 0o644))
	return h
}

// mkdir makes path in the named hierarchy and returns its cgroup id.
func (h *fixtureHost) mkdir(t *testing.T, hierarchy, path string) uint64 {
	dir := filepath.Join(h.mounts[hierarchy], path)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return inode(t, dir)
}

func inode(t *testing.T, path string) uint64 {
	var st syscall.Stat_t
	require.NoError(t, syscall.Stat(path, &st))
	return st.Ino
}

// process writes /proc/PID/cgroup and the network namespace link of a
// fake process.
func (h *fixtureHost) process(t *testing.T, pid int, cgroupFile string, netns uint32) {
	dir := filepath.Join(h.proc, fmt.Sprint(pid))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "ns"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "cgroup"), []byte(cgroupFile), 0o644))
	require.NoError(t, os.Symlink(fmt.Sprintf("net:[%d]", netns), filepath.Join(dir, "ns/net")))
}

func (h *fixtureHost) resolver(t *testing.T, opts Options) *Resolver {
	l, err := ReadLayout(h.proc)
	require.NoError(t, err)
	opts.ProcRoot = h.proc
	return NewResolver(l, opts)
}

func TestReadLayout(t *testing.T) {
	for name, hierarchies := range fixtureLayouts {
		t.Run(name, func(t *testing.T) {
			h := newFixtureHost(t, hierarchies)
			l, err := ReadLayout(h.proc)
			require.NoError(t, err)
			check := func(got *Hierarchy, which string, id int) {
				if h.mounts[which] == "" {
					assert.Nil(t, got, which)
					return
				}
				require.NotNil(t, got, which)
				assert.Equal(t, h.mounts[which], got.Mount)
				assert.Equal(t, id, got.ID, "hierarchy id of %s", which)
				assert.Equal(t, "/", got.Root)
			}
			check(l.Unified, "unified", 0)
			check(l.Memory, "memory", 4)
			check(l.CPU, "cpu", 2)
		})
	}
	_, err := ReadLayout(t.TempDir())
	assert.Error(t, err, "no proc files")
}

// caseID gives each path case its own container ids, so that all of them
// can live in one fixture tree.
func caseID(i int, path string, c Container) (string, Container) {
	mine := fmt.Sprintf("%064x", 0xc0ffee00+2*i)
	mine2 := fmt.Sprintf("%064x", 0xc0ffee00+2*i+1)
	path = strings.ReplaceAll(strings.ReplaceAll(path, id, mine), id2, mine2)
	c.ID = strings.ReplaceAll(strings.ReplaceAll(c.ID, id, mine), id2, mine2)
	if c.ID == "redis-1" {
		c.ID = fmt.Sprintf("redis-%d", i)
		path = strings.ReplaceAll(path, "redis-1", c.ID)
	}
	return path, c
}

// TestResolveOverFixtureTrees lays every runtime's and driver's cgroup
// paths out on v1, v2 and hybrid hosts and resolves each by its ids, as
// the BPF event header carries them.
func TestResolveOverFixtureTrees(t *testing.T) {
	for name, hierarchies := range fixtureLayouts {
		t.Run(name, func(t *testing.T) {
			h := newFixtureHost(t, hierarchies)
			type made struct {
				ids  CgroupIDs
				want Container
				path string
			}
			var all []made
			for i, tc := range pathCases {
				if tc.path == "/" || strings.HasPrefix(tc.path, "/..") {
					continue // the root is always there; a namespaced view is not a host path
				}
				path, want := caseID(i, tc.path, tc.want)
				var ids CgroupIDs
				for _, hier := range hierarchies {
					switch ino := h.mkdir(t, hier, path); hier {
					case "unified":
						ids.Unified = ino
					case "memory":
						ids.Memory = ino
					case "cpu":
						ids.CPU = ino
					}
				}
				if ids.Memory == 0 { // v2: the memory and cpu css are cgroup2 cgroups
					ids.Memory, ids.CPU = ids.Unified, ids.Unified
				}
				all = append(all, made{ids, want, path})
			}
			r := h.resolver(t, Options{})
			r.Refresh()
			for _, m := range all {
				assert.Equal(t, m.want, r.Resolve(m.ids), m.path)
				if !m.want.IsZero() {
					assert.Equal(t, m.want, r.Describe(m.want.ID), "Describe after Resolve: %s", m.path)
				}
			}
			s := r.Stats()
			assert.Zero(t, s.Lookups[LookupNotFound]+s.Lookups[LookupWalk]+s.Lookups[LookupRateLimited], "all known from the walk: %+v", s)

			// The listing for per-container metrics: each container once,
			// with its top directory in every hierarchy.
			listed := map[string]Info{}
			for _, in := range r.Containers() {
				assert.NotContains(t, listed, in.ID, "listed twice")
				listed[in.ID] = in
			}
			for _, m := range all {
				if m.want.IsZero() {
					continue
				}
				in, ok := listed[m.want.ID]
				if !assert.True(t, ok, "%s not listed", m.path) {
					continue
				}
				top := m.path
				if strings.HasSuffix(top, "/init.scope") || strings.HasSuffix(top, "/container") || strings.HasSuffix(top, "/worker") {
					top = filepath.Dir(top) // a sub-cgroup: the container's directory is its parent
				}
				mem, cpu := h.mounts["memory"], h.mounts["cpu"]
				if mem == "" {
					mem, cpu = h.mounts["unified"], h.mounts["unified"]
				}
				assert.Equal(t, filepath.Join(mem, top), in.Memory, m.path)
				assert.Equal(t, filepath.Join(cpu, top), in.CPU, m.path)
				if u := h.mounts["unified"]; u != "" {
					assert.Equal(t, filepath.Join(u, top), in.Unified, m.path)
				} else {
					assert.Empty(t, in.Unified)
				}
			}
		})
	}
}

// On a hybrid host a runtime with the cgroupfs driver may leave its
// containers in the root of the cgroup2 hierarchy: the v1 ids decide.
func TestHybridHostWithContainersOnlyInV1(t *testing.T) {
	h := newFixtureHost(t, fixtureLayouts["hybrid"])
	mem := h.mkdir(t, "memory", "/docker/"+id)
	cpu := h.mkdir(t, "cpu", "/docker/"+id)
	root := inode(t, h.mounts["unified"])
	r := h.resolver(t, Options{})
	r.Refresh()
	want := Container{ID: id, Runtime: RuntimeDocker}
	assert.Equal(t, want, r.Resolve(CgroupIDs{Unified: root, Memory: mem, CPU: cpu}))
	assert.Equal(t, want, r.Resolve(CgroupIDs{Unified: root, Memory: mem}), "the memory hierarchy alone")
	assert.Equal(t, want, r.Resolve(CgroupIDs{Unified: root, CPU: cpu}), "the cpu hierarchy alone")
	assert.Equal(t, Container{}, r.Resolve(CgroupIDs{Unified: root, Memory: inode(t, h.mounts["memory"])}), "a host task")
}

func TestUnknownCgroupsAreWalkedForAtMostOncePerInterval(t *testing.T) {
	h := newFixtureHost(t, fixtureLayouts["v2"])
	r := h.resolver(t, Options{WalkInterval: time.Minute})
	now := time.Unix(1_000_000, 0)
	r.now = func() time.Time { return now }
	r.Refresh()

	late := h.mkdir(t, "unified", "/docker/"+id) // made after the walk, and not tracked
	assert.Equal(t, Container{}, r.Resolve(CgroupIDs{Unified: late}), "within the interval: not walked")
	assert.Equal(t, uint64(1), r.Stats().Lookups[LookupRateLimited])

	now = now.Add(time.Minute)
	assert.Equal(t, Container{ID: id, Runtime: RuntimeDocker}, r.Resolve(CgroupIDs{Unified: late}))
	assert.Equal(t, uint64(1), r.Stats().Lookups[LookupWalk])
	assert.Equal(t, uint64(2), r.Stats().Walks)

	now = now.Add(time.Minute)
	assert.Equal(t, Container{}, r.Resolve(CgroupIDs{Unified: 987654321}), "no such cgroup")
	assert.Equal(t, uint64(1), r.Stats().Lookups[LookupNotFound])
}

func TestCacheIsBoundedLeastRecentlyUsedFirst(t *testing.T) {
	h := newFixtureHost(t, fixtureLayouts["v2"])
	var ids []uint64
	for i := range 40 {
		ids = append(ids, h.mkdir(t, "unified", fmt.Sprintf("/docker/%064x", i)))
	}
	r := h.resolver(t, Options{CacheSize: 16, WalkInterval: time.Hour})
	r.Refresh()
	s := r.Stats()
	assert.Equal(t, 16, s.Entries)
	assert.Equal(t, uint64(42-16), s.Evictions, "the root, /docker and 40 containers went through a cache of 16")
	assert.LessOrEqual(t, s.Containers, 16, "container descriptions go with their cgroups")

	// Created cgroups are used ones: they push the oldest out.
	for i := range 16 {
		r.Created(0, uint64(5_000_000+i), fmt.Sprintf("/docker/%064x", 1000+i), time.Now())
	}
	assert.Equal(t, Container{ID: fmt.Sprintf("%064x", 1015), Runtime: RuntimeDocker}, r.Resolve(CgroupIDs{Unified: 5_000_015}))
	assert.Equal(t, Container{}, r.Resolve(CgroupIDs{Unified: ids[39]}), "evicted, and walking is rate limited")
	assert.Equal(t, 16, r.Stats().Entries)
}

func TestRemovedCgroupsResolveForTheirRetention(t *testing.T) {
	h := newFixtureHost(t, fixtureLayouts["v2"])
	r := h.resolver(t, Options{RemovedRetention: time.Minute, WalkInterval: time.Hour})
	t0 := time.Unix(2_000_000, 0)
	now := t0
	r.now = func() time.Time { return now }
	r.Refresh()

	// A short-lived container: made and removed before its OOM event is read.
	r.Created(0, 777, "/system.slice/docker-"+id+".scope", t0)
	r.Removed(0, 777, t0.Add(time.Second))
	want := Container{ID: id, Runtime: RuntimeDocker}
	assert.Equal(t, want, r.Resolve(CgroupIDs{Unified: 777}), "still resolved after removal")

	// Expiry runs on the next removal past the retention.
	r.Created(0, 778, "/system.slice/sshd.service", t0)
	r.Removed(0, 778, t0.Add(2*time.Minute))
	now = t0.Add(2 * time.Minute)
	assert.Equal(t, Container{}, r.Resolve(CgroupIDs{Unified: 777}), "forgotten after the retention")
	assert.Equal(t, Container{ID: id}, r.Describe(id), "no longer described")
}

func TestContainersWaitsForMinAge(t *testing.T) {
	h := newFixtureHost(t, fixtureLayouts["hybrid"])
	h.mkdir(t, "memory", "/docker/"+id)
	r := h.resolver(t, Options{MinAge: time.Hour})
	assert.Empty(t, r.Containers(), "younger than min_age")
	r.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	got := r.Containers()
	require.Len(t, got, 1)
	assert.Equal(t, Container{ID: id, Runtime: RuntimeDocker}, got[0].Container)
	assert.Equal(t, filepath.Join(h.mounts["memory"], "docker", id), got[0].Memory)
	assert.Empty(t, got[0].CPU, "not in the cpu hierarchy")
	assert.WithinDuration(t, time.Now(), got[0].Created, time.Minute)
}

func TestContainerOfPIDAndNetns(t *testing.T) {
	h := newFixtureHost(t, fixtureLayouts["hybrid"])
	v1 := func(path string) string {
		return "9:name=systemd:/system.slice/containerd.service\n4:memory:" + path + "\n2:cpu,cpuacct:" + path + "\n1:pids:/\n0::/\n"
	}
	h.process(t, 1, v1("/init.scope"), 4026531840)
	podPath := "/kubepods/besteffort/pod" + uid + "/"
	h.process(t, 50, v1(podPath+id), 4026532100)  // the pod's sandbox
	h.process(t, 60, v1(podPath+id2), 4026532100) // an app container of the same pod
	h.process(t, 70, "0::/system.slice/docker-"+id2+".scope\n", 4026532200)
	h.process(t, 80, v1("/user.slice"), 4026532300)  // a host process in its own namespace
	h.process(t, 90, v1("/docker/"+id), 4026531840)  // a host-network container, in the host's namespace
	h.process(t, 91, v1("/user.slice"), 4026532400)  // a host process visiting (ip netns exec)…
	h.process(t, 92, v1("/docker/"+id2), 4026532400) // …a container's namespace

	r := h.resolver(t, Options{Parser: PathParser{KubernetesRuntime: RuntimeContainerd}})
	assert.Equal(t, Container{ID: id, Runtime: RuntimeContainerd, PodUID: uid}, r.ContainerOfPID(50))
	assert.Equal(t, Container{ID: id2, Runtime: RuntimeDocker}, r.ContainerOfPID(70), "cgroup2 line")
	assert.Equal(t, Container{ID: id2, Runtime: RuntimeDocker}, r.Describe(id2), "described from /proc, not from a cgroup id")
	other := "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
	assert.Equal(t, Container{ID: other, Runtime: RuntimePodman}, r.ContainerOfPath("/machine.slice/libpod-"+other+".scope"))
	assert.Equal(t, Container{ID: other, Runtime: RuntimePodman}, r.Describe(other))
	assert.Equal(t, Container{}, r.ContainerOfPID(1))
	assert.Equal(t, Container{}, r.ContainerOfPID(12345), "gone")

	assert.Equal(t, Container{ID: id, Runtime: RuntimeContainerd, PodUID: uid}, r.ContainerOfNetns(4026532100), "a pod's namespace: its first container")
	assert.Equal(t, Container{ID: id2, Runtime: RuntimeDocker}, r.ContainerOfNetns(4026532200))
	assert.Equal(t, Container{}, r.ContainerOfNetns(4026531840), "the host's namespace")
	assert.Equal(t, Container{}, r.ContainerOfNetns(4026532300), "no container's process in it")
	assert.Equal(t, Container{ID: id2, Runtime: RuntimeDocker}, r.ContainerOfNetns(4026532400), "a host process visiting does not count")
	assert.Equal(t, Container{}, r.ContainerOfNetns(0))
}

// In a pid namespace of our own, init is not the host's: the first
// process whose namespace we can read stands for the host.
func TestHostNetnsWithoutInit(t *testing.T) {
	h := newFixtureHost(t, fixtureLayouts["v2"])
	h.process(t, 7, "0::/system.slice/agent.service\n", 4026531999)
	h.process(t, 20, "0::/docker/"+id+"\n", 4026531999) // a host-network container
	r := h.resolver(t, Options{})
	assert.Equal(t, Container{}, r.ContainerOfNetns(4026531999))
}

func TestNilResolverIsTheHost(t *testing.T) {
	var r *Resolver
	assert.Equal(t, Container{}, r.Resolve(CgroupIDs{Unified: 1}))
	assert.Equal(t, Container{ID: id}, r.Describe(id))
	assert.Equal(t, Container{}, r.ContainerOfPID(1))
	assert.Equal(t, Container{}, r.ContainerOfNetns(1))
	assert.Nil(t, r.Containers())
}

func (h *fixtureHost) mkdirB(b *testing.B, path string) {
	if err := os.MkdirAll(filepath.Join(h.mounts["unified"], path), 0o755); err != nil {
		b.Fatal(err)
	}
}

// TestKnownEndsRemovedRetentionAfterRemoval: per-container series are
// dropped once Known is false, which is removed_retention after the
// container's cgroups went, without needing another removal to expire it.
func TestKnownEndsRemovedRetentionAfterRemoval(t *testing.T) {
	h := newFixtureHost(t, fixtureLayouts["v2"])
	r := h.resolver(t, Options{RemovedRetention: time.Minute, WalkInterval: time.Hour})
	t0 := time.Unix(2_000_000, 0)
	now := t0
	r.now = func() time.Time { return now }
	r.Refresh()

	assert.False(t, r.Known(id), "never seen")
	r.Created(0, 777, "/system.slice/docker-"+id+".scope", t0)
	assert.True(t, r.Known(id))
	r.Removed(0, 777, t0.Add(time.Second))
	now = t0.Add(30 * time.Second)
	assert.True(t, r.Known(id), "within the retention")
	now = t0.Add(2 * time.Minute)
	assert.False(t, r.Known(id), "past the retention")
	assert.False(t, (*Resolver)(nil).Known(id), "no resolver knows nothing")
}
