// Package k8s tests the Kubernetes side of otelcol-kernel: that pod
// metadata reaches the kernel receiver's records through the k8s_attributes
// processor, and that the example deployment in deploy/kubernetes is valid.
// It is a module of its own so that the receiver's go.mod does not pull in
// client-go.
package k8s

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/processor/k8sattributesprocessor"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/yamlprovider"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/processor"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/service/telemetry/otelconftelemetry"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/storage"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/testenv"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/tracing"
	"github.com/otelcol-kernel/otelcol-kernel/receiver/kernelreceiver"
)

// The probe: a test collector that saves one event per configured
// container id, standing in for a kernel event in that container.
const (
	probeName  = "k8sprobe"       // the collector
	probeEvent = "k8sprobe.event" // what it saves: EventName kernel.k8sprobe.event
)

type probeConfig struct {
	Events []probeSpec `mapstructure:"events"`
}

type probeSpec struct {
	Case        string `mapstructure:"case"`
	ContainerID string `mapstructure:"container_id"`
}

type probeEventData struct {
	Case string `json:"case" doc:"the test case that saved the event"`
}

type probe struct {
	cfg     *probeConfig
	storage *storage.Storage
	logger  *zap.Logger
}

func init() {
	tracing.RegisterEventTracing(probeName, newProbe,
		tracing.WithDescription("Test collector: saves one event per configured container id."),
		tracing.WithConfig(func() *probeConfig { return &probeConfig{} }),
		tracing.WithEvent(probeEvent, probeEventData{}, "an event attributed to a container, saved by the test"),
		tracing.DisabledByDefault(),
	)
}

func newProbe(s tracing.Settings) (*tracing.EventTracingAttr, error) {
	return &tracing.EventTracingAttr{
		TracingData: &probe{cfg: s.Config.(*probeConfig), storage: s.Storage, logger: s.Logger},
		Interval:    time.Minute,
		Flag:        tracing.FlagTracing,
	}, nil
}

func (p *probe) Start(ctx context.Context) error {
	for _, e := range p.cfg.Events {
		if err := p.storage.Save(probeEvent, e.ContainerID, time.Now(), &probeEventData{Case: e.Case}); err != nil {
			return err
		}
	}
	<-ctx.Done()
	return nil
}

// The cluster the stand-in API server describes.
const (
	nodeName  = "node-a"
	namespace = "shop"
)

// containerID makes a 64-hex container id, as containerd gives them.
func containerID(name string) string { return fmt.Sprintf("%x", sha256.Sum256([]byte(name))) }

var (
	webContainerID  = containerID("web")
	webSandboxID    = containerID("web sandbox") // the pause container: in no containerStatuses
	dbContainerID   = containerID("db")
	lostContainerID = containerID("in no pod")
)

// webPod runs on this node, in a Deployment's ReplicaSet.
var webPod = corev1.Pod{
	ObjectMeta: metav1.ObjectMeta{
		Name:      "web-7d4b9c6f5-x2x9q",
		Namespace: namespace,
		UID:       types.UID("0d6c1c57-5a43-4b0a-9a57-3d2f7c1e9b10"),
		Labels:    map[string]string{"app.kubernetes.io/name": "web", "pod-template-hash": "7d4b9c6f5"},
		OwnerReferences: []metav1.OwnerReference{{
			APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-7d4b9c6f5",
			UID: types.UID("c1a3e4f2-0b1d-4c5e-8f9a-7b6c5d4e3f21"), Controller: new(true),
		}},
		CreationTimestamp: metav1.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC),
	},
	Spec: corev1.PodSpec{
		NodeName:   nodeName,
		Containers: []corev1.Container{{Name: "web", Image: "registry.example/shop/web:1.4.2"}},
	},
	Status: corev1.PodStatus{
		Phase:     corev1.PodRunning,
		PodIP:     "10.244.1.17",
		StartTime: new(metav1.Date(2026, 11, 20, 8, 0, 1, 0, time.UTC)),
		ContainerStatuses: []corev1.ContainerStatus{{
			Name:        "web",
			ContainerID: "containerd://" + webContainerID,
			Image:       "registry.example/shop/web:1.4.2",
			ImageID:     "registry.example/shop/web@sha256:" + containerID("web image"),
			Ready:       true,
		}},
	},
}

