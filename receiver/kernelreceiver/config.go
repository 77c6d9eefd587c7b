package kernelreceiver

import (
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/collector/confmap"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/container"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/tracing"
)

// Config is the receiver's configuration:
//
//	kernel:
//	  collection_interval: 10s   # how often metric collectors are updated
//	  event_queue:               # between event collectors and the logs pipeline
//	    size: 4096
//	    batch_size: 512
//	    flush_interval: 200ms
//	  containers:                # how events and metrics find their container
//	    cache_size: 8192
//	    min_age: 10s
//	  netdev:                    # one section per collector, by registered name
//	    enabled: true
//	    include: "^eth"          # the collector's own settings
//
// Every registered collector is configured, whether or not its section is
// written: an absent section means the collector's defaults. A section that
// is present enables its collector unless it says `enabled: false`.
type Config struct {
	ReceiverSettings `mapstructure:",squash"`

	// collectors holds every registered collector's section, by name.
	// It is filled by Unmarshal rather than by mapstructure because its keys
	// are the registered collector names, each with its own settings type.
	collectors map[string]*CollectorConfig
}

// ReceiverSettings are the settings that are not a collector's.
type ReceiverSettings struct {
	// CollectionInterval is how often Update runs on metric collectors.
	CollectionInterval time.Duration `mapstructure:"collection_interval"`
	// EventQueue tunes the path from event collectors to the logs pipeline.
	EventQueue EventQueueConfig `mapstructure:"event_queue"`
	// Containers tunes how events and metrics are attributed to containers.
	Containers ContainersConfig `mapstructure:"containers"`
}

// ContainersConfig tunes container attribution: how the cgroup of an event
// is mapped to container.id, container.runtime.name and k8s.pod.uid.
type ContainersConfig struct {
	// CacheSize bounds the cgroups remembered, least recently used first out.
	CacheSize int `mapstructure:"cache_size"`
	// RemovedRetention is how long a removed cgroup still resolves, for
	// events read after a container ended (its OOM kill).
	RemovedRetention time.Duration `mapstructure:"removed_retention"`
	// MinAge is how long a container must exist before per-container
	// metric collectors report it: the guard against label churn from
	// containers that live a few seconds.
	MinAge time.Duration `mapstructure:"min_age"`
	// TrackCgroups attaches the cgroup_mkdir/cgroup_rmdir tracepoints so
	// new cgroups are known the moment they are made; without it an unknown
	// cgroup is found by walking its hierarchy (at most once a second).
	TrackCgroups bool `mapstructure:"track_cgroups"`
	// KubernetesRuntime names the runtime of a bare container id under a
	// pod cgroup (the cgroupfs driver does not say whether containerd or
	// cri-dockerd made it): "containerd", "docker", or "" to leave it unset.
	KubernetesRuntime string `mapstructure:"kubernetes_runtime"`
	// ContainerdNamespaces are the containerd namespaces whose plain
	// containers (ctr, nerdctl) live at /<namespace>/<id>.
	ContainerdNamespaces []string `mapstructure:"containerd_namespaces"`
}

// EventQueueConfig bounds what waits for the logs pipeline.
type EventQueueConfig struct {
	// Size is the most events waiting; beyond it events are dropped and counted.
	Size int `mapstructure:"size"`
	// BatchSize is the most events handed to the pipeline in one call.
	BatchSize int `mapstructure:"batch_size"`
	// FlushInterval is the longest an event waits for its batch to fill.
	FlushInterval time.Duration `mapstructure:"flush_interval"`
}

// CollectorConfig is one collector's section.
type CollectorConfig struct {
	Enabled bool
	// Settings is the collector's own config (the type it declared with
	// tracing.WithConfig), or nil if it has none.
	Settings any
}

const enabledKey = "enabled"

func createDefaultConfig() *Config {
	cfg := &Config{
		ReceiverSettings: ReceiverSettings{
			CollectionInterval: 10 * time.Second,
			EventQueue: EventQueueConfig{
				Size:          4096,
				BatchSize:     512,
				FlushInterval: 200 * time.Millisecond,
			},
			Containers: ContainersConfig{
				CacheSize:            8192,
				RemovedRetention:     2 * time.Minute,
				MinAge:               10 * time.Second,
				TrackCgroups:         true,
				ContainerdNamespaces: []string{"default"},
			},
		},
		collectors: map[string]*CollectorConfig{},
	}
	for _, reg := range tracing.Registered() {
		cc := &CollectorConfig{Enabled: !reg.DisabledByDefault}
		if reg.DefaultConfig != nil {
			cc.Settings = reg.DefaultConfig()
		}
		cfg.collectors[reg.Name] = cc
	}
	return cfg
}

// Collector returns the section of the named collector.
func (cfg *Config) Collector(name string) (*CollectorConfig, bool) {
	cc, ok := cfg.collectors[name]
	return cc, ok
}

// receiverKeys are the top-level keys that are not collector names.
var receiverKeys = []string{"collection_interval", "event_queue", "containers"}

// Unmarshal decodes the receiver settings and then each collector's section
// into that collector's declared type. Unknown keys are errors, named.
func (cfg *Config) Unmarshal(conf *confmap.Conf) error {
	if cfg.collectors == nil {
		cfg.collectors = map[string]*CollectorConfig{}
	}
	raw := conf.ToStringMap()
	top := map[string]any{}
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(raw)) {
		if slices.Contains(receiverKeys, k) {
			top[k] = raw[k]
			continue
		}
		reg, ok := tracing.Lookup(k)
		if !ok {
			return fmt.Errorf("unknown key %q: it is neither a receiver setting (%s) nor a collector of this build (%s)",
				k, strings.Join(receiverKeys, ", "), strings.Join(tracing.Names(), ", "))
		}
		if err := cfg.unmarshalCollector(reg, raw[k]); err != nil {
			errs = append(errs, err)
		}
	}
	if err := checkNumbers("", top, reflect.TypeFor[ReceiverSettings]()); err != nil {
		return errors.Join(append(errs, err)...)
	}
	if err := confmap.NewFromStringMap(top).Unmarshal(&cfg.ReceiverSettings); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// unmarshalCollector decodes one collector's section; its errors start
