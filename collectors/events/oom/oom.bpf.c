//go:build ignore

/* oom: the OOM killer chose a victim. Hook candidates, best first
 * (internal/events/oom): the BTF-typed oom/mark_victim tracepoint (the
 * victim task itself), the classic tracepoint (its pid and comm only), and
 * a kprobe on oom_kill_process, which alone also sees whether the OOM was
 * confined to a memory cgroup. */
#include "vmlinux.h"
#include "common.h"
#include "events.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct oom_event {
	struct event_header victim;  /* all fields when victim_known, else pid and comm */
	struct event_header trigger; /* the task whose allocation ran into the OOM */
	__u64 oom_memcg_id;          /* kernfs id of the memory cgroup that ran out; 0: global or unknown */
	__u8 victim_known;           /* the victim's task_struct was read */
	__u8 scope_known;            /* oom_memcg_id says for sure whether the OOM was global */
	__u8 _pad[6];
};

const struct oom_event *unused_oom_event __attribute__((unused));

static __always_inline void victim_task(void *ctx, struct task_struct *task, struct mem_cgroup *memcg, bool scope_known)
{
	struct oom_event e = {};
	fill_header_task(&e.victim, task);
	fill_header(&e.trigger);
	e.victim_known = 1;
	if (scope_known) {
		e.scope_known = 1;
		if (memcg)
			e.oom_memcg_id = BPF_CORE_READ(memcg, css.cgroup, kn, id);
	}
	if (rate_allow())
		emit_event(ctx, &e, sizeof(e));
}

SEC("tp_btf/mark_victim")
int BPF_PROG(mark_victim_btf, struct task_struct *task)
{
	victim_task(ctx, task, NULL, false);
	return 0;
}

SEC("tracepoint/oom/mark_victim")
int mark_victim_tp(struct trace_event_raw_mark_victim *ctx)
{
	struct oom_event e = {};
	e.victim.timestamp_ns = bpf_ktime_get_ns();
	e.victim.pid = BPF_CORE_READ(ctx, pid);
	if (bpf_core_field_exists(ctx->__data_loc_comm)) {
		__u32 loc = BPF_CORE_READ(ctx, __data_loc_comm);
		bpf_probe_read_kernel_str(e.victim.comm, sizeof(e.victim.comm), (void *)ctx + (loc & 0xFFFF));
	}
	fill_header(&e.trigger);
	if (rate_allow())
		emit_event(ctx, &e, sizeof(e));
	return 0;
}

SEC("kprobe/oom_kill_process")
int BPF_KPROBE(oom_kill_process_kp, struct oom_control *oc)
{
	struct task_struct *victim = BPF_CORE_READ(oc, chosen);
	if (!victim)
		return 0;
	victim_task(ctx, victim, BPF_CORE_READ(oc, memcg), true);
	return 0;
}
