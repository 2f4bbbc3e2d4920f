// Alibaba ASM istio.alibabacloud.com/v1beta1 TrafficLabel.

#include <algorithm>

#include "config/loader_internal.h"
#include "common/strings.h"

namespace veer::loading {

void Loader::loadTrafficLabel(ObjectParser& p, ObjectMeta meta, const yaml::Node* spec) {
  TrafficLabel tl;
  tl.meta = std::move(meta);
  if (spec == nullptr) {
    p.report(Diagnostic::Severity::kError, tl.meta.pos, "spec", "missing spec");
    return;
  }
  auto s = p.fields(*spec, "spec", {"rules", "workloadSelector"}, {}, true);
  if (!s) {
    return;
  }
  if (const yaml::Node* ws = ObjectParser::get(*s, "workloadSelector")) {
    if (auto wm = p.fields(*ws, "spec.workloadSelector", {"labels"}, {}, true)) {
      if (const yaml::Node* l = ObjectParser::get(*wm, "labels")) {
        tl.workloadSelector = p.labels(*l, "spec.workloadSelector.labels");
      }
    }
  }
  const yaml::Node* rules = ObjectParser::get(*s, "rules");
  if (rules == nullptr) {
    p.error(*spec, "spec.rules", "missing rules");
    return;
  }
  auto items = p.sequence(*rules, "spec.rules");
  for (size_t i = 0; i < items.size(); ++i) {
    std::string f = idx("spec.rules", i);
    auto m = p.fields(items[i], f, {"labels", "attachTo", "protocols"}, {}, true);
    if (!m) {
      continue;
    }
    if (const yaml::Node* x = ObjectParser::get(*m, "protocols")) {
      tl.protocols = p.string(*x, f + ".protocols").value_or("");
    }
    if (const yaml::Node* x = ObjectParser::get(*m, "attachTo")) {
      auto l = p.sequence(*x, f + ".attachTo");
      for (size_t j = 0; j < l.size(); ++j) {
        if (auto a = p.string(l[j], idx(f + ".attachTo", j))) {
          tl.attachTo.push_back(*a);
        }
      }
    }
    const yaml::Node* labels = ObjectParser::get(*m, "labels");
    if (labels == nullptr) {
      p.error(items[i], f + ".labels", "missing labels");
      continue;
    }
    auto ll = p.sequence(*labels, f + ".labels");
    for (size_t j = 0; j < ll.size(); ++j) {
      std::string lf = idx(f + ".labels", j);
      auto lm = p.fields(ll[j], lf, {"name", "valueFrom"}, {}, true);
      if (!lm) {
        continue;
      }
      TrafficLabel::Label lab;
      lab.pos = p.pos(ll[j]);
      lab.field = lf;
      if (const yaml::Node* x = ObjectParser::get(*lm, "name")) {
        lab.name = p.string(*x, lf + ".name").value_or("");
      }
      if (lab.name.empty()) {
        p.error(ll[j], lf + ".name", "missing name");
        continue;
      }
      const yaml::Node* vf = ObjectParser::get(*lm, "valueFrom");
      if (vf == nullptr) {
        p.error(ll[j], lf + ".valueFrom", "missing valueFrom");
        continue;
      }
      auto vl = p.sequence(*vf, lf + ".valueFrom");
      for (size_t k = 0; k < vl.size(); ++k) {
        std::string vff = idx(lf + ".valueFrom", k);
        auto v = p.string(vl[k], vff);
        if (!v) {
          continue;
        }
        std::string text(*v);
        // A "// comment" after the value is part of a YAML plain scalar; say so and drop it.
        if (size_t c = text.find("//");
            c != std::string::npos && c > 0 && (text[c - 1] == ' ' || text[c - 1] == '\t')) {
          p.warning(vl[k], vff,
                    "text after '" + text.substr(0, text.find_last_not_of(" \t", c - 1) + 1) +
                        "' starts with //, which YAML does not treat as a comment (use #); "
                        "ignored");
          text = text.substr(0, text.find_last_not_of(" \t", c - 1) + 1);
        }
        TrafficLabel::Source src;
        src.pos = p.pos(vl[k]);
        if (text.rfind("$getContext(", 0) == 0 && text.back() == ')') {
          src.kind = TrafficLabel::Source::Kind::kContext;
          src.value = text.substr(12, text.size() - 13);
          src.value = asciiLower(src.value);
          if (src.value.empty()) {
            p.error(vl[k], vff, "$getContext() needs a header name");
            continue;
          }
        } else if (text == "$(localLabel)") {
          src.kind = TrafficLabel::Source::Kind::kLocalLabel;
          src.value = kAsmTrafficTag;
        } else if (text.rfind("$", 0) == 0) {
          std::string hint = closest(text, {"$(localLabel)"});
          p.error(vl[k], vff,
                  "unknown value source '" + text +
                      "'; expected $getContext(header), $(localLabel) or a literal" +
                      (hint.empty() ? "" : "; did you mean " + hint + "?"));
          continue;
        } else {
          src.value = text;
        }
        lab.valueFrom.push_back(std::move(src));
      }
      tl.labels.push_back(std::move(lab));
    }
  }
  config().trafficLabels.push_back(std::move(tl));
}

} // namespace veer::loading
