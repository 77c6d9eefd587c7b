package cgroupwatch

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/bpf"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/container"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/testenv"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/tracing"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func ino(t *testing.T, path string) uint64 {
	var st syscall.Stat_t
	require.NoError(t, syscall.Stat(path, &st))
	return st.Ino
}

// idsOf returns the cgroup ids of the directories cg made, by hierarchy.
func idsOf(t *testing.T, l container.Layout, cg *testenv.ContainerCgroups) container.CgroupIDs {
	var ids container.CgroupIDs
	for _, dir := range cg.Dirs {
		switch {
		case l.Unified != nil && strings.HasPrefix(dir, l.Unified.Mount+"/"):
			ids.Unified = ino(t, dir)
		case l.Memory != nil && strings.HasPrefix(dir, l.Memory.Mount+"/"):
			ids.Memory = ino(t, dir)
		case l.CPU != nil && strings.HasPrefix(dir, l.CPU.Mount+"/"):
			ids.CPU = ino(t, dir)
		}
	}
	return ids
}

// TestNewCgroupsAreKnownWithoutWalking makes container cgroups after the
// resolver's only walk, with walking on unknown ids disabled, so only the
// hooks can tell the resolver about them; then removes them and checks the
// removals arrive too.
func TestNewCgroupsAreKnownWithoutWalking(t *testing.T) {
	testenv.RequireRoot(t, "loading BPF programs and making cgroups")
	for _, kind := range []bpf.Kind{bpf.TPBTF, bpf.Tracepoint} {
		t.Run(string(kind), func(t *testing.T) {
			if kind == bpf.Tracepoint {
				testenv.Tracefs(t)
			}
			l, err := container.ReadLayout("/proc")
			require.NoError(t, err)
			r := container.NewResolver(l, container.Options{WalkInterval: time.Hour, RemovedRetention: time.Nanosecond})
			w, err := Start(r, bpf.Options{
				Force:    map[string]bpf.Kind{"cgroup_mkdir": kind, "cgroup_rmdir": kind},
				Programs: tracing.NewPrograms().For(tracing.SelfName), // as the receiver names them
			}, zaptest.NewLogger(t))
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, w.Close()) })
			for _, a := range w.Attached() {
				assert.Equal(t, kind, a.Candidate.Kind, a.Hook)
			}
			r.Refresh()

			id, id2 := testenv.RandomContainerID(), testenv.RandomContainerID()
			first := testenv.NewContainerCgroups(t, "docker/"+id)
			second := testenv.NewContainerCgroups(t, "docker/"+id2)
			ids, ids2 := idsOf(t, l, first), idsOf(t, l, second)
			want := container.Container{ID: id, Runtime: container.RuntimeDocker}
			want2 := container.Container{ID: id2, Runtime: container.RuntimeDocker}
			require.Eventually(t, func() bool { return r.Resolve(ids) == want && r.Resolve(ids2) == want2 }, 5*time.Second, 20*time.Millisecond)
			// Each hierarchy on its own: the hooks report cgroup2 (hierarchy 0)
			// as well as the v1 memory and cpu hierarchies.
			for name, one := range map[string]container.CgroupIDs{
				"cgroup2": {Unified: ids.Unified}, "memory": {Memory: ids.Memory}, "cpu": {CPU: ids.CPU},
			} {
				if one != (container.CgroupIDs{}) {
					assert.Equal(t, want, r.Resolve(one), name)
				}
			}
			s := r.Stats()
			assert.Zero(t, s.Lookups[container.LookupWalk], "known from the hooks, not from a walk")
			assert.True(t, s.Tracked)

			// Removing the first and then the second: the second removal
			// expires the first (retention 1ns), so it no longer resolves.
			for _, dir := range first.Dirs {
				require.NoError(t, os.Remove(dir))
			}
			for _, dir := range second.Dirs {
				require.NoError(t, os.Remove(dir))
			}
			require.Eventually(t, func() bool { return r.Resolve(ids).IsZero() }, 5*time.Second, 20*time.Millisecond,
				"the removal was seen")
			assert.Positive(t, w.Stats().Records)
		})
	}
}

// A path longer than a record holds is not remembered cut short: it is
// counted, and left to a walk.
func TestLongPathsAreLeftToAWalk(t *testing.T) {
	testenv.RequireRoot(t, "loading BPF programs and making cgroups")
	l, err := container.ReadLayout("/proc")
	require.NoError(t, err)
	r := container.NewResolver(l, container.Options{WalkInterval: time.Hour})
	w, err := Start(r, bpf.Options{Programs: tracing.NewPrograms().For(tracing.SelfName)}, zaptest.NewLogger(t))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, w.Close()) })
	r.Refresh()

	long := strings.Repeat("x", 200)
	id := testenv.RandomContainerID()
	cg := testenv.NewContainerCgroups(t, filepath.Join("kps-long", long, long, "docker", id))
	require.Eventually(t, func() bool { return w.Stats().Truncated >= uint64(len(cg.Dirs)) }, 5*time.Second, 20*time.Millisecond)
	assert.True(t, r.Resolve(idsOf(t, l, cg)).IsZero(), "not remembered with a cut path; walking is off in this test")
	require.Eventually(t, func() bool { return r.Stats().TrackerTruncated >= uint64(len(cg.Dirs)) }, 3*time.Second, 50*time.Millisecond,
		"reported in the resolver's stats")
}