// dbPod runs on another node: the node filter keeps it out of this agent's cache.
var dbPod = corev1.Pod{
	ObjectMeta: metav1.ObjectMeta{
		Name:      "db-0",
		Namespace: namespace,
		UID:       types.UID("5b0e8a1c-2f3d-4e6a-9c7b-1d2e3f4a5b6c"),
	},
	Spec: corev1.PodSpec{
		NodeName:   "node-b",
		Containers: []corev1.Container{{Name: "db", Image: "registry.example/shop/db:16"}},
	},
	Status: corev1.PodStatus{
		Phase: corev1.PodRunning,
		PodIP: "10.244.2.9",
		ContainerStatuses: []corev1.ContainerStatus{{
			Name: "db", ContainerID: "containerd://" + dbContainerID, Image: "registry.example/shop/db:16", Ready: true,
		}},
	},
}

// TestPodMetadata runs a whole collector, kernel → k8s_attributes (the
// example deployment's section, pointed at a stand-in API server) → a
// capturing exporter, and checks which records get pod metadata. It runs
// against both kinds of API server client-go meets: one that streams the
// initial pods in a watch ("watch-list", client-go's default since v0.35),
// and one that refuses that, so client-go falls back to LIST then WATCH.
func TestPodMetadata(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs Linux (the kernel receiver only runs there)")
	}
	t.Run("watch-list", func(t *testing.T) { testPodMetadata(t, true) })
	t.Run("list-then-watch", func(t *testing.T) { testPodMetadata(t, false) })
}

func testPodMetadata(t *testing.T, watchList bool) {
	m := loadManifests(t)
	api := newAPIServer(t, webPod, dbPod)
	api.watchList = watchList
	k8s := exampleK8sAttributes(t, m, api)

	events := []any{
		map[string]any{"case": "web", "container_id": webContainerID},
		map[string]any{"case": "other-node", "container_id": dbContainerID},
		map[string]any{"case": "no-pod", "container_id": lostContainerID},
	}
	sandbox := os.Geteuid() == 0
	if sandbox {
		makeSandboxCgroup(t)
		events = append(events, map[string]any{"case": "sandbox", "container_id": webSandboxID})
	} else {
		t.Log("not root: the sandbox case (association by k8s.pod.uid) needs a cgroup and is left out")
	}
	resources := probeResources(t, k8s, events)

	// No cgroup for this one: its Resource has only container.id, so the
	// second association rule matches it against containerStatuses.
	t.Run("container of a pod on this node", func(t *testing.T) {
		assert.Equal(t, map[string]any{
			"container.id":                         webContainerID,
			"k8s.pod.name":                         webPod.Name,
			"k8s.pod.uid":                          string(webPod.UID),
			"k8s.namespace.name":                   namespace,
			"k8s.node.name":                        nodeName,
			"k8s.deployment.name":                  "web",
			"k8s.container.name":                   "web",
			"container.image.name":                 "registry.example/shop/web",
			"k8s.pod.label.app.kubernetes.io/name": "web",
		}, processorAttrs(t, resources["web"]))
	})
	// The sandbox's container.id is in no containerStatuses, but its Resource
	// has the pod uid, which the first association rule matches: pod
	// metadata, and no container-level fields.
	t.Run("sandbox of a pod on this node", func(t *testing.T) {
		if !sandbox {
			t.Skip("needs root to make the sandbox's cgroup")
		}
		attrs := processorAttrs(t, resources["sandbox"])
		delete(attrs, "container.runtime.name") // the receiver's to say (kubernetes_runtime), not the processor's
		assert.Equal(t, map[string]any{
			"container.id":                         webSandboxID,
			"k8s.pod.name":                         webPod.Name,
			"k8s.pod.uid":                          string(webPod.UID),
			"k8s.namespace.name":                   namespace,
			"k8s.node.name":                        nodeName,
			"k8s.deployment.name":                  "web",
			"k8s.pod.label.app.kubernetes.io/name": "web",
		}, attrs)
	})
	// The same assertions fail when the container is not in the cache.
	t.Run("container in no pod", func(t *testing.T) {
		assert.Equal(t, map[string]any{"container.id": lostContainerID}, processorAttrs(t, resources["no-pod"]))
	})
	t.Run("container of a pod on another node", func(t *testing.T) {
		assert.Equal(t, map[string]any{"container.id": dbContainerID}, processorAttrs(t, resources["other-node"]))
	})

	// What the processor asked the API server: only this node's pods, and
	// nothing the example's ClusterRole does not grant.
	t.Run("requests", func(t *testing.T) {
		rules := m.clusterRole(t).Rules
		verbs := map[string]bool{}
		for _, r := range api.Requests() {
			t.Logf("API request: %s", r)
			assert.True(t, allowedBy(rules, r.APIGroup, r.Resource, r.Verb),
				"%s (%s %q %s) is not granted by the ClusterRole in %s", r, r.Verb, r.APIGroup, r.Resource, manifestDir)
			if r.Resource == "pods" {
				verbs[r.Verb] = true
				assert.Equal(t, "spec.nodeName="+nodeName, r.Query.Get("fieldSelector"), "%s", r)
			}
		}
		want := map[string]bool{"watch": true}
		if !watchList {
			want["list"] = true
		}
		assert.Equal(t, want, verbs, "verbs of the pod requests")
	})
}

