// SPDX-License-Identifier: (Apache-2.0 OR GPL-2.0)
/*
 * xdp_dhcp6: steer DHCPv6 server traffic (IPv6/UDP destination port 547, optionally behind one
 * or two VLAN tags) into the AF_XDP socket bound to the receiving queue. Everything else goes on
 * to the kernel untouched (XDP_PASS), so ICMPv6/ND, TCP and the rest of the host keep working.
 *
 * Parsing follows xdp-tools' parsing_helpers.h: a cursor that only moves forward, every read
 * preceded by a bounds check the verifier can see, and loops with constant trip counts.
 *
 * Counters (per CPU, summed by user space): see enum counter. Their order is part of the ABI
 * with src/io/xdp/loader.rs.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define DHCPV6_SERVER_PORT 547
/* Queues per interface we can steer; the XSKMAP is indexed by rx_queue_index. */
#define MAX_QUEUES 256
/* Extension headers walked before giving up (RFC 8200 §4.1 recommends an order that needs
 * at most 6-7 of them; more than this is treated as malformed). */
#define MAX_EXT_HEADERS 8
#define MAX_VLAN_TAGS 2

#ifndef ETH_P_8021AD
#define ETH_P_8021AD 0x88A8
#endif

enum counter {
	CNT_STEERED = 0,   /* redirected into an AF_XDP socket */
	CNT_PASSED = 1,    /* not DHCPv6 server traffic: handed to the kernel */
	CNT_MALFORMED = 2, /* truncated or unparseable headers: handed to the kernel */
	CNT_UNBOUND = 3,   /* DHCPv6, but no socket bound on this queue: handed to the kernel */
	CNT_MAX = 4,
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

struct vlan_hdr {
	__be16 tci;
	__be16 encap_proto;
};

/* A generic extension header prefix: next header, length in 8-octet units beyond the first 8. */
struct ext_hdr {
	__u8 nexthdr;
	__u8 hdrlen;
};

static __always_inline int count(__u32 which, int verdict)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &which);
	if (c)
		*c += 1; /* per-CPU slot: no atomics needed */
	return verdict;
}

static __always_inline int is_vlan(__u16 proto_be)
{
	return proto_be == bpf_htons(ETH_P_8021Q) || proto_be == bpf_htons(ETH_P_8021AD);
}

SEC("xdp")
int xdp_dhcp6(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	void *cur = data;

	struct ethhdr *eth = cur;
	if ((void *)(eth + 1) > data_end)
		return count(CNT_MALFORMED, XDP_PASS);
	cur = eth + 1;
	__u16 proto = eth->h_proto;

#pragma unroll
	for (int i = 0; i < MAX_VLAN_TAGS; i++) {
		if (!is_vlan(proto))
			break;
		struct vlan_hdr *vh = cur;
		if ((void *)(vh + 1) > data_end)
			return count(CNT_MALFORMED, XDP_PASS);
		proto = vh->encap_proto;
		cur = vh + 1;
	}
	if (proto != bpf_htons(ETH_P_IPV6))
		return count(CNT_PASSED, XDP_PASS);

	struct ipv6hdr *ip6 = cur;
	if ((void *)(ip6 + 1) > data_end)
		return count(CNT_MALFORMED, XDP_PASS);
	cur = ip6 + 1;
	__u8 nexthdr = ip6->nexthdr;

	/* RFC 8200 §4: walk hop-by-hop, routing, destination options and fragment headers. A
	 * non-first fragment carries no UDP header; it and anything unknown go to the kernel,
	 * which reassembles (a reassembled datagram then reaches the socket backend path, not
	 * ours: fragmented DHCPv6 is rare and the kernel handles it correctly). */
#pragma unroll
	for (int i = 0; i < MAX_EXT_HEADERS; i++) {
		if (nexthdr == IPPROTO_UDP)
			break;
		struct ext_hdr *eh = cur;
		if ((void *)(eh + 1) > data_end)
			return count(CNT_MALFORMED, XDP_PASS);
		switch (nexthdr) {
		case IPPROTO_HOPOPTS:
		case IPPROTO_ROUTING:
		case IPPROTO_DSTOPTS:
			nexthdr = eh->nexthdr;
			cur += ((__u32)eh->hdrlen + 1) * 8;
			break;
		case IPPROTO_FRAGMENT:
			/* Fragments are reassembled by the kernel. */
			return count(CNT_PASSED, XDP_PASS);
		default:
			return count(CNT_PASSED, XDP_PASS);
		}
	}
	if (nexthdr != IPPROTO_UDP)
		return count(CNT_MALFORMED, XDP_PASS);

	struct udphdr *udp = cur;
	if ((void *)(udp + 1) > data_end)
		return count(CNT_MALFORMED, XDP_PASS);
	if (udp->dest != bpf_htons(DHCPV6_SERVER_PORT))
		return count(CNT_PASSED, XDP_PASS);

	/* XDP_PASS as the fallback: with no socket bound on this queue the kernel (and a socket
	 * backend, if one is running) still sees the request. */
	__u32 queue = ctx->rx_queue_index;
	int verdict = bpf_redirect_map(&xsks, queue, XDP_PASS);
	if (verdict == XDP_REDIRECT)
		return count(CNT_STEERED, verdict);
	return count(CNT_UNBOUND, verdict);
}

char _license[] SEC("license") = "Dual BSD/GPL";
