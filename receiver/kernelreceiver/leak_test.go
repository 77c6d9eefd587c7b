//go:build linux

package kernelreceiver

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/testenv"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/tracing"
	"github.com/otelcol-kernel/otelcol-kernel/receiver/kernelreceiver/internal/metadata"
)

// bpfFDs lists this process's file descriptors of BPF programs, maps and links.
func bpfFDs(t *testing.T) []string {
	var out []string
	fds, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && strings.Contains(target, "bpf") {
			out = append(out, "fd "+fd.Name()+" "+target)
		}
	}
	return out
}

// bpfHandles lists what this process holds of BPF objects: file
// descriptors, and memory mappings of maps.
func bpfHandles(t *testing.T) []string {
	out := bpfFDs(t)
	maps, err := os.ReadFile("/proc/self/maps")
	require.NoError(t, err)
	for _, line := range strings.Split(string(maps), "\n") {
		if strings.Contains(line, "bpf") {
			out = append(out, "mapping "+line)
		}
	}
	return out
}

// TestStartStopReleasesEveryBPFObject runs the receiver with every
// collector through start/stop cycles and checks that it keeps no BPF
// program, map or link, and no goroutine (the package's goleak check).
func TestStartStopReleasesEveryBPFObject(t *testing.T) {
	testenv.RequireRoot(t, "loading BPF programs")
	runtime.GC() // earlier tests' receivers may still await collection
	before := bpfHandles(t)
	f := NewFactory()
	cfg := f.CreateDefaultConfig().(*Config)
	cfg.CollectionInterval = 100 * time.Millisecond
	for range 3 {
		r, err := f.CreateLogs(context.Background(), receivertest.NewNopSettings(metadata.Type), cfg, &consumertest.LogsSink{})
		require.NoError(t, err)
		require.NoError(t, r.Start(context.Background(), componenttest.NewNopHost()))
		kr := r.(*kernelReceiver)
		// Wait until every BPF collector is attached (its hook logged) or given up.
		require.Eventually(t, func() bool { return len(newHandles(before, bpfHandles(t))) > 0 }, 10*time.Second, 20*time.Millisecond)
		time.Sleep(300 * time.Millisecond)
		for _, s := range kr.Status() {
			assert.NotEqual(t, tracing.StateFailed, s.State, "%s: %s", s.Name, s.Reason)
		}
		require.NoError(t, r.Shutdown(context.Background()))
		// Close must close every descriptor at once; cilium/ebpf's
		// finalizers would close forgotten ones at the next GC, which
		// would hide a missing Close, so no GC before this check.
		assert.Empty(t, newHandles(bpfFDsOf(before), bpfFDs(t)), "descriptors left open after Shutdown")
	}
	// cilium/ebpf unmaps global-variable memory when the GC collects it.
	require.Eventually(t, func() bool {
		runtime.GC()
		return len(newHandles(before, bpfHandles(t))) == 0
	}, 5*time.Second, 50*time.Millisecond, "left behind: %v", newHandles(before, bpfHandles(t)))
}

func bpfFDsOf(handles []string) []string {
	var out []string
	for _, h := range handles {
		if strings.HasPrefix(h, "fd ") {
			out = append(out, h)
		}
	}
	return out
}

// newHandles is what now holds that before did not.
func newHandles(before, now []string) []string {
	var out []string
	for _, h := range now {
		if !slices.Contains(before, h) {
			out = append(out, h)
		}
	}
	return out
}
