// Package tracing is the collector framework: the seed's registration API
// and the manager that runs registered collectors for one receiver.
//
// A collector lives in one folder and registers itself from init():
//
//	func init() {
//		tracing.RegisterEventTracing("example", newExample,
//			tracing.WithDescription("what the collector watches"),
//			tracing.WithConfig(func() *Config { return &Config{Threshold: 10} }),
//			tracing.WithEvent("example.happen", exampleEvent{}, "what one event means"),
//		)
//	}
//
//	func newExample(s tracing.Settings) (*tracing.EventTracingAttr, error) {
//		return &tracing.EventTracingAttr{
//			TracingData: &exampleTracing{storage: s.Storage, cfg: s.Config.(*Config)},
//			Interval:    10 * time.Second, // wait this long before running Start again
//			Flag:        tracing.FlagTracing,
//		}, nil
//	}
//
// The registry holds only factories and declarations, never running state:
// every receiver instance calls the factories again and owns what they return.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.uber.org/zap"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/container"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/metric"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/storage"
)

// Flag says which interfaces TracingData implements. Both may be set: Start
// keeps the probes running, Update reads what they gathered.
type Flag uint32

const (
	// FlagMetric: TracingData implements metric.Collector (Update).
	FlagMetric Flag = 1 << iota
	// FlagTracing: TracingData implements ITracingEvent (Start).
	FlagTracing
)

func (f Flag) String() string {
	switch f {
	case FlagMetric:
		return "metric"
	case FlagTracing:
		return "tracing"
	case FlagMetric | FlagTracing:
		return "tracing+metric"
	}
	return fmt.Sprintf("Flag(%d)", uint32(f))
}

// ITracingEvent is a collector that runs: Start blocks while it traces and
// returns when ctx ends, on error, or when its work is done. The manager
// calls Start again Interval after it returns, until the receiver stops.
type ITracingEvent interface {
	Start(ctx context.Context) error
}

// EventTracingAttr is what a factory returns: the collector and how to run it.
type EventTracingAttr struct {
	// TracingData implements ITracingEvent, metric.Collector, or both, as Flag says.
	TracingData any
	// Interval is the wait before Start runs again after it returned. It is
	// required for tracing collectors and must be at least a millisecond
	// (a bare 10 would be 10ns: write 10 * time.Second).
	Interval time.Duration
	Flag     Flag
}

// ErrNotSupported is returned (wrapped, with the reason) by a factory, Start
// or Update when this kernel or host cannot serve the collector. The
// collector then stays inactive, with the reason in its status.
var ErrNotSupported = errors.New("not supported")

// NotSupported returns an error wrapping ErrNotSupported that says why.
func NotSupported(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrNotSupported, fmt.Sprintf(format, args...))
}

// ErrNotPermitted is returned (wrapped, naming the capability or file) when
// the receiver lacks a privilege the collector needs. It is a kind of
// ErrNotSupported: privileges do not come back by retrying, so the
// collector stays inactive, with the reason in its status, instead of
// restarting every interval.
var ErrNotPermitted = notPermitted{}

type notPermitted struct{}

func (notPermitted) Error() string        { return "not permitted" }
func (notPermitted) Is(target error) bool { return target == ErrNotSupported }

// NotPermitted returns an error wrapping ErrNotPermitted (and so
// ErrNotSupported) that says which privilege is missing.
func NotPermitted(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrNotPermitted, fmt.Sprintf(format, args...))
}

// TracerType is the kind of collector, reported on every event it saves.
type TracerType string

const (
	// TypeEvent collectors hook the kernel all the time and report anomalies.
	TypeEvent TracerType = "event"
	// TypeAutotracing collectors watch for an anomaly and only then capture context.
	TypeAutotracing TracerType = "autotracing"
	// TypeMetrics collectors only report metrics.
	TypeMetrics TracerType = "metrics"
)

// Settings is what a factory gets from the receiver instance that creates it.
type Settings struct {
	// Name is the registered name.
	Name string
	// Logger is the receiver's logger, named for this collector.
	Logger *zap.Logger
	// Storage saves events into this receiver's logs pipeline.
	Storage *storage.Storage
	// Config is this collector's config section: the type WithConfig
	// declared, decoded and validated; nil when WithConfig was not used.
	Config any
	// Programs is where the BPF platform records the programs this
	// collector attaches (pass it in bpf.Options), for the receiver's
	// per-program self-telemetry.
	Programs *CollectorPrograms
	// Containers maps the cgroup ids of BPF events (and the pids of
	// context read from /proc) to containers: pass Resolve's Container.ID
	// to Storage.Save. nil when the host's cgroups cannot be read; its
	// methods then return the host (no container).
	Containers *container.Resolver
	// BPF holds overrides of the BPF platform's choices, set by tests
	// (tracingtest.ForceHook, tracingtest.PerfBuffer) and empty in a
	// receiver. A BPF collector passes bpf.OptionsFor(settings) to
	// bpf.Load, which applies them.
	BPF BPFOverrides
}

