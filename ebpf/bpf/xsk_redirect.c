// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// XDP program for vswitch AF_XDP ports: redirects every frame received on a
// queue to the AF_XDP socket registered for that queue in `xsks_map`. Frames
// on queues without a socket go on to the kernel stack (XDP_PASS).

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define MAX_QUEUES 64

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks_map SEC(".maps");

// Index 0: frames redirected to a socket, index 1: frames passed to the stack.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} xsk_counters SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&xsk_counters, &idx);

	if (v)
		*v += 1;
}

// "xdp.frags": the program handles multi-buffer frames (it reads no packet bytes), so drivers
// attach it natively at jumbo MTUs too (veth refuses a program without it above ~3.5 KB).
SEC("xdp.frags")
int xsk_redirect(struct xdp_md *ctx)
{
	long ret = bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);

	count(ret == XDP_REDIRECT ? 0 : 1);
	return ret;
}

char _license[] SEC("license") = "Dual BSD/GPL";
