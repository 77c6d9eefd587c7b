package tracing

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/container"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/metric"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/storage"
)

// State is where a collector is in its life.
type State string

const (
	// StateActive: running (tracing) or being updated (metrics).
	StateActive State = "active"
	// StateRestarting: Start returned; it runs again after Interval.
	StateRestarting State = "restarting"
	// StateInactive: the collector said this host cannot serve it (ErrNotSupported).
	StateInactive State = "inactive"
	// StateFailed: the factory failed or returned an unusable collector.
	StateFailed State = "failed"
	// StateStopped: the receiver shut down.
	StateStopped State = "stopped"
)

// Status is what the receiver reports about one collector.
type Status struct {
	Name     string
	Type     TracerType
	Flag     Flag
	State    State
	Reason   string // why inactive or failed
	Restarts uint64 // times Start was run again
	Panics   uint64 // recovered panics in Start or Update
	// UpdateErrors counts Update calls that returned an error, panicked,
	// overran the collection round or were skipped because the previous
	// one was still running.
	UpdateErrors uint64
	LastError    string
}

// maxWarned bounds the messages a collector remembers having logged, since
// some carry values and could otherwise grow without end.
const maxWarned = 256

// ManagerOption gives the collectors of a Manager what the receiver
// instance shares among them.
type ManagerOption func(*Manager)

// WithContainers gives the collectors the instance's container resolver
// (Settings.Containers) and reports its counters in the self-telemetry.
func WithContainers(r *container.Resolver) ManagerOption {
	return func(m *Manager) { m.containers = r }
}

// WithPrograms makes the Manager record attached programs in p, which the
// receiver shares with what it attaches itself (the cgroup watcher).
func WithPrograms(p *Programs) ManagerOption {
	return func(m *Manager) { m.programs = p }
}

// Enabled is one collector a receiver instance runs, with its decoded config.
type Enabled struct {
	Name   string
	Config any
}

// Manager runs the collectors of one receiver instance.
type Manager struct {
	logger     *zap.Logger
	sink       *storage.Sink
	collectors []*instance // sorted by name

	programs   *Programs
	containers *container.Resolver

	// The receiver's own metrics, appended after the collectors' in Collect.
	selfDescs  map[string]metric.Desc
	selfStarts *metric.StartTracker

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type instance struct {
	reg    *Registration
	attr   *EventTracingAttr
	logger *zap.Logger
	descs  map[string]metric.Desc
	// starts and warned are touched only by Collect, which is not reentrant.
	starts *metric.StartTracker
	warned map[string]bool
	// updating is held while Update runs; TryLock skips an overlapping round.
	updating sync.Mutex

	mu     sync.Mutex
	status Status

	restarts, panics, updateErrors atomic.Uint64
}

// NewManager creates the enabled collectors from their registrations.
// A collector whose factory fails is kept with StateFailed (or StateInactive
// for ErrNotSupported): one collector never stops the others.
func NewManager(logger *zap.Logger, sink *storage.Sink, enabled []Enabled, opts ...ManagerOption) (*Manager, error) {
	now := time.Now()
	m := &Manager{logger: logger, sink: sink, programs: NewPrograms(), selfDescs: map[string]metric.Desc{}, selfStarts: metric.NewStartTracker(now)}
	for _, o := range opts {
		o(m)
	}
	for _, d := range SelfMetrics {
		m.selfDescs[d.Name] = d
	}
	for _, e := range enabled {
		reg, ok := Lookup(e.Name)
		if !ok {
			return nil, fmt.Errorf("no collector named %q is registered", e.Name)
		}
		in := &instance{
			reg:    reg,
			logger: logger.With(zap.String("collector", reg.Name)),
			descs:  make(map[string]metric.Desc, len(reg.Metrics)),
			starts: metric.NewStartTracker(now),
			warned: map[string]bool{},
			status: Status{Name: reg.Name, Type: reg.Type, State: StateActive},
		}
		for _, d := range reg.Metrics {
			in.descs[d.Name] = d
		}
		settings := Settings{
			Name:       reg.Name,
			Logger:     in.logger,
			Storage:    sink.For(string(reg.Type)),
			Config:     e.Config,
			Programs:   m.programs.For(reg.Name),
			Containers: m.containers,
		}
		attr, err := callFactory(reg, settings)
		if err == nil {
			err = checkAttr(attr)
		}
		switch {
		case errors.Is(err, ErrNotSupported):
			in.setState(StateInactive, err.Error())
			in.logger.Warn(inactiveMessage(err), zap.Error(err))
		case err != nil:
			in.setState(StateFailed, err.Error())
			in.logger.Error("collector could not be created; it stays off", zap.Error(err))
		default:
			in.attr = attr
			in.status.Flag = attr.Flag
		}
		m.collectors = append(m.collectors, in)
	}
	sort.Slice(m.collectors, func(i, j int) bool { return m.collectors[i].reg.Name < m.collectors[j].reg.Name })
	return m, nil
}

func callFactory(reg *Registration, s Settings) (attr *EventTracingAttr, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("factory panicked: %v\n%s", r, debug.Stack())
		}
	}()
	return reg.Factory(s)
}

