package faults

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"golang.org/x/sys/unix"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/testenv"
)

// Names the suite reads, in one place: the lead renames metrics and
// labels to the semantic conventions as they settle.
const (
	mSaved        = "kernel.receiver.events.saved"
	mEmitted      = "kernel.receiver.events.emitted"
	mDropped      = "kernel.receiver.events.dropped"
	mActive       = "kernel.receiver.collector.active"
	mRestarts     = "kernel.receiver.collector.restarts"
	mDrops        = "kernel.dropwatch.drops"
	mLimited      = "kernel.dropwatch.events.limited"
	mLost         = "kernel.dropwatch.events.lost"
	lDropReason   = "kernel.receiver.drop_reason"
	lCollector    = "kernel.collector.name"
	lReason       = "kernel.drop.reason"
	eventDrop     = "kernel.packet.drop"
	scopeIDAttr   = "otelcol.component.id"
	shutdownBound = 5 * time.Second // kernelreceiver.ShutdownTimeout
)

var binOnce struct {
	sync.Once
	path string
}

// distribution returns the otelcol-kernel binary (rebuilt when stale).
func distribution(t *testing.T) string {
	t.Helper()
	testenv.RequireRoot(t, "BPF, netlink and mounts for the fault suite")
	binOnce.Do(func() { binOnce.path = testenv.DistributionBinary(t, repoRoot(t)) })
	if binOnce.path == "" {
		t.Fatal("no distribution binary")
	}
	return binOnce.path
}

func repoRoot(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "builder-config.yaml")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("repository root not found")
		}
		dir = parent
	}
}

// freePort returns a TCP (or UDP) port on loopback nothing listens on now.
func freePort(t *testing.T, network string) int {
	t.Helper()
	switch network {
	case "udp":
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	default:
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
}

// agent is one running otelcol-kernel.
type agent struct {
	*testenv.Collector
	t       *testing.T
	dir     string
	telPort int // the collector's own telemetry (Prometheus, pull)
}

// agentConfig is the usual configuration: the kernel receiver with the
// given sections (YAML, indented under `kernel:`), its metrics to
// metrics.jsonl and its logs to logsExporter (a name among exporters),
// and the collector's own telemetry on a Prometheus endpoint.
type agentConfig struct {
	kernel    string // extra lines under receivers::kernel
	exporters string // extra exporters
	logsTo    string // exporter of the logs pipeline; "" is file/events
	extra     string // appended verbatim (more receivers, pipelines)
	pipelines string // replaces the default pipelines when set
}

func (c agentConfig) render(dir string, telPort int) string {
	logsTo := c.logsTo
	if logsTo == "" {
		logsTo = "file/events"
	}
	pipelines := c.pipelines
	if pipelines == "" {
		pipelines = fmt.Sprintf(`    metrics: {receivers: [kernel], exporters: [file/metrics]}
    logs: {receivers: [kernel], exporters: [%s]}
`, logsTo)
	}
	// The event collectors other than dropwatch are off unless the test
	// configures them: their events (another test's veth, say) would
	// otherwise enter the counts.
	kernel := c.kernel
	for _, name := range []string{"netdev", "oom", "hungtask"} {
		if !strings.Contains(kernel, name+":") {
			kernel += "\n" + name + ": {enabled: false}"
		}
	}
	return fmt.Sprintf(`receivers:
  kernel:
    collection_interval: 500ms
    event_queue: {size: 4096, batch_size: 512, flush_interval: 100ms}
%s
%s
exporters:
  file/metrics: {path: %s, flush_interval: 100ms}
  file/events: {path: %s, flush_interval: 100ms}
%s
service:
  telemetry:
    logs: {level: info, encoding: json}
    metrics:
      level: detailed
      readers: [{pull: {exporter: {prometheus: {host: 127.0.0.1, port: %d, without_scope_info: true}}}}]
  pipelines:
%s`, indent(strings.TrimLeft(kernel, "\n"), "    "), c.extra, filepath.Join(dir, "metrics.jsonl"), filepath.Join(dir, "events.jsonl"),
		indent(c.exporters, "  "), telPort, pipelines)
}

func indent(s, by string) string {
	if s == "" {
		return ""
	}
	var out []string
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		out = append(out, by+l)
	}
	return strings.Join(out, "\n")
}

// newDir makes a directory the agent (possibly running as nobody) can use.
func newDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "otelcol-kernel-faults-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	return dir
}

// startAgent runs the distribution with cfg; modify adjusts the command
// (privileges) before it starts. The agent is SIGKILLed at cleanup if it
// still runs.
func startAgent(t *testing.T, cfg agentConfig, modify ...func(*exec.Cmd)) *agent {
	t.Helper()
	bin := distribution(t)
	dir := newDir(t)
	a := &agent{t: t, dir: dir, telPort: freePort(t, "tcp")}
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(cfg.render(dir, a.telPort)), 0o644); err != nil {
		t.Fatal(err)
	}
	a.Collector = testenv.StartCollector(t, bin, testenv.CollectorOptions{
		Args: []string{"--config", path},
		Prepare: func(cmd *exec.Cmd) {
			for _, m := range modify {
				m(cmd)
			}
		},
		Poll:      100 * time.Millisecond,
		TailLines: 60,
	})
	return a
}

