#include "common/net.h"

#include <arpa/inet.h>

#include <cstdlib>
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

namespace veer {

std::optional<std::pair<IpAddr, uint16_t>> parseHostPort(const std::string& text,
                                                         bool allowZeroPort) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 == text.size()) {
    return std::nullopt;
  }
  std::string host = text.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string::npos) {
    return std::nullopt; // an IPv6 address needs its brackets
  }
  std::optional<IpAddr> addr = IpAddr::parse(host);
  char* end = nullptr;
  unsigned long port = strtoul(text.c_str() + colon + 1, &end, 10);
  if (!addr || *end || (port == 0 && !allowZeroPort) || port > 65535) {
    return std::nullopt;
  }
  return std::make_pair(*addr, static_cast<uint16_t>(port));
}

} // namespace veer
