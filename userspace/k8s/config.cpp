#include "k8s/config.h"

#include <openssl/evp.h>

#include <cstdlib>
#include <filesystem>

#include "common/files.h"
#include "config/yaml.h"

namespace veer::k8s {
namespace {

namespace fs = std::filesystem;

/** Reads a kubeconfig and turns every problem into "FILE:LINE:COL: FIELD: message". */
class KubeconfigReader {
public:
  explicit KubeconfigReader(std::string path) : path_(std::move(path)) {}

  Error error(const yaml::Node& at, const std::string& field, const std::string& message) const {
    yaml::Mark m = at.mark();
    std::string where = path_;
    if (!m.isNull()) {
      where += ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
    }
    return Error{EINVAL, where + ": " + field + ": " + message};
  }

  /** A map's value for key; undefined when absent. */
  static yaml::Node get(const yaml::Node& map, std::string_view key) {
    for (const auto& [k, v] : map.entries()) {
      if (k.scalar() == key) {
        return v;
      }
    }
    return {};
  }

  Result<std::string> string(const yaml::Node& map, std::string_view key,
                             const std::string& field) const {
    yaml::Node v = get(map, key);
    if (!v.isDefined() || v.isNull()) {
      return std::string();
    }
    if (!v.isScalar()) {
      return error(v, field, "expected a string");
    }
    return std::string(v.scalar());
  }

  Result<bool> boolean(const yaml::Node& map, std::string_view key,
                       const std::string& field) const {
    yaml::Node v = get(map, key);
    if (!v.isDefined() || v.isNull()) {
      return false;
    }
    if (v.scalar() == "true" || v.scalar() == "True") {
      return true;
    }
    if (v.scalar() == "false" || v.scalar() == "False") {
      return false;
    }
    return error(v, field, "expected true or false, got '" + std::string(v.scalar()) + "'");
  }

  /** The `inner` map of the entry named name in the list `list` (contexts, clusters, users). */
  Result<yaml::Node> named(const yaml::Node& root, const char* list, const char* inner,
                           const std::string& name, const yaml::Node& referrer,
                           const std::string& referrerField) const {
    yaml::Node l = get(root, list);
    if (l.isDefined() && !l.isNull() && !l.isSequence()) {
      return error(l, list, "expected a list");
    }
    for (size_t i = 0; i < l.items().size(); ++i) {
      const yaml::Node& e = l.items()[i];
      std::string field = std::string(list) + "[" + std::to_string(i) + "]";
      if (!e.isMap()) {
        return error(e, field, "expected a map with name and " + std::string(inner));
      }
      if (get(e, "name").scalar() != name) {
        continue;
      }
      yaml::Node in = get(e, inner);
      if (!in.isMap()) {
        return error(in.isDefined() ? in : e, field + "." + inner, "expected a map");
      }
      return in;
    }
    return error(referrer, referrerField, std::string("no entry named '") + name + "' in " + list);
  }

  /** The PEM bytes of FIELD-data (base64) or of the file FIELD; "" when neither is set. */
  Result<std::string> pem(const yaml::Node& map, const std::string& fileKey,
                          const std::string& prefix) const {
    std::string dataKey = fileKey + "-data";
    yaml::Node data = get(map, dataKey);
    if (data.isDefined() && !data.isNull()) {
      auto decoded = base64(data, prefix + dataKey);
      if (!decoded) {
        return decoded.error();
      }
      return decoded;
    }
    auto file = string(map, fileKey, prefix + fileKey);
    if (!file || file->empty()) {
      return file;
    }
    fs::path p(*file);
    if (p.is_relative()) {
      p = fs::path(path_).parent_path() / p;
    }
    auto text = readFile(p.string());
    if (!text) {
      return error(get(map, fileKey), prefix + fileKey, text.error().message);
    }
    return text;
  }

