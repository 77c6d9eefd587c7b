// Package cgroupwatch feeds a container.Resolver the cgroups the kernel
// makes and removes, from the cgroup/cgroup_mkdir and cgroup/cgroup_rmdir
// tracepoints.
//
// Why tracepoints rather than a watch on cgroupfs: inotify does not report
// directories made in cgroupfs (kernfs notifies only file changes), so a
// filesystem watch would be a poll, and a poll misses the cgroup a
// short-lived container made and removed between two passes. The
// tracepoints hand over each cgroup's id and path at the moment it is made,
// which is exactly the mapping an event needs later, even after the
// cgroup is gone. Where they cannot attach, the resolver still works by
// walking a hierarchy when it meets an unknown id.
package cgroupwatch

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/bpf"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/container"
)

var hooks = []bpf.Hook{
	{Name: "cgroup_mkdir", Candidates: []bpf.Candidate{
		{Kind: bpf.TPBTF, Program: "mkdir_btf"},
		{Kind: bpf.Tracepoint, Program: "mkdir_tp", Target: "cgroup/cgroup_mkdir"},
	}},
	{Name: "cgroup_rmdir", Candidates: []bpf.Candidate{
		{Kind: bpf.TPBTF, Program: "rmdir_btf"},
		{Kind: bpf.Tracepoint, Program: "rmdir_tp", Target: "cgroup/cgroup_rmdir"},
	}},
}

// Watcher is an attached pair of cgroup hooks feeding one Resolver.
type Watcher struct {
	obj    *bpf.Object
	cancel context.CancelFunc
	done   sync.WaitGroup

	records, truncated, lost atomic.Uint64
	mu                       sync.Mutex // held while reading the kernel's counter
	stopped                  bool       // the maps may be closed: read no more
}

// counts reads the kernel's count of lost records (one syscall), for the
// resolver's Stats.
func (w *Watcher) counts() (lost, truncated uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		if n, err := w.obj.EventsLost(); err == nil {
			w.lost.Store(n)
		}
	}
	return w.lost.Load(), w.truncated.Load()
}

// Stats are the watcher's counters.
type Stats struct {
	Records   uint64 // mkdir and rmdir records read
	Truncated uint64 // paths too long for the record; those cgroups are found by walking
	Lost      uint64 // records the kernel could not queue (buffer full); also found by walking
}

// Start attaches the hooks and feeds r until Close. It returns an error
// wrapping tracing.ErrNotSupported when neither candidate of a hook can
// attach on this kernel.
func Start(r *container.Resolver, opts bpf.Options, logger *zap.Logger) (*Watcher, error) {
	cs, err := loadBpf()
	if err != nil {
		return nil, err
	}
	var mask uint64
	for _, h := range r.Layout().Hierarchies() {
		if h.ID >= 0 && h.ID < 64 {
			mask |= 1 << h.ID
		}
	}
	if opts.RingBufferBytes == 0 {
		// 128 records of 512 bytes between two reads; a burst beyond it is
		// counted lost, and those cgroups are found by walking.
		opts.RingBufferBytes = bpf.SmallRing(64 << 10)
	}
	obj, err := bpf.Load(bpf.Spec{
		Collection: cs,
		Constants:  map[string]any{"tracked_hierarchies": mask},
		Hooks:      hooks,
	}, opts)
	if err != nil {
		return nil, err
	}
	obj.LogAttached(logger)
	r.NoteTracker(true, 0, 0)
	ctx, cancel := context.WithCancel(context.Background())
	w := &Watcher{obj: obj, cancel: cancel}
	r.TrackerCounts(w.counts)
	w.done.Add(1)
	go func() {
		defer w.done.Done()
		err := obj.ServeEvents(ctx, 0, func(raw []byte) { w.handle(r, raw, logger) })
		// The last count, while the maps are open; from now on Stats
		// reports it as it was.
		w.mu.Lock()
		if n, err := obj.EventsLost(); err == nil {
			w.lost.Store(n)
		}
		w.stopped = true
		w.mu.Unlock()
		r.TrackerCounts(nil)
		r.NoteTracker(false, w.lost.Load(), w.truncated.Load())
		if err != nil && !errors.Is(err, context.Canceled) {
			logger.Warn("cgroup watch stopped; unknown cgroups are found by walking from now on", zap.Error(err))
		}
	}()
	return w, nil
}

func (w *Watcher) handle(r *container.Resolver, raw []byte, logger *zap.Logger) {
	var ev bpfCgroupEvent
	if err := bpf.Decode(raw, &ev, 0); err != nil {
		logger.Debug("malformed cgroup record", zap.Error(err), zap.Int("bytes", len(raw)))
		return
	}
	w.records.Add(1)
	t := bpf.WallTime(ev.TimestampNs)
	switch ev.Op {
	case uint8(bpfCgroupOpCGROUP_MKDIR):
		if ev.Truncated != 0 {
			w.truncated.Add(1)
			return // a walk will find it with its whole path
		}
		r.Created(int(ev.Hierarchy), ev.Id, bpf.CString(ev.Path[:]), t)
	case uint8(bpfCgroupOpCGROUP_RMDIR):
		r.Removed(int(ev.Hierarchy), ev.Id, t)
	}
}

// Stats returns the counters.
func (w *Watcher) Stats() Stats {
	lost, truncated := w.counts()
	return Stats{Records: w.records.Load(), Truncated: truncated, Lost: lost}
}

// Attached describes the hooks in use.
func (w *Watcher) Attached() []bpf.Attached { return w.obj.Hooks }

// Close detaches the hooks and releases every kernel object.
func (w *Watcher) Close() error {
	w.cancel()
	w.done.Wait()
	return w.obj.Close()
}
