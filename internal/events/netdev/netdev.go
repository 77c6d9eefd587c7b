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
	"regexp"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/safchain/ethtool"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/otelcol-kernel/otelcol-kernel/internal/metric"
	"github.com/otelcol-kernel/otelcol-kernel/internal/storage"
	"github.com/otelcol-kernel/otelcol-kernel/internal/tracing"
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
	for key, expr := range map[string]string{"include": c.Include, "exclude": c.Exclude} {
		if _, err := regexp.Compile(expr); err != nil {
			errs = append(errs, fmt.Errorf("%s: invalid regular expression %q: %w", key, expr, err))
		}
	}
	for i, p := range c.NetworkNamespaces {
		if p == "" {
			errs = append(errs, fmt.Errorf("network_namespaces[%d]: empty path", i))
		}
	}
	return errors.Join(errs...)
}

// linkEvent is one change of one interface.
type linkEvent struct {
	Ifname          string `json:"ifname" doc:"interface name"`
	Ifindex         int    `json:"ifindex" doc:"interface index in its network namespace"`
	Change          string `json:"change" doc:"admin_up or admin_down (the IFF_UP flag), carrier_up or carrier_down (IFF_LOWER_UP)"`
	AdminState      string `json:"admin_state" doc:"up or down, after the change"`
	Carrier         string `json:"carrier" doc:"up or down, after the change"`
	OperState       string `json:"oper_state" doc:"RFC 2863 operational state (IFLA_OPERSTATE): up, down, lowerlayerdown, dormant, notpresent, testing or unknown"`
	MTU             int    `json:"mtu" doc:"MTU in bytes"`
	MAC             string `json:"mac,omitempty" doc:"hardware address"`
	Kind            string `json:"kind" doc:"link type from rtnetlink: device for a physical NIC, or veth, bridge, bond, dummy, ..."`
	Driver          string `json:"driver,omitempty" doc:"driver name (ethtool); absent when the device has no ethtool driver info"`
	DriverVersion   string `json:"driver_version,omitempty" doc:"driver version (ethtool)"`
	FirmwareVersion string `json:"firmware_version,omitempty" doc:"firmware version (ethtool)"`
	BusInfo         string `json:"bus_info,omitempty" doc:"bus address, e.g. the PCI slot (ethtool)"`
	NetnsInode      uint32 `json:"netns_inode" doc:"inode of the interface's network namespace (as in /proc/PID/ns/net)"`
}

func (e *linkEvent) Severity() plog.SeverityNumber {
	if e.Change == changeAdminDown || e.Change == changeCarrierDown {
		return plog.SeverityNumberWarn
	}
	return plog.SeverityNumberInfo
}

func (e *linkEvent) Summary() string {
	switch e.Change {
	case changeAdminUp:
		return e.Ifname + ": admin up"
	case changeAdminDown:
		return e.Ifname + ": admin down"
	case changeCarrierUp:
		return e.Ifname + ": carrier up"
	default:
		return e.Ifname + ": carrier down"
	}
}

const (
	changeAdminUp     = "admin_up"
	changeAdminDown   = "admin_down"
	changeCarrierUp   = "carrier_up"
	changeCarrierDown = "carrier_down"
)

func init() {
	tracing.RegisterEventTracing("netdev", newNetdev,
		tracing.WithDescription("Network interfaces going admin up/down and gaining/losing carrier, from rtnetlink, with ethtool driver info."),
		tracing.WithConfig(func() *Config { return &Config{} }),
		tracing.WithEvent("netdev", &linkEvent{}, "An interface changed admin state or carrier. One event per change: bringing a link down administratively usually also drops its carrier, which is a second event."),
		tracing.WithMetrics(metric.Desc{
			Name: "link_changes", Kind: metric.Counter, Unit: "{change}",
			Description: "link state changes seen since the collector started; a removed interface is reported once more, then forgotten",
			Labels: []metric.Label{
				{Name: "device", Description: "interface name"},
				{Name: "change", Description: "admin_up, admin_down, carrier_up or carrier_down"},
				{Name: "driver", Description: "driver name from ethtool, empty if unknown"},
				{Name: "netns_inode", Description: "inode of the interface's network namespace"},
			},
		}),
	)
}

type netdevCollector struct {
	cfg              *Config
	include, exclude *regexp.Regexp
	storage          *storage.Storage
	logger           *zap.Logger

	mu     sync.Mutex
	counts map[seriesKey]*series
}

type seriesKey struct {
	netns          uint32
	ifindex        int
	device, change string
}

type series struct {
	driver  string
	count   uint64
	removed bool // the interface is gone: report once more, then forget
}

