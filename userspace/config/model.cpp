#include "config/model.h"

#include <algorithm>
#include <charconv>
#include <mutex>
#include <ostream>
#include <set>

#include "config/plan.h"

namespace veer {

namespace {

/** Interned file names: id -> name (set before the id is handed out; never changed). */
struct FileNames {
  static constexpr size_t kMax = 0xffff;
  std::mutex mu;
  std::map<std::string, uint16_t, std::less<>> ids; // guarded by mu
  const std::string* names[kMax + 1] = {};
};

FileNames& fileNames() {
  static auto* t = new FileNames; // never destroyed: names outlive every static
  return *t;
}

const std::string kNoFile;
const std::string kTooManyFiles = "(too many file names)";

} // namespace

FileName::FileName(std::string_view name) {
  if (name.empty()) {
    return;
  }
  FileNames& t = fileNames();
  std::lock_guard<std::mutex> lock(t.mu);
  auto it = t.ids.find(name);
  if (it == t.ids.end()) {
    if (t.ids.size() >= FileNames::kMax - 1) {
      id_ = FileNames::kMax;
      return;
    }
    const auto id = static_cast<uint16_t>(t.ids.size() + 1);
    it = t.ids.emplace(std::string(name), id).first;
    t.names[id] = &it->first; // map nodes never move
  }
  id_ = it->second;
}

const std::string& FileName::str() const {
  if (id_ == FileNames::kMax) {
    return kTooManyFiles;
  }
  return id_ == 0 ? kNoFile : *fileNames().names[id_];
}

std::string SourcePos::str() const {
  std::string out = file.str();
  if (line > 0) {
    out += ":" + std::to_string(line);
    if (column > 0) {
      out += ":" + std::to_string(column);
    }
  }
  return out;
}

std::ostream& operator<<(std::ostream& os, const FileName& f) {
  return os << f.str();
}

std::string Diagnostic::format() const {
  std::string out;
  if (!pos.file.empty()) {
    out += pos.str() + ": ";
  }
  out += severity == Severity::kError ? "error: " : "warning: ";
  if (!object.empty()) {
    out += object + ": ";
  }
  if (!field.empty()) {
    out += field + ": ";
  }
  out += message;
  return out;
}

bool hasErrors(const Diagnostics& diags) {
  return std::any_of(diags.begin(), diags.end(), [](const Diagnostic& d) {
    return d.severity == Diagnostic::Severity::kError;
  });
}

std::string ObjectMeta::ref() const {
  return kind + " " + ns + "/" + name;
}

const char* StringMatch::opName() const {
  switch (op) {
  case Op::kExact:
    return "exact";
  case Op::kPrefix:
    return "prefix";
  case Op::kRegex:
    return "regex";
  }
  return "?";
}

bool HttpMatch::needsRequest() const {
  return uri || scheme || method || authority || !headers.empty() || !withoutHeaders.empty() ||
         !queryParams.empty();
}

bool HttpMatch::onlyPort() const {
  return !needsRequest() && sourceLabels.empty() && sourceNamespace.empty() && gateways.empty();
}

Result<RetryOn> parseRetryOn(std::string_view text) {
  static const std::pair<const char*, uint32_t> kConditions[] = {
      {"5xx", retry_on::k5xx},
      {"gateway-error", retry_on::kGatewayError},
      {"reset", retry_on::kReset},
      {"reset-before-request", retry_on::kResetBeforeRequest},
      {"connect-failure", retry_on::kConnectFailure},
      {"retriable-4xx", retry_on::kRetriable4xx},
      {"retriable-status-codes", retry_on::kStatusCodes},
      // HTTP/2 REFUSED_STREAM, gRPC statuses, headers Envoy itself sets or a retry policy
      // Istio cannot write: valid names that an HTTP/1.1 upstream never triggers.
      {"refused-stream", 0},
      {"cancelled", 0},
      {"deadline-exceeded", 0},
      {"internal", 0},
      {"resource-exhausted", 0},
      {"unavailable", 0},
      {"retriable-headers", 0},
      {"envoy-ratelimited", 0},
      {"http3-post-connect-failure", 0},
  };
  RetryOn out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = std::min(text.find(',', pos), text.size());
    std::string_view part = text.substr(pos, comma - pos);
    pos = comma + 1;
    while (!part.empty() && (part.front() == ' ' || part.front() == '\t')) {
      part.remove_prefix(1);
    }
    while (!part.empty() && (part.back() == ' ' || part.back() == '\t')) {
      part.remove_suffix(1);
    }
    if (part.empty()) {
      continue; // Istio skips empty entries ("5xx,,reset")
    }
    unsigned code = 0;
    auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), code);
    if (ec == std::errc() && end == part.data() + part.size()) {
      if (code < 100 || code > 599) {
        return Error{EINVAL, "'" + std::string(part) + "' is not an HTTP status code 100..599"};
      }
      out.statuses.push_back(static_cast<uint16_t>(code));
      out.conditions |= retry_on::kStatusCodes; // Istio adds retriable-status-codes
      continue;
    }
    auto it = std::find_if(std::begin(kConditions), std::end(kConditions),
                           [&](const auto& c) { return part == c.first; });
    if (it == std::end(kConditions)) {
      std::vector<std::string> names;
      for (const auto& c : kConditions) {
        names.emplace_back(c.first);
      }
      std::string hint = closest(std::string(part), names);
      return Error{EINVAL, "'" + std::string(part) + "' is not a valid retryOn policy" +
                               (hint.empty() ? "" : " (did you mean " + hint + "?)")};
    }
    out.conditions |= it->second;
  }
  std::sort(out.statuses.begin(), out.statuses.end());
  out.statuses.erase(std::unique(out.statuses.begin(), out.statuses.end()), out.statuses.end());
  return out;
}

