// Package ksym turns kernel addresses (from bpf_get_stack) into
// "function+0xoffset" using /proc/kallsyms.
//
// The table is read once and kept sorted; a lookup is a binary search.
// Only text symbols are kept, in a compact form (addresses in one slice,
// names back to back in one buffer: about 4.5 MB for a distribution
// kernel's 120 000 text symbols, against twice that as Go strings).
// Addresses read as 0 when kptr_restrict hides them from this process, and
// Load then says so.
//
// Shared gives every collector of the process the same table, read on
// first use: a collector that never symbolizes never pays for it.
package ksym

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"sync"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/tracing"
)

// Table is a sorted kernel symbol table.
type Table struct {
	addrs []uint64
	ends  []uint32 // name i is names[ends[i-1]:ends[i]]
	names []byte
}

// ErrHidden means /proc/kallsyms showed no addresses (kptr_restrict). It
// wraps tracing.ErrNotPermitted: a collector that needs the addresses
// stays inactive rather than retrying.
var ErrHidden = tracing.NotPermitted("kernel symbol addresses in /proc/kallsyms are hidden from this process (kernel.kptr_restrict): it needs CAP_SYSLOG")

var shared struct {
	once sync.Once
	t    *Table
	err  error
}

// Shared returns the process's table, reading /proc/kallsyms the first
// time it is called; a failure is remembered too, so that a host hiding
// its addresses is not asked again per event.
func Shared() (*Table, error) {
	shared.once.Do(func() { shared.t, shared.err = Load() })
	return shared.t, shared.err
}

// Load reads /proc/kallsyms.
func Load() (*Table, error) {
	f, err := open()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Parse(f)
}

// open opens /proc/kallsyms; a permission error is tracing.ErrNotPermitted.
func open() (*os.File, error) {
	f, err := os.Open("/proc/kallsyms")
	if errors.Is(err, os.ErrPermission) {
		return nil, tracing.NotPermitted("%v", err)
	}
	return f, err
}

// Parse reads a kallsyms listing: "ADDRESS TYPE NAME [MODULE]" per line.
func Parse(r io.Reader) (*Table, error) {
	t := &Table{}
	sorted := true
	err := scan(r, func(addr uint64, name, module []byte) {
		if n := len(t.addrs); n > 0 && addr < t.addrs[n-1] {
			sorted = false
		}
		t.addrs = append(t.addrs, addr)
		t.names = append(t.names, name...)
		if len(module) > 0 { // a module symbol: "name [module]"
			t.names = append(t.names, ' ')
			t.names = append(t.names, module...)
		}
		t.ends = append(t.ends, uint32(len(t.names)))
	})
	if err != nil {
		return nil, err
	}
	if !sorted {
		t.sort()
	}
	// Give back what growing the slices over-allocated.
	t.addrs = append([]uint64(nil), t.addrs...)
	t.ends = append([]uint32(nil), t.ends...)
	t.names = append([]byte(nil), t.names...)
	return t, nil
}

// scan calls each for every text (and weak text) symbol of a kallsyms
// listing, in file order. name and module point into the reader's buffer:
// each copies what it keeps. A listing whose addresses are all zero
// (kptr_restrict) is ErrHidden.
func scan(r io.Reader, each func(addr uint64, name, module []byte)) error {
	symbols, nonZero := false, false
	br := bufio.NewReaderSize(r, 64*1024)
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// No real line is this long; skip the rest of it.
			for err == bufio.ErrBufferFull {
				_, err = br.ReadSlice('\n')
			}
			continue
		}
		if len(line) > 0 {
			addrText, rest := field(bytes.TrimRight(line, "\r\n"))
			typ, rest := field(rest)
			name, rest := field(rest)
			if len(name) > 0 && len(typ) == 1 && (typ[0] == 't' || typ[0] == 'T' || typ[0] == 'w' || typ[0] == 'W') {
				addr, ok := parseHex(addrText)
				if !ok {
					return fmt.Errorf("kallsyms: bad address %q", addrText)
				}
				symbols = true
				nonZero = nonZero || addr != 0
				module, _ := field(rest)
				each(addr, name, module)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if symbols && !nonZero {
		return ErrHidden
	}
	return nil
}

// field cuts the first space- or tab-separated field off s.
func field(s []byte) (f, rest []byte) {
	i := 0
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	s = s[i:]
	j := bytes.IndexAny(s, " \t")
	if j < 0 {
		return s, nil
	}
	return s[:j], s[j:]
}

// parseHex is strconv.ParseUint(s, 16, 64) without converting to a string
// per line.
func parseHex(s []byte) (uint64, bool) {
	if len(s) == 0 || len(s) > 16 {
		return 0, false
	}
	var v uint64
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		v = v<<4 | uint64(c)
	}
	return v, true
}