// BPFOverrides make the BPF platform take a branch it would not take on
// this kernel by itself, so a test can prove that branch works.
type BPFOverrides struct {
	// Force restricts a hook (by its logical name) to candidates of one
	// attach kind ("tracepoint", "kprobe", ...).
	Force map[string]string
	// PerfBuffer sends events through the perf buffer even where the
	// kernel has ring buffers (the path of kernels before 5.8).
	PerfBuffer bool
}

// CollectorPrograms is one collector's view of its receiver's Programs.
type CollectorPrograms struct {
	collector string
	all       *Programs
}

// Collector is the name programs are recorded under ("" for nil).
func (c *CollectorPrograms) Collector() string {
	if c == nil {
		return ""
	}
	return c.collector
}

// Add records a program of this collector; see Programs.Add.
func (c *CollectorPrograms) Add(p Program) (remove func()) {
	if c == nil {
		return func() {}
	}
	p.Collector = c.collector
	return c.all.Add(p)
}

// Factory creates a collector for one receiver instance. It should only
// build the collector; kernel work (loading BPF, opening sockets) belongs
// in Start, so that creating a receiver stays cheap and side-effect free.
type Factory func(Settings) (*EventTracingAttr, error)

// Registration is everything declared about a collector at init time.
type Registration struct {
	Name        string
	Factory     Factory
	Type        TracerType
	Description string
	// DefaultConfig returns a fresh config with defaults; nil if the
	// collector has no knobs besides enabled.
	DefaultConfig func() any
	// DisabledByDefault collectors run only when their section says enabled: true.
	DisabledByDefault bool
	Events            []EventDoc
	Metrics           []metric.Desc
}

// EventDoc declares one event a collector saves.
type EventDoc struct {
	// Name is the name given to Save: what happened, as subject.verb
	// ("packet.drop"); the EventName is "kernel.<Name>". docs/conventions.md
	// lists every EventName with the collector that saves it.
	Name        string
	Description string
	Data        reflect.Type // the type given to Save
	// Severity is the severity the event is saved at: its data's
	// Severity() on the zero value, or INFO when the type has no such
	// method. Body says what the LogRecord body holds (tracing.Body); it is
	// required when the data type has a Summary() method.
	Severity plog.SeverityNumber
	Body     string
	// SeverityNote replaces Severity in the documentation when the
	// severity depends on the event (tracing.SeverityVaries).
	SeverityNote string
}

// SeverityVaries documents a severity that depends on the event, e.g.
// "WARN for a link going down, INFO for one coming up".
func SeverityVaries(text string) EventOption {
	return func(e *EventDoc) { e.SeverityNote = text }
}

// EventOption adds to an event's declaration.
type EventOption func(*EventDoc)

// Body documents the LogRecord body of the event: what its data's Summary()
// line says, e.g. "<protocol> drop <source>:<port> -> <destination>:<port>
// (<reason>) at <location>".
func Body(text string) EventOption {
	return func(e *EventDoc) { e.Body = text }
}

// Option adds a declaration to a registration.
type Option func(*Registration)

// WithConfig declares the collector's config type through a function that
// returns one with defaults set. The receiver decodes the collector's
// section into it (unknown keys are errors), calls its Validate() error
// method if it has one, and passes it to the factory as Settings.Config.
func WithConfig[C any](defaults func() *C) Option {
	return func(r *Registration) { r.DefaultConfig = func() any { return defaults() } }
}

// WithDescription says in a sentence what the collector watches.
func WithDescription(text string) Option {
	return func(r *Registration) { r.Description = text }
}

// WithType sets the tracer type; the default is TypeEvent for tracing
// collectors and TypeMetrics for metric-only ones.
func WithType(t TracerType) Option {
	return func(r *Registration) { r.Type = t }
}

// WithEvent declares an event the collector saves with data of data's
// type: name is what happened, as subject.verb ("packet.drop" gives the
// EventName kernel.packet.drop).
func WithEvent(name string, data any, description string, opts ...EventOption) Option {
	return func(r *Registration) {
		e := EventDoc{Name: name, Description: description, Data: reflect.TypeOf(data), Severity: plog.SeverityNumberInfo}
		if sv, ok := zeroOf(e.Data).(storage.Severity); ok {
			e.Severity = sv.Severity()
		}
		for _, o := range opts {
			o(&e)
		}
		r.Events = append(r.Events, e)
	}
}

