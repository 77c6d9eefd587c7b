package bpf

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/container"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/testenv"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/tracing"
)

func TestMain(m *testing.M) {
	if os.Getenv(privilegeProbeEnv) != "" {
		runPrivilegeProbe()
	}
	goleak.VerifyTestMain(m)
}

var getppidHook = Hook{Name: "getppid", Candidates: []Candidate{
	{Kind: Fentry, Program: "getppid_fentry"},
	{Kind: Kprobe, Program: "getppid_kprobe", Target: "__x64_sys_getppid"},
	{Kind: Tracepoint, Program: "getppid_tracepoint", Target: "syscalls/sys_enter_getppid"},
}}

func selftestSpec(t *testing.T, rateLimit uint32) Spec {
	t.Helper()
	testenv.RequireRoot(t, "loading BPF programs")
	testenv.Tracefs(t)
	cs, err := loadSelftest()
	require.NoError(t, err)
	return Spec{
		Collection: cs,
		Constants:  map[string]any{"target_tgid": uint32(os.Getpid()), "rate_limit_per_sec": rateLimit},
		Hooks:      []Hook{getppidHook},
	}
}

func load(t *testing.T, spec Spec, opts Options) *Object {
	t.Helper()
	obj, err := Load(spec, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = obj.Close() })
	return obj
}

func hits(t *testing.T, obj *Object) uint64 {
	var n uint64
	require.NoError(t, obj.Collection.Maps["hits"].Lookup(uint32(0), &n))
	return n
}

// openEvents opens the event channel; on the perf path it must be open
// before events fire, since the kernel has nowhere to write them until the
// reader installs its per-CPU buffers.
func openEvents(t *testing.T, obj *Object) *EventReader {
	t.Helper()
	rd, err := obj.NewEventReader(0)
	require.NoError(t, err)
	t.Cleanup(func() { _ = rd.Close() })
	return rd
}

// readEvents reads what the event channel holds now.
func readEvents(t *testing.T, rd *EventReader) []selftestSelftestEvent {
	t.Helper()
	var out []selftestSelftestEvent
	for {
		rd.SetDeadline(time.Now().Add(100 * time.Millisecond))
		raw, err := rd.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return out
		}
		require.NoError(t, err)
		var e selftestSelftestEvent
		require.NoError(t, binary.Read(bytes.NewReader(raw), binary.NativeEndian, &e))
		out = append(out, e)
	}
}

// channels runs f once per event channel: the ring buffer, and the perf
// buffer that kernels before 5.8 use.
func channels(t *testing.T, f func(t *testing.T, perf bool)) {
	for _, perf := range []bool{false, true} {
		name := "ringbuf"
		if perf {
			name = "perfbuf"
		}
		t.Run(name, func(t *testing.T) { f(t, perf) })
	}
}

func TestFallsBackToTheFirstCandidateThatWorks(t *testing.T) {
	channels(t, testFallback)
}

func testFallback(t *testing.T, perf bool) {
	obj := load(t, selftestSpec(t, 0), Options{PerfBuffer: perf})
	assert.Equal(t, perf, obj.PerfBuffer)
	require.Len(t, obj.Hooks, 1)
	got := obj.Hooks[0]
	t.Logf("getppid attached as %s; passed over: %v", got.Candidate, got.Skipped)

	// Every better candidate was tried and says why it was passed over.
	idx := -1
	for i, c := range getppidHook.Candidates {
		if c == got.Candidate {
			idx = i
		}
	}
	require.GreaterOrEqual(t, idx, 0)
	require.Len(t, got.Skipped, idx)
	for i, a := range got.Skipped {
		assert.Equal(t, getppidHook.Candidates[i], a.Candidate)
		assert.Error(t, a.Err)
	}
	if !testenv.HaveKprobes() {
		// This machine: no trampolines, no kprobes; the tracepoint remains.
		assert.Equal(t, Tracepoint, got.Candidate.Kind)
		assert.Contains(t, got.Skipped[1].Err.Error(), "attach")
	}
	// Only the chosen program was loaded.
	assert.Len(t, obj.Collection.Programs, 1)

	rd := openEvents(t, obj)
	const calls = 25
	for range calls {
		syscall.Getppid()
	}
	assert.Equal(t, uint64(calls), hits(t, obj))
	assert.Len(t, readEvents(t, rd), calls)
}

