// Package netdev reports network interfaces going administratively up or
// down and gaining or losing carrier, from rtnetlink link notifications,
// with the driver details ethtool gives.
//
// The hook is the RTNLGRP_LINK multicast group: no BPF, no polling, and it
// works on every kernel. Each watched network namespace has its own netlink
// subscription; the first message about an interface (from the initial dump
// or its creation) only sets the baseline, later ones are compared with it.
package netdev

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/safchain/ethtool"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/otelcol-kernel/otelcol-kernel/pkg/container"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/metric"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/storage"
	"github.com/otelcol-kernel/otelcol-kernel/pkg/tracing"
)

// Config is the netdev section of the receiver config.
type Config struct {
	Include           string   `mapstructure:"include" doc:"regular expression: only interfaces whose name matches are reported (empty: all)"`
	Exclude           string   `mapstructure:"exclude" doc:"regular expression: interfaces whose name matches are not reported; wins over include"`
	NetworkNamespaces []string `mapstructure:"network_namespaces" doc:"network namespace files to watch (/var/run/netns/NAME, /proc/PID/ns/net); empty: the receiver's own"`
}

// Validate names the setting at fault.
func (c *Config) Validate() error {
	var errs []error
	for _, kv := range [...]struct{ key, expr string }{{"include", c.Include}, {"exclude", c.Exclude}} {
		if _, err := regexp.Compile(kv.expr); err != nil {
			errs = append(errs, fmt.Errorf("%s: invalid regular expression %q: %w", kv.key, kv.expr, err))
		}
	}
	for i, p := range c.NetworkNamespaces {
		switch {
		case p == "":
			errs = append(errs, fmt.Errorf("network_namespaces[%d]: empty path", i))
		case !filepath.IsAbs(p):
			errs = append(errs, fmt.Errorf("network_namespaces[%d]: %q is not an absolute path", i, p))
		}
	}
	return errors.Join(errs...)
}

// linkEvent is one change of one interface.
type linkEvent struct {
	Interface       string `json:"network.interface.name" doc:"interface name"`
	Ifindex         int    `json:"kernel.interface.index" doc:"interface index in its network namespace"`
	Change          string `json:"kernel.link.change_type" doc:"admin_up or admin_down (the IFF_UP flag), carrier_up or carrier_down (IFF_LOWER_UP)"`
	AdminState      string `json:"kernel.link.admin_state" doc:"up or down, after the change"`
	Carrier         string `json:"kernel.link.carrier" doc:"up or down, after the change"`
	OperState       string `json:"kernel.link.oper_state" doc:"RFC 2863 operational state (IFLA_OPERSTATE): up, down, lowerlayerdown, dormant, notpresent, testing or unknown"`
	MTU             int    `json:"kernel.link.mtu" doc:"MTU, in bytes"`
	MAC             string `json:"kernel.link.mac,omitempty" doc:"hardware address"`
	Kind            string `json:"kernel.link.kind" doc:"link type from rtnetlink: device for a physical NIC, or veth, bridge, bond, dummy, ..."`
	Driver          string `json:"kernel.link.driver,omitempty" doc:"driver name (ethtool); absent when the device has no ethtool driver info"`
	DriverVersion   string `json:"hw.driver_version,omitempty" doc:"driver version (ethtool)"`
	FirmwareVersion string `json:"hw.firmware_version,omitempty" doc:"firmware version (ethtool)"`
	BusInfo         string `json:"kernel.link.bus_info,omitempty" doc:"bus address, e.g. the PCI slot (ethtool)"`
	Netns           string `json:"kernel.netns.inode" doc:"inode number of the interface's network namespace (as in /proc/PID/ns/net), in decimal"`
}

// Severity is WARN for a link going down, INFO for one coming up.
func (e *linkEvent) Severity() plog.SeverityNumber {
	if e.Change == changeAdminDown || e.Change == changeCarrierDown {
		return plog.SeverityNumberWarn
	}
	return plog.SeverityNumberInfo
}

// Summary is the record body, e.g. "eth0: carrier down".
func (e *linkEvent) Summary() string {
	switch e.Change {
	case changeAdminUp:
		return e.Interface + ": admin up"
	case changeAdminDown:
		return e.Interface + ": admin down"
	case changeCarrierUp:
		return e.Interface + ": carrier up"
	default:
		return e.Interface + ": carrier down"
	}
}

