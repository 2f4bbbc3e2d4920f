// Kubernetes client pieces that need no server: kubeconfig and in-cluster config, the
// token's re-reading, the backoff policy, slim objects as the loader reads them.

#include <gtest/gtest.h>

#include <openssl/evp.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "config/loader.h"
#include "k8s/config.h"
#include "k8s/k8s_fake_clock.h"
#include "k8s/reflector.h"
#include "k8s/store.h"

namespace veer::k8s {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using nlohmann::json;

class KubeconfigTest : public ::testing::Test {
protected:
  void SetUp() override {
    char tmpl[] = "/tmp/veer-kubeconfig-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) {
    std::string p = dir_ + "/" + name;
    std::ofstream(p) << text;
    return p;
  }

  /** A kubeconfig with one context "c" -> cluster "k" and user "u"; the given bodies. */
  std::string config(const std::string& cluster, const std::string& user) {
    return write("config", "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
                           "contexts:\n- name: c\n  context:\n    cluster: k\n    user: u\n"
                           "    namespace: team\n"
                           "clusters:\n- name: k\n  cluster:\n" +
                               cluster + "users:\n- name: u\n  user:\n" + user);
  }

  std::string error(const std::string& path) {
    auto r = loadKubeconfig(path);
    EXPECT_FALSE(r);
    return r ? "" : r.error().message;
  }

  std::string dir_;
};

const char* kPem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
std::string b64(const std::string& s) {
  std::string out(4 * ((s.size() + 2) / 3) + 1, '\0');
  int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                      reinterpret_cast<const unsigned char*>(s.data()), static_cast<int>(s.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

TEST_F(KubeconfigTest, TokenAndCaData) {
  auto c = loadKubeconfig(config("    server: https://10.0.0.1:6443/\n"
                                 "    certificate-authority-data: " +
                                     b64(kPem) + "\n",
                                 "    token: abc\n"));
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->server, "https://10.0.0.1:6443");
  EXPECT_EQ(c->caPem, kPem);
  EXPECT_EQ(c->token, "abc");
  EXPECT_EQ(c->ns, "team");
  EXPECT_FALSE(c->insecureSkipTlsVerify);
}

TEST_F(KubeconfigTest, FilesRelativeToTheKubeconfig) {
  write("ca.crt", kPem);
  write("tls.crt", "CERT");
  write("tls.key", "KEY");
  auto c = loadKubeconfig(config("    server: https://api:443\n"
                                 "    certificate-authority: ca.crt\n",
                                 "    tokenFile: token\n"
                                 "    client-certificate: tls.crt\n    client-key: tls.key\n"));
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->caPem, kPem);
  EXPECT_EQ(c->tokenFile, dir_ + "/token");
  EXPECT_EQ(c->clientCertPem, "CERT");
  EXPECT_EQ(c->clientKeyPem, "KEY");
}

TEST_F(KubeconfigTest, ClientCertificateDataAndInsecure) {
  auto c = loadKubeconfig(config("    server: https://api\n    insecure-skip-tls-verify: true\n",
                                 "    client-certificate-data: " + b64("CERT!") + "\n" +
                                     "    client-key-data: " + b64("KEY") + "\n"));
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_TRUE(c->insecureSkipTlsVerify);
  EXPECT_EQ(c->clientCertPem, "CERT!");
  EXPECT_EQ(c->clientKeyPem, "KEY");
}

TEST_F(KubeconfigTest, HttpServerGetsNoCredentials) {
  auto c = loadKubeconfig(config("    server: http://127.0.0.1:8080\n", "    token: abc\n"));
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->server, "http://127.0.0.1:8080");
  EXPECT_EQ(c->token, "");
}

TEST_F(KubeconfigTest, NamedContextOverridesCurrent) {
  std::string p = write("config", R"(current-context: a
contexts:
- name: a
  context: {cluster: ka, user: ""}
- name: b
  context: {cluster: kb, user: ""}
clusters:
- name: ka
  cluster: {server: "https://a"}
- name: kb
  cluster: {server: "https://b"}
)");
  auto a = loadKubeconfig(p);
  auto b = loadKubeconfig(p, "b");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->server, "https://a");
  EXPECT_EQ(b->server, "https://b");
  EXPECT_EQ(b->ns, "default");
  EXPECT_EQ(b->source, p + " (context b)");
}

