// Package bpf loads a collector's BPF programs and attaches each logical
// hook through the first of its candidate attach points that the running
// kernel accepts, so that one collector works on kernels with and without
// kprobes, fentry or BTF-typed tracepoints.
//
// A collector describes its hooks in order of preference:
//
//	bpf.Hook{Name: "oom_victim", Candidates: []bpf.Candidate{
//		{Kind: bpf.TPBTF, Program: "mark_victim_btf"},
//		{Kind: bpf.Tracepoint, Program: "mark_victim_tp", Target: "oom/mark_victim"},
//		{Kind: bpf.Kprobe, Program: "oom_kill_process", Target: "oom_kill_process"},
//	}}
//
// Load keeps only the chosen candidates' programs in the collection it
// loads; when a program fails to load or attach, the next candidate of that
// hook is tried. The Object records which candidate each hook ended on and
// why the others were passed over; a hook with no working candidate makes
// Load fail with an error wrapping tracing.ErrNotSupported that says so.
package bpf

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/tracing"
)

// Kind is an attach mechanism.
type Kind string

const (
	// TPBTF is a BTF-typed tracepoint (SEC("tp_btf/NAME")): typed arguments, needs kernel BTF (5.5+).
	TPBTF Kind = "tp_btf"
	// RawTracepoint is SEC("raw_tracepoint/NAME"): untyped arguments, 4.17+.
	RawTracepoint Kind = "raw_tracepoint"
	// Tracepoint is a classic tracepoint, SEC("tracepoint/CATEGORY/NAME"); Target is "CATEGORY/NAME".
	Tracepoint Kind = "tracepoint"
	// Kprobe is SEC("kprobe/SYMBOL"); Target is the symbol. Needs CONFIG_KPROBES.
	Kprobe Kind = "kprobe"
	// Kretprobe is SEC("kretprobe/SYMBOL"); Target is the symbol.
	Kretprobe Kind = "kretprobe"
	// Fentry is SEC("fentry/FUNC"): a BPF trampoline; needs BTF and ftrace direct calls.
	Fentry Kind = "fentry"
	// Fexit is SEC("fexit/FUNC").
	Fexit Kind = "fexit"
	// Iter is a BPF iterator, SEC("iter/task") and the like (5.8+): it runs
	// when its output is read (Object.ReadIter), not on an event, so a
	// metric collector walks kernel objects in the kernel instead of /proc.
	Iter Kind = "iter"
)

// Candidate is one way to attach a hook.
type Candidate struct {
	Kind Kind
	// Program is the name of the BPF function in the collection.
	Program string
	// Target is what to attach to, for the kinds that need it (Tracepoint,
	// RawTracepoint, Kprobe, Kretprobe); the others take it from the
	// program's section.
	Target string
}

func (c Candidate) String() string {
	target := c.Target
	if target == "" {
		target = c.Program
	}
	return string(c.Kind) + ":" + target
}

// Hook is one logical attach point with its candidates, best first.
type Hook struct {
	Name       string
	Candidates []Candidate
}

// Spec is what to load.
type Spec struct {
	Collection *ebpf.CollectionSpec
	// Constants rewrites `volatile const` globals before loading.
	Constants map[string]any
	Hooks     []Hook
}

// Options change how Load chooses.
type Options struct {
	// Force restricts the named hooks to candidates of the given kind, so a
	// test can prove that branch works (for example the kprobe branch on a
	// kernel that also has tracepoints).
	Force map[string]Kind
	// PerfBuffer sends events through the perf event array even where the
	// kernel has ring buffers (the path kernels before 5.8 take), so that
	// path can be tested anywhere.
	PerfBuffer bool
	// RingBufferBytes sizes the ring buffer (a power of two, a multiple of
	// the page size); 0 keeps the program's size.
	RingBufferBytes uint32
	// Programs, when set, records every attached program for the
	// receiver's self-telemetry (the collector's Settings.Programs).
	Programs *tracing.CollectorPrograms
}

// OptionsFor returns the Options a collector created with s loads its
// programs with: its programs recorded for the receiver's self-telemetry,
// and the overrides a test set through the harness (tracingtest.ForceHook,
// tracingtest.PerfBuffer).
func OptionsFor(s tracing.Settings) Options {
	opts := Options{Programs: s.Programs, PerfBuffer: s.BPF.PerfBuffer}
	if len(s.BPF.Force) > 0 {
		opts.Force = make(map[string]Kind, len(s.BPF.Force))
		for hook, kind := range s.BPF.Force {
			opts.Force[hook] = Kind(kind)
		}
	}
	return opts
}

// Attempt is a candidate that was passed over, and why.
type Attempt struct {
	Candidate Candidate
	Err       error
}

// Attached says how one hook was attached.
type Attached struct {
	Hook      string
	Candidate Candidate
	// Skipped are the better candidates that did not work here.
	Skipped []Attempt
}

// Object is a loaded and attached collection. Close releases every
// program, map and link it holds.
type Object struct {
	Collection *ebpf.Collection
	Hooks      []Attached
	// PerfBuffer says events go through the perf event array rather than
	// the ring buffer (see events.h).
	PerfBuffer bool
	events     bool // the collection includes events.h
	links      []link.Link
	unlist     []func() // remove the programs from Options.Programs
}

