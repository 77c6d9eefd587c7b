// Package e2e builds the otelcol-kernel distribution, runs it with the default
// configuration (distribution/config.yaml) and checks what comes out of its
// file and Prometheus exporters, including an event for a real link change.
package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/testenv"
)

const (
	metricName     = "kernel.loadavg.load1" // a metric every Linux host has
	promMetricName = "kernel_loadavg_load1"
	eventName      = "kernel.link.change"
	waitFor        = 30 * time.Second
)

func TestMain(m *testing.M) {
	testenv.MaybeRunHelper() // the oom subtest's victim is this binary
	os.Exit(m.Run())
}

func TestDistribution(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs Linux (the kernel receiver only runs there)")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_NET_ADMIN to create a network interface in the host network namespace)")
	}
	for _, tool := range []string{"ip", "make"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs the %s program", tool)
		}
	}

	root := repoRoot(t)
	bin := testenv.DistributionBinary(t, root)

	dir := t.TempDir()
	out := dir // the file exporters write events.jsonl and metrics.jsonl here
	promAddr := freeLoopbackAddr(t)
	healthAddr := freeLoopbackAddr(t)
	col := testenv.StartCollector(t, bin, testenv.CollectorOptions{WorkDir: dir, LogPath: filepath.Join(dir, "collector.log"), TailLines: 80, Args: []string{
		"--config", filepath.Join(root, "distribution", "config.yaml"),
		"--set=receivers::kernel::collection_interval=1s",
		"--set=receivers::kernel::netdev::enabled=true",
		"--set=exporters::file/events::path=" + filepath.Join(out, "events.jsonl"),
		"--set=exporters::file/metrics::path=" + filepath.Join(out, "metrics.jsonl"),
		"--set=exporters::prometheus::endpoint=" + promAddr,
		"--set=extensions::health_check::endpoint=" + healthAddr,
		"--set=service::telemetry::metrics::level=none",
	}})

	col.WaitUntil(t, "the health check reports the collector available", waitFor, func() (bool, string) {
		body, err := get("http://" + healthAddr + "/")
		return err == nil && strings.Contains(body, "Server available"), fmt.Sprint(body, err)
	})

	t.Run("prometheus", func(t *testing.T) {
		col.WaitUntil(t, "Prometheus serves "+promMetricName, waitFor, func() (bool, string) {
			body, err := get("http://" + promAddr + "/metrics")
			if err != nil {
				return false, err.Error()
			}
			var kernel []string
			for _, l := range strings.Split(body, "\n") {
				if strings.HasPrefix(l, "kernel_") {
					kernel = append(kernel, l)
				}
			}
			for _, l := range kernel {
				if strings.HasPrefix(l, promMetricName+"{") || strings.HasPrefix(l, promMetricName+" ") {
					return true, ""
				}
			}
			return false, fmt.Sprintf("%d kernel_ series: %s", len(kernel), strings.Join(kernel, "\n"))
		})
	})

	t.Run("file_metrics", func(t *testing.T) {
		col.WaitUntil(t, "the file exporter writes "+metricName, waitFor, func() (bool, string) {
			metrics, _, err := readOutput(out)
			if err != nil {
				return false, err.Error()
			}
			if len(testenv.NumberPoints(metrics, metricName, nil)) > 0 {
				return true, ""
			}
			return false, fmt.Sprintf("%d resourceMetrics lines, none with %s", len(metrics), metricName)
		})
	})

	t.Run("netdev_event", func(t *testing.T) {
		ifname := "e2e" + strconv.Itoa(os.Getpid())
		addLink(t, ifname)
		// Toggle until the event shows up: the netdev collector subscribes to
		// rtnetlink when it starts, which may be just after the first toggle.
		var changes []string
		both := func() bool { return slices.Contains(changes, "admin_up") && slices.Contains(changes, "admin_down") }
		deadline := time.Now().Add(waitFor)
		for !both() && time.Now().Before(deadline) {
			run(t, "ip", "link", "set", "dev", ifname, "up")
			time.Sleep(200 * time.Millisecond)
			run(t, "ip", "link", "set", "dev", ifname, "down")
			for range 10 { // the file exporter flushes every second
				time.Sleep(300 * time.Millisecond)
				_, logs, err := readOutput(out)
				if err != nil {
					t.Fatal(err)
				}
				if changes = linkEvents(logs, ifname); both() {
					break
				}
			}
		}
		if len(changes) == 0 {
			t.Fatalf("no %s log record with network.interface.name=%s in %s within %s", eventName, ifname, out, waitFor)
		}
		t.Logf("%s records for %s, by change: %v", eventName, ifname, changes)
		// README: bringing an interface up and down gives records with change admin_up and admin_down.
		for _, want := range []string{"admin_up", "admin_down"} {
			if !slices.Contains(changes, want) {
				t.Errorf("no %s record for %s with kernel.link.change_type=%s; got %v", eventName, ifname, want, changes)
			}
		}
	})

	t.Run("prometheus_increase", func(t *testing.T) { testIncreaseSeesTheFirstLinkChange(t, promAddr) })

	// A BPF event: UDP to a closed loopback port is a NO_SOCKET drop.
	t.Run("dropwatch_event", func(t *testing.T) {
		conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		closed := freeLoopbackAddr(t)
		to, err := net.ResolveUDPAddr("udp4", closed)
		if err != nil {
			t.Fatal(err)
		}
		port := strconv.Itoa(to.Port)
		var found []map[string]any
		deadline := time.Now().Add(waitFor)
		for len(found) == 0 && time.Now().Before(deadline) {
			if _, err := conn.WriteTo([]byte("x"), to); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second) // the file exporter flushes every second
			_, logs, err := readOutput(out)
			if err != nil {
				t.Fatal(err)
			}
			found = eventsWith(logs, "kernel.packet.drop", "destination.port", port)
		}
		if len(found) == 0 {
			t.Fatalf("no kernel.packet.drop record with destination.port=%s in %s within %s", port, out, waitFor)
		}
		if got := found[0]["kernel.drop.reason"]; got != "NO_SOCKET" {
			t.Errorf("reason %v, want NO_SOCKET: %v", got, found[0])
		}
	})

	// An OOM kill in a container of a Kubernetes pod: cgroups named as
	// containerd's CRI plugin names them (cgroupfs driver), in every
	// hierarchy this host has, with a 64 MiB memory limit.
	t.Run("oom_event", func(t *testing.T) {
		id, uid := testenv.RandomContainerID(), testenv.RandomPodUID()
		cg := testenv.NewContainerCgroups(t, "kubepods/burstable/pod"+uid+"/"+id)
		limit := filepath.Join(cg.Memory, "memory.limit_in_bytes")
		if _, err := os.Stat(limit); err != nil {
			limit = filepath.Join(cg.Memory, "memory.max")
		}
		if err := os.WriteFile(limit, []byte(strconv.Itoa(64<<20)), 0o644); err != nil {
			t.Fatal(err)
		}
		pid := strconv.Itoa(testenv.RunMemoryHog(t, cg.Dirs...))
		col.WaitUntil(t, "a kernel.oom.kill record for pid "+pid, waitFor, func() (bool, string) {
			_, logs, err := readOutput(out)
			if err != nil {
				return false, err.Error()
			}
			found := eventsWith(logs, "kernel.oom.kill", "thread.id", pid)
			if len(found) == 0 {
				return false, "none yet"
			}
			if found[0]["kernel.memcg.path"] != cg.Path || found[0]["kernel.oom.scope"] != "cgroup" {
				t.Errorf("record %v: want kernel.memcg.path %s and kernel.oom.scope cgroup", found[0], cg.Path)
			}
			res := resourceOf(logs, "kernel.oom.kill", "thread.id", pid)
			if res["container.id"] != id || res["k8s.pod.uid"] != uid {
				t.Errorf("resource %v: want container.id %s and k8s.pod.uid %s", res, id, uid)
			}
			return true, ""
		})
	})

	// A writer stuck on a frozen filesystem, with the hung-task timeout
	// lowered for the test.
	t.Run("hungtask_event", func(t *testing.T) {
		testenv.Sysctl(t, "kernel/hung_task_timeout_secs", "2")
		testenv.Sysctl(t, "kernel/hung_task_warnings", "10")
		fs := testenv.NewFrozenFS(t)
		pid := strconv.Itoa(fs.StartWriters(1)[0])
		col.WaitUntil(t, "a kernel.task.hung record for pid "+pid, waitFor, func() (bool, string) {
			_, logs, err := readOutput(out)
			if err != nil {
				return false, err.Error()
			}
			return len(eventsWith(logs, "kernel.task.hung", "thread.id", pid)) > 0, "none yet"
		})
		fs.Thaw()
	})

	// The link is gone before the collector stops (Cleanup of the subtest).
	t.Run("shutdown", func(t *testing.T) {
		_, code, err := col.Stop(syscall.SIGTERM, 20*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if code != 0 {
			t.Fatalf("collector exited with status %d after SIGTERM", code)
		}
	})
}

