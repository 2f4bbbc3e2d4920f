// The C++ and BPF views of every shared struct must agree byte for byte: the
// sizes and member offsets the C++ compiler sees are checked against the BTF
// clang wrote into the built BPF object (as Cilium's alignchecker does).

#include <gtest/gtest.h>

#include <bpf/btf.h>

#include <cstddef>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "unit/repo.h"
#include "veer/maps.h"

namespace veer {
namespace {

namespace fs = std::filesystem;

struct Member {
  const char* name;
  size_t offset;
};

struct Layout {
  const char* type;
  size_t size;
  std::vector<Member> members;
  const char* object = "veer_sock"; // the BPF object (build/bpf/<object>.bpf.o) using it
};

#define VEER_MEMBER(T, m)                                                                          \
  Member {                                                                                         \
#m, offsetof(T, m)                                                                             \
  }

const std::vector<Layout>& layouts() {
  static const std::vector<Layout> kLayouts = {
      {"veer_svc_key",
       sizeof(veer_svc_key),
       {VEER_MEMBER(veer_svc_key, addr), VEER_MEMBER(veer_svc_key, port),
        VEER_MEMBER(veer_svc_key, proto), VEER_MEMBER(veer_svc_key, gen)}},
      {"veer_service",
       sizeof(veer_service),
       {VEER_MEMBER(veer_service, svc_id), VEER_MEMBER(veer_service, n_versions),
        VEER_MEMBER(veer_service, flags), VEER_MEMBER(veer_service, affinity_timeout),
        VEER_MEMBER(veer_service, version_id), VEER_MEMBER(veer_service, slot),
        VEER_MEMBER(veer_service, lane_version)}},
      {"veer_version_key",
       sizeof(veer_version_key),
       {VEER_MEMBER(veer_version_key, id), VEER_MEMBER(veer_version_key, gen)}},
      {"veer_version",
       sizeof(veer_version),
       {VEER_MEMBER(veer_version, svc_id), VEER_MEMBER(veer_version, n_backends),
        VEER_MEMBER(veer_version, weight), VEER_MEMBER(veer_version, backend_id),
        VEER_MEMBER(veer_version, service), VEER_MEMBER(veer_version, subset)}},
      {"veer_maglev_ring",
       sizeof(veer_maglev_ring),
       {VEER_MEMBER(veer_maglev_ring, backend_index)}},
      {"veer_backend_key",
       sizeof(veer_backend_key),
       {VEER_MEMBER(veer_backend_key, id), VEER_MEMBER(veer_backend_key, gen)}},
      {"veer_backend",
       sizeof(veer_backend),
       {VEER_MEMBER(veer_backend, addr), VEER_MEMBER(veer_backend, port),
        VEER_MEMBER(veer_backend, family)}},
      {"veer_revnat_key",
       sizeof(veer_revnat_key),
       {VEER_MEMBER(veer_revnat_key, cookie), VEER_MEMBER(veer_revnat_key, addr),
        VEER_MEMBER(veer_revnat_key, port)}},
      {"veer_revnat",
       sizeof(veer_revnat),
       {VEER_MEMBER(veer_revnat, addr), VEER_MEMBER(veer_revnat, port)}},
      {"veer_sock_nat",
       sizeof(veer_sock_nat),
       {VEER_MEMBER(veer_sock_nat, backend), VEER_MEMBER(veer_sock_nat, service),
        VEER_MEMBER(veer_sock_nat, backend_port), VEER_MEMBER(veer_sock_nat, service_port),
        VEER_MEMBER(veer_sock_nat, flags)}},
      {"veer_proxy",
       sizeof(veer_proxy),
       {VEER_MEMBER(veer_proxy, listen4), VEER_MEMBER(veer_proxy, listen6),
        VEER_MEMBER(veer_proxy, mark), VEER_MEMBER(veer_proxy, ready),
        VEER_MEMBER(veer_proxy, routes_digest)}},
      {"veer_orig_key",
       sizeof(veer_orig_key),
       {VEER_MEMBER(veer_orig_key, addr), VEER_MEMBER(veer_orig_key, port)}},
      {"veer_orig_dst",
       sizeof(veer_orig_dst),
       {VEER_MEMBER(veer_orig_dst, addr), VEER_MEMBER(veer_orig_dst, port)}},
      {"veer_rr", sizeof(veer_rr), {VEER_MEMBER(veer_rr, next)}},
      {"veer_stats",
       sizeof(veer_stats),
       {VEER_MEMBER(veer_stats, connects), VEER_MEMBER(veer_stats, no_backend)}},
      {"veer_state",
       sizeof(veer_state),
       {VEER_MEMBER(veer_state, gen), VEER_MEMBER(veer_state, rejected),
        VEER_MEMBER(veer_state, applied), VEER_MEMBER(veer_state, digest)}},
      {"veer_member_key",
       sizeof(veer_member_key),
       {VEER_MEMBER(veer_member_key, version_id), VEER_MEMBER(veer_member_key, gen),
        VEER_MEMBER(veer_member_key, port), VEER_MEMBER(veer_member_key, addr)}},
      {"veer_affinity_key",
       sizeof(veer_affinity_key),
       {VEER_MEMBER(veer_affinity_key, client), VEER_MEMBER(veer_affinity_key, addr),
        VEER_MEMBER(veer_affinity_key, port), VEER_MEMBER(veer_affinity_key, proto)}},
      {"veer_affinity",
       sizeof(veer_affinity),
       {VEER_MEMBER(veer_affinity, last_used_ns), VEER_MEMBER(veer_affinity, backend),
        VEER_MEMBER(veer_affinity, backend_port)}},
      {"veer_lane_key",
       sizeof(veer_lane_key),
       {VEER_MEMBER(veer_lane_key, cgroup_id), VEER_MEMBER(veer_lane_key, gen)}},
      {"veer_lane", sizeof(veer_lane), {VEER_MEMBER(veer_lane, id)}},
      {"veer_recycle_key",
       sizeof(veer_recycle_key),
       {VEER_MEMBER(veer_recycle_key, addr), VEER_MEMBER(veer_recycle_key, backend),
        VEER_MEMBER(veer_recycle_key, port), VEER_MEMBER(veer_recycle_key, backend_port),
        VEER_MEMBER(veer_recycle_key, proto), VEER_MEMBER(veer_recycle_key, kind)},
       "veer_recycle"},
      {"veer_recycle", sizeof(veer_recycle), {VEER_MEMBER(veer_recycle, permille)}, "veer_recycle"},
      {"veer_sock_pair",
       sizeof(veer_sock_pair),
       {VEER_MEMBER(veer_sock_pair, local), VEER_MEMBER(veer_sock_pair, remote),
        VEER_MEMBER(veer_sock_pair, local_port), VEER_MEMBER(veer_sock_pair, remote_port)}},
      {"veer_accel", sizeof(veer_accel), {VEER_MEMBER(veer_accel, state)}},
      {"veer_accel_stats",
       sizeof(veer_accel_stats),
       {VEER_MEMBER(veer_accel_stats, sockets), VEER_MEMBER(veer_accel_stats, redirected),
        VEER_MEMBER(veer_accel_stats, redirected_bytes), VEER_MEMBER(veer_accel_stats, tcp)}},
  };
  return kLayouts;
}

fs::path bpfObject(const std::string& object) {
  return fs::read_symlink("/proc/self/exe").parent_path().parent_path() /
         ("bpf/" + object + ".bpf.o");
}

class BtfLayoutTest : public ::testing::TestWithParam<Layout> {
protected:
  static void TearDownTestSuite() {
    for (auto& [object, b] : btfs_) {
      btf__free(b);
    }
    btfs_.clear();
  }
  /** The BTF of a built BPF object, parsed once. */
  static btf* btfOf(const std::string& object) {
    auto it = btfs_.find(object);
    if (it == btfs_.end()) {
      it = btfs_.emplace(object, btf__parse(bpfObject(object).c_str(), nullptr)).first;
    }
    return it->second;
  }
  static inline std::map<std::string, btf*> btfs_;
};

TEST_P(BtfLayoutTest, MatchesTheBpfObject) {
  const Layout& l = GetParam();
  btf* types = btfOf(l.object);
  ASSERT_NE(types, nullptr) << "no BTF in " << bpfObject(l.object);
  const int id = btf__find_by_name_kind(types, l.type, BTF_KIND_STRUCT);
  ASSERT_GT(id, 0) << "struct " << l.type << " not in the BPF object's BTF";
  const btf_type* t = btf__type_by_id(types, id);
  EXPECT_EQ(t->size, l.size) << l.type;
  const btf_member* m = btf_members(t);
  for (const Member& want : l.members) {
    bool found = false;
    for (int i = 0; i < btf_vlen(t); ++i) {
      if (std::string(btf__name_by_offset(types, m[i].name_off)) == want.name) {
        found = true;
        EXPECT_EQ(btf_member_bit_offset(t, i), want.offset * 8) << l.type << "." << want.name;
      }
    }
    EXPECT_TRUE(found) << l.type << "." << want.name << " missing from BTF";
  }
}

// A struct added to the shared header without a layout above would go unchecked.
TEST(BtfLayout, EveryStructOfTheSharedHeaderIsChecked) {
  const fs::path header = test::repo() / "include/veer/maps.h";
  std::ifstream in(header);
  ASSERT_TRUE(in) << header;
  std::set<std::string> declared, checked;
  const std::regex decl(R"(^struct (veer_[a-z0-9_]+) \{)");
  for (std::string line; std::getline(in, line);) {
    std::smatch m;
    if (std::regex_search(line, m, decl)) {
      declared.insert(m[1]);
    }
  }
  for (const Layout& l : layouts()) {
    checked.insert(l.type);
  }
  EXPECT_GE(declared.size(), 20u) << "the header's structs were not found in " << header;
  EXPECT_EQ(declared, checked);
}

INSTANTIATE_TEST_SUITE_P(SharedStructs, BtfLayoutTest, ::testing::ValuesIn(layouts()),
                         [](const auto& info) { return std::string(info.param.type); });

} // namespace
} // namespace veer
