package oom

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/bpf"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/metric"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/testenv"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/tracing/tracingtest"
)

func TestMain(m *testing.M) {
	testenv.MaybeRunHelper()
	goleak.VerifyTestMain(m)
}

func TestCgroupOOMKill(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts bpf.Options
	}{
		{"best hook", bpf.Options{}},
		{"tracepoint", bpf.Options{Force: map[string]bpf.Kind{"oom_victim": bpf.Tracepoint}}},
		// The kprobe reads the OOM's scope from the kernel; this machine has
		// no kprobes, so it runs on the kernels of make test-kernels.
		{"kprobe", bpf.Options{Force: map[string]bpf.Kind{"oom_victim": bpf.Kprobe}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.opts.Force["oom_victim"] == bpf.Kprobe {
				testenv.RequireKprobes(t)
			}
			if tc.opts.Force != nil {
				testenv.Tracefs(t)
			}
			name := fmt.Sprintf("kps-oom-%d-%d", os.Getpid(), time.Now().UnixNano()%100000)
			dir, v1 := testenv.MemoryCgroup(t, name, 64<<20)
			h := tracingtest.New(t, "oom", nil, tracingtest.BPFOptions(tc.opts))
			h.Run(t)
			h.WaitAttached(t, 30*time.Second)
			// Every scope has its series before the first kill, so that
			// increase() sees that kill.
			for _, scope := range allScopes {
				_, ok := tracingtest.Point(h.Update(t), "kills", map[string]string{attrScope: scope})
				assert.True(t, ok, "kills{%s} is reported before any kill", scope)
			}

			pid := testenv.RunMemoryHog(t, dir)
			events := h.WaitEvents(t, 10*time.Second, 1, func(e tracingtest.Event) bool { return e.Attr("thread.id") == strconv.Itoa(pid) })
			time.Sleep(300 * time.Millisecond)
			var mine []tracingtest.Event
			for _, e := range h.Events(t) {
				if e.Attr("thread.id") == strconv.Itoa(pid) {
					mine = append(mine, e)
				}
			}
			require.Len(t, mine, 1, "exactly one event for the victim")
			e := events[0]
			assert.Equal(t, "kernel.oom.kill", e.EventName())
			assert.Equal(t, "oom.test", e.Attr("thread.name"))
			assert.Equal(t, "Error", e.SeverityText())
			assert.Equal(t, "cgroup", e.Attr("kernel.oom.scope"))
			assert.Equal(t, "/"+name, e.Attr("kernel.oom.cgroup"))
			assert.Equal(t, "/"+name, e.Attr("kernel.memcg.path"))
			assert.Equal(t, strconv.Itoa(64<<20), e.Attr("kernel.memcg.limit"))
			if tc.opts.Force["oom_victim"] == bpf.Kprobe || h.Programs.List()[0].Attach == "kprobe:oom_kill_process" {
				assert.Equal(t, "kernel", e.Attr("kernel.oom.scope_source"), "the kprobe reads the OOM's memory cgroup")
			} else {
				assert.Equal(t, "inferred", e.Attr("kernel.oom.scope_source"), "the tracepoints name only the victim")
			}
			assert.Empty(t, e.ContainerID(), "a cgroup no runtime made is the host's")
			stat, ok := e.Attributes().Get("kernel.memcg.stat")
			require.True(t, ok)
			anon := "anon" // cgroup2's memory.stat
			if v1 {
				anon = "rss"
			}
			_, ok = stat.Map().Get(anon)
			assert.True(t, ok, "memory.stat snapshot")
			mi, ok := e.Attributes().Get("kernel.meminfo")
			require.True(t, ok)
			total, _ := mi.Map().Get("MemTotal")
			assert.Positive(t, total.Int())

			// Other tests may OOM-kill on this host meanwhile: at least ours.
			kills, ok := tracingtest.Point(h.Update(t), "kills", map[string]string{attrScope: scopeCgroup})
			assert.True(t, ok)
			assert.GreaterOrEqual(t, kills, 1.0)
			for _, d := range h.Update(t) {
				assert.NotEqual(t, "victims", d.Name, "a cgroup no runtime made has no container series")
			}
		})
	}
}

// TestOOMNamesTheVictimsContainer runs the memory hog in cgroups named as
// containerd's CRI plugin (systemd driver) and docker (cgroupfs driver)
// name them, in every hierarchy this host has (v1 memory and cpu,
// cgroup2), and checks the kill arrives on that container's Resource.
func TestOOMNamesTheVictimsContainer(t *testing.T) {
	id, uid := testenv.RandomContainerID(), testenv.RandomPodUID()
	for _, tc := range []struct {
		name, rel                      string
		wantRuntime, wantPod, hookName string
		opts                           bpf.Options
	}{
		{name: "containerd systemd driver", wantRuntime: "containerd", wantPod: uid,
			rel: "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + strings.ReplaceAll(uid, "-", "_") + ".slice/cri-containerd-" + id + ".scope"},
		{name: "docker cgroupfs driver", wantRuntime: "docker", rel: "docker/" + id},
		{name: "docker cgroupfs driver, tracepoint", wantRuntime: "docker", rel: "docker/" + id,
			opts: bpf.Options{Force: map[string]bpf.Kind{"oom_victim": bpf.Tracepoint}}},
		{name: "docker cgroupfs driver, kprobe", wantRuntime: "docker", rel: "docker/" + id,
			opts: bpf.Options{Force: map[string]bpf.Kind{"oom_victim": bpf.Kprobe}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.opts.Force["oom_victim"] == bpf.Kprobe {
				testenv.RequireKprobes(t)
			}
			if tc.opts.Force != nil {
				testenv.Tracefs(t)
			}
			cg := testenv.NewContainerCgroups(t, tc.rel)
			limitFile := "memory.max"
			if _, err := os.Stat(filepath.Join(cg.Memory, "memory.limit_in_bytes")); err == nil {
				limitFile = "memory.limit_in_bytes"
			}
			require.NoError(t, os.WriteFile(filepath.Join(cg.Memory, limitFile), []byte(strconv.Itoa(64<<20)), 0o644))
			h := tracingtest.New(t, "oom", nil, tracingtest.BPFOptions(tc.opts))
			h.Run(t)
			h.WaitAttached(t, 30*time.Second)

			pid := testenv.RunMemoryHog(t, cg.Dirs...)
			e := h.WaitEvents(t, 10*time.Second, 1, func(e tracingtest.Event) bool { return e.Attr("thread.id") == strconv.Itoa(pid) })[0]
			assert.Equal(t, id, e.ContainerID())
			attrs := e.Resource.Attributes().AsRaw()
			assert.Equal(t, tc.wantRuntime, attrs["container.runtime.name"])
			if tc.wantPod != "" {
				assert.Equal(t, tc.wantPod, attrs["k8s.pod.uid"])
			} else {
				assert.NotContains(t, attrs, "k8s.pod.uid")
			}
			assert.Equal(t, cg.Path, e.Attr("kernel.memcg.path"))
			var victims []*metric.Data
			for _, d := range h.Update(t) {
				if d.Name == "victims" {
					victims = append(victims, d)
				}
			}
			require.Len(t, victims, 1, "one series: this container, its scope")
			assert.Equal(t, id, victims[0].ContainerID)
			assert.Equal(t, map[string]string{attrScope: scopeCgroup}, victims[0].Labels)
			assert.Equal(t, 1.0, victims[0].Value)
		})
	}
}
