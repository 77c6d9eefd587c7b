// Package faults runs the otelcol-kernel distribution under faults: bad
// configurations, a dead and a black-hole exporter, drop storms, a full
// disk, start/stop and SIGKILL cycles, two agents and two receivers,
// reduced privileges and invalid UTF-8 from another process. Each test
// reproduces a defect that was found this way, or checks a property that
// held, and logs the figure it measured ("figure: ...").
//
// Storms are bounded in size and stop by themselves; traffic stays on
// loopback; every mount, directory and process made is removed.
package faults

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/testenv"
)

func TestMain(m *testing.M) {
	testenv.MaybeRunHelper() // the invalid-comm sender is this binary
	os.Exit(m.Run())
}

// Defect 2: numbers that confmap would wrap or truncate, and mistakes in
// disabled sections, are rejected by `validate`, naming the key.
func TestBadConfigsAreRejected(t *testing.T) {
	bin := distribution(t)
	for name, tc := range map[string]struct{ kernel, want string }{
		"wraps to no cap":  {"dropwatch: {events_per_second: 4294967296}", "dropwatch: events_per_second: 4294967296 is out of range (0 to 4294967295)"},
		"half is no cap":   {"dropwatch: {events_per_second: 0.5}", "dropwatch: events_per_second: 0.5 is not a whole number"},
		"truncated":        {"oom: {events_per_second: 1.5}", "oom: events_per_second: 1.5 is not a whole number"},
		"big":              {"hungtask: {events_per_second: 5000000000}", "hungtask: events_per_second: 5000000000 is out of range"},
		"wraps to 5":       {"dropwatch: {events_per_second: 4294967301}", "events_per_second: 4294967301 is out of range"},
		"disabled port":    {"dropwatch: {enabled: false, port: 70000}", "dropwatch: port: 70000 is not a port number"},
		"disabled regexp":  {"netdev: {enabled: false, include: \"(\"}", "netdev: include"},
		"queue fractional": {"event_queue: {size: 10.5}", "event_queue::size: 10.5 is not a whole number"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "config.yaml")
			cfg := fmt.Sprintf(`receivers:
  kernel:
    %s
exporters:
  debug: {}
service:
  pipelines:
    logs: {receivers: [kernel], exporters: [debug]}
`, tc.kernel)
			if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(bin, "validate", "--config", path).CombinedOutput()
			if err == nil {
				t.Fatalf("validate accepted %q:\n%s", tc.kernel, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Fatalf("validate did not say %q:\n%s", tc.want, out)
			}
		})
	}
}

// Defect 1: a logs pipeline that blocks (an otlp exporter to a closed port,
// no batch processor, no sending queue: every batch is retried for minutes)
// no longer holds up shutdown. One SIGTERM ends the process within the
// bound; what was not delivered is counted and logged.
func TestShutdownIsBoundedWithABlockingPipeline(t *testing.T) {
	port := freePort(t, "udp")
	a := startAgent(t, agentConfig{
		kernel:    fmt.Sprintf("dropwatch: {protocol: udp, port: %d, events_per_second: 0}", port),
		exporters: fmt.Sprintf("otlp_grpc/dead: {endpoint: 127.0.0.1:%d, tls: {insecure: true}, sending_queue: {enabled: false}}", freePort(t, "tcp")),
		logsTo:    "otlp_grpc/dead",
	})
	a.waitDropwatch(port)
	storm(t, port, 20000) // events queued behind the blocked pipeline
	time.Sleep(time.Second)
	took := a.stop(syscall.SIGTERM, shutdownBound+10*time.Second)
	t.Logf("figure: shutdown with a blocking logs pipeline took %v (bound %v)", took.Round(10*time.Millisecond), shutdownBound)
	if took > shutdownBound+2*time.Second {
		t.Errorf("shutdown took %v, beyond the %v bound", took, shutdownBound)
	}
	if !strings.Contains(a.Log(), "kernel events not delivered at shutdown") {
		t.Errorf("the undelivered events were not reported")
	}
	for _, line := range strings.Split(a.Log(), "\n") {
		if strings.Contains(line, "not delivered at shutdown") {
			t.Logf("figure: %s", line)
			break
		}
	}
}

