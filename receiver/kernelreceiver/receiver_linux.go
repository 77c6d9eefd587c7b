//go:build linux

package kernelreceiver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/receiverhelper"
	"go.uber.org/zap"

	"github.com/otelcol-kernel/otelcol-kernel/internal/cgroupwatch"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/bpf"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/container"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/metric"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/storage"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/tracing"
	"github.com/otelcol-kernel/otelcol-kernel/receiver/kernelreceiver/internal/metadata"
)

// kernelReceiver is one `kernel` receiver: the collectors it runs, the
// event sink feeding its logs pipeline and the loop feeding its metrics
// pipeline. Everything it starts, it stops.
type kernelReceiver struct {
	set     receiver.Settings
	cfg     *Config
	logs    consumer.Logs    // nil without a logs pipeline
	metrics consumer.Metrics // nil without a metrics pipeline
	obs     *receiverhelper.ObsReport
	forget  func() // removes this instance from its factory

	startOnce, stopOnce sync.Once
	startErr, stopErr   error

	sink       *storage.Sink
	containers *container.Resolver // nil when the host's cgroups cannot be read
	watcher    *cgroupwatch.Watcher
	manager    *tracing.Manager
	cancel     context.CancelFunc
	loop       sync.WaitGroup
}

func newKernelReceiver(set receiver.Settings, cfg *Config) (*kernelReceiver, error) {
	obs, err := receiverhelper.NewObsReport(receiverhelper.ObsReportSettings{
		ReceiverID: set.ID, Transport: "kernel", ReceiverCreateSettings: set, LongLivedCtx: true,
	})
	if err != nil {
		return nil, err
	}
	return &kernelReceiver{set: set, cfg: cfg, obs: obs}, nil
}

// Start runs once for both pipelines.
func (r *kernelReceiver) Start(_ context.Context, _ component.Host) error {
	r.startOnce.Do(func() { r.startErr = r.start() })
	return r.startErr
}

func (r *kernelReceiver) start() error {
	logger := r.set.Logger
	q := r.cfg.EventQueue
	var logs consumer.Logs
	if r.logs != nil {
		logs = r.observedLogs()
	}
	programs := tracing.NewPrograms()
	r.startContainers(programs.For(tracing.SelfName))
	r.sink = storage.NewSink(logs, storage.Options{
		QueueSize: q.Size, BatchSize: q.BatchSize, FlushInterval: q.FlushInterval, Containers: r.containers,
		ScopeAttributes: r.scopeAttributes(),
		// What is left of the bound once the collectors stopped (Shutdown).
		ShutdownTimeout: ShutdownTimeout - 3*stageStopTimeout,
	}, logger)
	manager, err := tracing.NewManager(logger, r.sink, r.cfg.enabled(), tracing.WithContainers(r.containers), tracing.WithPrograms(programs))
	if err != nil {
		r.stopContainers()
		return err
	}
	r.manager = manager
	r.sink.Start()
	r.manager.Start()
	for _, s := range r.manager.Status() {
		logger.Info("collector", zap.String("collector", s.Name), zap.String("type", string(s.Type)),
			zap.String("state", string(s.State)), zap.String("reason", s.Reason))
	}
	if r.metrics != nil {
		ctx, cancel := context.WithCancel(context.Background())
		r.cancel = cancel
		r.loop.Add(1)
		go r.metricsLoop(ctx)
	}
	return nil
}

// startContainers sets up container attribution: the resolver, fed by the
// cgroup watcher where the kernel lets it attach, and a first walk of the
// hierarchies. Neither failing stops the receiver: without a resolver every
// event is the host's, without the watcher unknown cgroups are walked for.
func (r *kernelReceiver) startContainers(programs *tracing.CollectorPrograms) {
	logger := r.set.Logger
	c := r.cfg.Containers
	layout, err := container.ReadLayout("/proc")
	if err != nil {
		logger.Warn("no container attribution: the cgroup hierarchies cannot be read; events and metrics are attributed to the host", zap.Error(err))
		return
	}
	r.containers = container.NewResolver(layout, container.Options{
		CacheSize: c.CacheSize, RemovedRetention: c.RemovedRetention, MinAge: c.MinAge,
		Parser: container.PathParser{KubernetesRuntime: c.KubernetesRuntime, ContainerdNamespaces: c.ContainerdNamespaces},
	})
	if c.TrackCgroups {
		w, err := cgroupwatch.Start(r.containers, bpf.Options{Programs: programs}, logger.With(zap.String("component", "cgroupwatch")))
		if err != nil {
			logger.Warn("cgroups are not tracked as they are made; an unknown cgroup is found by walking its hierarchy", zap.Error(err))
		} else {
			r.watcher = w
		}
	}
	// After the watcher attached, so that no cgroup made meanwhile is missed.
	r.containers.Refresh()
}

