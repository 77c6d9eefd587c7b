package k8s

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/testenv"
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
	return testenv.DistributionBinary(t, root)
}
