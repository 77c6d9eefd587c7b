// Package oom reports OOM kills: the victim, its memory cgroup with a
// snapshot of that cgroup's usage, limit and counters, whether the OOM was
// a cgroup's or the whole host's, and the host's memory at that moment.
//
// Hook: oom/mark_victim as tp_btf (the victim's task, so its cgroups), or
// as a classic tracepoint (pid and comm; the cgroup is then looked up in
// /proc while the victim still exists), or a kprobe on oom_kill_process,
// which also sees the memory cgroup that ran out, so that on that path the
// scope comes from the kernel rather than being inferred.
package oom

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/procfs"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.uber.org/zap"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/bpf"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/container"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/metric"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/storage"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/tracing"
)

// Scopes of an OOM.
const (
	scopeCgroup  = "cgroup"
	scopeGlobal  = "global"
	scopeUnknown = "unknown"
)

var allScopes = [...]string{scopeCgroup, scopeGlobal, scopeUnknown}

// attrScope is the OOM's scope, on the event and as the kills label.
const attrScope = "kernel.oom.scope"

// oomEvent is one OOM kill.
type oomEvent struct {
	ThreadID     uint32            `json:"thread.id" doc:"victim's thread id"`
	ProcessID    uint32            `json:"process.pid,omitempty" doc:"victim's process id (absent on the classic-tracepoint path)"`
	ThreadName   string            `json:"thread.name" doc:"victim's command name (comm)"`
	Scope        string            `json:"kernel.oom.scope" doc:"cgroup (a memory cgroup hit its limit), global (the host ran out) or unknown"`
	ScopeSource  string            `json:"kernel.oom.scope_source" doc:"kernel (seen in the OOM killer's own state, kprobe path) or inferred (from the cgroups' counters just after the kill)"`
	OOMCgroup    string            `json:"kernel.oom.cgroup,omitempty" doc:"for a cgroup OOM, the memory cgroup whose limit was hit (the victim's or an ancestor), relative to the memory hierarchy's mount"`
	MemoryCgroup memcgSnapshot     `json:"kernel.memcg" doc:"the victim's memory cgroup"`
	TriggerTID   uint32            `json:"kernel.oom.trigger.thread.id" doc:"thread whose allocation ran into the OOM"`
	TriggerName  string            `json:"kernel.oom.trigger.thread.name" doc:"that thread's command name (comm)"`
	Meminfo      map[string]uint64 `json:"kernel.meminfo" doc:"host memory from /proc/meminfo just after the kill, in bytes: MemTotal, MemFree, MemAvailable, Buffers, Cached, Shmem, AnonPages, Slab, SwapTotal, SwapFree"`
}

// memcgSnapshot is a memory cgroup's state just after the kill. Its fields
// are flattened under kernel.memcg.
type memcgSnapshot struct {
	Path     string            `json:"path" doc:"path relative to the memory hierarchy's mount; empty if the cgroup was gone before it could be read"`
	Usage    uint64            `json:"usage" doc:"memory in use, in bytes (v1 memory.usage_in_bytes, v2 memory.current)"`
	Limit    uint64            `json:"limit,omitempty" doc:"the limit, in bytes (v1 memory.limit_in_bytes, v2 memory.max); absent when unlimited"`
	MaxUsage uint64            `json:"max_usage,omitempty" doc:"peak usage, in bytes (v1 memory.max_usage_in_bytes, v2 memory.peak)"`
	Failcnt  uint64            `json:"failcnt,omitempty" doc:"times usage hit the limit (v1 memory.failcnt)"`
	Stat     map[string]uint64 `json:"stat,omitempty" doc:"memory.stat, as the kernel names its keys"`
	Events   map[string]uint64 `json:"events,omitempty" doc:"v2 memory.events, or v1 memory.oom_control"`
}

func (e *oomEvent) Severity() plog.SeverityNumber { return plog.SeverityNumberError }

func (e *oomEvent) Summary() string {
	where := "the host"
	if e.Scope == scopeCgroup {
		where = "memory cgroup " + e.OOMCgroup
	}
	return fmt.Sprintf("OOM in %s: killed %s:%d (memory cgroup %s)", where, e.ThreadName, e.ThreadID, e.MemoryCgroup.Path)
}

