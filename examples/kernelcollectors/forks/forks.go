// Package forks is an example metric collector written outside the
// otelcol-kernel module: it reports how many tasks the kernel has created
// since boot, from the "processes" line of /proc/stat.
//
// It uses only the public packages: pkg/tracing to register, pkg/metric to
// declare and return its metric.
package forks

import (
	"fmt"

	"github.com/prometheus/procfs"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/metric"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/tracing"
)

// init registers the collector: importing this package (even blank) is
// what puts it into a receiver.
func init() {
	tracing.RegisterEventTracing("forks", newForks,
		tracing.WithDescription("Tasks (processes and threads) the kernel has created since boot, from the processes line of /proc/stat."),
		tracing.WithMetrics(metric.Desc{
			Name:        "created",
			Kind:        metric.Counter,
			Unit:        "{task}",
			Description: "tasks created by fork, vfork and clone since boot (the processes line of /proc/stat)",
		}),
	)
}

type forksCollector struct {
	proc procfs.FS
}

// newForks is called once per receiver instance; it only builds the
// collector. A host without procfs cannot serve it: NotSupported keeps the
// collector inactive with that reason instead of failing the receiver.
func newForks(tracing.Settings) (*tracing.EventTracingAttr, error) {
	proc, err := procfs.NewDefaultFS()
	if err != nil {
		return nil, tracing.NotSupported("procfs: %v", err)
	}
	return &tracing.EventTracingAttr{
		TracingData: &forksCollector{proc: proc},
		Flag:        tracing.FlagMetric,
	}, nil
}

// Update is called every collection_interval.
func (c *forksCollector) Update() ([]*metric.Data, error) {
	st, err := c.proc.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading /proc/stat: %w", err)
	}
	return []*metric.Data{metric.NewCounterData("created", float64(st.ProcessCreated), "", nil)}, nil
}