TEST_F(KubeconfigTest, ErrorsArePositionedAndNameTheField) {
  EXPECT_NE(error(dir_ + "/missing").find("kubeconfig open " + dir_ + "/missing"),
            std::string::npos);
  std::string bad = write("bad", "clusters: [\n");
  EXPECT_NE(error(bad).find(bad + ":2:1: "), std::string::npos) << error(bad);
  std::string noCtx = write("noctx", "clusters: []\n");
  EXPECT_NE(error(noCtx).find("current-context: no current-context"), std::string::npos);
  std::string unknown = write("unknown", "current-context: x\ncontexts: []\n");
  EXPECT_EQ(error(unknown), unknown + ":1:18: current-context: no entry named 'x' in contexts");

  EXPECT_EQ(error(config("    insecure: 1\n", "    token: a\n")),
            dir_ + "/config:13:5: clusters[k].cluster.server: missing server");
  EXPECT_EQ(error(config("    server: api.example:6443\n", "    token: a\n")),
            dir_ + "/config:13:13: clusters[k].cluster.server: expected an http:// or https:// "
                   "URL, got 'api.example:6443'");
  EXPECT_EQ(error(config("    server: https://a\n    certificate-authority-data: '!!!'\n", "")),
            dir_ + "/config:14:33: clusters[k].cluster.certificate-authority-data: expected "
                   "base64 data");
  EXPECT_NE(error(config("    server: https://a\n    certificate-authority: nope.crt\n", ""))
                .find("config:14:28: clusters[k].cluster.certificate-authority: open " + dir_ +
                      "/nope.crt"),
            std::string::npos);
  EXPECT_EQ(error(config("    server: https://a\n    insecure-skip-tls-verify: yes\n", "")),
            dir_ + "/config:14:31: clusters[k].cluster.insecure-skip-tls-verify: expected true "
                   "or false, got 'yes'");
  EXPECT_NE(error(config("    server: https://a\n    insecure-skip-tls-verify: true\n"
                         "    certificate-authority-data: " +
                             b64(kPem) + "\n",
                         ""))
                .find("exclude each other"),
            std::string::npos);
  EXPECT_EQ(
      error(config("    server: https://a\n", "    client-certificate-data: " + b64("C") + "\n")),
      dir_ + "/config:17:5: users[u].user.client-key: a client certificate needs its key "
             "and the key its certificate");
  EXPECT_NE(error(config("    server: https://a\n", "    exec:\n      command: aws\n"))
                .find("config:18:7: users[u].user.exec: not supported by veer"),
            std::string::npos);
  std::string noUser = write("nouser", "current-context: c\ncontexts:\n- name: c\n  context: "
                                       "{cluster: k, user: u}\nclusters:\n- name: k\n  cluster: "
                                       "{server: 'https://a'}\n");
  EXPECT_EQ(error(noUser), noUser + ":4:31: contexts[c].context.user: no entry named 'u' in users");
}

TEST_F(KubeconfigTest, InCluster) {
  write("token", "tok\n");
  write("ca.crt", kPem);
  write("namespace", "veer-system");
  InClusterSource src{"10.96.0.1", "443", dir_};
  auto c = inClusterConfig(src);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(c->server, "https://10.96.0.1:443");
  EXPECT_EQ(c->tokenFile, dir_ + "/token");
  EXPECT_EQ(c->caPem, kPem);
  EXPECT_EQ(c->ns, "veer-system");
  EXPECT_EQ(c->source, "in-cluster");

  src.host = "fd00::1";
  EXPECT_EQ(inClusterConfig(src)->server, "https://[fd00::1]:443");
  src.host = "";
  EXPECT_NE(inClusterConfig(src).error().message.find("KUBERNETES_SERVICE_HOST"),
            std::string::npos);
  src = InClusterSource{"10.96.0.1", "443", dir_ + "/none"};
  EXPECT_NE(inClusterConfig(src).error().message.find("service account token"), std::string::npos);
}

