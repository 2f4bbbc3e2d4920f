#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace veer {

/** An IPv4 or IPv6 address. IPv4 is kept IPv4-mapped (::ffff:a.b.c.d), the form the maps use. */
struct IpAddr {
  std::array<uint8_t, 16> bytes{}; // network order
  bool v4 = false;

  static std::optional<IpAddr> parse(std::string_view text);
  static IpAddr fromV4(uint32_t netOrder);
  /** From 16 bytes in network order; IPv4-mapped addresses become IPv4. */
  static IpAddr fromBytes(const void* bytes16);
  std::string str() const;
  /** IPv4 in network order; only meaningful when v4. */
  uint32_t v4NetOrder() const;
  auto operator<=>(const IpAddr&) const = default;
};

} // namespace veer

namespace veer {

/** "10.0.0.1:15001" or "[fd00::1]:15001"; port 0 only when allowZeroPort (a test's "any port"). */
std::optional<std::pair<IpAddr, uint16_t>> parseHostPort(const std::string& text,
                                                         bool allowZeroPort = false);

} // namespace veer
