/* Shared by every collector's BPF program: the event header, the in-kernel
 * rate limiter and log2 histogram helpers. Include after vmlinux.h. */
#ifndef OTELCOL_KERNEL_COMMON_H
#define OTELCOL_KERNEL_COMMON_H

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#define TASK_COMM_LEN 16

/* What every event starts with. cgroup_id is the cgroup2 id (the inode of
 * the task's cgroup2 directory); memcg_id and cpu_cgroup_id are the kernfs
 * ids of the task's cgroup v1 memory and cpu hierarchies (0 where the
 * controller is not on v1), so container attribution works on v1, v2 and
 * hybrid hosts. */
struct event_header {
	__u64 timestamp_ns; /* bpf_ktime_get_ns: CLOCK_MONOTONIC */
	__u64 cgroup_id;
	__u64 memcg_id;
	__u64 cpu_cgroup_id;
	__u32 pid;  /* thread id */
	__u32 tgid; /* process id */
	char comm[TASK_COMM_LEN];
};

/* css_cgroup_id is the kernfs id of the cgroup that task's css for
 * subsystem id belongs to, or 0. */
static __always_inline __u64 css_cgroup_id(struct task_struct *task, int id)
{
	struct cgroup_subsys_state *css = BPF_CORE_READ(task, cgroups, subsys[id]);
	if (!css)
		return 0;
	return BPF_CORE_READ(css, cgroup, kn, id);
}

/* fill_header_task describes task (which need not be current). */
static __always_inline void fill_header_task(struct event_header *h, struct task_struct *task)
{
	h->timestamp_ns = bpf_ktime_get_ns();
	h->pid = BPF_CORE_READ(task, pid);
	h->tgid = BPF_CORE_READ(task, tgid);
	BPF_CORE_READ_STR_INTO(&h->comm, task, comm);
	h->cgroup_id = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
	h->memcg_id = 0;
	h->cpu_cgroup_id = 0;
	if (bpf_core_enum_value_exists(enum cgroup_subsys_id, memory_cgrp_id))
		h->memcg_id = css_cgroup_id(task, bpf_core_enum_value(enum cgroup_subsys_id, memory_cgrp_id));
	if (bpf_core_enum_value_exists(enum cgroup_subsys_id, cpu_cgrp_id))
		h->cpu_cgroup_id = css_cgroup_id(task, bpf_core_enum_value(enum cgroup_subsys_id, cpu_cgrp_id));
}

/* fill_header describes the current task. */
static __always_inline void fill_header(struct event_header *h)
{
	fill_header_task(h, (struct task_struct *)bpf_get_current_task_btf());
}

/* ---- rate limiting -------------------------------------------------------
 * Each collector caps the events it emits per second in the kernel. Go sets
 * rate_limit_per_sec (0 = no limit) before load and reads the counters. */
volatile const __u32 rate_limit_per_sec = 0;

struct rate_window {
	__u64 start_ns;
	__u64 count;
	/* The jiffies at the window's start, and how many jiffies surely fit
	 * in a second on this kernel (0 until measured): while a window is
	 * full and younger than that, an event is held back on a read of
	 * jiffies alone, without the clock read of bpf_ktime_get_ns. */
	__u64 start_jiffies;
	__u64 jiffies_per_sec;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rate_window);
} rate_window SEC(".maps");

/* Indexes of rate_counters: events let through and events held back. */
enum rate_counter { RATE_PASSED = 0, RATE_LIMITED = 1 };

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} rate_counters SEC(".maps");

static __always_inline void rate_count(__u32 which)
{
	__u64 *c = bpf_map_lookup_elem(&rate_counters, &which);
	if (c)
		*c += 1;
}

/* rate_allow says whether one more event may go out in the current
 * one-second window. Windows are global, not per CPU; two CPUs may both
 * open a new window at the boundary, which lets a few extra events through
 * and is the price of taking no lock. */
static __always_inline bool rate_allow(void)
{
	if (rate_limit_per_sec == 0) {
		rate_count(RATE_PASSED);
		return true;
	}
	__u32 zero = 0;
	struct rate_window *w = bpf_map_lookup_elem(&rate_window, &zero);
	if (!w)
		return false;
	/* A full window: under a flood nearly every event ends here. A plain
	 * read, so that the CPUs share the window's cache line instead of
	 * bouncing it with atomic adds; and, while the window is surely not
	 * over, jiffies (a memory read, 5.5+) rather than the clock. */
	bool have_jiffies = bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_jiffies64);
	__u64 jiffies = 0;
	if (have_jiffies)
		jiffies = bpf_jiffies64();
	if (w->count >= rate_limit_per_sec && have_jiffies && w->jiffies_per_sec &&
	    jiffies - w->start_jiffies < w->jiffies_per_sec) {
		rate_count(RATE_LIMITED);
		return false;
	}
	__u64 now = bpf_ktime_get_ns();
	__u64 age = now - w->start_ns;
	if (age >= 1000000000ULL) {
		/* Measure the tick rate from two window starts at least a
		 * second apart, 2 % short so that the jiffies shortcut never
		 * outlasts the second. */
		if (have_jiffies && w->start_ns && age < 60000000000ULL) {
			__u64 hz = (jiffies - w->start_jiffies) * 1000000000ULL / age;
			w->jiffies_per_sec = hz - hz / 50;
		}
		w->start_ns = now;
		w->start_jiffies = jiffies;
		w->count = 0;
	}
	if (w->count >= rate_limit_per_sec) {
		rate_count(RATE_LIMITED);
		return false;
	}
	if (__sync_fetch_and_add(&w->count, 1) >= rate_limit_per_sec) {
		rate_count(RATE_LIMITED);
		return false;
	}
	rate_count(RATE_PASSED);
	return true;
}

/* ---- log2 histograms ------------------------------------------------------
 * Bucket i counts values in [2^(i-1), 2^i); bucket 0 counts 0. */
#define HIST_SLOTS 32

struct hist {
	__u64 slots[HIST_SLOTS];
	__u64 sum;
};

static __always_inline __u32 log2_slot(__u64 v)
{
	__u32 slot = 0;
	/* Unrolled binary search: the verifier sees a bounded program. */
	if (v >= (1ULL << 32)) { v >>= 32; slot += 32; }
	if (v >= (1ULL << 16)) { v >>= 16; slot += 16; }
	if (v >= (1ULL << 8)) { v >>= 8; slot += 8; }
	if (v >= (1ULL << 4)) { v >>= 4; slot += 4; }
	if (v >= (1ULL << 2)) { v >>= 2; slot += 2; }
	if (v >= (1ULL << 1)) { slot += 1; v >>= 1; }
	slot += v; /* v is now 0 or 1: 0 stays in bucket 0 */
	return slot < HIST_SLOTS ? slot : HIST_SLOTS - 1;
}

static __always_inline void hist_add(struct hist *h, __u64 v)
{
	__u32 slot = log2_slot(v);
	if (slot < HIST_SLOTS)
		__sync_fetch_and_add(&h->slots[slot], 1);
	__sync_fetch_and_add(&h->sum, v);
}

#endif
