// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Socket-level datapath: cgroup sock_addr hooks that send a connection (TCP)
 * or datagram (UDP) for a service address to a version backend, and show the
 * service address back to the application (getpeername, recvmsg).
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "lib/accel.h"
#include "lib/lb.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Process verdicts of cgroup sock_addr programs. */
#define SOCK_PASS 1
#define SOCK_REJECT 0

static __always_inline void sock4_key(struct bpf_sock_addr *ctx, struct veer_svc_key *key)
{
	key->addr[2] = bpf_htonl(0xffff);
	key->addr[3] = ctx->user_ip4;
	key->port = (__be16)ctx->user_port;
	key->proto = ctx->protocol;
}

static __always_inline void sock6_key(struct bpf_sock_addr *ctx, struct veer_svc_key *key)
{
	key->addr[0] = ctx->user_ip6[0];
	key->addr[1] = ctx->user_ip6[1];
	key->addr[2] = ctx->user_ip6[2];
	key->addr[3] = ctx->user_ip6[3];
	key->port = (__be16)ctx->user_port;
	key->proto = ctx->protocol;
}

/* Which translation record a forwarded socket gets. */
enum sock_kind {
	SOCK_CONNECT,  /* connect(): one peer for the socket's life */
	SOCK_DATAGRAM, /* sendmsg() on an unconnected UDP socket */
};

static __always_inline void sock_remember(struct bpf_sock_addr *ctx, enum sock_kind kind,
					  __u64 cookie, const struct veer_backend *be,
					  const struct veer_svc_key *key, __u32 nat_flags)
{
	if (kind == SOCK_CONNECT)
		lb_remember_sock(ctx->sk, be, key, nat_flags);
	else
		lb_remember_dgram(cookie, be, key);
}

static __always_inline int sock4_forward(struct bpf_sock_addr *ctx, enum sock_kind kind)
{
	struct veer_svc_key key = {};
	const struct veer_backend *be;
	__u64 cookie = 0;
	__u32 nat_flags = 0;
	int refuse;

	sock4_key(ctx, &key);
	be = lb_select(ctx, &key, &cookie, &nat_flags, &refuse);
	if (!be)
		return refuse ? SOCK_REJECT : SOCK_PASS;
	if (be->family != VEER_FAMILY_V4)
		return SOCK_REJECT;
	ctx->user_ip4 = be->addr[3];
	ctx->user_port = be->port;
	sock_remember(ctx, kind, cookie, be, &key, nat_flags);
	return SOCK_PASS;
}

static __always_inline int sock6_forward(struct bpf_sock_addr *ctx, enum sock_kind kind)
{
	struct veer_svc_key key = {};
	const struct veer_backend *be;
	__u64 cookie = 0;
	__u32 nat_flags = 0;
	int refuse;

	sock6_key(ctx, &key);
	be = lb_select(ctx, &key, &cookie, &nat_flags, &refuse);
	if (!be)
		return refuse ? SOCK_REJECT : SOCK_PASS;
	/* IPv4 backends are stored IPv4-mapped: right for a dual-stack socket. */
	ctx->user_ip6[0] = be->addr[0];
	ctx->user_ip6[1] = be->addr[1];
	ctx->user_ip6[2] = be->addr[2];
	ctx->user_ip6[3] = be->addr[3];
	ctx->user_port = be->port;
	sock_remember(ctx, kind, cookie, be, &key, nat_flags);
	return SOCK_PASS;
}

static __always_inline void sock4_unforward(struct bpf_sock_addr *ctx)
{
	__be32 addr[4] = {0, 0, bpf_htonl(0xffff), ctx->user_ip4};
	__be16 port = (__be16)ctx->user_port;

	if (!lb_reverse(ctx, addr, &port))
		return;
	ctx->user_ip4 = addr[3];
	ctx->user_port = port;
}

static __always_inline void sock6_unforward(struct bpf_sock_addr *ctx)
{
	__be32 addr[4] = {ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3]};
	__be16 port = (__be16)ctx->user_port;

	if (!lb_reverse(ctx, addr, &port))
		return;
	ctx->user_ip6[0] = addr[0];
	ctx->user_ip6[1] = addr[1];
	ctx->user_ip6[2] = addr[2];
	ctx->user_ip6[3] = addr[3];
	ctx->user_port = port;
}

SEC("cgroup/connect4")
int veer_connect4(struct bpf_sock_addr *ctx)
{
	return sock4_forward(ctx, SOCK_CONNECT);
}

SEC("cgroup/connect6")
int veer_connect6(struct bpf_sock_addr *ctx)
{
	return sock6_forward(ctx, SOCK_CONNECT);
}

SEC("cgroup/sendmsg4")
int veer_sendmsg4(struct bpf_sock_addr *ctx)
{
	return sock4_forward(ctx, SOCK_DATAGRAM);
}

SEC("cgroup/sendmsg6")
int veer_sendmsg6(struct bpf_sock_addr *ctx)
{
	return sock6_forward(ctx, SOCK_DATAGRAM);
}

SEC("cgroup/recvmsg4")
int veer_recvmsg4(struct bpf_sock_addr *ctx)
{
	sock4_unforward(ctx);
	return SOCK_PASS;
}

SEC("cgroup/recvmsg6")
int veer_recvmsg6(struct bpf_sock_addr *ctx)
{
	sock6_unforward(ctx);
	return SOCK_PASS;
}

SEC("cgroup/getpeername4")
int veer_getpeername4(struct bpf_sock_addr *ctx)
{
	sock4_unforward(ctx);
	return SOCK_PASS;
}

SEC("cgroup/getpeername6")
int veer_getpeername6(struct bpf_sock_addr *ctx)
{
	sock6_unforward(ctx);
	return SOCK_PASS;
}

/* Client cgroup: a connection is established (a client's, a server's, or
 * one redirected to veer-proxy). */
SEC("sockops")
int veer_sockops(struct bpf_sock_ops *skops)
{
	__u32 op = skops->op;

	if (op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB)
		proxy_record_client(skops);
	if (op == BPF_SOCK_OPS_STATE_CB)
		proxy_forget_client(skops);
	if (op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB || op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		accel_add(skops);
	return 1;
}

/* Attached to veer_sockets (not a cgroup): a member socket sends. */
SEC("sk_msg")
int veer_sk_msg(struct sk_msg_md *msg)
{
	return accel_msg(msg);
}

/* veer-proxy's cgroup only: getsockopt(SO_ORIGINAL_DST) on accepted sockets. */
SEC("cgroup/getsockopt")
int veer_getsockopt(struct bpf_sockopt *ctx)
{
	proxy_original_dst(ctx);
	return 1;
}
