// Istio request matching (see match.h). No allocation on the match path except the
// join of a repeated header, which reuses a per-thread buffer.

#include "config/match.h"

#include <re2/re2.h>

#include <algorithm>

namespace veer {
namespace {

char lowerChar(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (lowerChar(a[i]) != lowerChar(b[i])) {
      return false;
    }
  }
  return true;
}

std::string quote(std::string_view s) {
  return "'" + std::string(s) + "'";
}

re2::StringPiece piece(std::string_view s) {
  return re2::StringPiece(s.data(), s.size());
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  return s;
}

} // namespace

std::optional<std::string_view> RequestView::header(std::string_view name) const {
  const HeaderField* first = nullptr;
  size_t count = 0;
  for (const HeaderField& h : headers) {
    if (iequals(h.name, name)) {
      first = first == nullptr ? &h : first;
      ++count;
    }
  }
  if (count <= 1) {
    return first == nullptr ? std::nullopt : std::optional<std::string_view>(first->value);
  }
  // Several fields of one name: matched as one value, as Envoy joins them. The buffer
  // is per thread and reused, so a steady state allocates nothing.
  thread_local std::string joined;
  joined.clear();
  const char* sep = iequals(name, "cookie") ? "; " : ",";
  for (const HeaderField& h : headers) {
    if (iequals(h.name, name)) {
      joined.append(joined.empty() ? "" : sep).append(h.value);
    }
  }
  return std::string_view(joined);
}

std::optional<std::string_view> RequestView::firstHeader(std::string_view name) const {
  for (const HeaderField& h : headers) {
    if (iequals(h.name, name)) {
      return h.value;
    }
  }
  return std::nullopt;
}

