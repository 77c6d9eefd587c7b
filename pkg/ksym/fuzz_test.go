package ksym

import (
	"bufio"
	"bytes"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/testenv/fuzzseed"
)

// FuzzParse: /proc/kallsyms as a (faked, or future) kernel may print it.
// Parse never panics; a table it returns resolves each text symbol's own
// address to a symbol at that address (round trip), offsets stay below the
// plausible function size, and Symbolize gives "name+0xoff" or bare hex.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"ffffffff81000000 T _stext\nffffffff81000100 t do_one\nffffffff81000200 D data_sym\nffffffffc0000000 t fn\t[mod]\n",
		"0000000000000000 T hidden\n0000000000000000 t hidden2\n",
		"zzzz T bad\n", "ffffffff81000000 T\n", "", "ffffffff81000000 W weak \xff\xfe [m\xc3]\n",
		"ffffffff81000000 T a\nffffffff81000000 T b\n", // two names at one address
	} {
		fuzzseed.Add(f, []byte(s), uint64(0xffffffff81000150))
	}
	f.Fuzz(func(t *testing.T, text []byte, probe uint64) {
		tab, err := Parse(bytes.NewReader(text))
		if err != nil {
			if tab != nil {
				t.Fatal("a table and an error")
			}
			if errors.Is(err, ErrHidden) {
				return
			}
			return // a bad address or an over-long line
		}
		for i := 1; i < tab.Len(); i++ {
			if tab.addrs[i-1] > tab.addrs[i] {
				t.Fatal("table not sorted")
			}
		}
		sc := bufio.NewScanner(bytes.NewReader(text))
		sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
		for sc.Scan() {
			if len(sc.Bytes()) >= 64*1024-1 {
				continue // no real line is this long: Parse skips it
			}
			// The kernel separates fields with a space, and the module with a tab.
			fields := strings.FieldsFunc(sc.Text(), func(r rune) bool { return r == ' ' || r == '\t' })
			if len(fields) < 3 || !strings.ContainsAny(fields[1], "tTwW") || len(fields[1]) != 1 {
				continue
			}
			addr, _ := strconv.ParseUint(fields[0], 16, 64)
			_, off, ok := tab.Resolve(addr)
			if !ok || off != 0 {
				t.Fatalf("symbol at %#x resolves to offset %d ok=%v", addr, off, ok)
			}
		}
		name, off, ok := tab.Resolve(probe)
		s := tab.Symbolize(probe)
		if ok {
			if off >= maxOffset || s != name+"+0x"+strconv.FormatUint(off, 16) {
				t.Fatalf("Symbolize(%#x) = %q for %q+%d", probe, s, name, off)
			}
		} else if s != "0x"+strconv.FormatUint(probe, 16) {
			t.Fatalf("unresolved %#x symbolized as %q", probe, s)
		}
	})
}
