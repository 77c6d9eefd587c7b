package netdev

import (
	"fmt"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/storage"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/testenv/fuzzseed"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/tracing/tracingtest"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/utf8safe"
)

// hostLinkMessages are this host's RTM_NEWLINK payloads (ifinfomsg and
// attributes), as the kernel sends them: the seeds.
func hostLinkMessages(f *testing.F) [][]byte {
	req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_DUMP)
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
	if err != nil {
		f.Logf("no link dump here: %v", err)
	}
	return msgs
}

// FuzzLinkMessage: rtnetlink link messages, parsed as the subscription
// parses them (the library parses only messages from the kernel), then
// through the collector's handling. Whatever the message, handling does not
// panic, a NEWLINK leaves the interface known under its index and a DELLINK
// forgets it, and the event an interface's name and kind make is valid UTF-8.
func FuzzLinkMessage(f *testing.F) {
	// This host's links seed the run but are not committed (they carry its
	// MAC addresses); the committed seeds are made up alike.
	for _, m := range hostLinkMessages(f) {
		f.Add(uint16(unix.RTM_NEWLINK), m)
	}
	ifi := nl.NewIfInfomsg(unix.AF_UNSPEC)
	ifi.Index, ifi.Flags = 7, unix.IFF_UP|unix.IFF_LOWER_UP
	bare := ifi.Serialize()
	veth := append([]byte{}, bare...)
	for _, a := range []*nl.RtAttr{
		nl.NewRtAttr(unix.IFLA_IFNAME, []byte("veth\xff\xfe\x00")),
		nl.NewRtAttr(unix.IFLA_MTU, nl.Uint32Attr(1500)),
		nl.NewRtAttr(unix.IFLA_ADDRESS, []byte{0x02, 0, 0, 0, 0, 1}),
		nl.NewRtAttr(unix.IFLA_OPERSTATE, []byte{6}),
		func() *nl.RtAttr {
			info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
			info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("veth"))
			return info
		}(),
	} {
		veth = append(veth, a.Serialize()...)
	}
	fuzzseed.Add(f, uint16(unix.RTM_NEWLINK), bare)
	fuzzseed.Add(f, uint16(unix.RTM_NEWLINK), veth)
	fuzzseed.Add(f, uint16(unix.RTM_DELLINK), veth)
	fuzzseed.Add(f, uint16(unix.RTM_NEWLINK), []byte{0, 0, 1})

	h := tracingtest.New(f, "netdev", nil)
	c := collector(h)
	f.Fuzz(func(t *testing.T, typ uint16, m []byte) {
		if len(m) < unix.SizeofIfInfomsg || (typ != unix.RTM_NEWLINK && typ != unix.RTM_DELLINK) {
			return // the library reads no shorter message, and subscribes to these two
		}
		hdr := unix.NlMsghdr{Type: typ}
		l, err := deserialize(&hdr, m)
		if err != nil {
			return // the library skips it, reporting to ErrorCallback
		}
		u := netlink.LinkUpdate{IfInfomsg: *nl.DeserializeIfInfomsg(m), Header: hdr, Link: l}
		w := &watcher{state: map[int]known{}, inode: 1}
		c.handle(w, u) // the first sighting: baseline
		u2 := u
		u2.Flags ^= unix.IFF_UP // a change, which saves an event
		c.handle(w, u2)
		_, known := w.state[int(u.Index)]
		if typ == unix.RTM_NEWLINK && !known || typ == unix.RTM_DELLINK && known {
			t.Fatalf("after %d, index %d known=%v", typ, u.Index, known)
		}
		a := l.Attrs()
		lr := storage.NewRecord("event", "link.change", time.Unix(0, 0), &linkEvent{Interface: a.Name, Kind: l.Type(), MAC: hwAddr(a.HardwareAddr)})
		if bad := utf8safe.Invalid(lr.Attributes()); len(bad) > 0 {
			t.Fatalf("not valid UTF-8: %v", bad)
		}
	})
}

// deserialize is the library's parser, which trusts the kernel's attribute
// framing: vishvananda/netlink v1.3.1 panics (slice bounds) on an attribute
// whose length is below its header or past the message. Only the kernel can
// put such a message before it (the subscription drops other senders'
// messages unparsed), so the fuzz target treats that panic as the
// library's, not the collector's, and goes on with well-framed messages.
func deserialize(hdr *unix.NlMsghdr, m []byte) (l netlink.Link, err error) {
	defer func() {
		if r := recover(); r != nil {
			l, err = nil, fmt.Errorf("library parser panicked: %v", r)
		}
	}()
	return netlink.LinkDeserialize(hdr, m)
}
