#include "proxy/http.h"

#include <strings.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>

namespace veer::proxy {
namespace {

std::string_view trimOws(std::string_view v) {
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) {
    v.remove_prefix(1);
  }
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) {
    v.remove_suffix(1);
  }
  return v;
}

// One pass over the name: find_first_of(" \t") calls memchr once per character, which
// was a tenth of the proxy's user time per request.
bool hasBlank(std::string_view v) {
  for (char ch : v) {
    if (ch == ' ' || ch == '\t') {
      return true;
    }
  }
  return false;
}

// RFC 9110 5.5: field-content is VCHAR, obs-text, SP and HTAB. A CR or LF inside a
// value is an obs-fold line http-parser joined (RFC 9112 5.2: reject it), a NUL or
// another control byte is what header injection attacks rely on.
bool validValue(std::string_view v) {
  for (char ch : v) {
    auto c = static_cast<unsigned char>(ch);
    if ((c < 0x20 && c != '\t') || c == 0x7f) {
      return false;
    }
  }
  return true;
}

void appendNum(std::string& out, uint64_t v) {
  if (v >= 100 && v <= 999) { // a status code
    char d[3] = {static_cast<char>('0' + v / 100), static_cast<char>('0' + v / 10 % 10),
                 static_cast<char>('0' + v % 10)};
    out.append(d, 3);
    return;
  }
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof(buf), v);
  out.append(buf, r.ptr);
}

void appendField(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.append(": ", 2);
  out.append(value);
  out.append("\r\n", 2);
}

void appendFields(std::string& out, const std::vector<OutField>& fields) {
  for (const OutField& f : fields) {
    if (!f.dropped) {
      appendField(out, f.name, f.value);
    }
  }
}

} // namespace

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && ::strncasecmp(a.data(), b.data(), a.size()) == 0;
}

const http_parser_settings MessageParser::kSettings = [] {
  http_parser_settings s;
  http_parser_settings_init(&s);
  s.on_message_begin = &MessageParser::onMessageBegin;
  s.on_url = &MessageParser::onUrl;
  s.on_status = &MessageParser::onStatus;
  s.on_header_field = &MessageParser::onHeaderField;
  s.on_header_value = &MessageParser::onHeaderValue;
  s.on_headers_complete = &MessageParser::onHeadersComplete;
  s.on_message_complete = &MessageParser::onMessageComplete;
  return s;
}();

MessageParser::MessageParser() {
  // http-parser's own limit is process-wide; ours (Limits) is per engine and is the one
  // that answers 431, so lift the library's out of the way once.
  static const bool lifted = (http_parser_set_max_header_size(1U << 20), true);
  (void)lifted;
  reset(HTTP_REQUEST, Limits{});
}

void MessageParser::reset(http_parser_type type, const Limits& limits) {
  http_parser_init(&parser_, type);
  parser_.data = this;
  limits_ = limits;
  pending_ = Pending::kNone;
  headDone_ = true; // nothing started: trailers logic treats "no head in progress" alike
  started_ = false;
  completeAfterHead_ = false;
  noBody_ = false;
  offs_.reserve(limits.maxHeaders);
  fields_.reserve(limits.maxHeaders);
}

int MessageParser::fail(int status, const char* text) {
  errorStatus_ = parser_.type == HTTP_RESPONSE ? 502 : status;
  errorText_ = text;
  return 1;
}

int MessageParser::onMessageBegin(http_parser* p) {
  auto* self = static_cast<MessageParser*>(p->data);
  self->started_ = true;
  self->headDone_ = false;
  self->lastWasValue_ = false;
  self->offs_.clear();
  self->urlOff_ = self->urlLen_ = self->statusOff_ = self->statusLen_ = 0;
  return 0;
}

int MessageParser::onUrl(http_parser* p, const char* at, size_t len) {
  auto* self = static_cast<MessageParser*>(p->data);
  if (self->urlLen_ == 0) {
    self->urlOff_ = static_cast<uint32_t>(at - self->base_);
  }
  self->urlLen_ = static_cast<uint32_t>(at + len - self->base_) - self->urlOff_;
  return 0;
}

int MessageParser::onStatus(http_parser* p, const char* at, size_t len) {
  auto* self = static_cast<MessageParser*>(p->data);
  if (self->statusLen_ == 0) {
    self->statusOff_ = static_cast<uint32_t>(at - self->base_);
  }
  self->statusLen_ = static_cast<uint32_t>(at + len - self->base_) - self->statusOff_;
  return 0;
}

