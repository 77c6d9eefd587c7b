// Package kernelreceiver is the otelcol-kernel receiver with this module's
// collectors added: build a distribution with this package as the receiver
// (see ../builder-config.yaml) instead of the upstream one.
//
// A collector joins a receiver by being imported, since it registers itself
// from init(). ocb only imports a component's package to call its
// NewFactory, and cannot add imports of its own, so the collectors are
// blank-imported here, next to a NewFactory that hands out the upstream
// receiver's factory. The built-in collectors come with the upstream
// package as before.
package kernelreceiver

import (
	"go.opentelemetry.io/collector/receiver"

	upstream "github.com/otelcol-kernel/otelcol-kernel/receiver/kernelreceiver"

	_ "example.com/kernelcollectors/execsnoop"
	_ "example.com/kernelcollectors/forks"
)

// NewFactory returns the kernel receiver's factory (component type
// "kernel"); its collectors include execsnoop and forks.
func NewFactory() receiver.Factory {
	return upstream.NewFactory()
}
