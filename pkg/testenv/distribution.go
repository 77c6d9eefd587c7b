package testenv

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// DistributionBinary returns the otelcol-kernel binary built from the
// repository at root, running `make build` first unless the binary is newer
// than every input of the build: the main module's non-test Go files,
// go.mod, go.sum and builder-config.yaml. Nested modules (test/k8s, tools,
// the distribution's own output) are not inputs.
func DistributionBinary(t testing.TB, root string) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(root, "builder-config.yaml")); err != nil {
		t.Fatalf("not the repository root (%v)", err)
	}
	bin := filepath.Join(root, "distribution", "_build", "otelcol-kernel")
	newest, newestPath, err := newestBuildInput(root)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(bin); err == nil && st.ModTime().After(newest) {
		t.Logf("using %s: newer than every build input", bin)
		return bin
	} else if err == nil {
		t.Logf("rebuilding: %s is newer than the binary", newestPath)
	}
	RequireTool(t, "make")
	ctx := context.Background()
	if d, ok := t.(interface{ Deadline() (time.Time, bool) }); ok {
		if deadline, set := d.Deadline(); set {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, deadline.Add(-30*time.Second))
			defer cancel()
		}
	}
	start := time.Now()
	out, err := exec.CommandContext(ctx, "make", "--no-print-directory", "-C", root, "build").CombinedOutput()
	if err != nil {
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		t.Fatalf("make build: %v\n%s", err, strings.Join(lines[max(0, len(lines)-60):], "\n"))
	}
	t.Logf("make build took %s", time.Since(start).Round(time.Second))
	return bin
}

func newestBuildInput(root string) (newest time.Time, newestPath string, err error) {
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path == root {
				return nil
			}
			if strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "otelcol-kernel-data" {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir // a nested module
			}
			return nil
		}
		if !(strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go") ||
			name == "go.mod" || name == "go.sum" || name == "builder-config.yaml") {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if mt := info.ModTime(); mt.After(newest) {
			newest, newestPath = mt, path
		}
		return nil
	})
	return newest, newestPath, err
}
