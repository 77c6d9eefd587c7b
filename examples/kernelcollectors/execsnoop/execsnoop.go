// Package execsnoop is an example BPF event collector written outside the
// otelcol-kernel module: one event per program executed, optionally only
// for programs under a path prefix.
//
// Hook: sched/sched_process_exec, as tp_btf or as a classic tracepoint
// (pkg/bpf picks the first the kernel accepts). The prefix filter and the
// events-per-second cap run in the kernel.
package execsnoop

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.uber.org/zap"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/bpf"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/container"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/metric"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/storage"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/tracing"
)

// filenameLen is FILENAME_LEN in execsnoop.bpf.c: the longest filename an
// event carries (with its NUL) and the room for the prefix.
const filenameLen = 128

// Config is the execsnoop section of the receiver config. The receiver
// decodes it (unknown keys are errors) and calls Validate.
type Config struct {
	FilenamePrefix  string `mapstructure:"filename_prefix" doc:"only execs of programs whose path, as given to exec, starts with this (e.g. /usr/sbin/); empty: every exec"`
	EventsPerSecond uint32 `mapstructure:"events_per_second" doc:"events let through per second, enforced in the kernel; the rest are counted as limited (0: no limit)"`
}

// Validate names the setting at fault.
func (c *Config) Validate() error {
	if len(c.FilenamePrefix) >= filenameLen {
		return fmt.Errorf("filename_prefix: %d bytes, at most %d", len(c.FilenamePrefix), filenameLen-1)
	}
	return nil
}

// execEvent is one exec. The json tags name the attributes; every field
// needs a doc tag (RegisterEventTracing checks), which the receiver's
// generated documentation shows.
type execEvent struct {
	Path      string `json:"process.executable.path" doc:"the program's path as given to exec (relative if the caller gave a relative one; at most 127 bytes)"`
	Name      string `json:"thread.name" doc:"command name after exec: the program's file name, cut to 15 bytes (the kernel's comm)"`
	Pid       uint32 `json:"process.pid" doc:"process id"`
	ParentPid uint32 `json:"process.parent_pid" doc:"process id of the parent"`
	CallerTid uint32 `json:"thread.id" doc:"thread id that called exec (differs from process.pid when a thread other than the leader executed)"`
}

// Summary becomes the log record's body (declared with tracing.Body).
func (e *execEvent) Summary() string {
	return fmt.Sprintf("exec %s (pid %d, parent %d)", e.Path, e.Pid, e.ParentPid)
}

// Severity sets the record's severity (storage.Save uses Info without it).
func (e *execEvent) Severity() plog.SeverityNumber { return plog.SeverityNumberInfo }

var hooks = []bpf.Hook{{Name: "sched_process_exec", Candidates: []bpf.Candidate{
	{Kind: bpf.TPBTF, Program: "exec_btf"},
	{Kind: bpf.Tracepoint, Program: "exec_tp", Target: "sched/sched_process_exec"},
}}}

func init() {
	tracing.RegisterEventTracing("execsnoop", newExecsnoop,
		tracing.WithDescription("Programs executed (sched/sched_process_exec), optionally only those under a path prefix; filtered and rate-capped in the kernel."),
		tracing.WithConfig(func() *Config { return &Config{EventsPerSecond: 100} }),
		// The event is named for what happened, as subject.verb: its EventName is kernel.process.exec.
		tracing.WithEvent("process.exec", &execEvent{}, "A program was executed. Container: the executing task's.",
			tracing.Body("exec <process.executable.path> (pid <process.pid>, parent <process.parent_pid>)")),
		tracing.WithMetrics(metric.Desc{Name: "execs", Kind: metric.Counter, Unit: "{exec}", Description: "exec events received from the kernel since the collector started (those the cap held back are counted in events.limited)"}),
		tracing.WithMetrics(bpf.EventCounterDescs("{exec}")...),
	)
}

type bpfCollector struct {
	cfg        *Config
	storage    *storage.Storage
	logger     *zap.Logger
	containers *container.Resolver
	// opts carries the receiver's program registry (for its self
	// telemetry) and what a test forced through the harness (a hook
	// candidate, the perf buffer).
	opts bpf.Options

	execs    atomic.Uint64
	counters bpf.EventCounters
}

// newExecsnoop only builds the collector; loading BPF belongs in Start.
func newExecsnoop(s tracing.Settings) (*tracing.EventTracingAttr, error) {
	return &tracing.EventTracingAttr{
		TracingData: &bpfCollector{
			cfg: s.Config.(*Config), storage: s.Storage, logger: s.Logger, containers: s.Containers,
			opts: bpf.OptionsFor(s),
		},
		// How long the receiver waits before calling Start again if it returns.
		Interval: 10 * time.Second,
		Flag:     tracing.FlagTracing | tracing.FlagMetric,
	}, nil
}

// Start loads and attaches the hook and saves an event per exec until ctx
// ends. Every BPF object is released when it returns.
func (c *bpfCollector) Start(ctx context.Context) error {
	cs, err := loadBpf()
	if err != nil {
		return err
	}
	var prefix [filenameLen]byte
	copy(prefix[:], c.cfg.FilenamePrefix)
	obj, err := bpf.Load(bpf.Spec{
		Collection: cs,
		Constants: map[string]any{
			"rate_limit_per_sec":  c.cfg.EventsPerSecond,
			"filename_prefix":     prefix,
			"filename_prefix_len": uint32(len(c.cfg.FilenamePrefix)),
		},
		Hooks: hooks,
	}, c.opts)
	if err != nil {
		return err
	}
	defer obj.Close()
	obj.LogAttached(c.logger)
	// Update reads the kernel's cap and loss counters through obj until
	// Start returns; Detach, before Close, keeps their last values.
	c.counters.Attach(obj, nil)
	defer c.counters.Detach()
	return obj.ServeEvents(ctx, 0, c.handle)
}

// handle decodes one event from the kernel and saves it.
func (c *bpfCollector) handle(raw []byte) {
	var ev bpfExecEvent
	if err := bpf.Decode(raw, &ev, 0); err != nil {
		c.logger.Warn("malformed exec event", zap.Error(err))
		return
	}
	c.execs.Add(1)
	e := &execEvent{
		Path:      bpf.CString(ev.Filename[:]),
		Name:      bpf.CString(ev.Hdr.Comm[:]),
		Pid:       ev.Hdr.Tgid,
		ParentPid: ev.Ppid,
		CallerTid: ev.OldPid,
	}
	ctr := c.containers.Resolve(container.CgroupIDs{Unified: ev.Hdr.CgroupId, Memory: ev.Hdr.MemcgId, CPU: ev.Hdr.CpuCgroupId})
	if err := c.storage.Save("process.exec", ctr.ID, bpf.WallTime(ev.Hdr.TimestampNs), e); err != nil {
		c.logger.Debug("execsnoop event not saved", zap.Error(err))
	}
}

// Update reports the counters.
func (c *bpfCollector) Update() ([]*metric.Data, error) {
	return append(c.counters.Data(), metric.NewCounterData("execs", float64(c.execs.Load()), "", nil)), nil
}
