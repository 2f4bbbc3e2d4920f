/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The one definition of every veer BPF map key and value, shared by the BPF
 * programs (bpf/) and userspace (userspace/). Fixed-width types only, explicit
 * padding, no bitfields; every field says its byte order.
 *
 * Double buffering: every config-derived key carries a generation byte. The
 * agent writes a new config under the inactive generation, then flips
 * veer_state.gen with one map update. A BPF program reads gen once and looks
 * everything up under it, so it never sees half of a config.
 */
#ifndef VEER_MAPS_H
#define VEER_MAPS_H

#ifdef __cplusplus
#include <linux/types.h>
#include <cstddef>
#endif

/* Weighted version choice: every service owns a table of VEER_WEIGHT_SLOTS
 * slots, each naming a version index; a version of weight w owns exactly w
 * slots, spread by smooth weighted round-robin so any VEER_WEIGHT_SLOTS
 * consecutive picks contain each version exactly w times. */
#define VEER_WEIGHT_SLOTS 100
#define VEER_MAX_VERSIONS 16
/* Maglev lookup table size: a prime, >= 100x the backends of a version.
 * Cilium's default: at 4099 removing one of 10 backends also moved 1.1 % of
 * the other backends' entries, at 16381 0.4 % (the bound is 1 %). */
#define VEER_MAGLEV_SIZE 16381
#define VEER_MAX_BACKENDS_PER_VERSION 40
#define VEER_MAX_SERVICES 65536
#define VEER_MAX_VERSION_IDS (VEER_MAX_SERVICES * 4)
#define VEER_MAX_BACKENDS 262144
#define VEER_REVNAT_ENTRIES 262144
#define VEER_ORIG_DST_ENTRIES 262144
#define VEER_NAME_LEN 64
#define VEER_SUBSET_LEN 32
#define VEER_NO_VERSION 0xff
/* Lanes (full-link gray): lane ids 1..VEER_MAX_LANES-1; 0 = the client is in
 * no lane and gets the weights. */
#define VEER_MAX_LANES 16
#define VEER_MAX_LANE_CLIENTS 65536
/* Cgroup levels the lane lookup walks up from the client's own cgroup (a
 * Kubernetes container cgroup sits at level 4 or 5). */
#define VEER_LANE_MAX_DEPTH 10
#define VEER_AFFINITY_ENTRIES 262144
#define VEER_RECYCLE_TARGETS 65536
/* veer_sockets: node-local TCP connection ends that socket acceleration can
 * join (both ends of a connection, so twice the connections). A full map only
 * means a new connection goes through the TCP stack, as without acceleration. */
#define VEER_ACCEL_SOCKETS 131072

/* veer_svc_key.family, veer_backend.family */
#define VEER_FAMILY_V4 4
#define VEER_FAMILY_V6 6

/* veer_service.flags */
#define VEER_SVC_F_NONE 0
/* Session affinity: the version (and the backend inside it) is chosen by a
 * hash of the client's identity (its pod's netns cookie; the cgroup id for
 * host-network processes) against the slot table, which is then laid out
 * cumulatively in subset-name order: a client stays on its version while the
 * weights stay, and a client on the last version stays there as it grows. */
#define VEER_SVC_F_AFFINITY 1
/* The service's rules need request bytes (header, cookie, URI matches, header
 * actions...): while veer_proxy says the proxy is ready, TCP connections go to
 * veer-proxy instead, which routes each request. Otherwise the kernel applies
 * the version split compiled from the service's unconditional rule. */
#define VEER_SVC_F_L7 2
/* Lanes: a client whose cgroup (or an ancestor) is in veer_lane_of gets the
 * version lane_version[lane] when it is set, whatever the weights say. */
#define VEER_SVC_F_LANES 4

/* Key of veer_svc: the service address a client connects to. IPv4 addresses
 * are stored IPv4-mapped (::ffff:a.b.c.d) so a dual-stack socket's connect6
 * to a mapped address finds the IPv4 service. */
struct veer_svc_key {
	__be32 addr[4]; /* network order, IPv4-mapped for IPv4 */
	__be16 port;	/* network order */
	__u8 proto;	/* IPPROTO_TCP or IPPROTO_UDP */
	__u8 gen;	/* generation, 0 or 1 */
};

/* Value of veer_svc: one service port and its version split. */
struct veer_service {
	__u32 svc_id;	 /* host order; index into veer_rr, stable per service port */
	__u8 n_versions; /* host order; entries used in version_id[] */
	__u8 flags;	 /* VEER_SVC_F_* */
	__u16 pad;
	__u32 affinity_timeout;		     /* host order; seconds an idle client stays pinned to
						its backend in veer_affinity; 0 = no pinning (Maglev alone) */
	__u32 version_id[VEER_MAX_VERSIONS]; /* host order; keys of veer_version */
	__u8 slot[VEER_WEIGHT_SLOTS];	     /* version index per slot, VEER_NO_VERSION if
						all weights are 0 */
	__u8 lane_version[VEER_MAX_LANES];   /* version index per lane id, VEER_NO_VERSION
						= the weights decide (VEER_SVC_F_LANES) */
};

