// Package container attributes kernel data to containers and describes a
// container as OpenTelemetry Resource attributes.
package container

import "go.opentelemetry.io/collector/pdata/pcommon"

// Resource attributes, as the semantic conventions name them.
const (
	// AttrContainerID is the runtime's bare container id, without a
	// "containerd://" or "docker://" prefix: what the k8s_attributes
	// processor matches against a pod's containerStatuses.
	AttrContainerID = "container.id"
	// AttrContainerRuntime names the runtime (docker, containerd, cri-o,
	// podman). The conventions renamed container.runtime to this.
	AttrContainerRuntime = "container.runtime.name"
	// AttrPodUID is the Kubernetes pod uid, which k8s_attributes can
	// associate on directly.
	AttrPodUID = "k8s.pod.uid"
)

// Describer says what is known of a container id: the storage and metric
// builders ask it for the Resource of each container.
type Describer interface {
	Describe(id string) Container
}

// PutResource writes the Resource attributes of c into attrs. The zero
// Container is the host: it adds nothing, leaving host identity to the
// resource_detection processor.
func PutResource(attrs pcommon.Map, c Container) {
	if c.ID == "" {
		return
	}
	attrs.PutStr(AttrContainerID, c.ID)
	if c.Runtime != "" {
		attrs.PutStr(AttrContainerRuntime, c.Runtime)
	}
	if c.PodUID != "" {
		attrs.PutStr(AttrPodUID, c.PodUID)
	}
}

// describe is d's description of id, or the bare id when d is nil.
func Describe(d Describer, id string) Container {
	if d == nil || id == "" {
		return Container{ID: id}
	}
	return d.Describe(id)
}
