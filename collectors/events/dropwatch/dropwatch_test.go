package dropwatch

import (
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.uber.org/goleak"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/bpf"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/metric"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/storage"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/testenv"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/tracing/tracingtest"
)

func TestMain(m *testing.M) {
	testenv.MaybeRunHelper()
	goleak.VerifyTestMain(m)
}

// closedPort returns a UDP port on loopback that nothing listens on.
func closedPort(t *testing.T) int {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	port := c.LocalAddr().(*net.UDPAddr).Port
	require.NoError(t, c.Close())
	return port
}

// sendUDP sends n datagrams from an unconnected socket, which (unlike a
// connected one) is not stopped by the ICMP errors that come back.
func sendUDP(t *testing.T, port, n int) {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer c.Close()
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
	for range n {
		_, err := c.WriteTo([]byte("x"), to)
		require.NoError(t, err)
	}
}

func start(t *testing.T, cfg *Config, opts bpf.Options) *tracingtest.Harness {
	testenv.RequireRoot(t, "loading BPF programs")
	h := tracingtest.New(t, "dropwatch", cfg, tracingtest.BPFOptions(opts))
	h.Run(t)
	// Attached once the hook has counted a drop: poke until it does.
	require.Eventually(t, func() bool {
		sendUDP(t, cfg.Port, 1)
		time.Sleep(50 * time.Millisecond)
		return len(h.Events(t)) > 0
	}, 10*time.Second, 100*time.Millisecond)
	return h
}

func drops(data []*metric.Data) map[string]float64 {
	out := map[string]float64{}
	for _, d := range data {
		switch d.Name {
		case "drops":
			out[d.Labels["kernel.drop.reason"]] = d.Value
		default:
			out[d.Name] = d.Value
		}
	}
	return out
}

// waitDrops waits until the kernel's counts (refreshed every second) reach want for reason.
func waitDrops(t *testing.T, h *tracingtest.Harness, reason string, want float64) map[string]float64 {
	var got map[string]float64
	require.Eventually(t, func() bool {
		got = drops(h.Update(t))
		return got[reason] >= want
	}, 10*time.Second, 100*time.Millisecond, "drops %v", got)
	return got
}

func TestUDPToAClosedPort(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts bpf.Options
	}{
		{"best hook", bpf.Options{}},
		{"tracepoint", bpf.Options{Force: map[string]bpf.Kind{"kfree_skb": bpf.Tracepoint}}},
		{"perf buffer", bpf.Options{PerfBuffer: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.opts.Force != nil {
				testenv.Tracefs(t)
			}
			port := closedPort(t)
			h := start(t, &Config{Protocol: "udp", Port: port, EventsPerSecond: 0, KernelStack: true}, tc.opts)
			before := len(h.Events(t))
			// The kernel's count so far: the pokes that found the hook
			// attached, including any whose event the perf buffer could not
			// take before its reader was open. Update reads the kernel's counts.
			base := drops(h.Update(t))["NO_SOCKET"]

			const packets = 20
			sendUDP(t, port, packets)
			events := h.WaitEvents(t, 5*time.Second, before+packets, nil)
			time.Sleep(200 * time.Millisecond)
			events = h.Events(t)
			assert.Len(t, events, before+packets, "one event per dropped packet")

			for _, e := range events {
				assert.Equal(t, "NO_SOCKET", e.Attr("kernel.drop.reason"))
				assert.Equal(t, "udp", e.Attr("network.transport"))
				assert.Equal(t, strconv.Itoa(port), e.Attr("destination.port"))
				assert.Equal(t, "127.0.0.1", e.Attr("source.address"))
				assert.Equal(t, "127.0.0.1", e.Attr("destination.address"))
				assert.Equal(t, "lo", e.Attr("network.interface.name"))
				assert.Equal(t, "1", e.Attr("kernel.interface.index"))
				assert.Equal(t, "ipv4", e.Attr("network.type"))
				assert.Regexp(t, `^[1-9][0-9]*$`, e.Attr("kernel.netns.inode"))
				assert.Regexp(t, `^[a-z_0-9.]+\+0x[0-9a-f]+$`, e.Attr("kernel.drop.location"))
				fn, _, _ := strings.Cut(e.Attr("kernel.drop.location"), "+")
				assert.Equal(t, fn, e.Attr("code.function.name"))
				st := e.Attr("code.stacktrace")
				require.NotEmpty(t, st, "kernel_stack is on")
				frames := strings.Split(st, "\n")
				require.Greater(t, len(frames), 2)
				// The drop location's function is at the top of the stack,
				// under at most the function that fires the tracepoint
				// (kfree_skb_reason on 6.1, sk_skb_reason_drop on 6.18).
				top := frames[0] + " " + frames[1]
				assert.Contains(t, top, fn+"+", "the stack starts where the packet was dropped")
			}
			got := waitDrops(t, h, "NO_SOCKET", base+packets)
			assert.Equal(t, base+packets, got["NO_SOCKET"], "the counter matches the packets sent")
		})
	}
}

