// Package container attributes kernel data to containers and describes a
// container as OpenTelemetry Resource attributes.
package container

import "go.opentelemetry.io/collector/pdata/pcommon"

// AttrContainerID is the semantic-convention Resource attribute that the
// k8s_attributes processor matches pods on. It holds the bare runtime id,
// without a "containerd://" or "docker://" prefix.
const AttrContainerID = "container.id"

// PutResource writes the Resource attributes of container id into attrs.
// The empty id is the host: it adds nothing, leaving host identity to the
// resource_detection processor.
func PutResource(attrs pcommon.Map, id string) {
	if id == "" {
		return
	}
	attrs.PutStr(AttrContainerID, id)
}
