//go:build ignore

/* execsnoop: a program was executed (sched/sched_process_exec fires once
 * exec has replaced the task's image). An example of a BPF event collector
 * outside the otelcol-kernel module: it includes that module's headers
 * (vmlinux.h, common.h for the event header and the rate limiter, events.h
 * for the channel to Go), found by go generate; see gen.go.
 *
 * Hook candidates, best first: the BTF-typed tracepoint (typed arguments,
 * the linux_binprm itself), then the classic tracepoint (the filename from
 * the trace record). In both, current is the task that executed. */
#include "vmlinux.h"
#include "common.h"
#include "events.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define FILENAME_LEN 128

/* Only execs whose filename starts with these bytes are reported; Go sets
 * them before load (filename_prefix_len 0: every exec). Filtering here
 * means unreported execs cost no copy to user space. */
volatile const char filename_prefix[FILENAME_LEN] = {};
volatile const __u32 filename_prefix_len = 0;

struct exec_event {
	struct event_header hdr; /* the task after exec: comm is the new program's */
	__u32 ppid;              /* process id of its parent */
	__u32 old_pid;           /* thread id that called exec (a non-leader thread's exec takes over the leader's pid) */
	char filename[FILENAME_LEN];
};

/* bpf2go -type exec_event needs the type referenced somewhere. */
const struct exec_event *unused_exec_event __attribute__((unused));

static __always_inline bool prefix_matches(const char *filename)
{
	for (__u32 i = 0; i < FILENAME_LEN; i++) {
		if (i >= filename_prefix_len)
			return true;
		if (filename[i] != filename_prefix[i])
			return false;
	}
	return true;
}

/* handle reports the exec of the program at filename (kernel memory). */
static __always_inline int handle(void *ctx, const char *filename, __u32 old_pid)
{
	struct exec_event e = {};
	if (bpf_probe_read_kernel_str(e.filename, sizeof(e.filename), filename) < 0)
		return 0;
	if (!prefix_matches(e.filename))
		return 0;
	if (!rate_allow())
		return 0;
	fill_header(&e.hdr);
	struct task_struct *task = (struct task_struct *)bpf_get_current_task_btf();
	e.ppid = BPF_CORE_READ(task, real_parent, tgid);
	e.old_pid = old_pid;
	emit_event(ctx, &e, sizeof(e));
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(exec_btf, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	return handle(ctx, BPF_CORE_READ(bprm, filename), old_pid);
}

SEC("tracepoint/sched/sched_process_exec")
int exec_tp(struct trace_event_raw_sched_process_exec *ctx)
{
	/* __data_loc: the low 16 bits are the string's offset in the record. */
	__u32 loc = BPF_CORE_READ(ctx, __data_loc_filename);
	return handle(ctx, (const char *)ctx + (loc & 0xFFFF), BPF_CORE_READ(ctx, old_pid));
}
