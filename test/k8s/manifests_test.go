package k8s

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
)

// manifestDir holds the example deployment this package keeps honest.
const manifestDir = "../../deploy/kubernetes"

// manifests are the objects of every YAML file in manifestDir.
type manifests struct {
	objects []manifest
}

type manifest struct {
	file       string
	kind, name string
	namespace  string
	raw        map[string]any
}

func loadManifests(t *testing.T) *manifests {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(manifestDir, "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, files, "no manifests in %s", manifestDir)
	m := &manifests{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var doc map[string]any
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err, f)
			if doc == nil {
				continue
			}
			meta, _ := doc["metadata"].(map[string]any)
			o := manifest{file: filepath.Base(f), raw: doc}
			o.kind, _ = doc["kind"].(string)
			o.name, _ = meta["name"].(string)
			o.namespace, _ = meta["namespace"].(string)
			require.NotEmpty(t, o.kind, "%s: an object without kind", f)
			require.NotEmpty(t, o.name, "%s: a %s without name", f, o.kind)
			m.objects = append(m.objects, o)
		}
	}
	return m
}

// only returns the one object of kind and decodes it into out, a typed
// Kubernetes object (through JSON, as the API server would read it).
func (m *manifests) only(t *testing.T, kind string, out any) manifest {
	t.Helper()
	var found []manifest
	for _, o := range m.objects {
		if o.kind == kind {
			found = append(found, o)
		}
	}
	require.Len(t, found, 1, "want exactly one %s in %s", kind, manifestDir)
	b, err := json.Marshal(found[0].raw)
	require.NoError(t, err)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields() // a misspelt field would be silently dropped by the API server
	require.NoError(t, dec.Decode(out), "%s %s in %s", kind, found[0].name, found[0].file)
	return found[0]
}

func (m *manifests) daemonSet(t *testing.T) *appsv1.DaemonSet {
	ds := &appsv1.DaemonSet{}
	m.only(t, "DaemonSet", ds)
	require.Len(t, ds.Spec.Template.Spec.Containers, 1)
	return ds
}

func (m *manifests) clusterRole(t *testing.T) *rbacv1.ClusterRole {
	cr := &rbacv1.ClusterRole{}
	m.only(t, "ClusterRole", cr)
	return cr
}

// configKey is the ConfigMap key holding the collector configuration.
const configKey = "config.yaml"

// collectorConfig returns the example collector configuration, as text and parsed.
func (m *manifests) collectorConfig(t *testing.T) (string, map[string]any) {
	t.Helper()
	cm := &corev1.ConfigMap{}
	m.only(t, "ConfigMap", cm)
	text, ok := cm.Data[configKey]
	require.True(t, ok, "ConfigMap %s has no %s", cm.Name, configKey)
	var parsed map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(text), &parsed))
	return text, parsed
}

// k8sAttributesConfig returns the k8s_attributes section of the example.
func (m *manifests) k8sAttributesConfig(t *testing.T) map[string]any {
	t.Helper()
	_, cfg := m.collectorConfig(t)
	processors, _ := cfg["processors"].(map[string]any)
	section, ok := processors["k8s_attributes"].(map[string]any)
	require.True(t, ok, "the example config has no processors::k8s_attributes section")
	return section
}

// Stand-ins for the downward-API values the kubelet would put in the
// DaemonSet's environment.
var fieldRefValues = map[string]string{
	"spec.nodeName": nodeName,
	"status.podIP":  "127.0.0.1",
}

// agentEnv returns the environment the DaemonSet gives the collector, as
// NAME=value, with downward-API fields filled in from fieldRefValues and
// $(NAME) references expanded as the kubelet does.
func (m *manifests) agentEnv(t *testing.T) map[string]string {
	t.Helper()
	c := m.daemonSet(t).Spec.Template.Spec.Containers[0]
	env := map[string]string{}
	ref := regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = ref.ReplaceAllStringFunc(e.Value, func(s string) string {
				if v, ok := env[s[2:len(s)-1]]; ok {
					return v
				}
				return s // the kubelet leaves unknown references as they are
			})
		case e.ValueFrom.FieldRef != nil:
			v, ok := fieldRefValues[e.ValueFrom.FieldRef.FieldPath]
			require.True(t, ok, "env %s: no stand-in for fieldRef %s", e.Name, e.ValueFrom.FieldRef.FieldPath)
			env[e.Name] = v
		default:
			t.Fatalf("env %s: only value and fieldRef are handled here", e.Name)
		}
	}
	return env
}

// envRefs returns the variables a collector config expands with ${env:NAME}.
func envRefs(config string) []string {
	var names []string
	for _, m := range regexp.MustCompile(`\$\{env:([A-Za-z_][A-Za-z0-9_]*)`).FindAllStringSubmatch(config, -1) {
		if !slices.Contains(names, m[1]) {
			names = append(names, m[1])
		}
	}
	return names
}