std::optional<std::string_view> RequestView::queryParam(std::string_view key) const {
  std::string_view q = query;
  while (!q.empty()) {
    size_t amp = q.find('&');
    std::string_view kv = q.substr(0, amp);
    size_t eq = kv.find('=');
    if (kv.substr(0, eq) == key) {
      return eq == std::string_view::npos ? std::string_view() : kv.substr(eq + 1);
    }
    if (amp == std::string_view::npos) {
      break;
    }
    q.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

std::optional<std::string_view> RequestView::cookie(std::string_view name) const {
  for (const HeaderField& h : headers) {
    if (!iequals(h.name, "cookie")) {
      continue;
    }
    std::string_view c = h.value;
    while (!c.empty()) {
      size_t semi = c.find(';');
      std::string_view pair = trim(c.substr(0, semi));
      size_t eq = pair.find('=');
      if (eq != std::string_view::npos && trim(pair.substr(0, eq)) == name) {
        std::string_view v = trim(pair.substr(eq + 1));
        if (v.size() >= 2 && v.front() == '"' && v.back() == '"') {
          v = v.substr(1, v.size() - 2);
        }
        return v;
      }
      if (semi == std::string_view::npos) {
        break;
      }
      c.remove_prefix(semi + 1);
    }
  }
  return std::nullopt;
}

void splitTarget(std::string_view target, RequestView& out) {
  std::string_view rest = target;
  if (size_t colon = rest.find("://"); colon != std::string_view::npos && rest.front() != '/') {
    out.scheme = rest.substr(0, colon);
    rest.remove_prefix(colon + 3);
    size_t slash = rest.find_first_of("/?");
    rest = slash == std::string_view::npos ? std::string_view("/") : rest.substr(slash);
  }
  size_t hash = rest.find('#');
  rest = rest.substr(0, hash);
  size_t q = rest.find('?');
  out.path = rest.substr(0, q);
  out.query = q == std::string_view::npos ? std::string_view() : rest.substr(q + 1);
}

Result<CompiledStringMatch> CompiledStringMatch::compile(const StringMatch& m, bool ignoreCase) {
  CompiledStringMatch c;
  c.src_ = m;
  c.ignoreCase_ = ignoreCase;
  if (m.op == StringMatch::Op::kRegex) {
    RE2::Options opts;
    opts.set_log_errors(false);
    opts.set_case_sensitive(!ignoreCase);
    auto re = std::make_shared<const RE2>(m.value.view(), opts);
    if (!re->ok()) {
      return Error{0, "bad regex '" + m.value + "': " + re->error()};
    }
    c.re_ = std::move(re);
    return c;
  }
  c.want_ = m.value;
  if (ignoreCase) {
    std::transform(c.want_.begin(), c.want_.end(), c.want_.begin(), lowerChar);
  }
  return c;
}

bool CompiledStringMatch::matches(std::string_view v) const {
  switch (src_.op) {
  case StringMatch::Op::kExact:
    return ignoreCase_ ? iequals(v, want_) : v == want_;
  case StringMatch::Op::kPrefix:
    if (v.size() < want_.size()) {
      return false;
    }
    return ignoreCase_ ? iequals(v.substr(0, want_.size()), want_)
                       : v.substr(0, want_.size()) == want_;
  case StringMatch::Op::kRegex:
    return re_ != nullptr && RE2::FullMatch(piece(v), *re_);
  }
  return false;
}

Result<CompiledMatch> CompiledMatch::compile(const HttpMatch& m) {
  CompiledMatch c;
  c.src_ = m;
  std::string err;
  auto one = [&](const Boxed<StringMatch>& sm, const char* name, bool ic,
                 std::optional<CompiledStringMatch>& out) {
    if (!sm || !err.empty()) {
      return;
    }
    auto r = CompiledStringMatch::compile(*sm, ic);
    if (!r) {
      err = m.field + "." + name + ": " + r.error().message;
      return;
    }
    out = std::move(r.value());
  };
  one(m.uri, "uri", m.ignoreUriCase, c.uri_);
  one(m.scheme, "scheme", false, c.scheme_);
  one(m.method, "method", false, c.method_);
  one(m.authority, "authority", false, c.authority_);
  for (const auto& [name, in, out] : {std::tuple{"headers", &m.headers, &c.headers_},
                                      {"withoutHeaders", &m.withoutHeaders, &c.withoutHeaders_},
                                      {"queryParams", &m.queryParams, &c.queryParams_}}) {
    for (const KeyMatch& k : *in) {
      Key key;
      key.key = k.key;
      key.present = k.present;
      if (!k.present) {
        auto r = CompiledStringMatch::compile(k.match);
        if (!r) {
          if (err.empty()) {
            err = m.field + "." + name + "[" + k.key + "]: " + r.error().message;
          }
          continue;
        }
        key.match = std::move(r.value());
      }
      out->push_back(std::move(key));
    }
  }
  if (!err.empty()) {
    return Error{0, err};
  }
  return c;
}

bool CompiledMatch::matches(const RequestView& req, std::string* why) const {
  auto fail = [&](auto&& text) {
    if (why != nullptr) {
      *why = text();
    }
    return false;
  };
  for (const auto& cond : {std::tuple{"uri", &uri_, req.path},
                           {"scheme", &scheme_, req.scheme},
                           {"method", &method_, req.method},
                           {"authority", &authority_, req.authority}}) {
    const char* what = std::get<0>(cond); // named, not bound: lambdas capture them (clang 14)
    const std::optional<CompiledStringMatch>* sm = std::get<1>(cond);
    std::string_view v = std::get<2>(cond);
    if (*sm && !(*sm)->matches(v)) {
      return fail([&] {
        return std::string(what) + " " + quote(v) + " is not " + describe((*sm)->source());
      });
    }
  }
  for (const Key& k : headers_) {
    auto v = req.header(k.key);
    if (!v) {
      return fail([&] { return "header " + k.key + " is absent"; });
    }
    if (!k.present && !k.match->matches(*v)) {
      return fail([&] {
        return "header " + k.key + " " + quote(*v) + " is not " + describe(k.match->source());
      });
    }
  }
  for (const Key& k : withoutHeaders_) {
    auto v = req.header(k.key);
    if (v && (k.present || k.match->matches(*v))) {
      return fail([&] {
        return "header " + k.key + " " + quote(*v) + " must not be " +
               (k.present ? std::string("present") : describe(k.match->source()));
      });
    }
  }
  for (const Key& k : queryParams_) {
    auto v = req.queryParam(k.key);
    if (!v) {
      return fail([&] { return "query parameter " + k.key + " is absent"; });
    }
    if (!k.present && !k.match->matches(*v)) {
      return fail([&] {
        return "query parameter " + k.key + " " + quote(*v) + " is not " +
               describe(k.match->source());
      });
    }
  }
  if (!src_.sourceLabels.empty()) {
    if (req.client == nullptr || req.client->labels == nullptr) {
      return fail([] { return std::string("sourceLabels need the client pod (--from-pod)"); });
    }
    for (const auto& [lk, lv] : src_.sourceLabels) {
      auto it = req.client->labels->find(lk);
      if (it == req.client->labels->end() || it->second != lv) {
        return fail([&] {
          return "pod " + std::string(req.client->ns) + "/" + std::string(req.client->name) +
                 " lacks the sourceLabels";
        });
      }
    }
  }
  if (!src_.sourceNamespace.empty() &&
      (req.client == nullptr || req.client->ns != src_.sourceNamespace)) {
    return fail([&] { return "client is not in namespace " + src_.sourceNamespace; });
  }
  if (src_.port != 0 && src_.port != req.port) {
    return fail([&] {
      return "port " + std::to_string(req.port) + " is not " + std::to_string(src_.port);
    });
  }
  if (!src_.gateways.empty() &&
      std::find(src_.gateways.begin(), src_.gateways.end(), "mesh") == src_.gateways.end()) {
    return fail([] { return std::string("applies to gateways only, not mesh traffic"); });
  }
  return true;
}

std::string describe(const StringMatch& m) {
  return std::string(m.opName()) + " " + quote(m.value);
}

bool stringMatches(const StringMatch& m, const std::string& value, bool ignoreCase) {
  auto c = CompiledStringMatch::compile(m, ignoreCase);
  return c && c->matches(value);
}

LaneValue laneValue(const ThinVector<TrafficLabel::Source>& sources, const RequestView& req,
                    std::string_view tagHeader, const std::vector<std::string>& lanes) {
  LaneValue out;
  if (!tagHeader.empty()) {
    if (auto v = req.firstHeader(tagHeader); v && !v->empty()) {
      return LaneValue{*v, LaneValue::From::kTagHeader, tagHeader};
    }
  }
  auto isLane = [&](std::string_view v) {
    return std::binary_search(lanes.begin(), lanes.end(), v,
                              [](std::string_view a, std::string_view b) { return a < b; });
  };
  for (const auto& src : sources) {
    switch (src.kind) {
    case TrafficLabel::Source::Kind::kContext:
      if (auto v = req.firstHeader(src.value); v && !v->empty() && isLane(*v)) {
        return LaneValue{*v, LaneValue::From::kHeader, src.value};
      }
      break;
    case TrafficLabel::Source::Kind::kLocalLabel:
      if (req.client != nullptr && req.client->labels != nullptr) {
        auto it = req.client->labels->find(src.value);
        if (it != req.client->labels->end() && !it->second.empty()) {
          return LaneValue{it->second, LaneValue::From::kPodLabel, src.value};
        }
      }
      break;
    case TrafficLabel::Source::Kind::kLiteral:
      if (!src.value.empty()) {
        return LaneValue{src.value, LaneValue::From::kLiteral, src.value};
      }
      break;
    }
  }
  return out;
}

} // namespace veer
