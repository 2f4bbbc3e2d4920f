/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Redirect to veer-proxy: connections to an L7 service go to the node's proxy
 * instead of a backend, and the proxy learns the service the client asked for.
 *
 * connect hook: only while the proxy serves (veer_proxy.ready and its listener
 *               still in veer_proxy_listeners), the socket's veer_sock_nat
 *               gets VEER_NAT_F_PROXY (the client port is not chosen yet, so
 *               nothing else can be recorded here); otherwise the kernel path
 *               takes it, flagged VEER_NAT_F_FALLBACK;
 * sockops:      once established, (client address, client port) -> service in
 *               veer_orig_dst, deleted again when the client's socket closes;
 * getsockopt:   in the proxy's cgroup, SO_ORIGINAL_DST on an accepted socket
 *               answers from veer_orig_dst by the socket's peer.
 */
#ifndef VEER_BPF_PROXY_H
#define VEER_BPF_PROXY_H

#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lib/common.h"
#include "lib/maps.h"

/*
 * proxy_listening() - whether veer-proxy's listening socket of a family is
 * open. The agent puts it in veer_proxy_listeners; the kernel takes it out as
 * the socket closes (before its state leaves LISTEN), so this needs no agent
 * alive to notice a dead proxy.
 */
static __always_inline int proxy_listening(__u32 slot)
{
	struct bpf_sock *sk = bpf_map_lookup_elem(&veer_proxy_listeners, &slot);
	int up;

	if (!sk)
		return 0;
	up = sk->state == BPF_TCP_LISTEN;
	bpf_sk_release(sk);
	return up;
}

/*
 * proxy_backend() - the proxy's listen address for a connection to an L7
 * service, or NULL when the kernel path should serve it: the connection is not
 * TCP, it is the proxy's own (marked) socket, or the proxy is not serving (not
 * ready, no listener of the service's family, or that listener closed); in
 * that last case *fallback is set.
 */
static __always_inline const struct veer_backend *
proxy_backend(struct bpf_sock_addr *ctx, const struct veer_svc_key *key, int *fallback)
{
	const struct veer_proxy *px;
	const struct veer_backend *be;
	struct bpf_sock *sk = ctx->sk;
	__u32 zero = 0, slot;

	*fallback = 0;
	if (key->proto != IPPROTO_TCP || !sk)
		return NULL;
	px = bpf_map_lookup_elem(&veer_proxy, &zero);
	if (!px)
		return NULL;
	if (px->mark && sk->mark == px->mark)
		return NULL;
	*fallback = 1;
	if (!px->ready)
		return NULL;
	/* IPv4 services are keyed IPv4-mapped. */
	if (key->addr[0] == 0 && key->addr[1] == 0 && key->addr[2] == bpf_htonl(0xffff)) {
		be = &px->listen4;
		slot = VEER_PROXY_LISTENER_V4;
	} else {
		be = &px->listen6;
		slot = VEER_PROXY_LISTENER_V6;
	}
	if (!be->family || !proxy_listening(slot))
		return NULL;
	*fallback = 0;
	return be;
}

/* The client address of veer_orig_key, IPv4-mapped for IPv4 (fields already
 * read from the context, each with one 32-bit load). */
static __always_inline void proxy_key_addr(struct veer_orig_key *key, __u32 family, __u32 ip4,
					   __u32 ip6_0, __u32 ip6_1, __u32 ip6_2, __u32 ip6_3)
{
	if (family == 2 /* AF_INET */) {
		key->addr[2] = bpf_htonl(0xffff);
		key->addr[3] = ip4;
	} else {
		key->addr[0] = ip6_0;
		key->addr[1] = ip6_1;
		key->addr[2] = ip6_2;
		key->addr[3] = ip6_3;
	}
}

