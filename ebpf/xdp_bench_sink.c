// SPDX-License-Identifier: (Apache-2.0 OR GPL-2.0)
/* Benchmark sink for the load generator (bench/xdp_loadgen.rs): on the client end of the veth
 * pair, count and drop IPv6/UDP frames to port 546 or 547 (the server's replies) so counting
 * costs almost nothing; pass everything else. Untagged frames only. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} replies SEC(".maps");

SEC("xdp")
int xdp_bench_sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6 = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip6 + 1);

	if ((void *)(udp + 1) > data_end)
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IPV6) || ip6->nexthdr != IPPROTO_UDP)
		return XDP_PASS;
	if (udp->dest != bpf_htons(546) && udp->dest != bpf_htons(547))
		return XDP_PASS;
	__u32 k = 0;
	__u64 *c = bpf_map_lookup_elem(&replies, &k);
	if (c)
		*c += 1;
	return XDP_DROP;
}

char _license[] SEC("license") = "Dual BSD/GPL";
