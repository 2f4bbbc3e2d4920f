// libFuzzer target: any bytes as what a client sends veer-proxy, and as what an
// upstream answers. Both go through the engine's MessageParser exactly as the engine
// drives it (a head, then body bytes up to the end of the message, then the next
// message; the buffer is fed in pieces whose sizes come from the input), and every head
// is rewritten with the head writers under a Decision with every edit kind, a rewrite
// and a tag. Nothing may crash or trip ASan/UBSan; a view outside the buffer would.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/http.h"

namespace {

using namespace veer::proxy;

const HeaderEdit kRequestEdits[] = {
    {HeaderEdit::Op::kSet, "x-set", "1"},
    {HeaderEdit::Op::kAdd, "x-add", "2"},
    {HeaderEdit::Op::kRemove, "user-agent", ""},
};
const HeaderEdit kResponseEdits[] = {
    {HeaderEdit::Op::kAdd, "set-cookie", "canary=1; Max-Age=-1"},
    {HeaderEdit::Op::kRemove, "server", ""},
};

Decision fuzzDecision() {
  Decision d;
  d.kind = Decision::Kind::kForward;
  d.requestEdits = kRequestEdits;
  d.responseEdits = kResponseEdits;
  d.tagHeader = "x-asm-prefer-tag";
  d.tagValue = "gray";
  d.rewritePath = "/v2";
  d.rewriteFrom = 4;
  return d;
}

/** Feeds data in steps of at most `step` bytes, like reads of a socket would. */
void parseStream(MessageType type, std::string_view data, size_t step) {
  Limits limits;
  limits.maxHeaderBytes = 4096;
  limits.maxHeaders = 32;
  MessageParser p;
  p.reset(type, limits);
  const Decision d = fuzzDecision();
  std::vector<OutField> scratch;
  std::string out;
  size_t msgStart = 0, parsePos = 0, avail = 0;
  for (int guard = 0; guard < 100000; ++guard) {
    if (parsePos == avail) {
      if (avail == data.size()) {
        (void)p.finish();
        return;
      }
      avail = std::min(data.size(), avail + step);
    }
    size_t used = 0;
    ParseEvent e = p.execute(data.data() + msgStart, parsePos - msgStart, avail - msgStart, &used);
    parsePos += used;
    switch (e) {
    case ParseEvent::kNeedMore:
      break;
    case ParseEvent::kHead:
      if (p.headEnd() > parsePos - msgStart) {
        __builtin_trap(); // the head must end inside what was consumed
      }
      if (type == MessageType::kRequest) {
        writeUpstreamRequest(p.head(), d, scratch, out);
      } else {
        out.clear();
        writeDownstreamResponse(p.head(), d.responseEdits, p.head().status % 2 == 0, true, scratch,
                                out);
      }
      break;
    case ParseEvent::kComplete:
      msgStart = parsePos;
      break;
    case ParseEvent::kUpgrade:
    case ParseEvent::kError:
      out.clear();
      writeLocalResponse(p.errorStatus(), p.errorText(), {}, true, out);
      return;
    }
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  size_t step = 1 + size % 61; // how the stream is cut into reads varies with the input
  std::string_view text(reinterpret_cast<const char*>(data), size);
  parseStream(MessageType::kRequest, text, step);
  parseStream(MessageType::kResponse, text, step);
  parseStream(MessageType::kRequest, text, text.size() + 1);
  return 0;
}
