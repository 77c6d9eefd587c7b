//go:build linux

package kernelreceiver

// The collectors of this receiver. Each registers itself from init(); adding
// one is adding its import here.
import (
	_ "github.com/otelcol-kernel/otelcol-kernel/collectors/events/dropwatch"
	_ "github.com/otelcol-kernel/otelcol-kernel/collectors/events/hungtask"
	_ "github.com/otelcol-kernel/otelcol-kernel/collectors/events/netdev"
	_ "github.com/otelcol-kernel/otelcol-kernel/collectors/events/oom"
	_ "github.com/otelcol-kernel/otelcol-kernel/collectors/metrics/loadavg"
)
