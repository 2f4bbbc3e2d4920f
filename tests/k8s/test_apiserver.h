#pragma once

// Runs tests/tools/veer-test-apiserver.py on 127.0.0.1 (a free port it picks) and drives it
// through its control channel (JSON lines on its stdin/stdout); a TLS CA and certificates
// made with openssl for the https tests.

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace veer::k8s::testing {

using nlohmann::json;

/** A CA, a server certificate for 127.0.0.1 signed by it, a client certificate signed by
 * it, and an unrelated CA: made once per test binary in a temporary directory. */
struct TestPki {
  std::string dir;
  std::string caCert, caKey, serverCert, serverKey, clientCert, clientKey, otherCaCert;
  static const TestPki& get();
};

class TestApiServer {
public:
  struct Options {
    std::string token; // "" = no authentication
    bool tls = false;  // https with TestPki's server certificate
    bool requireClientCert = false;
    bool down = false; // start not listening
  };

  explicit TestApiServer(Options options);
  ~TestApiServer();
  TestApiServer(const TestApiServer&) = delete;
  TestApiServer& operator=(const TestApiServer&) = delete;

  int port() const { return port_; }
  std::string url() const;
  /** Sends one control op; its reply (fails the test when not ok). */
  json control(const json& op);
  json apply(const json& object) { return control({{"op", "apply"}, {"object", object}}); }
  json stats() { return control({{"op", "stats"}}); }
  /** A kubeconfig for this server in dir (CA data, token), returns its path. */
  std::string writeKubeconfig(const std::string& dir, const std::string& caFile = "",
                              const std::string& tokenFile = "") const;

private:
  std::string readLine(std::chrono::milliseconds bound);

  Options options_;
  pid_t pid_ = -1;
  int in_ = -1;  // its stdin
  int out_ = -1; // its stdout
  std::string buf_;
  int port_ = 0;
};

/** Polls cond (every 2 ms) until true or bound passes; the result of the last call. */
bool waitUntil(const std::function<bool()>& cond,
               std::chrono::milliseconds bound = std::chrono::seconds(10));

/** A fresh directory under /tmp, removed by the destructor. */
struct TempDir {
  TempDir();
  ~TempDir();
  std::string path;
};

/** In a forked child: execv(args[0], args); exit 127 when that fails. */
[[noreturn]] void execChild(std::vector<std::string>& args);

json service(const std::string& ns, const std::string& name, const std::string& ip, int port);
json pod(const std::string& name, const std::string& node, const std::string& ip);

} // namespace veer::k8s::testing
