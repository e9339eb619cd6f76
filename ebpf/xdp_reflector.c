// SPDX-License-Identifier: (Apache-2.0 OR GPL-2.0)
/*
 * xdp_reflector: an in-kernel reference responder for measuring the load generator
 * (`xdhcp6-bench respond --xdp-reflect`). It answers direct clients' Solicit with Advertise
 * and Request with Reply, inside the XDP program, with XDP_TX: no socket, no copy to user
 * space, no lease table. What it costs is almost nothing next to the generator, so a run
 * against it measures the generator (and the veth pair), not a server.
 *
 * The replies are valid for the generator's checks: the client's Client ID echoed, our Server
 * ID, one IA_NA with the client's IAID and one address inside the configured pool, T1 <= T2,
 * preferred <= valid. The address is the pool base with the host bits set from
 * (fnv1a32(DUID) << 32 | IAID), so it is the same in the Advertise and the Reply, and unique
 * among clients with distinct IAIDs (the generator's IAID is the client number) when the pool
 * has at least 32 host bits. It is not a server: no state, no Server ID check on Request, no
 * IA_PD, no relays, no Rapid Commit; those messages go on to the kernel (counted as passed).
 *
 * Frames: untagged Ethernet, IPv6 without extension headers, UDP to port 547. The reply goes
 * back to the requester's MAC and address from our MAC and link-local address (from the
 * config map), with a full UDP checksum.
 *
 * Counters (per CPU, summed by user space): enum counter; the order is part of the ABI with
 * src/loadgen/reflector.rs, and so is struct config.
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
#define MSG_SOLICIT 1
#define MSG_ADVERTISE 2
#define MSG_REQUEST 3
#define MSG_REPLY 7
#define OPT_CLIENTID 1
#define OPT_SERVERID 2
#define OPT_IA_NA 3
#define OPT_IAADDR 5
#define MAX_DUID 128
#define MAX_OPTIONS 16
#define L2L3_LEN (sizeof(struct ethhdr) + sizeof(struct ipv6hdr))
#define PAYLOAD_AT (L2L3_LEN + sizeof(struct udphdr))

/* Scratch layout: the UDP pseudo-header, the UDP header, then the DHCPv6 reply. The checksum
 * is taken over all of it in one bpf_csum_diff. */
#define S_SRC 0
#define S_DST 16
#define S_ULEN 32
#define S_NH 36
#define S_UDP 40
#define S_MSG 48
#define S_IA (S_MSG + 4)
#define IA_OPT_LEN (12 + 4 + 24)
#define S_CID (S_IA + 4 + IA_OPT_LEN)
#define SCRATCH_LEN 512

/* A length already checked to be in 1..=MAX_DUID, in a form the verifier can see bounded:
 * clang would otherwise use an unchecked copy (or drop a mask it can prove redundant), and the
 * verifier tracks bounds per register. barrier_var (bpf_helpers.h) hides the value from the
 * optimiser, so the mask (an identity at run time) stays. */
#define BOUNDED_DUID_LEN(x)                      \
	({                                           \
		__u32 _v = (x) - 1;                      \
		barrier_var(_v);                         \
		(_v & (MAX_DUID - 1)) + 1;               \
	})

enum counter {
	CNT_ADVERTISE = 0, /* Solicit answered */
	CNT_REPLY = 1,     /* Request answered */
	CNT_PASSED = 2,    /* not for us (or not supported): handed to the kernel */
	CNT_MALFORMED = 3, /* a Solicit or Request we could not parse: dropped */
	CNT_NO_ROOM = 4,   /* no room to grow the frame to the reply: dropped */
	CNT_MAX = 5,
};

/* Written once by user space before attaching. Integers in host byte order. */
struct config {
	__u8 mac[6];
	__u8 pad[2];
	__u8 src_ip[16];
	__u8 pool[16];
	__u8 host_mask[16];
	__u32 t1;
	__u32 t2;
	__u32 preferred;
	__u32 valid;
	__u32 server_id_len;
	__u8 server_id[MAX_DUID];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
} config SEC(".maps");

