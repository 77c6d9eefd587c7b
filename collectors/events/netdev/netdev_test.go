package netdev

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/vishvananda/netlink"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/metric"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/testenv"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/tracing"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/tracing/tracingtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestDiff(t *testing.T) {
	up, down := true, false
	for _, tc := range []struct {
		name      string
		prev, now linkState
		want      []string
	}{
		{"no change down", linkState{down, down}, linkState{down, down}, nil},
		{"no change up", linkState{up, up}, linkState{up, up}, nil},
		{"admin up, no peer", linkState{down, down}, linkState{up, down}, []string{changeAdminUp}},
		{"carrier comes", linkState{up, down}, linkState{up, up}, []string{changeCarrierUp}},
		{"carrier goes", linkState{up, up}, linkState{up, down}, []string{changeCarrierDown}},
		{"admin down drops carrier", linkState{up, up}, linkState{down, down}, []string{changeAdminDown, changeCarrierDown}},
		{"admin down without carrier", linkState{up, down}, linkState{down, down}, []string{changeAdminDown}},
		{"both at once, admin first", linkState{down, down}, linkState{up, up}, []string{changeAdminUp, changeCarrierUp}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, diff(tc.prev, tc.now))
		})
	}
}

func TestSeverityAndSummary(t *testing.T) {
	for change, want := range map[string]struct {
		sev     plog.SeverityNumber
		summary string
	}{
		changeAdminUp:     {plog.SeverityNumberInfo, "eth0: admin up"},
		changeAdminDown:   {plog.SeverityNumberWarn, "eth0: admin down"},
		changeCarrierUp:   {plog.SeverityNumberInfo, "eth0: carrier up"},
		changeCarrierDown: {plog.SeverityNumberWarn, "eth0: carrier down"},
	} {
		e := &linkEvent{Interface: "eth0", Change: change}
		assert.Equal(t, want.sev, e.Severity(), change)
		assert.Equal(t, want.summary, e.Summary(), change)
	}
}

func TestValidate(t *testing.T) {
	assert.NoError(t, (&Config{}).Validate())
	assert.NoError(t, (&Config{Include: "^eth", Exclude: "^veth", NetworkNamespaces: []string{"/proc/1/ns/net"}}).Validate())
	err := (&Config{Include: "(", Exclude: "[", NetworkNamespaces: []string{"/var/run/netns/a", "", "netns/b"}}).Validate()
	require.Error(t, err)
	assert.Equal(t, strings.Join([]string{
		"include: invalid regular expression \"(\": error parsing regexp: missing closing ): `(`",
		"exclude: invalid regular expression \"[\": error parsing regexp: missing closing ]: `[`",
		"network_namespaces[1]: empty path",
		`network_namespaces[2]: "netns/b" is not an absolute path`,
	}, "\n"), err.Error())

	// The factory refuses a bad expression too (for callers that skip Validate).
	_, err = newNetdev(tracing.Settings{Config: &Config{Exclude: "a("}})
	assert.ErrorContains(t, err, `exclude: invalid regular expression "a("`)
}

// TestSeries checks the counter bookkeeping: a removed interface's series
// is reported once more and then dropped, unless its name comes back first.
func TestSeries(t *testing.T) {
	c := &netdevCollector{counts: map[seriesKey]*series{}}
	update := func() map[string]float64 {
		data, err := c.Update()
		require.NoError(t, err)
		return counters(data)
	}
	c.count(1, "eth0", changeAdminUp)
	c.count(1, "eth0", changeAdminUp)
	c.count(1, "eth1", changeCarrierDown)
	c.count(2, "eth0", changeAdminUp) // same name, another namespace
	assert.Equal(t, map[string]float64{"1 eth0 admin_up": 2, "1 eth1 carrier_down": 1, "2 eth0 admin_up": 1}, update())

	c.gone(1, "eth0")
	c.gone(1, "eth1")
	c.present(1, "eth1") // recreated before the next Update: it goes on
	assert.Equal(t, map[string]float64{"1 eth0 admin_up": 2, "1 eth1 carrier_down": 1, "2 eth0 admin_up": 1}, update())
	assert.Equal(t, map[string]float64{"1 eth1 carrier_down": 1, "2 eth0 admin_up": 1}, update())

	c.forgetNetns(2)
	c.count(1, "eth0", changeAdminDown) // a new eth0 starts from zero
	assert.Equal(t, map[string]float64{"1 eth0 admin_down": 1, "1 eth1 carrier_down": 1, "2 eth0 admin_up": 1}, update())
	assert.Equal(t, map[string]float64{"1 eth0 admin_down": 1, "1 eth1 carrier_down": 1}, update())
}