// TestEveryCandidateWorksWhenForced forces each candidate of the selftest
// hook in turn: it must attach through that candidate and see every call.
// This machine has no fentry or kprobes, so those cases skip here and run
// on the kernels of the matrix (make test-kernels).
func TestEveryCandidateWorksWhenForced(t *testing.T) {
	for _, tc := range []struct {
		kind    Kind
		require func(testing.TB)
	}{
		{Fentry, testenv.RequireFentry},
		{Kprobe, testenv.RequireKprobes},
		{Tracepoint, testenv.Tracefs},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			tc.require(t)
			obj := load(t, selftestSpec(t, 0), Options{Force: map[string]Kind{"getppid": tc.kind}})
			assert.Equal(t, tc.kind, obj.Hooks[0].Candidate.Kind)
			assert.Empty(t, obj.Hooks[0].Skipped)
			rd := openEvents(t, obj)
			const calls = 10
			for range calls {
				syscall.Getppid()
			}
			assert.Equal(t, uint64(calls), hits(t, obj))
			assert.Len(t, readEvents(t, rd), calls)
		})
	}
}

func TestForcingAMissingCandidateIsNotSupported(t *testing.T) {
	if testenv.HaveKprobes() {
		t.Skip("this kernel has kprobes; the case is a kernel without them")
	}
	_, err := Load(selftestSpec(t, 0), Options{Force: map[string]Kind{"getppid": Kprobe}})
	require.Error(t, err)
	assert.ErrorIs(t, err, tracing.ErrNotSupported)
	assert.Contains(t, err.Error(), "no attach point for hook getppid works on this kernel")
	assert.Contains(t, err.Error(), "kprobe:__x64_sys_getppid")
}

func TestMissingProgramOrConstantIsAnError(t *testing.T) {
	spec := selftestSpec(t, 0)
	spec.Constants["no_such_constant"] = uint32(1)
	_, err := Load(spec, Options{})
	assert.ErrorContains(t, err, `no constant "no_such_constant"`)
	assert.NotErrorIs(t, err, tracing.ErrNotSupported)

	spec = selftestSpec(t, 0)
	spec.Hooks = []Hook{{Name: "x", Candidates: []Candidate{{Kind: Tracepoint, Program: "nope", Target: "a/b"}}}}
	_, err = Load(spec, Options{})
	assert.ErrorContains(t, err, `no program "nope"`)
}

func TestRateLimiterCapsEventsAndCounts(t *testing.T) {
	channels(t, testRateLimit)
}

func testRateLimit(t *testing.T, perf bool) {
	const limit, calls = 5, 200
	obj := load(t, selftestSpec(t, limit), Options{Force: map[string]Kind{"getppid": Tracepoint}, PerfBuffer: perf})
	rd := openEvents(t, obj)
	for range calls {
		syscall.Getppid()
	}
	events := readEvents(t, rd)
	var passed, limited uint64
	var perCPU []uint64
	require.NoError(t, obj.Collection.Maps["rate_counters"].Lookup(uint32(0), &perCPU))
	for _, v := range perCPU {
		passed += v
	}
	require.NoError(t, obj.Collection.Maps["rate_counters"].Lookup(uint32(1), &perCPU))
	for _, v := range perCPU {
		limited += v
	}
	// The calls take far less than a second, but may straddle one window boundary.
	assert.LessOrEqual(t, passed, uint64(2*limit))
	assert.GreaterOrEqual(t, passed, uint64(limit))
	assert.Equal(t, uint64(calls), passed+limited)
	assert.Len(t, events, int(passed), "what passed is what was emitted")
}