/* A redirected connection is established: remember its client end. */
static __always_inline void proxy_record_client(struct bpf_sock_ops *skops)
{
	const struct veer_sock_nat *nat;
	struct veer_orig_key key = {};
	struct veer_orig_dst dst = {};
	struct bpf_sock *sk = skops->sk;

	if (!sk)
		return;
	nat = bpf_sk_storage_get(&veer_sock_nat, sk, 0, 0);
	if (!nat || !(nat->flags & VEER_NAT_F_PROXY))
		return;
	proxy_key_addr(&key, ctx_u32(skops->family), ctx_u32(skops->local_ip4),
		       ctx_u32(skops->local_ip6[0]), ctx_u32(skops->local_ip6[1]),
		       ctx_u32(skops->local_ip6[2]), ctx_u32(skops->local_ip6[3]));
	key.port = bpf_htons((__u16)skops->local_port);
	__builtin_memcpy(dst.addr, nat->service, sizeof(dst.addr));
	dst.port = nat->service_port;
	if (bpf_map_update_elem(&veer_orig_dst, &key, &dst, BPF_ANY))
		return;
	/* Tell us when it closes (proxy_forget_client), so a later connection
	 * from the same address and port is never taken for this one. */
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
}

/* A redirected connection closed (only those get the state callback): forget
 * its client end. The socket still has its address and port here. */
static __always_inline void proxy_forget_client(struct bpf_sock_ops *skops)
{
	struct veer_orig_key key = {};

	if (skops->args[1] != BPF_TCP_CLOSE)
		return;
	proxy_key_addr(&key, ctx_u32(skops->family), ctx_u32(skops->local_ip4),
		       ctx_u32(skops->local_ip6[0]), ctx_u32(skops->local_ip6[1]),
		       ctx_u32(skops->local_ip6[2]), ctx_u32(skops->local_ip6[3]));
	key.port = bpf_htons((__u16)skops->local_port);
	bpf_map_delete_elem(&veer_orig_dst, &key);
}

#define PROXY_SO_ORIGINAL_DST 80 /* SOL_IP SO_ORIGINAL_DST, SOL_IPV6 IP6T_SO_ORIGINAL_DST */
#define PROXY_SOL_IP 0
#define PROXY_SOL_IPV6 41

struct proxy_sockaddr_in {
	__u16 family;
	__be16 port;
	__be32 addr;
	__u8 zero[8];
};

struct proxy_sockaddr_in6 {
	__u16 family;
	__be16 port;
	__be32 flowinfo;
	__be32 addr[4];
	__u32 scope_id;
};

/*
 * proxy_original_dst() - answer getsockopt(SO_ORIGINAL_DST) on a socket the
 * proxy accepted. Any other option passes through untouched.
 */
static __always_inline void proxy_original_dst(struct bpf_sockopt *ctx)
{
	const struct veer_orig_dst *dst;
	struct veer_orig_key key = {};
	struct bpf_sock *sk = ctx->sk;
	void *end = (void *)(long)ctx->optval_end;
	void *val = (void *)(long)ctx->optval;

	if (ctx->optname != PROXY_SO_ORIGINAL_DST ||
	    (ctx->level != PROXY_SOL_IP && ctx->level != PROXY_SOL_IPV6) || !sk)
		return;
	proxy_key_addr(&key, ctx_u32(sk->family), ctx_u32(sk->dst_ip4), ctx_u32(sk->dst_ip6[0]),
		       ctx_u32(sk->dst_ip6[1]), ctx_u32(sk->dst_ip6[2]), ctx_u32(sk->dst_ip6[3]));
	key.port = sk->dst_port;
	dst = bpf_map_lookup_elem(&veer_orig_dst, &key);
	if (!dst)
		return;
	if (dst->addr[0] == 0 && dst->addr[1] == 0 && dst->addr[2] == bpf_htonl(0xffff)) {
		struct proxy_sockaddr_in *sin = val;

		if ((void *)(sin + 1) > end)
			return;
		sin->family = 2; /* AF_INET */
		sin->port = dst->port;
		sin->addr = dst->addr[3];
		__builtin_memset(sin->zero, 0, sizeof(sin->zero));
		ctx->optlen = sizeof(*sin);
	} else {
		struct proxy_sockaddr_in6 *sin6 = val;

		if ((void *)(sin6 + 1) > end)
			return;
		sin6->family = 10; /* AF_INET6 */
		sin6->port = dst->port;
		sin6->flowinfo = 0;
		sin6->addr[0] = dst->addr[0];
		sin6->addr[1] = dst->addr[1];
		sin6->addr[2] = dst->addr[2];
		sin6->addr[3] = dst->addr[3];
		sin6->scope_id = 0;
		ctx->optlen = sizeof(*sin6);
	}
	ctx->retval = 0;
}

#endif /* VEER_BPF_PROXY_H */
