//go:build ignore

/* loadavg: counts the threads in uninterruptible sleep (D state) with a task
 * iterator, in the kernel, instead of reading every /proc/PID/task/TID/stat
 * file each round. Reading the iterator runs count_uninterruptible once per
 * task (threads included) and once more with no task, when it writes the
 * count. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define TASK_UNINTERRUPTIBLE 0x0002
#define TASK_NOLOAD 0x0400

/* Kernels before 5.14 call the state field state, not __state. */
struct task_struct___pre514 {
	long state;
} __attribute__((preserve_access_index));

/* Reset at the end of each walk; the collector never reads the iterator
 * from two threads at once. */
__u64 uninterruptible = 0;

/* The count as /proc reports it: 'D' is TASK_UNINTERRUPTIBLE without
 * TASK_NOLOAD (TASK_IDLE shows as 'I'), with or without TASK_WAKEKILL. */
static __always_inline bool in_d_state(struct task_struct *task)
{
	unsigned int state;
	if (bpf_core_field_exists(task->__state))
		state = BPF_CORE_READ(task, __state);
	else
		state = BPF_CORE_READ((struct task_struct___pre514 *)task, state);
	return (state & TASK_UNINTERRUPTIBLE) && !(state & TASK_NOLOAD);
}

SEC("iter/task")
int count_uninterruptible(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;
	if (!task) {
		__u64 n = uninterruptible;
		bpf_seq_write(ctx->meta->seq, &n, sizeof(n));
		uninterruptible = 0;
		return 0;
	}
	if (in_d_state(task))
		uninterruptible++;
	return 0;
}