TEST_F(KubeconfigTest, TokenFileIsReReadEveryMinuteAndAfterInvalidate) {
  std::string file = write("token", "one\n");
  FakeClock clock;
  TokenSource ts("", file, clock);
  EXPECT_EQ(ts.token(), "one");
  write("token", "two\n");
  clock.advance(59s);
  EXPECT_EQ(ts.token(), "one"); // cached within the minute
  clock.advance(1s);
  EXPECT_EQ(ts.token(), "two");
  write("token", "three\n");
  ts.invalidate(); // a 401
  EXPECT_EQ(ts.token(), "three");
  EXPECT_EQ(ts.reads(), 3);
  fs::remove(file);
  ts.invalidate();
  EXPECT_EQ(ts.token(), "three"); // unreadable for a moment (kubelet swapping it): keep the last
  TokenSource fixed("abc", "", clock);
  EXPECT_EQ(fixed.token(), "abc");
}

TEST(K8sBackoffTest, DoublesFromPointEightToThirtySecondsWithJitterAndResets) {
  Backoff b(BackoffPolicy{}, 7);
  Duration base = 800ms;
  for (int i = 0; i < 10; ++i) {
    Duration d = b.next();
    EXPECT_GE(d, std::min<Duration>(base, 30s));
    EXPECT_LE(d, std::min<Duration>(2 * base, 30s));
    base *= 2;
  }
  b.reset();
  Duration d = b.next();
  EXPECT_GE(d, 800ms);
  EXPECT_LE(d, 1600ms);
  // Jitter differs by seed: waits of many agents do not line up.
  Backoff x(BackoffPolicy{}, 1), y(BackoffPolicy{}, 2);
  EXPECT_NE(x.next(), y.next());
}

TEST(K8sSlimTest, PodKeepsWhatTheLoaderReadsAndLoads) {
  json pod = json::parse(R"({
    "metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1", "resourceVersion": "42",
      "labels": {"app": "web", "version": "v2"},
      "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{huge}",
                      "veer.io/recycle-grace": "10s"},
      "managedFields": [{"manager": "kubelet"}]},
    "spec": {"nodeName": "n1", "containers": [{"name": "web", "image": "web:2",
      "env": [{"name": "X", "value": "y"}],
      "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]}]},
    "status": {"phase": "Running", "podIP": "10.1.0.5", "podIPs": [{"ip": "10.1.0.5"}],
      "conditions": [{"type": "Initialized", "status": "True"},
                     {"type": "Ready", "status": "True", "lastTransitionTime": "x"}],
      "containerStatuses": [{"name": "web", "ready": true}]}})");
  ApiObject o = slimObject(pod, "", "Pod", "v1");
  EXPECT_EQ(o.key.ns, "shop");
  EXPECT_EQ(o.key.name, "web-1");
  EXPECT_EQ(o.resourceVersion, "42");
  EXPECT_EQ(o.sourceName(), "api:Pod");
  for (const char* gone : {"managedFields", "last-applied", "image", "env", "containerStatuses",
                           "Initialized", "lastTransitionTime", "resourceVersion"}) {
    EXPECT_EQ(o.json.find(gone), std::string::npos) << gone;
  }
  EXPECT_NE(o.json.find("veer.io/recycle-grace"), std::string::npos);
  EXPECT_LT(o.json.size(), pod.dump().size());

  LoadResult r = loadString(o.json, o.sourceName());
  ASSERT_EQ(r.config.pods.size(), 1u) << formatDiagnostics(r.diags);
  const Pod& p = r.config.pods[0];
  EXPECT_EQ(p.meta.name, "web-1");
  EXPECT_EQ(p.meta.uid, "u-1");
  EXPECT_TRUE(p.ready);
  ASSERT_EQ(p.ips.size(), 1u);
  EXPECT_EQ(p.ips[0], *IpAddr::parse("10.1.0.5"));
  EXPECT_EQ(p.namedPorts.size(), 1u);
}

