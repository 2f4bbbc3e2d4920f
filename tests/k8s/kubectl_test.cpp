// The test API server checked against a real client, kubectl (client-go): if kubectl reads
// its lists, pages, watches and discovery, the server speaks the protocol and the
// reflector's tests do not merely mirror veer's own reading of it.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>

#include "k8s/test_apiserver.h"

namespace veer::k8s {
namespace {

using namespace std::chrono_literals;
using testing::execChild;
using testing::json;
using testing::TestApiServer;

constexpr const char* kKubectl = "/usr/bin/kubectl";

/** kubectl with args, its stdout read line by line until `done` says so or bound passes. */
class Kubectl {
public:
  explicit Kubectl(std::vector<std::string> args) {
    args.insert(args.begin(), kKubectl);
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
      ADD_FAILURE() << "pipe";
      return;
    }
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], 1);
      dup2(fds[1], 2);
      execChild(args);
    }
    close(fds[1]);
    fd_ = fds[0];
  }

  ~Kubectl() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (fd_ >= 0) {
      close(fd_);
    }
  }

  /** Reads until a line equal to want; everything read so far. */
  bool readUntil(const std::string& want, std::chrono::milliseconds bound = 20s) {
    auto deadline = std::chrono::steady_clock::now() + bound;
    for (;;) {
      if (out_.find(want + "\n") != std::string::npos) {
        return true;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        return false;
      }
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) {
        continue;
      }
      char buf[4096];
      ssize_t n = read(fd_, buf, sizeof buf);
      if (n <= 0) {
        return out_.find(want + "\n") != std::string::npos;
      }
      out_.append(buf, static_cast<size_t>(n));
    }
  }

  /** Waits for exit (bounded); its exit status, or -1. */
  int wait(std::chrono::milliseconds bound = 20s) {
    readUntil("\x01never\x01", bound); // drain to EOF
    int status = 0;
    if (waitpid(pid_, &status, 0) != pid_) {
      return -1;
    }
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  const std::string& output() const { return out_; }

private:
  pid_t pid_ = -1;
  int fd_ = -1;
  std::string out_;
};

class KubectlTest : public ::testing::Test {
protected:
  void SetUp() override {
    if (access(kKubectl, X_OK) != 0) {
      GTEST_SKIP() << "kubectl not installed (scripts/install-deps.sh installs it)";
    }
  }
  testing::TempDir dir_;
};

TEST_F(KubectlTest, ReadsRawListsOverHttpsWithTokenAndCa) {
  TestApiServer server({.token = "s3cret", .tls = true});
  server.apply(testing::pod("a", "n1", "10.0.0.1"));
  std::string kc = server.writeKubeconfig(dir_.path, testing::TestPki::get().caCert);
  Kubectl k({"--kubeconfig", kc, "get", "--raw", "/api/v1/namespaces/default/pods"});
  ASSERT_EQ(k.wait(), 0) << k.output();
  json list = json::parse(k.output(), nullptr, false);
  ASSERT_TRUE(list.is_object()) << k.output();
  EXPECT_EQ(list["kind"], "PodList");
  ASSERT_EQ(list["items"].size(), 1u);
  EXPECT_FALSE(list["items"][0].contains("kind"));
  EXPECT_EQ(list["items"][0]["metadata"]["name"], "a");
}

TEST_F(KubectlTest, RefusesTheServerWithAWrongCa) {
  TestApiServer server({.token = "t", .tls = true});
  std::string kc = server.writeKubeconfig(dir_.path, testing::TestPki::get().otherCaCert);
  Kubectl k({"--kubeconfig", kc, "get", "--raw", "/api"});
  EXPECT_NE(k.wait(), 0);
  EXPECT_NE(k.output().find("certificate"), std::string::npos) << k.output();
}

TEST_F(KubectlTest, PagesDiscoversAndFiltersByField) {
  TestApiServer server({});
  for (const char* n : {"a", "b", "c", "d", "e"}) {
    server.apply(testing::pod(n, std::string(n) == "c" ? "n2" : "n1", "10.0.0.1"));
  }
  std::string kc = server.writeKubeconfig(dir_.path);
  Kubectl k({"--kubeconfig", kc, "get", "pods", "-o", "name", "--chunk-size=2"});
  ASSERT_EQ(k.wait(), 0) << k.output();
  EXPECT_EQ(k.output(), "pod/a\npod/b\npod/c\npod/d\npod/e\n");
  EXPECT_EQ(server.stats()["stats"]["list"], 3); // 2 + 2 + 1

  Kubectl f(
      {"--kubeconfig", kc, "get", "pods", "-o", "name", "--field-selector", "spec.nodeName=n2"});
  ASSERT_EQ(f.wait(), 0) << f.output();
  EXPECT_EQ(f.output(), "pod/c\n");

  // A CRD through discovery, by its plural name.
  server.control({{"op", "install"},
                  {"group", "networking.istio.io"},
                  {"version", "v1"},
                  {"resource", "virtualservices"},
                  {"kind", "VirtualService"}});
  server.apply({{"apiVersion", "networking.istio.io/v1"},
                {"kind", "VirtualService"},
                {"metadata", {{"name", "vs"}}},
                {"spec", {{"hosts", json::array({"a"})}}}});
  Kubectl v({"--kubeconfig", kc, "get", "virtualservices", "-o", "name"});
  ASSERT_EQ(v.wait(), 0) << v.output();
  EXPECT_EQ(v.output(), "virtualservice.networking.istio.io/vs\n");
}

TEST_F(KubectlTest, WatchesFromTheListsVersion) {
  TestApiServer server({});
  server.apply(testing::pod("a", "n1", "10.0.0.1"));
  std::string kc = server.writeKubeconfig(dir_.path);
  Kubectl w({"--kubeconfig", kc, "get", "pods", "-w", "-o", "name"});
  ASSERT_TRUE(w.readUntil("pod/a")) << w.output();
  ASSERT_TRUE(testing::waitUntil([&] { return server.stats()["watches"] == 1; }));
  server.apply(testing::pod("b", "n1", "10.0.0.2"));
  ASSERT_TRUE(w.readUntil("pod/b")) << w.output();
  // Nothing replayed: the watch started at the list's version.
  EXPECT_EQ(w.output(), "pod/a\npod/b\n");
}

} // namespace
} // namespace veer::k8s
