// Package hungtask reports tasks the kernel's hung-task detector finds
// blocked in uninterruptible sleep (D state) for longer than
// kernel.hung_task_timeout_secs, with the kernel stacks of the hung task
// and of every other task blocked at that moment: a hung task is usually
// the victim, and the stacks around it show what it waits for.
//
// Hook: sched/sched_process_hang, as tp_btf (the task itself) or as a
// classic tracepoint (its pid and comm). Stacks come from /proc/PID/stack.
package hungtask

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/procfs"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.uber.org/zap"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/bpf"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/container"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/metric"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/storage"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/tasks"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/tracing"
)

// Config is the hungtask section of the receiver config.
type Config struct {
	MaxBlockedTasks int    `mapstructure:"max_blocked_tasks" doc:"most other D-state tasks listed, with their stacks, in one event"`
	EventsPerSecond uint32 `mapstructure:"events_per_second" doc:"events let through per second, enforced in the kernel; the rest are counted as limited (0: no limit)"`
}

// Validate names the setting at fault.
func (c *Config) Validate() error {
	// Each listed task costs a /proc stack read and its frames in the event.
	if c.MaxBlockedTasks < 0 || c.MaxBlockedTasks > 4096 {
		return fmt.Errorf("max_blocked_tasks: %d must be from 0 to 4096", c.MaxBlockedTasks)
	}
	return nil
}

// hungEvent is one hung task.
type hungEvent struct {
	ThreadID     uint32        `json:"thread.id" doc:"thread id of the hung task"`
	ProcessID    uint32        `json:"process.pid" doc:"process id (thread group) of the hung task"`
	ThreadName   string        `json:"thread.name" doc:"command name (comm) of the hung task"`
	Timeout      int           `json:"kernel.hung_task.timeout" doc:"the sysctl kernel.hung_task_timeout_secs when the event was read, in seconds: the task was blocked at least this long"`
	Stack        string        `json:"code.stacktrace" doc:"kernel stack of the hung task, one function+0xoffset/0xsize frame per line, innermost first (from /proc/PID/stack)"`
	BlockedTotal int           `json:"kernel.blocked_tasks.count" doc:"other tasks in D state at that moment"`
	Blocked      []blockedTask `json:"kernel.blocked_tasks.list" doc:"up to max_blocked_tasks of them, each a map of the keys below"`
}

// blockedTask is one other task in D state when the hung task was reported.
type blockedTask struct {
	ThreadID    int    `json:"thread.id" doc:"thread id"`
	ProcessID   int    `json:"process.pid" doc:"process id (thread group)"`
	ThreadName  string `json:"thread.name" doc:"command name (comm)"`
	ContainerID string `json:"container.id,omitempty" doc:"the task's container (bare id), absent for a host task: blocked tasks of other containers are often the cause"`
	Stack       string `json:"code.stacktrace" doc:"kernel stack, one frame per line, innermost first"`
}

func (e *hungEvent) Severity() plog.SeverityNumber { return plog.SeverityNumberError }

func (e *hungEvent) Summary() string {
	return fmt.Sprintf("task %s:%d blocked in D state for more than %d seconds (%d other tasks blocked)", e.ThreadName, e.ThreadID, e.Timeout, e.BlockedTotal)
}

var hooks = []bpf.Hook{{Name: "sched_process_hang", Candidates: []bpf.Candidate{
	{Kind: bpf.TPBTF, Program: "hang_btf"},
	{Kind: bpf.Tracepoint, Program: "hang_tp", Target: "sched/sched_process_hang"},
}}}

func init() {
	tracing.RegisterEventTracing("hungtask", newHungtask,
		tracing.WithDescription("Tasks blocked in D state beyond kernel.hung_task_timeout_secs (the kernel's hung-task detector), with the kernel stacks of every blocked task."),
		tracing.WithConfig(func() *Config { return &Config{MaxBlockedTasks: 32, EventsPerSecond: 10} }),
		tracing.WithEvent("task.hung", &hungEvent{}, "The hung-task detector reported a task. One event per report: a task that stays blocked is reported again at later checks. Container: the hung task's; each other blocked task names its own.",
			tracing.Body("task <thread.name>:<thread.id> blocked in D state for more than <timeout> seconds (<count> other tasks blocked)")),
		tracing.WithMetrics(metric.Desc{Name: "reports", Kind: metric.Counter, Unit: "{report}", Description: "hung-task reports seen since the collector started"}),
		tracing.WithMetrics(bpf.EventCounterDescs("{task}")...),
	)
}

type hungtaskCollector struct {
	cfg     *Config
	storage *storage.Storage
	logger  *zap.Logger
	proc    procfs.FS
	opts    bpf.Options // tests force a hook or the perf buffer
	// containers attributes the hung task, and each other blocked task.
	containers *container.Resolver

	events   atomic.Uint64
	counters bpf.EventCounters
}

func newHungtask(s tracing.Settings) (*tracing.EventTracingAttr, error) {
	proc, err := procfs.NewDefaultFS()
	if err != nil {
		return nil, tracing.NotSupported("procfs: %v", err)
	}
	if _, err := os.Stat("/proc/sys/kernel/hung_task_timeout_secs"); err != nil {
		return nil, tracing.NotSupported("the kernel has no hung-task detector (CONFIG_DETECT_HUNG_TASK)")
	}
	return &tracing.EventTracingAttr{
		TracingData: &hungtaskCollector{cfg: s.Config.(*Config), storage: s.Storage, logger: s.Logger, opts: bpf.OptionsFor(s), proc: proc, containers: s.Containers},
		Interval:    10 * time.Second,
		Flag:        tracing.FlagTracing | tracing.FlagMetric,
	}, nil
}