const (
	changeAdminUp     = "admin_up"
	changeAdminDown   = "admin_down"
	changeCarrierUp   = "carrier_up"
	changeCarrierDown = "carrier_down"
)

var allChanges = [...]string{changeAdminUp, changeAdminDown, changeCarrierUp, changeCarrierDown}

// The attributes the link.changes series share with the event.
const (
	attrInterface = "network.interface.name"
	attrChange    = "kernel.link.change_type"
	attrNetns     = "kernel.netns.inode"
)

func init() {
	tracing.RegisterEventTracing("netdev", newNetdev,
		tracing.WithDescription("Network interfaces going admin up/down and gaining/losing carrier, from rtnetlink, with ethtool driver info."),
		tracing.WithConfig(func() *Config { return &Config{} }),
		tracing.WithEvent("link.change", &linkEvent{}, "An interface changed admin state or carrier. One event per change: bringing a link down administratively usually also drops its carrier, which is a second event. Container: the one whose processes are in the interface's network namespace (a pod's namespace: its first container, with the pod uid); none for the host's.",
			tracing.SeverityVaries("WARN for admin_down and carrier_down, INFO for admin_up and carrier_up"),
			tracing.Body("<interface>: admin up|admin down|carrier up|carrier down")),
		tracing.WithMetrics(metric.Desc{
			Name: "link.changes", Kind: metric.Counter, Unit: "{change}",
			Description: "link state changes since the collector started, per interface and kind of change; each interface's four series are reported from 0 as soon as the interface is seen, so the first change shows in increase(); an interface removed is reported once more, then forgotten",
			Labels: []metric.Label{
				{Name: attrInterface, Description: "interface name"},
				{Name: attrChange, Description: "admin_up, admin_down, carrier_up or carrier_down"},
				{Name: attrNetns, Description: "inode number of the interface's network namespace, in decimal"},
			},
		}),
	)
}

// netnsCheckInterval is how often Start checks that each configured
// namespace path still names the namespace it subscribed to. Tests shorten it.
var netnsCheckInterval = 5 * time.Second

type netdevCollector struct {
	containers       *container.Resolver
	cfg              *Config
	include, exclude *regexp.Regexp
	storage          *storage.Storage
	logger           *zap.Logger

	// handled counts link messages processed (tests wait on it for the
	// initial dump to be read).
	handled atomic.Uint64

	mu     sync.Mutex
	counts map[seriesKey]*series
}

// seriesKey is exactly the label set of one link.changes series, so that
// no two series share labels.
type seriesKey struct {
	netns          uint32
	device, change string
}

type series struct {
	count   uint64
	removed bool // no interface has this name any more: report once more, then forget
}

func newNetdev(s tracing.Settings) (*tracing.EventTracingAttr, error) {
	cfg := s.Config.(*Config)
	c := &netdevCollector{cfg: cfg, storage: s.Storage, logger: s.Logger, counts: map[seriesKey]*series{}, containers: s.Containers}
	var err error
	if cfg.Include != "" {
		if c.include, err = regexp.Compile(cfg.Include); err != nil {
			return nil, fmt.Errorf("include: invalid regular expression %q: %w", cfg.Include, err)
		}
	}
	if cfg.Exclude != "" {
		if c.exclude, err = regexp.Compile(cfg.Exclude); err != nil {
			return nil, fmt.Errorf("exclude: invalid regular expression %q: %w", cfg.Exclude, err)
		}
	}
	return &tracing.EventTracingAttr{
		TracingData: c,
		Interval:    10 * time.Second,
		Flag:        tracing.FlagTracing | tracing.FlagMetric,
	}, nil
}

func (c *netdevCollector) wanted(name string) bool {
	if c.exclude != nil && c.exclude.MatchString(name) {
		return false
	}
	return c.include == nil || c.include.MatchString(name)
}

// update is one link message tagged with the namespace watcher it came from.
type update struct {
	w *watcher
	netlink.LinkUpdate
}