// Config is the oom section of the receiver config.
type Config struct {
	EventsPerSecond uint32 `mapstructure:"events_per_second" doc:"events let through per second, enforced in the kernel (0: no limit)"`
}

var hooks = []bpf.Hook{{Name: "oom_victim", Candidates: []bpf.Candidate{
	{Kind: bpf.TPBTF, Program: "mark_victim_btf"},
	{Kind: bpf.Tracepoint, Program: "mark_victim_tp", Target: "oom/mark_victim"},
	{Kind: bpf.Kprobe, Program: "oom_kill_process_kp", Target: "oom_kill_process"},
}}}

func init() {
	tracing.RegisterEventTracing("oom", newOOM,
		tracing.WithDescription("OOM kills, with the victim's memory cgroup and its usage, limit and counters, the OOM's scope (cgroup or global) and the host's memory."),
		tracing.WithConfig(func() *Config { return &Config{EventsPerSecond: 50} }),
		tracing.WithEvent("oom.kill", &oomEvent{}, "The OOM killer chose a victim. Container: the victim's (the process killed, not the one whose allocation triggered the kill).",
			tracing.Body("OOM in the host|memory cgroup <kernel.oom.cgroup>: killed <thread.name>:<thread.id> (memory cgroup <kernel.memcg.path>)")),
		tracing.WithMetrics(bpf.EventCounterDescs("{event}")...),
		tracing.WithMetrics(metric.Desc{
			Name: "kills", Kind: metric.Counter, Unit: "{kill}",
			Description: "OOM kills on the host since the collector started, containers' included, by scope; every scope is reported from 0, so the first kill shows in increase()",
			Labels:      []metric.Label{{Name: attrScope, Description: "cgroup, global or unknown"}},
		}, metric.Desc{
			Name: "victims", Kind: metric.Counter, Unit: "{kill}", PerContainer: true,
			Description: "OOM kills whose victim was in this container (its Resource), since the collector started, by scope; a container's series appear at its first kill and end once the container has been gone for containers.removed_retention",
			Labels:      []metric.Label{{Name: attrScope, Description: "cgroup, global or unknown"}},
		}),
	)
}

type oomCollector struct {
	cfg     *Config
	storage *storage.Storage
	logger  *zap.Logger
	proc    procfs.FS
	opts    bpf.Options // tests force a hook
	// containers names the victim's container; nil attributes every kill
	// to the host.
	containers *container.Resolver

	memRoot string // memory hierarchy mount
	memV1   bool

	mu       sync.Mutex
	kills    map[string]uint64    // by scope, every kill on the host
	victims  map[[2]string]uint64 // by container id, scope
	counters bpf.EventCounters
}

func newOOM(s tracing.Settings) (*tracing.EventTracingAttr, error) {
	proc, err := procfs.NewDefaultFS()
	if err != nil {
		return nil, tracing.NotSupported("procfs: %v", err)
	}
	return &tracing.EventTracingAttr{
		TracingData: &oomCollector{cfg: s.Config.(*Config), storage: s.Storage, logger: s.Logger, opts: bpf.OptionsFor(s), proc: proc, kills: map[string]uint64{}, victims: map[[2]string]uint64{}, containers: s.Containers},
		Interval:    10 * time.Second,
		Flag:        tracing.FlagTracing | tracing.FlagMetric,
	}, nil
}

