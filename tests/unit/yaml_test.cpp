// The YAML tree the loader walks (config/yaml.h): libyaml's events built into one
// arena per document. Checked for what the loader relies on: scalars and nulls, order
// and duplicates of map keys, marks, anchors and aliases, errors with positions, and
// depth that costs heap rather than stack.

#include <gtest/gtest.h>
#include <pthread.h>

#include <chrono>
#include <string>

#include "config/yaml.h"

namespace veer::yaml {
namespace {

Node parseOk(Document& doc, const std::string& text) {
  ParseError err;
  EXPECT_TRUE(parse(text, doc, err)) << err.message;
  return doc.root();
}

TEST(Yaml, MapsSequencesAndScalars) {
  Document doc;
  Node root = parseOk(doc, "kind: VirtualService\n"
                           "spec:\n"
                           "  hosts: [reviews, \"ratings\"]\n"
                           "  http:\n"
                           "  - route:\n"
                           "    - destination: {host: reviews, subset: v2}\n"
                           "      weight: 10\n");
  ASSERT_TRUE(root.isMap());
  ASSERT_EQ(root.entries().size(), 2u);
  EXPECT_EQ(root.entries()[0].first.scalar(), "kind");
  EXPECT_EQ(root.entries()[0].second.scalar(), "VirtualService");
  Node spec = root.entries()[1].second;
  ASSERT_TRUE(spec.isMap());
  Node hosts = spec.entries()[0].second;
  ASSERT_TRUE(hosts.isSequence());
  ASSERT_EQ(hosts.items().size(), 2u);
  EXPECT_EQ(hosts.items()[1].scalar(), "ratings");
  Node dest = spec.entries()[1].second.items()[0].entries()[0].second.items()[0];
  ASSERT_TRUE(dest.isMap());
  EXPECT_EQ(dest.entries()[0].second.entries()[1].second.scalar(), "v2");
  EXPECT_EQ(dest.entries()[1].second.scalar(), "10");
  // A scalar's text ends in a NUL, for C parsers.
  EXPECT_EQ(dest.entries()[1].second.scalar().data()[2], '\0');
  // Asking a node for what it is not gives nothing.
  EXPECT_TRUE(root.items().empty());
  EXPECT_TRUE(hosts.entries().empty());
  EXPECT_EQ(hosts.scalar(), "");
  EXPECT_FALSE(Node().isDefined());
  EXPECT_TRUE(Node().entries().empty());
}

TEST(Yaml, NullsAndQuotedNulls) {
  Document doc;
  Node root = parseOk(doc, "a:\nb: ~\nc: null\nd: NULL\ne: 'null'\nf: \"\"\n");
  const auto& e = root.entries();
  ASSERT_EQ(e.size(), 6u);
  for (int i = 0; i < 4; ++i) {
    EXPECT_TRUE(e[i].second.isNull()) << i;
  }
  EXPECT_TRUE(e[4].second.isScalar()); // quoted: the text null
  EXPECT_EQ(e[4].second.scalar(), "null");
  EXPECT_TRUE(e[5].second.isScalar()); // quoted empty: an empty string, not null
  EXPECT_EQ(e[5].second.scalar(), "");
}

TEST(Yaml, KeysKeepFileOrderAndDuplicates) {
  Document doc;
  Node root = parseOk(doc, "z: 1\na: 2\nz: 3\n");
  const auto& e = root.entries();
  ASSERT_EQ(e.size(), 3u); // the loader reports the duplicate; the tree keeps it
  EXPECT_EQ(e[0].first.scalar(), "z");
  EXPECT_EQ(e[1].first.scalar(), "a");
  EXPECT_EQ(e[2].second.scalar(), "3");
}

TEST(Yaml, MarksAreZeroBasedLineAndColumn) {
  Document doc;
  Node root = parseOk(doc, "spec:\n  hosts:\n    - reviews\n");
  Node item = root.entries()[0].second.entries()[0].second.items()[0];
  EXPECT_EQ(item.mark().line, 2);
  EXPECT_EQ(item.mark().column, 6);
  EXPECT_TRUE(Node().mark().isNull());
}

TEST(Yaml, AliasesReferToCompleteAnchors) {
  Document doc;
  Node root = parseOk(doc, "base: &b {host: reviews}\ncopy: *b\nname: &n v1\nagain: *n\n");
  const auto& e = root.entries();
  ASSERT_EQ(e.size(), 4u);
  EXPECT_EQ(e[1].second.entries()[0].second.scalar(), "reviews");
  EXPECT_EQ(e[3].second.scalar(), "v1");
  // An alias inside its own anchor's collection would make a cycle: refused.
  Document bad;
  ParseError err;
  EXPECT_FALSE(parse("a: &x [1, *x]\n", bad, err));
  EXPECT_NE(err.message.find("unknown anchor *x"), std::string::npos) << err.message;
}

TEST(Yaml, ErrorsSayWhereAndWhy) {
  Document doc;
  ParseError err;
  EXPECT_FALSE(parse("a: [1, 2\nb: 3\n", doc, err));
  EXPECT_FALSE(err.message.empty());
  EXPECT_FALSE(err.mark.isNull());
  EXPECT_NE(err.context.find("flow sequence"), std::string::npos) << err.context;
  EXPECT_EQ(err.contextMark.line, 0);
  Document two;
  ParseError err2;
  EXPECT_FALSE(parse("a: 1\n---\nb: 2\n", two, err2));
  EXPECT_EQ(err2.message, "more than one document");
  EXPECT_EQ(err2.mark.line, 1);
}

TEST(Yaml, EmptyTextIsANullRoot) {
  Document doc;
  Node root = parseOk(doc, "");
  EXPECT_TRUE(root.isNull());
  EXPECT_TRUE(root.mark().isNull());
}

// kMaxDepth levels parsed on a thread with a 128 KiB stack: a builder that recursed per
// level would need far more (libyaml itself keeps its stacks on the heap).
TEST(Yaml, DeepNestingCostsHeapNotStack) {
  struct Job {
    int depth = 0;
    bool parsed = false;
    std::string last;
  } job;
  constexpr int kDepth = static_cast<int>(kMaxDepth);
  auto run = [](void* arg) -> void* {
    auto* j = static_cast<Job*>(arg);
    std::string text(kDepth, '[');
    text += "x";
    text.append(kDepth, ']');
    Document doc;
    ParseError err;
    j->parsed = parse(text, doc, err);
    Node n = doc.root();
    while (n.isSequence() && n.items().size() == 1) {
      n = n.items()[0];
      ++j->depth;
    }
    j->last = std::string(n.scalar());
    return nullptr;
  };
  pthread_attr_t attr;
  ASSERT_EQ(pthread_attr_init(&attr), 0);
  ASSERT_EQ(pthread_attr_setstacksize(&attr, 128 * 1024), 0);
  pthread_t t;
  ASSERT_EQ(pthread_create(&t, &attr, run, &job), 0);
  ASSERT_EQ(pthread_join(t, nullptr), 0);
  pthread_attr_destroy(&attr);
  EXPECT_TRUE(job.parsed);
  EXPECT_EQ(job.depth, kDepth);
  EXPECT_EQ(job.last, "x");
}

/** Parses text, expecting a rejection; returns the error and how long it took. */
std::pair<ParseError, double> rejectTimed(const std::string& text) {
  const auto start = std::chrono::steady_clock::now();
  Document doc;
  ParseError err;
  EXPECT_FALSE(parse(text, doc, err));
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  return {err, took.count()};
}

// Issue 21: 200 KB of "[" took 27.7 s to reject (libyaml's scanner walks every open flow
// level per token). One level past kMaxDepth is refused where it opens, at once.
TEST(Yaml, NestingPastTheLimitIsRefusedAtOnce) {
  for (const std::string open : {"[", "{a: ", "- "}) {
    SCOPED_TRACE(open);
    std::string text;
    while (text.size() < 200 * 1024) {
      text += open;
    }
    auto [err, seconds] = rejectTimed(text);
    EXPECT_LT(seconds, 1.0);
    EXPECT_NE(err.message.find("nesting deeper than 64 levels"), std::string::npos) << err.message;
    EXPECT_EQ(err.mark.line, 0);
    EXPECT_EQ(err.mark.column, static_cast<int>(kMaxDepth * open.size()));
  }
}

// Block nesting: indentation, one level per line.
TEST(Yaml, BlockNestingPastTheLimitIsRefusedAtItsLine) {
  std::string text;
  for (size_t i = 0; i <= kMaxDepth; ++i) {
    text += std::string(i, ' ') + "k:\n";
  }
  text += std::string(kMaxDepth + 1, ' ') + "v\n";
  auto [err, seconds] = rejectTimed(text);
  EXPECT_NE(err.message.find("nesting deeper than"), std::string::npos) << err.message;
  EXPECT_EQ(err.mark.line, static_cast<int>(kMaxDepth));
  Document doc;
  text.clear();
  for (size_t i = 0; i + 1 < kMaxDepth; ++i) {
    text += std::string(i, ' ') + "k:\n";
  }
  EXPECT_TRUE(parseOk(doc, text).isMap());
}

// "Billion laughs": nine levels of ten aliases each stand for 10^9 nodes in a few hundred
// bytes. Each alias counts as what it stands for, so the text is refused near its start.
TEST(Yaml, AliasExpansionPastTheLimitIsRefused) {
  std::string text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
  for (int i = 1; i < 10; ++i) {
    const std::string prev = "*a" + std::to_string(i - 1);
    text += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int j = 0; j < 10; ++j) {
      text += (j > 0 ? ", " : "") + prev;
    }
    text += "]\n";
  }
  auto [err, seconds] = rejectTimed(text);
  EXPECT_LT(seconds, 1.0);
  EXPECT_NE(err.message.find("aliases expand to more than 100000 nodes"), std::string::npos)
      << err.message;
  EXPECT_EQ(err.mark.line, 4); // a4 alone stands for 111,111 nodes
  // A few aliases of a real config's size are fine.
  Document doc;
  EXPECT_TRUE(parseOk(doc, "a: &r {host: reviews, subset: v1}\nb: [*r, *r, *r]\n").isMap());
}

} // namespace
} // namespace veer::yaml
