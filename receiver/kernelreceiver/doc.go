// Package kernelreceiver is the OpenTelemetry Collector face of
// otelcol-kernel: the `kernel` receiver. It wires the collector framework
// (pkg/tracing) to a logs pipeline (events) and a metrics pipeline
// (metrics), one receiver instance behind both.
//
// The collectors themselves live in collectors/{events,metrics}/<name>
// and register from init(); this package only imports them.
package kernelreceiver

//go:generate go -C ../../tools tool mdatagen ${PWD}/metadata.yaml
