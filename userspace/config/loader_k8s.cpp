// Kubernetes inventory: Service, Pod, EndpointSlice.

#include <algorithm>

#include "config/loader_internal.h"

namespace veer::loading {

namespace {
constexpr const char* kServiceNameLabel = "kubernetes.io/service-name";
} // namespace

void Loader::loadService(ObjectParser& p, ObjectMeta meta, const yaml::Node* spec) {
  Service svc;
  svc.meta = std::move(meta);
  if (spec == nullptr) {
    config().services.push_back(std::move(svc)); // no address, no ports: nothing to route
    return;
  }
  auto s = p.fields(*spec, "spec", {}, {}, false);
  if (!s) {
    return;
  }
  std::vector<std::string> ips;
  if (const yaml::Node* list = ObjectParser::get(*s, "clusterIPs")) {
    auto items = p.sequence(*list, "spec.clusterIPs");
    for (size_t i = 0; i < items.size(); ++i) {
      if (auto v = p.string(items[i], idx("spec.clusterIPs", i))) {
        if (*v != "None" && !v->empty()) {
          if (auto a = p.ip(items[i], idx("spec.clusterIPs", i))) {
            svc.clusterIPs.push_back(*a);
          }
        }
      }
    }
  } else if (const yaml::Node* one = ObjectParser::get(*s, "clusterIP")) {
    if (auto v = p.string(*one, "spec.clusterIP"); v && *v != "None" && !v->empty()) {
      if (auto a = p.ip(*one, "spec.clusterIP")) {
        svc.clusterIPs.push_back(*a);
      }
    }
  }
  if (svc.clusterIPs.size() == 2 && svc.clusterIPs[0].v4 == svc.clusterIPs[1].v4) {
    p.error(*ObjectParser::get(*s, "clusterIPs"), "spec.clusterIPs",
            "two clusterIPs of the same address family");
    svc.clusterIPs.pop_back();
  }
  if (const yaml::Node* ports = ObjectParser::get(*s, "ports")) {
    auto items = p.sequence(*ports, "spec.ports");
    for (size_t i = 0; i < items.size(); ++i) {
      std::string f = idx("spec.ports", i);
      auto pm = p.fields(items[i], f, {}, {}, false);
      if (!pm) {
        continue;
      }
      ServicePort sp;
      sp.pos = p.pos(items[i]);
      if (const yaml::Node* n = ObjectParser::get(*pm, "name")) {
        sp.name = p.string(*n, f + ".name").value_or("");
      }
      const yaml::Node* portNode = ObjectParser::get(*pm, "port");
      if (portNode == nullptr) {
        p.error(items[i], f + ".port", "missing port");
        continue;
      }
      auto port = p.port(*portNode, f + ".port");
      if (!port) {
        continue;
      }
      sp.port = *port;
      if (const yaml::Node* proto = ObjectParser::get(*pm, "protocol")) {
        auto pr = p.protocol(*proto, f + ".protocol");
        if (!pr) {
          continue;
        }
        sp.proto = *pr;
      }
      sp.targetPort = sp.port;
      if (const yaml::Node* tp = ObjectParser::get(*pm, "targetPort")) {
        int64_t v = 0;
        if (tp->isScalar() && parseInt(tp->scalar(), v)) {
          if (auto t = p.port(*tp, f + ".targetPort")) {
            sp.targetPort = *t;
          }
        } else if (tp->isScalar()) {
          sp.targetPort = 0;
          sp.targetPortName = tp->scalar();
        } else {
          p.error(*tp, f + ".targetPort", "expected a port number or name, got " + describe(*tp));
        }
      }
      svc.ports.push_back(std::move(sp));
    }
  }
  if (const yaml::Node* sel = ObjectParser::get(*s, "selector")) {
    svc.selector = p.labels(*sel, "spec.selector");
  }
  loadSessionAffinity(p, *s, svc);
  config().services.push_back(std::move(svc));
}

/** spec.sessionAffinity and sessionAffinityConfig.clientIP.timeoutSeconds, as the API validates
 * them. */
void Loader::loadSessionAffinity(ObjectParser& p, const Fields& s, Service& svc) {
  if (const yaml::Node* sa = ObjectParser::get(s, "sessionAffinity")) {
    auto v = p.string(*sa, "spec.sessionAffinity");
    if (v && *v == "ClientIP") {
      svc.clientIpAffinity = true;
    } else if (v && *v != "None") {
      p.error(*sa, "spec.sessionAffinity", "expected ClientIP or None, got '" + *v + "'");
    }
  }
  const yaml::Node* cfg = ObjectParser::get(s, "sessionAffinityConfig");
  if (cfg == nullptr) {
    return;
  }
  auto c = p.fields(*cfg, "spec.sessionAffinityConfig", {"clientIP"}, {}, true);
  const yaml::Node* cip = c ? ObjectParser::get(*c, "clientIP") : nullptr;
  auto ci =
      cip ? p.fields(*cip, "spec.sessionAffinityConfig.clientIP", {"timeoutSeconds"}, {}, true)
          : std::nullopt;
  const yaml::Node* t = ci ? ObjectParser::get(*ci, "timeoutSeconds") : nullptr;
  if (t == nullptr) {
    return;
  }
  const std::string f = "spec.sessionAffinityConfig.clientIP.timeoutSeconds";
  if (auto v = p.integer(*t, f)) {
    if (*v <= 0 || *v > 86400) {
      p.error(*t, f, "must be in 1..86400 (seconds), got " + std::to_string(*v));
    } else if (!svc.clientIpAffinity) {
      p.warning(*t, f, "ignored: spec.sessionAffinity is not ClientIP");
    } else {
      svc.affinityTimeout = static_cast<uint32_t>(*v);
    }
  }
}

void Loader::loadPod(ObjectParser& p, ObjectMeta meta, const yaml::Node* spec,
                     const yaml::Node* status) {
  Pod pod;
  pod.meta = std::move(meta);
  auto addIp = [&](const IpAddr& a) {
    if (std::find(pod.ips.begin(), pod.ips.end(), a) == pod.ips.end()) {
      pod.ips.push_back(a);
    }
  };
  if (status != nullptr) {
    auto st = p.fields(*status, "status", {}, {}, false);
    if (st) {
      if (const yaml::Node* ip = ObjectParser::get(*st, "podIP")) {
        if (auto a = p.ip(*ip, "status.podIP")) {
          addIp(*a);
        }
      }
      if (const yaml::Node* ips = ObjectParser::get(*st, "podIPs")) {
        auto items = p.sequence(*ips, "status.podIPs");
        for (size_t i = 0; i < items.size(); ++i) {
          std::string f = idx("status.podIPs", i);
          auto m = p.fields(items[i], f, {}, {}, false);
          if (!m) {
            continue;
          }
          if (const yaml::Node* ip = ObjectParser::get(*m, "ip")) {
            if (auto a = p.ip(*ip, f + ".ip")) {
              addIp(*a);
            }
          }
        }
      }
      if (const yaml::Node* conds = ObjectParser::get(*st, "conditions")) {
        auto items = p.sequence(*conds, "status.conditions");
        for (size_t i = 0; i < items.size(); ++i) {
          std::string f = idx("status.conditions", i);
          auto m = p.fields(items[i], f, {}, {}, false);
          if (!m) {
            continue;
          }
          const yaml::Node* type = ObjectParser::get(*m, "type");
          const yaml::Node* value = ObjectParser::get(*m, "status");
          if (type != nullptr && type->isScalar() && type->scalar() == "Ready" &&
              value != nullptr) {
            auto v = p.string(*value, f + ".status");
            pod.ready = v && *v == "True";
          }
        }
      }
    }
  }
  if (spec != nullptr) {
    auto sp = p.fields(*spec, "spec", {}, {}, false);
    const yaml::Node* containers = sp ? ObjectParser::get(*sp, "containers") : nullptr;
    if (containers != nullptr) {
      auto items = p.sequence(*containers, "spec.containers");
      for (size_t i = 0; i < items.size(); ++i) {
        std::string f = idx("spec.containers", i);
        auto c = p.fields(items[i], f, {}, {}, false);
        const yaml::Node* ports = c ? ObjectParser::get(*c, "ports") : nullptr;
        if (ports == nullptr) {
          continue;
        }
        auto plist = p.sequence(*ports, f + ".ports");
        for (size_t j = 0; j < plist.size(); ++j) {
          std::string pf = idx(f + ".ports", j);
          auto pm = p.fields(plist[j], pf, {}, {}, false);
          if (!pm) {
            continue;
          }
          const yaml::Node* name = ObjectParser::get(*pm, "name");
          const yaml::Node* cp = ObjectParser::get(*pm, "containerPort");
          if (cp == nullptr) {
            p.error(plist[j], pf + ".containerPort", "missing containerPort");
            continue;
          }
          auto port = p.port(*cp, pf + ".containerPort");
          if (port && name != nullptr) {
            if (auto n = p.string(*name, pf + ".name")) {
              pod.namedPorts[*n] = *port;
            }
          }
        }
      }
    }
  }
  config().pods.push_back(std::move(pod));
}

void Loader::loadSlice(ObjectParser& p, ObjectMeta meta, const Fields& top) {
  EndpointSlice es;
  es.meta = std::move(meta);
  auto svc = es.meta.labels.find(kServiceNameLabel);
  if (svc == es.meta.labels.end()) {
    p.report(Diagnostic::Severity::kWarning, es.meta.pos, "metadata.labels",
             std::string("no ") + kServiceNameLabel + " label; EndpointSlice ignored");
    return;
  }
  es.serviceName = svc->second;
  if (const yaml::Node* eps = ObjectParser::get(top, "endpoints")) {
    auto items = p.sequence(*eps, "endpoints");
    for (size_t i = 0; i < items.size(); ++i) {
      std::string f = idx("endpoints", i);
      auto m = p.fields(items[i], f, {}, {}, false);
      if (!m) {
        continue;
      }
      EndpointSlice::Endpoint ep;
      if (const yaml::Node* addrs = ObjectParser::get(*m, "addresses")) {
        auto list = p.sequence(*addrs, f + ".addresses");
        for (size_t j = 0; j < list.size(); ++j) {
          if (auto a = p.ip(list[j], idx(f + ".addresses", j))) {
            ep.addresses.push_back(*a);
          }
        }
      }
      if (const yaml::Node* conds = ObjectParser::get(*m, "conditions")) {
        auto cm = p.fields(*conds, f + ".conditions", {}, {}, false);
        const yaml::Node* ready = cm ? ObjectParser::get(*cm, "ready") : nullptr;
        if (ready != nullptr) {
          auto v = p.string(*ready, f + ".conditions.ready");
          if (v && (*v == "true" || *v == "True")) {
            ep.ready = true;
          } else if (v && (*v == "false" || *v == "False")) {
            ep.ready = false;
          } else if (v) {
            p.error(*ready, f + ".conditions.ready", "expected true or false, got '" + *v + "'");
          }
        }
      }
      if (const yaml::Node* ref = ObjectParser::get(*m, "targetRef")) {
        auto rm = p.fields(*ref, f + ".targetRef", {}, {}, false);
        if (rm) {
          const yaml::Node* kind = ObjectParser::get(*rm, "kind");
          const yaml::Node* name = ObjectParser::get(*rm, "name");
          if (kind != nullptr && name != nullptr && kind->isScalar() && kind->scalar() == "Pod") {
            ep.podName = p.string(*name, f + ".targetRef.name").value_or("");
          }
        }
      }
      es.endpoints.push_back(std::move(ep));
    }
  }
  if (const yaml::Node* ports = ObjectParser::get(top, "ports")) {
    auto items = p.sequence(*ports, "ports");
    for (size_t i = 0; i < items.size(); ++i) {
      std::string f = idx("ports", i);
      auto m = p.fields(items[i], f, {}, {}, false);
      if (!m) {
        continue;
      }
      EndpointSlice::Port port;
      if (const yaml::Node* n = ObjectParser::get(*m, "name")) {
        port.name = p.string(*n, f + ".name").value_or("");
      }
      const yaml::Node* pn = ObjectParser::get(*m, "port");
      if (pn == nullptr) {
        continue; // "all ports" slices carry no port; the service's targetPort applies
      }
      auto v = p.port(*pn, f + ".port");
      if (!v) {
        continue;
      }
      port.port = *v;
      if (const yaml::Node* proto = ObjectParser::get(*m, "protocol")) {
        auto pr = p.protocol(*proto, f + ".protocol");
        if (!pr) {
          continue;
        }
        port.proto = *pr;
      }
      es.ports.push_back(std::move(port));
    }
  }
  config().endpointSlices.push_back(std::move(es));
}

} // namespace veer::loading