func checkAttr(attr *EventTracingAttr) error {
	if attr == nil {
		return errors.New("factory returned no EventTracingAttr")
	}
	if attr.Flag&(FlagMetric|FlagTracing) == 0 || attr.Flag&^(FlagMetric|FlagTracing) != 0 {
		return fmt.Errorf("flag %v: want FlagTracing, FlagMetric or both", attr.Flag)
	}
	if attr.Flag&FlagTracing != 0 {
		if _, ok := attr.TracingData.(ITracingEvent); !ok {
			return fmt.Errorf("FlagTracing is set but %T has no Start(ctx) error method", attr.TracingData)
		}
		if attr.Interval < time.Millisecond {
			return fmt.Errorf("Interval %v is below 1ms (write 10 * time.Second, not 10)", attr.Interval)
		}
	}
	if attr.Flag&FlagMetric != 0 {
		if _, ok := attr.TracingData.(metric.Collector); !ok {
			return fmt.Errorf("FlagMetric is set but %T has no Update() ([]*metric.Data, error) method", attr.TracingData)
		}
	}
	return nil
}

// Start launches one goroutine per tracing collector.
func (m *Manager) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	for _, in := range m.collectors {
		if in.attr == nil || in.attr.Flag&FlagTracing == 0 {
			continue
		}
		m.wg.Add(1)
		go m.run(ctx, in)
	}
}

// Shutdown cancels every collector and waits for them until ctx ends. It
// returns an error naming the collectors that had not returned by then.
func (m *Manager) Shutdown(ctx context.Context) error {
	if m.cancel != nil {
		m.cancel()
	}
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		var stuck []string
		for _, in := range m.collectors {
			if s := in.snapshot(); s.State == StateActive || s.State == StateRestarting {
				stuck = append(stuck, s.Name)
			}
		}
		return fmt.Errorf("collectors still running at the shutdown deadline: %v: %w", stuck, ctx.Err())
	}
	for _, in := range m.collectors {
		if s := in.snapshot(); s.State == StateActive || s.State == StateRestarting {
			in.setState(StateStopped, "")
		}
	}
	return nil
}

func (m *Manager) run(ctx context.Context, in *instance) {
	defer m.wg.Done()
	tracer := in.attr.TracingData.(ITracingEvent)
	for {
		in.setState(StateActive, "")
		err, panicked := in.safeStart(ctx, tracer)
		if ctx.Err() != nil {
			return
		}
		switch {
		case panicked:
			in.panics.Add(1)
			in.setLastError(err)
			in.logger.Error("collector panicked; restarting after its interval", zap.Error(err), zap.Duration("interval", in.attr.Interval))
		case errors.Is(err, ErrNotSupported):
			in.setState(StateInactive, err.Error())
			in.logger.Warn(inactiveMessage(err), zap.Error(err))
			return
		case err != nil:
			in.setLastError(err)
			in.logger.Warn("collector stopped with an error; restarting after its interval", zap.Error(err), zap.Duration("interval", in.attr.Interval))
		default:
			in.logger.Debug("collector returned; restarting after its interval", zap.Duration("interval", in.attr.Interval))
		}
		in.setState(StateRestarting, "")
		timer := time.NewTimer(in.attr.Interval)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		in.restarts.Add(1)
	}
}

