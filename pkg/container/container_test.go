package container

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

const (
	id    = "3f4a1c9e2b7d8f6a5c4e3d2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a29"
	id2   = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	uid   = "8c1e6f0a-3b2d-4e5f-9a7b-1c2d3e4f5a6b"
	uid_  = "8c1e6f0a_3b2d_4e5f_9a7b_1c2d3e4f5a6b" // as the systemd driver writes it
	rless = "/user.slice/user-1000.slice/user@1000.service/user.slice/"
)

// pathCases are the cgroup paths every runtime makes, by cgroup driver. The
// paths are the same in the v1 hierarchies and in cgroup2; the fixture
// trees in resolver_test.go lay them out per cgroup version.
var pathCases = []struct {
	name, path string
	want       Container
}{
	// docker
	{"docker cgroupfs", "/docker/" + id, Container{ID: id, Runtime: RuntimeDocker}},
	{"docker systemd", "/system.slice/docker-" + id + ".scope", Container{ID: id, Runtime: RuntimeDocker}},
	{"docker rootless systemd", rless + "docker-" + id + ".scope", Container{ID: id, Runtime: RuntimeDocker}},
	{"docker in docker: the inner container", "/docker/" + id + "/docker/" + id2, Container{ID: id2, Runtime: RuntimeDocker}},
	{"docker sub-cgroup made inside the container", "/docker/" + id + "/init.scope", Container{ID: id, Runtime: RuntimeDocker}},
	{"docker --cgroup-parent", "/ci-jobs/" + id, Container{ID: id}},
	// containerd, Kubernetes (CRI plugin)
	{"containerd CRI cgroupfs burstable", "/kubepods/burstable/pod" + uid + "/" + id, Container{ID: id, PodUID: uid}},
	{"containerd CRI cgroupfs guaranteed", "/kubepods/pod" + uid + "/" + id, Container{ID: id, PodUID: uid}},
	{"containerd CRI systemd besteffort", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uid_ + ".slice/cri-containerd-" + id + ".scope",
		Container{ID: id, Runtime: RuntimeContainerd, PodUID: uid}},
	{"containerd CRI systemd guaranteed", "/kubepods.slice/kubepods-pod" + uid_ + ".slice/cri-containerd-" + id + ".scope",
		Container{ID: id, Runtime: RuntimeContainerd, PodUID: uid}},
	{"kind node (kubelet cgroup root)", "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod" + uid_ + ".slice/cri-containerd-" + id + ".scope",
		Container{ID: id, Runtime: RuntimeContainerd, PodUID: uid}},
	{"seen from a cgroup namespace", "/../../kubepods-besteffort-pod" + uid_ + ".slice/cri-containerd-" + id + ".scope",
		Container{ID: id, Runtime: RuntimeContainerd, PodUID: uid}},
	// containerd, plain
	{"containerd ctr (default namespace)", "/default/redis-1", Container{ID: "redis-1", Runtime: RuntimeContainerd}},
	{"containerd ctr, hex id", "/default/" + id, Container{ID: id, Runtime: RuntimeContainerd}},
	{"containerd ctr, sub-cgroup", "/default/redis-1/worker", Container{ID: "redis-1", Runtime: RuntimeContainerd}},
	{"nerdctl systemd", "/system.slice/nerdctl-" + id + ".scope", Container{ID: id, Runtime: RuntimeContainerd}},
	// cri-o
	{"cri-o cgroupfs", "/kubepods/besteffort/pod" + uid + "/crio-" + id, Container{ID: id, Runtime: RuntimeCRIO, PodUID: uid}},
	{"cri-o systemd", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uid_ + ".slice/crio-" + id + ".scope",
		Container{ID: id, Runtime: RuntimeCRIO, PodUID: uid}},
	{"cri-o systemd, container running systemd", "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uid_ + ".slice/crio-" + id + ".scope/container",
		Container{ID: id, Runtime: RuntimeCRIO, PodUID: uid}},
	// podman
	{"podman cgroupfs", "/libpod_parent/libpod-" + id, Container{ID: id, Runtime: RuntimePodman}},
	{"podman systemd", "/machine.slice/libpod-" + id + ".scope", Container{ID: id, Runtime: RuntimePodman}},
	{"podman systemd, payload sub-cgroup", "/machine.slice/libpod-" + id + ".scope/container", Container{ID: id, Runtime: RuntimePodman}},
	{"podman rootless", rless + "libpod-" + id + ".scope", Container{ID: id, Runtime: RuntimePodman}},
	// not containers
	{"root", "/", Container{}},
	{"systemd service", "/system.slice/sshd.service", Container{}},
	{"login session", "/user.slice/user-1000.slice/session-3.scope", Container{}},
	{"init", "/init.scope", Container{}},
	{"the docker daemon", "/system.slice/docker.service", Container{}},
	{"containerd's shim", "/system.slice/containerd.service", Container{}},
	{"a pod's own cgroup", "/kubepods/burstable/pod" + uid, Container{}},
	{"the kubepods slice", "/kubepods.slice/kubepods-burstable.slice", Container{}},
	{"cri-o conmon", "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + uid_ + ".slice/crio-conmon-" + id + ".scope", Container{}},
	{"podman conmon", "/machine.slice/libpod-conmon-" + id + ".scope", Container{}},
	{"a scope that only looks like a container", "/system.slice/docker-compose.scope", Container{}},
	{"short hex is not an id", "/docker/3f4a1c9e2b7d", Container{}},
	{"uppercase hex is not an id", "/docker/" + strings.ToUpper(id), Container{}},
	{"a directory named like a containerd namespace, not at the top", "/system.slice/default/x", Container{}},
}

func TestParse(t *testing.T) {
	for _, tc := range pathCases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, PathParser{}.Parse(tc.path), tc.path)
		})
	}
}

func TestParserSettingsSettleWhatThePathCannot(t *testing.T) {
	p := PathParser{KubernetesRuntime: RuntimeContainerd, ContainerdNamespaces: []string{"builds"}}
	assert.Equal(t, Container{ID: id, Runtime: RuntimeContainerd, PodUID: uid}, p.Parse("/kubepods/burstable/pod"+uid+"/"+id),
		"a bare id under a pod takes the configured runtime")
	assert.Equal(t, Container{ID: id, Runtime: RuntimeCRIO, PodUID: uid}, p.Parse("/kubepods/burstable/pod"+uid+"/crio-"+id),
		"a path that names its runtime keeps it")
	assert.Equal(t, Container{ID: id}, p.Parse("/ci-jobs/"+id), "outside a pod the setting does not apply")
	assert.Equal(t, Container{ID: "job-7", Runtime: RuntimeContainerd}, p.Parse("/builds/job-7"))
	assert.Equal(t, Container{}, p.Parse("/default/redis-1"), "only the configured namespaces")
}