// Start subscribes to link notifications in every watched namespace and
// saves an event per change until ctx ends. A broken subscription, or a
// configured namespace path that no longer names the namespace subscribed
// to, returns an error naming the path; the framework subscribes again
// after the interval.
func (c *netdevCollector) Start(ctx context.Context) error {
	paths := c.cfg.NetworkNamespaces
	if len(paths) == 0 {
		paths = []string{""} // the receiver's own namespace
	}
	updates := make(chan update)
	errs := make(chan error, len(paths))
	var watchers []*watcher
	defer func() {
		for _, w := range watchers {
			w.stop()
		}
	}()
	for _, p := range paths {
		w, err := newWatcher(p, c.logger)
		if err != nil {
			return err
		}
		if dup := findNetns(watchers, w); dup != nil {
			c.logger.Info("network namespace listed twice; watching it once",
				zap.String("netns", nsName(p)), zap.String("same_as", nsName(dup.path)))
			w.close()
			continue
		}
		watchers = append(watchers, w)
		if err := w.subscribe(updates, errs); err != nil {
			return err
		}
	}
	c.reconcile(watchers)

	check := time.NewTicker(netnsCheckInterval)
	defer check.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errs:
			return err
		case <-check.C:
			for _, w := range watchers {
				if err := w.checkPath(); err != nil {
					// Dropping our handle and sockets lets the kernel free
					// the namespace; its interfaces are gone for us.
					c.forgetNetns(w.inode)
					return err
				}
			}
		case u := <-updates:
			c.handle(u.w, u.LinkUpdate)
			c.handled.Add(1)
		}
	}
}

// known is what a watcher remembers of an interface.
type known struct {
	linkState
	name string
}

// handle compares one link message with the interface's previous state.
func (c *netdevCollector) handle(w *watcher, u netlink.LinkUpdate) {
	attrs := u.Link.Attrs()
	idx := int(u.Index)
	prev, seen := w.state[idx]
	if u.Header.Type == unix.RTM_DELLINK {
		delete(w.state, idx)
		c.gone(w.inode, attrs.Name)
		if seen && prev.name != attrs.Name {
			c.gone(w.inode, prev.name)
		}
		return
	}
	now := linkState{admin: u.Flags&unix.IFF_UP != 0, carrier: u.Flags&unix.IFF_LOWER_UP != 0}
	w.state[idx] = known{now, attrs.Name}
	if seen && prev.name != attrs.Name {
		c.gone(w.inode, prev.name) // renamed
	}
	c.present(w.inode, attrs.Name)
	if !c.wanted(attrs.Name) {
		return
	}
	if !seen || prev.name != attrs.Name {
		// Known from now on (or under its new name): its series start at
		// 0, so that the first change is an increase and not a series
		// appearing at 1.
		c.track(w.inode, attrs.Name)
	}
	if !seen {
		return
	}
	changes := diff(prev.linkState, now)
	if len(changes) == 0 {
		return
	}
	info := w.driverInfo(attrs.Name)
	for _, change := range changes {
		ev := &linkEvent{
			Interface: attrs.Name, Ifindex: idx, Change: change,
			AdminState: upDown(now.admin), Carrier: upDown(now.carrier),
			OperState: operState(attrs.OperState), MTU: attrs.MTU, MAC: hwAddr(attrs.HardwareAddr),
			Kind: u.Link.Type(), Netns: strconv.FormatUint(uint64(w.inode), 10),
			Driver: info.Driver, DriverVersion: info.Version, FirmwareVersion: info.FwVersion, BusInfo: info.BusInfo,
		}
		c.count(w.inode, attrs.Name, change)
		// An interface in a container's namespace is that container's.
		if err := c.storage.Save("link.change", c.containers.ContainerOfNetns(w.inode).ID, time.Now(), ev); err != nil {
			c.logger.Debug("netdev event not saved", zap.Error(err))
		}
	}
}

// linkState is what netdev tracks of an interface.
type linkState struct{ admin, carrier bool }

// diff lists the changes from prev to now, admin state first.
//
// Carrier is IFF_LOWER_UP, the physical-layer signal `ip link` shows as
// LOWER_UP, rather than IFF_RUNNING, which follows the RFC 2863
// operational state and so also moves with dormancy (802.1X, wireless
// association) and on stacked devices with their lower device; the
// operational state is reported as its own field instead. The kernel sets
// IFF_LOWER_UP only while the device is admin up, so admin_down on a link
// with carrier comes with carrier_down.
func diff(prev, now linkState) []string {
	var out []string
	if prev.admin != now.admin {
		out = append(out, pick(now.admin, changeAdminUp, changeAdminDown))
	}
	if prev.carrier != now.carrier {
		out = append(out, pick(now.carrier, changeCarrierUp, changeCarrierDown))
	}
	return out
}