// sort orders the table by address, keeping the listing's order among
// equal addresses.
func (t *Table) sort() {
	perm := make([]int32, len(t.addrs))
	for i := range perm {
		perm[i] = int32(i)
	}
	sort.SliceStable(perm, func(i, j int) bool { return t.addrs[perm[i]] < t.addrs[perm[j]] })
	addrs := make([]uint64, 0, len(t.addrs))
	ends := make([]uint32, 0, len(t.ends))
	names := make([]byte, 0, len(t.names))
	for _, i := range perm {
		addrs = append(addrs, t.addrs[i])
		names = append(names, t.name(int(i))...)
		ends = append(ends, uint32(len(names)))
	}
	t.addrs, t.ends, t.names = addrs, ends, names
}

func (t *Table) name(i int) []byte {
	start := uint32(0)
	if i > 0 {
		start = t.ends[i-1]
	}
	return t.names[start:t.ends[i]]
}

// Len is the number of symbols.
func (t *Table) Len() int { return len(t.addrs) }

// maxOffset bounds how far past a symbol an address may lie and still be
// inside it: no kernel function is this long, so a larger offset means the
// address belongs to something the table does not list (a BPF program
// loaded after the table was read, say).
const maxOffset = 1 << 20

func (t *Table) find(addr uint64) (int, bool) {
	i := sort.Search(len(t.addrs), func(i int) bool { return t.addrs[i] > addr }) - 1
	if i < 0 || addr-t.addrs[i] >= maxOffset {
		return 0, false
	}
	return i, true
}

// Resolve returns the symbol containing addr and the offset into it; ok is
// false below the first symbol and past the plausible end of the last one.
func (t *Table) Resolve(addr uint64) (name string, offset uint64, ok bool) {
	i, ok := t.find(addr)
	if !ok {
		return "", 0, false
	}
	return string(t.name(i)), addr - t.addrs[i], true
}

// Symbolize formats addr as "name+0xoffset", or as the bare hex address
// when it is below every symbol.
func (t *Table) Symbolize(addr uint64) string {
	i, ok := t.find(addr)
	if !ok {
		return "0x" + strconv.FormatUint(addr, 16)
	}
	name := t.name(i)
	buf := make([]byte, 0, len(name)+19)
	buf = append(buf, name...)
	buf = append(buf, "+0x"...)
	buf = strconv.AppendUint(buf, addr-t.addrs[i], 16)
	return string(buf)
}

// Stack symbolizes a stack from bpf_get_stack, stopping at the first zero
// address (the unused tail of the buffer).
func (t *Table) Stack(addrs []uint64) []string {
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		if a == 0 {
			break
		}
		out = append(out, t.Symbolize(a))
	}
	return out
}

// Symbolize resolves a few addresses in one pass over /proc/kallsyms and
// keeps nothing else: the result maps each address to "name+0xoffset" as
// Table.Symbolize formats it (an address below every symbol, or too far
// past the nearest one, is absent). It costs one read of the file (tens of
// milliseconds) and no memory beyond the answer, against a Table's 4 MiB
// kept for good: the choice for a collector that meets the same few
// addresses again and again, such as drop locations.
func Symbolize(addrs []uint64) (map[uint64]string, error) {
	f, err := open()
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return symbolize(f, addrs)
}

func symbolize(r io.Reader, addrs []uint64) (map[uint64]string, error) {
	type best struct {
		at   uint64
		name []byte
	}
	found := make([]best, len(addrs))
	err := scan(r, func(at uint64, name, module []byte) {
		for i, addr := range addrs {
			if at <= addr && (found[i].name == nil || at >= found[i].at) { // of aliases, the last, as Table does
				n := append([]byte(nil), name...)
				if len(module) > 0 {
					n = append(append(n, ' '), module...)
				}
				found[i] = best{at, n}
			}
		}
	})
	if err != nil {
		return nil, err
	}
	out := make(map[uint64]string, len(addrs))
	for i, addr := range addrs {
		if b := found[i]; b.name != nil && addr-b.at < maxOffset {
			out[addr] = string(b.name) + "+0x" + strconv.FormatUint(addr-b.at, 16)
		}
	}
	return out, nil
}