int MessageParser::onHeaderField(http_parser* p, const char* at, size_t len) {
  auto* self = static_cast<MessageParser*>(p->data);
  if (self->headDone_) {
    return 0; // chunked trailers: forwarded as body bytes, not interpreted
  }
  if (self->offs_.empty() || self->lastWasValue_) {
    if (self->offs_.size() >= self->limits_.maxHeaders) {
      return self->fail(431, "too many header fields");
    }
    FieldOff f;
    f.name = static_cast<uint32_t>(at - self->base_);
    self->offs_.push_back(f);
    self->lastWasValue_ = false;
  }
  FieldOff& f = self->offs_.back();
  f.nameLen = static_cast<uint32_t>(at + len - self->base_) - f.name;
  return 0;
}

int MessageParser::onHeaderValue(http_parser* p, const char* at, size_t len) {
  auto* self = static_cast<MessageParser*>(p->data);
  if (self->headDone_) {
    return 0;
  }
  FieldOff& f = self->offs_.back();
  if (!self->lastWasValue_) {
    f.value = static_cast<uint32_t>(at - self->base_);
    self->lastWasValue_ = true;
  }
  f.valueLen = static_cast<uint32_t>(at + len - self->base_) - f.value;
  return 0;
}

int MessageParser::finishHead() {
  const bool request = parser_.type == HTTP_REQUEST;
  ParsedHead& h = head_;
  h = ParsedHead{};
  fields_.clear();
  int contentLengths = 0, transferEncodings = 0, hosts = 0;
  std::string_view te;
  for (const FieldOff& o : offs_) {
    HeaderField f{{base_ + o.name, o.nameLen}, trimOws({base_ + o.value, o.valueLen})};
    if (hasBlank(f.name)) {
      return fail(400, "whitespace in a header field name"); // RFC 9112 5.1
    }
    if (!validValue(f.value)) {
      return fail(400, "invalid character or obs-fold in a header value");
    }
    if (iequals(f.name, "content-length")) {
      ++contentLengths;
    } else if (iequals(f.name, "transfer-encoding")) {
      ++transferEncodings;
      te = f.value;
    } else if (iequals(f.name, "host")) {
      ++hosts;
      h.host = f.value;
    }
    fields_.push_back(f);
  }
  h.headers = fields_;
  h.httpMinor = parser_.http_minor;
  if (parser_.http_major != 1) {
    return fail(505, "unsupported HTTP version");
  }
  // Request smuggling (RFC 9112 6.1, 6.3): a message framed two ways, or with two
  // lengths, is read differently by different hops. Refuse it rather than pick one.
  if (contentLengths > 1) {
    return fail(400, "more than one Content-Length");
  }
  if (transferEncodings > 0) {
    if (contentLengths > 0) {
      return fail(400, "both Content-Length and Transfer-Encoding");
    }
    if (h.httpMinor == 0) {
      return fail(400, "Transfer-Encoding in an HTTP/1.0 message");
    }
    if (transferEncodings > 1 || !iequals(te, "chunked")) {
      return fail(501, "unsupported Transfer-Encoding");
    }
  }
  if (request) {
    h.method = http_method_str(static_cast<http_method>(parser_.method));
    h.target = {base_ + urlOff_, urlLen_};
    if (hosts > 1 || (hosts == 0 && h.httpMinor >= 1)) {
      return fail(400, hosts > 1 ? "more than one Host" : "HTTP/1.1 request without Host");
    }
    switch (parser_.method) {
    case HTTP_GET: case HTTP_HEAD: case HTTP_OPTIONS: case HTTP_TRACE: case HTTP_PUT:
    case HTTP_DELETE:
      h.idempotent = true;
      break;
    default:
      break;
    }
    h.isHead = parser_.method == HTTP_HEAD;
    h.isConnect = parser_.method == HTTP_CONNECT;
  } else {
    h.status = parser_.status_code;
    h.reason = {base_ + statusOff_, statusLen_};
  }
  h.keepAlive = http_should_keep_alive(&parser_) != 0;
  h.chunked = (parser_.flags & F_CHUNKED) != 0;
  h.contentLength = (parser_.flags & F_CONTENTLENGTH) != 0;
  h.length = h.contentLength ? parser_.content_length : 0;
  h.upgrade = parser_.upgrade != 0;
  return 0;
}