/* Key of veer_version, veer_maglev and veer_stats. */
struct veer_version_key {
	__u32 id; /* host order; assigned by the compiler */
	__u8 gen; /* generation, 0 or 1 */
	__u8 pad[3];
};

/* Value of veer_version: one version (subset) of one service port. */
struct veer_version {
	__u32 svc_id;	  /* host order */
	__u16 n_backends; /* host order; 0 = no ready endpoint, connect fails */
	__u8 weight;	  /* percent, 0..100 */
	__u8 pad;
	__u32 backend_id[VEER_MAX_BACKENDS_PER_VERSION]; /* host order; keys of
			     veer_backend, n_backends used; veer_maglev holds indexes into
			     it. A version of one backend has no ring */
	char service[VEER_NAME_LEN];			 /* "namespace/name:port", NUL-terminated */
	char subset[VEER_SUBSET_LEN];			 /* subset name, "" for the whole service */
};

/* Value of veer_maglev, for a version of two or more backends: its lookup
 * table, each entry an index into veer_version.backend_id. One byte an entry
 * (a version has at most VEER_MAX_BACKENDS_PER_VERSION backends), so a ring
 * is 16 KiB where a table of backend ids would be 64 KiB. */
struct veer_maglev_ring {
	__u8 backend_index[VEER_MAGLEV_SIZE];
	__u8 pad[3];
};

struct veer_backend_key {
	__u32 id; /* host order; assigned by the compiler */
	__u8 gen; /* generation, 0 or 1 */
	__u8 pad[3];
};

/* Value of veer_backend: where a connection is sent. */
struct veer_backend {
	__be32 addr[4]; /* network order, IPv4-mapped for IPv4 */
	__be16 port;	/* network order */
	__u8 family;	/* VEER_FAMILY_V4 or VEER_FAMILY_V6 */
	__u8 pad;
};

/* Key of veer_revnat: an unconnected UDP socket and a backend it sent a
 * datagram to. Lets recvmsg show the service address as the reply's source. */
struct veer_revnat_key {
	__u64 cookie;	/* host order; socket cookie */
	__be32 addr[4]; /* network order, backend address, IPv4-mapped for IPv4 */
	__be16 port;	/* network order, backend port */
	__u8 pad[6];
};

struct veer_revnat {
	__be32 addr[4]; /* network order, service address, IPv4-mapped */
	__be16 port;	/* network order, service port */
	__u8 pad[6];
};

/* Value of veer_sock_nat (socket-local storage): the one translation of a
 * connected socket (TCP, connected UDP). Lives and dies with the socket, so
 * the connect path writes no shared map. */
struct veer_sock_nat {
	__be32 backend[4];   /* network order, backend address, IPv4-mapped for IPv4 */
	__be32 service[4];   /* network order, service address, IPv4-mapped for IPv4 */
	__be16 backend_port; /* network order */
	__be16 service_port; /* network order */
	__u32 flags;	     /* VEER_NAT_F_* */
};

/* veer_sock_nat.flags */
/* The backend is veer-proxy: sockops records the client's address and port
 * in veer_orig_dst once the connection is established, and deletes them when
 * the connection closes. */
#define VEER_NAT_F_PROXY 1
/* The service is L7 but veer-proxy was not serving at connect() (not ready, or
 * its listener gone): the kernel path took the connection. The agent destroys
 * such sockets once the proxy serves again (VEER_RECYCLE_FALLBACK), so that a
 * keep-alive client comes back to per-request routing. */
#define VEER_NAT_F_FALLBACK 2

/* Value of veer_proxy (array of one): where the node's veer-proxy listens.
 * Written by the agent; the connect hooks redirect VEER_SVC_F_L7 services to
 * it only while ready is 1 AND the proxy's listening socket of the family is
 * in veer_proxy_listeners (the kernel drops it there when the socket closes,
 * so a dead proxy stops the redirect with no agent alive). The agent changes the listen addresses
 * only while ready is 0, so a reader never mixes an old address with a new one. */
struct veer_proxy {
	struct veer_backend listen4; /* family 0 when the proxy has no IPv4 listener */
	struct veer_backend listen6; /* family 0 when the proxy has no IPv6 listener */
	__u32 mark; /* host order; SO_MARK of the proxy's own sockets: never redirected */
	__u8 ready; /* 1 while the proxy serves the route table of the live config */
	__u8 pad[3];
	__u64 routes_digest; /* host order; FNV-1a of the route table file the proxy loaded */
};

