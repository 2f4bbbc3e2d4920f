#include "k8s/test_apiserver.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

namespace veer::k8s::testing {
namespace {

namespace fs = std::filesystem;

constexpr const char* kServerScript = "tests/tools/veer-test-apiserver.py";

void run(const std::string& cmd) {
  int rc = std::system((cmd + " >/dev/null 2>&1").c_str());
  if (rc != 0) {
    ADD_FAILURE() << "failed (" << rc << "): " << cmd;
  }
}

} // namespace

namespace {

/** Removes the PKI's directory when the test binary exits. */
struct OwnedPki {
  TestPki pki;
  ~OwnedPki() {
    std::error_code ec;
    fs::remove_all(pki.dir, ec);
  }
};

} // namespace

const TestPki& TestPki::get() {
  static const OwnedPki owned{[] {
    TestPki p;
    char tmpl[] = "/tmp/veer-k8s-pki-XXXXXX";
    p.dir = mkdtemp(tmpl);
    const std::string d = p.dir + "/";
    p.caCert = d + "ca.crt";
    p.caKey = d + "ca.key";
    p.serverCert = d + "server.crt";
    p.serverKey = d + "server.key";
    p.clientCert = d + "client.crt";
    p.clientKey = d + "client.key";
    p.otherCaCert = d + "other-ca.crt";
    const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    run("openssl req -x509 " + ec + " -keyout " + p.caKey + " -out " + p.caCert +
        " -days 2 -subj /CN=veer-test-ca");
    run("openssl req -x509 " + ec + " -keyout " + d + "other-ca.key -out " + p.otherCaCert +
        " -days 2 -subj /CN=veer-other-ca");
    run("openssl req " + ec + " -keyout " + p.serverKey + " -out " + d + "server.csr" +
        " -subj /CN=127.0.0.1");
    std::ofstream(d + "san.ext") << "subjectAltName=IP:127.0.0.1,DNS:localhost\n";
    run("openssl x509 -req -in " + d + "server.csr -CA " + p.caCert + " -CAkey " + p.caKey +
        " -CAcreateserial -days 2 -extfile " + d + "san.ext -out " + p.serverCert);
    run("openssl req " + ec + " -keyout " + p.clientKey + " -out " + d + "client.csr" +
        " -subj /CN=veer-agent");
    run("openssl x509 -req -in " + d + "client.csr -CA " + p.caCert + " -CAkey " + p.caKey +
        " -CAcreateserial -days 2 -out " + p.clientCert);
    return p;
  }()};
  return owned.pki;
}

TestApiServer::TestApiServer(Options options) : options_(std::move(options)) {
  std::vector<std::string> args = {"/usr/bin/python3", kServerScript};
  if (!options_.token.empty()) {
    args.insert(args.end(), {"--token", options_.token});
  }
  if (options_.tls) {
    const TestPki& pki = TestPki::get();
    args.insert(args.end(), {"--tls-cert", pki.serverCert, "--tls-key", pki.serverKey});
    if (options_.requireClientCert) {
      args.insert(args.end(), {"--client-ca", pki.caCert});
    }
  }
  if (options_.down) {
    args.push_back("--down");
  }
  int toChild[2], fromChild[2];
  if (pipe2(toChild, O_CLOEXEC) != 0 || pipe2(fromChild, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe";
    return;
  }
  pid_ = fork();
  if (pid_ == 0) {
    dup2(toChild[0], 0);
    dup2(fromChild[1], 1);
    execChild(args);
  }
  close(toChild[0]);
  close(fromChild[1]);
  in_ = toChild[1];
  out_ = fromChild[0];
  std::string first = readLine(std::chrono::seconds(10));
  json hello = json::parse(first, nullptr, false);
  if (!hello.is_object() || !hello.contains("port")) {
    ADD_FAILURE() << "test API server did not start (run from the source tree?): " << first;
    return;
  }
  port_ = hello["port"].get<int>();
}

TestApiServer::~TestApiServer() {
  if (in_ >= 0) {
    close(in_); // EOF on its control channel: it exits
  }
  if (pid_ > 0) {
    for (int i = 0; i < 500; ++i) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  if (out_ >= 0) {
    close(out_);
  }
}

std::string TestApiServer::url() const {
  return std::string(options_.tls ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_);
}

std::string TestApiServer::readLine(std::chrono::milliseconds bound) {
  auto deadline = std::chrono::steady_clock::now() + bound;
  for (;;) {
    if (size_t nl = buf_.find('\n'); nl != std::string::npos) {
      std::string line = buf_.substr(0, nl);
      buf_.erase(0, nl + 1);
      return line;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || out_ < 0) {
      return "";
    }
    pollfd p{out_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) {
      continue;
    }
    char tmp[4096];
    ssize_t n = read(out_, tmp, sizeof tmp);
    if (n <= 0) {
      return "";
    }
    buf_.append(tmp, static_cast<size_t>(n));
  }
}

json TestApiServer::control(const json& op) {
  std::string line = op.dump() + "\n";
  if (write(in_, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    ADD_FAILURE() << "control write failed";
    return json();
  }
  json reply = json::parse(readLine(std::chrono::seconds(10)), nullptr, false);
  EXPECT_TRUE(reply.is_object() && reply.value("ok", false)) << op.dump() << " -> " << reply.dump();
  return reply;
}

std::string TestApiServer::writeKubeconfig(const std::string& dir, const std::string& caFile,
                                           const std::string& tokenFile) const {
  std::string path = dir + "/kubeconfig";
  std::ofstream out(path);
  out << "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
      << "contexts:\n- name: test\n  context: {cluster: c, user: u, namespace: default}\n"
      << "clusters:\n- name: c\n  cluster:\n    server: " << url() << "\n";
  if (!caFile.empty()) {
    out << "    certificate-authority: " << caFile << "\n";
  }
  out << "users:\n- name: u\n  user:\n";
  if (!tokenFile.empty()) {
    out << "    tokenFile: " << tokenFile << "\n";
  } else if (!options_.token.empty()) {
    out << "    token: " << options_.token << "\n";
  }
  if (options_.requireClientCert) {
    out << "    client-certificate: " << TestPki::get().clientCert << "\n"
        << "    client-key: " << TestPki::get().clientKey << "\n";
  }
  if (tokenFile.empty() && options_.token.empty() && !options_.requireClientCert) {
    out << "    {}\n";
  }
  return path;
}

bool waitUntil(const std::function<bool()>& cond, std::chrono::milliseconds bound) {
  auto deadline = std::chrono::steady_clock::now() + bound;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) {
      return cond();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

TempDir::TempDir() {
  char tmpl[] = "/tmp/veer-k8s-test-XXXXXX";
  path = mkdtemp(tmpl);
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path, ec);
}

void execChild(std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (auto& a : args) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);
  execv(argv[0], argv.data());
  _exit(127);
}

json service(const std::string& ns, const std::string& name, const std::string& ip, int port) {
  return {{"apiVersion", "v1"},
          {"kind", "Service"},
          {"metadata",
           {{"name", name},
            {"namespace", ns},
            {"annotations", {{"kubectl.kubernetes.io/last-applied-configuration", "{...}"}}},
            {"managedFields", json::array({{{"manager", "kubectl"}}})}}},
          {"spec",
           {{"clusterIP", ip},
            {"ports", json::array({{{"name", "http"}, {"port", port}, {"protocol", "TCP"}}})},
            {"selector", {{"app", name}}}}}};
}

json pod(const std::string& name, const std::string& node, const std::string& ip) {
  return {
      {"apiVersion", "v1"},
      {"kind", "Pod"},
      {"metadata", {{"name", name}, {"namespace", "default"}, {"labels", {{"app", "web"}}}}},
      {"spec",
       {{"nodeName", node},
        {"containers",
         json::array({{{"name", "c"},
                       {"image", "registry/web:1"},
                       {"ports", json::array({{{"name", "http"}, {"containerPort", 8080}}})}}})}}},
      {"status",
       {{"podIP", ip},
        {"conditions", json::array({{{"type", "Ready"}, {"status", "True"}},
                                    {{"type", "PodScheduled"}, {"status", "True"}}})}}}};
}

} // namespace veer::k8s::testing
