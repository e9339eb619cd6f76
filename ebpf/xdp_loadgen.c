// SPDX-License-Identifier: (Apache-2.0 OR GPL-2.0)
/*
 * xdp_loadgen: the receive side of the load generator's AF_XDP transport (src/loadgen/xdp.rs).
 * On the generator's interface, steer what DHCPv6 servers and relays send back (untagged
 * IPv6/UDP from source port 547, to the client port 546 or the relay port 547) into the AF_XDP
 * socket bound to the receiving queue. Everything else (neighbour discovery, MLD, the rest of
 * the host) goes on to the kernel untouched, and so does a reply on a queue without a socket.
 *
 * Counters (per CPU, summed by user space): see enum counter; the order is part of the ABI
 * with src/loadgen/xdp.rs.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define DHCPV6_SERVER_PORT 547
#define DHCPV6_CLIENT_PORT 546
#define MAX_QUEUES 256

enum counter {
	CNT_STEERED = 0, /* redirected into an AF_XDP socket */
	CNT_PASSED = 1,  /* not a DHCPv6 reply: handed to the kernel */
	CNT_UNBOUND = 2, /* a reply on a queue without a socket: handed to the kernel */
	CNT_MAX = 3,
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline int count(__u32 which, int verdict)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &which);
	if (c)
		*c += 1; /* per-CPU slot: no atomics needed */
	return verdict;
}

SEC("xdp")
int xdp_loadgen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6 = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip6 + 1);

	/* Servers answer without extension headers; anything else is not ours to take. */
	if ((void *)(udp + 1) > data_end)
		return count(CNT_PASSED, XDP_PASS);
	if (eth->h_proto != bpf_htons(ETH_P_IPV6) || ip6->nexthdr != IPPROTO_UDP)
		return count(CNT_PASSED, XDP_PASS);
	if (udp->source != bpf_htons(DHCPV6_SERVER_PORT) ||
	    (udp->dest != bpf_htons(DHCPV6_CLIENT_PORT) && udp->dest != bpf_htons(DHCPV6_SERVER_PORT)))
		return count(CNT_PASSED, XDP_PASS);

	int verdict = bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
	if (verdict == XDP_REDIRECT)
		return count(CNT_STEERED, verdict);
	return count(CNT_UNBOUND, verdict);
}

char _license[] SEC("license") = "Dual BSD/GPL";