// with the collector's name.
func (cfg *Config) unmarshalCollector(reg *tracing.Registration, section any) error {
	if err := cfg.decodeCollector(reg, section); err != nil {
		var nums numberErrors
		if errors.As(err, &nums) {
			return err // each line already names the collector
		}
		return fmt.Errorf("%s: %w", reg.Name, err)
	}
	return nil
}

func (cfg *Config) decodeCollector(reg *tracing.Registration, section any) error {
	cc, ok := cfg.collectors[reg.Name]
	if !ok {
		cc = &CollectorConfig{}
		if reg.DefaultConfig != nil {
			cc.Settings = reg.DefaultConfig()
		}
		cfg.collectors[reg.Name] = cc
	}
	// A section that is present enables its collector unless it says otherwise.
	cc.Enabled = true
	var settings map[string]any
	switch s := section.(type) {
	case nil:
	case map[string]any:
		settings = maps.Clone(s)
	default:
		return fmt.Errorf("want a mapping of settings, got %T %v", section, section)
	}
	if v, ok := settings[enabledKey]; ok {
		enabled, isBool := v.(bool)
		if !isBool {
			return fmt.Errorf("%s: want true or false, got %v", enabledKey, v)
		}
		cc.Enabled = enabled
		delete(settings, enabledKey)
	}
	if cc.Settings == nil {
		if len(settings) > 0 {
			return fmt.Errorf("unknown keys %v: this collector has no settings besides %q", slices.Sorted(maps.Keys(settings)), enabledKey)
		}
		return nil
	}
	if err := checkNumbers(reg.Name+": ", settings, reflect.TypeOf(cc.Settings)); err != nil {
		return err
	}
	return confmap.NewFromStringMap(settings).Unmarshal(cc.Settings)
}

// Marshal writes the configuration back in the same shape Unmarshal reads,
// so `otelcol-kernel print-config` shows every collector's effective settings.
func (cfg Config) Marshal(conf *confmap.Conf) error {
	if err := conf.Marshal(cfg.ReceiverSettings); err != nil {
		return err
	}
	for name, cc := range cfg.collectors {
		section := confmap.New()
		if cc.Settings != nil {
			if err := section.Marshal(cc.Settings); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
		m := section.ToStringMap()
		m[enabledKey] = cc.Enabled
		if err := conf.Merge(confmap.NewFromStringMap(map[string]any{name: m})); err != nil {
			return err
		}
	}
	return nil
}

// Upper bounds of the receiver's numeric settings: beyond them a typo
// (an extra zero or three) would allocate gigabytes.
const (
	maxQueueSize = 1 << 20
	maxCacheSize = 1 << 22
)

// Validate checks the receiver settings and every collector's settings
// (through their Validate method), naming the key at fault. A disabled
// collector's section is checked too: turning it on later must not be when
// its mistakes show.
func (cfg *Config) Validate() error {
	var errs []error
	if cfg.CollectionInterval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("collection_interval: %v is too short (at least 100ms)", cfg.CollectionInterval))
	}
	q := cfg.EventQueue
	if cfg.CollectionInterval > 24*time.Hour {
		errs = append(errs, fmt.Errorf("collection_interval: %v is too long (at most 24h)", cfg.CollectionInterval))
	}
	if q.Size < 1 || q.Size > maxQueueSize {
		errs = append(errs, fmt.Errorf("event_queue::size: %d must be from 1 to %d", q.Size, maxQueueSize))
	}
	if q.BatchSize < 1 || q.BatchSize > maxQueueSize {
		errs = append(errs, fmt.Errorf("event_queue::batch_size: %d must be from 1 to %d", q.BatchSize, maxQueueSize))
	}
	if q.FlushInterval <= 0 {
		errs = append(errs, fmt.Errorf("event_queue::flush_interval: %v must be positive", q.FlushInterval))
	}
	c := cfg.Containers
	if c.CacheSize < 16 || c.CacheSize > maxCacheSize {
		errs = append(errs, fmt.Errorf("containers::cache_size: %d must be from 16 to %d", c.CacheSize, maxCacheSize))
	}
	if c.RemovedRetention < 0 {
		errs = append(errs, fmt.Errorf("containers::removed_retention: %v must not be negative", c.RemovedRetention))
	}
	if c.MinAge < 0 {
		errs = append(errs, fmt.Errorf("containers::min_age: %v must not be negative", c.MinAge))
	}
	switch c.KubernetesRuntime {
	case "", container.RuntimeContainerd, container.RuntimeDocker, container.RuntimeCRIO:
	default:
		errs = append(errs, fmt.Errorf("containers::kubernetes_runtime: %q is not one of containerd, docker, cri-o or empty", c.KubernetesRuntime))
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.collectors)) {
		cc := cfg.collectors[name]
		if cc.Settings == nil {
			continue
		}
		if err := confmap.Validate(cc.Settings); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// enabled lists the enabled collectors with their settings.
func (cfg *Config) enabled() []tracing.Enabled {
	var out []tracing.Enabled
	for _, name := range slices.Sorted(maps.Keys(cfg.collectors)) {
		if cc := cfg.collectors[name]; cc.Enabled {
			out = append(out, tracing.Enabled{Name: name, Config: cc.Settings})
		}
	}
	return out
}