// Over several one-second windows the cap holds per window, including the
// windows in which full-window rejects are decided on jiffies alone, once
// the program has measured the tick rate.
func TestRateLimiterOverSeconds(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 3 seconds")
	}
	const limit = 5
	obj := load(t, selftestSpec(t, limit), Options{Force: map[string]Kind{"getppid": Tracepoint}})
	rd := openEvents(t, obj)
	start := time.Now()
	calls := 0
	for time.Since(start) < 3200*time.Millisecond {
		syscall.Getppid()
		calls++
	}
	elapsed := time.Since(start)
	passed, limited, err := obj.RateCounts()
	require.NoError(t, err)
	windows := int(elapsed/time.Second) + 1 // 4
	t.Logf("%d calls in %v: %d passed, %d limited", calls, elapsed, passed, limited)
	assert.Equal(t, uint64(calls), passed+limited)
	assert.GreaterOrEqual(t, passed, uint64((windows-1)*limit), "every window lets the cap through")
	assert.LessOrEqual(t, passed, uint64((windows+1)*limit), "and no more")
	assert.Len(t, readEvents(t, rd), int(passed))
	var w selftestRateWindow
	require.NoError(t, obj.Collection.Maps["rate_window"].Lookup(uint32(0), &w))
	// jiffies64 is 5.5+: there the tick rate is known after two windows.
	assert.Positive(t, w.JiffiesPerSec, "the tick rate was measured")
	assert.LessOrEqual(t, w.JiffiesPerSec, uint64(1000), "HZ is at most 1000")
}

func TestLostEventsAreCounted(t *testing.T) {
	channels(t, func(t *testing.T, perf bool) {
		// One page of ring buffer (or of perf buffer per CPU) holds a few
		// dozen events: 500 unread events overflow it.
		obj := load(t, selftestSpec(t, 0), Options{Force: map[string]Kind{"getppid": Tracepoint}, PerfBuffer: perf, RingBufferBytes: uint32(os.Getpagesize())})
		rd, err := obj.NewEventReader(os.Getpagesize())
		require.NoError(t, err)
		defer rd.Close()
		const calls = 500
		for range calls {
			syscall.Getppid()
		}
		read := 0
		for {
			rd.SetDeadline(time.Now().Add(100 * time.Millisecond))
			if _, err := rd.Read(); err != nil {
				require.ErrorIs(t, err, os.ErrDeadlineExceeded)
				break
			}
			read++
		}
		lost, err := rd.Lost()
		require.NoError(t, err)
		t.Logf("read %d, lost %d", read, lost)
		assert.Positive(t, lost)
		assert.Equal(t, uint64(calls), uint64(read)+lost, "every event is either read or counted lost")
	})
}

func TestEventHeaderDescribesTheTask(t *testing.T) {
	obj := load(t, selftestSpec(t, 0), Options{Force: map[string]Kind{"getppid": Tracepoint}})
	rd := openEvents(t, obj)
	runtime.LockOSThread()
	tid := unix.Gettid()
	syscall.Getppid()
	runtime.UnlockOSThread()
	events := readEvents(t, rd)
	require.Len(t, events, 1)
	h := events[0].Hdr
	assert.Equal(t, uint32(tid), h.Pid)
	assert.Equal(t, uint32(os.Getpid()), h.Tgid)
	assert.Equal(t, uint32(3), events[0].Hook)
	comm := make([]byte, 0, len(h.Comm))
	for _, c := range h.Comm {
		if c == 0 {
			break
		}
		comm = append(comm, byte(c))
	}
	// Go threads all carry the process's name.
	procComm, err := os.ReadFile("/proc/self/comm")
	require.NoError(t, err)
	assert.Equal(t, strings.TrimSpace(string(procComm)), string(comm))
	assert.InDelta(t, float64(monotonicNow()), float64(h.TimestampNs), float64(10*time.Second))

	// The cgroup ids are the inodes of the task's cgroup directories.
	v2, v1mem, v1cpu := cgroupDirs(t)
	assert.Equal(t, inode(t, v2), h.CgroupId, "cgroup2 id")
	if v1mem != "" {
		assert.Equal(t, inode(t, v1mem), h.MemcgId, "v1 memory cgroup id")
	}
	if v1cpu != "" {
		assert.Equal(t, inode(t, v1cpu), h.CpuCgroupId, "v1 cpu cgroup id")
	}
}

