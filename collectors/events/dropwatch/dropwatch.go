// Package dropwatch reports packets the kernel drops, with the drop reason
// by its kernel name, the addresses, ports, interface and network
// namespace, and optionally the kernel stack that dropped them.
//
// Hook: skb/kfree_skb, as tp_btf or as a classic tracepoint. Filtering by
// protocol and port and the events-per-second cap run in the kernel; drops
// that pass the filter are counted per reason whether or not the cap let
// their event through.
package dropwatch

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.uber.org/zap"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/bpf"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/container"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/ksym"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/metric"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/storage"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/tracing"
)

// Config is the dropwatch section of the receiver config.
type Config struct {
	Protocol        string `mapstructure:"protocol" doc:"only drops of this transport protocol: tcp, udp, icmp, icmpv6, sctp; empty: all"`
	Port            int    `mapstructure:"port" doc:"only drops whose source or destination port is this; 0: all"`
	EventsPerSecond uint32 `mapstructure:"events_per_second" doc:"events let through per second, enforced in the kernel; drops beyond it are still counted (0: no limit)"`
	KernelStack     bool   `mapstructure:"kernel_stack" doc:"capture the kernel stack of each drop (symbolized from /proc/kallsyms)"`
	AllReasons      bool   `mapstructure:"all_reasons" doc:"report kernel.dropwatch.drops for every reason the kernel defines, at 0 until its first drop, so that an alert on increase() sees the first drop of any reason; false: only reasons that have dropped packets (fewer series: about 100 reasons on 6.x kernels)"`
}

// attrReason is the drop reason, on the event and as the drops label.
const attrReason = "kernel.drop.reason"

