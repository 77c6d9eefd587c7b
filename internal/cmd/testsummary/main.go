// Command testsummary reads `go test -json` on stdin and prints a readable
// report: one line per package (ok/FAIL/no test files), the output of every
// failed test, every skipped test with its reason, and a last line
//
//	N passed, N failed, N skipped
//
// alone on its line, which CI reads. It exits 1 when a test or a package
// failed, a package did not build, or no test event arrived at all.
//
//	go test -json -count=1 ./... 2>&1 | go run ./internal/cmd/testsummary
//
// Lines that are not JSON (the go command's own errors) are printed as they
// come. Subtests count like tests.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action     string
	Package    string
	Test       string
	Output     string
	ImportPath string // build-output, build-fail
}

type testKey struct{ pkg, test string }

type result struct {
	key    testKey
	output []string
}

type summary struct {
	out io.Writer

	running map[testKey][]string // output of tests that have not ended
	order   []testKey            // start order of running tests, for stable reports

	passed   int
	failed   []result
	skipped  []result
	failPkgs []string // packages that failed (or did not build)
	events   int

	buildFailed bool
}

func newSummary(out io.Writer) *summary {
	return &summary{out: out, running: map[testKey][]string{}}
}

func (s *summary) line(line string) {
	var ev event
	if !strings.HasPrefix(line, "{") || json.Unmarshal([]byte(line), &ev) != nil || ev.Action == "" {
		fmt.Fprintln(s.out, line) // the go command's own output
		return
	}
	s.events++
	switch ev.Action {
	case "build-output":
		fmt.Fprint(s.out, ev.Output)
		return
	case "build-fail":
		s.buildFailed = true // the package's own fail event follows
		return
	}
	if ev.Test == "" {
		s.packageEvent(ev)
		return
	}
	k := testKey{ev.Package, ev.Test}
	switch ev.Action {
	case "run":
		if _, ok := s.running[k]; !ok {
			s.running[k] = nil
			s.order = append(s.order, k)
		}
	case "output":
		s.running[k] = append(s.running[k], ev.Output)
	case "pass":
		s.passed++
		s.end(k)
	case "fail":
		s.failed = append(s.failed, result{k, s.running[k]})
		s.end(k)
	case "skip":
		s.skipped = append(s.skipped, result{k, s.running[k]})
		s.end(k)
	}
}

func (s *summary) end(k testKey) {
	delete(s.running, k)
}

func (s *summary) packageEvent(ev event) {
	switch ev.Action {
	case "output":
		switch strings.TrimSpace(ev.Output) {
		case "PASS", "FAIL":
			return // the ok/FAIL line with the package name follows
		}
		fmt.Fprint(s.out, ev.Output)
	case "fail":
		s.failPkgs = append(s.failPkgs, ev.Package)
		// Tests still running when their package failed (a panic, a
		// timeout) never get their own end event: they failed too.
		for _, k := range s.order {
			if out, ok := s.running[k]; ok && k.pkg == ev.Package {
				s.failed = append(s.failed, result{k, append(out, "(did not finish: the test binary exited)\n")})
				s.end(k)
			}
		}
	}
}

// report prints failures, skips and the summary line; it returns whether
// everything passed.
func (s *summary) report() bool {
	w := s.out
	if len(s.failed) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "=== Failed tests")
		for _, r := range s.failed {
			fmt.Fprintf(w, "--- FAIL: %s %s\n", r.key.test, r.key.pkg)
			for _, l := range r.output {
				if isFramingLine(l) {
					continue
				}
				fmt.Fprint(w, "    ", l)
				if !strings.HasSuffix(l, "\n") {
					fmt.Fprintln(w)
				}
			}
		}
	}
	if len(s.skipped) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "=== Skipped tests")
		for _, r := range s.skipped {
			fmt.Fprintf(w, "--- SKIP: %s %s: %s\n", r.key.test, r.key.pkg, skipReason(r.output))
		}
	}
	if len(s.failPkgs) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "=== Failed packages")
		for _, p := range s.failPkgs {
			fmt.Fprintln(w, "FAIL", p)
		}
	}
	ok := len(s.failed) == 0 && len(s.failPkgs) == 0 && !s.buildFailed && s.events > 0
	if s.events == 0 {
		fmt.Fprintln(w, "no test events: go test did not run")
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%d passed, %d failed, %d skipped\n", s.passed, len(s.failed), len(s.skipped))
	return ok
}

// isFramingLine reports the lines go test adds around a test's own output.
func isFramingLine(l string) bool {
	t := strings.TrimSpace(l)
	for _, p := range []string{"=== RUN", "=== PAUSE", "=== CONT", "=== NAME", "--- PASS", "--- FAIL", "--- SKIP"} {
		if strings.HasPrefix(t, p) {
			return true
		}
	}
	return false
}

// skipReason is the last message the test logged, which is t.Skip's, without
// its file:line prefix and on one line. Earlier t.Log lines are left out.
func skipReason(output []string) string {
	var parts []string
	for _, l := range output {
		if isFramingLine(l) {
			continue
		}
		t := strings.TrimSpace(l)
		if t == "" {
			continue
		}
		// "foo_test.go:12: reason" starts a message; other lines continue it.
		if i := strings.Index(t, ": "); i > 0 && strings.Contains(t[:i], ".go:") && !strings.Contains(t[:i], " ") {
			parts = parts[:0]
			t = t[i+2:]
		}
		parts = append(parts, t)
	}
	if len(parts) == 0 {
		return "(no reason given)"
	}
	return strings.Join(parts, " ")
}

func run(in io.Reader, out io.Writer) bool {
	s := newSummary(out)
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1024*1024), 64*1024*1024)
	for sc.Scan() {
		s.line(sc.Text())
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(out, "testsummary: reading input:", err)
		s.report()
		return false
	}
	return s.report()
}

func main() {
	if !run(os.Stdin, os.Stdout) {
		os.Exit(1)
	}
}
