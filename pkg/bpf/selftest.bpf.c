//go:build ignore

/* The BPF platform's own test program (internal/bpf): one logical hook,
 * "getppid", with a candidate per attach kind, so that the fallback order
 * can be exercised on any kernel; each hit emits an event header through
 * the event channel (events.h), behind the rate limiter. */
#include "vmlinux.h"
#include "common.h"
#include "events.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Only count the test's own process. */
volatile const __u32 target_tgid = 0;

struct selftest_event {
	struct event_header hdr;
	__u32 hook; /* which candidate fired: 1 fentry, 2 kprobe, 3 tracepoint */
	__u32 _pad;
};

/* Keeps the type in BTF so that bpf2go -type can generate its Go twin. */
const struct selftest_event *unused_selftest_event __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} hits SEC(".maps");

/* The n-th hit adds n to a log2 histogram (common.h), so the test knows
 * the expected bucket counts. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hist);
} hit_hist SEC(".maps");

static __always_inline int hit(void *ctx, __u32 hook)
{
	if ((bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&hits, &zero);
	if (n) {
		__u64 nth = __sync_fetch_and_add(n, 1) + 1;
		struct hist *h = bpf_map_lookup_elem(&hit_hist, &zero);
		if (h)
			hist_add(h, nth);
	}
	if (!rate_allow())
		return 0;
	struct selftest_event e = {};
	fill_header(&e.hdr);
	e.hook = hook;
	emit_event(ctx, &e, sizeof(e));
	return 0;
}

/* The syscall's body: its __x64_sys_ wrapper is not a BTF function, so
 * fentry cannot attach to it (the kprobe below can). */
SEC("fentry/__do_sys_getppid")
int BPF_PROG(getppid_fentry)
{
	return hit(ctx, 1);
}

SEC("kprobe/__x64_sys_getppid")
int getppid_kprobe(struct pt_regs *ctx)
{
	return hit(ctx, 2);
}

SEC("tracepoint/syscalls/sys_enter_getppid")
int getppid_tracepoint(void *ctx)
{
	return hit(ctx, 3);
}
