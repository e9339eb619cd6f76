// SPDX-License-Identifier: (Apache-2.0 OR GPL-2.0)
/* A program that is not ours: tests attach it to check that xdhcp6 refuses to replace a
 * foreign XDP program unless told to. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_foreign(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char _license[] SEC("license") = "Dual BSD/GPL";
