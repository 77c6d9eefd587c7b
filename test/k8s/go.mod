// A module of its own so that the receiver's go.mod does not pull in client-go: this test runs the kernel
// receiver behind the k8s_attributes processor against a stand-in Kubernetes API server.
module github.com/otelcol-kernel/otelcol-kernel/test/k8s

go 1.26.0

require (
	github.com/open-telemetry/opentelemetry-collector-contrib/processor/k8sattributesprocessor v1.0.0
	github.com/otelcol-kernel/otelcol-kernel v0.0.0
)

replace github.com/otelcol-kernel/otelcol-kernel => ../..