int MessageParser::onHeadersComplete(http_parser* p) {
  auto* self = static_cast<MessageParser*>(p->data);
  if (self->finishHead() != 0) {
    return -1; // HPE_CB_headers_complete; errorStatus_ says why
  }
  self->headDone_ = true;
  self->pending_ = Pending::kHead;
  http_parser_pause(p, 1);
  return self->noBody_ ? 1 : 0;
}

int MessageParser::onMessageComplete(http_parser* p) {
  auto* self = static_cast<MessageParser*>(p->data);
  self->started_ = false;
  self->pending_ = Pending::kComplete;
  http_parser_pause(p, 1);
  return 0;
}

ParseEvent MessageParser::execute(const char* base, size_t from, size_t to, size_t* consumed) {
  *consumed = 0;
  base_ = base;
  if (completeAfterHead_) {
    completeAfterHead_ = false;
    return parser_.upgrade ? ParseEvent::kUpgrade : ParseEvent::kComplete;
  }
  if (HTTP_PARSER_ERRNO(&parser_) == HPE_PAUSED) {
    http_parser_pause(&parser_, 0);
  }
  if (HTTP_PARSER_ERRNO(&parser_) != HPE_OK) {
    return ParseEvent::kError; // sticky: the stream is unusable after an error
  }
  if (from >= to) {
    return ParseEvent::kNeedMore;
  }
  pending_ = Pending::kNone;
  size_t n = http_parser_execute(&parser_, &kSettings, base + from, to - from);
  http_errno e = HTTP_PARSER_ERRNO(&parser_);
  if (e == HPE_PAUSED && pending_ == Pending::kHead) {
    // Paused on the head's final LF, not yet consumed. Consume it now so that every
    // byte after headEnd() is body; a bodiless message completes on that same byte.
    headEnd_ = from + n + 1;
    head_.raw = {base, headEnd_};
    if (headEnd_ > limits_.maxHeaderBytes) {
      fail(431, "request head too large");
      http_parser_pause(&parser_, 0);
      parser_.http_errno = HPE_HEADER_OVERFLOW;
      return ParseEvent::kError;
    }
    http_parser_pause(&parser_, 0);
    pending_ = Pending::kNone;
    http_parser_execute(&parser_, &kSettings, base + from + n, 1);
    e = HTTP_PARSER_ERRNO(&parser_);
    if (e == HPE_PAUSED && pending_ == Pending::kComplete) {
      completeAfterHead_ = true;
    } else if (e != HPE_OK) {
      fail(400, http_errno_description(e));
      return ParseEvent::kError;
    }
    *consumed = n + 1;
    return ParseEvent::kHead;
  }
  if (e == HPE_PAUSED) {
    *consumed = n;
    return parser_.upgrade ? ParseEvent::kUpgrade : ParseEvent::kComplete;
  }
  if (e != HPE_OK) {
    if (e == HPE_HEADER_OVERFLOW) {
      fail(431, "head too large");
    } else if (e != HPE_CB_header_field && e != HPE_CB_headers_complete) {
      fail(400, http_errno_description(e));
    }
    return ParseEvent::kError;
  }
  *consumed = n;
  if (!headDone_ && from + n > limits_.maxHeaderBytes) {
    fail(431, "head too large");
    parser_.http_errno = HPE_HEADER_OVERFLOW;
    return ParseEvent::kError;
  }
  return ParseEvent::kNeedMore;
}

ParseEvent MessageParser::finish() {
  if (HTTP_PARSER_ERRNO(&parser_) == HPE_PAUSED) {
    http_parser_pause(&parser_, 0);
  }
  if (HTTP_PARSER_ERRNO(&parser_) != HPE_OK) {
    return ParseEvent::kError;
  }
  pending_ = Pending::kNone;
  http_parser_execute(&parser_, &kSettings, nullptr, 0);
  http_errno e = HTTP_PARSER_ERRNO(&parser_);
  if (e == HPE_PAUSED && pending_ == Pending::kComplete) {
    return ParseEvent::kComplete;
  }
  if (e != HPE_OK || started_) {
    fail(400, "connection closed inside a message");
    return ParseEvent::kError;
  }
  return ParseEvent::kNeedMore;
}

