#pragma once

// The kernel-path test fixture: a namespace node with the Bookinfo reviews
// pods (v1/v2/v3 answering their version), a client pod, an unattached pod,
// a private bpffs and veer-agent as a real process on a watched config dir.
// Shared by every integration test that drives the agent.

#include <cstdio>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "common/files.h"
#include "compiler/pipeline.h"
#include "datapath/datapath.h"
#include "datapath/maps.h"
#include "world/world.h"
#include "config_texts.h"

namespace veer::test {

namespace fs = std::filesystem;

/** Runs a shell command: its exit status (pclose's) and what it printed on stdout. */
inline std::pair<int, std::string> commandOutput(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) {
    return {-1, out};
  }
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof(buf), p)) > 0;) {
    out.append(buf, n);
  }
  return {pclose(p), out};
}
using std::chrono::milliseconds;
using std::chrono::steady_clock;

inline constexpr const char* kReviews4 = "10.96.0.20";
inline constexpr const char* kReviews6 = "fd00:96::20";
inline constexpr const char* kReviewsUdp = "10.96.0.21";
inline constexpr uint16_t kHttpPort = 9080;
inline constexpr uint16_t kUdpPort = 5353;

inline fs::path binDir() {
  return fs::read_symlink("/proc/self/exe").parent_path();
}

inline fs::path sourceDir() {
  if (const char* env = getenv("VEER_SOURCE_DIR")) {
    return env;
  }
  return binDir().parent_path().parent_path();
}

inline std::string readText(const fs::path& p) {
  Result<std::string> text = readFile(p.string());
  return text ? *text : "(" + text.error().message + ")";
}

/** Writes a file the way an editor or kubectl does: a new inode renamed into place. */
inline void writeAtomically(const fs::path& p, const std::string& content) {
  const fs::path tmp = p.parent_path() / ("." + p.filename().string() + ".tmp");
  {
    std::ofstream out(tmp);
    out << content;
  }
  fs::rename(tmp, p);
}

/** veer-agent as a child process with its own bpffs mount. */
class AgentProcess {
public:
  AgentProcess(fs::path configDir, fs::path bpffs, std::string cgroup)
      : configDir_(std::move(configDir)), bpffs_(std::move(bpffs)), cgroup_(std::move(cgroup)),
        log_(bpffs_.parent_path() / "agent.log"), runDir_(bpffs_.parent_path() / "run") {}

  /** Its --run-dir unless the test passes one: rejected.json and the proxy's files. */
  const fs::path& runDir() const { return runDir_; }

  ~AgentProcess() { stop(); }

  /** Runs the agent in this network namespace (a /run/netns path), like a hostNetwork pod. */
  void setNetns(std::string path) { netns_ = std::move(path); }

  /** More command-line arguments for the agent. */
  void setExtraArgs(std::vector<std::string> args) { extra_ = std::move(args); }

  void start() {
    ASSERT_LT(pid_, 0) << "agent already running";
    pid_ = fork();
    ASSERT_GE(pid_, 0) << strerror(errno);
    if (pid_ == 0) {
      int fd = open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      dup2(fd, 1);
      dup2(fd, 2);
      if (!netns_.empty()) {
        int ns = open(netns_.c_str(), O_RDONLY | O_CLOEXEC);
        if (ns < 0 || setns(ns, CLONE_NEWNET) != 0) {
          _exit(126);
        }
      }
      const std::string agent = (binDir() / "veer-agent").string();
      std::vector<const char*> argv = {agent.c_str(), "--config-dir",  configDir_.c_str(),
                                       "--cgroup",    cgroup_.c_str(), "--bpffs",
                                       bpffs_.c_str()};
      for (const std::string& a : extra_) {
        argv.push_back(a.c_str());
      }
      // The default port and run dir are the node's: tests running at once would fight
      // over them.
      if (std::find(extra_.begin(), extra_.end(), "--metrics-listen") == extra_.end()) {
        argv.insert(argv.end(), {"--metrics-listen", "off"});
      }
      const std::string runDir = runDir_.string();
      if (std::find(extra_.begin(), extra_.end(), "--run-dir") == extra_.end()) {
        argv.insert(argv.end(), {"--run-dir", runDir.c_str()});
      }
      argv.push_back(nullptr);
      execv(agent.c_str(), const_cast<char* const*>(argv.data()));
      _exit(127);
    }
  }

  /** SIGTERM and reap; the pinned datapath stays. Returns the exit status. */
  int stop() {
    if (pid_ < 0) {
      return -1;
    }
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

  std::string log() const { return readText(log_); }

private:
  fs::path configDir_, bpffs_;
  std::string cgroup_;
  std::string netns_;
  std::vector<std::string> extra_;
  fs::path log_;
  fs::path runDir_;
  pid_t pid_ = -1;
};

class KernelPathTest : public ::testing::Test {
protected:
  void SetUp() override {
    auto world = World::create();
    ASSERT_TRUE(world) << world.error().message;
    world_ = std::move(*world);
    struct PodDef {
      const char* name;
      const char* v4;
      const char* v6;
      const char* version;
    };
    const PodDef pods[] = {{"productpage-v1", "10.244.1.10", "fd00:244:1::10", nullptr},
                           {"reviews-v1", "10.244.1.21", "fd00:244:1::21", "v1"},
                           {"reviews-v2", "10.244.1.22", "fd00:244:1::22", "v2"},
                           {"reviews-v3", "10.244.1.23", "fd00:244:1::23", "v3"}};
    for (const PodDef& p : pods) {
      Status s = world_->addPod(PodSpec{p.name, {p.v4}, {p.v6}});
      ASSERT_TRUE(s) << s.error().message;
      if (p.version) {
        auto srv = world_->startTestServer(p.name, p.version, {kHttpPort}, {kUdpPort});
        ASSERT_TRUE(srv) << srv.error().message;
        servers_.push_back(std::move(*srv));
      }
    }
    Status s = world_->addPod(PodSpec{"outsider", {"10.244.1.50"}, {"fd00:244:1::50"}, true});
    ASSERT_TRUE(s) << s.error().message;

    char tmpl[] = "/tmp/veer-it-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    tmp_ = tmpl;
    configDir_ = tmp_ / "config";
    bpffs_ = tmp_ / "bpffs";
    fs::create_directories(configDir_);
    fs::create_directories(bpffs_); // a plain directory: the agent mounts bpffs there

    fs::copy_file(sourceDir() / "configs/bookinfo/inventory.yaml", configDir_ / "inventory.yaml");
    fs::copy_file(sourceDir() / "configs/000-asm-bookinfo/destination-rules.yaml",
                  configDir_ / "destination-rules.yaml");
    agent_ = std::make_unique<AgentProcess>(configDir_, bpffs_, world_->cgroupRoot());
  }