// TestSubscriptionErrors: only errors that make the baseline or the
// subscription unusable end Start; messages the library skipped do not.
func TestSubscriptionErrors(t *testing.T) {
	errs := make(chan error, 1)
	w := &watcher{path: "/var/run/netns/x", logger: zaptest.NewLogger(t), done: make(chan struct{}), errs: errs}
	w.onError(errors.New("Wrong sender portid 4242, expected 0"))
	w.onError(errors.New("error message: operation not permitted"))
	assert.Empty(t, errs)
	assert.EqualValues(t, 2, w.skipped.Load())

	w.onError(netlink.ErrDumpInterrupted)
	require.Len(t, errs, 1)
	err := <-errs
	assert.ErrorIs(t, err, netlink.ErrDumpInterrupted)
	assert.ErrorContains(t, err, `network namespace "/var/run/netns/x"`)

	close(w.done) // stopping: our own close is no error
	w.onError(netlink.ErrDumpInterrupted)
	w.fail(errors.New("subscription ended"))
	assert.Empty(t, errs)
}

// testNetns makes a network namespace with two veth pairs, kv0/kv1 and
// skip0/skip1 (all down), and deletes it, with the veths, when the test ends.
func testNetns(t *testing.T, suffix string) (name, path string, inode uint64) {
	t.Helper()
	testenv.RequireRoot(t, "network namespaces and veth links")
	testenv.RequireTool(t, "ip")
	name = fmt.Sprintf("kps-netdev-%d-%s", os.Getpid(), suffix)
	path = "/var/run/netns/" + name
	testenv.Run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		// A test may have deleted it already.
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			if _, statErr := os.Stat(path); statErr == nil {
				t.Errorf("cleanup: ip netns del %s: %v\n%s", name, err, out)
			}
		}
	})
	testenv.Run(t, "ip", "-n", name, "link", "add", "kv0", "type", "veth", "peer", "name", "kv1")
	testenv.Run(t, "ip", "-n", name, "link", "add", "skip0", "type", "veth", "peer", "name", "skip1")
	var st syscall.Stat_t
	require.NoError(t, syscall.Stat(path, &st))
	return name, path, st.Ino
}

func collector(h *tracingtest.Harness) *netdevCollector {
	return h.Attr.TracingData.(*netdevCollector)
}

// waitHandled waits until the collector has processed n link messages in
// total, e.g. the initial dump of the namespace's links.
func waitHandled(t *testing.T, h *tracingtest.Harness, n uint64) {
	t.Helper()
	require.Eventually(t, func() bool { return collector(h).handled.Load() >= n },
		5*time.Second, 5*time.Millisecond, "link messages handled: %d, want %d", collector(h).handled.Load(), n)
}

func link(t *testing.T, ns string, args ...string) {
	t.Helper()
	testenv.Run(t, "ip", append([]string{"-n", ns, "link"}, args...)...)
}

