//go:build linux

package kernelreceiver

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/otelcol-kernel/otelcol-kernel/collectors/metrics/loadavg"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/tracing"
)

func loadConfig(t *testing.T, name string) (*Config, error) {
	t.Helper()
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	require.NoError(t, err)
	id := component.MustNewIDWithName("kernel", name)
	if name == "" {
		id = component.MustNewID("kernel")
	}
	sub, err := cm.Sub(id.String())
	require.NoError(t, err)
	cfg := NewFactory().CreateDefaultConfig().(*Config)
	if err := sub.Unmarshal(cfg); err != nil {
		return cfg, err
	}
	return cfg, confmap.Validate(cfg)
}

func TestDefaultConfigEnablesEveryRegisteredCollector(t *testing.T) {
	cfg, err := loadConfig(t, "")
	require.NoError(t, err)
	assert.Equal(t, 10*time.Second, cfg.CollectionInterval)
	require.NotEmpty(t, tracing.Names())
	for _, name := range tracing.Names() {
		cc, ok := cfg.Collector(name)
		require.True(t, ok, name)
		reg, _ := tracing.Lookup(name)
		assert.Equal(t, !reg.DisabledByDefault, cc.Enabled, name)
	}
	la, _ := cfg.Collector("loadavg")
	assert.Equal(t, &loadavg.Config{ScanThreads: true}, la.Settings)
}

func TestValidConfigs(t *testing.T) {
	cfg, err := loadConfig(t, "custom")
	require.NoError(t, err)
	assert.Equal(t, ReceiverSettings{
		CollectionInterval: 2 * time.Second,
		EventQueue:         EventQueueConfig{Size: 100, BatchSize: 10, FlushInterval: time.Second},
		Containers: ContainersConfig{
			CacheSize: 1024, RemovedRetention: 2 * time.Minute, MinAge: 0, TrackCgroups: false,
			KubernetesRuntime: "containerd", ContainerdNamespaces: []string{"default", "builds"},
		},
	}, cfg.ReceiverSettings)
	la, _ := cfg.Collector("loadavg")
	assert.Equal(t, &CollectorConfig{Enabled: true, Settings: &loadavg.Config{ScanThreads: false}}, la)

	cfg, err = loadConfig(t, "disabled")
	require.NoError(t, err)
	la, _ = cfg.Collector("loadavg")
	assert.False(t, la.Enabled)
	assert.False(t, slices.ContainsFunc(cfg.enabled(), func(e tracing.Enabled) bool { return e.Name == "loadavg" }))

	cfg, err = loadConfig(t, "bare_section")
	require.NoError(t, err)
	la, _ = cfg.Collector("loadavg")
	assert.Equal(t, &CollectorConfig{Enabled: true, Settings: &loadavg.Config{ScanThreads: true}}, la, "an empty section keeps the defaults")
}

func TestInvalidConfigsNameTheKeyAndValue(t *testing.T) {
	for name, want := range map[string][]string{
		"unknown_top_key":       {`unknown key "colection_interval"`, "collection_interval, event_queue, containers", "loadavg"},
		"unknown_collector_key": {"loadavg: ", "scan_thread"},
		"enabled_not_bool":      {"loadavg: enabled: want true or false, got yes please"},
		"section_not_mapping":   {"loadavg: want a mapping of settings, got int 3"},
		"bad_interval":          {"collection_interval: 10ms is too short"},
		"bad_queue":             {"event_queue::size: 0", "event_queue::batch_size: -1", "event_queue::flush_interval: 0s"},
		"bad_type":              {"collection_interval", "invalid duration"},
		"fractional_queue":      {"event_queue::size: 1.5 is not a whole number", "event_queue::batch_size: 9223372036854775808 is out of range"},
		"huge_queue":            {"event_queue::size: 100000000 must be from 1 to 1048576"},
		"bad_containers":        {"containers::cache_size: 3", "containers::min_age: -1s", `containers::kubernetes_runtime: "rkt"`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := loadConfig(t, name)
			require.Error(t, err)
			for _, w := range want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestConfigRoundTrip(t *testing.T) {
	cfg, err := loadConfig(t, "custom")
	require.NoError(t, err)
	// As the collector marshals it (print-config): nested in the whole config.
	whole := confmap.New()
	require.NoError(t, whole.Marshal(map[string]any{"kernel": cfg}))
	conf, err := whole.Sub("kernel")
	require.NoError(t, err)
	assert.Equal(t, false, conf.Get("loadavg::scan_threads"))
	assert.Equal(t, true, conf.Get("loadavg::enabled"))
	assert.Equal(t, 2*time.Second, conf.Get("collection_interval"))

	back := NewFactory().CreateDefaultConfig().(*Config)
	require.NoError(t, conf.Unmarshal(back))
	assert.Equal(t, cfg, back)
}

func TestCollectorNamesDoNotShadowReceiverKeys(t *testing.T) {
	for _, name := range tracing.Names() {
		assert.NotContains(t, receiverKeys, name)
	}
}
