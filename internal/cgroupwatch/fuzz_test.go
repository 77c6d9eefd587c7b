package cgroupwatch

import (
	"bytes"
	"encoding/binary"
	"testing"
	"unicode/utf8"
	"unsafe"

	"go.uber.org/zap"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/container"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/testenv/fuzzseed"
)

func rawCgroup(f func(*bpfCgroupEvent)) []byte {
	var ev bpfCgroupEvent
	f(&ev)
	var b bytes.Buffer
	_ = binary.Write(&b, binary.NativeEndian, &ev)
	return b.Bytes()
}

func setPath(ev *bpfCgroupEvent, p string) {
	for i := range min(len(p), len(ev.Path)) {
		ev.Path[i] = int8(p[i])
	}
}

// FuzzCgroupRecord: mkdir/rmdir records as the tracker's ring buffer may
// carry them, with any path a process chose. Only whole records count;
// truncated mkdirs are counted and not remembered; whatever is remembered
// resolves to no container or to one with a valid UTF-8 id.
func FuzzCgroupRecord(f *testing.F) {
	const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	fuzzseed.Add(f, rawCgroup(func(ev *bpfCgroupEvent) { ev.Id = 4242; setPath(ev, "/docker/"+id) }))
	fuzzseed.Add(f, rawCgroup(func(ev *bpfCgroupEvent) { ev.Id = 4243; ev.Op = uint8(bpfCgroupOpCGROUP_RMDIR) }))
	fuzzseed.Add(f, rawCgroup(func(ev *bpfCgroupEvent) { ev.Id = 4244; ev.Truncated = 1; setPath(ev, "/a/b") }))
	fuzzseed.Add(f, rawCgroup(func(ev *bpfCgroupEvent) {
		ev.Id, ev.Hierarchy = 4245, -1
		for i := range ev.Path {
			ev.Path[i] = -1 // no NUL, not UTF-8
		}
	}))
	fuzzseed.Add(f, []byte{1, 2})
	layout, err := container.ReadLayout("/proc")
	if err != nil {
		f.Skipf("no cgroup layout here: %v", err)
	}
	r := container.NewResolver(layout, container.Options{CacheSize: 64})
	size := int(unsafe.Sizeof(bpfCgroupEvent{}))
	f.Fuzz(func(t *testing.T, raw []byte) {
		w := &Watcher{stopped: true} // no BPF object behind it: Stats reads no kernel counter
		w.handle(r, raw, zap.NewNop())
		st := w.Stats()
		if len(raw) < size {
			if st.Records != 0 {
				t.Fatal("a short record was counted")
			}
			return
		}
		var ev bpfCgroupEvent
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&ev)), size), raw)
		if st.Records != 1 {
			t.Fatalf("records = %d", st.Records)
		}
		wantTrunc := uint64(0)
		if ev.Op == uint8(bpfCgroupOpCGROUP_MKDIR) && ev.Truncated != 0 {
			wantTrunc = 1
		}
		if st.Truncated != wantTrunc {
			t.Fatalf("truncated = %d, want %d", st.Truncated, wantTrunc)
		}
		c := r.Resolve(container.CgroupIDs{Unified: ev.Id, Memory: ev.Id, CPU: ev.Id})
		if !utf8.ValidString(c.ID) || !utf8.ValidString(c.PodUID) {
			t.Fatalf("container %+v", c)
		}
	})
}
