package tracing

import (
	"github.com/otelcol-kernel/otelcol-kernel/pkg/container"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/metric"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/storage"
)

// SelfName is the collector name under which the receiver reports on itself
// (kernel.receiver.*). No collector may register it.
const SelfName = "receiver"

// The labels of the receiver's own metrics.
const (
	AttrCollector    = "kernel.collector.name"
	AttrHook         = "kernel.bpf.hook"
	AttrAttachPoint  = "kernel.bpf.attach_point"
	AttrProgram      = "kernel.bpf.program.name"
	AttrDropReason   = "kernel.receiver.drop_reason"
	AttrLookupResult = "kernel.container.lookup.result"
)

var collectorLabel = metric.Label{Name: AttrCollector, Description: "registered collector name"}

var programLabels = []metric.Label{
	collectorLabel,
	{Name: AttrHook, Description: "the collector's logical hook"},
	{Name: AttrAttachPoint, Description: "the candidate it attached through, kind:target (tp_btf:…, tracepoint:…, kprobe:…)"},
	{Name: AttrProgram, Description: "BPF program name"},
}

// SelfMetrics declares the receiver's own metrics. They travel through the
// same metrics pipeline as the kernel data, so an SRE sees on the same
// dashboard which collectors run on which host and what was lost, without
// scraping the collector's internal telemetry endpoint as well.
var SelfMetrics = []metric.Desc{
	{Name: "collector.active", Kind: metric.Gauge, Unit: "{collector}", Labels: []metric.Label{collectorLabel},
		Description: "1 while the collector is active or restarting, 0 when inactive (not supported here), failed or stopped; the log says why"},
	{Name: "collector.restarts", Kind: metric.Counter, Unit: "{restart}", Labels: []metric.Label{collectorLabel},
		Description: "times a tracing collector's Start was run again after it returned"},
	{Name: "collector.panics", Kind: metric.Counter, Unit: "{panic}", Labels: []metric.Label{collectorLabel},
		Description: "panics recovered in the collector's Start or Update"},
	{Name: "collector.update.errors", Kind: metric.Counter, Unit: "{error}", Labels: []metric.Label{collectorLabel},
		Description: "Update calls that failed, panicked, overran the collection interval or were skipped because the previous call had not returned"},
	{Name: "bpf.program.attached", Kind: metric.Gauge, Unit: "{program}", Labels: programLabels,
		Description: "1 for each BPF program attached, naming the hook candidate it attached through on this kernel"},
	{Name: "bpf.program.runs", Kind: metric.Counter, Unit: "{run}", Labels: programLabels,
		Description: "times the program ran; counted by the kernel only while kernel.bpf_stats_enabled is 1"},
	{Name: "bpf.program.run_time", Kind: metric.Counter, Unit: "s", Labels: programLabels,
		Description: "time spent running the program; counted by the kernel only while kernel.bpf_stats_enabled is 1"},
	{Name: "events.saved", Kind: metric.Counter, Unit: "{event}",
		Description: "events accepted into the queue towards the logs pipeline"},
	{Name: "events.emitted", Kind: metric.Counter, Unit: "{event}",
		Description: "events accepted by the logs pipeline"},
	{Name: "events.dropped", Kind: metric.Counter, Unit: "{event}",
		Labels:      []metric.Label{{Name: AttrDropReason, Description: "queue_full (the pipeline is not keeping up), consumer_error (the pipeline returned an error for the batch: an exporter down or its queue full, where no asynchronous processor stands between), stopped (saved during shutdown) or shutdown (not delivered within the shutdown bound)"}},
		Description: "events lost between a collector and the logs pipeline"},
	{Name: "container.cache.entries", Kind: metric.Gauge, Unit: "{cgroup}",
		Description: "cgroups the container resolver remembers (bounded by containers.cache_size)"},
	{Name: "container.cache.evictions", Kind: metric.Counter, Unit: "{cgroup}",
		Description: "cgroups forgotten, least recently used first, to stay within containers.cache_size"},
	{Name: "container.lookups", Kind: metric.Counter, Unit: "{lookup}",
		Labels:      []metric.Label{{Name: AttrLookupResult, Description: "hit (known cgroup), walk (found by walking its hierarchy), not_found (gone before it was seen: the event is attributed to the host) or rate_limited (unknown, and its hierarchy was walked less than a second ago: attributed to the host)"}},
		Description: "cgroup ids of events looked up to find their container"},
	{Name: "container.walks", Kind: metric.Counter, Unit: "{walk}",
		Description: "walks of a cgroup hierarchy, at start and when an unknown cgroup id was met"},
	{Name: "container.tracked", Kind: metric.Gauge, Unit: "1",
		Description: "1 while the cgroup_mkdir/cgroup_rmdir hooks feed the resolver, 0 when it relies on walking alone"},
	{Name: "container.tracker.lost", Kind: metric.Counter, Unit: "{cgroup}",
		Description: "cgroup creations and removals not delivered whole (the buffer was full, or the path was longer than 480 bytes); those cgroups are found by walking"},
}

