// veer's version and backend choice run in the kernel through BPF_PROG_TEST_RUN
// (root, no namespaces): the compiler's output for a config is written into the
// maps of tests/bpf/veer_lb_test.bpf.c, a tc program built on bpf/lib/lb.h, and
// each run is one connection. The weights are exact to the connection in the
// smooth weighted round-robin order the compiler laid out, and the backend is
// the one the userspace Maglev table gives for the socket cookie's hash.
//
// Why a tc program: of veer's program types, cgroup sock_addr (connect4/6,
// sendmsg4/6, recvmsg4/6, getpeername4/6), sock_ops, sk_msg, cgroup sockopt
// (getsockopt) and tracing iterators have no BPF_PROG_TEST_RUN (their
// bpf_prog_ops have no test_run, on 6.1 as on 6.18), so their shared logic is
// tested here and their hooks end to end (kernel_path_test.cpp and the others).

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "compiler/compiler.h"
#include "compiler/maglev.h"
#include "compiler/pipeline.h"
#include "datapath/maps.h"
#include "veer_lb_test.skel.h"

namespace veer::test {
namespace {

namespace fs = std::filesystem;

// Return codes of lb_pick (tests/bpf/veer_lb_test.bpf.c).
constexpr int kPicked = 0;
constexpr int kNotAService = 2;

constexpr const char* kWebAddr = "10.96.9.10";
constexpr uint16_t kWebPort = 9080;

/**
 * Service web: subset a (3 pods, so a Maglev ring) at 80, subset b (1 pod, no
 * ring) at 20; with session affinity by client when asked.
 */
std::string webConfig(bool affinity) {
  std::string y =
      std::string("apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n"
                  "  clusterIP: ") +
      kWebAddr +
      "\n  ports: [{name: http, port: 9080}]\n  selector: {app: web}\n"
      "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n"
      "metadata: {name: web}\nspec:\n  host: web\n" +
      (affinity ? "  trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true}}}\n" : "") +
      "  subsets:\n"
      "  - {name: a, labels: {version: a}}\n  - {name: b, labels: {version: b}}\n"
      "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n"
      "metadata: {name: web}\nspec:\n  hosts: [web]\n  http:\n  - route:\n"
      "    - destination: {host: web, subset: a}\n      weight: 80\n"
      "    - destination: {host: web, subset: b}\n      weight: 20\n";
  const std::pair<const char*, const char*> pods[] = {{"web-a-1", "10.244.9.11"},
                                                      {"web-a-2", "10.244.9.12"},
                                                      {"web-a-3", "10.244.9.13"},
                                                      {"web-b-1", "10.244.9.21"}};
  for (const auto& [name, ip] : pods) {
    y += std::string("---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: ") + name +
         "\n  labels: {app: web, version: " + std::string(name).substr(4, 1) +
         "}\nstatus:\n  podIP: " + ip + "\n  conditions: [{type: Ready, status: \"True\"}]\n";
  }
  return y;
}

/**
 * murmur3's 64-bit finalizer (fmix64), written from the published algorithm:
 * the hash lb_mix64 must compute, so the expected ring slot does not come from
 * the code under test.
 */
uint64_t fmix64(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return k;
}

struct SkelDeleter {
  void operator()(veer_lb_test_bpf* s) const { veer_lb_test_bpf__destroy(s); }
};

class LbProgTest : public ::testing::Test {
protected:
  void SetUp() override {
    if (geteuid() != 0) {
      GTEST_SKIP() << "needs root (BPF)";
    }
  }

  /** Compiles webConfig(affinity) and writes it into a fresh copy of the program's maps. */
  void load(bool affinity) {
    char tmpl[] = "/tmp/veer-lbprog-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    std::ofstream(dir_ / "web.yaml") << webConfig(affinity);
    built_ = buildFromPaths({dir_.string()});
    ASSERT_TRUE(built_.ok()) << (built_.diags.empty() ? "" : built_.diags[0].format());
    ASSERT_EQ(built_.plan.services.size(), 1u);

    skel_.reset(veer_lb_test_bpf__open());
    ASSERT_TRUE(skel_) << "open veer_lb_test: " << strerror(errno);
    // Private maps: the program's maps carry veer's pin-by-name, which must
    // never find (and write into) a live agent's pins.
    bpf_map* map = nullptr;
    bpf_object__for_each_map(map, skel_->obj) {
      ASSERT_EQ(bpf_map__set_pin_path(map, nullptr), 0);
    }
    ASSERT_EQ(veer_lb_test_bpf__load(skel_.get()), 0) << "load veer_lb_test: " << strerror(errno);
    std::vector<int> fds;
    for (const char* name : kMapNames) {
      int fd = bpf_object__find_map_fd_by_name(skel_->obj, name);
      ASSERT_GE(fd, 0) << name;
      fds.push_back(fd);
    }
    maps_ = std::make_unique<PinnedMaps>(PinnedMaps::fromFds(std::move(fds)));
    Status applied = maps_->apply(built_.image);
    ASSERT_TRUE(applied) << applied.error().message;
    ASSERT_NO_FATAL_FAILURE(expectWeb());
  }