// TestEventsInAContainersNamespace puts a process of a docker-named
// container (its cgroups in every hierarchy) in the namespace: the
// namespace's link events are then that container's.
func TestEventsInAContainersNamespace(t *testing.T) {
	ns, path, _ := testNetns(t, "container")
	id := testenv.RandomContainerID()
	cg := testenv.NewContainerCgroups(t, "docker/"+id)
	sleeper := exec.Command("ip", "netns", "exec", ns, "sleep", "60")
	require.NoError(t, sleeper.Start())
	t.Cleanup(func() { _ = sleeper.Process.Kill(); _ = sleeper.Wait() }) // before the cgroups are removed
	for _, dir := range cg.Dirs {
		require.NoError(t, os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(sleeper.Process.Pid)), 0o644))
	}
	// ip enters the namespace and then execs sleep: wait for the exec.
	require.Eventually(t, func() bool {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", sleeper.Process.Pid))
		return strings.TrimSpace(string(comm)) == "sleep"
	}, 5*time.Second, 10*time.Millisecond)

	h := tracingtest.New(t, "netdev", &Config{Include: "^kv0$", NetworkNamespaces: []string{path}})
	h.Run(t)
	waitHandled(t, h, 5)
	link(t, ns, "set", "kv0", "up")
	e := h.WaitEvents(t, 5*time.Second, 1, nil)[0]
	assert.Equal(t, id, e.ContainerID())
	assert.Equal(t, "docker", e.Resource.Attributes().AsRaw()["container.runtime.name"])
}