// Without a filter the program counts and rate-checks a drop before it
// parses the packet, and sends the record without its stack: the events
// still carry the addresses and ports, over IPv4 and IPv6.
func TestUnfilteredDropsCarryTheirHeaders(t *testing.T) {
	testenv.RequireRoot(t, "loading BPF programs")
	port := closedPort(t)
	h := tracingtest.New(t, "dropwatch", &Config{EventsPerSecond: 0})
	h.Run(t)
	h.WaitAttached(t, 10*time.Second)
	for _, tc := range []struct{ network, addr string }{{"udp4", "127.0.0.1"}, {"udp6", "::1"}} {
		c, err := net.ListenPacket(tc.network, net.JoinHostPort(tc.addr, "0"))
		if err != nil {
			t.Logf("%s: %v", tc.network, err)
			continue
		}
		to := &net.UDPAddr{IP: net.ParseIP(tc.addr), Port: port}
		match := func(e tracingtest.Event) bool {
			return e.Attr("destination.port") == strconv.Itoa(port) && e.Attr("destination.address") == tc.addr
		}
		var e tracingtest.Event
		require.Eventually(t, func() bool {
			c.WriteTo([]byte("x"), to)
			time.Sleep(20 * time.Millisecond)
			for _, ev := range h.Events(t) {
				if match(ev) {
					e = ev
					return true
				}
			}
			return false
		}, 10*time.Second, 50*time.Millisecond, tc.network)
		c.Close()
		assert.Equal(t, "udp", e.Attr("network.transport"), tc.network)
		assert.Equal(t, tc.addr, e.Attr("source.address"), tc.network)
		assert.Equal(t, "lo", e.Attr("network.interface.name"), tc.network)
		_, hasStack := e.Attributes().Get("code.stacktrace")
		assert.False(t, hasStack, "no stack without kernel_stack")
	}
}

// The writer (the event path's fast mapping) gives what the reflective
// mapping gives, for every shape of drop event.
func TestDropEventWriterMatchesReflection(t *testing.T) {
	for _, e := range []*dropEvent{
		{},
		{Reason: "NO_SOCKET", ReasonCode: 3, Location: "udp_queue_rcv_one_skb+0x1a", Function: "udp_queue_rcv_one_skb", Transport: "udp", NetworkType: "ipv4",
			Source: "127.0.0.1", Destination: "127.0.0.1", SourcePort: 40000, DestPort: 9, Size: 29, Interface: "lo", Ifindex: 1, Netns: "4026531840",
			ThreadID: 10, ProcessID: 9, ThreadName: "curl"},
		{Reason: "12", ReasonCode: 12, Location: "0xffffffff81000000", Transport: "icmpv6", NetworkType: "ipv6", Source: "::1", Destination: "fe80::1",
			Stack: "kfree_skb_reason+0x5e\nip6_rcv+0x10"},
	} {
		assert.NoError(t, storage.CheckWriter(e))
	}
}

