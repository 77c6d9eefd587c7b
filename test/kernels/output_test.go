package main

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// guestLog is serial-console output in the shape a guest gives it: CRLF
// line ends, kernel messages between the test's lines, go test -v output
// with subtests, parallel tests and skips with and without a message.
const guestLog = "[    1.234567] Run /init as init process\r\n" +
	"OTELCOL-KERNEL-UNAME 6.1.0-56-cloud-amd64\r\n" +
	"=== RUN   TestFallsBack\r\n" +
	"=== RUN   TestFallsBack/ringbuf\r\n" +
	"kernel-matrix: collector=- hook=getppid attach=kprobe:__x64_sys_getppid forced=false\r\n" +
	"    loader_test.go:116: getppid attached as kprobe:__x64_sys_getppid\r\n" +
	"--- PASS: TestFallsBack (1.55s)\r\n" +
	"    --- PASS: TestFallsBack/ringbuf (0.80s)\r\n" +
	"=== RUN   TestEveryCandidate\r\n" +
	"=== RUN   TestEveryCandidate/fentry\r\n" +
	"    loader_test.go:162: needs fentry (BPF trampolines): this kernel cannot load one\r\n" +
	"=== RUN   TestEveryCandidate/kprobe\r\n" +
	"kernel-matrix: collector= hook=getppid attach=kprobe:__x64_sys_getppid forced=true\r\n" +
	"    loader_test.go:170: attached\r\n" +
	"--- PASS: TestEveryCandidate (0.98s)\r\n" +
	"    --- SKIP: TestEveryCandidate/fentry (0.12s)\r\n" +
	"    --- PASS: TestEveryCandidate/kprobe (0.42s)\r\n" +
	"=== RUN   TestOOM\r\n" +
	"=== PAUSE TestOOM\r\n" +
	"=== RUN   TestHung\r\n" +
	"=== PAUSE TestHung\r\n" +
	"=== CONT  TestOOM\r\n" +
	"=== CONT  TestHung\r\n" +
	"    hungtask_test.go:30: needs loop devices (/dev/loop-control; the loop driver)\r\n" +
	"--- SKIP: TestHung (0.00s)\r\n" +
	"=== NAME  TestOOM\r\n" +
	// A kernel message breaking into the loader's line.
	"kernel-matrix: collector=oom hook=oom_victim [   12.5] Memory cgroup out of memory: Killed process 42 attach=x forced=false\r\n" +
	"kernel-matrix: collector=oom hook=oom_victim attach=tp_btf:mark_victim_btf forced=false\r\n" +
	"--- FAIL: TestOOM (2.00s)\r\n" +
	"=== RUN   TestNoMessage\r\n" +
	"--- SKIP: TestNoMessage (0.00s)\r\n" +
	"FAIL\r\n" +
	"OTELCOL-KERNEL-RESULT rc=1\r\n" +
	"[   14.000000] reboot: Power down\r\n"

func parse(guest bool, text string) output {
	p := newOutputParser(guest)
	for _, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		p.Line(l)
	}
	return p.Result()
}

func TestParseGuestOutput(t *testing.T) {
	o := parse(true, guestLog)
	if !o.Marker || o.RC != 1 {
		t.Errorf("marker %v rc %d, want the marker with rc 1", o.Marker, o.RC)
	}
	if o.Uname != "6.1.0-56-cloud-amd64" {
		t.Errorf("uname %q", o.Uname)
	}
	wantSkips := []skip{
		{"TestEveryCandidate/fentry", "needs fentry (BPF trampolines): this kernel cannot load one"},
		{"TestHung", "needs loop devices (/dev/loop-control; the loop driver)"},
		{"TestNoMessage", ""},
	}
	if !reflect.DeepEqual(o.Skips, wantSkips) {
		t.Errorf("skips:\n got %q\nwant %q", o.Skips, wantSkips)
	}
	if !reflect.DeepEqual(o.Failed, []string{"TestOOM"}) {
		t.Errorf("failed %q", o.Failed)
	}
	wantAttached := []attachment{
		{"bpf selftest", "getppid", "kprobe:__x64_sys_getppid", false},
		{"bpf selftest", "getppid", "kprobe:__x64_sys_getppid", true},
		{"oom", "oom_victim", "tp_btf:mark_victim_btf", false},
	}
	if !reflect.DeepEqual(o.Attached, wantAttached) {
		t.Errorf("attached:\n got %+v\nwant %+v", o.Attached, wantAttached)
	}
	if len(o.Problems) != 0 {
		t.Errorf("problems in a clean boot: %q", o.Problems)
	}
	if why := judgeGuest(o, false, time.Minute); !reflect.DeepEqual(why, []string{"test binary exited 1"}) {
		t.Errorf("judged %q", why)
	}
}

// Without -v, go test prints a skip's message on the lines after --- SKIP.
func TestSkipReasonAfterTheSkipLine(t *testing.T) {
	o := parse(false, "--- SKIP: TestA (0.00s)\n"+
		"    a_test.go:9: needs root (loading BPF programs)\n"+
		"--- FAIL: TestB (0.00s)\n"+
		"    --- SKIP: TestB/sub (0.00s)\n"+
		"        b_test.go:3: needs kprobes\n"+
		"    b_test.go:4: not the sub-test's\n")
	want := []skip{{"TestA", "needs root (loading BPF programs)"}, {"TestB/sub", "needs kprobes"}}
	if !reflect.DeepEqual(o.Skips, want) {
		t.Errorf("got %q, want %q", o.Skips, want)
	}
}

