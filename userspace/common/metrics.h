#pragma once

// Prometheus text exposition format 0.0.4, written at scrape time: the agent's
// numbers live in the kernel's per-CPU maps and in its own loops, so a scrape
// reads them and writes families here instead of mirroring them in a registry.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace veer::metrics {

enum class Type { kCounter, kGauge, kHistogram };

using Labels = std::vector<std::pair<std::string, std::string>>;

/** Cumulative histogram buckets (upper bounds in increasing order) with sum and count. */
class Histogram {
public:
  explicit Histogram(std::vector<double> bounds);
  /** One counted elsewhere (another process): counts per bucket, not cumulative, the last
   * for +Inf (bounds.size() + 1 of them), and the sum of the observations. */
  Histogram(std::vector<double> bounds, std::vector<uint64_t> counts, double sum);
  void observe(double v);
  /** Adds another histogram of the same bounds (e.g. per-thread parts). */
  void merge(const Histogram& other);

  const std::vector<double>& bounds() const { return bounds_; }
  /** Observations <= bounds()[i] (cumulative), then +Inf at bounds().size(). */
  uint64_t cumulative(size_t i) const;
  uint64_t count() const { return count_; }
  double sum() const { return sum_; }

private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_; // per bucket, not cumulative; last is +Inf
  uint64_t count_ = 0;
  double sum_ = 0;
};

/**
 * Collects samples by family and renders them in the text format. A family's
 * samples come out together after its HELP and TYPE lines, whatever order the
 * caller added them in; families come out in the order first declared.
 */
class TextWriter {
public:
  /** Declares a family. Names must match [a-zA-Z_:][a-zA-Z0-9_:]*. */
  void family(std::string_view name, std::string_view help, Type type);
  /** One sample of a counter or gauge family already declared. */
  void sample(std::string_view name, const Labels& labels, double value);
  /** A histogram's _bucket, _sum and _count samples. */
  void histogram(std::string_view name, const Labels& labels, const Histogram& h);

  std::string render() const;

private:
  struct Family {
    std::string help;
    Type type;
    std::string body;
  };
  Family& find(std::string_view name);
  static void appendSample(std::string& out, std::string_view name, const Labels& labels,
                           const std::pair<std::string, std::string>* extra, double value);

  std::vector<std::string> order_;
  std::map<std::string, Family, std::less<>> families_;
};

/** The text format's content type. */
inline constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

} // namespace veer::metrics