// Load loads spec and attaches every hook; see the package comment.
func Load(spec Spec, opts Options) (*Object, error) {
	if spec.Collection == nil {
		return nil, errors.New("bpf: no collection spec")
	}
	if err := CheckPrivileges(); err != nil {
		return nil, err
	}

	// choice[i] is the index of the candidate hook i currently tries.
	choice := make([]int, len(spec.Hooks))
	skipped := make([][]Attempt, len(spec.Hooks))
	candidates := make([][]Candidate, len(spec.Hooks))
	for i, h := range spec.Hooks {
		for _, c := range h.Candidates {
			if kind, forced := opts.Force[h.Name]; forced && c.Kind != kind {
				continue
			}
			candidates[i] = append(candidates[i], c)
		}
		if len(candidates[i]) == 0 {
			return nil, fmt.Errorf("bpf: hook %s has no candidate (forced kind %q)", h.Name, opts.Force[h.Name])
		}
	}

	for {
		// Give up on a hook whose candidates are exhausted.
		for i, h := range spec.Hooks {
			if choice[i] >= len(candidates[i]) {
				return nil, unsupported(h.Name, skipped[i])
			}
		}
		obj, failedHook, err := tryLoad(spec, opts, candidates, choice)
		if err == nil {
			for i, h := range spec.Hooks {
				c := candidates[i][choice[i]]
				reportForMatrix(opts, h.Name, c)
				obj.Hooks = append(obj.Hooks, Attached{Hook: h.Name, Candidate: c, Skipped: skipped[i]})
				prog := obj.Collection.Programs[c.Program]
				obj.unlist = append(obj.unlist, opts.Programs.Add(tracing.Program{
					Hook: h.Name, Attach: c.String(), Name: c.Program,
					Stats: func() (uint64, uint64, bool) {
						st, err := prog.Stats()
						if err != nil {
							return 0, 0, false
						}
						return st.RunCount, uint64(st.Runtime), true
					},
				}))
			}
			return obj, nil
		}
		if failedHook < 0 {
			return nil, classifyPermission(err) // not a candidate's fault (a map, a constant): no fallback helps
		}
		skipped[failedHook] = append(skipped[failedHook], Attempt{Candidate: candidates[failedHook][choice[failedHook]], Err: err})
		choice[failedHook]++
	}
}

// MatrixEnv, set to 1, makes Load print each attachment on stderr as
//
//	kernel-matrix: collector=oom hook=oom_victim attach=tp_btf:mark_victim_btf forced=false
//
// The kernel-matrix runner (test/kernels) sets it for the test binaries it
// runs on each kernel and builds docs/kernel-matrix.md from these lines, so
// the table says what was observed rather than what was meant.
const MatrixEnv = "OTELCOL_KERNEL_MATRIX"

func reportForMatrix(opts Options, hook string, c Candidate) {
	if os.Getenv(MatrixEnv) != "1" {
		return
	}
	collector := opts.Programs.Collector()
	if collector == "" {
		collector = "-"
	}
	_, forced := opts.Force[hook]
	fmt.Fprintf(os.Stderr, "kernel-matrix: collector=%s hook=%s attach=%s forced=%t\n", collector, hook, c, forced)
}

func unsupported(hook string, tried []Attempt) error {
	var sb strings.Builder
	for i, a := range tried {
		if i > 0 {
			sb.WriteString("; ")
		}
		fmt.Fprintf(&sb, "%s: %v", a.Candidate, a.Err)
	}
	return tracing.NotSupported("no attach point for hook %s works on this kernel (tried %s)", hook, sb.String())
}

// tryLoad loads the collection with only the chosen candidates' programs
// and attaches them. On failure it says which hook's candidate was at
// fault (-1 when none was).
func tryLoad(spec Spec, opts Options, candidates [][]Candidate, choice []int) (*Object, int, error) {
	cs := spec.Collection.Copy()
	events := hasEventChannel(cs)
	usePerf := false
	if events {
		var err error
		if usePerf, err = prepareEventChannel(cs, opts); err != nil {
			return nil, -1, err
		}
	}
	for name, v := range spec.Constants {
		vs, ok := cs.Variables[name]
		if !ok {
			return nil, -1, fmt.Errorf("bpf: no constant %q in the collection", name)
		}
		if err := vs.Set(v); err != nil {
			return nil, -1, fmt.Errorf("bpf: setting %s: %w", name, err)
		}
	}
	keep := map[string]int{} // program name → hook index
	for i := range spec.Hooks {
		keep[candidates[i][choice[i]].Program] = i
	}
	for name := range maps.Clone(cs.Programs) {
		if _, ok := keep[name]; !ok {
			delete(cs.Programs, name)
		}
	}
	for name, i := range keep {
		if _, ok := cs.Programs[name]; !ok {
			return nil, -1, fmt.Errorf("bpf: hook %s: no program %q in the collection", spec.Hooks[i].Name, name)
		}
	}

	cache := acquireBTF()
	coll, err := ebpf.NewCollectionWithOptions(cs, ebpf.CollectionOptions{Cache: cache})
	releaseBTF()
	if err != nil {
		// cilium/ebpf names the program that failed: "program NAME: ...".
		for name, i := range keep {
			if strings.Contains(err.Error(), "program "+name+":") {
				return nil, i, fmt.Errorf("load: %w", err)
			}
		}
		return nil, -1, fmt.Errorf("bpf: loading the collection: %w", err)
	}
	obj := &Object{Collection: coll, PerfBuffer: usePerf, events: events}
	for i := range spec.Hooks {
		c := candidates[i][choice[i]]
		l, err := attach(c, coll.Programs[c.Program])
		if err != nil {
			obj.Close()
			return nil, i, fmt.Errorf("attach: %w", err)
		}
		obj.links = append(obj.links, l)
	}
	return obj, -1, nil
}

