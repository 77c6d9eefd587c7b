//go:build linux

package kernelreceiver

// The collectors of this receiver. Each registers itself from init(); adding
// one is adding its import here.
import (
	_ "github.com/otelcol-kernel/otelcol-kernel/internal/events/dropwatch"
	_ "github.com/otelcol-kernel/otelcol-kernel/internal/events/hungtask"
	_ "github.com/otelcol-kernel/otelcol-kernel/internal/events/netdev"
	_ "github.com/otelcol-kernel/otelcol-kernel/internal/events/oom"
	_ "github.com/otelcol-kernel/otelcol-kernel/internal/metrics/loadavg"
)