/* Keys of veer_proxy_listeners (sockmap of two): one listening socket of
 * veer-proxy per family, put there by the agent once the proxy has loaded the
 * route table. The entry vanishes when the socket closes (the proxy exits). */
#define VEER_PROXY_LISTENER_V4 0
#define VEER_PROXY_LISTENER_V6 1
#define VEER_PROXY_LISTENERS 2

/* Key of veer_orig_dst: the client end of a connection redirected to the
 * proxy, as the proxy sees its peer. */
struct veer_orig_key {
	__be32 addr[4]; /* network order, client address, IPv4-mapped for IPv4 */
	__be16 port;	/* network order, client port */
	__u8 pad[2];
};

/* Value of veer_orig_dst: the service address the client connected to, which
 * the proxy reads with getsockopt(SO_ORIGINAL_DST). */
struct veer_orig_dst {
	__be32 addr[4]; /* network order, IPv4-mapped for IPv4 */
	__be16 port;	/* network order */
	__u8 pad[2];
};

/* Value of veer_rr (array indexed by svc_id): the connection sequence number
 * that drives the weighted slot table. Not generation-bound, so a weight
 * change keeps the sequence going. */
struct veer_rr {
	__u64 next; /* host order */
};

/* Key of veer_sockets: one end of a node-local TCP connection, as that end
 * sees it. The peer's key is the same with local and remote swapped. */
struct veer_sock_pair {
	__be32 local[4];   /* network order, IPv4-mapped for IPv4 */
	__be32 remote[4];  /* network order, IPv4-mapped for IPv4 */
	__u32 local_port;  /* host order */
	__u32 remote_port; /* host order */
};

/* veer_accel (socket storage): what a socket in veer_sockets does with what it
 * sends. Decided on its first message and never changed, so that no byte sent
 * through the TCP stack can be overtaken by a later one delivered directly. */
#define VEER_ACCEL_UNDECIDED 0
#define VEER_ACCEL_REDIRECT 1 /* into the peer socket's receive queue */
#define VEER_ACCEL_TCP 2      /* through the TCP stack: the peer was not there yet */

struct veer_accel {
	__u32 state; /* VEER_ACCEL_* */
};

/* Value of veer_accel_stats (per-CPU array of one). */
struct veer_accel_stats {
	__u64 sockets;		/* host order; connection ends added to veer_sockets */
	__u64 redirected;	/* host order; messages delivered straight to the peer socket */
	__u64 redirected_bytes; /* host order */
	__u64 tcp; /* host order; messages of added sockets sent through the TCP stack */
};

/* Value of veer_stats (per-CPU hash keyed by veer_version_key). */
struct veer_stats {
	__u64 connects; /* host order; connections (TCP) or datagrams (UDP) sent to this version */
	__u64 no_backend; /* host order; refused: the version had no backend */
};

/* Key of veer_member: is this backend in this version (of this generation)?
 * The affinity pin stores a backend address, which survives recompiles that
 * renumber backend ids; this map answers whether it is still a live choice. */
struct veer_member_key {
	__u32 version_id; /* host order; key of veer_version */
	__u8 gen;	  /* generation, 0 or 1 */
	__u8 pad;
	__be16 port;	/* network order, backend port */
	__be32 addr[4]; /* network order, backend address, IPv4-mapped for IPv4 */
};

/* Key of veer_affinity (LRU): one client of one service address. */
struct veer_affinity_key {
	__u64 client;	/* host order; hash of the client's pod netns cookie (or its
			   cgroup id in the node's netns), as lb_client_key() computes */
	__be32 addr[4]; /* network order, service address, IPv4-mapped for IPv4 */
	__be16 port;	/* network order, service port */
	__u8 proto;	/* IPPROTO_TCP or IPPROTO_UDP */
	__u8 pad[5];
};

/* Value of veer_affinity: the backend a client is pinned to and when it last
 * connected (idle timeout veer_service.affinity_timeout). */
struct veer_affinity {
	__u64 last_used_ns;  /* host order; bpf_ktime_get_coarse_ns (CLOCK_MONOTONIC_COARSE) */
	__be32 backend[4];   /* network order, IPv4-mapped for IPv4 */
	__be16 backend_port; /* network order */
	__u8 pad[6];
};

/* Key of veer_lane_of: a client pod's cgroup. */
struct veer_lane_key {
	__u64 cgroup_id; /* host order; cgroup v2 id (inode of the directory) */
	__u8 gen;	 /* generation, 0 or 1 */
	__u8 pad[7];
};

/* Value of veer_lane_of. */
struct veer_lane {
	__u32 id; /* host order; lane id, 1..VEER_MAX_LANES-1 */
	__u32 pad;
};

