//go:build linux

package kernelreceiver

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-kernel/otelcol-kernel/collectors/events/dropwatch"
)

// The collectors' settings are decoded by confmap, whose plain conversions
// would wrap 4294967296 to 0 (no cap at all) and truncate 0.5 to 0: each is
// an error naming the collector and key instead.
func TestCollectorNumbersDoNotWrapOrTruncate(t *testing.T) {
	_, err := loadConfig(t, "eps_wraps")
	require.Error(t, err)
	for _, want := range []string{
		"dropwatch: events_per_second: 4294967296 is out of range (0 to 4294967295)",
		"oom: events_per_second: 0.5 is not a whole number",
		"hungtask: events_per_second: 5000000000 is out of range",
		"hungtask: max_blocked_tasks: 2.5 is not a whole number",
	} {
		assert.Contains(t, err.Error(), want)
	}

	cfg, err := loadConfig(t, "eps_whole_float")
	require.NoError(t, err, "a whole number written as a float is that number")
	dw, _ := cfg.Collector("dropwatch")
	assert.Equal(t, uint32(1000), dw.Settings.(*dropwatch.Config).EventsPerSecond)
}

// A section with enabled: false is checked all the same.
func TestDisabledSectionsAreValidated(t *testing.T) {
	_, err := loadConfig(t, "disabled_but_wrong")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "dropwatch: port: 70000 is not a port number")
	assert.Contains(t, err.Error(), "netdev: include")
}