func attach(c Candidate, prog *ebpf.Program) (link.Link, error) {
	switch c.Kind {
	case Tracepoint, Kprobe, Kretprobe:
		// Only these find their event through tracefs; mount it on demand
		// so that a kernel served by tp_btf never sees a mount from us.
		if _, err := EnsureTracefs(); err != nil {
			return nil, fmt.Errorf("%s needs tracefs: %w", c.Kind, err)
		}
	}
	switch c.Kind {
	case Tracepoint:
		group, name, ok := strings.Cut(c.Target, "/")
		if !ok {
			return nil, fmt.Errorf("tracepoint target %q is not CATEGORY/NAME", c.Target)
		}
		return link.Tracepoint(group, name, prog, nil)
	case RawTracepoint:
		return link.AttachRawTracepoint(link.RawTracepointOptions{Name: c.Target, Program: prog})
	case TPBTF, Fentry, Fexit:
		return link.AttachTracing(link.TracingOptions{Program: prog})
	case Kprobe:
		return link.Kprobe(c.Target, prog, nil)
	case Kretprobe:
		return link.Kretprobe(c.Target, prog, nil)
	case Iter:
		return link.AttachIter(link.IterOptions{Program: prog})
	}
	return nil, fmt.Errorf("unknown attach kind %q", c.Kind)
}

// Close detaches every hook and closes every program and map. The kernel
// frees them once cilium/ebpf's memory mappings of the collection's global
// variables are garbage collected.
func (o *Object) Close() error {
	for _, unlist := range o.unlist {
		unlist()
	}
	o.unlist = nil
	var errs []error
	for _, l := range o.links {
		errs = append(errs, l.Close())
	}
	o.links = nil
	if o.Collection != nil {
		o.Collection.Close()
		o.Collection = nil
	}
	return errors.Join(errs...)
}

// TracefsPath is where the kernel's tracing filesystem is expected.
const TracefsPath = "/sys/kernel/tracing"

// EnsureTracefs mounts tracefs at TracefsPath if neither it nor debugfs's
// tracing directory is mounted: tracepoint and kprobe links need it, and
// minimal hosts and containers often lack the mount. It reports whether it
// mounted. The mount is left in place on shutdown, since other tools may
// have started to use it.
func EnsureTracefs() (mounted bool, err error) {
	if tracefsMounted() {
		return false, nil
	}
	if err := unix.Mount("tracefs", TracefsPath, "tracefs", 0, ""); err != nil {
		return false, fmt.Errorf("mounting tracefs at %s: %w", TracefsPath, err)
	}
	return true, nil
}

func tracefsMounted() bool {
	for _, dir := range []string{TracefsPath, "/sys/kernel/debug/tracing"} {
		var st unix.Statfs_t
		if unix.Statfs(dir, &st) == nil && st.Type == unix.TRACEFS_MAGIC {
			return true
		}
	}
	return false
}

// LogAttached logs, for each hook, the candidate it attached through and
// the better ones passed over with their errors: the first thing to read
// when a collector behaves differently on another kernel.
func (o *Object) LogAttached(logger *zap.Logger) {
	for _, h := range o.Hooks {
		logger.Info("hook attached", zap.String("hook", h.Hook), zap.Stringer("as", h.Candidate), zap.Any("passed_over", h.Skipped))
	}
}

// ReadIter runs the iterator attached for hook (a candidate of kind Iter)
// once and returns what its program wrote with bpf_seq_write. Each read
// walks the kernel objects again; reads of one iterator should not overlap
// if its program keeps state in globals between calls.
func (o *Object) ReadIter(hook string) ([]byte, error) {
	for i, h := range o.Hooks {
		if h.Hook != hook {
			continue
		}
		it, ok := o.links[i].(*link.Iter)
		if !ok {
			return nil, fmt.Errorf("bpf: hook %s is attached as %s, not an iterator", hook, h.Candidate)
		}
		r, err := it.Open()
		if err != nil {
			return nil, fmt.Errorf("bpf: opening iterator %s: %w", hook, err)
		}
		defer r.Close()
		b, err := io.ReadAll(r)
		if err != nil {
			return nil, fmt.Errorf("bpf: reading iterator %s: %w", hook, err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("bpf: no hook %s", hook)
}
