// Issue 21 M8: the pin tree and the hooks veer attaches to are its trust boundary. A pin
// directory an unprivileged user made first, or links whose pins were moved away, once let a
// restarted agent attach a second program set while the first kept serving. Each test has
// its own bpffs mount and its own empty cgroup (no process in it, so no traffic).

#include <gtest/gtest.h>

#include <bpf/bpf.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <sys/mount.h>
#include <unistd.h>

#include <filesystem>

#include "common/files.h"
#include "datapath/datapath.h"
#include "datapath/maps.h"
#include "datapath/mounts.h"

namespace veer {
namespace {

namespace fs = std::filesystem;

class PinsTest : public ::testing::Test {
protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "veer-pins-test-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    tmp_ = tmpl;
    bpffs_ = tmp_ / "bpf";
    ASSERT_TRUE(ensureBpffs(bpffs_.string()));
    Result<std::string> root = findOrMountCgroup2();
    ASSERT_TRUE(root) << root.error().message;
    cgroup_ = fs::path(*root) / tmp_.filename();
    ASSERT_EQ(mkdir(cgroup_.c_str(), 0755), 0) << strerror(errno);
  }

  void TearDown() override {
    EXPECT_TRUE(Datapath::uninstall(bpffs_.string()));
    umount2(bpffs_.c_str(), MNT_DETACH);
    if (!cgroup_.empty()) {
      rmdir(cgroup_.c_str());
    }
    std::error_code ec;
    fs::remove_all(tmp_, ec);
  }

  /** Programs attached to the test cgroup's connect4 hook. */
  uint32_t connect4Programs() {
    Fd cg(open(cgroup_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    uint32_t ids[16];
    uint32_t count = 16;
    EXPECT_EQ(bpf_prog_query(cg.get(), BPF_CGROUP_INET4_CONNECT, 0, nullptr, ids, &count), 0);
    return count;
  }

  fs::path tmp_, bpffs_, cgroup_;
};

TEST_F(PinsTest, PinTreeOwnedByAnotherUserRefused) {
  const fs::path pins = bpffs_ / "veer";
  ASSERT_EQ(mkdir(pins.c_str(), 0777), 0);
  ASSERT_EQ(chown(pins.c_str(), 65534, 65534), 0);
  Result<std::unique_ptr<Datapath>> dp = Datapath::load(bpffs_.string(), false);
  ASSERT_FALSE(dp);
  EXPECT_NE(dp.error().message.find("pin directory: " + pins.string() + " is owned by uid 65534"),
            std::string::npos)
      << dp.error().message;
  EXPECT_TRUE(fs::is_empty(pins)) << "nothing pinned in a refused tree";
}

TEST_F(PinsTest, PinTreeIsRootsAnd0700) {
  Result<std::unique_ptr<Datapath>> dp = Datapath::load(bpffs_.string(), false);
  ASSERT_TRUE(dp) << dp.error().message;
  for (const std::string& dir :
       {veerPinDir(bpffs_.string()), mapPinDir(bpffs_.string()), linkPinDir(bpffs_.string())}) {
    struct stat st {};
    ASSERT_EQ(lstat(dir.c_str(), &st), 0) << dir;
    EXPECT_EQ(st.st_uid, 0u) << dir;
    EXPECT_EQ(st.st_mode & 07777, 0700u) << dir;
  }
}

// The links of a first agent pinned elsewhere (their directory renamed): a second agent
// would have attached a second set beside them. It refuses, and attaches nothing.
TEST_F(PinsTest, SecondProgramSetRefused) {
  {
    Result<std::unique_ptr<Datapath>> first = Datapath::load(bpffs_.string(), false);
    ASSERT_TRUE(first) << first.error().message;
    ASSERT_TRUE((*first)->attach(cgroup_.string()));
  }
  ASSERT_EQ(connect4Programs(), 1u);
  fs::rename(linkPinDir(bpffs_.string()), bpffs_ / "veer" / "moved");
  Result<std::unique_ptr<Datapath>> second = Datapath::load(bpffs_.string(), false);
  ASSERT_TRUE(second) << second.error().message;
  Status s = (*second)->attach(cgroup_.string());
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, EEXIST);
  EXPECT_NE(s.error().message.find("another veer program set serves cgroup_inet4_connect of " +
                                   cgroup_.string() + ": veer_connect4 (prog id"),
            std::string::npos)
      << s.error().message;
  EXPECT_EQ(connect4Programs(), 1u) << "a second set was attached";
  // The first set's own restart (its pins where they were) is no second set.
  fs::remove_all(linkPinDir(bpffs_.string()));
  fs::rename(bpffs_ / "veer" / "moved", linkPinDir(bpffs_.string()));
  Result<std::unique_ptr<Datapath>> again = Datapath::load(bpffs_.string(), false);
  ASSERT_TRUE(again) << again.error().message;
  ASSERT_TRUE((*again)->attach(cgroup_.string()));
  EXPECT_EQ(connect4Programs(), 1u);
  EXPECT_TRUE((*again)->foreignPrograms().empty());
}

// Another program on a hook veer uses runs beside veer's: reported, not refused.
TEST_F(PinsTest, ForeignProgramOnAHookReported) {
  const bpf_insn allow[] = {
      {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 1},
      {.code = BPF_JMP | BPF_EXIT},
  };
  LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = BPF_CGROUP_INET4_CONNECT);
  Fd prog(bpf_prog_load(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, "other_connect4", "GPL", allow, 2, &opts));
  ASSERT_TRUE(prog) << strerror(errno);
  Fd cg(open(cgroup_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_EQ(bpf_prog_attach(prog.get(), cg.get(), BPF_CGROUP_INET4_CONNECT, BPF_F_ALLOW_MULTI), 0);
  Result<std::unique_ptr<Datapath>> dp = Datapath::load(bpffs_.string(), false);
  ASSERT_TRUE(dp) << dp.error().message;
  ASSERT_TRUE((*dp)->attach(cgroup_.string()));
  ASSERT_EQ((*dp)->foreignPrograms().size(), 1u);
  EXPECT_NE((*dp)->foreignPrograms()[0].find("other_connect4 (prog id "), std::string::npos);
  EXPECT_NE((*dp)->foreignPrograms()[0].find("on cgroup_inet4_connect of " + cgroup_.string()),
            std::string::npos)
      << (*dp)->foreignPrograms()[0];
  EXPECT_EQ(bpf_prog_detach2(prog.get(), cg.get(), BPF_CGROUP_INET4_CONNECT), 0);
}

} // namespace
} // namespace veer