func (r *kernelReceiver) stopContainers() error {
	if r.watcher == nil {
		return nil
	}
	err := r.watcher.Close()
	r.watcher = nil
	return err
}

// metricsLoop collects once at start, so metrics appear without waiting a
// whole interval, and then every collection_interval.
func (r *kernelReceiver) metricsLoop(ctx context.Context) {
	defer r.loop.Done()
	b := metric.NewBuilder(metadata.ScopeName, r.set.BuildInfo.Version)
	b.SetScopeAttributes(r.scopeAttributes())
	b.DescribeContainers(r.containers)
	ticker := time.NewTicker(r.cfg.CollectionInterval)
	defer ticker.Stop()
	for {
		r.collect(ctx, b)
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

func (r *kernelReceiver) collect(ctx context.Context, b *metric.Builder) {
	// A round may use the whole interval; an Update slower than that is
	// abandoned for this round rather than delaying every other collector.
	roundCtx, cancel := context.WithTimeout(ctx, r.cfg.CollectionInterval)
	defer cancel()
	r.manager.Collect(roundCtx, b)
	md := b.Emit()
	if md.DataPointCount() == 0 {
		return
	}
	obsCtx := r.obs.StartMetricsOp(ctx)
	err := r.metrics.ConsumeMetrics(ctx, md)
	r.obs.EndMetricsOp(obsCtx, "kernel", md.DataPointCount(), err)
	if err != nil && ctx.Err() == nil {
		r.set.Logger.Warn("metrics pipeline refused a collection round", zap.Error(err), zap.Int("points", md.DataPointCount()))
	}
}

// observedLogs reports every batch to the collector's standard receiver
// telemetry (otelcol_receiver_accepted/refused_log_records). The records
// are counted before the batch is handed on: from then on it belongs to
// the pipeline, which may move or change it while we would be reading.
func (r *kernelReceiver) observedLogs() consumer.Logs {
	c, _ := consumer.NewLogs(func(ctx context.Context, ld plog.Logs) error {
		n := ld.LogRecordCount()
		obsCtx := r.obs.StartLogsOp(ctx)
		err := r.logs.ConsumeLogs(ctx, ld)
		r.obs.EndLogsOp(obsCtx, "kernel", n, err)
		return err
	})
	return c
}

// ScopeAttrComponentID names, on the instrumentation scope of everything a
// receiver emits, the receiver's component id ("kernel", "kernel/b"), so
// that the data of two kernel receivers in one collector stay apart: the
// Prometheus exporter turns it into the label otel_scope_otelcol_component_id,
// and in OTLP it tells the scopes apart. It is the attribute name the
// Collector uses for its own components' telemetry. It is a scope
// attribute, not a Resource one, because the Resource is the host or
// container the data describe (k8s_attributes associates by it), and the
// Prometheus exporter drops Resource attributes other than service.*
// unless told to keep them.
const ScopeAttrComponentID = "otelcol.component.id"

func (r *kernelReceiver) scopeAttributes() map[string]string {
	return map[string]string{ScopeAttrComponentID: r.set.ID.String()}
}

// ShutdownTimeout bounds Shutdown, whatever the pipeline does. Its stages
// run in turn: the metrics loop, cancelled, gets a second to return; the
// collectors get a second; the event queue gets what is left but a second
// to flush (2s), and a logs pipeline call still in flight then gets a
// second to honour its cancellation before it is left behind. Events not
// delivered by then are counted as dropped (reason shutdown) and logged.
const ShutdownTimeout = 5 * time.Second

// stageStopTimeout is each stage's share of ShutdownTimeout.
const stageStopTimeout = time.Second

// Shutdown runs once for both pipelines: stop collecting metrics, stop the
// collectors, then flush the events they saved.
func (r *kernelReceiver) Shutdown(ctx context.Context) error {
	r.stopOnce.Do(func() {
		defer r.forget()
		var errs []error
		if r.cancel != nil {
			r.cancel()
			// A metrics pipeline that ignores the cancellation is left behind.
			loopDone := make(chan struct{})
			go func() { r.loop.Wait(); close(loopDone) }()
			select {
			case <-loopDone:
			case <-time.After(stageStopTimeout):
				errs = append(errs, fmt.Errorf("the metrics pipeline did not return within %v of shutdown; left behind", stageStopTimeout))
			}
		}
		if r.manager != nil {
			stopCtx, cancel := context.WithTimeout(ctx, stageStopTimeout)
			errs = append(errs, r.manager.Shutdown(stopCtx))
			cancel()
		}
		if r.sink != nil {
			errs = append(errs, r.sink.Shutdown(ctx))
		}
		errs = append(errs, r.stopContainers())
		r.stopErr = errors.Join(errs...)
	})
	return r.stopErr
}

// Status reports on every collector of this receiver.
func (r *kernelReceiver) Status() []tracing.Status {
	if r.manager == nil {
		return nil
	}
	return r.manager.Status()
}