func TestVethEventsInANamespace(t *testing.T) {
	ns, path, inode := testNetns(t, "events")
	h := tracingtest.New(t, "netdev", &Config{Exclude: "^skip", NetworkNamespaces: []string{path}})
	// Include and exclude together: include picks kv1 and skip1, exclude drops skip1.
	hInc := tracingtest.New(t, "netdev", &Config{Include: "1$", Exclude: "^skip", NetworkNamespaces: []string{path}})
	h.Run(t)
	hInc.Run(t)
	// The initial dump (lo, kv0, kv1, skip0, skip1) sets the baselines silently.
	waitHandled(t, h, 5)
	waitHandled(t, hInc, 5)
	// Every interface seen has its four series, at 0 before any change, so
	// that the first change is an increase (what alerts look for).
	ino := strconv.FormatUint(inode, 10)
	assert.Equal(t, zeroSeries(ino, "lo", "kv0", "kv1"), seriesOf(h.Update(t)))
	assert.Equal(t, zeroSeries(ino, "kv1"), seriesOf(hInc.Update(t)))

	link(t, ns, "set", "skip0", "up") // excluded: nothing
	link(t, ns, "set", "skip1", "up") // excluded (carrier comes on both skip ends): nothing
	link(t, ns, "set", "kv0", "up")   // admin up; no carrier until the peer is up
	first := h.WaitEvents(t, 5*time.Second, 1, nil)
	assert.Equal(t, "kv0", first[0].Attr("network.interface.name"))
	assert.Equal(t, "admin_up", first[0].Attr("kernel.link.change_type"))
	assert.Equal(t, "up", first[0].Attr("kernel.link.admin_state"))
	assert.Equal(t, "down", first[0].Attr("kernel.link.carrier"))
	link(t, ns, "set", "kv1", "up") // both up: kv1 admin up, carrier on both ends
	h.WaitEvents(t, 5*time.Second, 4, nil)
	link(t, ns, "set", "kv0", "down") // kv0 admin + carrier down; kv1 loses carrier

	h.WaitEvents(t, 5*time.Second, 7, nil)
	hInc.WaitEvents(t, 5*time.Second, 3, nil)
	time.Sleep(100 * time.Millisecond) // nothing more may arrive
	events := h.Events(t)

	var got []string
	kvIndex := map[string]string{}
	for _, e := range events {
		name, change := e.Attr("network.interface.name"), e.Attr("kernel.link.change_type")
		got = append(got, name+" "+change)
		assert.Equal(t, "veth", e.Attr("kernel.link.driver"), "ethtool in the namespace")
		assert.NotEmpty(t, e.Attr("hw.driver_version"))
		assert.Equal(t, "", e.Attr("hw.firmware_version"))
		assert.Equal(t, "", e.Attr("kernel.link.bus_info"))
		assert.Equal(t, "veth", e.Attr("kernel.link.kind"))
		assert.Equal(t, strconv.FormatUint(inode, 10), e.Attr("kernel.netns.inode"))
		assert.Equal(t, "", e.ContainerID())
		assert.Regexp(t, `^([0-9a-f]{2}:){5}[0-9a-f]{2}$`, e.Attr("kernel.link.mac"))
		assert.Equal(t, "1500", e.Attr("kernel.link.mtu"))
		// The operational state comes from linkwatch, a moment after the
		// flags: the message that first has IFF_LOWER_UP may still say
		// lowerlayerdown.
		assert.Contains(t, []string{"up", "down", "lowerlayerdown"}, e.Attr("kernel.link.oper_state"))
		assert.Equal(t, name+": "+strings.ReplaceAll(change, "_", " "), e.Body().Str())
		if strings.HasSuffix(change, "_down") {
			assert.Equal(t, plog.SeverityNumberWarn, e.SeverityNumber(), "%s %s", name, change)
		} else {
			assert.Equal(t, plog.SeverityNumberInfo, e.SeverityNumber(), "%s %s", name, change)
		}
		if prev, ok := kvIndex[name]; ok {
			assert.Equal(t, prev, e.Attr("kernel.interface.index"))
		}
		kvIndex[name] = e.Attr("kernel.interface.index")
	}
	// kv0 up → admin_up; kv1 up → kv1 admin_up, then both get carrier (in kernel order);
	// kv0 down → kv0 admin_down + carrier_down, kv1 carrier_down.
	assert.ElementsMatch(t, []string{
		"kv0 admin_up", "kv1 admin_up", "kv0 carrier_up", "kv1 carrier_up",
		"kv0 admin_down", "kv0 carrier_down", "kv1 carrier_down",
	}, got)
	require.Len(t, got, 7)
	assert.Equal(t, "kv0 admin_up", got[0])
	assert.Subset(t, got[4:], []string{"kv0 admin_down", "kv0 carrier_down", "kv1 carrier_down"})

	var gotInc []string
	for _, e := range hInc.Events(t) {
		gotInc = append(gotInc, e.Attr("network.interface.name")+" "+e.Attr("kernel.link.change_type"))
	}
	assert.ElementsMatch(t, []string{"kv1 admin_up", "kv1 carrier_up", "kv1 carrier_down"}, gotInc)

	want := map[string]float64{
		ino + " kv0 admin_up": 1, ino + " kv1 admin_up": 1, ino + " kv0 carrier_up": 1, ino + " kv1 carrier_up": 1,
		ino + " kv0 admin_down": 1, ino + " kv0 carrier_down": 1, ino + " kv1 carrier_down": 1,
	}
	data := h.Update(t)
	assert.Equal(t, want, counters(data))
	for _, d := range data {
		assert.Equal(t, metric.Counter, d.Kind)
	}
	assert.Equal(t, map[string]float64{ino + " kv1 admin_up": 1, ino + " kv1 carrier_up": 1, ino + " kv1 carrier_down": 1}, counters(hInc.Update(t)))

	// Deleting the pair closes kv1 first, which is still admin up: the
	// kernel sends that as an ordinary RTM_NEWLINK without IFF_UP (an
	// admin_down), then an RTM_DELLINK for each end, which are no events.
	link(t, ns, "del", "kv0")
	h.WaitEvents(t, 5*time.Second, 8, nil)
	assert.Equal(t, "kv1 admin_down", h.Events(t)[7].Attr("network.interface.name")+" "+h.Events(t)[7].Attr("kernel.link.change_type"))
	want[ino+" kv1 admin_down"] = 1
	// A deleted interface's series are reported once more, then forgotten.
	require.Eventually(t, func() bool { return removed(collector(h), "kv0") && removed(collector(h), "kv1") },
		5*time.Second, 5*time.Millisecond, "RTM_DELLINK handled")
	assert.Equal(t, want, counters(h.Update(t)), "reported once after removal")
	assert.Equal(t, zeroSeries(ino, "lo"), seriesOf(h.Update(t)), "then forgotten: only lo's series are left")
	time.Sleep(50 * time.Millisecond)
	assert.Len(t, h.Events(t), 8)
}