void applyEdits(std::vector<OutField>& fields, std::span<const HeaderEdit> edits) {
  for (const HeaderEdit& e : edits) {
    if (e.op != HeaderEdit::Op::kAdd) {
      for (OutField& f : fields) {
        if (!f.dropped && iequals(f.name, e.name)) {
          f.dropped = true;
        }
      }
    }
    if (e.op != HeaderEdit::Op::kRemove) {
      fields.push_back({e.name, e.value});
    }
  }
}

void endToEndFields(const ParsedHead& head, bool keepUpgrade, std::vector<OutField>& out) {
  out.clear();
  // Field names listed in Connection are hop-by-hop too (RFC 9110 7.6.1).
  std::array<std::string_view, 8> named;
  size_t nNamed = 0;
  for (const HeaderField& f : head.headers) {
    if (!iequals(f.name, "connection")) {
      continue;
    }
    std::string_view v = f.value;
    while (!v.empty()) {
      size_t comma = v.find(',');
      std::string_view tok = trimOws(v.substr(0, comma));
      v = comma == std::string_view::npos ? std::string_view{} : v.substr(comma + 1);
      if (!tok.empty() && nNamed < named.size()) {
        named[nNamed++] = tok;
      }
    }
  }
  for (const HeaderField& f : head.headers) {
    std::string_view n = f.name;
    bool hop = iequals(n, "connection") || iequals(n, "keep-alive") ||
               iequals(n, "proxy-connection") || iequals(n, "te") || iequals(n, "trailer") ||
               iequals(n, "host") || (!keepUpgrade && iequals(n, "upgrade"));
    for (size_t i = 0; !hop && i < nNamed; ++i) {
      hop = iequals(n, named[i]) && !(keepUpgrade && iequals(n, "upgrade")) &&
            !iequals(n, "transfer-encoding") && !iequals(n, "content-length");
    }
    if (!hop) {
      out.push_back({f.name, f.value});
    }
  }
}

namespace {

/** Whether a field is hop-by-hop whatever Connection says (RFC 9110 7.6.1). */
bool alwaysHopByHop(std::string_view n) {
  return iequals(n, "connection") || iequals(n, "keep-alive") ||
         iequals(n, "proxy-connection") || iequals(n, "te") || iequals(n, "trailer") ||
         iequals(n, "upgrade");
}

/**
 * The field lines of a received head, as received, when they can be forwarded unchanged:
 * the head's bytes start with startLine (no blank line before it), every line ends in
 * CRLF (http-parser also takes a bare LF, which the next hop might read differently) and
 * no field is hop-by-hop. "" otherwise. The view runs from the first field line through
 * the empty line that ends the head.
 */
std::string_view forwardableFields(const ParsedHead& head, std::string_view startLine) {
  std::string_view raw = head.raw;
  if (raw.size() < startLine.size() + 2 || raw.substr(0, startLine.size()) != startLine) {
    return {};
  }
  for (const HeaderField& f : head.headers) {
    if (alwaysHopByHop(f.name)) {
      return {};
    }
  }
  std::string_view fields = raw.substr(startLine.size());
  const char* end = fields.data() + fields.size();
  for (const char* lf = fields.data(); (lf = static_cast<const char*>(
                                            std::memchr(lf, '\n', end - lf))) != nullptr;
       ++lf) {
    if (lf == fields.data() || lf[-1] != '\r') {
      return {};
    }
  }
  return fields;
}

} // namespace