// stop sends sig and returns how long the process took to exit (failing
// the test past limit).
func (a *agent) stop(sig syscall.Signal, limit time.Duration) time.Duration {
	a.t.Helper()
	took, _, err := a.Stop(sig, limit)
	if err != nil {
		a.t.Fatal(err)
	}
	return took
}

// waitUntil polls cond until it holds or timeout passes.
func (a *agent) waitUntil(what string, timeout time.Duration, cond func() (bool, string)) {
	a.t.Helper()
	a.WaitUntil(a.t, what, timeout, cond)
}

// waitActive waits until the named collector reports active = want.
func (a *agent) waitActive(collector string, want float64) {
	a.t.Helper()
	a.waitUntil(fmt.Sprintf("%s reports %s=%v", collector, mActive, want), 30*time.Second, func() (bool, string) {
		v, ok := a.metric(mActive, map[string]string{lCollector: collector})
		return ok && v == want, fmt.Sprint(v, ok)
	})
}

// metrics reads every batch metrics.jsonl holds so far.
func (a *agent) metrics() []pmetric.Metrics {
	a.t.Helper()
	md, err := testenv.ReadMetricsFile(filepath.Join(a.dir, "metrics.jsonl"))
	if err != nil {
		a.t.Fatal(err)
	}
	return md
}

// logs reads every batch events.jsonl holds so far.
func (a *agent) logs() []plog.Logs {
	a.t.Helper()
	ld, err := testenv.ReadLogsFile(filepath.Join(a.dir, "events.jsonl"))
	if err != nil {
		a.t.Fatal(err)
	}
	return ld
}

// metric is the latest value of the point named name whose attributes
// include want (and, with scope set, whose scope names that receiver).
func (a *agent) metric(name string, want map[string]string) (float64, bool) {
	return a.scopedMetric("", name, want)
}

func (a *agent) scopedMetric(scope, name string, want map[string]string) (float64, bool) {
	var scopeWant map[string]string
	if scope != "" {
		scopeWant = map[string]string{scopeIDAttr: scope}
	}
	points := testenv.ScopedNumberPoints(a.metrics(), scopeWant, name, want)
	if len(points) == 0 {
		return 0, false
	}
	return testenv.PointValue(points[len(points)-1]), true
}

// settled waits until the named points stop changing (two reads a second
// apart agree) and returns them: the kernel's counters are copied every
// second and reported every collection interval.
func (a *agent) settled(points map[string]func() (float64, bool)) map[string]float64 {
	a.t.Helper()
	read := func() map[string]float64 {
		out := map[string]float64{}
		for k, f := range points {
			v, _ := f()
			out[k] = v
		}
		return out
	}
	prev := read()
	for range 30 {
		time.Sleep(1500 * time.Millisecond)
		now := read()
		same := true
		for k := range now {
			if now[k] != prev[k] {
				same = false
			}
		}
		if same {
			return now
		}
		prev = now
	}
	a.t.Fatalf("counters did not settle: %v", prev)
	return nil
}

// telemetry scrapes the collector's own Prometheus endpoint and returns the
// value of each series whose name and labels match.
func (a *agent) telemetry(name string, labels map[string]string) float64 {
	a.t.Helper()
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(a.telPort) + "/metrics")
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for k, v := range labels {
			if !strings.Contains(line, k+`="`+v+`"`) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

// storm sends n UDP datagrams to 127.0.0.1:port, where nothing listens: each
// is one NO_SOCKET drop. An unconnected socket, so the ICMP errors coming
// back do not stop it. It returns how many were sent.
func storm(t *testing.T, port, n int) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	to := &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}
	payload := []byte("otelcol-kernel fault suite")
	sent := 0
	for range n {
		if err := unix.Sendto(fd, payload, 0, to); err != nil {
			if err == unix.ECONNREFUSED || err == unix.EAGAIN {
				continue // an ICMP error reported on this socket: not sent
			}
			t.Fatalf("after %d datagrams: %v", sent, err)
		}
		sent++
	}
	return sent
}

// pokeUntilEvents sends one drop at a time until the agent's dropwatch
// has attached (it counts one).
func (a *agent) waitDropwatch(port int) {
	a.t.Helper()
	a.waitUntil("dropwatch counts drops", 30*time.Second, func() (bool, string) {
		storm(a.t, port, 1)
		v, ok := a.metric(mDrops, map[string]string{lReason: "NO_SOCKET"})
		return ok && v > 0, fmt.Sprint(v, ok)
	})
}