// The exact accounting under a drop storm that held: every packet that
// passed the filter is an event saved, dropped for a full queue, lost in
// the ring buffer, or held back by the cap.
func TestStormAccounting(t *testing.T) {
	for _, tc := range []struct {
		name string
		eps  int
		n    int
	}{{"uncapped", 0, 300000}, {"capped", 2000, 300000}} {
		t.Run(tc.name, func(t *testing.T) {
			port := freePort(t, "udp")
			a := startAgent(t, agentConfig{kernel: fmt.Sprintf("dropwatch: {protocol: udp, port: %d, events_per_second: %d, all_reasons: false}", port, tc.eps)})
			a.waitDropwatch(port)
			begin := time.Now()
			storm(t, port, tc.n)
			rate := float64(tc.n) / time.Since(begin).Seconds()
			got := a.settled(map[string]func() (float64, bool){
				"drops":      func() (float64, bool) { return a.metric(mDrops, map[string]string{lReason: "NO_SOCKET"}) },
				"saved":      func() (float64, bool) { return a.metric(mSaved, nil) },
				"queue_full": func() (float64, bool) { return a.metric(mDropped, map[string]string{lDropReason: "queue_full"}) },
				"lost":       func() (float64, bool) { return a.metric(mLost, nil) },
				"limited":    func() (float64, bool) { return a.metric(mLimited, nil) },
			})
			// Every drop of this port counted by the kernel is a datagram we
			// sent (the pokes that waited for attachment included).
			sent := got["drops"]
			sum := got["saved"] + got["queue_full"] + got["lost"] + got["limited"]
			t.Logf("figure: storm %s of %d datagrams at %.0f/s: drops=%.0f saved=%.0f queue_full=%.0f lost=%.0f limited=%.0f",
				tc.name, tc.n, rate, sent, got["saved"], got["queue_full"], got["lost"], got["limited"])
			if sent < float64(tc.n) {
				t.Errorf("the kernel counted %.0f drops for %d datagrams", sent, tc.n)
			}
			if sum != sent {
				t.Errorf("sent %.0f != saved + queue_full + lost + limited = %.0f", sent, sum)
			}
			if tc.eps > 0 && got["limited"] == 0 {
				t.Errorf("the cap held nothing back")
			}
			a.stop(syscall.SIGTERM, shutdownBound+5*time.Second)
		})
	}
}

// blackHole accepts TCP connections and never answers: an exporter's calls
// hang until their timeout.
func blackHole(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().(*net.TCPAddr).Port
}

// Defect 6 and the exporter faults that held: with the otlp exporter's
// backend down (a closed port) or a black hole, and a small sending queue
// that rejects, the receiver keeps running and the kernel side never
// blocks; every event its pipeline refused is counted by the receiver
// (kernel.receiver.events.dropped{consumer_error}) exactly as the exporter
// counts its rejections, and the standard receiver telemetry counts each
// record once (accepted = emitted, refused = consumer_error).
func TestExporterDownOrBlackHole(t *testing.T) {
	for name, endpoint := range map[string]func() int{
		"down":       func() int { return freePort(t, "tcp") },
		"black_hole": func() int { return blackHole(t) },
	} {
		t.Run(name, func(t *testing.T) {
			port := freePort(t, "udp")
			a := startAgent(t, agentConfig{
				kernel: fmt.Sprintf("dropwatch: {protocol: udp, port: %d, events_per_second: 0, all_reasons: false}", port),
				exporters: fmt.Sprintf("otlp_grpc/x: {endpoint: 127.0.0.1:%d, tls: {insecure: true}, timeout: 1s, "+
					"retry_on_failure: {enabled: false}, sending_queue: {enabled: true, queue_size: 4, num_consumers: 1, sizer: requests}}", endpoint()),
				logsTo: "otlp_grpc/x",
			})
			a.waitDropwatch(port)
			storm(t, port, 100000)
			got := a.settled(map[string]func() (float64, bool){
				"saved":   func() (float64, bool) { return a.metric(mSaved, nil) },
				"emitted": func() (float64, bool) { return a.metric(mEmitted, nil) },
				"refused": func() (float64, bool) { return a.metric(mDropped, map[string]string{lDropReason: "consumer_error"}) },
				"lost":    func() (float64, bool) { return a.metric(mLost, nil) },
			})
			enqueueFailed := a.telemetry("otelcol_exporter_enqueue_failed_log_records", nil)
			sendFailed := a.telemetry("otelcol_exporter_send_failed_log_records", nil)
			accepted := a.telemetry("otelcol_receiver_accepted_log_records", map[string]string{"receiver": "kernel"})
			refusedStd := a.telemetry("otelcol_receiver_refused_log_records", map[string]string{"receiver": "kernel"})
			t.Logf("figure: exporter %s: saved=%.0f emitted=%.0f consumer_error=%.0f ring_lost=%.0f; exporter enqueue_failed=%.0f send_failed=%.0f; otelcol_receiver accepted=%.0f refused=%.0f",
				name, got["saved"], got["emitted"], got["refused"], got["lost"], enqueueFailed, sendFailed, accepted, refusedStd)
			if name == "black_hole" && got["refused"] == 0 {
				t.Error("the exporter's queue filled, yet the receiver counted no refused event")
			}
			if got["refused"] != enqueueFailed {
				t.Errorf("receiver consumer_error %.0f != exporter enqueue_failed %.0f", got["refused"], enqueueFailed)
			}
			if accepted != got["emitted"] || refusedStd != got["refused"] {
				t.Errorf("otelcol_receiver accepted %.0f refused %.0f, the receiver's own emitted %.0f consumer_error %.0f", accepted, refusedStd, got["emitted"], got["refused"])
			}
			if got["saved"] != got["emitted"]+got["refused"] {
				t.Errorf("saved %.0f != emitted + refused %.0f", got["saved"], got["emitted"]+got["refused"])
			}
			took := a.stop(syscall.SIGTERM, shutdownBound+10*time.Second)
			t.Logf("figure: exporter %s: shutdown took %v", name, took.Round(10*time.Millisecond))
		})
	}
}