func pick(b bool, ifTrue, ifFalse string) string {
	if b {
		return ifTrue
	}
	return ifFalse
}

func upDown(b bool) string { return pick(b, "up", "down") }

// operState names IFLA_OPERSTATE as /sys/class/net/*/operstate does.
func operState(s netlink.LinkOperState) string {
	switch s {
	case netlink.OperNotPresent:
		return "notpresent"
	case netlink.OperDown:
		return "down"
	case netlink.OperLowerLayerDown:
		return "lowerlayerdown"
	case netlink.OperTesting:
		return "testing"
	case netlink.OperDormant:
		return "dormant"
	case netlink.OperUp:
		return "up"
	}
	return "unknown"
}

func hwAddr(a net.HardwareAddr) string {
	if len(a) == 0 {
		return ""
	}
	return a.String()
}

// track gives a newly seen interface its four series at 0.
func (c *netdevCollector) track(netnsInode uint32, device string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, change := range allChanges {
		k := seriesKey{netnsInode, device, change}
		if _, ok := c.counts[k]; !ok {
			c.counts[k] = &series{}
		}
	}
}

func (c *netdevCollector) count(netnsInode uint32, device, change string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := seriesKey{netnsInode, device, change}
	s, ok := c.counts[k]
	if !ok {
		s = &series{}
		c.counts[k] = s
	}
	s.count++
	s.removed = false
}

// gone marks the series of an interface name that no longer exists.
func (c *netdevCollector) gone(netnsInode uint32, device string) {
	c.setRemoved(netnsInode, device, true)
}

// present unmarks them when the name is in use again before the series
// was dropped: its count goes on.
func (c *netdevCollector) present(netnsInode uint32, device string) {
	c.setRemoved(netnsInode, device, false)
}

func (c *netdevCollector) setRemoved(netnsInode uint32, device string, removed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, change := range allChanges {
		if s, ok := c.counts[seriesKey{netnsInode, device, change}]; ok {
			s.removed = removed
		}
	}
}

func (c *netdevCollector) forgetNetns(netnsInode uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, s := range c.counts {
		if k.netns == netnsInode {
			s.removed = true
		}
	}
}

// reconcile marks removed the series of interfaces that disappeared while
// no subscription was listening (before this Start, e.g. during a restart)
// and of namespaces no longer watched. It lists each namespace's links
// after subscribing, so a deletion after the listing still arrives as
// RTM_DELLINK.
func (c *netdevCollector) reconcile(watchers []*watcher) {
	names := map[uint32]map[string]bool{}
	for _, w := range watchers {
		list, err := w.linkNames()
		if err != nil {
			c.logger.Info("cannot list links to prune counters of removed interfaces", zap.String("netns", nsName(w.path)), zap.Error(err))
			list = nil // keep this namespace's series as they are
		}
		names[w.inode] = list
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, s := range c.counts {
		list, watched := names[k.netns]
		if !watched || (list != nil && !list[k.device]) {
			s.removed = true
		}
	}
}

// Update reports the change counters. Series of removed interfaces are
// reported one last time and then dropped, so that interface churn (a veth
// per container) cannot grow them without bound; the number of series is
// bounded by the interfaces that exist (times four changes) plus those
// removed since the last Update. An interface created again under the same
// name in the same namespace after that starts again from zero, which the
// exporter sees as a counter reset.
func (c *netdevCollector) Update() ([]*metric.Data, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*metric.Data, 0, len(c.counts))
	for k, s := range c.counts {
		out = append(out, metric.NewCounterData("link.changes", float64(s.count), "", map[string]string{
			attrInterface: k.device, attrChange: k.change,
			attrNetns: strconv.FormatUint(uint64(k.netns), 10),
		}))
		if s.removed {
			delete(c.counts, k)
		}
	}
	return out, nil
}

// watcher is the subscription to one network namespace.
type watcher struct {
	path     string // "" for the receiver's own namespace
	logger   *zap.Logger
	ns       netns.NsHandle
	dev      uint64 // of the namespace file: with inode, its identity
	inode    uint32
	state    map[int]known    // by ifindex; only the Start goroutine touches it
	tool     *ethtool.Ethtool // nil when ethtool is unavailable in this namespace
	done     chan struct{}
	ch       chan netlink.LinkUpdate
	fwd      sync.WaitGroup
	errs     chan<- error
	skipped  atomic.Uint64 // errors reported by the subscription, logged sparsely
	lastSkip atomic.Pointer[error]
}