func TestGuestFailures(t *testing.T) {
	for name, tc := range map[string]struct {
		log      string
		timedOut bool
		want     []string
	}{
		"passed": {log: "PASS\nOTELCOL-KERNEL-RESULT rc=0\n", want: nil},
		"no marker": {log: "=== RUN   TestA\n",
			want: []string{"no OTELCOL-KERNEL-RESULT line: the guest did not finish the test binary"}},
		"timeout": {log: "=== RUN   TestA\n", timedOut: true,
			want: []string{"timed out after 1m0s (QEMU killed)", "no OTELCOL-KERNEL-RESULT line: the guest did not finish the test binary"}},
		"panic after a pass": {log: "OTELCOL-KERNEL-RESULT rc=0\n[    9.1] Kernel panic - not syncing: Attempted to kill init!\n",
			want: []string{"kernel: [    9.1] Kernel panic - not syncing: Attempted to kill init!"}},
		"oops": {log: "[    5.0] BUG: kernel NULL pointer dereference, address: 0000000000000000\n[    5.0] Oops: 0000 [#1] PREEMPT SMP NOPTI\nOTELCOL-KERNEL-RESULT rc=0\n",
			want: []string{"kernel: [    5.0] BUG: kernel NULL pointer dereference, address: 0000000000000000", "kernel: [    5.0] Oops: 0000 [#1] PREEMPT SMP NOPTI"}},
		"marker with a kernel message before it": {log: "[   3.3] random: crng init done OTELCOL-KERNEL-RESULT rc=2\n",
			want: []string{"test binary exited 2"}},
	} {
		t.Run(name, func(t *testing.T) {
			if got := judgeGuest(parse(true, tc.log), tc.timedOut, time.Minute); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// On this machine the test's own output cannot be a kernel crash.
func TestHostIgnoresKernelWords(t *testing.T) {
	if o := parse(false, "    x_test.go:1: BUG: in the test's text\n"); len(o.Problems) != 0 {
		t.Errorf("problems %q", o.Problems)
	}
}

func TestLineSinkSplitsWrites(t *testing.T) {
	var term, log strings.Builder
	p := newOutputParser(true)
	s := newLineSink("[6.1 oom] ", &term, &log, p)
	for _, chunk := range []string{"OTELCOL-KERNEL-UN", "AME 6.1.0\r\nOTELCOL-KERNEL-RESULT r", "c=0\r\ntail"} {
		if _, err := s.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-s.markerSeen:
	default:
		t.Error("markerSeen not closed after the marker line")
	}
	s.Flush()
	if want := "[6.1 oom] OTELCOL-KERNEL-UNAME 6.1.0\n[6.1 oom] OTELCOL-KERNEL-RESULT rc=0\n[6.1 oom] tail\n"; term.String() != want {
		t.Errorf("terminal got %q, want %q", term.String(), want)
	}
	if want := "OTELCOL-KERNEL-UNAME 6.1.0\nOTELCOL-KERNEL-RESULT rc=0\ntail\n"; log.String() != want {
		t.Errorf("log got %q, want %q", log.String(), want)
	}
	if o := p.Result(); o.Uname != "6.1.0" || !o.Marker {
		t.Errorf("parsed %+v", o)
	}
}

func TestSummaryCountsSkips(t *testing.T) {
	runs := []*run{
		{Column: "6.1", Name: "bpf", Passed: true, Duration: 10 * time.Second, Out: output{Skips: []skip{{"TestA", "needs x"}, {"TestB", ""}}}},
		{Column: "6.12", Name: "oom", Why: []string{"test binary exited 1"}, Log: "l.log", Out: output{Failed: []string{"TestOOM"}, Skips: []skip{{"TestC", "needs y"}}}},
	}
	s := renderSummary([]string{"6.1: pkg 1.0 (6.1.0)"}, runs, time.Minute)
	for _, want := range []string{
		"kernel 6.1: pkg 1.0 (6.1.0)\n",
		"      skip TestA: needs x\n",
		"      skip TestB: (no reason given)\n",
		"      skip TestC: needs y\n",
		"      failed: test binary exited 1\n",
		"      failing tests: TestOOM\n",
		"      log: l.log\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
	if !strings.HasSuffix(s, "\n2 runs, 1 passed, 1 failed; 3 tests skipped\n") {
		t.Errorf("summary does not end with the totals:\n%s", s)
	}
}

func TestGuestTestTimeout(t *testing.T) {
	for boot, want := range map[time.Duration]time.Duration{
		10 * time.Minute: 9 * time.Minute,
		time.Hour:        58 * time.Minute,
		2 * time.Minute:  90 * time.Second,
		40 * time.Second: 20 * time.Second,
	} {
		if got := guestTestTimeout(boot); got != want {
			t.Errorf("guestTestTimeout(%s) = %s, want %s", boot, got, want)
		}
	}
}