// zeroOf returns a pointer to a zero value of t's underlying struct, for
// asking a data type what it declares through its methods.
func zeroOf(t reflect.Type) any {
	if t == nil {
		return nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return reflect.New(t).Interface()
}

// WithMetrics declares the metrics Update returns.
func WithMetrics(descs ...metric.Desc) Option {
	return func(r *Registration) { r.Metrics = append(r.Metrics, descs...) }
}

// DisabledByDefault makes the collector opt-in.
func DisabledByDefault() Option {
	return func(r *Registration) { r.DisabledByDefault = true }
}

var (
	registryMu sync.RWMutex
	registry   = map[string]*Registration{}
	validName  = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	// validEventName is subject.verb, each part snake_case, without the
	// kernel. prefix Save adds.
	validEventName = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$`)
)

// RegisterEventTracing registers a collector under name. It is meant for
// init() and panics on a programming error (a bad or duplicate name, a bad
// declaration) so that any test importing the collector catches it.
func RegisterEventTracing(name string, factory Factory, opts ...Option) {
	r := &Registration{Name: name, Factory: factory}
	for _, o := range opts {
		o(r)
	}
	if err := r.validate(); err != nil {
		panic(fmt.Sprintf("tracing.RegisterEventTracing(%q): %v", name, err))
	}
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[name]; dup {
		panic(fmt.Sprintf("tracing.RegisterEventTracing(%q): registered twice", name))
	}
	registry[name] = r
}

// ReservedNames are names no collector may take: the receiver's own
// metrics (SelfName) and its config keys, which share the config's top
// level with the collectors' sections.
var ReservedNames = []string{SelfName, "collection_interval", "event_queue", "containers"}

func (r *Registration) validate() error {
	if !validName.MatchString(r.Name) {
		return fmt.Errorf("name must match %s", validName)
	}
	if slices.Contains(ReservedNames, r.Name) {
		return fmt.Errorf("name %q is reserved: the receiver's own metrics and config keys use it", r.Name)
	}
	if r.Factory == nil {
		return errors.New("nil factory")
	}
	if r.Description == "" {
		return errors.New("no description (use tracing.WithDescription)")
	}
	switch r.Type {
	case "":
		if len(r.Events) == 0 {
			r.Type = TypeMetrics
		} else {
			r.Type = TypeEvent
		}
	case TypeEvent, TypeAutotracing, TypeMetrics:
	default:
		return fmt.Errorf("unknown tracer type %q", r.Type)
	}
	seen := map[string]bool{}
	for _, d := range r.Metrics {
		if err := d.Validate(); err != nil {
			return err
		}
		if seen[d.Name] {
			return fmt.Errorf("metric %q declared twice", d.Name)
		}
		seen[d.Name] = true
	}
	for _, e := range r.Events {
		if e.Name == "" || e.Description == "" || e.Data == nil {
			return errors.New("an event needs a name, a description and a data type")
		}
		if !validEventName.MatchString(e.Name) {
			return fmt.Errorf("event name %q must say what happened as subject.verb (e.g. packet.drop), matching %s", e.Name, validEventName)
		}
		if e.Name == r.Name {
			return fmt.Errorf("event name %q names the collector, not what happened", e.Name)
		}
		if _, ok := zeroOf(e.Data).(storage.Summary); ok && e.Body == "" {
			return fmt.Errorf("event %q: its data has a Summary() body: document it with tracing.Body", e.Name)
		}
		for _, f := range storage.Fields(e.Data) {
			if f.Doc == "" {
				return fmt.Errorf("event %q: field %q has no `doc` tag", e.Name, f.Name)
			}
		}
	}
	return nil
}

// Lookup returns the registration of name.
func Lookup(name string) (*Registration, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	r, ok := registry[name]
	return r, ok
}

// Registered returns every registration, sorted by name.
func Registered() []*Registration {
	registryMu.RLock()
	defer registryMu.RUnlock()
	out := make([]*Registration, 0, len(registry))
	for _, r := range registry {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Names returns the registered names, sorted.
func Names() []string {
	regs := Registered()
	names := make([]string, len(regs))
	for i, r := range regs {
		names[i] = r.Name
	}
	return slices.Clip(names)
}

// Unregister removes a registration. Only tests use it, for collectors they
// register themselves.
func Unregister(name string) {
	registryMu.Lock()
	defer registryMu.Unlock()
	delete(registry, name)
}