func newWatcher(path string, logger *zap.Logger) (*watcher, error) {
	w := &watcher{path: path, logger: logger, state: map[int]known{}, done: make(chan struct{})}
	var err error
	if path == "" {
		w.ns, err = netns.Get()
	} else {
		w.ns, err = netns.GetFromPath(path)
	}
	if err != nil {
		return nil, fmt.Errorf("network namespace %q: %w", nsName(path), err)
	}
	if t, err := unix.IoctlRetInt(int(w.ns), unix.NS_GET_NSTYPE); err != nil || t != unix.CLONE_NEWNET {
		w.ns.Close()
		if err == nil {
			err = fmt.Errorf("namespace type %#x", t)
		}
		return nil, fmt.Errorf("network namespace %q: not a network namespace file: %w", nsName(path), err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(w.ns), &st); err != nil {
		w.ns.Close()
		return nil, fmt.Errorf("network namespace %q: %w", nsName(path), err)
	}
	w.dev, w.inode = st.Dev, uint32(st.Ino) // namespace inodes come from proc_alloc_inum: 32 bits
	w.tool, err = ethtoolIn(w.ns, path == "")
	if err != nil {
		logger.Info("no ethtool driver info in this network namespace", zap.String("netns", nsName(path)), zap.Error(err))
	}
	return w, nil
}

func nsName(path string) string {
	if path == "" {
		return "own"
	}
	return path
}

func findNetns(ws []*watcher, w *watcher) *watcher {
	for _, o := range ws {
		if o.dev == w.dev && o.inode == w.inode {
			return o
		}
	}
	return nil
}

// checkPath reports a configured path that no longer names the namespace
// subscribed to (`ip netns del`, the process of /proc/PID/ns/net exited).
// Our handle would otherwise keep that namespace alive for ever.
func (w *watcher) checkPath() error {
	if w.path == "" {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Stat(w.path, &st); err != nil {
		return fmt.Errorf("network namespace %q is gone: %w", w.path, err)
	}
	switch {
	case st.Dev != w.dev: // not on nsfs: e.g. `ip netns del` has unmounted it
		return fmt.Errorf("network namespace %q is gone: the path is no longer a namespace file", w.path)
	case uint32(st.Ino) != w.inode:
		return fmt.Errorf("network namespace %q now names another namespace (inode %d, was %d)", w.path, st.Ino, w.inode)
	}
	return nil
}

// subscribe starts the netlink subscription; updates and errors are
// forwarded, tagged, to the collector's channels until stop.
//
// The initial state comes from a dump over a socket of its own, not from
// the library's ListExisting: that sends the dump request from the
// subscribed socket to its own address, which carries the multicast group,
// so the request went to every other listener of RTNLGRP_LINK on the host
// (each other agent then logged "Wrong sender portid") and needed
// CAP_NET_ADMIN to send. Subscribing first and dumping second misses no
// change; one made in between may arrive after the dump already showed
// it, which diff then finds unchanged.
func (w *watcher) subscribe(out chan<- update, errs chan<- error) error {
	w.ch = make(chan netlink.LinkUpdate, 64)
	w.errs = errs
	opts := netlink.LinkSubscribeOptions{ErrorCallback: w.onError}
	if w.path != "" {
		// Only for another namespace: the library enters the namespace to
		// create the socket, which needs CAP_SYS_ADMIN even for our own.
		ns := w.ns
		opts.Namespace = &ns
	}
	if err := netlink.LinkSubscribeWithOptions(w.ch, w.done, opts); err != nil {
		if errors.Is(err, unix.EPERM) {
			// Privileges do not come back by restarting: stay inactive, saying why.
			return tracing.NotPermitted("subscribing to link updates in network namespace %q needs CAP_SYS_ADMIN to enter it: %v", nsName(w.path), err)
		}
		return fmt.Errorf("subscribing to link updates in network namespace %q: %w", nsName(w.path), err)
	}
	links, err := w.links()
	if err != nil { // Start's stop() ends the subscription
		return fmt.Errorf("listing the links of network namespace %q: %w", nsName(w.path), err)
	}
	w.fwd.Add(1)
	go func() {
		defer w.fwd.Done()
		for _, l := range links {
			a := l.Attrs()
			u := netlink.LinkUpdate{Header: unix.NlMsghdr{Type: unix.RTM_NEWLINK}, Link: l}
			u.Index, u.Flags = int32(a.Index), a.RawFlags
			select {
			case out <- update{w, u}:
			case <-w.done:
			}
		}
		for u := range w.ch {
			select {
			case out <- update{w, u}:
			case <-w.done:
			}
		}
		// The library's reader returned: the socket failed (e.g. ENOBUFS
		// after an overflow, where notifications were lost) or we closed it.
		err := fmt.Errorf("netlink subscription in network namespace %q ended", nsName(w.path))
		if last := w.lastSkip.Load(); last != nil {
			err = fmt.Errorf("%w: %w", err, *last)
		}
		w.fail(err)
	}()
	return nil
}

// onError is the subscription's ErrorCallback, called on the library's
// reader goroutine. An interrupted initial dump leaves the baseline
// unreliable, so the subscription starts over. Any other error either ends
// the reader (the closed channel then ends Start, with this error) or is
// about one message the library skipped — including messages from a
// sender other than the kernel, which a process with CAP_NET_ADMIN over
// the namespace (a container's root) can send: restarting on those would
// let it blind the collector, so they are only logged.
func (w *watcher) onError(err error) {
	select {
	case <-w.done:
		return // Receive failing because we closed the socket
	default:
	}
	if errors.Is(err, netlink.ErrDumpInterrupted) {
		w.fail(fmt.Errorf("network namespace %q: initial link dump: %w", nsName(w.path), err))
		return
	}
	w.lastSkip.Store(&err)
	if n := w.skipped.Add(1); n&(n-1) == 0 { // 1st, 2nd, 4th, 8th, ...
		w.logger.Warn("netlink link subscription error", zap.String("netns", nsName(w.path)), zap.Uint64("errors_total", n), zap.Error(err))
	}
}

// fail hands an error to Start unless we are stopping or one is queued.
func (w *watcher) fail(err error) {
	select {
	case <-w.done:
		return // the end of our own close
	default:
	}
	select {
	case w.errs <- err:
	default:
	}
}

// stop closes the subscription and waits until its goroutines are gone.
func (w *watcher) stop() {
	close(w.done) // makes netlink close the socket, which ends its reader and closes w.ch
	w.fwd.Wait()
	w.close()
}

func (w *watcher) close() {
	if w.tool != nil {
		w.tool.Close()
	}
	w.ns.Close()
}

func (w *watcher) driverInfo(ifname string) ethtool.DrvInfo {
	if w.tool == nil {
		return ethtool.DrvInfo{}
	}
	info, err := w.tool.DriverInfo(ifname)
	if err != nil {
		return ethtool.DrvInfo{} // many virtual devices have none
	}
	return info
}

// links dumps the namespace's interfaces, over a socket of their own.
func (w *watcher) links() ([]netlink.Link, error) {
	var (
		h   *netlink.Handle
		err error
	)
	if w.path == "" {
		h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
	} else {
		h, err = netlink.NewHandleAt(w.ns, unix.NETLINK_ROUTE)
	}
	if err != nil {
		return nil, err
	}
	defer h.Close()
	return h.LinkList()
}

// linkNames lists the names of the namespace's interfaces now.
func (w *watcher) linkNames() (map[string]bool, error) {
	links, err := w.links()
	if err != nil {
		return nil, err
	}
	names := make(map[string]bool, len(links))
	for _, l := range links {
		names[l.Attrs().Name] = true
	}
	return names, nil
}

// ethtoolIn opens an ethtool socket inside ns. The ethtool ioctls act on
// the namespace of the socket, which is the namespace its thread was in
// when it was created, so for another namespace it is created on a locked
// thread moved there. That thread is thrown away afterwards (the goroutine
// exits still locked, and the runtime then ends the thread) rather than
// trusted to have been moved back.
func ethtoolIn(ns netns.NsHandle, own bool) (*ethtool.Ethtool, error) {
	if own {
		return ethtool.NewEthtool()
	}
	type result struct {
		tool *ethtool.Ethtool
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if err := netns.Set(ns); err != nil {
			ch <- result{nil, fmt.Errorf("entering the namespace: %w", err)}
			return
		}
		tool, err := ethtool.NewEthtool()
		ch <- result{tool, err}
	}()
	r := <-ch
	return r.tool, r.err
}