// TestDropsCarryTheSendersContainer sends datagrams to a closed port from a
// process in cgroups named as docker (cgroupfs driver) and containerd's CRI
// plugin (cgroupfs driver, under a pod) name them, in every hierarchy this
// host has, and checks those drops arrive on that container's Resource
// while the test's own drops stay the host's.
func TestDropsCarryTheSendersContainer(t *testing.T) {
	id, uid := testenv.RandomContainerID(), testenv.RandomPodUID()
	for _, tc := range []struct {
		name, rel, wantRuntime, wantPod string
	}{
		{name: "docker", rel: "docker/" + id, wantRuntime: "docker"},
		{name: "containerd CRI", rel: "kubepods/besteffort/pod" + uid + "/" + id, wantPod: uid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cg := testenv.NewContainerCgroups(t, tc.rel)
			port := closedPort(t)
			h := start(t, &Config{Protocol: "udp", Port: port}, bpf.Options{})
			for _, e := range h.Events(t) {
				assert.Empty(t, e.ContainerID(), "the test's own drops are the host's")
			}
			pid := testenv.RunUDPSender(t, port, 3, cg.Dirs...)
			// The sender is a Go program: it may send from any of its threads.
			events := h.WaitEvents(t, 5*time.Second, 3, func(e tracingtest.Event) bool { return e.Attr("process.pid") == strconv.Itoa(pid) })
			for _, e := range events {
				assert.Equal(t, id, e.ContainerID())
				attrs := e.Resource.Attributes().AsRaw()
				if tc.wantRuntime != "" {
					assert.Equal(t, tc.wantRuntime, attrs["container.runtime.name"])
				} else {
					assert.NotContains(t, attrs, "container.runtime.name", "the cgroupfs driver does not say which CRI runtime")
				}
				if tc.wantPod != "" {
					assert.Equal(t, tc.wantPod, attrs["k8s.pod.uid"])
				}
			}
		})
	}
}

func TestFullReceiveBuffer(t *testing.T) {
	testenv.RequireRoot(t, "loading BPF programs")
	// A socket with the smallest receive buffer, never read.
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM, 0)
	require.NoError(t, err)
	defer syscall.Close(fd)
	require.NoError(t, syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, 1024))
	require.NoError(t, syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
	sa, err := syscall.Getsockname(fd)
	require.NoError(t, err)
	port := sa.(*syscall.SockaddrInet4).Port

	h := tracingtest.New(t, "dropwatch", &Config{Protocol: "udp", Port: port})
	h.Run(t)
	h.WaitAttached(t, 30*time.Second)
	time.Sleep(100 * time.Millisecond) // the event reader opens right after
	sendUDP(t, port, 200)
	got := waitDrops(t, h, "SOCKET_RCVBUFF", 100)
	events := h.WaitEvents(t, 5*time.Second, int(got["SOCKET_RCVBUFF"]), func(e tracingtest.Event) bool {
		return e.Attr("kernel.drop.reason") == "SOCKET_RCVBUFF"
	})
	for _, e := range events {
		assert.Equal(t, strconv.Itoa(port), e.Attr("destination.port"))
	}
}

func TestEventsPerSecondCap(t *testing.T) {
	const limit, packets = 10, 300
	port := closedPort(t)
	h := start(t, &Config{Protocol: "udp", Port: port, EventsPerSecond: limit}, bpf.Options{})
	time.Sleep(1100 * time.Millisecond) // a fresh one-second window
	before := len(h.Events(t))
	sendUDP(t, port, packets)
	got := waitDrops(t, h, "NO_SOCKET", float64(before+packets))
	time.Sleep(300 * time.Millisecond)
	emitted := len(h.Events(t)) - before
	t.Logf("emitted %d of %d, limited %v", emitted, packets, got["events.limited"])
	// The burst takes well under a second but may straddle a window boundary.
	assert.LessOrEqual(t, emitted, 2*limit)
	assert.GreaterOrEqual(t, emitted, limit)
	require.Eventually(t, func() bool {
		got = drops(h.Update(t))
		return got["events.limited"] >= float64(packets-emitted)
	}, 5*time.Second, 100*time.Millisecond)
	assert.Equal(t, got["NO_SOCKET"], float64(len(h.Events(t)))+got["events.limited"], "every drop is either an event or counted as limited")
}

