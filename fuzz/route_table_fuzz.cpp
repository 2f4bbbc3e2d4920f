// libFuzzer target: any bytes as the route table the agent writes for veer-proxy.
// RouteTable::fromJson either refuses them with an error or gives a table whose toJson
// reads back (fromJson) to a table that writes the same JSON and routes every request
// the same way. Requests are built from the strings the table itself matches on (uris,
// header and query values, pod addresses), so rules are hit, not only the 404 path.
// Nothing may crash, throw or trip ASan/UBSan, every Decision must keep its invariants
// (a forward has an endpoint to try first; a rewrite stays inside the target), and
// trace() (what veerctl explain renders) must find the rule route() used.

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/router.h"

namespace {

using namespace veer;
using namespace veer::proxy;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "route_table_fuzz: %s\n", what);
    std::abort();
  }
}

/** Every string value under j: the table's own vocabulary, for building requests. */
void strings(const nlohmann::json& j, std::vector<std::string>& out) {
  if (j.is_string()) {
    out.push_back(j.get<std::string>());
  } else if (j.is_structured()) {
    for (const auto& e : j) {
      strings(e, out);
    }
  }
}

struct Request {
  std::string target;
  std::string host;
  std::vector<std::pair<std::string, std::string>> headers;
};

void checkDecision(const Decision& d, const Request& r) {
  if (d.kind == Decision::Kind::kForward) {
    check(!d.endpoints.empty() && d.first < d.endpoints.size(), "forward without endpoint");
    check(d.fallbackEndpoints.empty() || d.fallbackFirst < d.fallbackEndpoints.size(),
          "fallbackFirst out of range");
    check(d.rewritePath.empty() || d.rewriteFrom <= r.target.size(), "rewrite outside target");
    check(d.mirrorEndpoints.empty() || d.mirrorFirst < d.mirrorEndpoints.size(),
          "mirrorFirst out of range");
  } else {
    check(d.status >= 200 && d.status <= 599, "local answer status out of range");
  }
}

bool same(const Decision& a, const Decision& b) {
  return a.kind == b.kind && a.status == b.status && a.cluster == b.cluster && a.rule == b.rule &&
         a.first == b.first && a.endpoints.size() == b.endpoints.size() &&
         a.location == b.location && a.tagValue == b.tagValue && a.timeoutMs == b.timeoutMs &&
         a.rewriteFrom == b.rewriteFrom && a.requestEdits.size() == b.requestEdits.size() &&
         a.retries == b.retries && a.perTryTimeoutMs == b.perTryTimeoutMs &&
         a.retryOn == b.retryOn && std::ranges::equal(a.retryStatuses, b.retryStatuses) &&
         a.direct == b.direct && a.body == b.body && a.mirrorCluster == b.mirrorCluster &&
         a.mirrorFirst == b.mirrorFirst;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto first = RouteTable::fromJson(text);
  if (!first) {
    check(!first.error().message.empty(), "an error without a message");
    return 0;
  }
  std::string json = (*first)->toJson();
  auto second = RouteTable::fromJson(json);
  check(bool(second), "toJson wrote what fromJson refuses");
  check((*second)->toJson() == json, "toJson -> fromJson -> toJson is not a fixed point");

  // The valid JSON the table came from names its addresses and the strings it matches.
  auto doc = nlohmann::json::parse(text.begin(), text.end(), nullptr, /*exceptions=*/false);
  std::vector<std::string> words;
  strings(doc, words);
  words.resize(std::min<size_t>(words.size(), 64));
  std::vector<IpAddr> addrs;
  for (const auto& w : words) {
    if (auto a = IpAddr::parse(w); a && addrs.size() < 8) {
      addrs.push_back(*a);
    }
  }
  std::vector<uint16_t> ports;
  if (auto ss = doc.find("services"); ss != doc.end() && ss->is_array()) {
    for (const auto& s : *ss) {
      if (auto p = s.find("port"); p != s.end() && p->is_number_unsigned() && ports.size() < 4) {
        ports.push_back(static_cast<uint16_t>(p->get<uint64_t>()));
      }
    }
  }
  std::vector<Request> requests = {{"/", "", {}}, {"http://h", "h", {}}};
  for (size_t i = 0; i < words.size() && requests.size() < 32; ++i) {
    const std::string& w = words[i];
    const std::string& next = words[(i + 1) % words.size()];
    requests.push_back({w.empty() || w[0] != '/' ? "/" + w : w, next, {{w, next}}});
    requests.push_back({"/?" + w + "=" + next, w, {{"cookie", w + "=" + next}}});
  }

  // Both tables start with fresh counters and see the same requests: same decisions.
  for (size_t k = 0; k < requests.size(); ++k) {
    const Request& r = requests[k];
    std::vector<HeaderField> fields;
    for (const auto& [name, value] : r.headers) {
      fields.push_back(HeaderField{name, value});
    }
    RequestHead head{"GET", r.target, r.host, fields};
    for (const IpAddr& service : addrs) {
      for (uint16_t port : ports) {
        Origin o{addrs[k % addrs.size()], service, port};
        Decision a = (*first)->route(head, o);
        Decision b = (*second)->route(head, o);
        checkDecision(a, r);
        check(same(a, b), "the re-read table routes differently");
        // explain's reading (trace) must find the rule route() used, or none with it.
        Trace t = (*first)->trace(head, o);
        check(t.service == !a.cluster.empty(), "trace and route disagree on the service");
        check((t.rule >= 0) == !a.rule.empty(), "trace and route disagree on the rule");
      }
    }
  }
  return 0;
}
