package kernelreceiver

import (
	"bytes"
	"flag"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/tracing"
)

var updateDocs = flag.Bool("update", false, "rewrite documentation.md from the registrations")

// exampleCollectors are the collectors this module adds; the built-in ones
// are documented upstream.
var exampleCollectors = []string{"execsnoop", "forks"}

// TestDocumentationIsCurrent fails when documentation.md no longer matches
// the example collectors' declarations (their config, events and metrics).
// Regenerate it with `go test ./kernelreceiver -run TestDocumentationIsCurrent -update`
// (the repository's `make generate` does).
func TestDocumentationIsCurrent(t *testing.T) {
	var regs []*tracing.Registration
	for _, name := range exampleCollectors {
		reg, ok := tracing.Lookup(name)
		require.True(t, ok, "%s is not registered: the blank import in factory.go is missing", name)
		regs = append(regs, reg)
	}
	var buf bytes.Buffer
	// The file lives three levels below the repository root (a third
	// party links the upstream document by its URL instead).
	require.NoError(t, tracing.WriteDocs(&buf, regs,
		tracing.DocsConventionsLink("../../../docs/conventions.md"),
		tracing.DocsGeneratedBy("`go test ./kernelreceiver -run TestDocumentationIsCurrent -update`")))
	if *updateDocs {
		require.NoError(t, os.WriteFile("documentation.md", buf.Bytes(), 0o644))
	}
	committed, err := os.ReadFile("documentation.md")
	require.NoError(t, err)
	assert.Equal(t, buf.String(), string(committed), "documentation.md is stale: run the test with -update")
}

// TestFactory checks that the wrapper hands out the kernel receiver and
// that both example collectors come with it, beside the built-in ones.
func TestFactory(t *testing.T) {
	assert.Equal(t, "kernel", NewFactory().Type().String())
	names := tracing.Names()
	for _, name := range append(exampleCollectors, "loadavg", "dropwatch") {
		assert.Contains(t, names, name)
	}
}