  Result<std::string> tokenFile(const yaml::Node& map, const std::string& prefix) const {
    auto file = string(map, "tokenFile", prefix + "tokenFile");
    if (!file || file->empty()) {
      return file;
    }
    fs::path p(*file);
    if (p.is_relative()) {
      p = fs::path(path_).parent_path() / p;
    }
    return p.string();
  }

private:
  Result<std::string> base64(const yaml::Node& v, const std::string& field) const {
    std::string in;
    for (char c : v.scalar()) {
      if (c != '\n' && c != '\r' && c != ' ') {
        in += c;
      }
    }
    if (!v.isScalar() || in.empty() || in.size() % 4 != 0) {
      return error(v, field, "expected base64 data");
    }
    std::string out(in.size() / 4 * 3, '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(in.data()),
                            static_cast<int>(in.size()));
    if (n < 0) {
      return error(v, field, "expected base64 data");
    }
    // EVP_DecodeBlock counts '=' padding as zero bytes.
    size_t pad = in.ends_with("==") ? 2 : in.ends_with("=") ? 1 : 0;
    out.resize(static_cast<size_t>(n) - pad);
    return out;
  }

  std::string path_;
};

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) {
    s.pop_back();
  }
  return s;
}

} // namespace

Result<ClusterConfig> loadKubeconfig(const std::string& path, const std::string& contextName) {
  auto text = readFile(path);
  if (!text) {
    return Error{text.error().code, "kubeconfig " + text.error().message};
  }
  yaml::Document doc;
  yaml::ParseError perr;
  KubeconfigReader r(path);
  if (!yaml::parse(*text, doc, perr)) {
    return Error{EINVAL, path + ":" + std::to_string(perr.mark.line + 1) + ":" +
                             std::to_string(perr.mark.column + 1) + ": " + perr.message};
  }
  yaml::Node root = doc.root();
  if (!root.isMap()) {
    return r.error(root, "kubeconfig", "expected a map (apiVersion: v1, kind: Config)");
  }
  std::string ctxName = contextName;
  yaml::Node ctxRef = KubeconfigReader::get(root, "current-context");
  if (ctxName.empty()) {
    auto cur = r.string(root, "current-context", "current-context");
    if (!cur) {
      return cur.error();
    }
    if (cur->empty()) {
      return r.error(root, "current-context", "no current-context and no context given");
    }
    ctxName = *cur;
  } else {
    ctxRef = root;
  }
  auto ctx = r.named(root, "contexts", "context", ctxName, ctxRef, "current-context");
  if (!ctx) {
    return ctx.error();
  }
  const std::string cp = "contexts[" + ctxName + "].context.";
  auto clusterName = r.string(*ctx, "cluster", cp + "cluster");
  if (!clusterName) {
    return clusterName.error();
  }
  if (clusterName->empty()) {
    return r.error(*ctx, cp + "cluster", "missing cluster");
  }
  auto userName = r.string(*ctx, "user", cp + "user");
  if (!userName) {
    return userName.error();
  }
  ClusterConfig c;
  auto ns = r.string(*ctx, "namespace", cp + "namespace");
  if (!ns) {
    return ns.error();
  }
  c.ns = ns->empty() ? "default" : *ns;
  c.source = path + " (context " + ctxName + ")";

  auto cluster = r.named(root, "clusters", "cluster", *clusterName,
                         KubeconfigReader::get(*ctx, "cluster"), cp + "cluster");
  if (!cluster) {
    return cluster.error();
  }
  const std::string kp = "clusters[" + *clusterName + "].cluster.";
  auto server = r.string(*cluster, "server", kp + "server");
  if (!server) {
    return server.error();
  }
  if (server->empty()) {
    return r.error(*cluster, kp + "server", "missing server");
  }
  if (!server->starts_with("https://") && !server->starts_with("http://")) {
    return r.error(KubeconfigReader::get(*cluster, "server"), kp + "server",
                   "expected an http:// or https:// URL, got '" + *server + "'");
  }
  c.server = *server;
  while (c.server.ends_with("/")) {
    c.server.pop_back();
  }
  auto insecure = r.boolean(*cluster, "insecure-skip-tls-verify", kp + "insecure-skip-tls-verify");
  if (!insecure) {
    return insecure.error();
  }
  c.insecureSkipTlsVerify = *insecure;
  if (yaml::Node sni = KubeconfigReader::get(*cluster, "tls-server-name"); sni.isDefined()) {
    return r.error(sni, kp + "tls-server-name", "not supported by veer");
  }
  auto ca = r.pem(*cluster, "certificate-authority", kp);
  if (!ca) {
    return ca.error();
  }
  c.caPem = *ca;
  if (c.insecureSkipTlsVerify && !c.caPem.empty()) {
    // clientcmd refuses this pair too: which one was meant is unclear.
    return r.error(KubeconfigReader::get(*cluster, "insecure-skip-tls-verify"),
                   kp + "insecure-skip-tls-verify",
                   "certificate-authority and insecure-skip-tls-verify exclude each other");
  }

  if (userName->empty()) {
    return c; // no credentials: an anonymous or http-only server
  }
  auto user =
      r.named(root, "users", "user", *userName, KubeconfigReader::get(*ctx, "user"), cp + "user");
  if (!user) {
    return user.error();
  }
  const std::string up = "users[" + *userName + "].user.";
  for (const char* unsupported : {"exec", "auth-provider", "username", "password"}) {
    yaml::Node n = KubeconfigReader::get(*user, unsupported);
    if (n.isDefined() && !n.isNull()) {
      return r.error(n, up + unsupported,
                     "not supported by veer; use token, tokenFile or a client certificate "
                     "(a service account's token in a kubeconfig works)");
    }
  }
  auto token = r.string(*user, "token", up + "token");
  auto tokenFile = r.tokenFile(*user, up);
  auto cert = r.pem(*user, "client-certificate", up);
  auto key = r.pem(*user, "client-key", up);
  for (const auto* res : {&token, &tokenFile, &cert, &key}) {
    if (!*res) {
      return res->error();
    }
  }
  if (cert->empty() != key->empty()) {
    return r.error(*user, up + (cert->empty() ? "client-certificate" : "client-key"),
                   "a client certificate needs its key and the key its certificate");
  }
  if (c.server.starts_with("http://")) {
    return c; // as clientcmd: no credentials over clear text
  }
  c.token = trimmed(*token);
  c.tokenFile = *tokenFile;
  c.clientCertPem = *cert;
  c.clientKeyPem = *key;
  return c;
}

