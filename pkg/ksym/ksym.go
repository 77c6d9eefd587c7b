// Package ksym turns kernel addresses (from bpf_get_stack) into
// "function+0xoffset" using /proc/kallsyms.
//
// The table is read once and kept sorted; a lookup is a binary search.
// Only text symbols are kept. Addresses read as 0 when kptr_restrict hides
// them from this process, and Load then says so.
package ksym

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/tracing"
)

// Table is a sorted kernel symbol table.
type Table struct {
	addrs []uint64
	names []string
}

// ErrHidden means /proc/kallsyms showed no addresses (kptr_restrict). It
// wraps tracing.ErrNotPermitted: a collector that needs the addresses
// stays inactive rather than retrying.
var ErrHidden = tracing.NotPermitted("kernel symbol addresses in /proc/kallsyms are hidden from this process (kernel.kptr_restrict): it needs CAP_SYSLOG")

// Load reads /proc/kallsyms.
func Load() (*Table, error) {
	f, err := os.Open("/proc/kallsyms")
	if errors.Is(err, os.ErrPermission) {
		return nil, tracing.NotPermitted("%v", err)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Parse(f)
}

// Parse reads a kallsyms listing: "ADDRESS TYPE NAME [MODULE]" per line.
func Parse(r io.Reader) (*Table, error) {
	t := &Table{}
	type sym struct {
		addr uint64
		name string
	}
	var syms []sym
	nonZero := false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 {
			continue
		}
		switch fields[1] {
		case "t", "T", "w", "W": // text (and weak text) symbols
		default:
			continue
		}
		addr, err := strconv.ParseUint(fields[0], 16, 64)
		if err != nil {
			return nil, fmt.Errorf("kallsyms: bad address %q", fields[0])
		}
		if addr != 0 {
			nonZero = true
		}
		name := fields[2]
		if len(fields) > 3 { // a module symbol: "name [module]"
			name += " " + fields[3]
		}
		syms = append(syms, sym{addr, name})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(syms) > 0 && !nonZero {
		return nil, ErrHidden
	}
	sort.SliceStable(syms, func(i, j int) bool { return syms[i].addr < syms[j].addr })
	t.addrs = make([]uint64, len(syms))
	t.names = make([]string, len(syms))
	for i, s := range syms {
		t.addrs[i], t.names[i] = s.addr, s.name
	}
	return t, nil
}

// Len is the number of symbols.
func (t *Table) Len() int { return len(t.addrs) }

// maxOffset bounds how far past a symbol an address may lie and still be
// inside it: no kernel function is this long, so a larger offset means the
// address belongs to something the table does not list (a BPF program
// loaded after the table was read, say).
const maxOffset = 1 << 20

// Resolve returns the symbol containing addr and the offset into it; ok is
// false below the first symbol and past the plausible end of the last one.
func (t *Table) Resolve(addr uint64) (name string, offset uint64, ok bool) {
	i := sort.Search(len(t.addrs), func(i int) bool { return t.addrs[i] > addr }) - 1
	if i < 0 || addr-t.addrs[i] >= maxOffset {
		return "", 0, false
	}
	return t.names[i], addr - t.addrs[i], true
}

// Symbolize formats addr as "name+0xoffset", or as the bare hex address
// when it is below every symbol.
func (t *Table) Symbolize(addr uint64) string {
	name, off, ok := t.Resolve(addr)
	if !ok {
		return fmt.Sprintf("0x%x", addr)
	}
	return fmt.Sprintf("%s+0x%x", name, off)
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
