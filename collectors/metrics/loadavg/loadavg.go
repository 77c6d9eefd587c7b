// Package loadavg reports the load averages and how many threads are
// runnable, in uninterruptible sleep (D state) and waiting for IO.
//
// Sources: /proc/loadavg and /proc/stat, and, when scan_threads is on, a
// count of the threads in D state. The kernel exports no host-wide count of
// those, so it is counted: by a BPF task iterator (loadavg.bpf.c), which
// walks the tasks in the kernel when Update reads it, or, where that cannot
// load (before 5.8, without CAP_BPF), from the state field of every
// /proc/<pid>/task/<tid>/stat, one small file read per thread.
package loadavg

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/procfs"
	"go.uber.org/zap"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/bpf"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/metric"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/tasks"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/tracing"
)

// taskHook is the iterator over every task that counts those in D state.
var taskHook = bpf.Hook{Name: "task_iter", Candidates: []bpf.Candidate{
	{Kind: bpf.Iter, Program: "count_uninterruptible"},
}}

// Config is the loadavg section of the receiver config.
type Config struct {
	// ScanThreads counts D-state threads by reading every thread's stat
	// file. Turn it off on hosts with very many threads to save that cost;
	// nr_uninterruptible is then not reported.
	ScanThreads bool `mapstructure:"scan_threads" doc:"count D-state threads: in the kernel with a BPF task iterator, or where it cannot load by reading every thread's stat file (one small read per thread per interval)"`
}

func init() {
	tracing.RegisterEventTracing("loadavg", newLoadavg,
		tracing.WithDescription("Load averages and the number of runnable, uninterruptible (D state) and IO-waiting threads on the host."),
		tracing.WithConfig(func() *Config { return &Config{ScanThreads: true} }),
		tracing.WithMetrics(
			metric.Desc{Name: "load1", Kind: metric.Gauge, Unit: "{thread}", Description: "1-minute load average (runnable plus uninterruptible threads, exponentially averaged)"},
			metric.Desc{Name: "load5", Kind: metric.Gauge, Unit: "{thread}", Description: "5-minute load average"},
			metric.Desc{Name: "load15", Kind: metric.Gauge, Unit: "{thread}", Description: "15-minute load average"},
			metric.Desc{Name: "nr_running", Kind: metric.Gauge, Unit: "{thread}", Description: "threads runnable now (procs_running in /proc/stat)"},
			metric.Desc{Name: "nr_blocked", Kind: metric.Gauge, Unit: "{thread}", Description: "threads blocked waiting for IO now (procs_blocked in /proc/stat)"},
			metric.Desc{Name: "nr_uninterruptible", Kind: metric.Gauge, Unit: "{thread}", Description: "threads in uninterruptible sleep (state D, as /proc shows it) now; only with scan_threads"},
		),
	)
}

type loadavgCollector struct {
	proc   procfs.FS
	cfg    *Config
	logger *zap.Logger
	opts   bpf.Options

	// iter is the loaded task iterator while Start runs, nil before and
	// after it and where it cannot load (Update then scans /proc). The
	// lock also keeps two reads of the iterator, whose program counts in a
	// global, from overlapping.
	mu   sync.Mutex
	iter *bpf.Object
}

func newLoadavg(s tracing.Settings) (*tracing.EventTracingAttr, error) {
	proc, err := procfs.NewDefaultFS()
	if err != nil {
		return nil, tracing.NotSupported("procfs: %v", err)
	}
	return &tracing.EventTracingAttr{
		TracingData: &loadavgCollector{proc: proc, cfg: s.Config.(*Config), logger: s.Logger, opts: bpf.OptionsFor(s)},
		Interval:    time.Minute,
		Flag:        tracing.FlagTracing | tracing.FlagMetric,
	}, nil
}

// Start loads the task iterator and keeps it until ctx ends. Where it
// cannot load, the count comes from /proc instead: that is a fallback, not
// a failure, so Start waits for ctx either way rather than being retried.
func (c *loadavgCollector) Start(ctx context.Context) error {
	if !c.cfg.ScanThreads {
		<-ctx.Done()
		return nil
	}
	cs, err := loadBpf()
	if err != nil {
		return err
	}
	obj, err := bpf.Load(bpf.Spec{Collection: cs, Hooks: []bpf.Hook{taskHook}}, c.opts)
	if err != nil {
		c.logger.Info("D-state threads are counted from /proc: the task iterator cannot load here", zap.Error(err))
		<-ctx.Done()
		return nil
	}
	obj.LogAttached(c.logger)
	c.mu.Lock()
	c.iter = obj
	c.mu.Unlock()
	<-ctx.Done()
	c.mu.Lock()
	c.iter = nil
	c.mu.Unlock()
	return obj.Close()
}

// countUninterruptible counts the threads in D state, through the
// iterator when it is loaded.
func (c *loadavgCollector) countUninterruptible() (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.iter == nil {
		return tasks.CountUninterruptible()
	}
	out, err := c.iter.ReadIter(taskHook.Name)
	if err != nil {
		return 0, err
	}
	if len(out) != 8 {
		return 0, fmt.Errorf("task iterator wrote %d bytes, want 8", len(out))
	}
	return int(binary.NativeEndian.Uint64(out)), nil
}

// Update reads the current values.
func (c *loadavgCollector) Update() ([]*metric.Data, error) {
	avg, err := c.proc.LoadAvg()
	if err != nil {
		return nil, fmt.Errorf("reading /proc/loadavg: %w", err)
	}
	data := []*metric.Data{
		metric.NewGaugeData("load1", avg.Load1, "", nil),
		metric.NewGaugeData("load5", avg.Load5, "", nil),
		metric.NewGaugeData("load15", avg.Load15, "", nil),
	}
	var errs []error
	if st, err := c.proc.Stat(); err != nil {
		errs = append(errs, fmt.Errorf("reading /proc/stat: %w", err))
	} else {
		data = append(data,
			metric.NewGaugeData("nr_running", float64(st.ProcessesRunning), "", nil),
			metric.NewGaugeData("nr_blocked", float64(st.ProcessesBlocked), "", nil),
		)
	}
	if c.cfg.ScanThreads {
		if n, err := c.countUninterruptible(); err != nil {
			errs = append(errs, err)
		} else {
			data = append(data, metric.NewGaugeData("nr_uninterruptible", float64(n), "", nil))
		}
	}
	return data, errors.Join(errs...)
}