struct scratch {
	__u8 b[SCRATCH_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch SEC(".maps");

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

static __always_inline void put16(__u8 *p, __u16 v)
{
	p[0] = v >> 8;
	p[1] = v;
}

static __always_inline void put32(__u8 *p, __u32 v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

SEC("xdp")
int xdp_reflector(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6 = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip6 + 1);
	__u8 *msg = (void *)(udp + 1);
	__u32 zero = 0;

	if ((void *)(msg + 4) > data_end)
		return count(CNT_PASSED, XDP_PASS);
	if (eth->h_proto != bpf_htons(ETH_P_IPV6) || ip6->nexthdr != IPPROTO_UDP ||
	    udp->dest != bpf_htons(DHCPV6_SERVER_PORT) ||
	    udp->source != bpf_htons(DHCPV6_CLIENT_PORT))
		return count(CNT_PASSED, XDP_PASS);
	__u8 type = msg[0];
	if (type != MSG_SOLICIT && type != MSG_REQUEST)
		return count(CNT_PASSED, XDP_PASS);

	struct config *cfg = bpf_map_lookup_elem(&config, &zero);
	struct scratch *sc = bpf_map_lookup_elem(&scratch, &zero);
	if (!cfg || !sc)
		return count(CNT_PASSED, XDP_PASS);
	__u8 *s = sc->b;

	/* Walk the options: Client ID and the first IA_NA's IAID. Bounded; runtime-checked loads. */
	__u32 off = PAYLOAD_AT + 4;
	__u32 cid_off = 0, cid_len = 0, iaid = 0;
	int have_ia = 0, unsupported = 0;
	for (int i = 0; i < MAX_OPTIONS; i++) {
		__u8 h[8];
		if (bpf_xdp_load_bytes(ctx, off, h, 4) < 0)
			break;
		__u16 code = (h[0] << 8) | h[1];
		__u16 len = (h[2] << 8) | h[3];
		if (code == OPT_CLIENTID) {
			cid_off = off + 4;
			cid_len = len;
		} else if (code == OPT_IA_NA && !have_ia) {
			if (len < 12 || bpf_xdp_load_bytes(ctx, off + 4, h, 4) < 0)
				return count(CNT_MALFORMED, XDP_DROP);
			iaid = ((__u32)h[0] << 24) | ((__u32)h[1] << 16) | ((__u32)h[2] << 8) | h[3];
			have_ia = 1;
		} else if (code == 14 /* Rapid Commit */ || code == 25 /* IA_PD */) {
			unsupported = 1;
		}
		off += 4 + len;
	}
	if (unsupported || !have_ia)
		return count(CNT_PASSED, XDP_PASS);
	if (cid_len == 0 || cid_len > MAX_DUID)
		return count(CNT_MALFORMED, XDP_DROP);
	cid_len = BOUNDED_DUID_LEN(cid_len);
	__u32 sid_len = cfg->server_id_len;
	if (sid_len == 0 || sid_len > MAX_DUID)
		return count(CNT_PASSED, XDP_PASS);
	sid_len = BOUNDED_DUID_LEN(sid_len);

	/* The Client ID goes to a fixed place in the reply; hash it for the address. */
	if (bpf_xdp_load_bytes(ctx, cid_off, s + S_CID + 4, cid_len) < 0)
		return count(CNT_MALFORMED, XDP_DROP);
	__u32 h = 2166136261u;
	for (int i = 0; i < MAX_DUID; i++) {
		if (i >= cid_len)
			break;
		h = (h ^ s[S_CID + 4 + i]) * 16777619u;
	}

	/* Pseudo-header. */
	__builtin_memcpy(s + S_SRC, cfg->src_ip, 16);
	__builtin_memcpy(s + S_DST, &ip6->saddr, 16);
	__u32 plen = 4 + 4 + IA_OPT_LEN + 4 + cid_len + 4 + sid_len;
	put32(s + S_ULEN, 8 + plen);
	put32(s + S_NH, IPPROTO_UDP);
	/* UDP header, checksum zero while summing. */
	put16(s + S_UDP, DHCPV6_SERVER_PORT);
	put16(s + S_UDP + 2, DHCPV6_CLIENT_PORT);
	put16(s + S_UDP + 4, 8 + plen);
	put16(s + S_UDP + 6, 0);
	/* Message header: type and the request's transaction ID. */
	s[S_MSG] = type == MSG_SOLICIT ? MSG_ADVERTISE : MSG_REPLY;
	s[S_MSG + 1] = msg[1];
	s[S_MSG + 2] = msg[2];
	s[S_MSG + 3] = msg[3];
	/* IA_NA with one IAADDR. */
	__u8 *ia = s + S_IA;
	put16(ia, OPT_IA_NA);
	put16(ia + 2, IA_OPT_LEN);
	put32(ia + 4, iaid);
	put32(ia + 8, cfg->t1);
	put32(ia + 12, cfg->t2);
	put16(ia + 16, OPT_IAADDR);
	put16(ia + 18, 24);
	__u8 iid[16] = {};
	put32(iid + 8, h);
	put32(iid + 12, iaid);
	for (int i = 0; i < 16; i++)
		ia[20 + i] = cfg->pool[i] | (iid[i] & cfg->host_mask[i]);
	put32(ia + 36, cfg->preferred);
	put32(ia + 40, cfg->valid);
	/* Client ID (its bytes are in place already), then Server ID at a variable offset. */
	put16(s + S_CID, OPT_CLIENTID);
	put16(s + S_CID + 2, cid_len);
	__u32 sid_at = S_CID + 4 + cid_len;
	put16(s + sid_at, OPT_SERVERID);
	put16(s + sid_at + 2, sid_len);
	for (int i = 0; i < MAX_DUID; i++) {
		if (i >= sid_len)
			break;
		s[sid_at + 4 + i] = cfg->server_id[i];
	}
	/* Zero padding up to a multiple of 4 for the checksum (zeros do not change the sum). */
	__u32 end = S_MSG + plen;
	s[end] = 0;
	s[end + 1] = 0;
	s[end + 2] = 0;
	__u32 sum_len = (end + 3) & ~3u;
	if (sum_len > SCRATCH_LEN)
		return count(CNT_MALFORMED, XDP_DROP);
	__s64 sum = bpf_csum_diff(0, 0, (__be32 *)s, sum_len, 0);
	if (sum < 0)
		return count(CNT_MALFORMED, XDP_DROP);
	__u32 c = (__u32)sum;
	c = (c & 0xffff) + (c >> 16);
	c = (c & 0xffff) + (c >> 16);
	__u16 csum = ~c;
	if (csum == 0)
		csum = 0xffff;
	/* Native order in, native order out: the sum was taken over the bytes as they lie. */
	__builtin_memcpy(s + S_UDP + 6, &csum, 2);

	/* Resize the frame to the reply and write it. The reply is longer than the request and is
	 * written whole from the scratch buffer, so it may start earlier: a frame from a socket
	 * has next to no tailroom, but XDP guarantees headroom (XDP_PACKET_HEADROOM; veth copies
	 * a frame that lacks it), so a longer reply grows at the head, a shorter one shrinks at
	 * the tail. */
	__u8 dst_mac[6];
	__builtin_memcpy(dst_mac, eth->h_source, 6);
	int delta = (int)(PAYLOAD_AT + plen) - (int)(data_end - data);
	if (delta > 0 ? bpf_xdp_adjust_head(ctx, -delta) < 0 : bpf_xdp_adjust_tail(ctx, delta) < 0)
		return count(CNT_NO_ROOM, XDP_DROP);
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	ip6 = (void *)(eth + 1);
	if ((void *)(ip6 + 1) > data_end)
		return count(CNT_MALFORMED, XDP_DROP);
	__builtin_memcpy(eth->h_dest, dst_mac, 6);
	__builtin_memcpy(eth->h_source, cfg->mac, 6);
	eth->h_proto = bpf_htons(ETH_P_IPV6);
	ip6->priority = 0;
	ip6->version = 6;
	ip6->flow_lbl[0] = 0;
	ip6->flow_lbl[1] = 0;
	ip6->flow_lbl[2] = 0;
	ip6->payload_len = bpf_htons(8 + plen);
	ip6->nexthdr = IPPROTO_UDP;
	ip6->hop_limit = 64;
	__builtin_memcpy(&ip6->saddr, s + S_SRC, 16);
	__builtin_memcpy(&ip6->daddr, s + S_DST, 16);
	if (bpf_xdp_store_bytes(ctx, L2L3_LEN, s + S_UDP, 8 + plen) < 0)
		return count(CNT_MALFORMED, XDP_DROP);
	return count(type == MSG_SOLICIT ? CNT_ADVERTISE : CNT_REPLY, XDP_TX);
}

char _license[] SEC("license") = "Dual BSD/GPL";
