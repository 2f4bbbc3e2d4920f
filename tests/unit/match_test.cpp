// Istio request matching (config/match.h), one table row per operator and condition:
// what CompiledMatch accepts and rejects, and the reason explain prints on a miss.

#include <gtest/gtest.h>

#include <functional>

#include "config/match.h"

namespace veer {
namespace {

/** A request with owned storage. */
struct Req {
  std::string method = "GET";
  std::string target = "/";
  std::string authority = "reviews";
  uint16_t port = 9080;
  std::vector<std::pair<std::string, std::string>> headers;
  bool hasClient = false;
  std::string clientNs = "default";
  Labels clientLabels;
};

struct Case {
  const char* description;
  std::function<void(HttpMatch&)> match;
  Req req;
  bool expected;
  const char* why = ""; // the reason on a miss, when checked
};

void PrintTo(const Case& c, std::ostream* os) {
  *os << c.description;
}

StringMatch sm(StringMatch::Op op, std::string v) {
  StringMatch m;
  m.op = op;
  m.value = std::move(v);
  return m;
}

KeyMatch km(std::string key, StringMatch::Op op, std::string v) {
  return KeyMatch{std::move(key), sm(op, std::move(v)), false};
}

KeyMatch present(std::string key) {
  return KeyMatch{std::move(key), {}, true};
}

using Op = StringMatch::Op;

class MatchTable : public ::testing::TestWithParam<Case> {};

TEST_P(MatchTable, Matches) {
  const Case& c = GetParam();
  HttpMatch m;
  m.field = "spec.http[0].match[0]";
  c.match(m);
  auto cm = CompiledMatch::compile(m);
  ASSERT_TRUE(cm) << cm.error().message;
  Req r = c.req;
  std::vector<HeaderField> fields;
  for (const auto& [k, v] : r.headers) {
    fields.push_back(HeaderField{k, v});
  }
  RequestView view;
  view.method = r.method;
  splitTarget(r.target, view);
  view.authority = r.authority;
  view.port = r.port;
  view.headers = fields;
  ClientView client{r.clientNs, "client", &r.clientLabels};
  if (r.hasClient) {
    view.client = &client;
  }
  std::string why;
  EXPECT_EQ(cm->matches(view, &why), c.expected) << c.description << ": " << why;
  if (!c.expected && *c.why != '\0') {
    EXPECT_EQ(why, c.why);
  }
  EXPECT_EQ(cm->matches(view), c.expected) << "the reason must not change the answer";
}

INSTANTIATE_TEST_SUITE_P(
    Istio, MatchTable,
    ::testing::Values(
        Case{"no condition matches everything", [](HttpMatch&) {}, Req{}, true},
        Case{"uri exact", [](HttpMatch& m) { m.uri = sm(Op::kExact, "/productpage"); },
             Req{.target = "/productpage"}, true},
        Case{"uri exact ignores the query string",
             [](HttpMatch& m) { m.uri = sm(Op::kExact, "/productpage"); },
             Req{.target = "/productpage?u=normal"}, true},
        Case{"uri exact is not a prefix", [](HttpMatch& m) { m.uri = sm(Op::kExact, "/p"); },
             Req{.target = "/p/x"}, false, "uri '/p/x' is not exact '/p'"},
        Case{"uri prefix", [](HttpMatch& m) { m.uri = sm(Op::kPrefix, "/static"); },
             Req{.target = "/static/css/a.css"}, true},
        Case{"uri prefix of absolute-form target",
             [](HttpMatch& m) { m.uri = sm(Op::kPrefix, "/api/v1"); },
             Req{.target = "http://reviews:9080/api/v1/products?x=1"}, true},
        Case{"uri regex full match", [](HttpMatch& m) { m.uri = sm(Op::kRegex, "/api/v[0-9]+"); },
             Req{.target = "/api/v12"}, true},
        Case{"uri regex partial is a miss", [](HttpMatch& m) { m.uri = sm(Op::kRegex, "/api"); },
             Req{.target = "/api/v1"}, false},
        Case{"ignoreUriCase exact",
             [](HttpMatch& m) {
               m.uri = sm(Op::kExact, "/Login");
               m.ignoreUriCase = true;
             },
             Req{.target = "/LOGIN"}, true},
        Case{"ignoreUriCase prefix",
             [](HttpMatch& m) {
               m.uri = sm(Op::kPrefix, "/static");
               m.ignoreUriCase = true;
             },
             Req{.target = "/STATIC/x"}, true},
        Case{"uri case matters by default", [](HttpMatch& m) { m.uri = sm(Op::kExact, "/login"); },
             Req{.target = "/LOGIN"}, false},
        Case{"method exact", [](HttpMatch& m) { m.method = sm(Op::kExact, "POST"); },
             Req{.method = "POST"}, true},
        Case{"method mismatch", [](HttpMatch& m) { m.method = sm(Op::kExact, "POST"); }, Req{},
             false, "method 'GET' is not exact 'POST'"},
        Case{"authority prefix", [](HttpMatch& m) { m.authority = sm(Op::kPrefix, "reviews"); },
             Req{.authority = "reviews.default.svc:9080"}, true},
        Case{"scheme of origin-form is http",
             [](HttpMatch& m) { m.scheme = sm(Op::kExact, "http"); }, Req{}, true},
        Case{"scheme https needs it", [](HttpMatch& m) { m.scheme = sm(Op::kExact, "https"); },
             Req{}, false},
        Case{"header exact",
             [](HttpMatch& m) { m.headers = {km("end-user", Op::kExact, "jason")}; },
             Req{.headers = {{"End-User", "jason"}}}, true},
        Case{"header absent",
             [](HttpMatch& m) { m.headers = {km("end-user", Op::kExact, "jason")}; }, Req{}, false,
             "header end-user is absent"},
        Case{"header value case-sensitive",
             [](HttpMatch& m) { m.headers = {km("end-user", Op::kExact, "jason")}; },
             Req{.headers = {{"end-user", "Jason"}}}, false,
             "header end-user 'Jason' is not exact 'jason'"},
        Case{"header prefix", [](HttpMatch& m) { m.headers = {km("x-env", Op::kPrefix, "gray")}; },
             Req{.headers = {{"x-env", "gray-2"}}}, true},
        Case{"header present {}", [](HttpMatch& m) { m.headers = {present("x-canary")}; },
             Req{.headers = {{"x-canary", ""}}}, true},
        Case{"header present {} absent", [](HttpMatch& m) { m.headers = {present("x-canary")}; },
             Req{}, false},
        Case{"headers are ANDed",
             [](HttpMatch& m) { m.headers = {km("a", Op::kExact, "1"), km("b", Op::kExact, "2")}; },
             Req{.headers = {{"a", "1"}, {"b", "3"}}}, false},
        Case{"repeated header joined with commas",
             [](HttpMatch& m) { m.headers = {km("x-tag", Op::kExact, "a,b")}; },
             Req{.headers = {{"x-tag", "a"}, {"X-Tag", "b"}}}, true},
        Case{
            "cookie regex anywhere in the cookie header",
            [](HttpMatch&
                   m) { m.headers = {km("cookie", Op::kRegex, ".*reviews-cookie.*REVIRES-V2.*")}; },
            Req{.headers = {{"Cookie", "a=1; reviews-cookie=REVIRES-V2; b=2"}}}, true},
        Case{"cookie across two cookie headers joined with '; '",
             [](HttpMatch&
                    m) { m.headers = {km("cookie", Op::kRegex, "^(.*?; )?(user=test)(;.*)?$")}; },
             Req{.headers = {{"cookie", "a=1"}, {"cookie", "user=test"}}}, true},
        Case{"cookie regex miss",
             [](HttpMatch& m) { m.headers = {km("cookie", Op::kRegex, ".*REVIRES-V2.*")}; },
             Req{.headers = {{"cookie", "reviews-cookie=V1"}}}, false},
        Case{"withoutHeaders exact excludes",
             [](HttpMatch& m) { m.withoutHeaders = {km("end-user", Op::kExact, "jason")}; },
             Req{.headers = {{"end-user", "jason"}}}, false,
             "header end-user 'jason' must not be exact 'jason'"},
        Case{"withoutHeaders other value passes",
             [](HttpMatch& m) { m.withoutHeaders = {km("end-user", Op::kExact, "jason")}; },
             Req{.headers = {{"end-user", "bob"}}}, true},
        Case{"withoutHeaders absent passes",
             [](HttpMatch& m) { m.withoutHeaders = {km("end-user", Op::kExact, "jason")}; }, Req{},
             true},
        Case{"withoutHeaders {} means absent",
             [](HttpMatch& m) { m.withoutHeaders = {present("x-debug")}; },
             Req{.headers = {{"x-debug", "1"}}}, false},
        Case{"query param exact",
             [](HttpMatch& m) { m.queryParams = {km("u", Op::kExact, "test")}; },
             Req{.target = "/p?a=1&u=test"}, true},
        Case{"query param first occurrence",
             [](HttpMatch& m) { m.queryParams = {km("u", Op::kExact, "test")}; },
             Req{.target = "/p?u=x&u=test"}, false},
        Case{"query param regex",
             [](HttpMatch& m) { m.queryParams = {km("id", Op::kRegex, "[0-9]+")}; },
             Req{.target = "/p?id=42"}, true},
        Case{"query param absent", [](HttpMatch& m) { m.queryParams = {present("debug")}; },
             Req{.target = "/p?x=1"}, false, "query parameter debug is absent"},
        Case{"query param present without value",
             [](HttpMatch& m) { m.queryParams = {present("debug")}; }, Req{.target = "/p?debug"},
             true},
        Case{"port matches", [](HttpMatch& m) { m.port = 9080; }, Req{}, true},
        Case{"port mismatch", [](HttpMatch& m) { m.port = 8080; }, Req{}, false,
             "port 9080 is not 8080"},
        Case{"sourceLabels match the client pod",
             [](HttpMatch& m) { m.sourceLabels = {{"app", "productpage"}}; },
             Req{.hasClient = true, .clientLabels = {{"app", "productpage"}, {"version", "v2"}}},
             true},
        Case{"sourceLabels need every label",
             [](HttpMatch& m) { m.sourceLabels = {{"app", "productpage"}, {"version", "v1"}}; },
             Req{.hasClient = true, .clientLabels = {{"app", "productpage"}, {"version", "v2"}}},
             false},
        Case{"sourceLabels with an unknown client",
             [](HttpMatch& m) { m.sourceLabels = {{"app", "x"}}; }, Req{}, false},
        Case{"sourceNamespace", [](HttpMatch& m) { m.sourceNamespace = "default"; },
             Req{.hasClient = true}, true},
        Case{"sourceNamespace other", [](HttpMatch& m) { m.sourceNamespace = "prod"; },
             Req{.hasClient = true}, false, "client is not in namespace prod"},
        Case{"gateways without mesh never match mesh traffic",
             [](HttpMatch& m) { m.gateways = {"bookinfo-gateway"}; }, Req{}, false},
        Case{"gateways with mesh", [](HttpMatch& m) { m.gateways = {"bookinfo-gateway", "mesh"}; },
             Req{}, true}));

TEST(Match, BadRegexIsAnErrorNamingTheField) {
  HttpMatch m;
  m.field = "spec.http[2].match[0]";
  m.headers = {km("cookie", Op::kRegex, "(")};
  auto cm = CompiledMatch::compile(m);
  ASSERT_FALSE(cm);
  EXPECT_NE(cm.error().message.find("spec.http[2].match[0].headers[cookie]: bad regex '('"),
            std::string::npos)
      << cm.error().message;
}

TEST(Match, CookieByName) {
  std::vector<HeaderField> h = {{"Cookie", "a=1; session=\"abc\" ; reviews-cookie=V2"}};
  RequestView v;
  v.headers = h;
  EXPECT_EQ(v.cookie("session").value_or("-"), "abc");
  EXPECT_EQ(v.cookie("reviews-cookie").value_or("-"), "V2");
  EXPECT_FALSE(v.cookie("ession"));
}

TEST(Lane, TagHeaderThenContextHeaderNamingALaneThenPodLabel) {
  std::vector<TrafficLabel::Source> sources = {
      {TrafficLabel::Source::Kind::kContext, "x-request-id", {}},
      {TrafficLabel::Source::Kind::kLocalLabel, kAsmTrafficTag, {}}};
  std::vector<std::string> lanes = {"gray", "prod"};
  Labels gray = {{kAsmTrafficTag, "gray"}};
  ClientView client{"default", "productpage-v2", &gray};
  auto lane = [&](std::vector<HeaderField> headers, bool withClient) {
    RequestView v;
    v.headers = headers;
    v.client = withClient ? &client : nullptr;
    LaneValue l = laneValue(sources, v, kDefaultTagHeader, lanes);
    return std::string(l.value) + "/" + std::to_string(static_cast<int>(l.from));
  };
  using F = LaneValue::From;
  auto want = [](const char* v, F f) {
    return std::string(v) + "/" + std::to_string(static_cast<int>(f));
  };
  EXPECT_EQ(lane({{"x-asm-prefer-tag", "prod"}, {"x-request-id", "gray"}}, true),
            want("prod", F::kTagHeader));
  EXPECT_EQ(lane({{"x-request-id", "gray"}}, false), want("gray", F::kHeader));
  EXPECT_EQ(lane({{"x-request-id", "9b2f0c1e-5d7a-4c1b-a3a4-0b1c2d3e4f50"}}, true),
            want("gray", F::kPodLabel))
      << "a request id that names no lane is not a lane";
  EXPECT_EQ(lane({}, true), want("gray", F::kPodLabel));
  EXPECT_EQ(lane({}, false), want("", F::kNone));
  EXPECT_EQ(lane({{"x-asm-prefer-tag", ""}}, false), want("", F::kNone)) << "empty tag is no tag";
}

} // namespace
} // namespace veer