InClusterSource InClusterSource::fromEnvironment() {
  InClusterSource s;
  const char* h = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* p = std::getenv("KUBERNETES_SERVICE_PORT");
  s.host = h != nullptr ? h : "";
  s.port = p != nullptr ? p : "";
  return s;
}

Result<ClusterConfig> inClusterConfig(const InClusterSource& src) {
  if (src.host.empty() || src.port.empty()) {
    return Error{ENOENT, "not in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT "
                         "must be set (or give --kubeconfig)"};
  }
  ClusterConfig c;
  bool v6 = src.host.find(':') != std::string::npos;
  c.server = "https://" + (v6 ? "[" + src.host + "]" : src.host) + ":" + src.port;
  c.tokenFile = src.accountDir + "/token";
  auto token = readFile(c.tokenFile);
  if (!token) {
    return Error{token.error().code, "in-cluster service account token: " + token.error().message};
  }
  auto ca = readFile(src.accountDir + "/ca.crt");
  if (!ca) {
    return Error{ca.error().code, "in-cluster service account CA: " + ca.error().message};
  }
  c.caPem = *ca;
  auto ns = readFile(src.accountDir + "/namespace");
  c.ns = ns ? trimmed(*ns) : "default";
  c.source = "in-cluster";
  return c;
}

TokenSource::TokenSource(std::string token, std::string file, Clock& clock)
    : token_(std::move(token)), file_(std::move(file)), clock_(clock) {}

std::string TokenSource::token() {
  std::lock_guard<std::mutex> lock(mu_);
  if (file_.empty()) {
    return token_;
  }
  TimePoint now = clock_.now();
  if (stale_ || now - readAt_ >= kTokenMaxAge) {
    ++reads_;
    if (auto t = readFile(file_); t && !trimmed(*t).empty()) {
      token_ = trimmed(*t);
    }
    readAt_ = now;
    stale_ = false;
  }
  return token_;
}

void TokenSource::invalidate() {
  std::lock_guard<std::mutex> lock(mu_);
  stale_ = true;
}

int TokenSource::reads() const {
  std::lock_guard<std::mutex> lock(mu_);
  return reads_;
}

} // namespace veer::k8s
