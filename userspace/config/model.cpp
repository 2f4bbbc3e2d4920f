#include "config/model.h"

#include <algorithm>

#include "config/plan.h"

namespace veer {

std::string Diagnostic::format() const {
  std::string out;
  if (!pos.file.empty()) {
    out += pos.file;
    if (pos.line > 0) {
      out += ":" + std::to_string(pos.line) + ":" + std::to_string(pos.column);
    }
    out += ": ";
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

std::string ObjectMeta::ref() const { return kind + " " + ns + "/" + name; }

std::string PlanService::id() const { return ns + "/" + name + ":" + std::to_string(port); }

} // namespace veer