/* veer_recycle_key.kind. Every kind names the service a socket was
 * translated from (its veer_sock_nat): a socket veer did not translate, or
 * translated for another service, is never destroyed. */
/* backend/backend_port: a share (permille) of the service's sockets whose
 * backend it is. */
#define VEER_RECYCLE_PEER 0
/* A service with VEER_SVC_F_AFFINITY: its sockets whose client's hash now
 * picks a version their backend is not in (veer_member). Iterators only:
 * needs the socket's netns and cgroup, which a sock_diag dump does not give. */
#define VEER_RECYCLE_AFFINITY 1
/* An L7 service: its sockets that took the kernel path while veer-proxy was
 * not serving (VEER_NAT_F_FALLBACK). */
#define VEER_RECYCLE_FALLBACK 2

/* Key of veer_recycle_targets_v2 (veer_recycle.bpf.c; built from a socket's
 * veer_sock_nat by the iterators, compared by the netlink path): which sockets
 * the recycling destroys. v2: v1 named a backend alone, which also hit the
 * connections of another service reusing that IP:port. */
struct veer_recycle_key {
	__be32 addr[4];	     /* network order, service address, IPv4-mapped for IPv4 */
	__be32 backend[4];   /* network order, VEER_RECYCLE_PEER: backend address,
				IPv4-mapped for IPv4; zero for other kinds */
	__be16 port;	     /* network order, service port */
	__be16 backend_port; /* network order, VEER_RECYCLE_PEER; 0 for other kinds */
	__u8 proto;	     /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 kind;	     /* VEER_RECYCLE_* */
	__u8 pad[2];
};

struct veer_recycle {
	__u32 permille; /* host order; VEER_RECYCLE_PEER: share of those sockets to
			   destroy, 0..1000, chosen by socket cookie hash */
};

/* Value of veer_state (array of one): which generation is live. */
struct veer_state {
	__u32 gen;	/* host order; live generation, 0 or 1 */
	__u32 rejected; /* host order; configs rejected (invalid or failed to apply) */
	__u64 applied;	/* host order; successful applies since the maps were created */
	__u64 digest;	/* host order; FNV-1a of the live map image */
};

#ifdef __cplusplus
static_assert(sizeof(struct veer_svc_key) == 20);
static_assert(offsetof(struct veer_svc_key, port) == 16);
static_assert(sizeof(struct veer_service) ==
	      12 + 4 * VEER_MAX_VERSIONS + VEER_WEIGHT_SLOTS + VEER_MAX_LANES);
static_assert(sizeof(struct veer_service) % 4 == 0);
static_assert(sizeof(struct veer_version_key) == 8);
static_assert(sizeof(struct veer_version) ==
	      8 + 4 * VEER_MAX_BACKENDS_PER_VERSION + VEER_NAME_LEN + VEER_SUBSET_LEN);
static_assert(VEER_MAX_BACKENDS_PER_VERSION <= 255); /* a ring entry is one byte */
static_assert(sizeof(struct veer_maglev_ring) == VEER_MAGLEV_SIZE + 3);
static_assert(sizeof(struct veer_backend_key) == 8);
static_assert(sizeof(struct veer_backend) == 20);
static_assert(sizeof(struct veer_revnat_key) == 32);
static_assert(offsetof(struct veer_revnat_key, port) == 24);
static_assert(sizeof(struct veer_revnat) == 24);
static_assert(sizeof(struct veer_sock_nat) == 40);
static_assert(sizeof(struct veer_proxy) == 56);
static_assert(offsetof(struct veer_proxy, routes_digest) == 48);
static_assert(sizeof(struct veer_orig_key) == 20);
static_assert(sizeof(struct veer_orig_dst) == 20);
static_assert(sizeof(struct veer_rr) == 8);
static_assert(sizeof(struct veer_stats) == 16);
static_assert(sizeof(struct veer_state) == 24);
static_assert(sizeof(struct veer_member_key) == 24);
static_assert(sizeof(struct veer_affinity_key) == 32);
static_assert(offsetof(struct veer_affinity_key, port) == 24);
static_assert(sizeof(struct veer_affinity) == 32);
static_assert(sizeof(struct veer_lane_key) == 16);
static_assert(sizeof(struct veer_lane) == 8);
static_assert(sizeof(struct veer_recycle_key) == 40);
static_assert(offsetof(struct veer_recycle_key, port) == 32);
static_assert(sizeof(struct veer_recycle) == 4);
static_assert(sizeof(struct veer_sock_pair) == 40);
static_assert(sizeof(struct veer_accel) == 4);
static_assert(sizeof(struct veer_accel_stats) == 32);
#endif

#endif /* VEER_MAPS_H */
