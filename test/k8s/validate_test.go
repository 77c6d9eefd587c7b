package k8s

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestExampleConfigValidates runs `otelcol-kernel validate` on the collector
// configuration of deploy/kubernetes/20-configmap.yaml, in the environment
// the DaemonSet gives it, so that the example cannot rot: a renamed
// component, setting or environment variable fails here.
func TestExampleConfigValidates(t *testing.T) {
	m := loadManifests(t)
	config, _ := m.collectorConfig(t)
	env := m.agentEnv(t)
	for _, name := range envRefs(config) {
		require.Contains(t, env, name, "the config expands ${env:%s}, which the DaemonSet does not set", name)
	}

	bin := distributionBinary(t)
	path := filepath.Join(t.TempDir(), configKey)
	require.NoError(t, os.WriteFile(path, []byte(config), 0o600))
	validate := func(env map[string]string) (string, error) {
		cmd := exec.Command(bin, "validate", "--config", path)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	out, err := validate(env)
	require.NoError(t, err, "%s validate --config %s (env %v):\n%s", bin, path, env, out)

	// The same command fails when the config is wrong: k8s_attributes
	// refuses a node filter whose variable is not set.
	delete(env, "K8S_NODE_NAME")
	out, err = validate(env)
	require.Error(t, err, "validate passed without K8S_NODE_NAME:\n%s", out)
	require.Contains(t, out, "K8S_NODE_NAME")
}

// distributionBinary returns distribution/_build/otelcol-kernel, running
// `make build` first (as test/e2e does) when it is missing or older than a
// build input of the main module.
func distributionBinary(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(root, "builder-config.yaml"), "repository root not found")
	bin := filepath.Join(root, "distribution", "_build", "otelcol-kernel")

	newest, newestPath := newestBuildInput(t, root)
	if st, err := os.Stat(bin); err == nil && st.ModTime().After(newest) {
		return bin
	} else if err == nil {
		t.Logf("rebuilding: %s is newer than %s", newestPath, bin)
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("needs make to build the distribution")
	}
	ctx := context.Background()
	if d, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-30*time.Second))
		defer cancel()
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

// newestBuildInput returns the modification time and path of the newest
// non-test Go file, go.mod, go.sum or builder-config.yaml of the main
// module. Nested modules (this one, tools/, the distribution's output and
// stubs) are not inputs of the receiver and are skipped.
func newestBuildInput(t *testing.T, root string) (time.Time, string) {
	t.Helper()
	var newest time.Time
	var newestPath string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path == root {
				return nil
			}
			if strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir
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
	require.NoError(t, err)
	return newest, newestPath
}
