//go:build ignore

/* cgroupwatch: the kernel made or removed a cgroup. The receiver's container
 * resolver (internal/container) learns each new cgroup's id and path here,
 * at the moment it is made, so that events from a container that lives
 * only briefly (a job OOM-killed a second after it started) still resolve
 * after its runtime has removed the cgroup. Hook candidates, best first
 * (internal/container/cgroupwatch): the BTF-typed tracepoints, then the
 * classic ones. */
#include "vmlinux.h"
#include "common.h"
#include "events.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Paths longer than this arrive cut short (truncated = 1); the resolver
 * then finds the cgroup by walking its hierarchy instead. Container paths
 * are under 200 bytes with every runtime and driver. */
#define CGROUP_PATH_MAX 480

enum cgroup_op { CGROUP_MKDIR = 0, CGROUP_RMDIR = 1 };

struct cgroup_event {
	__u64 timestamp_ns;
	__u64 id;        /* kernfs id: the inode of the cgroup's directory */
	__s32 hierarchy; /* the hierarchy's id as /proc/cgroups numbers it; 0 is cgroup2 */
	__u8 op;         /* enum cgroup_op */
	__u8 truncated;
	__u16 _pad;
	char path[CGROUP_PATH_MAX];
};

const struct cgroup_event *unused_cgroup_event __attribute__((unused));
const enum cgroup_op *unused_cgroup_op __attribute__((unused));

/* Bit h set: report hierarchy h. Go sets it to the hierarchies it reads,
 * so the cgroups of the other v1 controllers cost no event. */
volatile const __u64 tracked_hierarchies = ~0ULL;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cgroup_event);
} scratch SEC(".maps");

static __always_inline struct cgroup_event *start(int hierarchy, __u8 op)
{
	if (hierarchy < 0 || hierarchy > 63 || !(tracked_hierarchies & (1ULL << hierarchy)))
		return 0;
	__u32 zero = 0;
	struct cgroup_event *e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		return 0;
	e->timestamp_ns = bpf_ktime_get_ns();
	e->hierarchy = hierarchy;
	e->op = op;
	e->truncated = 0;
	return e;
}

static __always_inline void finish(void *ctx, struct cgroup_event *e, long n)
{
	if (n < 0)
		e->path[0] = 0;
	else if (n == CGROUP_PATH_MAX)
		e->truncated = 1; /* n counts the NUL; a full buffer may be cut */
	emit_event(ctx, e, sizeof(*e));
}

static __always_inline int on_btf(void *ctx, struct cgroup *cgrp, const char *path, __u8 op)
{
	struct cgroup_event *e = start(BPF_CORE_READ(cgrp, root, hierarchy_id), op);
	if (!e)
		return 0;
	e->id = BPF_CORE_READ(cgrp, kn, id);
	finish(ctx, e, bpf_probe_read_kernel_str(e->path, sizeof(e->path), path));
	return 0;
}

SEC("tp_btf/cgroup_mkdir")
int BPF_PROG(mkdir_btf, struct cgroup *cgrp, const char *path)
{
	return on_btf(ctx, cgrp, path, CGROUP_MKDIR);
}

SEC("tp_btf/cgroup_rmdir")
int BPF_PROG(rmdir_btf, struct cgroup *cgrp, const char *path)
{
	return on_btf(ctx, cgrp, path, CGROUP_RMDIR);
}

static __always_inline int on_tp(struct trace_event_raw_cgroup *ctx, __u8 op)
{
	struct cgroup_event *e = start(BPF_CORE_READ(ctx, root), op);
	if (!e)
		return 0;
	e->id = BPF_CORE_READ(ctx, id);
	__u32 loc = BPF_CORE_READ(ctx, __data_loc_path);
	finish(ctx, e, bpf_probe_read_kernel_str(e->path, sizeof(e->path), (void *)ctx + (loc & 0xFFFF)));
	return 0;
}

SEC("tracepoint/cgroup/cgroup_mkdir")
int mkdir_tp(struct trace_event_raw_cgroup *ctx)
{
	return on_tp(ctx, CGROUP_MKDIR);
}

SEC("tracepoint/cgroup/cgroup_rmdir")
int rmdir_tp(struct trace_event_raw_cgroup *ctx)
{
	return on_tp(ctx, CGROUP_RMDIR);
}
