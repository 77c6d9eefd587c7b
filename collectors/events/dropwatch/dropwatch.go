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
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
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
	return fmt.Sprintf("%s drop %s:%d -> %s:%d (%s) at %s", e.Transport, e.Source, e.SourcePort, e.Destination, e.DestPort, e.Reason, e.Location)
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
	syms    *ksym.Table                       // nil unless kernel_stack

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

// Start loads the hook and saves an event per drop until ctx ends.
func (c *dropwatchCollector) Start(ctx context.Context) error {
	reasons, err := bpf.KernelEnum("skb_drop_reason", "SKB_DROP_REASON_")
	if err != nil {
		c.logger.Info("drop reasons will be numbers only", zap.Error(err))
	}
	c.reasons.Store(&reasons)
	if c.cfg.KernelStack {
		if c.syms, err = ksym.Load(); err != nil {
			return fmt.Errorf("kernel_stack: %w", err)
		}
	}
	cs, err := loadBpf()
	if err != nil {
		return err
	}
	obj, err := bpf.Load(bpf.Spec{
		Collection: cs,
		Constants: map[string]any{
			"rate_limit_per_sec": c.cfg.EventsPerSecond,
			"filter_protocol":    protocols[c.cfg.Protocol],
			"filter_port":        uint16(c.cfg.Port),
			"capture_stack":      c.cfg.KernelStack,
		},
		Hooks: hooks,
	}, c.opts)
	if err != nil {
		return err
	}
	defer obj.Close()
	obj.LogAttached(c.logger)
	counts := obj.Collection.Maps["reason_counts"]
	return obj.ServeEvents(ctx, 0, func(raw []byte) {
		var ev bpfDropEvent
		if err := binary.Read(bytes.NewReader(raw), binary.NativeEndian, &ev); err != nil {
			c.logger.Warn("malformed drop event", zap.Error(err), zap.Int("bytes", len(raw)))
			return
		}
		if err := c.storage.Save("packet.drop", c.container(&ev).ID, bpf.WallTime(ev.Hdr.TimestampNs), c.decode(&ev)); err != nil {
			c.logger.Debug("dropwatch event not saved", zap.Error(err))
		}
	}, func(rd *bpf.EventReader) {
		c.refresh(obj, counts, rd)
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
	if c.syms != nil {
		e.Location = c.syms.Symbolize(ev.Location)
		if ev.StackBytes > 0 {
			e.Stack = strings.Join(trimProbeFrames(c.syms, ev.Stack[:min(int(ev.StackBytes)/8, len(ev.Stack))]), "\n")
		}
	} else if syms := c.lazySyms(); syms != nil {
		e.Location = syms.Symbolize(ev.Location)
	}
	if fn, _, ok := strings.Cut(e.Location, "+"); ok && !strings.HasPrefix(e.Location, "0x") {
		e.Function = fn
	}
	return e
}

// lazySyms loads the symbol table on first use for the drop location
// alone, and remembers a failure so as not to retry per event.
func (c *dropwatchCollector) lazySyms() *ksym.Table {
	if c.syms == nil {
		if t, err := ksym.Load(); err == nil {
			c.syms = t
		} else {
			c.syms = &ksym.Table{}
		}
	}
	if c.syms.Len() == 0 {
		return nil
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

// refresh copies the kernel's per-reason counts and the cap and loss counters.
func (c *dropwatchCollector) refresh(obj *bpf.Object, counts *ebpf.Map, rd *bpf.EventReader) {
	c.counters.Refresh(obj, rd)
	var key uint32
	var perCPU []uint64
	drops := map[uint32]uint64{}
	it := counts.Iterate()
	for it.Next(&key, &perCPU) {
		var n uint64
		for _, v := range perCPU {
			n += v
		}
		if n > 0 {
			drops[key] = n
		}
	}
	if it.Err() != nil {
		return
	}
	c.mu.Lock()
	c.drops = drops
	c.mu.Unlock()
}

// Update reports the counters: with all_reasons, every reason of this
// kernel's enum, at 0 until its first drop, so that a series exists before
// its first increment and increase() sees that drop; else the reasons
// that have dropped packets.
func (c *dropwatchCollector) Update() ([]*metric.Data, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.counters.Data()
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