RetryOn defaultRetryOn() {
  return RetryOn{retry_on::kConnectFailure | retry_on::kStatusCodes, {503}};
}

bool RouteActions::empty() const {
  return rewriteUri.empty() && rewriteAuthority.empty() && timeout.empty() && retryAttempts < 0 &&
         retryPerTryTimeout.empty() && retryOn.empty() && !mirror && faultDelay.empty() &&
         faultAbortStatus == 0 && redirect.empty() && directResponseStatus == 0;
}

bool Route::unconditionalFor(uint16_t port) const {
  if (matches.empty()) {
    return true;
  }
  return std::any_of(matches.begin(), matches.end(), [&](const HttpMatch& m) {
    return m.onlyPort() && (m.port == 0 || m.port == port);
  });
}

const char* pathName(PlanPath p) {
  return p == PlanPath::kKernel ? "kernel" : "l7";
}

void orderHttpRouteRules(ThinVector<PlanRoute>& routes) {
  std::stable_sort(routes.begin(), routes.end(), [](const PlanRoute& a, const PlanRoute& b) {
    if (a.rule->precedence != b.rule->precedence) {
      return a.rule->precedence > b.rule->precedence;
    }
    return a.source < b.source;
  });
}

std::string versionName(const PlanVersion& v) {
  if (v.service.empty()) {
    return v.subset;
  }
  return v.subset.empty() ? v.service.str() : v.service + "." + v.subset;
}

std::string PlanService::id() const {
  return ns + "/" + name + ":" + std::to_string(port);
}

std::string formatDiagnostics(const Diagnostics& diags) {
  std::string out;
  for (const Diagnostic& d : diags) {
    out += d.format() + "\n";
  }
  return out;
}

size_t editDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1);
  std::vector<size_t> cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) {
    prev[j] = j;
  }
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string closest(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t bestDist = 3; // at most 2 edits
  for (const auto& c : candidates) {
    size_t d = editDistance(word, c);
    if (d < bestDist && d < std::max(word.size(), c.size())) {
      best = c;
      bestDist = d;
    }
  }
  return best;
}

void DiagnosticSink::report(Diagnostic::Severity severity, const SourcePos& pos,
                            std::string_view object, std::string_view field,
                            const std::string& message) {
  Diagnostic d;
  d.severity = severity;
  d.pos = pos;
  d.object = object;
  d.field = field;
  d.message = message;
  if (seen_.insert(d.format()).second) {
    out_.push_back(std::move(d));
  }
}

void DiagnosticSink::error(const SourcePos& pos, std::string_view object, std::string_view field,
                           const std::string& message) {
  report(Diagnostic::Severity::kError, pos, object, field, message);
}

void DiagnosticSink::warning(const SourcePos& pos, std::string_view object, std::string_view field,
                             const std::string& message) {
  report(Diagnostic::Severity::kWarning, pos, object, field, message);
}

std::vector<int64_t> toPercent(const std::vector<int64_t>& weights) {
  int64_t total = 0;
  for (int64_t w : weights) {
    total += w;
  }
  std::vector<int64_t> w = weights;
  if (total == 0) {
    std::fill(w.begin(), w.end(), 1);
    total = static_cast<int64_t>(w.size());
  }
  std::vector<int64_t> pct(w.size());
  std::vector<std::pair<int64_t, size_t>> rem;
  int64_t given = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    pct[i] = w[i] * 100 / total;
    given += pct[i];
    rem.emplace_back(-(w[i] * 100 % total), i);
  }
  std::stable_sort(rem.begin(), rem.end());
  for (size_t i = 0; given < 100 && i < rem.size(); ++i, ++given) {
    ++pct[rem[i].second];
  }
  return pct;
}

} // namespace veer
