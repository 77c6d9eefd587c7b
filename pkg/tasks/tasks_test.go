package tasks

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/procfs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStateField(t *testing.T) {
	dir := t.TempDir()
	var buf [512]byte
	for content, want := range map[string]byte{
		"1234 (bash) S 1 1234 1234 0 -1 4194560\n":       'S',
		"77 (a) b) c) D 2 0 0 0 -1 69238880 0 0\n":       'D', // the name may hold ") "
		"5 (kworker/0:1-events) I 2 0 0 0 -1 69238880\n": 'I',
		"garbage": 0,
	} {
		p := filepath.Join(dir, "stat")
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
		assert.Equal(t, want, state(p, buf[:]), content)
	}
	assert.Equal(t, byte(0), state(filepath.Join(dir, "missing"), buf[:]))
}

// The count agrees with the full listing on the running host (both are
// snapshots; on an idle host both are usually 0).
func TestCountMatchesTheListing(t *testing.T) {
	fs, err := procfs.NewDefaultFS()
	require.NoError(t, err)
	threads, err := Uninterruptible(fs)
	require.NoError(t, err)
	n, err := CountUninterruptible()
	require.NoError(t, err)
	assert.InDelta(t, len(threads), n, 3)
	for _, th := range threads {
		assert.Equal(t, "D", th.Stat.State)
	}
}

func BenchmarkCountUninterruptible(b *testing.B) {
	for b.Loop() {
		if _, err := CountUninterruptible(); err != nil {
			b.Fatal(err)
		}
	}
}