// Start loads the hook and saves an event per report until ctx ends.
func (c *hungtaskCollector) Start(ctx context.Context) error {
	if err := bpf.CheckPrivileges(); err != nil {
		return err
	}
	if err := checkStackAccess(); err != nil {
		return err
	}
	cs, err := loadBpf()
	if err != nil {
		return err
	}
	opts := c.opts
	if opts.RingBufferBytes == 0 {
		opts.RingBufferBytes = bpf.SmallRing(16 << 10) // a hung-task report is 64 bytes, and capped per second
	}
	obj, err := bpf.Load(bpf.Spec{
		Collection: cs,
		Constants:  map[string]any{"rate_limit_per_sec": c.cfg.EventsPerSecond},
		Hooks:      hooks,
	}, opts)
	if err != nil {
		return err
	}
	defer obj.Close()
	obj.LogAttached(c.logger)
	c.counters.Attach(obj, nil)
	defer c.counters.Detach() // before Close
	return obj.ServeEvents(ctx, 0, func(raw []byte) {
		var ev bpfHungEvent
		if err := bpf.Decode(raw, &ev, 0); err != nil {
			c.logger.Warn("malformed hung-task event", zap.Error(err), zap.Int("bytes", len(raw)))
			return
		}
		c.events.Add(1)
		c.save(ev)
	})
}

func (c *hungtaskCollector) save(raw bpfHungEvent) {
	pid := int(raw.Task.Pid)
	e := &hungEvent{
		ThreadID:   raw.Task.Pid,
		ProcessID:  raw.Task.Tgid,
		ThreadName: bpf.CString(raw.Task.Comm[:]),
		Timeout:    readInt("/proc/sys/kernel/hung_task_timeout_secs"),
		Stack:      stack(fmt.Sprintf("/proc/%d/stack", pid)),
	}
	if e.ProcessID == 0 { // the tracepoint path knows only the pid
		if st, err := c.proc.Proc(pid); err == nil {
			if status, err := st.NewStatus(); err == nil {
				e.ProcessID = uint32(status.TGID)
			}
		}
	}
	e.BlockedTotal, e.Blocked = c.blockedTasks(pid)
	// The tp_btf path read the task's cgroups; the tracepoint path has only
	// its pid, and a hung task is still there to be read from /proc.
	ctr := c.containers.Resolve(container.CgroupIDs{Unified: raw.Task.CgroupId, Memory: raw.Task.MemcgId, CPU: raw.Task.CpuCgroupId})
	if ctr.IsZero() && raw.TaskKnown == 0 {
		ctr = c.containers.ContainerOfPID(pid)
	}
	if err := c.storage.Save("task.hung", ctr.ID, bpf.WallTime(raw.Task.TimestampNs), e); err != nil {
		c.logger.Debug("hungtask event not saved", zap.Error(err))
	}
}

// blockedTasks lists the threads in D state other than the hung one.
func (c *hungtaskCollector) blockedTasks(except int) (int, []blockedTask) {
	threads, err := tasks.Uninterruptible(c.proc)
	if err != nil {
		return 0, nil
	}
	total := 0
	var out []blockedTask
	for _, th := range threads {
		if th.Tid == except {
			continue
		}
		total++
		if len(out) < c.cfg.MaxBlockedTasks {
			out = append(out, blockedTask{
				ThreadID: th.Tid, ProcessID: th.Tgid, ThreadName: th.Stat.Comm,
				ContainerID: c.containers.ContainerOfPID(th.Tgid).ID,
				Stack:       stack(fmt.Sprintf("/proc/%d/task/%d/stack", th.Tgid, th.Tid)),
			})
		}
	}
	return total, out
}

// Update reports the counters.
func (c *hungtaskCollector) Update() ([]*metric.Data, error) {
	return append(c.counters.Data(), metric.NewCounterData("reports", float64(c.events.Load()), "", nil)), nil
}

// capSysPtrace is CAP_SYS_PTRACE (linux/capability.h).
const capSysPtrace = 19

// checkStackAccess finds out at start whether the stacks the events are for
// can be read: the kernel shows /proc/PID/stack only to CAP_SYS_ADMIN (in
// the initial user namespace), and another user's task only to a reader
// that may ptrace it (CAP_SYS_PTRACE). Events without stacks would look
// like tasks blocked nowhere, so the collector stays inactive instead.
func checkStackAccess() error {
	if _, err := os.ReadFile("/proc/self/stack"); err != nil {
		if errors.Is(err, os.ErrPermission) {
			return tracing.NotPermitted("reading /proc/PID/stack (the kernel stacks of hung tasks) needs CAP_SYS_ADMIN: %v", err)
		}
		return tracing.NotSupported("reading /proc/self/stack: %v (CONFIG_STACKTRACE?)", err)
	}
	if !bpf.HaveCapability(capSysPtrace) {
		return tracing.NotPermitted("reading the stacks of other users' tasks (/proc/PID/stack) needs CAP_SYS_PTRACE, which this process lacks")
	}
	return nil
}

// stack reads a /proc stack file as code.stacktrace: its frames, one per line.
func stack(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return parseStack(b)
}

// parseStack keeps the frames of /proc/PID/stack's "[<0>] func+0x1a/0x50"
// lines, one per line, innermost first.
func parseStack(b []byte) string {
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if _, frame, ok := strings.Cut(line, "] "); ok {
			out = append(out, frame)
		}
	}
	return strings.Join(out, "\n")
}

func readInt(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}