void writeUpstreamRequest(const ParsedHead& head, const Decision& d, std::vector<OutField>& scratch,
                          std::string& out, bool shadow) {
  out.clear();
  out.append(head.method);
  out.push_back(' ');
  if (!d.rewritePath.empty() || d.rewriteFrom > 0) {
    size_t from = std::min(d.rewriteFrom, head.target.size());
    size_t start = out.size();
    out.append(d.rewritePath);
    out.append(head.target.substr(from));
    if (out.size() == start) {
      out.push_back('/');
    }
  } else {
    out.append(head.target);
  }
  // An HTTP/1.0 client cannot read chunked: ask the upstream in 1.0 too, so its answer
  // is Content-Length or close-delimited and passes through unchanged.
  out.append(head.httpMinor == 0 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n", 11);
  std::string_view host = d.rewriteAuthority.empty() ? head.host : d.rewriteAuthority;
  if (shadow && !host.empty()) {
    // "reviews:9080" -> "reviews-shadow:9080"; a bracketed IPv6 literal keeps its colons.
    size_t colon = host.rfind(':');
    if (colon == std::string_view::npos || host.find(']', colon) != std::string_view::npos) {
      colon = host.size();
    }
    out.append("host: ").append(host.substr(0, colon)).append("-shadow");
    out.append(host.substr(colon)).append("\r\n");
  }
  bool upgrade = head.upgrade && !shadow;
  // The common request (no edits, no rewrite, no tag to set, nothing hop-by-hop, HTTP/1.1)
  // goes on with its field lines as received: the same fields, in the client's order and
  // spelling, without taking the head apart and writing it again.
  if (!shadow && head.httpMinor == 1 && !head.host.empty() && d.rewritePath.empty() &&
      d.rewriteFrom == 0 && d.rewriteAuthority.empty() && d.requestEdits.empty() &&
      (d.tagHeader.empty() || d.tagValue.empty())) {
    std::string_view line(out.data(), out.size());
    if (std::string_view fields = forwardableFields(head, line); !fields.empty()) {
      out.append(fields);
      return;
    }
  }
  if (!host.empty() && !shadow) {
    appendField(out, "host", host);
  }
  endToEndFields(head, upgrade, scratch);
  applyEdits(scratch, d.requestEdits);
  if (!d.tagHeader.empty() && !d.tagValue.empty()) {
    for (OutField& f : scratch) {
      if (!f.dropped && iequals(f.name, d.tagHeader)) {
        f.dropped = true;
      }
    }
    scratch.push_back({d.tagHeader, d.tagValue});
  }
  appendFields(out, scratch);
  if (shadow) {
    out.append("connection: close\r\n"); // the answer ends at EOF and is thrown away
  } else if (upgrade) {
    out.append("connection: upgrade\r\n");
  } else if (head.httpMinor == 0) {
    out.append("connection: keep-alive\r\n"); // so the pooled connection survives
  }
  out.append("\r\n", 2);
}

void writeDownstreamResponse(const ParsedHead& head, std::span<const HeaderEdit> edits,
                             bool close, bool keepAlive10, std::vector<OutField>& scratch,
                             std::string& out) {
  size_t lineAt = out.size(); // after interim heads already there
  out.append("HTTP/1.1 ");
  appendNum(out, head.status);
  out.push_back(' ');
  out.append(head.reason);
  out.append("\r\n", 2);
  // A final response with nothing to change (no edits, no Connection to write, nothing
  // hop-by-hop, HTTP/1.1, the status line as we write it) goes on as received.
  if (head.status >= 200 && head.status != 101 && edits.empty() && !close && !keepAlive10 &&
      head.httpMinor == 1) {
    std::string_view line(out.data() + lineAt, out.size() - lineAt);
    if (std::string_view fields = forwardableFields(head, line); !fields.empty()) {
      out.append(fields);
      return;
    }
  }
  bool switching = head.status == 101;
  endToEndFields(head, switching, scratch);
  // 1xx responses are interim: edits apply to the final response only.
  if (head.status >= 200) {
    applyEdits(scratch, edits);
  }
  appendFields(out, scratch);
  if (switching) {
    out.append("connection: upgrade\r\n");
  } else if (head.status >= 200) {
    if (close) {
      out.append("connection: close\r\n");
    } else if (keepAlive10) {
      out.append("connection: keep-alive\r\n");
    }
  }
  out.append("\r\n", 2);
}

void writeLocalResponse(int status, std::string_view text, std::string_view location, bool close,
                        std::string& out, bool asIs) {
  out.append("HTTP/1.1 ");
  appendNum(out, status);
  out.push_back(' ');
  out.append(http_status_str(static_cast<http_status>(status)));
  if (!asIs || !text.empty()) {
    out.append("\r\ncontent-type: text/plain");
  }
  out.append("\r\ncontent-length: ");
  appendNum(out, text.size() + (asIs ? 0 : 1));
  out.append("\r\n", 2);
  if (!location.empty()) {
    appendField(out, "location", location);
  }
  if (close) {
    out.append("connection: close\r\n");
  }
  out.append("\r\n", 2);
  out.append(text);
  if (!asIs) {
    out.push_back('\n');
  }
}

} // namespace veer::proxy
