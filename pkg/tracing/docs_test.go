package tracing

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestWriteDocsOptions: a module documenting its own collectors links the
// conventions from where its file lives and names its own command.
func TestWriteDocsOptions(t *testing.T) {
	var def, custom bytes.Buffer
	require.NoError(t, WriteDocs(&def, nil))
	assert.Contains(t, def.String(), "by `make docs`; do not edit.")
	assert.Contains(t, def.String(), "[docs/conventions.md](../../docs/conventions.md)")

	require.NoError(t, WriteDocs(&custom, nil, DocsConventionsLink("https://example.com/conventions.md"), DocsGeneratedBy("`go generate`")))
	assert.Contains(t, custom.String(), "by `go generate`; do not edit.")
	assert.Contains(t, custom.String(), "[docs/conventions.md](https://example.com/conventions.md)")
	assert.NotContains(t, custom.String(), "../../docs/conventions.md")
}