// ContainerSelfData reports the container resolver's counters; nothing
// when the receiver has no resolver.
func ContainerSelfData(r *container.Resolver) []*metric.Data {
	if r == nil {
		return nil
	}
	s := r.Stats()
	tracked := 0.0
	if s.Tracked {
		tracked = 1
	}
	out := []*metric.Data{
		metric.NewGaugeData("container.cache.entries", float64(s.Entries), "", nil),
		metric.NewCounterData("container.cache.evictions", float64(s.Evictions), "", nil),
		metric.NewCounterData("container.walks", float64(s.Walks), "", nil),
		metric.NewGaugeData("container.tracked", tracked, "", nil),
		metric.NewCounterData("container.tracker.lost", float64(s.TrackerLost+s.TrackerTruncated), "", nil),
	}
	for _, result := range []string{container.LookupHit, container.LookupWalk, container.LookupNotFound, container.LookupRateLimited} {
		out = append(out, metric.NewCounterData("container.lookups", float64(s.Lookups[result]), "", map[string]string{AttrLookupResult: result}))
	}
	return out
}

// SelfData reports the manager's status and the sink's counters as points
// of the SelfMetrics.
func SelfData(statuses []Status, stats storage.Stats, programs []Program) []*metric.Data {
	out := make([]*metric.Data, 0, 4*len(statuses)+5)
	for _, s := range statuses {
		l := map[string]string{AttrCollector: s.Name}
		active := 0.0
		if s.State == StateActive || s.State == StateRestarting {
			active = 1
		}
		out = append(out,
			metric.NewGaugeData("collector.active", active, "", l),
			metric.NewCounterData("collector.restarts", float64(s.Restarts), "", l),
			metric.NewCounterData("collector.panics", float64(s.Panics), "", l),
			metric.NewCounterData("collector.update.errors", float64(s.UpdateErrors), "", l),
		)
	}
	for _, p := range programs {
		l := map[string]string{AttrCollector: p.Collector, AttrHook: p.Hook, AttrAttachPoint: p.Attach, AttrProgram: p.Name}
		out = append(out, metric.NewGaugeData("bpf.program.attached", 1, "", l))
		if runs, ns, ok := p.Stats(); ok {
			out = append(out,
				metric.NewCounterData("bpf.program.runs", float64(runs), "", l),
				metric.NewCounterData("bpf.program.run_time", float64(ns)/1e9, "", l))
		}
	}
	out = append(out,
		metric.NewCounterData("events.saved", float64(stats.Saved), "", nil),
		metric.NewCounterData("events.emitted", float64(stats.Emitted), "", nil),
	)
	for _, reason := range storage.DropReasons {
		out = append(out, metric.NewCounterData("events.dropped", float64(stats.Dropped[reason]), "", map[string]string{AttrDropReason: reason}))
	}
	return out
}