  /** Per version index of web: its id, subset, backend ids (image order), Maglev table. */
  struct Version {
    uint32_t id = 0;
    std::string subset;
    std::vector<uint32_t> backendIds;
    std::vector<uint32_t> table; // the userspace Maglev table; empty for one backend
  };

  /** Reads web's versions out of the compiler's plan and image. */
  void expectWeb() {
    const PlanService& ps = built_.plan.services[0];
    const veer_service& svc = built_.image.services[0].second;
    weights_.clear();
    versions_.assign(ps.versions.size(), Version{});
    for (size_t i = 0; i < versions_.size(); ++i) {
      weights_.push_back(ps.versions[i].weight);
      Version& v = versions_[i];
      v.id = svc.version_id[i];
      std::vector<std::string> names;
      for (const PlanBackend& b : ps.versions[i].backends) {
        names.push_back(b.addr.str() + ":" + std::to_string(b.port));
      }
      for (const auto& [vkey, iv] : built_.image.versions) {
        if (vkey.id == v.id) {
          v.subset = std::string(iv.subset);
          v.backendIds.assign(built_.image.versionBackends.begin() + iv.firstBackend,
                              built_.image.versionBackends.begin() + iv.firstBackend +
                                  iv.nBackends);
        }
      }
      ASSERT_EQ(v.backendIds.size(), names.size()) << "version " << i;
      if (names.size() > 1) {
        v.table = maglevTable(names, VEER_MAGLEV_SIZE);
      }
    }
    ASSERT_EQ(weights_, (std::vector<uint8_t>{80, 20}));
    ASSERT_EQ(versions_[0].subset, "a");
    ASSERT_EQ(versions_[0].backendIds.size(), 3u);
    ASSERT_EQ(versions_[1].subset, "b");
    ASSERT_EQ(versions_[1].backendIds.size(), 1u);
  }

  /**
   * The last pick took version want, and within it the backend the userspace
   * Maglev table has at ringSlot.
   */
  void expectPicked(const Version& want, uint32_t ringSlot, const std::string& what) {
    ASSERT_EQ(skel_->bss->lbt_version_id, want.id) << what << " should take " << want.subset;
    if (want.table.empty()) {
      ASSERT_EQ(skel_->bss->lbt_backend_id, want.backendIds[0]) << what;
      return;
    }
    ASSERT_EQ(skel_->bss->lbt_ring_slot, ringSlot) << what;
    ASSERT_EQ(skel_->bss->lbt_backend_id, want.backendIds[want.table[ringSlot]])
        << what << " (ring slot " << ringSlot << ")";
  }

  void TearDown() override {
    maps_.reset();
    skel_.reset();
    if (!dir_.empty()) {
      std::error_code ec;
      fs::remove_all(dir_, ec);
    }
  }

  /** One connection to the service key with this socket cookie and client; lb_pick's return code.
   */
  int pick(const veer_svc_key& key, uint64_t cookie, uint64_t client = 0) {
    skel_->bss->lbt_key = key;
    skel_->bss->lbt_cookie = cookie;
    skel_->bss->lbt_client = client;
    skel_->bss->lbt_version_id = skel_->bss->lbt_backend_id = ~0u;
    unsigned char packet[64] = {}; // a tc program needs at least an Ethernet header
    LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = packet, .data_size_in = sizeof(packet));
    int err = bpf_prog_test_run_opts(bpf_program__fd(skel_->progs.lb_pick), &opts);
    EXPECT_EQ(err, 0) << "BPF_PROG_TEST_RUN: " << strerror(errno);
    return err == 0 ? static_cast<int>(opts.retval) : -1;
  }