func TestValidate(t *testing.T) {
	assert.ErrorContains(t, (&Config{Protocol: "tcpp"}).Validate(), `protocol: "tcpp"`)
	assert.ErrorContains(t, (&Config{Port: 70000}).Validate(), "port: 70000")
	assert.NoError(t, (&Config{Protocol: "tcp", Port: 80}).Validate())
}

// TestEveryReasonStartsAtZero: with all_reasons (the default) every reason
// of the running kernel's enum has a drops series before its first drop,
// so that increase() over a window holding that drop sees it; without it,
// only reasons that dropped something are reported.
func TestEveryReasonStartsAtZero(t *testing.T) {
	names, err := bpf.KernelEnum("skb_drop_reason", "SKB_DROP_REASON_")
	require.NoError(t, err)
	port := closedPort(t)
	h := start(t, &Config{Protocol: "udp", Port: port, AllReasons: true}, bpf.Options{})
	got := waitDrops(t, h, "NO_SOCKET", 1)
	for _, name := range names {
		if name == "MAX" {
			continue
		}
		v, ok := got[name]
		assert.True(t, ok, "reason %s has a series", name)
		if name != "NO_SOCKET" {
			// Only the test's own UDP drops pass its port filter.
			assert.Zero(t, v, "reason %s", name)
		}
	}
	assert.NotContains(t, got, "MAX", "the enum's bound is not a reason")
	// Without kernel_stack the location is symbolized by one pass over
	// kallsyms (no table kept), as with it.
	for _, e := range h.Events(t) {
		assert.Regexp(t, `^[a-z_0-9.]+\+0x[0-9a-f]+$`, e.Attr("kernel.drop.location"))
		assert.NotEmpty(t, e.Attr("code.function.name"))
	}
	assert.Nil(t, h.Attr.TracingData.(*dropwatchCollector).syms, "no symbol table kept for a few locations")

	h = start(t, &Config{Protocol: "udp", Port: port, AllReasons: false}, bpf.Options{})
	got = waitDrops(t, h, "NO_SOCKET", 1)
	for name, v := range got {
		if name != "events.lost" && name != "events.limited" {
			assert.NotZero(t, v, "without all_reasons only reasons with drops are reported: %s", name)
		}
	}
}

// TestInvalidUTF8CommIsReplaced: any process may name its thread with bytes
// that are not UTF-8. A real drop from such a thread gives an event whose
// thread.name has each invalid byte as U+FFFD, and the batch, as OTLP/JSON,
// is valid UTF-8 for strict parsers.
func TestInvalidUTF8CommIsReplaced(t *testing.T) {
	port := closedPort(t)
	h := start(t, &Config{Protocol: "udp", Port: port}, bpf.Options{})
	comm := []byte("bad\xff\xfename\xc3")
	_, tid := testenv.RunUDPSenderNamed(t, port, 2, comm)
	events := h.WaitEvents(t, 5*time.Second, 2, func(e tracingtest.Event) bool { return e.Attr("thread.id") == strconv.Itoa(tid) })
	for _, e := range events {
		assert.Equal(t, "bad\uFFFD\uFFFDname\uFFFD", e.Attr("thread.name"))
	}
	for _, ld := range h.Logs.AllLogs() {
		b, err := (&plog.JSONMarshaler{}).MarshalLogs(ld)
		require.NoError(t, err)
		require.True(t, utf8.Valid(b), "OTLP/JSON batch is not valid UTF-8")
	}
}