func newNetdev(s tracing.Settings) (*tracing.EventTracingAttr, error) {
	cfg := s.Config.(*Config)
	c := &netdevCollector{cfg: cfg, storage: s.Storage, logger: s.Logger, counts: map[seriesKey]*series{}}
	var err error
	if cfg.Include != "" {
		if c.include, err = regexp.Compile(cfg.Include); err != nil {
			return nil, fmt.Errorf("include: %w", err)
		}
	}
	if cfg.Exclude != "" {
		if c.exclude, err = regexp.Compile(cfg.Exclude); err != nil {
			return nil, fmt.Errorf("exclude: %w", err)
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
// saves an event per change until ctx ends. A broken subscription returns
// an error, and the framework subscribes again after the interval.
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
		watchers = append(watchers, w)
		if err := w.subscribe(updates, errs); err != nil {
			return err
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errs:
			return err
		case u := <-updates:
			c.handle(u.w, u.LinkUpdate)
		}
	}
}

// handle compares one link message with the interface's previous state.
func (c *netdevCollector) handle(w *watcher, u netlink.LinkUpdate) {
	attrs := u.Link.Attrs()
	idx := int(u.Index)
	if u.Header.Type == unix.RTM_DELLINK {
		delete(w.state, idx)
		c.markRemoved(w.inode, idx)
		return
	}
	now := linkState{admin: u.Flags&unix.IFF_UP != 0, carrier: u.Flags&unix.IFF_LOWER_UP != 0}
	prev, known := w.state[idx]
	w.state[idx] = now
	if !known || !c.wanted(attrs.Name) {
		return
	}
	changes := diff(prev, now)
	if len(changes) == 0 {
		return
	}
	info := w.driverInfo(attrs.Name)
	for _, change := range changes {
		ev := &linkEvent{
			Ifname: attrs.Name, Ifindex: idx, Change: change,
			AdminState: upDown(now.admin), Carrier: upDown(now.carrier),
			OperState: attrs.OperState.String(), MTU: attrs.MTU, MAC: hwAddr(attrs.HardwareAddr),
			Kind: u.Link.Type(), NetnsInode: w.inode,
			Driver: info.Driver, DriverVersion: info.Version, FirmwareVersion: info.FwVersion, BusInfo: info.BusInfo,
		}
		c.count(w.inode, idx, attrs.Name, change, info.Driver)
		if err := c.storage.Save("netdev", "", time.Now(), ev); err != nil {
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
// operational state and so also moves with dormancy; the operational state
// is reported as its own field instead.
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

func hwAddr(a net.HardwareAddr) string {
	if len(a) == 0 {
		return ""
	}
	return a.String()
}

func (c *netdevCollector) count(netnsInode uint32, idx int, device, change, driver string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := seriesKey{netnsInode, idx, device, change}
	s, ok := c.counts[k]
	if !ok {
		s = &series{}
		c.counts[k] = s
	}
	s.driver = driver
	s.count++
}

func (c *netdevCollector) markRemoved(netnsInode uint32, idx int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, s := range c.counts {
		if k.netns == netnsInode && k.ifindex == idx {
			s.removed = true
		}
	}
}

// Update reports the change counters. Series of removed interfaces are
// reported one last time and then dropped, so that interface churn (a veth
// per container) cannot grow them without bound.
func (c *netdevCollector) Update() ([]*metric.Data, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*metric.Data, 0, len(c.counts))
	for k, s := range c.counts {
		out = append(out, metric.NewCounterData("link_changes", float64(s.count), "", map[string]string{
			"device": k.device, "change": k.change, "driver": s.driver,
			"netns_inode": strconv.FormatUint(uint64(k.netns), 10),
		}))
		if s.removed {
			delete(c.counts, k)
		}
	}
	return out, nil
}

// watcher is the subscription to one network namespace.
type watcher struct {
	path   string // "" for the receiver's own namespace
	logger *zap.Logger
	ns     netns.NsHandle
	inode  uint32
	state  map[int]linkState // by ifindex; only the Start goroutine touches it
	tool   *ethtool.Ethtool  // nil when ethtool is unavailable in this namespace
	done   chan struct{}
	ch     chan netlink.LinkUpdate
	fwd    sync.WaitGroup
}

func newWatcher(path string, logger *zap.Logger) (*watcher, error) {
	w := &watcher{path: path, logger: logger, state: map[int]linkState{}, done: make(chan struct{})}
	var err error
	if path == "" {
		w.ns, err = netns.Get()
	} else {
		w.ns, err = netns.GetFromPath(path)
	}
	if err != nil {
		return nil, fmt.Errorf("network namespace %q: %w", nsName(path), err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(w.ns), &st); err != nil {
		w.ns.Close()
		return nil, fmt.Errorf("network namespace %q: %w", nsName(path), err)
	}
	w.inode = uint32(st.Ino) // namespace inodes come from proc_alloc_inum: 32 bits
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

// subscribe starts the netlink subscription; updates and errors are
// forwarded, tagged, to the collector's channels until stop.
func (w *watcher) subscribe(out chan<- update, errs chan<- error) error {
	w.ch = make(chan netlink.LinkUpdate, 64)
	ns := w.ns
	err := netlink.LinkSubscribeWithOptions(w.ch, w.done, netlink.LinkSubscribeOptions{
		Namespace:    &ns,
		ListExisting: true,
		ErrorCallback: func(err error) {
			select {
			case <-w.done: // the error of our own close
			case errs <- fmt.Errorf("netlink subscription in network namespace %q: %w", nsName(w.path), err):
			default:
			}
		},
	})
	if err != nil {
		return fmt.Errorf("subscribing to link updates in network namespace %q: %w", nsName(w.path), err)
	}
	w.fwd.Add(1)
	go func() {
		defer w.fwd.Done()
		for u := range w.ch {
			select {
			case out <- update{w, u}:
			case <-w.done:
			}
		}
		select {
		case <-w.done:
		case errs <- fmt.Errorf("netlink subscription in network namespace %q ended", nsName(w.path)):
		default:
		}
	}()
	return nil
}

// stop closes the subscription and waits until its goroutines are gone.
func (w *watcher) stop() {
	close(w.done) // makes netlink close the socket, which ends its reader and closes w.ch
	w.fwd.Wait()
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

// ethtoolIn opens an ethtool socket inside ns. A socket belongs to the
// namespace its thread was in when it was created, so for another namespace
// it is created on a locked thread moved there. That thread is thrown away
// afterwards (the goroutine exits still locked) rather than trusted to have
// been moved back.
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
