// Package container attributes kernel data to containers and describes a
// container as OpenTelemetry Resource attributes.
package container

import (
	"sync"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"golang.org/x/sys/unix"
)

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
	// AttrOSType is "linux" on every Resource.
	AttrOSType = "os.type"
	// AttrOSVersion is the running kernel's release (uname -r), on every
	// Resource: kernel data is read against it, and dashboards split by it
	// when a fleet runs several kernels.
	AttrOSVersion = "os.version"
)

// KernelRelease is the running kernel's release, as uname -r prints it
// ("" if uname fails). It cannot change while the process runs.
var KernelRelease = sync.OnceValue(func() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
})

// Describer says what is known of a container id: the storage and metric
// builders ask it for the Resource of each container.
type Describer interface {
	Describe(id string) Container
}

// PutResource writes the Resource attributes of c into attrs: the kernel
// (os.type, os.version) on every Resource, and for a container its id,
// runtime and pod. The zero Container is the host, whose other identity
// (host.name, …) is left to the resource_detection processor.
func PutResource(attrs pcommon.Map, c Container) {
	attrs.PutStr(AttrOSType, "linux")
	if release := KernelRelease(); release != "" {
		attrs.PutStr(AttrOSVersion, release)
	}
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