// exampleK8sAttributes returns the k8s_attributes section of the example
// deployment, connected to the stand-in API server, and sets the node
// filter's variable.
func exampleK8sAttributes(t *testing.T, m *manifests, api *apiServer) map[string]any {
	t.Setenv("KUBECONFIG", api.kubeconfig(t))
	t.Setenv("K8S_NODE_NAME", nodeName)
	k8s := m.k8sAttributesConfig(t)
	k8s["auth_type"] = "kubeConfig" // the example uses the pod's service account
	k8s["wait_for_metadata"] = true // so that no record is processed before the pod cache is filled
	k8s["wait_for_metadata_timeout"] = "20s"
	return k8s
}

// makeSandboxCgroup makes a cgroup for the web pod's sandbox where the
// kubelet would (<prefix>/kubepods/burstable/pod<uid>/<id>), so that the
// receiver learns its pod uid on its first walk of the hierarchies, as it
// would for a real pod. It needs root.
func makeSandboxCgroup(t *testing.T) {
	testenv.NewContainerCgroups(t, "kubepods/burstable/pod"+string(webPod.UID)+"/"+webSandboxID)
}

// TestContainerIDFirst is the counter-example to the example's association
// order: with container.id first, the sandbox's Resource (which has both
// attributes) is looked up by its container id only, finds nothing, and
// gets no pod metadata although its pod uid is right there.
func TestContainerIDFirst(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs Linux (the kernel receiver only runs there)")
	}
	testenv.RequireRoot(t, "making the sandbox's cgroup")
	m := loadManifests(t)
	api := newAPIServer(t, webPod)
	k8s := exampleK8sAttributes(t, m, api)
	assoc := k8s["pod_association"].([]any)
	k8s["pod_association"] = []any{assoc[1], assoc[0]}
	makeSandboxCgroup(t)
	resources := probeResources(t, k8s, []any{
		map[string]any{"case": "web", "container_id": webContainerID},
		map[string]any{"case": "sandbox", "container_id": webSandboxID},
	})
	web, _ := resources["web"].Get("k8s.pod.name")
	assert.Equal(t, webPod.Name, web.AsString(), "the web container still matches by container.id")
	sandbox := resources["sandbox"].AsRaw()
	assert.Equal(t, string(webPod.UID), sandbox["k8s.pod.uid"], "the receiver set the pod uid")
	assert.NotContains(t, sandbox, "k8s.pod.name", "container.id first: the sandbox is looked up by its id only")
}

// probeResources runs a collector, kernel (the probe saving events) →
// k8s_attributes with config k8s → a capturing exporter, and returns the
// Resource each event arrived on, by its case.
func probeResources(t *testing.T, k8s map[string]any, events []any) map[string]pcommon.Map {
	t.Helper()
	kernel := map[string]any{
		"event_queue": map[string]any{"flush_interval": "50ms"},
		probeName:     map[string]any{"events": events},
	}
	for _, name := range tracing.Names() {
		if name != probeName {
			kernel[name] = map[string]any{"enabled": false} // no real kernel collector
		}
	}
	cfg := map[string]any{
		"receivers":  map[string]any{"kernel": kernel},
		"processors": map[string]any{"k8s_attributes": k8s},
		"exporters":  map[string]any{"capture": nil},
		"service": map[string]any{
			"telemetry": map[string]any{"metrics": map[string]any{"level": "none"}},
			"pipelines": map[string]any{"logs": map[string]any{
				"receivers": []string{"kernel"}, "processors": []string{"k8s_attributes"}, "exporters": []string{"capture"},
			}},
		},
	}
	sink := &consumertest.LogsSink{}
	runCollector(t, cfg, sink)

	// resources by test case: the Resource each probe event arrived on.
	var resources map[string]pcommon.Map
	require.Eventually(t, func() bool {
		resources = map[string]pcommon.Map{}
		for _, ld := range sink.AllLogs() {
			for _, rl := range ld.ResourceLogs().All() {
				for _, sl := range rl.ScopeLogs().All() {
					for _, lr := range sl.LogRecords().All() {
						if lr.EventName() != storage.EventNamePrefix+probeEvent {
							continue
						}
						if c, ok := lr.Attributes().Get("case"); ok {
							resources[c.Str()] = rl.Resource().Attributes()
						}
					}
				}
			}
		}
		return len(resources) == len(events)
	}, 30*time.Second, 50*time.Millisecond, "want one %s record per case", storage.EventNamePrefix+probeEvent)
	for c, attrs := range resources {
		t.Logf("%s: %v", c, attrs.AsRaw())
	}
	return resources
}