// A full disk under the file exporter: writes fail, the receiver counts
// the refused events and keeps running; metrics (on another disk) flow on.
func TestFullDisk(t *testing.T) {
	testenv.RequireTool(t, "mount", "umount")
	mnt := filepath.Join(newDir(t), "small")
	if err := os.Mkdir(mnt, 0o777); err != nil {
		t.Fatal(err)
	}
	testenv.Run(t, "mount", "-t", "tmpfs", "-o", "size=256k", "otelcol-kernel-faults", mnt)
	t.Cleanup(func() { _ = exec.Command("umount", "-l", mnt).Run() })
	port := freePort(t, "udp")
	a := startAgent(t, agentConfig{
		kernel:    fmt.Sprintf("dropwatch: {protocol: udp, port: %d, events_per_second: 0, all_reasons: false}", port),
		exporters: fmt.Sprintf("file/small: {path: %s, flush_interval: 100ms}", filepath.Join(mnt, "events.jsonl")),
		logsTo:    "file/small",
	})
	a.waitDropwatch(port)
	storm(t, port, 20000)
	got := a.settled(map[string]func() (float64, bool){
		"saved":   func() (float64, bool) { return a.metric(mSaved, nil) },
		"emitted": func() (float64, bool) { return a.metric(mEmitted, nil) },
		"refused": func() (float64, bool) { return a.metric(mDropped, map[string]string{lDropReason: "consumer_error"}) },
	})
	t.Logf("figure: full disk (256 KiB tmpfs): saved=%.0f emitted=%.0f consumer_error=%.0f", got["saved"], got["emitted"], got["refused"])
	if got["refused"] == 0 {
		t.Error("no refused event counted on a full disk")
	}
	if got["saved"] != got["emitted"]+got["refused"] {
		t.Errorf("saved %.0f != emitted + refused %.0f", got["saved"], got["emitted"]+got["refused"])
	}
	before := len(a.metrics())
	time.Sleep(2 * time.Second)
	if after := len(a.metrics()); after <= before {
		t.Errorf("metrics stopped flowing: %d batches then %d", before, after)
	}
	a.stop(syscall.SIGTERM, shutdownBound+5*time.Second)
}

// bpfObjects lists the BPF programs, maps and links a process holds, as
// kind:id, from its fdinfo.
func bpfObjects(t *testing.T, pid int) []string {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fdinfo", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			for _, kind := range []string{"prog_id", "map_id", "link_id"} {
				if v, ok := strings.CutPrefix(line, kind+":"); ok {
					out = append(out, kind+":"+strings.TrimSpace(v))
				}
			}
		}
	}
	return out
}

