// Package loadavg reports the load averages and how many threads are
// runnable, in uninterruptible sleep (D state) and waiting for IO.
//
// Sources: /proc/loadavg and /proc/stat, and, when scan_threads is on, the
// state field of every /proc/<pid>/task/<tid>/stat (the kernel exports no
// host-wide count of D-state threads; the scan costs one small file read
// per thread per interval).
package loadavg

import (
	"errors"
	"fmt"

	"github.com/prometheus/procfs"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/metric"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/tasks"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/tracing"
)

// Config is the loadavg section of the receiver config.
type Config struct {
	// ScanThreads counts D-state threads by reading every thread's stat
	// file. Turn it off on hosts with very many threads to save that cost;
	// nr_uninterruptible is then not reported.
	ScanThreads bool `mapstructure:"scan_threads" doc:"count D-state threads by reading every thread's stat file (one small read per thread per interval)"`
}

func init() {
	tracing.RegisterEventTracing("loadavg", newLoadavg,
		tracing.WithDescription("Load averages and the number of runnable, uninterruptible (D state) and IO-waiting threads on the host."),
		tracing.WithConfig(func() *Config { return &Config{ScanThreads: true} }),
		tracing.WithMetrics(
			metric.Desc{Name: "load1", Kind: metric.Gauge, Unit: "{thread}", Description: "1-minute load average (runnable plus uninterruptible threads, exponentially averaged)"},
			metric.Desc{Name: "load5", Kind: metric.Gauge, Unit: "{thread}", Description: "5-minute load average"},
			metric.Desc{Name: "load15", Kind: metric.Gauge, Unit: "{thread}", Description: "15-minute load average"},
			metric.Desc{Name: "nr_running", Kind: metric.Gauge, Unit: "{thread}", Description: "threads runnable now (procs_running in /proc/stat)"},
			metric.Desc{Name: "nr_blocked", Kind: metric.Gauge, Unit: "{thread}", Description: "threads blocked waiting for IO now (procs_blocked in /proc/stat)"},
			metric.Desc{Name: "nr_uninterruptible", Kind: metric.Gauge, Unit: "{thread}", Description: "threads in uninterruptible sleep (state D) now, counted from /proc; only with scan_threads"},
		),
	)
}

type loadavgCollector struct {
	proc procfs.FS
	cfg  *Config
}

func newLoadavg(s tracing.Settings) (*tracing.EventTracingAttr, error) {
	proc, err := procfs.NewDefaultFS()
	if err != nil {
		return nil, tracing.NotSupported("procfs: %v", err)
	}
	return &tracing.EventTracingAttr{
		TracingData: &loadavgCollector{proc: proc, cfg: s.Config.(*Config)},
		Flag:        tracing.FlagMetric,
	}, nil
}

// Update reads the current values.
func (c *loadavgCollector) Update() ([]*metric.Data, error) {
	avg, err := c.proc.LoadAvg()
	if err != nil {
		return nil, fmt.Errorf("reading /proc/loadavg: %w", err)
	}
	data := []*metric.Data{
		metric.NewGaugeData("load1", avg.Load1, "", nil),
		metric.NewGaugeData("load5", avg.Load5, "", nil),
		metric.NewGaugeData("load15", avg.Load15, "", nil),
	}
	var errs []error
	if st, err := c.proc.Stat(); err != nil {
		errs = append(errs, fmt.Errorf("reading /proc/stat: %w", err))
	} else {
		data = append(data,
			metric.NewGaugeData("nr_running", float64(st.ProcessesRunning), "", nil),
			metric.NewGaugeData("nr_blocked", float64(st.ProcessesBlocked), "", nil),
		)
	}
	if c.cfg.ScanThreads {
		if n, err := tasks.CountUninterruptible(); err != nil {
			errs = append(errs, err)
		} else {
			data = append(data, metric.NewGaugeData("nr_uninterruptible", float64(n), "", nil))
		}
	}
	return data, errors.Join(errs...)
}
