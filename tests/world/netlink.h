#pragma once

/**
 * @file
 * What the test world asks of the kernel's network configuration, without a
 * subprocess per step: named network namespaces (unshare + a bind mount under
 * /run/netns, so `ip netns` lists them as its own) and links, addresses and
 * routes through libnl-route-3, one rtnetlink socket per namespace.
 */

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "common/result.h"

struct nl_sock;

namespace veer::test {

/** Directory of named network namespaces, as iproute2 keeps them. */
inline constexpr const char* kNetnsDir = "/run/netns";

/** Creates the named netns /run/netns/<name> (EEXIST if it is there). */
Status createNetns(const std::string& name);

/**
 * SIGKILLs every process whose netns is /run/netns/<name> (except the caller),
 * then unmounts and removes the name. Absent: nothing to do.
 */
Status deleteNetns(const std::string& name);

/** Writes sysctls ("net.ipv4.ip_forward=1") inside the named netns. */
Status sysctlIn(const std::string& netns, const std::vector<std::string>& settings);

/** An rtnetlink socket bound to one network namespace, for links, addresses, routes. */
class Rtnl {
public:
  /** Opens a socket inside the named netns (the caller's own netns is never touched). */
  static Result<Rtnl> open(const std::string& netns);

  Rtnl(Rtnl&&) noexcept = default;
  Rtnl& operator=(Rtnl&&) noexcept = default;
  ~Rtnl();

  /** ifindex of a link, ENODEV if there is none by that name. */
  Result<int> ifindex(const std::string& link);
  /** Sets a link up. */
  Status up(const std::string& link);
  /** Creates a bridge, up (no STP: its ports forward as soon as they are up). */
  Status addBridge(const std::string& name);
  /**
   * Creates a veth pair: `name` here, enslaved to `master` and up; `peer` created
   * directly inside netns `peerNetns` (down: its owner brings it up there).
   */
  Status addVethToNetns(const std::string& name, const std::string& master, const std::string& peer,
                        const std::string& peerNetns);
  /** Adds "10.244.1.5/24" or "fd00:244:1::5/64" (IPv6 with nodad) to a link. */
  Status addAddress(const std::string& link, const std::string& cidr);
  /** Adds the default route of the gateway's family via gateway on link. */
  Status addDefaultRoute(const std::string& link, const std::string& gateway);
  /** Adds a blackhole route: connect() and sendmsg() to cidr fail at once with EINVAL. */
  Status addBlackhole(const std::string& cidr);

private:
  struct SockDeleter {
    void operator()(nl_sock* sk) const;
  };
  Rtnl(nl_sock* sk, std::string netns) : sk_(sk), netns_(std::move(netns)) {}
  Error nlError(int err, const std::string& what) const;

  std::unique_ptr<nl_sock, SockDeleter> sk_;
  std::string netns_;
};

} // namespace veer::test
