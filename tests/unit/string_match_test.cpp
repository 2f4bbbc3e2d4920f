// Table tests for each Istio StringMatch operator through stringMatches (match.h),
// the predicate explain and the L7 rules use: exact, prefix, regex (RE2 full match),
// with and without ignoreUriCase.

#include <gtest/gtest.h>

#include "config/plan_text.h"

namespace veer {
namespace {

struct Case {
  const char* description;
  StringMatch::Op op;
  const char* pattern;
  const char* input;
  bool ignoreCase;
  bool expected;
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.description;
}

class StringMatchTable : public ::testing::TestWithParam<Case> {};

TEST_P(StringMatchTable, Matches) {
  const Case& c = GetParam();
  StringMatch m;
  m.op = c.op;
  m.value = c.pattern;
  EXPECT_EQ(stringMatches(m, c.input, c.ignoreCase), c.expected)
      << c.description << ": " << m.opName() << " '" << c.pattern << "' vs '" << c.input << "'";
}

using Op = StringMatch::Op;

INSTANTIATE_TEST_SUITE_P(
    Istio, StringMatchTable,
    ::testing::Values(
        Case{"exact equal", Op::kExact, "jason", "jason", false, true},
        Case{"exact is case sensitive", Op::kExact, "jason", "Jason", false, false},
        Case{"exact ignoring case", Op::kExact, "jason", "JASON", true, true},
        Case{"exact is not a prefix", Op::kExact, "jason", "jason2", false, false},
        Case{"exact empty matches empty only", Op::kExact, "", "", false, true},
        Case{"prefix of a longer path", Op::kPrefix, "/blog", "/blog/post", false, true},
        Case{"prefix is textual, not per segment", Op::kPrefix, "/blog", "/blogs", false, true},
        Case{"prefix longer than input", Op::kPrefix, "/blog/post", "/blog", false, false},
        Case{"prefix ignoring case", Op::kPrefix, "/Blog", "/bLOG/x", true, true},
        Case{"prefix empty matches anything", Op::kPrefix, "", "/x", false, true},
        Case{"regex is a full match", Op::kRegex, "v[0-9]", "v2", false, true},
        Case{"regex partial match is not enough", Op::kRegex, "v[0-9]", "xv2", false, false},
        Case{"regex cookie pair anywhere", Op::kRegex, "^(.*?;)?(user=test)(;.*)?$",
             "a=1;user=test;b=2", false, true},
        Case{"regex ignoring case", Op::kRegex, "abc", "ABC", true, true},
        Case{"regex invalid never matches", Op::kRegex, "(", "(", false, false}));

} // namespace
} // namespace veer
