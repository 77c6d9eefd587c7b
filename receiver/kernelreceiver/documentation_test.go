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

// TestDocumentationIsCurrent fails when documentation.md no longer matches
// the collectors' declarations. Regenerate it with `make docs`.
func TestDocumentationIsCurrent(t *testing.T) {
	var buf bytes.Buffer
	require.NoError(t, tracing.WriteDocs(&buf, tracing.Registered()))
	if *updateDocs {
		require.NoError(t, os.WriteFile("documentation.md", buf.Bytes(), 0o644))
	}
	committed, err := os.ReadFile("documentation.md")
	require.NoError(t, err)
	assert.Equal(t, buf.String(), string(committed), "documentation.md is stale: run `make docs`")
}
