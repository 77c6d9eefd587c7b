package hungtask

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/bpf"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/storage"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/testenv/fuzzseed"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/utf8safe"
)

func rawHung(f func(*bpfHungEvent)) []byte {
	var ev bpfHungEvent
	f(&ev)
	var b bytes.Buffer
	_ = binary.Write(&b, binary.NativeEndian, &ev)
	return b.Bytes()
}

const sampleStack = `[<0>] percpu_rwsem_wait+0x116/0x140
[<0>] __percpu_down_read+0x6b/0x80
[<0>] mnt_want_write+0x8e/0xa0
[<0>] do_sys_openat2+0x8c/0xe0
[<0>] do_syscall_64+0x82/0x190
[<0>] entry_SYSCALL_64_after_hwframe+0x76/0x7e
`

// FuzzHungEvent: a ring-buffer record and a /proc/PID/stack text, both
// arbitrary. A short record is an error; a whole one round-trips; the
// stack keeps only frames, one per input line at most, each the text after
// "] "; the event made of them has valid UTF-8 strings only.
func FuzzHungEvent(f *testing.F) {
	fuzzseed.Add(f, rawHung(func(*bpfHungEvent) {}), []byte(sampleStack))
	fuzzseed.Add(f, rawHung(func(ev *bpfHungEvent) {
		ev.Task.Pid, ev.Task.Tgid, ev.TaskKnown = 7, 7, 1
		for i, c := range []byte("dd\xff\xc3") {
			ev.Task.Comm[i] = int8(c)
		}
	}), []byte("[<0>] f\xff+0x1/0x2\nno bracket\n] \n"))
	fuzzseed.Add(f, []byte{0}, []byte(""))
	size := int(unsafe.Sizeof(bpfHungEvent{}))
	f.Fuzz(func(t *testing.T, raw, stackText []byte) {
		var ev bpfHungEvent
		err := bpf.Decode(raw, &ev, 0)
		if len(raw) < size {
			if err == nil {
				t.Fatalf("a %d-byte record decoded; an event is %d bytes", len(raw), size)
			}
			return
		}
		if err != nil {
			t.Fatalf("a whole record did not decode: %v", err)
		}
		if !bytes.Equal(unsafe.Slice((*byte)(unsafe.Pointer(&ev)), size), raw[:size]) {
			t.Fatal("decoding does not round-trip")
		}
		st := parseStack(stackText)
		if st != "" {
			frames := strings.Split(st, "\n")
			if lines := strings.Count(string(stackText), "\n") + 1; len(frames) > lines {
				t.Fatalf("%d frames from %d lines", len(frames), lines)
			}
			for _, fr := range frames {
				if !strings.Contains(string(stackText), "] "+fr) {
					t.Fatalf("frame %q is not in the input", fr)
				}
			}
		}
		e := &hungEvent{ThreadID: ev.Task.Pid, ProcessID: ev.Task.Tgid, ThreadName: bpf.CString(ev.Task.Comm[:]), Stack: st,
			Blocked: []blockedTask{{ThreadName: bpf.CString(ev.Task.Comm[:]), Stack: st}}}
		lr := storage.NewRecord("event", "task.hung", time.Unix(0, 0), e)
		if bad := utf8safe.Invalid(lr.Attributes()); len(bad) > 0 {
			t.Fatalf("attributes not valid UTF-8: %v", bad)
		}
	})
}