  void TearDown() override {
    agent_.reset();
    if (!bpffs_.empty()) {
      Status s = Datapath::uninstall(bpffs_.string());
      EXPECT_TRUE(s) << s.error().message;
      umount2(bpffs_.c_str(), MNT_DETACH); // EINVAL when the agent never mounted it
    }
    if (!tmp_.empty()) {
      std::error_code ec;
      fs::remove_all(tmp_, ec);
    }
    servers_.clear();
    world_.reset();
  }

  /** Waits until the live datapath runs the config now in configDir_. */
  void waitApplied() {
    BuildResult built = buildFromPaths({configDir_.string()});
    ASSERT_TRUE(built.ok()) << (built.diags.empty() ? "" : built.diags[0].format());
    const uint64_t want = built.image.digest();
    const auto deadline = steady_clock::now() + std::chrono::seconds(10);
    while (steady_clock::now() < deadline) {
      if (auto maps = PinnedMaps::open(bpffs_.string())) {
        if (auto st = maps->state(); st && st->applied && st->digest == want) {
          return;
        }
      }
      std::this_thread::sleep_for(milliseconds(5));
    }
    FAIL() << "config not applied within 10 s; agent log:\n" << agent_->log();
  }

  void applyRoutes(const std::string& yaml) {
    writeAtomically(configDir_ / "routes.yaml", yaml);
    waitApplied();
  }

  void applyStep(const std::string& seedDir, const std::string& step) {
    applyRoutes(readText(sourceDir() / "configs" / seedDir / "steps" / step));
  }

  veer_state liveState() {
    auto maps = PinnedMaps::open(bpffs_.string());
    EXPECT_TRUE(maps) << maps.error().message;
    auto st = maps->state();
    EXPECT_TRUE(st);
    return *st;
  }

  /** Socket acceleration's counters (bpf/lib/accel.h), summed over CPUs. */
  veer_accel_stats accelStats() {
    auto maps = PinnedMaps::open(bpffs_.string());
    EXPECT_TRUE(maps) << maps.error().message;
    auto live = maps ? maps->live() : Result<LiveState>(Error{});
    EXPECT_TRUE(live);
    return live ? live->accel : veer_accel_stats{};
  }

  /** The version that answered each of n fresh connections from the client pod, in order; "error"
   * for a failure. */
  std::vector<std::string> versions(const std::string& addr, int n) {
    if (HasFatalFailure()) {
      return {}; // the config did not apply: do not wait on 1000 timeouts
    }
    auto results = world_->httpGetMany("productpage-v1", addr, kHttpPort, n);
    EXPECT_TRUE(results) << results.error().message;
    std::vector<std::string> out;
    for (const HttpResult& r : results ? *results : std::vector<HttpResult>{}) {
      out.push_back(r.ok ? r.body.substr(0, r.body.find('\n')) : "error");
    }
    return out;
  }

  /** Versions of n fresh connections from the client pod; failures counted as "error". */
  std::map<std::string, int> split(const std::string& addr, int n = 1000) {
    std::map<std::string, int> counts;
    for (const std::string& v : versions(addr, n)) {
      counts[v]++;
    }
    return counts;
  }

  /**
   * The round robin over the service's 100 weight slots is exact to the
   * connection: in every run of 100 consecutive connections (of 1000, wherever
   * the run starts) each version answers exactly its weight's count.
   */
  void expectExactSplit(const std::string& addr, const std::map<std::string, int>& weights) {
    constexpr int kN = 1000, kWindow = VEER_WEIGHT_SLOTS;
    const std::vector<std::string> got = versions(addr, kN);
    ASSERT_EQ(got.size(), static_cast<size_t>(kN));
    std::map<std::string, int> window;
    for (int i = 0; i < kN; ++i) {
      window[got[i]]++;
      if (i >= kWindow) {
        window[got[i - kWindow]]--;
      }
      if (i + 1 < kWindow) {
        continue;
      }
      std::map<std::string, int> want = weights;
      std::erase_if(want, [](const auto& kv) { return kv.second == 0; });
      std::erase_if(window, [](const auto& kv) { return kv.second == 0; });
      ASSERT_EQ(window, want) << "connections " << i + 1 - kWindow << ".." << i << " to " << addr
                              << " (the first map is what answered)";
    }
  }

  std::unique_ptr<World> world_;
  std::vector<Process> servers_;
  fs::path tmp_, configDir_, bpffs_;
  std::unique_ptr<AgentProcess> agent_;
};

} // namespace veer::test