func inactiveMessage(err error) string {
	if errors.Is(err, ErrNotPermitted) {
		return "collector lacks a privilege it needs; it stays inactive"
	}
	return "collector not supported on this host; it stays inactive"
}

func (in *instance) safeStart(ctx context.Context, t ITracingEvent) (err error, panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			err, panicked = fmt.Errorf("panic in Start: %v\n%s", r, debug.Stack()), true
		}
	}()
	return t.Start(ctx), false
}

func (in *instance) safeUpdate(c metric.Collector) (data []*metric.Data, err error, panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			data, err, panicked = nil, fmt.Errorf("panic in Update: %v\n%s", r, debug.Stack()), true
		}
	}()
	data, err = c.Update()
	return data, err, false
}

func (in *instance) setState(s State, reason string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.status.State = s
	if reason != "" || s == StateActive {
		in.status.Reason = reason
	}
}

func (in *instance) setLastError(err error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.status.LastError = err.Error()
}

func (in *instance) snapshot() Status {
	in.mu.Lock()
	s := in.status
	in.mu.Unlock()
	s.Restarts = in.restarts.Load()
	s.Panics = in.panics.Load()
	s.UpdateErrors = in.updateErrors.Load()
	return s
}

// Programs returns the BPF programs the collectors have attached.
func (m *Manager) Programs() []Program { return m.programs.List() }

// Status returns the status of every collector, sorted by name.
func (m *Manager) Status() []Status {
	out := make([]Status, len(m.collectors))
	for i, in := range m.collectors {
		out[i] = in.snapshot()
	}
	return out
}

// Collect calls Update on every metric collector concurrently, waits for
// them until ctx ends, and appends what they returned to b. An Update still
// running when ctx ends is left to finish in the background (its result is
// discarded and counted as an update error); the next round skips that
// collector until it returns. Collect must not be called concurrently with
// itself.
func (m *Manager) Collect(ctx context.Context, b *metric.Builder) {
	type result struct {
		data []*metric.Data
		err  error
	}
	now := time.Now()
	results := make([]chan result, len(m.collectors))
	for i, in := range m.collectors {
		if in.attr == nil || in.attr.Flag&FlagMetric == 0 {
			continue
		}
		if st := in.snapshot().State; st == StateInactive || st == StateFailed || st == StateStopped {
			continue
		}
		if !in.updating.TryLock() {
			in.updateErrors.Add(1)
			in.logger.Warn("skipping this round: the previous Update has not returned")
			continue
		}
		ch := make(chan result, 1)
		results[i] = ch
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			defer in.updating.Unlock()
			data, err, panicked := in.safeUpdate(in.attr.TracingData.(metric.Collector))
			if panicked {
				in.panics.Add(1)
			}
			ch <- result{data, err}
		}()
	}
	for i, ch := range results {
		if ch == nil {
			continue
		}
		in := m.collectors[i]
		var r result
		select {
		case r = <-ch:
		case <-ctx.Done():
			in.updateErrors.Add(1)
			in.logger.Warn("Update did not return within the collection round; its result is discarded", zap.Error(ctx.Err()))
			continue
		}
		if errors.Is(r.err, ErrNotSupported) {
			in.setState(StateInactive, r.err.Error())
			in.logger.Warn(inactiveMessage(r.err), zap.Error(r.err))
			continue
		}
		if r.err != nil {
			in.updateErrors.Add(1)
			in.setLastError(r.err)
			in.logger.Warn("Update returned an error", zap.Error(r.err), zap.Int("points_kept", len(r.data)))
		}
		_, errs := b.Append(in.reg.Name, in.descs, in.starts, now, r.data)
		for _, err := range errs {
			// The same malformed or undeclared point recurs every round: say it once.
			if msg := err.Error(); !in.warned[msg] && len(in.warned) < maxWarned {
				in.warned[msg] = true
				in.logger.Warn("metric point problem (reported once)", zap.Error(err))
			}
		}
		in.starts.EndRound()
	}
	if _, errs := b.Append(SelfName, m.selfDescs, m.selfStarts, now, append(SelfData(m.Status(), m.sink.Stats(), m.programs.List()), ContainerSelfData(m.containers)...)); len(errs) > 0 {
		m.logger.Error("self metrics do not match their declarations", zap.Errors("errors", errs))
	}
	m.selfStarts.EndRound()
}
