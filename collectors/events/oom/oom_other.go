//go:build !386 && !amd64

package oom

import (
	"github.com/cilium/ebpf"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/tracing"
)

// The BPF object is built for x86 only (see gen.go): elsewhere the
// collector reports itself unsupported.
func loadBpf() (*ebpf.CollectionSpec, error) {
	return nil, tracing.NotSupported("the oom BPF object is built for x86-64 only")
}

func (c *oomCollector) handle([]byte) {}
