package container

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkParse: one cgroup path to a container, for the deepest common
// shape (containerd's CRI plugin, systemd driver).
func BenchmarkParse(b *testing.B) {
	path := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uid_ + ".slice/cri-containerd-" + id + ".scope"
	var p PathParser
	for b.Loop() {
		if p.Parse(path).ID != id {
			b.Fatal("wrong id")
		}
	}
}

// BenchmarkResolveHit: the per-event cost once a cgroup is known: an event
// header's three ids to a container (the cgroup2 id resolves first).
func BenchmarkResolveHit(b *testing.B) {
	r := NewResolver(Layout{Unified: &Hierarchy{ID: 0, Mount: b.TempDir(), Root: "/"}}, Options{})
	for i := range 1000 {
		r.Created(0, uint64(100+i), fmt.Sprintf("/system.slice/docker-%064x.scope", i), time.Now())
	}
	ids := CgroupIDs{Unified: 600, Memory: 600, CPU: 600}
	for b.Loop() {
		if r.Resolve(ids).IsZero() {
			b.Fatal("not resolved")
		}
	}
}

// BenchmarkResolveHostTask: a host task's event, whose three ids are all
// looked up and found to be no container (the common case on a host that
// runs few containers).
func BenchmarkResolveHostTask(b *testing.B) {
	r := NewResolver(Layout{Unified: &Hierarchy{ID: 0, Mount: b.TempDir(), Root: "/"}}, Options{})
	r.Created(0, 5, "/system.slice/sshd.service", time.Now())
	ids := CgroupIDs{Unified: 5, Memory: 5, CPU: 5}
	for b.Loop() {
		if !r.Resolve(ids).IsZero() {
			b.Fatal("resolved to a container")
		}
	}
}

// BenchmarkWalk: a walk of a hierarchy of 1002 directories (500 pods of one
// container each): what an unknown id costs, at most once per walk
// interval, and what the resolver does at start. The fixture is a plain
// directory tree, not cgroupfs, whose directories are cheaper to stat.
func BenchmarkWalk(b *testing.B) {
	root := b.TempDir()
	h := &fixtureHost{mounts: map[string]string{"unified": root}}
	for i := range 500 {
		h.mkdirB(b, fmt.Sprintf("/kubepods/burstable/pod%08x-0000-0000-0000-000000000000/%064x", i, i))
	}
	l := Layout{Unified: &Hierarchy{ID: 0, Mount: root, Root: "/"}}
	b.ResetTimer()
	for b.Loop() {
		r := NewResolver(l, Options{})
		r.Refresh()
		if r.Stats().Containers != 500 {
			b.Fatalf("%d containers", r.Stats().Containers)
		}
	}
}