// runCollector runs a collector with the kernel receiver, the k8s_attributes
// processor and a capturing exporter until the test ends.
func runCollector(t *testing.T, cfg map[string]any, sink *consumertest.LogsSink) {
	t.Helper()
	text, err := yaml.Marshal(cfg)
	require.NoError(t, err)
	logs := &testLog{t: t}
	col, err := otelcol.NewCollector(otelcol.CollectorSettings{
		BuildInfo:               component.NewDefaultBuildInfo(),
		DisableGracefulShutdown: true,
		Factories: func() (otelcol.Factories, error) {
			receivers, err := otelcol.MakeFactoryMap[receiver.Factory](kernelreceiver.NewFactory())
			if err != nil {
				return otelcol.Factories{}, err
			}
			processors, err := otelcol.MakeFactoryMap[processor.Factory](k8sattributesprocessor.NewFactory())
			if err != nil {
				return otelcol.Factories{}, err
			}
			exporters, err := otelcol.MakeFactoryMap[exporter.Factory](captureFactory(sink))
			if err != nil {
				return otelcol.Factories{}, err
			}
			return otelcol.Factories{
				Receivers: receivers, Processors: processors, Exporters: exporters,
				Telemetry: otelconftelemetry.NewFactory(),
			}, nil
		},
		ConfigProviderSettings: otelcol.ConfigProviderSettings{ResolverSettings: confmap.ResolverSettings{
			URIs:              []string{"yaml:" + string(text)},
			ProviderFactories: []confmap.ProviderFactory{yamlprovider.NewFactory()},
		}},
		// The collector's log goes to the test's log (shown on failure or with -v).
		LoggingOptions: []zap.Option{zap.WrapCore(func(zapcore.Core) zapcore.Core {
			return zapcore.NewCore(zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()), zapcore.AddSync(logs), zapcore.DebugLevel)
		})},
	})
	require.NoError(t, err)

	done := make(chan error, 1)
	go func() { done <- col.Run(context.Background()) }()
	t.Cleanup(func() {
		col.Shutdown()
		select {
		case err := <-done:
			assert.NoError(t, err, "collector Run")
		case <-time.After(20 * time.Second):
			t.Error("the collector did not stop within 20s")
		}
		logs.close()
	})
	require.Eventually(t, func() bool {
		select {
		case err := <-done:
			done <- err
			require.FailNow(t, "the collector stopped while starting", "%v\nconfig:\n%s", err, text)
		default:
		}
		return col.GetState() == otelcol.StateRunning
	}, 30*time.Second, 20*time.Millisecond, "the collector did not start; config:\n%s", text)
}

// The capturing exporter.
var captureType = component.MustNewType("capture")

func captureFactory(sink *consumertest.LogsSink) exporter.Factory {
	return exporter.NewFactory(captureType,
		func() component.Config { return &struct{}{} },
		exporter.WithLogs(func(context.Context, exporter.Settings, component.Config) (exporter.Logs, error) {
			return captureExporter{LogsSink: sink}, nil
		}, component.StabilityLevelDevelopment))
}

type captureExporter struct {
	component.StartFunc
	component.ShutdownFunc
	*consumertest.LogsSink
}

// testLog writes the collector's log lines to the test log until close:
// t.Log after the test has ended panics, and stray goroutines may log late.
type testLog struct {
	t      *testing.T
	mu     sync.Mutex
	closed bool
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (l *testLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
}

// processorAttrs returns a Resource's attributes without the kernel's
// (os.type, os.version), which the receiver puts on every Resource: the
// cases compare what association and the processor made of the rest.
func processorAttrs(t *testing.T, r pcommon.Map) map[string]any {
	t.Helper()
	attrs := r.AsRaw()
	assert.Equal(t, "linux", attrs["os.type"], "every Resource names the kernel")
	assert.NotEmpty(t, attrs["os.version"], "every Resource names the kernel release")
	delete(attrs, "os.type")
	delete(attrs, "os.version")
	return attrs
}
