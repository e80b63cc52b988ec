// SPDX-License-Identifier: GPL-2.0
// The relay's kernel fast path: a tc classifier that forwards the RTP and
// RTCP of established streams without waking the relay's threads.
//
// For each packet arriving on the interface: an IPv4/UDP datagram whose
// (source, destination) pair is a key of `routes` gets the addresses and
// ports of the route's value (out of the router's port facing the other
// party, to that party) and is sent out of the route's interface, the
// neighbour's address filled in by the kernel. Anything else (no route,
// IPv6, IP options, fragments) goes on, unchanged, to the next program or
// up the stack to the relay's sockets, where the user-space relay handles
// and counts it.
//
// The user-space relay (host/relay/src/kernel.rs) decides which streams
// are offloaded and writes their routes; this program only follows them.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

// Network byte order throughout: as the packet carries them.
struct route_key {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
};

struct route {
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	// The interface to send it out of (the neighbour's MAC is the kernel's business).
	__u32 ifindex;
	__u64 packets;
	__u64 bytes;
	// bpf_ktime_get_ns() of the last packet forwarded.
	__u64 last_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct route_key);
	__type(value, struct route);
} routes SEC(".maps");

// Why packets went where they went (per CPU): see `enum outcome`.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} outcomes SEC(".maps");

enum outcome {
	FORWARDED = 0, // rewritten and handed to the neighbour subsystem
	FAILED = 1,    // a helper failed after the rewrite began: dropped
};

static __always_inline void count(__u32 what)
{
	__u64 *n = bpf_map_lookup_elem(&outcomes, &what);
	if (n)
		*n += 1;
}

#define IP_CSUM_OFF (ETH_HLEN + offsetof(struct iphdr, check))
#define UDP_CSUM_OFF (ETH_HLEN + sizeof(struct iphdr) + offsetof(struct udphdr, check))
#define ADDRS_OFF (ETH_HLEN + offsetof(struct iphdr, saddr))
#define PORTS_OFF (ETH_HLEN + sizeof(struct iphdr))

SEC("classifier")
int forward(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + ETH_HLEN;
	struct udphdr *udp = data + ETH_HLEN + sizeof(struct iphdr);
	if ((void *)(udp + 1) > end)
		return TC_ACT_UNSPEC;
	// A packet merged by GRO holds several datagrams: the stack splits it.
	if (skb->gso_segs > 1)
		return TC_ACT_UNSPEC;
	if (eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5 || ip->protocol != IPPROTO_UDP)
		return TC_ACT_UNSPEC;
	if (ip->frag_off & bpf_htons(0x3fff)) // more fragments, or an offset
		return TC_ACT_UNSPEC;
	struct route_key key = {
		.saddr = ip->saddr, .daddr = ip->daddr, .sport = udp->source, .dport = udp->dest};
	struct route *r = bpf_map_lookup_elem(&routes, &key);
	if (!r)
		return TC_ACT_UNSPEC;

	__u32 old_addrs[2] = {ip->saddr, ip->daddr};
	__u32 new_addrs[2] = {r->saddr, r->daddr};
	__u32 old_ports = ((__u32)udp->dest << 16) | udp->source;
	__u32 new_ports = ((__u32)r->dport << 16) | r->sport;
	__s64 addr_diff = bpf_csum_diff(old_addrs, sizeof(old_addrs), new_addrs, sizeof(new_addrs), 0);
	__s64 port_diff = bpf_csum_diff(&old_ports, 4, &new_ports, 4, 0);
	__sync_fetch_and_add(&r->packets, 1);
	__sync_fetch_and_add(&r->bytes, (__u16)(bpf_ntohs(udp->len) - sizeof(struct udphdr)));
	r->last_ns = bpf_ktime_get_ns();

	if (bpf_l4_csum_replace(skb, UDP_CSUM_OFF, 0, addr_diff, BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0) ||
	    bpf_l4_csum_replace(skb, UDP_CSUM_OFF, 0, port_diff, BPF_F_MARK_MANGLED_0) ||
	    bpf_l3_csum_replace(skb, IP_CSUM_OFF, 0, addr_diff, 0) ||
	    bpf_skb_store_bytes(skb, ADDRS_OFF, new_addrs, sizeof(new_addrs), 0) ||
	    bpf_skb_store_bytes(skb, PORTS_OFF, &new_ports, 4, 0))
		return count(FAILED), TC_ACT_SHOT;
	count(FORWARDED);
	return bpf_redirect_neigh(r->ifindex, NULL, 0, 0);
}

char LICENSE[] SEC("license") = "GPL";