// bpfObjectExists asks the kernel whether an object id is still allocated.
func bpfObjectExists(obj string) bool {
	kind, idText, _ := strings.Cut(obj, ":")
	id, _ := strconv.ParseUint(idText, 10, 32)
	var err error
	switch kind {
	case "prog_id":
		var p *ebpf.Program
		if p, err = ebpf.NewProgramFromID(ebpf.ProgramID(id)); err == nil {
			p.Close()
		}
	case "map_id":
		var m *ebpf.Map
		if m, err = ebpf.NewMapFromID(ebpf.MapID(id)); err == nil {
			m.Close()
		}
	case "link_id":
		return linkExists(uint32(id))
	}
	return err == nil
}

// Start/stop and SIGKILL cycles that held: whichever way the agent ends,
// the kernel frees every BPF program, map and link it held (compared by
// kernel object id, not by a global count other processes change).
func TestStartStopAndKillLeaveNoBPFObject(t *testing.T) {
	cycles := map[syscall.Signal]int{syscall.SIGTERM: 5, syscall.SIGKILL: 3}
	if n, err := strconv.Atoi(os.Getenv("FAULTS_CYCLES")); err == nil {
		cycles = map[syscall.Signal]int{syscall.SIGTERM: n, syscall.SIGKILL: n}
	}
	port := freePort(t, "udp")
	total := 0
	var longest time.Duration
	for sig, n := range cycles {
		for i := range n {
			a := startAgent(t, agentConfig{kernel: fmt.Sprintf("dropwatch: {protocol: udp, port: %d}\noom: {enabled: true}\nhungtask: {enabled: true}", port)})
			for _, c := range []string{"dropwatch", "oom", "hungtask"} {
				a.waitActive(c, 1)
			}
			a.waitDropwatch(port)
			held := bpfObjects(t, a.Pid())
			if len(held) == 0 {
				t.Fatal("the agent holds no BPF object: nothing to check")
			}
			took := a.stop(sig, shutdownBound+5*time.Second)
			longest = max(longest, took)
			deadline := time.Now().Add(10 * time.Second)
			for _, obj := range held {
				for bpfObjectExists(obj) && time.Now().Before(deadline) {
					time.Sleep(50 * time.Millisecond)
				}
				if bpfObjectExists(obj) {
					t.Errorf("%v cycle %d: %s still exists after the agent exited", sig, i, obj)
				}
			}
			total += len(held)
		}
	}
	t.Logf("figure: %d SIGTERM and %d SIGKILL cycles: %d BPF objects held, 0 left; slowest exit %v",
		cycles[syscall.SIGTERM], cycles[syscall.SIGKILL], total, longest.Round(10*time.Millisecond))
}

// Two agents on one host that held, and the netdev side effect: each sees
// every drop (its own programs), and neither's start-up disturbs the
// other's netlink subscription ("Wrong sender portid" before).
func TestTwoAgentsOnOneHost(t *testing.T) {
	port := freePort(t, "udp")
	cfg := agentConfig{kernel: fmt.Sprintf("dropwatch: {protocol: udp, port: %d, events_per_second: 0, all_reasons: false}\nnetdev: {enabled: true}", port)}
	a := startAgent(t, cfg)
	a.waitActive("netdev", 1)
	a.waitDropwatch(port)
	b := startAgent(t, cfg)
	b.waitActive("netdev", 1)
	b.waitDropwatch(port)
	a2 := startAgent(t, cfg) // a third start-up, seen by both
	a2.waitActive("netdev", 1)
	storm(t, port, 5000)
	counts := map[string]float64{}
	for name, ag := range map[string]*agent{"a": a, "b": b} {
		got := ag.settled(map[string]func() (float64, bool){"drops": func() (float64, bool) { return ag.metric(mDrops, map[string]string{lReason: "NO_SOCKET"}) }})
		counts[name] = got["drops"]
		if got["drops"] < 5000 {
			t.Errorf("agent %s counted %.0f drops of 5000", name, got["drops"])
		}
		if strings.Contains(ag.Log(), "Wrong sender portid") {
			t.Errorf("agent %s logged another agent's netlink request", name)
		}
	}
	t.Logf("figure: two agents, 5000 drops: a counted %.0f, b %.0f (pokes included); 'Wrong sender portid' lines: 0", counts["a"], counts["b"])
}

