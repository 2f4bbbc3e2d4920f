#pragma once

// Where the Kubernetes API is and how to authenticate: from a kubeconfig file or from the
// pod's service account (in-cluster), as client-go's clientcmd and rest.InClusterConfig do.

#include <mutex>
#include <string>

#include "common/result.h"
#include "k8s/clock.h"

namespace veer::k8s {

struct ClusterConfig {
  std::string server;                 // "https://host:port" or "http://host:port", no trailing '/'
  std::string caPem;                  // CA bundle to verify the server; "" = the system's
  bool insecureSkipTlsVerify = false; // kubeconfig insecure-skip-tls-verify
  std::string token;                  // a fixed bearer token
  std::string tokenFile;              // a bearer token re-read from this file (rotates)
  std::string clientCertPem;          // client certificate and key (PEM), both or neither
  std::string clientKeyPem;
  std::string ns;     // the context's or the service account's namespace
  std::string source; // for logs: "FILE (context NAME)" or "in-cluster"
};

/**
 * Parses a kubeconfig: the named context (current-context when empty), its cluster and user.
 * Relative file paths are relative to the kubeconfig's directory; *-data fields are base64.
 * Errors say FILE:LINE:COL and the field. Credentials are dropped for an http:// server, as
 * clientcmd does: a token never travels in clear text.
 */
Result<ClusterConfig> loadKubeconfig(const std::string& path, const std::string& context = "");

inline constexpr const char* kServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";

/** What in-cluster config reads; the process's values by default, others in tests. */
struct InClusterSource {
  std::string host;                            // $KUBERNETES_SERVICE_HOST
  std::string port;                            // $KUBERNETES_SERVICE_PORT
  std::string accountDir = kServiceAccountDir; // token, ca.crt, namespace
  static InClusterSource fromEnvironment();
};

/** The API server as a pod sees it: https to the kubernetes Service, the service account's token.
 */
Result<ClusterConfig>
inClusterConfig(const InClusterSource& src = InClusterSource::fromEnvironment());

/**
 * The bearer token to send: a fixed one, or a file's content re-read when older than
 * kTokenMaxAge or after a 401 (bound service account tokens rotate, client-go re-reads
 * every minute). Thread-safe.
 */
class TokenSource {
public:
  static constexpr Duration kTokenMaxAge = std::chrono::minutes(1);

  TokenSource(std::string token, std::string file, Clock& clock);
  /** The token ("" when none); a file that cannot be read keeps the last token. */
  std::string token();
  /** The server refused the token: read the file again at the next token(). */
  void invalidate();
  /** How many times the file was read (tests). */
  int reads() const;

private:
  mutable std::mutex mu_;
  std::string token_;
  std::string file_;
  Clock& clock_;
  TimePoint readAt_{};
  bool stale_ = true;
  int reads_ = 0;
};

} // namespace veer::k8s
