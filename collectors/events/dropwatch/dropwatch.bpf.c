//go:build ignore

/* dropwatch: packets the kernel frees as dropped (skb/kfree_skb), with the
 * drop reason, addresses and ports, interface and network namespace.
 * Filtering (protocol, port) and the events-per-second cap happen here, so
 * a drop storm costs user space nothing; every drop that passes the filter
 * is counted per reason, capped or not.
 *
 * The program runs for every freed packet the kernel calls a drop, so the
 * cheapest reject comes first: the filter (only when one is set), the
 * per-reason count, the rate check; only a drop that becomes an event pays
 * for its record (headers parsed, interface read, no clearing of the whole
 * record). */
#include "vmlinux.h"
#include "common.h"
#include "events.h"
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define MAX_STACK_DEPTH 32

volatile const __u8 filter_protocol = 0; /* IPPROTO_*; 0: any */
volatile const __u16 filter_port = 0;    /* source or destination port; 0: any */
volatile const bool capture_stack = false;
/* Slots of reason_counts: Go sizes the map from the running kernel's enum
 * skb_drop_reason (its largest value plus one) and sets this to match; a
 * reason past it is counted in the last slot. */
volatile const __u32 reason_slots = 1024;

struct drop_event {
	struct event_header hdr; /* the task running when the packet was freed */
	__u64 location;          /* kernel address that dropped the packet */
	__u32 reason;            /* enum skb_drop_reason of the running kernel */
	__u32 ifindex;
	__u32 netns;             /* inode of the device's network namespace */
	__u32 len;
	__u16 l3_proto;          /* ETH_P_*, host order */
	__u16 sport, dport;      /* host order */
	__u8 l4_proto;           /* IPPROTO_* */
	__u8 ip_version;         /* 4, 6 or 0 */
	__u8 saddr[16];
	__u8 daddr[16];
	char ifname[16];
	__s64 stack_bytes;       /* bytes of stack captured, or a negative error */
	/* Sent only with capture_stack: without it the record ends here. */
	__u64 stack[MAX_STACK_DEPTH];
};

const struct drop_event *unused_drop_event __attribute__((unused));

/* Too big for the BPF stack: built in a per-CPU slot. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct drop_event);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1024); /* Go resizes it to reason_slots */
	__type(key, __u32);
	__type(value, __u64);
} reason_counts SEC(".maps");

/* parse_packet fills the record's protocol, address and port fields from
 * the packet's headers; every one of them is written, since the record is
 * not cleared. It returns nonzero when the network header cannot be read. */
static __always_inline int parse_packet(struct sk_buff *skb, struct drop_event *e)
{
	__u16 proto = bpf_ntohs(BPF_CORE_READ(skb, protocol));
	unsigned char *head = BPF_CORE_READ(skb, head);
	__u16 nh = BPF_CORE_READ(skb, network_header);
	__u16 th = BPF_CORE_READ(skb, transport_header);
	e->l3_proto = proto;
	e->ip_version = 0;
	e->l4_proto = 0;
	e->sport = 0;
	e->dport = 0;
	__builtin_memset(e->saddr, 0, sizeof(e->saddr));
	__builtin_memset(e->daddr, 0, sizeof(e->daddr));
	if (proto == ETH_P_IP) {
		struct iphdr ip;
		if (bpf_probe_read_kernel(&ip, sizeof(ip), head + nh))
			return -1;
		e->ip_version = 4;
		e->l4_proto = ip.protocol;
		__builtin_memcpy(e->saddr, &ip.saddr, 4);
		__builtin_memcpy(e->daddr, &ip.daddr, 4);
		if (th == (__u16)~0U || th == nh)
			th = nh + ip.ihl * 4;
	} else if (proto == ETH_P_IPV6) {
		struct ipv6hdr ip6;
		if (bpf_probe_read_kernel(&ip6, sizeof(ip6), head + nh))
			return -1;
		e->ip_version = 6;
		e->l4_proto = ip6.nexthdr;
		__builtin_memcpy(e->saddr, &ip6.saddr, 16);
		__builtin_memcpy(e->daddr, &ip6.daddr, 16);
		if (th == (__u16)~0U || th == nh)
			th = nh + sizeof(ip6);
	}
	if (e->l4_proto == IPPROTO_TCP || e->l4_proto == IPPROTO_UDP) {
		__be16 ports[2];
		if (!bpf_probe_read_kernel(ports, sizeof(ports), head + th)) {
			e->sport = bpf_ntohs(ports[0]);
			e->dport = bpf_ntohs(ports[1]);
		}
	}
	return 0;
}

static __always_inline int handle(void *ctx, struct sk_buff *skb, __u64 location, __u32 reason)
{
	if (!skb)
		return 0;
	__u32 zero = 0;
	struct drop_event *e = 0;
	bool filtered = filter_protocol || filter_port;
	if (filtered) {
		/* The filter needs the headers before anything is counted. */
		e = bpf_map_lookup_elem(&scratch, &zero);
		if (!e || parse_packet(skb, e))
			return 0;
		if (filter_protocol && e->l4_proto != filter_protocol)
			return 0;
		if (filter_port && e->sport != filter_port && e->dport != filter_port)
			return 0;
	}

	__u32 slot = reason < reason_slots ? reason : reason_slots - 1;
	__u64 *count = bpf_map_lookup_elem(&reason_counts, &slot);
	if (count)
		*count += 1;
	if (!rate_allow())
		return 0;

	if (!filtered) {
		e = bpf_map_lookup_elem(&scratch, &zero);
		if (!e)
			return 0;
		/* An unreadable header still makes an event, without addresses. */
		parse_packet(skb, e);
	}
	fill_header(&e->hdr);
	e->location = location;
	e->reason = reason;
	e->len = BPF_CORE_READ(skb, len);
	e->ifindex = 0;
	e->netns = 0;
	e->ifname[0] = 0;
	struct net_device *dev = BPF_CORE_READ(skb, dev);
	if (dev) {
		e->ifindex = BPF_CORE_READ(dev, ifindex);
		BPF_CORE_READ_STR_INTO(&e->ifname, dev, name);
		e->netns = BPF_CORE_READ(dev, nd_net.net, ns.inum);
	}
	if (capture_stack) {
		e->stack_bytes = bpf_get_stack(ctx, e->stack, sizeof(e->stack), 0);
		emit_event(ctx, e, sizeof(*e));
	} else {
		e->stack_bytes = 0;
		emit_event(ctx, e, __builtin_offsetof(struct drop_event, stack));
	}
	return 0;
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(kfree_skb_btf, struct sk_buff *skb, void *location, enum skb_drop_reason reason)
{
	return handle(ctx, skb, (__u64)location, reason);
}

SEC("tracepoint/skb/kfree_skb")
int kfree_skb_tp(struct trace_event_raw_kfree_skb *ctx)
{
	__u32 reason = 0; /* kernels before 5.17 give no reason */
	if (bpf_core_field_exists(ctx->reason))
		reason = BPF_CORE_READ(ctx, reason);
	return handle(ctx, (struct sk_buff *)BPF_CORE_READ(ctx, skbaddr), (__u64)BPF_CORE_READ(ctx, location), reason);
}