// repoRoot is the directory of the root go.mod, two levels up from here.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "builder-config.yaml")); err != nil {
		t.Fatalf("repo root not found: %v", err)
	}
	return dir
}

// readOutput reads what both file exporters wrote into dir so far.
func readOutput(dir string) (metrics []pmetric.Metrics, logs []plog.Logs, err error) {
	if metrics, err = testenv.ReadMetricsFile(filepath.Join(dir, "metrics.jsonl")); err != nil {
		return nil, nil, err
	}
	if logs, err = testenv.ReadLogsFile(filepath.Join(dir, "events.jsonl")); err != nil {
		return nil, nil, err
	}
	return metrics, logs, nil
}

// linkEvents returns the `change` attribute of every kernel.netdev record
// about ifname ("?" when it has none).
func linkEvents(logs []plog.Logs, ifname string) []string {
	var changes []string
	for _, lr := range testenv.Records(logs, eventName) {
		if v, ok := lr.Attributes().Get("network.interface.name"); !ok || v.AsString() != ifname {
			continue
		}
		change := "?"
		if v, ok := lr.Attributes().Get("kernel.link.change_type"); ok {
			change = v.AsString()
		}
		changes = append(changes, change)
	}
	return changes
}

// eventsWith returns the attributes of every record named event whose
// attribute key has the string form value.
func eventsWith(logs []plog.Logs, event, key, value string) []map[string]any {
	var out []map[string]any
	for _, lr := range testenv.Records(logs, event) {
		if testenv.AttributesMatch(lr.Attributes(), map[string]string{key: value}) {
			out = append(out, lr.Attributes().AsRaw())
		}
	}
	return out
}

// resourceOf returns the Resource attributes of the first record of event
// whose attribute key is value.
func resourceOf(logs []plog.Logs, event, key, value string) map[string]any {
	for _, lr := range testenv.Records(logs, event) {
		if testenv.AttributesMatch(lr.Attributes(), map[string]string{key: value}) {
			return lr.Resource.Attributes().AsRaw()
		}
	}
	return nil
}

// addLink creates a dummy interface (a veth pair if the dummy driver is
// missing) in the host network namespace, deleted when the test ends.
func addLink(t *testing.T, name string) {
	t.Helper()
	if out, err := exec.Command("ip", "link", "add", name, "type", "dummy").CombinedOutput(); err != nil {
		t.Logf("dummy link: %v: %s; trying veth", err, out)
		run(t, "ip", "link", "add", name, "type", "veth", "peer", "name", name+"p")
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "link", "del", name).CombinedOutput(); err != nil {
			t.Errorf("cleanup: ip link del %s: %v: %s", name, err, out)
		}
	})
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func get(url string) (string, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), nil
}

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