func TestCloseReleasesEveryObject(t *testing.T) {
	spec := selftestSpec(t, 0)
	for range 3 {
		obj, err := Load(spec, Options{})
		require.NoError(t, err)
		var progs []ebpf.ProgramID
		var mapIDs []ebpf.MapID
		var linkIDs []link.ID
		for _, p := range obj.Collection.Programs {
			info, err := p.Info()
			require.NoError(t, err)
			id, _ := info.ID()
			progs = append(progs, id)
		}
		for _, m := range obj.Collection.Maps {
			info, err := m.Info()
			require.NoError(t, err)
			id, _ := info.ID()
			mapIDs = append(mapIDs, id)
		}
		for _, l := range obj.links {
			info, err := l.Info()
			require.NoError(t, err)
			linkIDs = append(linkIDs, info.ID)
		}
		require.NotEmpty(t, progs)
		require.NotEmpty(t, mapIDs)
		require.NotEmpty(t, linkIDs)
		require.NoError(t, obj.Close())

		assert.Eventually(t, func() bool {
			// cilium/ebpf maps a collection's global-variable sections
			// (.rodata, .bss) into memory and unmaps them only when the Go
			// GC collects them; the mapping holds the kernel objects. No fd
			// stays open after Close (checked by hand), so a GC is what is
			// owed here, not a leak.
			runtime.GC()
			for _, id := range progs {
				if p, err := ebpf.NewProgramFromID(id); err == nil {
					p.Close()
					return false
				}
			}
			for _, id := range mapIDs {
				if m, err := ebpf.NewMapFromID(id); err == nil {
					m.Close()
					return false
				}
			}
			for _, id := range linkIDs {
				if l, err := link.NewFromID(id); err == nil {
					l.Close()
					return false
				}
			}
			return true
		}, 5*time.Second, 20*time.Millisecond, "programs %v, maps %v, links %v outlive Close", progs, mapIDs, linkIDs)
	}
}

func monotonicNow() int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// cgroupDirs finds this process's cgroup2 directory and, on a v1 or hybrid
// host, its memory and cpu cgroup directories ("" where absent).
func cgroupDirs(t *testing.T) (v2, mem, cpu string) {
	// Where each hierarchy is mounted, from mountinfo (not assumed: a
	// host may mount cpu at /sys/fs/cgroup/cpu or /sys/fs/cgroup/cpu,cpuacct).
	layout, err := container.ReadLayout("/proc")
	require.NoError(t, err)
	f, err := os.Open("/proc/self/cgroup")
	require.NoError(t, err)
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && layout.Unified != nil:
			v2 = filepath.Join(layout.Unified.Mount, parts[2])
		case parts[1] == "memory" && layout.Memory != nil:
			mem = filepath.Join(layout.Memory.Mount, parts[2])
		case strings.Contains(","+parts[1]+",", ",cpu,") && layout.CPU != nil:
			cpu = filepath.Join(layout.CPU.Mount, parts[2])
		}
	}
	return v2, mem, cpu
}

func inode(t *testing.T, path string) uint64 {
	var st unix.Stat_t
	require.NoError(t, unix.Stat(path, &st), path)
	return st.Ino
}

// TestLog2Histogram checks common.h's hist_add: the n-th getppid adds n,
// so after 25 calls bucket i (values in [2^(i-1), 2^i)) holds how many of
// 1..25 fall in it.
func TestLog2Histogram(t *testing.T) {
	obj := load(t, selftestSpec(t, 0), Options{Force: map[string]Kind{"getppid": Tracepoint}})
	for range 25 {
		syscall.Getppid()
	}
	var h selftestHist
	require.NoError(t, obj.Collection.Maps["hit_hist"].Lookup(uint32(0), &h))
	want := [32]uint64{1: 1, 2: 2, 3: 4, 4: 8, 5: 10}
	assert.Equal(t, want, h.Slots)
	assert.Equal(t, uint64(25*26/2), h.Sum)
}
