// veer-proxy's HTTP/1 layer without sockets: MessageParser events and limits, the
// smuggling vectors it must refuse, and the heads the proxy writes.

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "proxy/http.h"

namespace veer::proxy {
namespace {

struct Parsed {
  std::vector<ParseEvent> events;
  std::vector<std::string> targets;
  std::vector<std::string> bodies; // raw body bytes of each message, framing included
  int errorStatus = 0;
};

/** Drives a parser the way the engine does, feeding `step` bytes at a time. */
Parsed parseAll(std::string_view data, size_t step, MessageType type = MessageType::kRequest,
                Limits limits = {}) {
  MessageParser p;
  p.reset(type, limits);
  Parsed out;
  size_t msgStart = 0, parsePos = 0, avail = 0, bodyStart = 0;
  while (true) {
    if (parsePos == avail) {
      if (avail == data.size()) {
        break;
      }
      avail = std::min(data.size(), avail + step);
    }
    size_t used = 0;
    ParseEvent e = p.execute(data.data() + msgStart, parsePos - msgStart, avail - msgStart, &used);
    parsePos += used;
    if (e == ParseEvent::kNeedMore) {
      continue;
    }
    out.events.push_back(e);
    if (e == ParseEvent::kHead) {
      out.targets.emplace_back(type == MessageType::kRequest ? p.head().target : p.head().reason);
      bodyStart = parsePos;
    } else if (e == ParseEvent::kComplete) {
      out.bodies.emplace_back(data.substr(bodyStart, parsePos - bodyStart));
      msgStart = parsePos;
    } else {
      out.errorStatus = p.errorStatus();
      break;
    }
  }
  return out;
}

TEST(ProxyHttp, PipelinedRequestsSplitAtEveryByte) {
  std::string in = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                   "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                   "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "5\r\nhello\r\n0\r\nTrailer: t\r\n\r\n";
  for (size_t step : {size_t{1}, size_t{7}, in.size()}) {
    Parsed p = parseAll(in, step);
    ASSERT_EQ(p.events.size(), 6U) << "step " << step;
    EXPECT_EQ(p.targets, (std::vector<std::string>{"/a", "/b", "/c"}));
    EXPECT_EQ(p.bodies,
              (std::vector<std::string>{"", "hello", "5\r\nhello\r\n0\r\nTrailer: t\r\n\r\n"}));
  }
}

TEST(ProxyHttp, ResponsesInterimAndEofBody) {
  std::string in = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
  Parsed p = parseAll(in, 3, MessageType::kResponse);
  EXPECT_EQ(p.targets, (std::vector<std::string>{"Continue", "OK"}));
  EXPECT_EQ(p.bodies, (std::vector<std::string>{"", "hi"}));

  MessageParser eof;
  eof.reset(MessageType::kResponse, {});
  std::string r = "HTTP/1.1 200 OK\r\n\r\nuntil close";
  size_t used = 0;
  EXPECT_EQ(eof.execute(r.data(), 0, r.size(), &used), ParseEvent::kHead);
  EXPECT_EQ(eof.execute(r.data(), used, r.size(), &used), ParseEvent::kNeedMore);
  EXPECT_EQ(eof.finish(), ParseEvent::kComplete);
}

TEST(ProxyHttp, UpgradeStopsAtTheHead) {
  std::string in =
      "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
      "\x81\x05hello";
  Parsed p = parseAll(in, in.size());
  ASSERT_EQ(p.events.size(), 2U);
  EXPECT_EQ(p.events[1], ParseEvent::kUpgrade);
}

struct Bad {
  const char* name;
  std::string_view request;
  int status;
};

// One row per smuggling or hardening vector: every one must end in an error status,
// never in a forwarded head.
const Bad kBad[] = {
    {"cl-and-te",
     "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: "
     "chunked\r\n\r\n0\r\n\r\n",
     400},
    {"te-and-cl",
     "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: "
     "4\r\n\r\n0\r\n\r\n",
     400},
    {"duplicate-cl-same",
     "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400},
    {"duplicate-cl-differ",
     "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400},
    {"cl-list", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc", 400},
    {"cl-negative", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400},
    {"cl-plus", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc", 400},
    {"cl-space-before-colon", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length : 3\r\n\r\nabc", 400},
    {"te-space-before-colon",
     "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400},
    {"te-gzip-chunked",
     "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501},
    {"te-not-chunked-last",
     "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n", 501},
    {"te-twice",
     "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
     "chunked\r\n\r\n0\r\n\r\n",
     501},
    {"te-in-http10", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
    {"te-xchunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n", 501},
    {"bad-chunk-size",
     "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
     400},
    {"chunk-size-overflow",
     "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n", 400},
    {"chunk-missing-crlf",
     "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n", 400},
    {"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400},
    {"ctl-in-value",
     "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01"
     "b\r\n\r\n",
     400},
    {"nul-in-value", std::string_view("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n", 37), 400},
    {"bad-name-char", "GET / HTTP/1.1\r\nHost: x\r\nX(A): b\r\n\r\n", 400},
    {"no-host-http11", "GET / HTTP/1.1\r\nX: y\r\n\r\n", 400},
    {"two-hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
    {"bad-method", "G@T / HTTP/1.1\r\nHost: x\r\n\r\n", 400},
    {"bad-version", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505},
    {"space-in-target", "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400},
    {"bare-cr", "GET / HTTP/1.1\rHost: x\r\n\r\n", 400},
    {"bare-lf-after-field", "GET / HTTP/1.1\r\nHost: x\nX-A: 1\r\n\r\n", 400},
};

void PrintTo(const Bad& b, std::ostream* os) {
  *os << b.name;
}

class ProxyHttpBad : public testing::TestWithParam<Bad> {};

TEST_P(ProxyHttpBad, Rejected) {
  const Bad& b = GetParam();
  std::string_view in = b.request;
  for (size_t step : {size_t{1}, in.size()}) {
    Parsed p = parseAll(in, step);
    ASSERT_FALSE(p.events.empty()) << b.name;
    EXPECT_EQ(p.events.back(), ParseEvent::kError) << b.name << " step " << step;
    EXPECT_EQ(p.errorStatus, b.status) << b.name << " step " << step;
    // A head may come first only where the error is in the body (bad chunks).
    if (p.events.front() == ParseEvent::kHead) {
      EXPECT_NE(std::string_view(b.name).find("chunk"), std::string_view::npos) << b.name;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Vectors, ProxyHttpBad, testing::ValuesIn(kBad),
                         [](const testing::TestParamInfo<Bad>& i) {
                           std::string n = i.param.name;
                           for (char& c : n) {
                             c = c == '-' ? '_' : c;
                           }
                           return n;
                         });

// The framing checks llhttp makes for veer (two lengths, two framings) hold for upstream
// responses too: a response read two ways is a 502, never a forwarded head.
TEST(ProxyHttp, ResponsesFramedTwoWaysAreRefused) {
  for (std::string_view r :
       {"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi",
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nhi!"}) {
    for (size_t step : {size_t{1}, r.size()}) {
      Parsed p = parseAll(r, step, MessageType::kResponse);
      ASSERT_EQ(p.events.size(), 1U) << r << " step " << step;
      EXPECT_EQ(p.events[0], ParseEvent::kError) << r;
      EXPECT_EQ(p.errorStatus, 502) << r;
    }
  }
}

// A response to HEAD has no body whatever its Content-Length says; the next response
// starts right after the head.
TEST(ProxyHttp, ResponseToHeadHasNoBody) {
  MessageParser p;
  p.reset(MessageType::kResponse, {});
  p.setNoBody(true);
  const std::string r = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
  size_t used = 0;
  EXPECT_EQ(p.execute(r.data(), 0, r.size(), &used), ParseEvent::kHead);
  EXPECT_EQ(used, r.size());
  EXPECT_EQ(p.head().length, 5U);
  EXPECT_EQ(p.execute(r.data(), used, r.size(), &used), ParseEvent::kComplete);
}

TEST(ProxyHttp, HeaderLimitsAnswer431) {
  Limits limits;
  limits.maxHeaders = 10;
  limits.maxHeaderBytes = 2048;
  std::string many = "GET / HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 10; ++i) {
    many += "X-" + std::to_string(i) + ": v\r\n";
  }
  many += "\r\n";
  EXPECT_EQ(parseAll(many, many.size(), MessageType::kRequest, limits).errorStatus, 431);
  std::string big = "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(4096, 'a') + "\r\n\r\n";
  for (size_t step : {size_t{100}, big.size()}) {
    EXPECT_EQ(parseAll(big, step, MessageType::kRequest, limits).errorStatus, 431) << step;
  }
  // Exactly at the limits is fine.
  std::string ok = "GET / HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 9; ++i) {
    ok += "X-" + std::to_string(i) + ": v\r\n";
  }
  ok += "\r\n";
  EXPECT_EQ(parseAll(ok, ok.size(), MessageType::kRequest, limits).events.front(),
            ParseEvent::kHead);
}

/** Parses one head; its views point into text, which must outlive the result. */
ParsedHead headOf(MessageParser& p, const std::string& text, MessageType type) {
  p.reset(type, {});
  size_t used = 0;
  EXPECT_EQ(p.execute(text.data(), 0, text.size(), &used), ParseEvent::kHead);
  return p.head();
}

TEST(ProxyHttp, UpstreamRequestHopByHopEditsRewriteTag) {
  std::string req =
      "GET /api/v1/items?q=1 HTTP/1.1\r\nHost: shop\r\nConnection: keep-alive, X-Hop\r\n"
      "X-Hop: secret\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Connection: x\r\n"
      "User-Agent: curl\r\nX-Keep: 1\r\nx-keep: 2\r\nend-user: jason\r\n\r\n";
  MessageParser p;
  ParsedHead h = headOf(p, req, MessageType::kRequest);
  const HeaderEdit edits[] = {{HeaderEdit::Op::kSet, "x-keep", "set"},
                              {HeaderEdit::Op::kAdd, "x-added", "a"},
                              {HeaderEdit::Op::kRemove, "user-agent", ""}};
  Decision d;
  d.kind = Decision::Kind::kForward;
  d.requestEdits = edits;
  d.tagHeader = "x-asm-prefer-tag";
  d.tagValue = "gray";
  d.rewritePath = "/v2";
  d.rewriteFrom = 7; // "/api/v1" -> "/v2"
  d.rewriteAuthority = "shop-canary";
  std::vector<OutField> scratch;
  std::string out;
  writeUpstreamRequest(h, d, scratch, out);
  EXPECT_EQ(out, "GET /v2/items?q=1 HTTP/1.1\r\nhost: shop-canary\r\nend-user: jason\r\n"
                 "x-keep: set\r\nx-added: a\r\nx-asm-prefer-tag: gray\r\n\r\n");
}

TEST(ProxyHttp, Http10ClientGetsHttp10UpstreamWithKeepAlive) {
  MessageParser p;
  const std::string req = "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
  ParsedHead h = headOf(p, req, MessageType::kRequest);
  Decision d;
  std::vector<OutField> scratch;
  std::string out;
  writeUpstreamRequest(h, d, scratch, out);
  EXPECT_EQ(out, "GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n");
}

TEST(ProxyHttp, DownstreamResponseEditsAndClose) {
  MessageParser p;
  const std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n"
                           "Keep-Alive: timeout=5\r\nServer: envoy\r\nSet-Cookie: a=1\r\n\r\n";
  ParsedHead h = headOf(p, resp, MessageType::kResponse);
  const HeaderEdit edits[] = {{HeaderEdit::Op::kAdd, "set-cookie", "canary=v2"},
                              {HeaderEdit::Op::kRemove, "server", ""}};
  std::vector<OutField> scratch;
  std::string out = "HTTP/1.1 100 Continue\r\n\r\n"; // appended after interim heads
  writeDownstreamResponse(h, edits, true, false, scratch, out);
  EXPECT_EQ(out, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                 "Set-Cookie: a=1\r\nset-cookie: canary=v2\r\nconnection: close\r\n\r\n");
}

// With nothing to change, the field lines go on as received (order, spelling, spaces);
// the start line is the proxy's own.
TEST(ProxyHttp, UnchangedHeadsKeepTheirFieldLines) {
  MessageParser p;
  const std::string req = "GET /a?b=1 HTTP/1.1\r\nUser-Agent: wrk\r\nHost:  shop:80\r\n"
                          "X-B:b \r\n\r\n";
  ParsedHead h = headOf(p, req, MessageType::kRequest);
  Decision d;
  d.kind = Decision::Kind::kForward;
  std::vector<OutField> scratch;
  std::string out;
  writeUpstreamRequest(h, d, scratch, out);
  EXPECT_EQ(out, req);

  MessageParser q;
  const std::string resp = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                           "Content-Length: 3\r\nx-veer-version: v1\r\n\r\n";
  ParsedHead r = headOf(q, resp, MessageType::kResponse);
  out = "HTTP/1.1 100 Continue\r\n\r\n";
  writeDownstreamResponse(r, {}, false, false, scratch, out);
  EXPECT_EQ(out, "HTTP/1.1 100 Continue\r\n\r\n" + resp);
}

// Anything to change, and any line that does not end in CRLF, takes the head apart and
// writes it again.
TEST(ProxyHttp, HeadsAreRewrittenWhenAnythingChanges) {
  std::vector<OutField> scratch;
  std::string out;
  Decision d;
  d.kind = Decision::Kind::kForward;
  {
    MessageParser p; // a bare LF (llhttp takes one after the start line): the next hop
                     // might split this head differently
    const std::string hText = "GET / HTTP/1.1\nHost: shop\r\nX-A: 1\r\n\r\n";
    ParsedHead h = headOf(p, hText, MessageType::kRequest);
    writeUpstreamRequest(h, d, scratch, out);
    EXPECT_EQ(out, "GET / HTTP/1.1\r\nhost: shop\r\nX-A: 1\r\n\r\n");
  }
  {
    MessageParser p; // hop-by-hop
    const std::string hText = "GET / HTTP/1.1\r\nTE: trailers\r\nHost: shop\r\n\r\n";
    ParsedHead h = headOf(p, hText, MessageType::kRequest);
    writeUpstreamRequest(h, d, scratch, out);
    EXPECT_EQ(out, "GET / HTTP/1.1\r\nhost: shop\r\n\r\n");
  }
  {
    MessageParser p; // a blank line before the request line
    const std::string hText = "\r\nGET / HTTP/1.1\r\nHost: shop\r\n\r\n";
    ParsedHead h = headOf(p, hText, MessageType::kRequest);
    writeUpstreamRequest(h, d, scratch, out);
    EXPECT_EQ(out, "GET / HTTP/1.1\r\nhost: shop\r\n\r\n");
  }
  {
    MessageParser p; // a tag to set
    const std::string hText = "GET / HTTP/1.1\r\nHost: shop\r\n\r\n";
    ParsedHead h = headOf(p, hText, MessageType::kRequest);
    Decision t = d;
    t.tagHeader = "x-asm-prefer-tag";
    t.tagValue = "gray";
    writeUpstreamRequest(h, t, scratch, out);
    EXPECT_EQ(out, "GET / HTTP/1.1\r\nhost: shop\r\nx-asm-prefer-tag: gray\r\n\r\n");
  }
  {
    MessageParser p; // a response to close after, and one from an HTTP/1.0 server
    const std::string hText = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    ParsedHead h = headOf(p, hText, MessageType::kResponse);
    out.clear();
    writeDownstreamResponse(h, {}, true, false, scratch, out);
    EXPECT_EQ(out, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nconnection: close\r\n\r\n");
    MessageParser q;
    const std::string h10Text = "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
    ParsedHead h10 = headOf(q, h10Text, MessageType::kResponse);
    out.clear();
    writeDownstreamResponse(h10, {}, false, false, scratch, out);
    EXPECT_EQ(out, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
  }
}

TEST(ProxyHttp, SwitchingProtocolsKeepsUpgrade) {
  MessageParser p;
  const std::string resp = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n";
  ParsedHead h = headOf(p, resp, MessageType::kResponse);
  std::vector<OutField> scratch;
  std::string out;
  writeDownstreamResponse(h, {}, false, false, scratch, out);
  EXPECT_EQ(out,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: x\r\n"
            "connection: upgrade\r\n\r\n");
}

} // namespace
} // namespace veer::proxy