// Defect 3: two kernel receivers in one collector, in separate pipelines,
// export their metrics under scopes that name them; Prometheus shows both.
func TestTwoReceiversInOneCollector(t *testing.T) {
	pa, pb := freePort(t, "udp"), freePort(t, "udp")
	prom := freePort(t, "tcp")
	a := startAgent(t, agentConfig{
		kernel: fmt.Sprintf("dropwatch: {protocol: udp, port: %d, events_per_second: 0, all_reasons: false}", pa),
		extra: fmt.Sprintf(`  kernel/b:
    collection_interval: 500ms
    netdev: {enabled: false}
    oom: {enabled: false}
    hungtask: {enabled: false}
    loadavg: {enabled: false}
    dropwatch: {protocol: udp, port: %d, events_per_second: 0, all_reasons: false}`, pb),
		exporters: fmt.Sprintf("prometheus: {endpoint: 127.0.0.1:%d}", prom),
		pipelines: `    metrics: {receivers: [kernel], exporters: [file/metrics, prometheus]}
    metrics/b: {receivers: [kernel/b], exporters: [file/metrics, prometheus]}
    logs: {receivers: [kernel], exporters: [file/events]}
    logs/b: {receivers: [kernel/b], exporters: [file/events]}
`,
	})
	a.waitDropwatch(pa)
	a.waitUntil("kernel/b counts drops", 30*time.Second, func() (bool, string) {
		storm(t, pb, 1)
		v, ok := a.scopedMetric("kernel/b", mDrops, map[string]string{lReason: "NO_SOCKET"})
		return ok && v > 0, fmt.Sprint(v)
	})
	for range 7 { // in steps the ring buffer holds whole
		storm(t, pa, 30)
		storm(t, pb, 100)
		time.Sleep(50 * time.Millisecond)
	}
	got := a.settled(map[string]func() (float64, bool){
		"a": func() (float64, bool) { return a.scopedMetric("kernel", mSaved, nil) },
		"b": func() (float64, bool) { return a.scopedMetric("kernel/b", mSaved, nil) },
	})
	if got["a"] < 210 || got["b"] < 700 || got["a"] >= 700 {
		t.Errorf("events saved by kernel %.0f (≥210 sent to it), by kernel/b %.0f (≥700)", got["a"], got["b"])
	}
	body := ""
	a.waitUntil("Prometheus shows both receivers", 10*time.Second, func() (bool, string) {
		resp, err := httpGet(fmt.Sprintf("http://127.0.0.1:%d/metrics", prom))
		body = resp
		return err == nil && strings.Count(resp, "kernel_receiver_events_saved") >= 2 &&
			strings.Contains(resp, `otel_scope_otelcol_component_id="kernel/b"`) && strings.Contains(resp, `otel_scope_otelcol_component_id="kernel"`), fmt.Sprint(err)
	})
	var series []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "kernel_receiver_events_saved") {
			series = append(series, l)
		}
	}
	t.Logf("figure: two receivers: saved kernel=%.0f kernel/b=%.0f; Prometheus: %s", got["a"], got["b"], strings.Join(series, " | "))
}