// allowedBy reports whether one of rules grants verb on resource in apiGroup.
func allowedBy(rules []rbacv1.PolicyRule, apiGroup, resource, verb string) bool {
	match := func(list []string, v string) bool {
		return slices.Contains(list, v) || slices.Contains(list, rbacv1.ResourceAll)
	}
	for _, r := range rules {
		if match(r.APIGroups, apiGroup) && match(r.Resources, resource) && match(r.Verbs, verb) {
			return true
		}
	}
	return false
}

// TestManifests checks that the pieces of the example deployment fit together.
func TestManifests(t *testing.T) {
	m := loadManifests(t)

	ns := &corev1.Namespace{}
	m.only(t, "Namespace", ns)
	for _, o := range m.objects {
		switch o.kind {
		case "Namespace", "ClusterRole", "ClusterRoleBinding":
			require.Empty(t, o.namespace, "%s %s is cluster-scoped", o.kind, o.name)
		default:
			require.Equal(t, ns.Name, o.namespace, "%s %s (%s)", o.kind, o.name, o.file)
		}
	}

	sa := &corev1.ServiceAccount{}
	m.only(t, "ServiceAccount", sa)
	cr := m.clusterRole(t)
	crb := &rbacv1.ClusterRoleBinding{}
	m.only(t, "ClusterRoleBinding", crb)
	require.Equal(t, rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: cr.Name}, crb.RoleRef)
	require.Equal(t, []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa.Name, Namespace: ns.Name}}, crb.Subjects)

	ds := m.daemonSet(t)
	pod := ds.Spec.Template.Spec
	c := pod.Containers[0]
	require.Equal(t, sa.Name, pod.ServiceAccountName)
	require.True(t, pod.HostPID, "hostPID: the collectors read every task's /proc entries")
	require.NotNil(t, c.SecurityContext)
	require.NotNil(t, c.SecurityContext.Privileged)
	require.True(t, *c.SecurityContext.Privileged, "privileged: BPF, tracefs, netlink")

	// The ConfigMap is mounted where --config points.
	cm := &corev1.ConfigMap{}
	m.only(t, "ConfigMap", cm)
	var configPath string
	for _, v := range pod.Volumes {
		if v.ConfigMap == nil || v.ConfigMap.Name != cm.Name {
			continue
		}
		for _, vm := range c.VolumeMounts {
			if vm.Name == v.Name {
				configPath = filepath.Join(vm.MountPath, configKey)
			}
		}
	}
	require.NotEmpty(t, configPath, "ConfigMap %s is not mounted", cm.Name)
	require.Contains(t, append(c.Command, c.Args...), "--config="+configPath)

	// The node's kernel-facing filesystems, each mounted at its own path.
	hostPaths := map[string]string{}
	for _, v := range pod.Volumes {
		if v.HostPath != nil {
			hostPaths[v.Name] = v.HostPath.Path
		}
	}
	mounted := map[string]bool{}
	for _, vm := range c.VolumeMounts {
		if p, ok := hostPaths[vm.Name]; ok {
			require.Equal(t, p, vm.MountPath, "hostPath %s must be mounted at the same path: the receiver reads fixed paths", p)
			mounted[p] = true
		}
	}
	for _, p := range []string{"/sys", "/sys/fs/cgroup", "/sys/kernel/tracing", "/sys/kernel/debug"} {
		require.True(t, mounted[p], "%s is not mounted from the node", p)
	}

	// The node filter's variable comes from the downward API.
	filter, _ := m.k8sAttributesConfig(t)["filter"].(map[string]any)
	envVar, _ := filter["node_from_env_var"].(string)
	require.NotEmpty(t, envVar, "k8s_attributes has no filter::node_from_env_var")
	var fromNode bool
	for _, e := range c.Env {
		if e.Name == envVar && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName" {
			fromNode = true
		}
	}
	require.True(t, fromNode, "env %s must come from fieldRef spec.nodeName", envVar)

	// Pod uid first, container.id second, and a container-level field
	// extracted so that container.id can match.
	k8s := m.k8sAttributesConfig(t)
	var assoc [][]string
	for _, a := range k8s["pod_association"].([]any) {
		var names []string
		for _, s := range a.(map[string]any)["sources"].([]any) {
			src := s.(map[string]any)
			require.Equal(t, "resource_attribute", src["from"])
			names = append(names, src["name"].(string))
		}
		assoc = append(assoc, names)
	}
	require.Equal(t, [][]string{{"k8s.pod.uid"}, {"container.id"}}, assoc)
	extract, _ := k8s["extract"].(map[string]any)
	var metadata []string
	for _, f := range extract["metadata"].([]any) {
		metadata = append(metadata, f.(string))
	}
	require.True(t, slices.ContainsFunc(metadata, func(f string) bool {
		return strings.HasPrefix(f, "k8s.container.") || strings.HasPrefix(f, "container.")
	}), "extract::metadata needs a container-level field for container.id to match: %v", metadata)
}