// Start loads the hook and saves an event per kill until ctx ends.
func (c *oomCollector) Start(ctx context.Context) error {
	// The receiver's resolver knows the memory hierarchy; without one (the
	// host's cgroups cannot be read) there is nothing to snapshot.
	if h := c.containers.Layout().MemoryHierarchy(); h != nil {
		c.memRoot, c.memV1 = h.Mount, h == c.containers.Layout().Memory
	} else {
		c.logger.Info("memory cgroup snapshots unavailable: no cgroup hierarchy is known")
	}
	cs, err := loadBpf()
	if err != nil {
		return err
	}
	opts := c.opts
	if opts.RingBufferBytes == 0 {
		opts.RingBufferBytes = bpf.SmallRing(16 << 10) // an OOM kill is a few hundred bytes, and rare
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
	return obj.ServeEvents(ctx, 0, c.handle)
}

// victim is what the BPF side knows of one kill, decoded per architecture.
type victim struct {
	when              time.Time
	pid, tgid         uint32
	comm              string
	memcgID, cgroupID uint64 // 0 when not known
	known             bool   // read from the task itself
	scopeKnown        bool
	oomMemcgID        uint64
	triggerPid        uint32
	triggerTgid       uint32
	triggerComm       string
	triggerMemcgID    uint64
	triggerCgroupID   uint64
}

// pfExiting is PF_EXITING in a task's flags (/proc/PID/stat field 9).
const pfExiting = 0x4

func (c *oomCollector) save(v victim) {
	e := &oomEvent{
		ThreadID: v.pid, ProcessID: v.tgid, ThreadName: v.comm, Scope: scopeUnknown,
		TriggerTID: v.triggerPid, TriggerName: v.triggerComm,
	}
	path, ctr := c.victimCgroup(v)
	if path != "" {
		e.MemoryCgroup = c.snapshot(path)
	}
	e.Meminfo = c.meminfo()
	switch {
	case v.scopeKnown:
		e.ScopeSource = "kernel"
		e.Scope = scopeGlobal
		if v.oomMemcgID != 0 {
			e.Scope = scopeCgroup
			e.OOMCgroup = c.memcgPath(v.oomMemcgID)
		}
	case path != "":
		e.ScopeSource = "inferred"
		e.Scope, e.OOMCgroup = c.inferScope(e.MemoryCgroup, e.Meminfo["MemTotal"])
	default:
		e.ScopeSource = "inferred"
	}
	c.mu.Lock()
	c.kills[e.Scope]++
	if !ctr.IsZero() {
		c.victims[[2]string{ctr.ID, e.Scope}]++
	}
	c.mu.Unlock()
	if err := c.storage.Save("oom.kill", ctr.ID, v.when, e); err != nil {
		c.logger.Debug("oom event not saved", zap.Error(err))
	}
}

// memcgPath is the path of memory cgroup id, "" when it is not found.
func (c *oomCollector) memcgPath(id uint64) string {
	p, _ := c.containers.MemoryCgroupPath(id)
	return p
}

// victimCgroup finds the victim's memory cgroup path and its container:
// from its cgroup ids when BPF read the task, else from /proc/PID/cgroup if
// it is still there.
func (c *oomCollector) victimCgroup(v victim) (string, container.Container) {
	if !v.known && (v.triggerPid == v.pid || v.triggerTgid == v.pid) {
		// The classic tracepoint names only the victim (a process, so its
		// leader's pid), but a process that ran itself out of memory is
		// also the trigger (any of its threads), whose cgroups BPF read
		// from the running task.
		v.known, v.memcgID, v.cgroupID = true, v.triggerMemcgID, v.triggerCgroupID
	}
	path := c.victimMemcg(v)
	ctr := container.Container{}
	if v.known {
		ctr = c.containers.Resolve(container.CgroupIDs{Unified: v.cgroupID, Memory: v.memcgID})
	}
	if ctr.IsZero() && path != "" {
		ctr = c.containers.ContainerOfPath(path)
	}
	return path, ctr
}

func (c *oomCollector) victimMemcg(v victim) string {
	if c.memRoot == "" {
		return ""
	}
	id := v.cgroupID
	if c.memV1 {
		id = v.memcgID
	}
	if v.known && id != 0 {
		if p := c.memcgPath(id); p != "" {
			return p
		}
	}
	// Last resort: /proc, while the victim lives. A dying task has already
	// been moved to the root cgroups, so its answer would mislead.
	st, err := c.proc.Proc(int(v.pid))
	if err != nil {
		return ""
	}
	if stat, err := st.Stat(); err != nil || stat.State == "Z" || stat.State == "X" || stat.Flags&pfExiting != 0 {
		return ""
	}
	cgroups, err := st.Cgroups()
	if err != nil {
		return ""
	}
	for _, cg := range cgroups {
		if (c.memV1 && slices.Contains(cg.Controllers, "memory")) || (!c.memV1 && cg.HierarchyID == 0) {
			return cg.Path
		}
	}
	return ""
}

func (c *oomCollector) snapshot(path string) memcgSnapshot {
	dir := filepath.Join(c.memRoot, path)
	s := memcgSnapshot{Path: path}
	read := func(name string) (uint64, bool) {
		n, ok, err := container.ReadUint(filepath.Join(dir, name))
		return n, ok && err == nil
	}
	if c.memV1 {
		s.Usage, _ = read("memory.usage_in_bytes")
		if n, ok := read("memory.limit_in_bytes"); ok && n < 1<<62 { // v1 writes "unlimited" as a huge number
			s.Limit = n
		}
		s.MaxUsage, _ = read("memory.max_usage_in_bytes")
		s.Failcnt, _ = read("memory.failcnt")
		s.Events, _ = container.ReadKeyValues(filepath.Join(dir, "memory.oom_control"))
	} else {
		s.Usage, _ = read("memory.current")
		s.Limit, _ = read("memory.max")
		s.MaxUsage, _ = read("memory.peak")
		s.Events, _ = container.ReadKeyValues(filepath.Join(dir, "memory.events"))
	}
	s.Stat, _ = container.ReadKeyValues(filepath.Join(dir, "memory.stat"))
	return s
}

// inferScope walks from the victim's cgroup towards the root and names the
// first cgroup with a limit below the host's memory that shows it ran into
// that limit: v1 usage having peaked within 1 MiB of it (or under_oom), v2
// an "oom" count in memory.events. None: the OOM was global. victim is the
// snapshot already taken of the victim's cgroup; ancestors are read here.
func (c *oomCollector) inferScope(victim memcgSnapshot, memTotal uint64) (string, string) {
	for s := victim; s.Path != "/" && s.Path != "." && s.Path != ""; s = c.snapshot(filepath.Dir(s.Path)) {
		if s.Limit == 0 || (memTotal > 0 && s.Limit >= memTotal) {
			continue
		}
		hit := false
		if c.memV1 {
			hit = s.Events["under_oom"] == 1 || s.MaxUsage+(1<<20) >= s.Limit
		} else {
			hit = s.Events["oom"] > 0
		}
		if hit {
			return scopeCgroup, s.Path
		}
	}
	return scopeGlobal, ""
}

func (c *oomCollector) meminfo() map[string]uint64 {
	mi, err := c.proc.Meminfo()
	if err != nil {
		return nil
	}
	out := map[string]uint64{}
	for name, v := range map[string]*uint64{
		"MemTotal": mi.MemTotalBytes, "MemFree": mi.MemFreeBytes, "MemAvailable": mi.MemAvailableBytes,
		"Buffers": mi.BuffersBytes, "Cached": mi.CachedBytes, "Shmem": mi.ShmemBytes,
		"AnonPages": mi.AnonPagesBytes, "Slab": mi.SlabBytes, "SwapTotal": mi.SwapTotalBytes, "SwapFree": mi.SwapFreeBytes,
	} {
		if v != nil {
			out[name] = *v
		}
	}
	return out
}

// Update reports the kill counters: the host's for every scope, from 0;
// each container's that had a victim, until the container is gone (the
// resolver forgets it removed_retention after its cgroups went), so that
// containers coming and going cannot grow the series without bound.
func (c *oomCollector) Update() ([]*metric.Data, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.counters.Data()
	for _, scope := range allScopes {
		out = append(out, metric.NewCounterData("kills", float64(c.kills[scope]), "", map[string]string{attrScope: scope}))
	}
	for k, n := range c.victims {
		if !c.containers.Known(k[0]) {
			delete(c.victims, k)
			continue
		}
		out = append(out, metric.NewContainerCounterData(k[0], "victims", float64(n), "", map[string]string{attrScope: k[1]}))
	}
	return out, nil
}
