/* The event channel from BPF to Go: a ring buffer, or a perf event array on
 * kernels without ring buffers (before 5.8). Go decides before loading by
 * setting use_perf_buffer (internal/bpf does it); the branch not taken is
 * dead code the verifier never walks, so its helper need not exist. */
#ifndef OTELCOL_KERNEL_EVENTS_H
#define OTELCOL_KERNEL_EVENTS_H

#include "common.h"

volatile const bool use_perf_buffer = false;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024); /* Go may resize it */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} events_perf SEC(".maps");

/* Events that could not be written (buffer full), per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} events_lost SEC(".maps");

/* emit_event copies size bytes at data to user space. ctx is the
 * program's context (the perf path needs it). */
static __always_inline void emit_event(void *ctx, void *data, __u64 size)
{
	long err;
	if (use_perf_buffer)
		err = bpf_perf_event_output(ctx, &events_perf, BPF_F_CURRENT_CPU, data, size);
	else
		err = bpf_ringbuf_output(&events, data, size, 0);
	if (err) {
		__u32 zero = 0;
		__u64 *lost = bpf_map_lookup_elem(&events_lost, &zero);
		if (lost)
			*lost += 1;
	}
}

#endif