TEST(K8sSlimTest, ServiceSliceAndRoutingObjectsLoadWithApiPositions) {
  json svc = json::parse(R"({"metadata": {"name": "web", "namespace": "shop"},
    "spec": {"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "type": "LoadBalancer",
             "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
             "selector": {"app": "web"}, "internalTrafficPolicy": "Cluster"},
    "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}, "conditions": []}})");
  ApiObject s = slimObject(svc, "", "Service", "v1");
  EXPECT_NE(s.json.find("1.2.3.4"), std::string::npos);
  EXPECT_EQ(s.json.find("internalTrafficPolicy"), std::string::npos);
  json slice = json::parse(R"({"metadata": {"name": "web-abc", "namespace": "shop",
      "labels": {"kubernetes.io/service-name": "web"}},
    "addressType": "IPv4",
    "endpoints": [{"addresses": ["10.1.0.5"], "conditions": {"ready": true},
                   "targetRef": {"kind": "Pod", "name": "web-1", "namespace": "shop",
                                 "resourceVersion": "9"}, "nodeName": "n1"}],
    "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]})");
  ApiObject e = slimObject(slice, "discovery.k8s.io", "EndpointSlice", "discovery.k8s.io/v1");
  EXPECT_EQ(e.json.find("\"resourceVersion\""), std::string::npos);
  json vs = json::parse(R"({"metadata": {"name": "web", "namespace": "shop"},
    "spec": {"hosts": ["web"], "http": [{"route": [{"destination": {"host": "web"}}]}]},
    "status": {"conditions": [{"type": "Reconciled"}]}})");
  ApiObject v = slimObject(vs, "networking.istio.io", "VirtualService", "networking.istio.io/v1");
  EXPECT_EQ(v.json.find("Reconciled"), std::string::npos);

  LoadResult rs = loadString(s.json, s.sourceName());
  LoadResult re = loadString(e.json, e.sourceName());
  LoadResult rv = loadString(v.json, v.sourceName());
  ASSERT_EQ(rs.config.services.size(), 1u) << formatDiagnostics(rs.diags);
  EXPECT_EQ(rs.config.services[0].ports.size(), 1u);
  ASSERT_EQ(re.config.endpointSlices.size(), 1u) << formatDiagnostics(re.diags);
  ASSERT_EQ(rv.config.virtualServices.size(), 1u) << formatDiagnostics(rv.diags);
  EXPECT_EQ(rv.config.virtualServices[0].meta.pos.file, "api:VirtualService");

  // A broken object's diagnostics name it by its API source and a position in the slim text.
  json bad = json::parse(R"({"metadata": {"name": "bad", "namespace": "shop"},
    "spec": {"hosts": ["web"], "http": [{"route": [{"destination": {"host": "web"},
                                                  "weight": "heavy"}]}]}})");
  ApiObject b = slimObject(bad, "networking.istio.io", "VirtualService", "networking.istio.io/v1");
  LoadResult rb = loadString(b.json, b.sourceName());
  ASSERT_FALSE(rb.diags.empty());
  // One value a line: a line number points at the field, whatever the object's size.
  EXPECT_NE(formatDiagnostics(rb.diags).find(
                "api:VirtualService:19:11: error: VirtualService shop/bad: "),
            std::string::npos)
      << formatDiagnostics(rb.diags) << b.json;
}

TEST(K8sStoreTest, UnchangedSlimFormIsNoEventAndReplaceDeletesTheAbsent) {
  struct Rec final : StoreListener {
    void onUpsert(const ApiObject& o) override { log.push_back("+" + o.key.name); }
    void onDelete(const ApiObject& o) override { log.push_back("-" + o.key.name); }
    std::vector<std::string> log;
  } rec;
  ObjectStore store(&rec);
  auto svc = [](const std::string& name, const std::string& rv, const std::string& ip) {
    json j = {{"metadata", {{"name", name}, {"namespace", "d"}, {"resourceVersion", rv}}},
              {"spec", {{"clusterIP", ip}}},
              {"status", {{"conditions", json::array({{{"type", rv}}})}}}};
    return slimObject(j, "", "Service", "v1");
  };
  store.upsert(svc("a", "1", "10.0.0.1"));
  store.upsert(svc("a", "2", "10.0.0.1")); // only the version and a dropped field changed
  store.upsert(svc("b", "3", "10.0.0.2"));
  store.replace("", "Service", {svc("b", "4", "10.0.0.3"), svc("c", "5", "10.0.0.4")});
  store.replace("", "Pod", {}); // another kind: the services stay
  EXPECT_EQ(rec.log, (std::vector<std::string>{"+a", "+b", "-a", "+b", "+c"}));
  ApiObject a;
  EXPECT_FALSE(store.get({"", "Service", "d", "a"}, a));
  EXPECT_EQ(store.size(), 2u);
  EXPECT_GT(store.jsonBytes(), 0u);
}

} // namespace
} // namespace veer::k8s
