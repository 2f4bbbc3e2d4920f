// common/files.h: the private directories and atomic writes that keep what veer writes
// (routes.json, pins) out of other users' reach, and the excerpt a log quotes a file by.

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "common/files.h"
#include "common/strings.h"

namespace veer {
namespace {

namespace fs = std::filesystem;

class FilesTest : public ::testing::Test {
protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "veer-files-test-XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  static mode_t modeOf(const fs::path& p) {
    struct stat st {};
    EXPECT_EQ(lstat(p.c_str(), &st), 0) << p;
    return st.st_mode & 07777;
  }
  fs::path dir_;
};

// The run directory: new ones are 0700 whatever the umask; a wider one of ours narrows.
TEST_F(FilesTest, PrivateDirCreatedOrNarrowedTo0700) {
  const mode_t old = umask(0);
  const fs::path run = dir_ / "run";
  ASSERT_TRUE(ensurePrivateDir(run.string()));
  EXPECT_EQ(modeOf(run), 0700u);
  fs::permissions(run, fs::perms::all);
  ASSERT_TRUE(ensurePrivateDir(run.string()));
  EXPECT_EQ(modeOf(run), 0700u);
  umask(old);
}

// Issue 21 M8: a pin directory an unprivileged user made first was taken as veer's.
TEST_F(FilesTest, PrivateDirOwnedByAnotherUserRefused) {
  if (geteuid() != 0) {
    GTEST_SKIP() << "needs root to give a directory away";
  }
  const fs::path pins = dir_ / "veer";
  ASSERT_EQ(mkdir(pins.c_str(), 0777), 0);
  ASSERT_EQ(chmod(pins.c_str(), 0777), 0); // past the umask
  ASSERT_EQ(chown(pins.c_str(), 65534, 65534), 0);
  Status s = ensurePrivateDir(pins.string());
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().message, pins.string() + " is owned by uid 65534, not uid 0 (mode 0777): "
                                               "refused; whoever owns it can swap what is "
                                               "inside (remove it)");
  EXPECT_EQ(modeOf(pins), 0777u) << "refused means untouched";
}

TEST_F(FilesTest, PrivateDirRefusesASymlinkAndAnOpenParent) {
  fs::create_directory(dir_ / "real");
  fs::create_directory_symlink(dir_ / "real", dir_ / "link");
  Status s = ensurePrivateDir((dir_ / "link").string());
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("a symlink is refused"), std::string::npos) << s.error().message;
  // A parent anyone may write to, without the sticky bit: the directory could be renamed
  // away and another put in its place.
  fs::create_directory(dir_ / "open");
  fs::permissions(dir_ / "open", fs::perms::all);
  s = ensurePrivateDir((dir_ / "open" / "veer").string());
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("(uid 0, mode 0777) lets another user replace it"),
            std::string::npos)
      << s.error().message;
  fs::permissions(dir_ / "open", fs::perms::sticky_bit, fs::perm_options::add);
  EXPECT_TRUE(ensurePrivateDir((dir_ / "open" / "veer").string())); // like /tmp
}

// Issue 21 M9: routes.json was 0644. The new file has the mode asked for, whatever the
// umask, and replaces the old one whole.
TEST_F(FilesTest, AtomicWriteHasTheModeAskedFor) {
  const mode_t old = umask(0);
  const fs::path routes = dir_ / "routes.json";
  std::ofstream(routes) << "old";
  fs::permissions(routes, fs::perms::all);
  ASSERT_TRUE(writeFileAtomically(routes.string(), "{\"new\": true}", 0600));
  umask(old);
  EXPECT_EQ(modeOf(routes), 0600u);
  Result<std::string> text = readFile(routes.string());
  ASSERT_TRUE(text);
  EXPECT_EQ(*text, "{\"new\": true}");
  EXPECT_FALSE(fs::exists(dir_ / "routes.json.tmp"));
}

TEST(Excerpt, ShortEscapedAndIdempotent) {
  EXPECT_EQ(excerpt("plain", 40), "plain");
  EXPECT_EQ(excerpt("a\nb\tc\x1b[0m\xff", 40), "a\\nb\\tc\\x1b[0m\\xff");
  EXPECT_EQ(excerpt(std::string(100, 'x'), 10), "xxxxxxxxxx... (100 bytes)");
  const std::string once = excerpt("a\nb\x01", 40);
  EXPECT_EQ(excerpt(once, 40), once);
}

} // namespace
} // namespace veer