// removed reports whether every series of device is marked removed.
func removed(c *netdevCollector, device string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for k, s := range c.counts {
		if k.device == device {
			if !s.removed {
				return false
			}
			n++
		}
	}
	return n > 0
}

// TestCountersAcrossRestart: counts survive a restart of Start; an
// interface deleted while nothing listened is still forgotten.
func TestCountersAcrossRestart(t *testing.T) {
	ns, path, inode := testNetns(t, "restart")
	ino := strconv.FormatUint(inode, 10)
	h := tracingtest.New(t, "netdev", &Config{NetworkNamespaces: []string{path}})
	stop := h.Run(t)
	waitHandled(t, h, 5)
	link(t, ns, "set", "kv0", "up")
	link(t, ns, "set", "skip0", "up")
	h.WaitEvents(t, 5*time.Second, 2, nil)
	stop()

	link(t, ns, "del", "kv0")         // unseen: nothing listens
	link(t, ns, "set", "skip1", "up") // unseen too; the next Start takes it as the baseline
	handled := collector(h).handled.Load()
	h.Run(t)
	waitHandled(t, h, handled+3) // the dump: lo, skip0, skip1
	assert.Equal(t, map[string]float64{ino + " kv0 admin_up": 1, ino + " skip0 admin_up": 1}, counters(h.Update(t)))
	assert.Equal(t, map[string]float64{ino + " skip0 admin_up": 1}, counters(h.Update(t)))

	link(t, ns, "set", "skip0", "down") // skip0 admin + carrier down, skip1 carrier down
	h.WaitEvents(t, 5*time.Second, 3, func(e tracingtest.Event) bool { return strings.HasSuffix(e.Attr("kernel.link.change_type"), "_down") })
	assert.Equal(t, map[string]float64{
		ino + " skip0 admin_up": 1, ino + " skip0 admin_down": 1, ino + " skip0 carrier_down": 1, ino + " skip1 carrier_down": 1,
	}, counters(h.Update(t)))
	assert.Len(t, h.Events(t), 5, "kv0 admin_up, skip0 admin_up, then the three downs")
}