// Defect 4: without the capabilities, the BPF collectors are inactive
// (active = 0, not restarting) with a reason naming the capability, and
// the rest of the receiver runs.
func TestMissingPrivileges(t *testing.T) {
	for _, tc := range []struct {
		name             string
		modify           func(*exec.Cmd)
		inactive, active []string
		want             string
	}{
		{"nobody", func(c *exec.Cmd) { c.Path = copyForEveryone(t, c.Path); testenv.AsNobody(t, c) },
			[]string{"dropwatch", "oom", "hungtask"}, []string{"loadavg", "netdev"}, "lacks CAP_BPF and CAP_PERFMON"},
		{"cap_bpf_only", func(c *exec.Cmd) { testenv.WithCapabilities(t, c, "bpf") },
			[]string{"dropwatch", "oom", "hungtask"}, []string{"loadavg", "netdev"}, "lacks CAP_PERFMON"},
		{"no_sys_admin", func(c *exec.Cmd) { testenv.WithCapabilities(t, c, "bpf", "perfmon", "sys_ptrace") },
			[]string{"hungtask"}, []string{"dropwatch", "oom", "loadavg", "netdev"}, "needs CAP_SYS_ADMIN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testenv.Tracefs(t) // the agent may not mount it without CAP_SYS_ADMIN
			a := startAgent(t, agentConfig{kernel: "oom: {enabled: true}\nhungtask: {enabled: true}\nnetdev: {enabled: true}"}, tc.modify)
			for _, c := range tc.inactive {
				a.waitActive(c, 0)
			}
			for _, c := range tc.active { // netdev needs no capability in its own namespace
				a.waitActive(c, 1)
				if c == "dropwatch" || c == "oom" { // active, and attached rather than restarting
					a.waitUntil(c+" attached", 20*time.Second, func() (bool, string) {
						v, ok := a.metric("kernel.receiver.bpf.program.attached", map[string]string{lCollector: c})
						return ok && v == 1, fmt.Sprint(v, ok)
					})
				}
			}
			var reasons []string
			for _, line := range strings.Split(a.Log(), "\n") {
				var entry struct {
					Msg, Collector, Error string
				}
				if json.Unmarshal([]byte(line), &entry) == nil && strings.Contains(entry.Msg, "lacks a privilege") {
					reasons = append(reasons, entry.Collector+": "+entry.Error)
					if !strings.Contains(entry.Error, tc.want) {
						t.Errorf("%s: reason %q does not say %q", entry.Collector, entry.Error, tc.want)
					}
					if strings.Contains(entry.Error, "MEMLOCK") {
						t.Errorf("%s: reason blames MEMLOCK: %q", entry.Collector, entry.Error)
					}
				}
			}
			if len(reasons) != len(tc.inactive) {
				t.Errorf("want a privilege reason for each of %v, got %q", tc.inactive, reasons)
			}
			restarts, _ := a.metric(mRestarts, map[string]string{lCollector: tc.inactive[0]})
			t.Logf("figure: %s: %d collectors inactive, restarts %.0f; %s", tc.name, len(reasons), restarts, strings.Join(reasons, " | "))
			a.stop(syscall.SIGTERM, shutdownBound+5*time.Second)
		})
	}
}

// Defect 5: a process names its thread with bytes that are not UTF-8 and
// makes a real drop; events.jsonl stays valid UTF-8 line by line, with
// U+FFFD for each bad byte.
func TestInvalidUTF8CommReachesNoOutput(t *testing.T) {
	port := freePort(t, "udp")
	a := startAgent(t, agentConfig{kernel: fmt.Sprintf("dropwatch: {protocol: udp, port: %d, events_per_second: 0, all_reasons: false}", port)})
	a.waitDropwatch(port)
	_, tid := testenv.RunUDPSenderNamed(t, port, 3, []byte("bad\xff\xfecomm\xc3"))
	want := "bad\uFFFD\uFFFDcomm\uFFFD"
	a.waitUntil("the named thread's drops are in events.jsonl", 20*time.Second, func() (bool, string) {
		n := 0
		for _, lr := range testenv.Records(a.logs(), eventDrop) {
			if id, _ := lr.Attributes().Get("thread.id"); id.Int() == int64(tid) {
				name, _ := lr.Attributes().Get("thread.name")
				if name.Str() != want {
					t.Fatalf("thread.name = %q, want %q", name.Str(), want)
				}
				n++
			}
		}
		return n >= 3, fmt.Sprint(n, " events")
	})
	raw, err := os.ReadFile(filepath.Join(a.dir, "events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	for i, l := range lines {
		if !utf8.ValidString(l) {
			t.Fatalf("events.jsonl line %d is not valid UTF-8", i+1)
		}
		if !json.Valid([]byte(l)) {
			t.Fatalf("events.jsonl line %d is not JSON", i+1)
		}
	}
	t.Logf("figure: comm %q from tid %d: %d events.jsonl lines, all valid UTF-8; thread.name %q", "bad\\xff\\xfecomm\\xc3", tid, len(lines), want)
}

func httpGet(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// linkExists asks for a BPF link by id (BPF_LINK_GET_FD_BY_ID).
func linkExists(id uint32) bool {
	l, err := link.NewFromID(link.ID(id))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// copyForEveryone copies the binary where any user may run it (the build
// directory need not be open to others).
func copyForEveryone(t *testing.T, bin string) string {
	t.Helper()
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(newDir(t), filepath.Base(bin))
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}