  fs::path dir_;
  BuildResult built_;
  std::vector<uint8_t> weights_;
  std::vector<Version> versions_;
  std::unique_ptr<veer_lb_test_bpf, SkelDeleter> skel_;
  std::unique_ptr<PinnedMaps> maps_;
};

// 1000 consecutive connections with distinct cookies: connection i takes the
// version in weight slot i % 100 of the compiler's smooth WRR table (so any
// 100 in a row are exactly 80 a and 20 b, interleaved as the table says), and
// within a version of several backends the one the userspace Maglev table
// gives at fmix64(cookie) % VEER_MAGLEV_SIZE.
TEST_F(LbProgTest, VersionsFollowTheWeightSlotsAndBackendsTheUserspaceMaglev) {
  ASSERT_NO_FATAL_FAILURE(load(false));
  const veer_svc_key key = built_.image.services[0].first;
  const std::vector<uint8_t> slots = weightSlots(weights_);
  std::map<std::string, int> perHundred;
  std::set<uint32_t> backendsOfA;
  for (int i = 0; i < 1000; ++i) {
    const uint64_t cookie = 0x100000000ULL + static_cast<uint64_t>(i) * 7919;
    const std::string what = "connection " + std::to_string(i);
    ASSERT_EQ(pick(key, cookie), kPicked) << what;
    const Version& want = versions_.at(slots[i % VEER_WEIGHT_SLOTS]);
    ASSERT_NO_FATAL_FAILURE(
        expectPicked(want, static_cast<uint32_t>(fmix64(cookie) % VEER_MAGLEV_SIZE), what));
    perHundred[want.subset]++;
    if (!want.table.empty()) {
      backendsOfA.insert(skel_->bss->lbt_backend_id);
    }
    if ((i + 1) % VEER_WEIGHT_SLOTS == 0) {
      EXPECT_EQ(perHundred, (std::map<std::string, int>{{"a", 80}, {"b", 20}}))
          << "connections " << i + 1 - VEER_WEIGHT_SLOTS << ".." << i;
      perHundred.clear();
    }
  }
  EXPECT_EQ(backendsOfA.size(), 3u) << "800 cookies reach every backend of a";
}

// Under session affinity a client's key, not a round robin, picks both: the
// version in weight slot key % 100 of the compiler's cumulative table (subsets
// in name order), and the backend at (key >> 17) in the userspace Maglev
// table, whatever the socket cookie. (The pin table veer_affinity is empty in
// fresh maps, so a first connection is the Maglev choice.)
TEST_F(LbProgTest, AffinityClientKeyPicksTheCumulativeSlotAndItsMaglevBackend) {
  ASSERT_NO_FATAL_FAILURE(load(true));
  const auto& [key, svc] = built_.image.services[0];
  ASSERT_TRUE(svc.flags & VEER_SVC_F_AFFINITY);
  const std::vector<uint8_t> slots = cumulativeSlots(weights_, {0, 1}); // a < b
  std::map<std::string, int> clients;
  for (int i = 0; i < 1000; ++i) {
    const uint64_t client = fmix64(static_cast<uint64_t>(i) + 1);
    const std::string what = "client " + std::to_string(i);
    for (uint64_t cookie : {uint64_t{1} + i, uint64_t{1000000} + i}) {
      ASSERT_EQ(pick(key, cookie, client), kPicked) << what;
      ASSERT_NO_FATAL_FAILURE(expectPicked(versions_.at(slots[client % VEER_WEIGHT_SLOTS]),
                                           static_cast<uint32_t>((client >> 17) % VEER_MAGLEV_SIZE),
                                           what));
    }
    clients[versions_.at(slots[client % VEER_WEIGHT_SLOTS]).subset]++;
  }
  EXPECT_EQ(clients.size(), 2u) << "1000 clients land on both versions";
}

// An address that is not a service is left alone: no version, no backend.
TEST_F(LbProgTest, AddressThatIsNotAServiceIsNotPicked) {
  ASSERT_NO_FATAL_FAILURE(load(false));
  veer_svc_key other = built_.image.services[0].first;
  other.port = htons(kWebPort + 1);
  EXPECT_EQ(pick(other, 1), kNotAService);
  EXPECT_EQ(skel_->bss->lbt_version_id, ~0u);
}

} // namespace
} // namespace veer::test
