// Golden plans: every step of every seed scenario in configs/ renders to the text
// checked in at configs/<seed>/golden/<step>.plan (diagnostics, then the plan).
// A change to the plan output is a visible diff. Regenerate with UPDATE_GOLDEN=1.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "config/loader.h"
#include "config/resolve.h"
#include "config/plan_text.h"
#include "unit/repo.h"

namespace veer {
namespace {

namespace fs = std::filesystem;

using test::repo;

struct Step {
  std::string seed; // "002-sticky-canary"
  std::string step; // "01-cookie-90-10"
};

void PrintTo(const Step& s, std::ostream* os) {
  *os << s.seed << "/" << s.step;
}

// Seeds are configs/NNN-... directories with steps/; each step is one golden.
std::vector<Step> steps() {
  std::vector<Step> out;
  for (const auto& d : fs::directory_iterator(repo() / "configs")) {
    std::string name = d.path().filename().string();
    if (!d.is_directory() || name.size() < 4 || !std::isdigit(name[0]) ||
        !fs::exists(d.path() / "steps")) {
      continue;
    }
    for (const auto& f : fs::directory_iterator(d.path() / "steps")) {
      if (f.path().extension() == ".yaml") {
        out.push_back(Step{name, f.path().stem().string()});
      }
    }
  }
  std::sort(out.begin(), out.end(),
            [](const Step& a, const Step& b) { return a.seed + a.step < b.seed + b.step; });
  return out;
}

/**
 * The inputs of one step, relative to the repo: the seed's inventory.yaml (or
 * Bookinfo's), the seed's top-level files, then the step.
 */
std::vector<std::string> inputs(const Step& s) {
  std::string dir = "configs/" + s.seed;
  std::vector<std::string> out;
  out.push_back(fs::exists(repo() / dir / "inventory.yaml") ? dir + "/inventory.yaml"
                                                            : "configs/bookinfo/inventory.yaml");
  std::vector<std::string> top;
  for (const auto& f : fs::directory_iterator(repo() / dir)) {
    if (f.is_regular_file() && f.path().extension() == ".yaml" &&
        f.path().filename() != "inventory.yaml") {
      top.push_back(dir + "/" + f.path().filename().string());
    }
  }
  std::sort(top.begin(), top.end());
  out.insert(out.end(), top.begin(), top.end());
  out.push_back(dir + "/steps/" + s.step + ".yaml");
  return out;
}

std::string render(const Step& s) {
  fs::path old = fs::current_path();
  fs::current_path(repo()); // relative paths in diagnostics
  LoadResult l = loadPaths(inputs(s));
  fs::current_path(old);
  std::string out = "# inputs:";
  for (const auto& i : inputs(s)) {
    out += " " + i;
  }
  out += "\n";
  for (const auto& d : l.diags) {
    out += d.format() + "\n";
  }
  if (hasErrors(l.diags)) {
    return out + "rejected\n";
  }
  ResolveResult r = resolve(l.config);
  for (const auto& d : r.diags) {
    out += d.format() + "\n";
  }
  if (hasErrors(r.diags)) {
    return out + "rejected\n";
  }
  return out + renderPlan(r.plan);
}

class Golden : public ::testing::TestWithParam<Step> {};

TEST_P(Golden, PlanMatchesCheckedInText) {
  const Step& s = GetParam();
  fs::path golden = repo() / "configs" / s.seed / "golden" / (s.step + ".plan");
  std::string got = render(s);
  const char* update = std::getenv("UPDATE_GOLDEN");
  if (update != nullptr && std::string(update) == "1") {
    fs::create_directories(golden.parent_path());
    std::ofstream(golden, std::ios::binary) << got;
    return;
  }
  std::ifstream in(golden, std::ios::binary);
  ASSERT_TRUE(in) << golden << " missing; run UPDATE_GOLDEN=1 build/bin/veer-unit-tests";
  std::stringstream want;
  want << in.rdbuf();
  EXPECT_EQ(got, want.str()) << "plan of " << s.seed << "/" << s.step
                             << " changed; if intended, run UPDATE_GOLDEN=1 "
                                "build/bin/veer-unit-tests --gtest_filter='Seeds/Golden.*' and "
                                "review the diff";
}

INSTANTIATE_TEST_SUITE_P(Seeds, Golden, ::testing::ValuesIn(steps()), [](const auto& info) {
  std::string n = info.param.seed.substr(0, 3) + "_" + info.param.step;
  std::replace_if(
      n.begin(), n.end(), [](char ch) { return !std::isalnum(ch); }, '_');
  return n;
});

TEST(Golden, EveryGoldenHasAStep) {
  // A golden left behind by a renamed step would never be checked.
  auto all = steps();
  for (const auto& d : fs::directory_iterator(repo() / "configs")) {
    if (!fs::exists(d.path() / "golden")) {
      continue;
    }
    for (const auto& g : fs::directory_iterator(d.path() / "golden")) {
      std::string stem = g.path().stem().string();
      std::string seed = d.path().filename().string();
      bool found = std::any_of(all.begin(), all.end(),
                               [&](const Step& s) { return s.seed == seed && s.step == stem; });
      EXPECT_TRUE(found) << g.path();
    }
  }
}

} // namespace
} // namespace veer