// TestNamespaceDeletedEndsStart: once the path no longer names the
// namespace, Start lets go of it and returns an error naming the path.
func TestNamespaceDeletedEndsStart(t *testing.T) {
	ns, path, _ := testNetns(t, "gone")
	defer func(d time.Duration) { netnsCheckInterval = d }(netnsCheckInterval)
	netnsCheckInterval = 20 * time.Millisecond

	h := tracingtest.New(t, "netdev", &Config{NetworkNamespaces: []string{path}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- collector(h).Start(ctx) }()
	waitHandled(t, h, 5)
	link(t, ns, "set", "kv0", "up")
	h.WaitEvents(t, 5*time.Second, 1, nil)
	require.Len(t, counters(h.Update(t)), 1)

	testenv.Run(t, "ip", "netns", "del", ns)
	select {
	case err := <-done:
		require.Error(t, err)
		assert.Contains(t, err.Error(), fmt.Sprintf("network namespace %q is gone", path))
	case <-time.After(5 * time.Second):
		t.Fatal("Start still running after its namespace was deleted")
	}
	assert.Len(t, counters(h.Update(t)), 1, "reported once more")
	assert.Empty(t, seriesOf(h.Update(t)), "then forgotten")
}

func TestCheckPath(t *testing.T) {
	var own syscall.Stat_t
	require.NoError(t, syscall.Stat("/proc/self/ns/net", &own))
	w := &watcher{path: "/proc/self/ns/net", dev: own.Dev, inode: uint32(own.Ino)}
	assert.NoError(t, w.checkPath())
	assert.NoError(t, (&watcher{}).checkPath(), "the receiver's own namespace has no path to lose")

	w.inode++
	assert.ErrorContains(t, w.checkPath(), `network namespace "/proc/self/ns/net" now names another namespace`)
	w.path = "/dev/null"
	assert.ErrorContains(t, w.checkPath(), `network namespace "/dev/null" is gone: the path is no longer a namespace file`)
	w.path = "/nonexistent/netns"
	assert.ErrorContains(t, w.checkPath(), `network namespace "/nonexistent/netns" is gone: no such file or directory`)
}

func TestBadNamespaceFailsStart(t *testing.T) {
	for path, want := range map[string]string{
		"/nonexistent/netns": `network namespace "/nonexistent/netns": no such file or directory`,
		"/proc/self/ns/mnt":  `network namespace "/proc/self/ns/mnt": not a network namespace file`,
		"/dev/null":          `network namespace "/dev/null": not a network namespace file`,
	} {
		h := tracingtest.New(t, "netdev", &Config{NetworkNamespaces: []string{path}})
		err := collector(h).Start(context.Background())
		require.Error(t, err, path)
		assert.Contains(t, err.Error(), want)
	}
}

// TestOwnNamespaceStartsAndStops: the receiver's own namespace is watched
// without entering it, and without any capability: the initial dump goes
// over a socket of its own (see subscribe).
func TestOwnNamespaceStartsAndStops(t *testing.T) {
	h := tracingtest.New(t, "netdev", nil)
	stop := h.Run(t)
	waitHandled(t, h, 1) // at least lo
	stop()               // fails the test if Start returned an error; goleak checks its goroutines
}

// TestStartDoesNotDisturbOtherListeners: a collector starting up sends
// nothing to the link multicast group, so another listener (another agent
// on the host) sees no message from it. With the library's ListExisting
// the dump request went to the group and every other listener logged
// "Wrong sender portid".
func TestStartDoesNotDisturbOtherListeners(t *testing.T) {
	ch, done := make(chan netlink.LinkUpdate, 256), make(chan struct{})
	var errs []error
	var mu sync.Mutex
	require.NoError(t, netlink.LinkSubscribeWithOptions(ch, done, netlink.LinkSubscribeOptions{
		ErrorCallback: func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() },
	}))
	defer func() {
		close(done)
		for range ch {
		}
	}()
	for range 3 {
		h := tracingtest.New(t, "netdev", nil)
		stop := h.Run(t)
		waitHandled(t, h, 1)
		stop()
	}
	time.Sleep(200 * time.Millisecond) // what the group got is delivered by now
	mu.Lock()
	defer mu.Unlock()
	assert.Empty(t, errs, "the other listener received messages not from the kernel")
}

// counters keys each non-zero link.changes point by "netns device change".
func counters(data []*metric.Data) map[string]float64 {
	out := map[string]float64{}
	for k, v := range seriesOf(data) {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

// seriesOf keys every link.changes point, zeros included, likewise.
func seriesOf(data []*metric.Data) map[string]float64 {
	out := map[string]float64{}
	for _, d := range data {
		out[d.Labels[attrNetns]+" "+d.Labels[attrInterface]+" "+d.Labels[attrChange]] = d.Value
	}
	return out
}

// zeroSeries is what seriesOf gives for devices seen but never changed.
func zeroSeries(netns string, devices ...string) map[string]float64 {
	out := map[string]float64{}
	for _, d := range devices {
		for _, change := range allChanges {
			out[netns+" "+d+" "+change] = 0
		}
	}
	return out
}