var protocols = map[string]uint8{"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "sctp": 132}

// Validate names the setting at fault.
func (c *Config) Validate() error {
	if _, ok := protocols[c.Protocol]; c.Protocol != "" && !ok {
		return fmt.Errorf("protocol: %q is not one of tcp, udp, icmp, icmpv6, sctp", c.Protocol)
	}
	if c.Port < 0 || c.Port > 65535 {
		return fmt.Errorf("port: %d is not a port number", c.Port)
	}
	return nil
}

// dropEvent is one dropped packet.
type dropEvent struct {
	Reason      string `json:"kernel.drop.reason" doc:"drop reason, as the running kernel names it (enum skb_drop_reason without its SKB_DROP_REASON_ prefix), e.g. NO_SOCKET"`
	ReasonCode  uint32 `json:"kernel.drop.reason_code" doc:"the reason's numeric value on this kernel"`
	Location    string `json:"kernel.drop.location" doc:"where the kernel dropped the packet: function+0xoffset, or the address when it cannot be symbolized"`
	Function    string `json:"code.function.name,omitempty" doc:"the kernel function that dropped the packet (the location without its offset)"`
	Transport   string `json:"network.transport" doc:"transport protocol: tcp, udp, icmp, icmpv6, sctp, or its IP protocol number"`
	NetworkType string `json:"network.type,omitempty" doc:"ipv4 or ipv6; absent for other packets"`
	Source      string `json:"source.address,omitempty" doc:"source IP address"`
	Destination string `json:"destination.address,omitempty" doc:"destination IP address"`
	SourcePort  uint16 `json:"source.port,omitempty" doc:"source port (TCP, UDP)"`
	DestPort    uint16 `json:"destination.port,omitempty" doc:"destination port (TCP, UDP)"`
	Size        uint32 `json:"kernel.packet.size" doc:"packet length (skb->len), in bytes"`
	Interface   string `json:"network.interface.name,omitempty" doc:"interface the packet was on, when it had one"`
	Ifindex     uint32 `json:"kernel.interface.index,omitempty" doc:"that interface's index in its network namespace"`
	Netns       string `json:"kernel.netns.inode,omitempty" doc:"inode number of that interface's network namespace (as in /proc/PID/ns/net), in decimal"`
	ThreadID    uint32 `json:"thread.id" doc:"thread running when the packet was dropped (in softirq context, whichever task was interrupted)"`
	ProcessID   uint32 `json:"process.pid" doc:"process id (thread group) of that thread"`
	ThreadName  string `json:"thread.name" doc:"that thread's command name (comm)"`
	Stack       string `json:"code.stacktrace,omitempty" doc:"kernel stack of the drop, one function+0xoffset/0xsize frame per line, innermost first; only with kernel_stack"`
}

func (e *dropEvent) Severity() plog.SeverityNumber { return plog.SeverityNumberWarn }

func (e *dropEvent) Summary() string {
	// The format above, built without fmt: this runs per event.
	b := make([]byte, 0, 40+len(e.Transport)+len(e.Source)+len(e.Destination)+len(e.Reason)+len(e.Location))
	b = append(b, e.Transport...)
	b = append(b, " drop "...)
	b = append(b, e.Source...)
	b = append(b, ':')
	b = strconv.AppendUint(b, uint64(e.SourcePort), 10)
	b = append(b, " -> "...)
	b = append(b, e.Destination...)
	b = append(b, ':')
	b = strconv.AppendUint(b, uint64(e.DestPort), 10)
	b = append(b, " ("...)
	b = append(b, e.Reason...)
	b = append(b, ") at "...)
	b = append(b, e.Location...)
	return string(b)
}

// dropAttrs are dropEvent's attribute names and omitempty flags, taken once
// from its tags: PutAttributes follows them, so renaming an attribute is a
// change to the tag alone.
var dropAttrs = func() (a struct {
	reason, reasonCode, location, function, transport, networkType, source, destination, sourcePort, destPort,
	size, iface, ifindex, netns, threadID, processID, threadName, stack storage.Attr
}) {
	all := storage.AttrsOf[dropEvent]()
	a.reason, a.reasonCode, a.location, a.function = all.Must("Reason"), all.Must("ReasonCode"), all.Must("Location"), all.Must("Function")
	a.transport, a.networkType, a.source, a.destination = all.Must("Transport"), all.Must("NetworkType"), all.Must("Source"), all.Must("Destination")
	a.sourcePort, a.destPort, a.size = all.Must("SourcePort"), all.Must("DestPort"), all.Must("Size")
	a.iface, a.ifindex, a.netns = all.Must("Interface"), all.Must("Ifindex"), all.Must("Netns")
	a.threadID, a.processID, a.threadName, a.stack = all.Must("ThreadID"), all.Must("ProcessID"), all.Must("ThreadName"), all.Must("Stack")
	return a
}()

// PutAttributes is the reflective mapping of dropEvent written out, in
// field order (storage.AttributeWriter): no reflection per event. The
// tracingtest harness checks every saved event against the reflective
// mapping, so the two cannot drift apart.
func (e *dropEvent) PutAttributes(m pcommon.Map) {
	a := &dropAttrs
	m.EnsureCapacity(m.Len() + 18)
	a.reason.PutStr(m, e.Reason)
	a.reasonCode.PutUint(m, uint64(e.ReasonCode))
	a.location.PutStr(m, e.Location)
	a.function.PutStr(m, e.Function)
	a.transport.PutStr(m, e.Transport)
	a.networkType.PutStr(m, e.NetworkType)
	a.source.PutStr(m, e.Source)
	a.destination.PutStr(m, e.Destination)
	a.sourcePort.PutUint(m, uint64(e.SourcePort))
	a.destPort.PutUint(m, uint64(e.DestPort))
	a.size.PutUint(m, uint64(e.Size))
	a.iface.PutStr(m, e.Interface)
	a.ifindex.PutUint(m, uint64(e.Ifindex))
	a.netns.PutStr(m, e.Netns)
	a.threadID.PutUint(m, uint64(e.ThreadID))
	a.processID.PutUint(m, uint64(e.ProcessID))
	a.threadName.PutStr(m, e.ThreadName)
	a.stack.PutStr(m, e.Stack)
}

var hooks = []bpf.Hook{{Name: "kfree_skb", Candidates: []bpf.Candidate{
	{Kind: bpf.TPBTF, Program: "kfree_skb_btf"},
	{Kind: bpf.Tracepoint, Program: "kfree_skb_tp", Target: "skb/kfree_skb"},
}}}

func init() {
	tracing.RegisterEventTracing("dropwatch", newDropwatch,
		tracing.WithDescription("Packets the kernel drops (skb/kfree_skb), with the drop reason by name, addresses, ports, interface and network namespace; filtered and rate-capped in the kernel."),
		tracing.WithConfig(func() *Config { return &Config{EventsPerSecond: 100, AllReasons: true} }),
		tracing.WithEvent("packet.drop", &dropEvent{}, "A packet was dropped. Events beyond events_per_second are not sent but are counted in kernel.dropwatch.drops. Container: the one owning the network namespace of the device the drop happened on, when that is not the host's; else the container of the task running when the packet was freed (the sender, for locally generated packets).",
			tracing.Body("<transport> drop <source.address>:<source.port> -> <destination.address>:<destination.port> (<reason>) at <location>")),
		tracing.WithMetrics(
			metric.Desc{Name: "drops", Kind: metric.Counter, Unit: "{packet}", Description: "dropped packets that pass the filter, by reason, since the collector started (capped events included); every reason of the running kernel's enum is reported, at 0 until its first drop, unless all_reasons is false",
				Labels: []metric.Label{{Name: attrReason, Description: "drop reason, as the running kernel names it"}}},
		),
		tracing.WithMetrics(bpf.EventCounterDescs("{event}")...),
	)
}

type dropwatchCollector struct {
	cfg     *Config
	storage *storage.Storage
	logger  *zap.Logger
	opts    bpf.Options // tests force a hook or the perf buffer
	// containers attributes drops; see container below.
	containers *container.Resolver

	reasons atomic.Pointer[map[uint64]string] // this kernel's reason names; read by Update too
	syms    *ksym.Table                       // set by Start with kernel_stack, or once locations are too many for lookups
	symsErr error                             // why symbols cannot be read, once asked
	// locations caches the drop locations already symbolized one by one
	// (ksym.Symbolize). Packets are dropped at a few dozen places in
	// practice, so a drop location costs one pass over /proc/kallsyms the
	// first time and nothing kept but its name; past maxLookups distinct
	// locations the whole table is loaded instead. Only the event goroutine
	// touches it.
	locations map[uint64]string

	mu       sync.Mutex
	drops    map[uint32]uint64 // by reason code, from the kernel's counts
	counters bpf.EventCounters
}

func newDropwatch(s tracing.Settings) (*tracing.EventTracingAttr, error) {
	return &tracing.EventTracingAttr{
		TracingData: &dropwatchCollector{cfg: s.Config.(*Config), storage: s.Storage, logger: s.Logger, opts: bpf.OptionsFor(s), drops: map[uint32]uint64{}, containers: s.Containers},
		Interval:    10 * time.Second,
		Flag:        tracing.FlagTracing | tracing.FlagMetric,
	}, nil
}

// defaultReasonSlots sizes the per-reason counts when the kernel's BTF
// does not list its reasons (the program's own size).
const defaultReasonSlots = 1024

// eventMinLen is the record without its stack array, which the program
// sends only with kernel_stack.
var eventMinLen = int(unsafe.Offsetof(bpfDropEvent{}.Stack))

// Start loads the hook and saves an event per drop until ctx ends.
func (c *dropwatchCollector) Start(ctx context.Context) error {
	reasons, err := bpf.KernelEnum("skb_drop_reason", "SKB_DROP_REASON_")
	if err != nil {
		c.logger.Info("drop reasons will be numbers only", zap.Error(err))
	}
	c.reasons.Store(&reasons)
	slots := uint32(defaultReasonSlots)
	if len(reasons) > 0 {
		// One slot per reason the kernel has, and one past them for
		// anything newer, instead of a fixed 1024.
		slots = bpf.EnumSlots(reasons, 1) + 1
	}
	if c.cfg.KernelStack {
		if c.syms, err = ksym.Shared(); err != nil {
			return fmt.Errorf("kernel_stack: %w", err)
		}
	}
	cs, err := loadBpf()
	if err != nil {
		return err
	}
	cs.Maps["reason_counts"].MaxEntries = slots
	obj, err := bpf.Load(bpf.Spec{
		Collection: cs,
		Constants: map[string]any{
			"rate_limit_per_sec": c.cfg.EventsPerSecond,
			"filter_protocol":    protocols[c.cfg.Protocol],
			"filter_port":        uint16(c.cfg.Port),
			"capture_stack":      c.cfg.KernelStack,
			"reason_slots":       slots,
		},
		Hooks: hooks,
	}, c.opts)
	if err != nil {
		return err
	}
	defer obj.Close()
	obj.LogAttached(c.logger)
	c.counters.Attach(obj, c.readDrops)
	defer c.counters.Detach() // before Close
	var ev bpfDropEvent
	return obj.ServeEvents(ctx, 0, func(raw []byte) {
		if err := bpf.Decode(raw, &ev, eventMinLen); err != nil {
			c.logger.Warn("malformed drop event", zap.Error(err))
			return
		}
		if err := c.storage.Save("packet.drop", c.container(&ev).ID, bpf.WallTime(ev.Hdr.TimestampNs), c.decode(&ev)); err != nil {
			c.logger.Debug("dropwatch event not saved", zap.Error(err))
		}
	})
}

// container attributes a drop: to the container owning the network
// namespace of the device it happened on when that is not the host's (a
// drop on a container's interface, or on its loopback), else to the task
// the kernel was running when it freed the packet. That task is the sender
// for locally generated packets (the loopback and local delivery run in
// the sending task); for a packet from the wire dropped in a softirq it is
// whichever task was interrupted, which is why the namespace comes first.
func (c *dropwatchCollector) container(ev *bpfDropEvent) container.Container {
	if ctr := c.containers.ContainerOfNetns(ev.Netns); !ctr.IsZero() {
		return ctr
	}
	return c.containers.Resolve(container.CgroupIDs{Unified: ev.Hdr.CgroupId, Memory: ev.Hdr.MemcgId, CPU: ev.Hdr.CpuCgroupId})
}

func (c *dropwatchCollector) decode(ev *bpfDropEvent) *dropEvent {
	e := &dropEvent{
		Reason: c.reasonName(ev.Reason), ReasonCode: ev.Reason,
		Transport: protocolName(ev.L4Proto), SourcePort: ev.Sport, DestPort: ev.Dport, Size: ev.Len,
		Interface: bpf.CString(ev.Ifname[:]), Ifindex: ev.Ifindex,
		ThreadID: ev.Hdr.Pid, ProcessID: ev.Hdr.Tgid, ThreadName: bpf.CString(ev.Hdr.Comm[:]),
		Location: "0x" + strconv.FormatUint(ev.Location, 16),
	}
	if ev.Netns != 0 {
		e.Netns = strconv.FormatUint(uint64(ev.Netns), 10)
	}
	switch ev.IpVersion {
	case 4:
		e.NetworkType = "ipv4"
		e.Source = netip.AddrFrom4([4]byte(ev.Saddr[:4])).String()
		e.Destination = netip.AddrFrom4([4]byte(ev.Daddr[:4])).String()
	case 6:
		e.NetworkType = "ipv6"
		e.Source = netip.AddrFrom16(ev.Saddr).String()
		e.Destination = netip.AddrFrom16(ev.Daddr).String()
	}
	if c.cfg.KernelStack {
		if syms := c.symbols(); syms != nil {
			e.Location = syms.Symbolize(ev.Location)
			if ev.StackBytes > 0 {
				e.Stack = strings.Join(trimProbeFrames(syms, ev.Stack[:min(int(ev.StackBytes)/8, len(ev.Stack))]), "\n")
			}
		}
	} else if loc, ok := c.location(ev.Location); ok {
		e.Location = loc
	}
	if fn, _, ok := strings.Cut(e.Location, "+"); ok && !strings.HasPrefix(e.Location, "0x") {
		e.Function = fn
	}
	return e
}

// maxLookups is how many distinct drop locations are symbolized one pass
// over kallsyms each before the whole table is loaded (about 4 MiB kept):
// a handful of passes cost less than keeping the table, dozens do not.
const maxLookups = 16

// location symbolizes a drop location without kernel_stack.
func (c *dropwatchCollector) location(addr uint64) (string, bool) {
	if name, ok := c.locations[addr]; ok {
		return name, true
	}
	if c.syms != nil || len(c.locations) >= maxLookups {
		if syms := c.symbols(); syms != nil {
			return syms.Symbolize(addr), true
		}
		return "", false
	}
	if c.symsErr != nil {
		return "", false
	}
	names, err := ksym.Symbolize([]uint64{addr})
	if err != nil {
		c.symsErr = err
		c.logger.Info("drop locations will be addresses", zap.Error(err))
		return "", false
	}
	if c.locations == nil {
		c.locations = map[uint64]string{}
	}
	name, ok := names[addr]
	if !ok {
		name = "0x" + strconv.FormatUint(addr, 16)
	}
	c.locations[addr] = name
	return name, true
}

// symbols is the process's kernel symbol table, read on the first drop
// (not at start: a host without drops never pays for it); nil when it
// cannot be read, which is logged once.
func (c *dropwatchCollector) symbols() *ksym.Table {
	if c.syms == nil && c.symsErr == nil {
		if c.syms, c.symsErr = ksym.Shared(); c.symsErr != nil {
			c.logger.Info("drop locations will be addresses", zap.Error(c.symsErr))
		}
	}
	return c.syms
}

// trimProbeFrames symbolizes a stack without its top frames that belong
// to the probe itself (the BPF program and the tracepoint's trampoline),
// so that it starts where the kernel dropped the packet. Our program may
// be missing from the symbol table (loaded after it was read) or be taken
// for a neighbouring BPF program, so every JIT-ed BPF frame is skipped.
// __traceiter_<event> is on the stack only while more than one probe is on
// the tracepoint (with one, the kernel's static call jumps straight to it):
// another tracer on kfree_skb must not change where our stack starts.
func trimProbeFrames(syms *ksym.Table, addrs []uint64) []string {
	for len(addrs) > 0 {
		name, _, ok := syms.Resolve(addrs[0])
		if ok && !strings.HasSuffix(name, " [bpf]") && !strings.HasPrefix(name, "bpf_trace_run") && !strings.HasPrefix(name, "__bpf_trace_") && !strings.HasPrefix(name, "__traceiter_") {
			break
		}
		addrs = addrs[1:]
	}
	return syms.Stack(addrs)
}

func (c *dropwatchCollector) reasonName(code uint32) string {
	if names := c.reasons.Load(); names != nil {
		if name, ok := (*names)[uint64(code)]; ok {
			return name
		}
	}
	return strconv.FormatUint(uint64(code), 10)
}

// readDrops copies the kernel's per-reason counts: one read of the whole
// map, when Update asks (EventCounters calls it).
func (c *dropwatchCollector) readDrops(obj *bpf.Object) {
	sums, err := bpf.SumPerCPU(obj.Collection.Maps["reason_counts"])
	if err != nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for code, n := range sums {
		if n > 0 {
			c.drops[uint32(code)] = n
		}
	}
}

// Update reports the counters: with all_reasons, every reason of this
// kernel's enum, at 0 until its first drop, so that a series exists before
// its first increment and increase() sees that drop; else the reasons
// that have dropped packets.
func (c *dropwatchCollector) Update() ([]*metric.Data, error) {
	out := c.counters.Data() // reads the kernel's counts, readDrops included
	c.mu.Lock()
	defer c.mu.Unlock()
	for code, n := range c.drops {
		out = append(out, metric.NewCounterData("drops", float64(n), "", map[string]string{attrReason: c.reasonName(code)}))
	}
	if names := c.reasons.Load(); c.cfg.AllReasons && names != nil {
		for code, name := range *names {
			if _, counted := c.drops[uint32(code)]; !counted && code <= math.MaxUint32 && name != "MAX" {
				out = append(out, metric.NewCounterData("drops", 0, "", map[string]string{attrReason: name}))
			}
		}
	}
	return out, nil
}

func protocolName(p uint8) string {
	for name, v := range protocols {
		if v == p {
			return name
		}
	}
	return strconv.Itoa(int(p))
}
