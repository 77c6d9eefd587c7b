package main

import (
	"regexp"
	"strconv"
	"strings"
)

// attachment is one kernel-matrix line of the BPF loader:
//
//	kernel-matrix: collector=oom hook=oom_victim attach=tp_btf:mark_victim_btf forced=false
type attachment struct {
	Collector string // "bpf selftest" for loads without a collector
	Hook      string
	Attach    string // kind:target
	Forced    bool
}

// skip is one skipped test and the reason it gave.
type skip struct {
	Test   string
	Reason string
}

// output is what one run of a test binary printed, parsed.
type output struct {
	Marker   bool   // the guest's result line was seen
	RC       int    // the exit code on that line
	Uname    string // the guest's uname -r
	Problems []string
	Skips    []skip
	Failed   []string // tests that printed --- FAIL
	Attached []attachment
}

var (
	// Anywhere in a line: kernel messages on the serial console can land in
	// the middle of a line of the test's output.
	matrixRE = regexp.MustCompile(`kernel-matrix: collector=(\S*) hook=(\S+) attach=(\S+) forced=(true|false)`)
	markerRE = regexp.MustCompile(resultMarker + ` rc=(\d+)`)
	unameRE  = regexp.MustCompile(`^` + unameMarker + ` (\S+)`)
	resultRE = regexp.MustCompile(`^(\s*)--- (SKIP|FAIL|PASS): (\S+)`)
	// A line logged by t.Log/t.Skip: indented, then file.go:line: message.
	logRE = regexp.MustCompile(`^(\s+)\S+\.go:\d+: (.*)$`)
	// -test.v announces which test the following output belongs to.
	currentRE = regexp.MustCompile(`^=== (?:RUN|CONT|NAME|PAUSE)\s+(\S+)`)
	// What a kernel prints when it crashes or a BPF program or the kernel
	// itself misbehaves.
	kernelProblemRE = regexp.MustCompile(`Kernel panic|Oops:|BUG:`)
)

// outputParser reads a test binary's -test.v output line by line.
type outputParser struct {
	guest   bool // kernel problems count (in a guest, kernel and test share the console)
	out     output
	current string            // the test the last === line named
	lastLog map[string]string // each test's last logged line: go test -v prints a skip's reason before --- SKIP
	pending int               // index in out.Skips of a skip still without a reason
	pendDep int               // its --- SKIP line's indentation
}

func newOutputParser(guest bool) *outputParser {
	return &outputParser{guest: guest, lastLog: map[string]string{}, pending: -1}
}

// Line takes one line, without its line ending.
func (p *outputParser) Line(line string) {
	line = strings.TrimRight(line, "\r")
	if p.pending >= 0 {
		// Without -v (or for a test that logged nothing before) the
		// reason is the indented line after --- SKIP.
		if m := logRE.FindStringSubmatch(line); m != nil && len(m[1]) > p.pendDep {
			p.out.Skips[p.pending].Reason = m[2]
		}
		p.pending = -1
	}
	if m := matrixRE.FindStringSubmatch(line); m != nil {
		collector := m[1]
		if collector == "" || collector == "-" {
			collector = "bpf selftest"
		}
		p.out.Attached = append(p.out.Attached, attachment{Collector: collector, Hook: m[2], Attach: m[3], Forced: m[4] == "true"})
	}
	if m := markerRE.FindStringSubmatch(line); m != nil {
		p.out.Marker = true
		p.out.RC, _ = strconv.Atoi(m[1])
		return
	}
	if m := unameRE.FindStringSubmatch(line); m != nil {
		p.out.Uname = m[1]
		return
	}
	if p.guest && kernelProblemRE.MatchString(line) {
		p.out.Problems = append(p.out.Problems, strings.TrimSpace(line))
	}
	if m := currentRE.FindStringSubmatch(line); m != nil {
		p.current = m[1]
		return
	}
	if m := resultRE.FindStringSubmatch(line); m != nil {
		switch m[2] {
		case "SKIP":
			p.out.Skips = append(p.out.Skips, skip{Test: m[3], Reason: p.lastLog[m[3]]})
			if p.lastLog[m[3]] == "" {
				p.pending, p.pendDep = len(p.out.Skips)-1, len(m[1])
			}
		case "FAIL":
			p.out.Failed = append(p.out.Failed, m[3])
		}
		return
	}
	if m := logRE.FindStringSubmatch(line); m != nil && p.current != "" {
		p.lastLog[p.current] = m[2]
	}
}

// Result returns what was parsed so far.
func (p *outputParser) Result() output { return p.out }
