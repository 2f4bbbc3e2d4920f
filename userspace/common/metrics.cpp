#include "common/metrics.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstdio>

namespace veer::metrics {
namespace {

bool validName(std::string_view n, bool allowColon) {
  if (n.empty()) {
    return false;
  }
  for (size_t i = 0; i < n.size(); ++i) {
    char c = n[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
              (allowColon && c == ':') || (i > 0 && c >= '0' && c <= '9');
    if (!ok) {
      return false;
    }
  }
  return true;
}

/** Label values escape backslash, double quote and newline; HELP text the first and last. */
void appendEscaped(std::string& out, std::string_view v, bool quote) {
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (quote && c == '"') {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

void appendValue(std::string& out, double v) {
  if (std::isnan(v)) {
    out += "NaN";
  } else if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
  } else if (v == std::floor(v) && std::fabs(v) < 1e15) {
    char buf[32];
    snprintf(buf, sizeof(buf), "%.0f", v);
    out += buf;
  } else {
    char buf[32];
    snprintf(buf, sizeof(buf), "%.17g", v);
    out += buf;
  }
}

const char* typeName(Type t) {
  switch (t) {
  case Type::kCounter:
    return "counter";
  case Type::kGauge:
    return "gauge";
  case Type::kHistogram:
    return "histogram";
  }
  return "untyped";
}

} // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1) {
  assert(std::is_sorted(bounds_.begin(), bounds_.end()));
}

Histogram::Histogram(std::vector<double> bounds, std::vector<uint64_t> counts, double sum)
    : bounds_(std::move(bounds)), counts_(std::move(counts)), sum_(sum) {
  assert(std::is_sorted(bounds_.begin(), bounds_.end()));
  assert(counts_.size() == bounds_.size() + 1);
  for (uint64_t n : counts_) {
    count_ += n;
  }
}

void Histogram::observe(double v) {
  size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  ++counts_[i];
  ++count_;
  sum_ += v;
}

void Histogram::merge(const Histogram& other) {
  assert(other.bounds_ == bounds_);
  for (size_t i = 0; i < counts_.size(); ++i) {
    counts_[i] += other.counts_[i];
  }
  count_ += other.count_;
  sum_ += other.sum_;
}

uint64_t Histogram::cumulative(size_t i) const {
  uint64_t n = 0;
  for (size_t j = 0; j <= i && j < counts_.size(); ++j) {
    n += counts_[j];
  }
  return n;
}

void TextWriter::family(std::string_view name, std::string_view help, Type type) {
  assert(validName(name, true));
  if (families_.find(name) != families_.end()) {
    return;
  }
  order_.emplace_back(name);
  families_.emplace(std::string(name), Family{std::string(help), type, {}});
}

TextWriter::Family& TextWriter::find(std::string_view name) {
  auto it = families_.find(name);
  assert(it != families_.end() && "declare a family before its samples");
  return it->second;
}

void TextWriter::appendSample(std::string& out, std::string_view name, const Labels& labels,
                              const std::pair<std::string, std::string>* extra, double value) {
  out += name;
  if (!labels.empty() || extra) {
    out += '{';
    bool first = true;
    auto one = [&](const std::pair<std::string, std::string>& l) {
      assert(validName(l.first, false));
      if (!first) {
        out += ',';
      }
      first = false;
      out += l.first;
      out += "=\"";
      appendEscaped(out, l.second, true);
      out += '"';
    };
    for (const auto& l : labels) {
      one(l);
    }
    if (extra) {
      one(*extra);
    }
    out += '}';
  }
  out += ' ';
  appendValue(out, value);
  out += '\n';
}

void TextWriter::sample(std::string_view name, const Labels& labels, double value) {
  Family& f = find(name);
  assert(f.type != Type::kHistogram);
  appendSample(f.body, name, labels, nullptr, value);
}

void TextWriter::histogram(std::string_view name, const Labels& labels, const Histogram& h) {
  Family& f = find(name);
  assert(f.type == Type::kHistogram);
  const std::string bucket = std::string(name) + "_bucket";
  for (size_t i = 0; i <= h.bounds().size(); ++i) {
    std::string le;
    if (i == h.bounds().size()) {
      le = "+Inf";
    } else {
      appendValue(le, h.bounds()[i]);
    }
    std::pair<std::string, std::string> extra{"le", le};
    appendSample(f.body, bucket, labels, &extra, static_cast<double>(h.cumulative(i)));
  }
  appendSample(f.body, std::string(name) + "_sum", labels, nullptr, h.sum());
  appendSample(f.body, std::string(name) + "_count", labels, nullptr,
               static_cast<double>(h.count()));
}

std::string TextWriter::render() const {
  std::string out;
  for (const std::string& name : order_) {
    const Family& f = families_.find(name)->second;
    out += "# HELP ";
    out += name;
    out += ' ';
    appendEscaped(out, f.help, false);
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += typeName(f.type);
    out += '\n';
    out += f.body;
  }
  return out;
}

} // namespace veer::metrics
