//go:build ignore

/* hungtask: the kernel's hung-task detector (khungtaskd) found a task in
 * uninterruptible sleep for longer than kernel.hung_task_timeout_secs.
 * Hook candidates, best first (internal/events/hungtask): the BTF-typed
 * tracepoint, which hands us the task itself, then the classic tracepoint,
 * which gives only its pid and comm (current is khungtaskd there). */
#include "vmlinux.h"
#include "common.h"
#include "events.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct hung_event {
	struct event_header task; /* the hung task; only pid and comm on the tracepoint path */
	__u8 task_known;          /* 1 when task was read from the task_struct (tp_btf) */
	__u8 _pad[7];
};

const struct hung_event *unused_hung_event __attribute__((unused));

SEC("tp_btf/sched_process_hang")
int BPF_PROG(hang_btf, struct task_struct *task)
{
	struct hung_event e = {};
	if (!rate_allow())
		return 0;
	fill_header_task(&e.task, task);
	e.task_known = 1;
	emit_event(ctx, &e, sizeof(e));
	return 0;
}

/* Kernels before 6.10 or so record comm in the tracepoint as a fixed array
 * rather than a __data_loc string: the layout CO-RE falls back to. */
struct trace_event_raw_sched_process_hang___fixed_comm {
	char comm[TASK_COMM_LEN];
	pid_t pid;
} __attribute__((preserve_access_index));

SEC("tracepoint/sched/sched_process_hang")
int hang_tp(struct trace_event_raw_sched_process_hang *ctx)
{
	struct hung_event e = {};
	if (!rate_allow())
		return 0;
	e.task.timestamp_ns = bpf_ktime_get_ns();
	if (bpf_core_field_exists(ctx->__data_loc_comm)) {
		e.task.pid = BPF_CORE_READ(ctx, pid);
		__u32 loc = BPF_CORE_READ(ctx, __data_loc_comm);
		bpf_probe_read_kernel_str(e.task.comm, sizeof(e.task.comm), (void *)ctx + (loc & 0xFFFF));
	} else {
		struct trace_event_raw_sched_process_hang___fixed_comm *old = (void *)ctx;
		e.task.pid = BPF_CORE_READ(old, pid);
		BPF_CORE_READ_STR_INTO(&e.task.comm, old, comm);
	}
	emit_event(ctx, &e, sizeof(e));
	return 0;
}
