package container

import (
	"strings"
)

// Runtimes, as container.runtime.name reports them.
const (
	RuntimeDocker     = "docker"
	RuntimeContainerd = "containerd"
	RuntimeCRIO       = "cri-o"
	RuntimePodman     = "podman"
)

// Container is what the cgroup path of a process says about it.
type Container struct {
	// ID is the runtime's bare container id (no "containerd://" prefix).
	ID string
	// Runtime is the runtime that made the cgroup, "" when the path does
	// not say (a bare id under a Kubernetes pod with the cgroupfs driver
	// and no Options.KubernetesRuntime).
	Runtime string
	// PodUID is the Kubernetes pod's uid when the path is under kubepods.
	PodUID string
}

// IsZero says the path named no container: a host process.
func (c Container) IsZero() bool { return c.ID == "" }

// PathParser maps cgroup paths to containers. The zero value knows every
// runtime's naming; the fields settle what a path alone cannot.
type PathParser struct {
	// KubernetesRuntime is the runtime reported for a bare container id
	// under a pod cgroup (the cgroupfs driver names containerd's and
	// cri-dockerd's containers the same way). Empty leaves it unknown.
	KubernetesRuntime string
	// ContainerdNamespaces are the containerd namespaces whose plain
	// (non-Kubernetes) containers live at /<namespace>/<id>, as `ctr run`
	// and nerdctl with the cgroupfs driver make them. nil means "default".
	ContainerdNamespaces []string
}

// Parse returns the container whose cgroup path is path (hierarchy
// relative, with a leading slash, as in /proc/<pid>/cgroup), or the zero
// Container for a host cgroup.
//
// Runtimes name a container's cgroup after its id; processes in the
// container may make sub-cgroups of their own (systemd in a container,
// podman's "container" leaf, docker in docker), so the components are read
// from the leaf up and the nearest container wins. The path shapes, by
// runtime and cgroup driver:
//
//	docker      cgroupfs  /docker/<id>
//	            systemd   /system.slice/docker-<id>.scope
//	containerd  CRI, cgroupfs  /kubepods/<qos>/pod<uid>/<id>
//	            CRI, systemd   /kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid>.slice/cri-containerd-<id>.scope
//	            plain (ctr, nerdctl) cgroupfs  /<namespace>/<id>; nerdctl systemd  /system.slice/nerdctl-<id>.scope
//	cri-o       cgroupfs  /kubepods/<qos>/pod<uid>/crio-<id>; systemd  …/crio-<id>.scope
//	podman      cgroupfs  /libpod_parent/libpod-<id>; systemd  /machine.slice/libpod-<id>.scope
//	            (rootless under /user.slice/user-<uid>.slice/user@<uid>.service/…)
//
// The runtimes' monitor processes (crio-conmon-<id>, libpod-conmon-<id>)
// are not the container and resolve to none.
func (p PathParser) Parse(path string) Container {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	var c Container
	for i := len(parts) - 1; i >= 0 && c.ID == ""; i-- {
		parent := ""
		if i > 0 {
			parent = parts[i-1]
		}
		c.ID, c.Runtime = p.component(parts[i], parent, i)
	}
	if c.ID == "" {
		return Container{}
	}
	for i := len(parts) - 1; i >= 0; i-- {
		if uid := podUID(parts[i]); uid != "" {
			c.PodUID = uid
			if c.Runtime == "" && isHexID(c.ID) {
				c.Runtime = p.KubernetesRuntime
			}
			break
		}
	}
	return c
}

// scopePrefixes are the systemd driver's unit names, <prefix><id>.scope,
// and the cgroupfs names of the runtimes that prefix theirs too. Conmon
// comes before its runtime's prefix, which it extends.
var scopePrefixes = []struct{ prefix, runtime string }{
	{"cri-containerd-", RuntimeContainerd},
	{"crio-conmon-", ""},
	{"crio-", RuntimeCRIO},
	{"libpod-conmon-", ""},
	{"libpod-", RuntimePodman},
	{"docker-", RuntimeDocker},
	{"nerdctl-", RuntimeContainerd},
}

// component says whether one path component, at depth (0 = first below the
// root) under parent, is a container's cgroup.
func (p PathParser) component(name, parent string, depth int) (id, runtime string) {
	base := strings.TrimSuffix(name, ".scope")
	for _, s := range scopePrefixes {
		if rest, ok := strings.CutPrefix(base, s.prefix); ok {
			if s.runtime == "" || !isHexID(rest) {
				return "", "" // a monitor, or a unit that only looks like one
			}
			return rest, s.runtime
		}
	}
	if base != name {
		return "", "" // some other systemd scope
	}
	if isHexID(name) {
		switch {
		case parent == "docker":
			return name, RuntimeDocker
		case parent == "libpod_parent":
			return name, RuntimePodman
		case podUID(parent) != "":
			return name, "" // Parse settles the runtime from KubernetesRuntime
		case depth == 1 && p.isContainerdNamespace(parent):
			return name, RuntimeContainerd
		}
		// A 64-hex directory anywhere else is a container under a custom
		// parent (docker --cgroup-parent, CI runners); the runtime is not said.
		return name, ""
	}
	if depth == 1 && p.isContainerdNamespace(parent) && isPlainID(name) {
		return name, RuntimeContainerd
	}
	return "", ""
}

func (p PathParser) isContainerdNamespace(name string) bool {
	if p.ContainerdNamespaces == nil {
		return name == "default"
	}
	for _, ns := range p.ContainerdNamespaces {
		if ns == name {
			return true
		}
	}
	return false
}

// podUID returns the pod uid a kubepods component names: pod<uid> with the
// cgroupfs driver, kubepods[-<qos>]-pod<uid with _ for ->.slice with systemd.
func podUID(name string) string {
	var uid string
	if rest, ok := strings.CutPrefix(name, "pod"); ok {
		uid = rest
	} else if strings.Contains(name, "kubepods") && strings.HasSuffix(name, ".slice") {
		// kubepods-burstable-pod<uid>.slice; kind and other nested kubelets
		// prefix their cgroup root: kubelet-kubepods-…-pod<uid>.slice.
		i := strings.LastIndex(name, "-pod")
		if i < 0 {
			return ""
		}
		uid = strings.ReplaceAll(strings.TrimSuffix(name[i+len("-pod"):], ".slice"), "_", "-")
	}
	if !isUID(uid) {
		return ""
	}
	return uid
}

// isUID says s is a UUID as Kubernetes writes pod uids: 8-4-4-4-12 hex.
func isUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return false
			}
		default:
			if !isHex(s[i]) {
				return false
			}
		}
	}
	return true
}

// isHexID says s is a 64-digit lowercase hex id, as docker, containerd's
// CRI plugin, cri-o and podman give containers.
func isHexID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isHex(s[i]) {
			return false
		}
	}
	return true
}

func isHex(b byte) bool { return (b >= '0' && b <= '9') || (b >= 'a' && b <= 'f') }

// isPlainID says s can be a plain containerd container id: containerd
// accepts [A-Za-z0-9] followed by [A-Za-z0-9_.-], up to 76 characters.
func isPlainID(s string) bool {
	if s == "" || len(s) > 76 {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		alnum := (b >= '0' && b <= '9') || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z')
		if !alnum && (i == 0 || (b != '_' && b != '.' && b != '-')) {
			return false
		}
	}
	return true
}
