package container

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/testenv/fuzzseed"
)

const fuzzID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// FuzzPathParser: a cgroup path is whatever a process (or a runtime inside
// a container) chose to mkdir. Whatever it is, the container found is none
// or an id that is one of the path's components (less a runtime prefix and
// .scope), in ASCII, with a known runtime and a pod uid of UUID form; and
// a container cgroup below any path is still found as that container.
func FuzzPathParser(f *testing.F) {
	for _, p := range []string{
		"/", "", "/docker/" + fuzzID,
		"/system.slice/docker-" + fuzzID + ".scope",
		"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1d2f3c4b_5a6e_4f70_8192_a3b4c5d6e7f8.slice/cri-containerd-" + fuzzID + ".scope",
		"/kubepods/besteffort/pod1d2f3c4b-5a6e-4f70-8192-a3b4c5d6e7f8/" + fuzzID,
		"/kubepods/besteffort/pod1d2f3c4b-5a6e-4f70-8192-a3b4c5d6e7f8/crio-conmon-" + fuzzID,
		"/default/my-container", "/default/bad\xffname", "/machine.slice/libpod-" + fuzzID + ".scope/container",
		"//docker//" + fuzzID + "//", "/docker/" + fuzzID + "\xff",
	} {
		fuzzseed.Add(f, p)
	}
	runtimes := []string{"", RuntimeContainerd, RuntimeDocker, RuntimeCRIO, RuntimePodman}
	parsers := []PathParser{{}, {KubernetesRuntime: RuntimeContainerd, ContainerdNamespaces: []string{"default", "k8s.io"}}}
	f.Fuzz(func(t *testing.T, path string) {
		for _, p := range parsers {
			c := p.Parse(path)
			if c.IsZero() {
				if c != (Container{}) {
					t.Fatalf("no id but %+v", c)
				}
			} else {
				if !utf8.ValidString(c.ID) || strings.ContainsAny(c.ID, "/ ") {
					t.Fatalf("id %q from %q", c.ID, path)
				}
				if !slices.ContainsFunc(strings.Split(path, "/"), func(part string) bool { return strings.Contains(part, c.ID) }) {
					t.Fatalf("id %q is in no component of %q", c.ID, path)
				}
			}
			if !slices.Contains(runtimes, c.Runtime) {
				t.Fatalf("runtime %q from %q", c.Runtime, path)
			}
			if c.PodUID != "" && !isUID(c.PodUID) {
				t.Fatalf("pod uid %q from %q", c.PodUID, path)
			}
			// A docker container's cgroup under this path is that container.
			if got := p.Parse(strings.TrimRight(path, "/") + "/docker/" + fuzzID); got.ID != fuzzID {
				t.Fatalf("below %q: %+v", path, got)
			}
		}
	})
}

// FuzzCgroupFiles: memory.stat, memory.events and one-number files, as the
// kernel (or a faked cgroupfs) may present them. The key-value parser keeps
// exactly the lines of a non-empty key, one space and an unsigned decimal,
// with that value; the number parser takes "max" as unlimited and agrees
// with strconv otherwise.
func FuzzCgroupFiles(f *testing.F) {
	for _, s := range []string{"anon 1048576\nfile 4096\n", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n", "max\n", "12345\n", "", " 5\nk  7\nk\t8\nx 18446744073709551616\n", "a\xff 1\n"} {
		fuzzseed.Add(f, []byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		kv := ParseKeyValues(b)
		for k, v := range kv {
			if k == "" || strings.ContainsAny(k, " \n") {
				t.Fatalf("key %q", k)
			}
			found := false
			for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				if rest, ok := strings.CutPrefix(line, k+" "); ok {
					if n, err := strconv.ParseUint(strings.TrimSpace(rest), 10, 64); err == nil && n == v {
						found = true
					}
				}
			}
			if !found {
				t.Fatalf("%s=%d is not a line of %q", k, v, b)
			}
		}
		n, ok, err := ParseUint(b)
		s := strings.TrimSpace(string(b))
		want, werr := strconv.ParseUint(s, 10, 64)
		switch {
		case s == "max":
			if ok || err != nil {
				t.Fatalf("max: %d %v %v", n, ok, err)
			}
		case (werr == nil) != ok || (ok && n != want):
			t.Fatalf("ParseUint(%q) = %d %v %v", b, n, ok, err)
		}
	})
}
