package dropwatch

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/bpf"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/ksym"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/storage"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/testenv/fuzzseed"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/utf8safe"
)

// fuzzSyms is a small symbol table, so decoding symbolizes as with kernel_stack.
const fuzzSyms = `ffffffff81000000 T _stext
ffffffff81a00000 T kfree_skb_reason
ffffffff81a00100 t udp_queue_rcv_one_skb
ffffffff81a00400 T __udp4_lib_rcv
ffffffffc0000000 t bpf_prog_abc_kfree_skb_btf [bpf]
ffffffffc0100000 t mod_fn	[mymod]
`

func rawDrop(f func(*bpfDropEvent)) []byte {
	var ev bpfDropEvent
	f(&ev)
	var b bytes.Buffer
	_ = binary.Write(&b, binary.NativeEndian, &ev)
	return b.Bytes()
}

// FuzzDropEvent feeds arbitrary ring-buffer records through the decoding the
// collector does: a record shorter than the event without its stack is an
// error; a longer one decodes into exactly its bytes (zeros past its end)
// and becomes a record whose every string is valid UTF-8, whatever the
// comm, interface name and symbols.
func FuzzDropEvent(f *testing.F) {
	fuzzseed.Add(f, rawDrop(func(*bpfDropEvent) {}))
	fuzzseed.Add(f, rawDrop(func(ev *bpfDropEvent) {
		ev.Hdr.Pid, ev.Hdr.Tgid, ev.Reason, ev.L4Proto, ev.IpVersion, ev.Dport, ev.Len = 42, 42, 2, 17, 4, 9, 28
		copy(ev.Saddr[:], []byte{127, 0, 0, 1})
		copy(ev.Daddr[:], []byte{127, 0, 0, 1})
		for i, c := range []byte("worker\xff\xfe") {
			ev.Hdr.Comm[i] = int8(c)
		}
		for i, c := range []byte("lo") {
			ev.Ifname[i] = int8(c)
		}
		ev.Location = 0xffffffff81a00123
		ev.StackBytes = 3 * 8
		ev.Stack[0], ev.Stack[1], ev.Stack[2] = 0xffffffffc0000010, 0xffffffff81a00110, 0xffffffff81a00420
	}))
	fuzzseed.Add(f, rawDrop(func(ev *bpfDropEvent) {
		ev.IpVersion, ev.StackBytes = 6, -8 // a failed bpf_get_stack
		for i := range ev.Hdr.Comm {
			ev.Hdr.Comm[i] = -1 // no NUL at all
		}
	}))
	fuzzseed.Add(f, rawDrop(func(ev *bpfDropEvent) { ev.StackBytes = 1 << 40 }))
	fuzzseed.Add(f, []byte{1, 2, 3})
	fuzzseed.Add(f, rawDrop(func(ev *bpfDropEvent) { ev.Reason = 2 })[:eventMinLen]) // sent without its stack
	syms, err := ksym.Parse(strings.NewReader(fuzzSyms))
	if err != nil {
		f.Fatal(err)
	}
	size := int(unsafe.Sizeof(bpfDropEvent{}))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var ev bpfDropEvent
		err := bpf.Decode(raw, &ev, eventMinLen)
		if len(raw) < eventMinLen {
			if err == nil {
				t.Fatalf("a %d-byte record decoded; an event without its stack is %d bytes", len(raw), eventMinLen)
			}
			return
		}
		if err != nil {
			t.Fatalf("a record of %d bytes did not decode: %v", len(raw), err)
		}
		// The event is the record's bytes, and zeros where it was shorter.
		got := unsafe.Slice((*byte)(unsafe.Pointer(&ev)), size)
		n := min(len(raw), size)
		if !bytes.Equal(got[:n], raw[:n]) || bytes.ContainsFunc(got[n:], func(r rune) bool { return r != 0 }) {
			t.Fatal("decoding does not round-trip")
		}
		for _, c := range []*dropwatchCollector{{cfg: &Config{KernelStack: true}, syms: syms}, {cfg: &Config{}, syms: &ksym.Table{}}} {
			lr := storage.NewRecord("event", "packet.drop", time.Unix(0, 0), c.decode(&ev))
			if bad := utf8safe.Invalid(lr.Attributes()); len(bad) > 0 {
				t.Fatalf("attributes not valid UTF-8: %v", bad)
			}
		}
	})
}
