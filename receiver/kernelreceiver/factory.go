package kernelreceiver

import (
	"context"
	"sync"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"

	"github.com/otelcol-kernel/otelcol-kernel/receiver/kernelreceiver/internal/metadata"
)

// NewFactory returns the factory of the `kernel` receiver. One receiver
// instance per component ID serves both the logs and the metrics pipeline;
// the instances are owned by this factory value, not by package state.
func NewFactory() receiver.Factory {
	f := &factory{instances: map[component.ID]*kernelReceiver{}}
	return receiver.NewFactory(
		metadata.Type,
		func() component.Config { return createDefaultConfig() },
		receiver.WithLogs(f.createLogs, metadata.LogsStability),
		receiver.WithMetrics(f.createMetrics, metadata.MetricsStability),
	)
}

type factory struct {
	mu        sync.Mutex
	instances map[component.ID]*kernelReceiver
}

func (f *factory) createLogs(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Logs) (receiver.Logs, error) {
	r, err := f.instance(set, cfg.(*Config))
	if err != nil {
		return nil, err
	}
	r.logs = next
	return r, nil
}

func (f *factory) createMetrics(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Metrics) (receiver.Metrics, error) {
	r, err := f.instance(set, cfg.(*Config))
	if err != nil {
		return nil, err
	}
	r.metrics = next
	return r, nil
}

// instance returns the receiver for set.ID, creating it on first use. It is
// forgotten when it shuts down, so a collector reload gets a fresh one.
func (f *factory) instance(set receiver.Settings, cfg *Config) (*kernelReceiver, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r, ok := f.instances[set.ID]; ok {
		return r, nil
	}
	r, err := newKernelReceiver(set, cfg)
	if err != nil {
		return nil, err
	}
	id := set.ID
	r.forget = func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.instances[id] == r {
			delete(f.instances, id)
		}
	}
	f.instances[id] = r
	return r, nil
}
