#include "common/net.h"

#include <arpa/inet.h>

#include <cstring>

namespace veer {

std::optional<IpAddr> IpAddr::parse(std::string_view text) {
  std::string s(text);
  IpAddr a;
  in_addr v4{};
  if (inet_pton(AF_INET, s.c_str(), &v4) == 1) {
    return fromV4(v4.s_addr);
  }
  if (inet_pton(AF_INET6, s.c_str(), a.bytes.data()) == 1) {
    return fromBytes(a.bytes.data());
  }
  return std::nullopt;
}

IpAddr IpAddr::fromBytes(const void* bytes16) {
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  IpAddr a;
  std::memcpy(a.bytes.data(), bytes16, 16);
  a.v4 = std::memcmp(a.bytes.data(), kMapped, sizeof(kMapped)) == 0;
  return a;
}

IpAddr IpAddr::fromV4(uint32_t netOrder) {
  IpAddr a;
  a.v4 = true;
  a.bytes[10] = 0xff;
  a.bytes[11] = 0xff;
  std::memcpy(a.bytes.data() + 12, &netOrder, 4);
  return a;
}

uint32_t IpAddr::v4NetOrder() const {
  uint32_t v;
  std::memcpy(&v, bytes.data() + 12, 4);
  return v;
}

std::string IpAddr::str() const {
  char buf[INET6_ADDRSTRLEN];
  if (v4) {
    in_addr in{v4NetOrder()};
    inet_ntop(AF_INET, &in, buf, sizeof(buf));
  } else {
    inet_ntop(AF_INET6, bytes.data(), buf, sizeof(buf));
  }
  return buf;
}

} // namespace veer
