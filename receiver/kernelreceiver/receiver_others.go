//go:build !linux

package kernelreceiver

import (
	"fmt"
	"runtime"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"
)

// kernelReceiver cannot exist off Linux; the type is here so that the
// factory, and the distribution that includes it, still build.
type kernelReceiver struct {
	component.StartFunc
	component.ShutdownFunc
	logs    consumer.Logs
	metrics consumer.Metrics
	forget  func()
}

func newKernelReceiver(receiver.Settings, *Config) (*kernelReceiver, error) {
	return nil, fmt.Errorf("the kernel receiver needs Linux: it reads the running kernel through eBPF, procfs and netlink, and this collector runs on %s", runtime.GOOS)
}
