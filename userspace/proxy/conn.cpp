#include "proxy/conn.h"

namespace veer::proxy {

IpAddr ipOf(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET) {
    return IpAddr::fromV4(reinterpret_cast<const sockaddr_in&>(ss).sin_addr.s_addr);
  }
  return IpAddr::fromBytes(&reinterpret_cast<const sockaddr_in6&>(ss).sin6_addr);
}

uint16_t portOf(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in&>(ss).sin_port);
  }
  return ntohs(reinterpret_cast<const sockaddr_in6&>(ss).sin6_port);
}

socklen_t toSockaddr(const IpAddr& ip, uint16_t port, sockaddr_storage* ss) {
  std::memset(ss, 0, sizeof(*ss));
  if (ip.v4) {
    auto* a = reinterpret_cast<sockaddr_in*>(ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    a->sin_addr.s_addr = ip.v4NetOrder();
    return sizeof(sockaddr_in);
  }
  auto* a = reinterpret_cast<sockaddr_in6*>(ss);
  a->sin6_family = AF_INET6;
  a->sin6_port = htons(port);
  std::memcpy(&a->sin6_addr, ip.bytes.data(), 16);
  return sizeof(sockaddr_in6);
}

} // namespace veer::proxy
