// Package fuzzseed adds seed inputs to fuzz targets and writes them, on
// request, as the committed seed corpus. It imports nothing of this module,
// so any package's internal tests can use it.
package fuzzseed

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// WriteEnv, set to 1, makes FuzzSeed write each seed into testdata/fuzz.
const WriteEnv = "KPS_WRITE_FUZZ_SEEDS"

// Add is f.Add, and with WriteEnv=1 also writes the seed to the
// corpus directory of the running fuzz target (testdata/fuzz/<FuzzName>/),
// so that the committed corpus comes from the same values the target's
// code names and can be regenerated after a change of layout:
//
//	KPS_WRITE_FUZZ_SEEDS=1 go test -run '^Fuzz' ./...
//
// Arguments may be []byte, string, bool, int, int64, uint8, uint16, uint32
// or uint64.
func Add(f *testing.F, args ...any) {
	f.Helper()
	f.Add(args...)
	if os.Getenv(WriteEnv) != "1" {
		return
	}
	var sb strings.Builder
	sb.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch v := a.(type) {
		case []byte:
			fmt.Fprintf(&sb, "[]byte(%q)\n", v)
		case string:
			fmt.Fprintf(&sb, "string(%q)\n", v)
		default:
			fmt.Fprintf(&sb, "%T(%v)\n", v, v)
		}
	}
	sum := sha256.Sum256([]byte(sb.String()))
	dir := filepath.Join("testdata", "fuzz", f.Name())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "seed-"+hex.EncodeToString(sum[:8])), []byte(sb.String()), 0o644); err != nil {
		f.Fatal(err)
	}
}
