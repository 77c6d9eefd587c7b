//go:build 386 || amd64

package oom

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"
	"unsafe"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/container"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/storage"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/testenv/fuzzseed"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/utf8safe"
)

func rawOOM(f func(*bpfOomEvent)) []byte {
	var ev bpfOomEvent
	f(&ev)
	var b bytes.Buffer
	_ = binary.Write(&b, binary.NativeEndian, &ev)
	return b.Bytes()
}

const sampleMemoryStat = `anon 1048576
file 4096
kernel 0
pgfault 1234
workingset_refault_anon 0
`

// FuzzOOMEvent: an arbitrary ring-buffer record and memory.stat/memory.events
// text. A short record is an error, a whole one decodes into a victim whose
// comms have no NUL and at most 16 bytes; the key-value parser keeps only
// "key number" lines; the event made of both has valid UTF-8 strings only.
func FuzzOOMEvent(f *testing.F) {
	fuzzseed.Add(f, rawOOM(func(*bpfOomEvent) {}), []byte(sampleMemoryStat))
	fuzzseed.Add(f, rawOOM(func(ev *bpfOomEvent) {
		ev.Victim.Pid, ev.Victim.Tgid, ev.VictimKnown, ev.ScopeKnown = 9, 9, 1, 1
		for i, c := range []byte("hog\xff\xfe") {
			ev.Victim.Comm[i] = int8(c)
		}
		for i := range ev.Trigger.Comm {
			ev.Trigger.Comm[i] = 'x' // no NUL
		}
	}), []byte("oom 1\noom_kill 1\nbad\xff 3\nnot a number x\n max\n"))
	fuzzseed.Add(f, []byte{1}, []byte(""))
	f.Fuzz(func(t *testing.T, raw, stat []byte) {
		v, err := decodeVictim(raw)
		if len(raw) < int(unsafe.Sizeof(bpfOomEvent{})) {
			if err == nil {
				t.Fatalf("a %d-byte record decoded", len(raw))
			}
			return
		}
		if err != nil {
			t.Fatalf("a whole record did not decode: %v", err)
		}
		for _, comm := range []string{v.comm, v.triggerComm} {
			if len(comm) > 16 || bytes.IndexByte([]byte(comm), 0) >= 0 {
				t.Fatalf("comm %q: over 16 bytes or with a NUL", comm)
			}
		}
		kv := container.ParseKeyValues(stat)
		for k := range kv {
			if k == "" || bytes.ContainsAny([]byte(k), " \n") {
				t.Fatalf("key %q from %q", k, stat)
			}
		}
		e := &oomEvent{ThreadID: v.pid, ProcessID: v.tgid, ThreadName: v.comm, TriggerName: v.triggerComm,
			MemoryCgroup: memcgSnapshot{Stat: kv, Events: kv}}
		lr := storage.NewRecord("event", "oom.kill", time.Unix(0, 0), e)
		if bad := utf8safe.Invalid(lr.Attributes()); len(bad) > 0 {
			t.Fatalf("attributes not valid UTF-8: %v", bad)
		}
	})
}
