#include "proxy/http.h"

#include <llhttp.h>
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
// value is an obs-fold line llhttp passed on (RFC 9112 5.2: reject it), a NUL or
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

/** RFC 9110 15's reason phrase of a status the proxy may answer with ("" for others:
 * the phrase is optional, RFC 9112 4). llhttp's own table names the constants instead. */
std::string_view reasonPhrase(int status) {
  switch (status) {
  case 100:
    return "Continue";
  case 101:
    return "Switching Protocols";
  case 200:
    return "OK";
  case 201:
    return "Created";
  case 202:
    return "Accepted";
  case 203:
    return "Non-Authoritative Information";
  case 204:
    return "No Content";
  case 205:
    return "Reset Content";
  case 206:
    return "Partial Content";
  case 300:
    return "Multiple Choices";
  case 301:
    return "Moved Permanently";
  case 302:
    return "Found";
  case 303:
    return "See Other";
  case 304:
    return "Not Modified";
  case 305:
    return "Use Proxy";
  case 307:
    return "Temporary Redirect";
  case 308:
    return "Permanent Redirect";
  case 400:
    return "Bad Request";
  case 401:
    return "Unauthorized";
  case 402:
    return "Payment Required";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 406:
    return "Not Acceptable";
  case 407:
    return "Proxy Authentication Required";
  case 408:
    return "Request Timeout";
  case 409:
    return "Conflict";
  case 410:
    return "Gone";
  case 411:
    return "Length Required";
  case 412:
    return "Precondition Failed";
  case 413:
    return "Content Too Large";
  case 414:
    return "URI Too Long";
  case 415:
    return "Unsupported Media Type";
  case 416:
    return "Range Not Satisfiable";
  case 417:
    return "Expectation Failed";
  case 421:
    return "Misdirected Request";
  case 422:
    return "Unprocessable Content";
  case 426:
    return "Upgrade Required";
  case 429:
    return "Too Many Requests";
  case 431:
    return "Request Header Fields Too Large";
  case 500:
    return "Internal Server Error";
  case 501:
    return "Not Implemented";
  case 502:
    return "Bad Gateway";
  case 503:
    return "Service Unavailable";
  case 504:
    return "Gateway Timeout";
  case 505:
    return "HTTP Version Not Supported";
  default:
    return "";
  }
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

// Everything llhttp: the parser state and the callbacks, here and nowhere else.
struct MessageParser::Library {
  llhttp_t parser;
};

struct MessageParser::Callbacks {
  static MessageParser& self(llhttp_t* p) { return *static_cast<MessageParser*>(p->data); }

  static int onMessageBegin(llhttp_t* p) {
    MessageParser& s = self(p);
    s.started_ = true;
    s.headDone_ = false;
    s.lastWasValue_ = false;
    s.offs_.clear();
    s.urlOff_ = s.urlLen_ = s.statusOff_ = s.statusLen_ = 0;
    return HPE_OK;
  }

  /** Extends the span [*off, *off + *len) to end at at + len: one element may arrive in
   * several pieces when it straddles two execute() calls. */
  static void extend(const MessageParser& s, uint32_t* off, uint32_t* len, const char* at,
                     size_t n) {
    if (*len == 0) {
      *off = static_cast<uint32_t>(at - s.base_);
    }
    *len = static_cast<uint32_t>(at + n - s.base_) - *off;
  }

  static int onUrl(llhttp_t* p, const char* at, size_t n) {
    MessageParser& s = self(p);
    extend(s, &s.urlOff_, &s.urlLen_, at, n);
    return HPE_OK;
  }

  static int onStatus(llhttp_t* p, const char* at, size_t n) {
    MessageParser& s = self(p);
    extend(s, &s.statusOff_, &s.statusLen_, at, n);
    return HPE_OK;
  }

  static int onHeaderField(llhttp_t* p, const char* at, size_t n) {
    MessageParser& s = self(p);
    if (s.headDone_) {
      return HPE_OK; // chunked trailers: forwarded as body bytes, not interpreted
    }
    if (s.offs_.empty() || s.lastWasValue_) {
      if (s.offs_.size() >= s.limits_.maxHeaders) {
        return s.fail(431, "too many header fields");
      }
      s.offs_.push_back(FieldOff{});
      s.lastWasValue_ = false;
    }
    FieldOff& f = s.offs_.back();
    extend(s, &f.name, &f.nameLen, at, n);
    return HPE_OK;
  }

  static int onHeaderValue(llhttp_t* p, const char* at, size_t n) {
    MessageParser& s = self(p);
    if (s.headDone_) {
      return HPE_OK;
    }
    FieldOff& f = s.offs_.back();
    s.lastWasValue_ = true;
    // An obs-fold arrives as a second piece; the span then covers the CRLF between, which
    // finishHead refuses.
    extend(s, &f.value, &f.valueLen, at, n);
    return HPE_OK;
  }

  static int onHeadersComplete(llhttp_t* p) {
    MessageParser& s = self(p);
    if (s.finishHead() != 0) {
      return HPE_USER; // fail() said why
    }
    s.headDone_ = true;
    s.pending_ = Pending::kHead;
    if (s.noBody_) {
      p->flags |= F_SKIPBODY; // what returning 1 says, which a pausing callback cannot return
    }
    return HPE_PAUSED;
  }

  static int onMessageComplete(llhttp_t* p) {
    MessageParser& s = self(p);
    s.started_ = false;
    s.pending_ = Pending::kComplete;
    return HPE_PAUSED;
  }

  static const llhttp_settings_t kSettings;
};

const llhttp_settings_t MessageParser::Callbacks::kSettings = [] {
  llhttp_settings_t s;
  llhttp_settings_init(&s);
  s.on_message_begin = &Callbacks::onMessageBegin;
  s.on_url = &Callbacks::onUrl;
  s.on_status = &Callbacks::onStatus;
  s.on_header_field = &Callbacks::onHeaderField;
  s.on_header_value = &Callbacks::onHeaderValue;
  s.on_headers_complete = &Callbacks::onHeadersComplete;
  s.on_message_complete = &Callbacks::onMessageComplete;
  return s;
}();

MessageParser::MessageParser() : lib_(std::make_unique<Library>()) {
  reset(MessageType::kRequest, Limits{});
}

MessageParser::~MessageParser() = default;
MessageParser::MessageParser(MessageParser&&) noexcept = default;
MessageParser& MessageParser::operator=(MessageParser&&) noexcept = default;

void MessageParser::reset(MessageType type, const Limits& limits) {
  // Unqualified, HTTP_REQUEST would be veer's alias (http.h): these are llhttp's.
  llhttp_init(&lib_->parser, type == MessageType::kRequest ? ::HTTP_REQUEST : ::HTTP_RESPONSE,
              &Callbacks::kSettings);
  type_ = type;
  limits_ = limits;
  pending_ = Pending::kNone;
  headDone_ = true; // nothing started: trailers logic treats "no head in progress" alike
  started_ = false;
  completeAfterHead_ = false;
  noBody_ = false;
  failed_ = false;
  offs_.reserve(limits.maxHeaders);
  fields_.reserve(limits.maxHeaders);
}

int MessageParser::fail(int status, const char* text) {
  errorStatus_ = type_ == MessageType::kResponse ? 502 : status;
  errorText_ = text;
  failed_ = true;
  return HPE_USER;
}

namespace {

/** The answer to a message llhttp refused (RFC 9112: 400, or 501 for a transfer coding). */
int statusFor(llhttp_errno_t e) {
  return e == HPE_INVALID_TRANSFER_ENCODING ? 501 : 400;
}

} // namespace

int MessageParser::finishHead() {
  llhttp_t& parser = lib_->parser;
  const bool request = type_ == MessageType::kRequest;
  ParsedHead& h = head_;
  h = ParsedHead{};
  fields_.clear();
  int transferEncodings = 0, hosts = 0;
  std::string_view te;
  for (const FieldOff& o : offs_) {
    HeaderField f{{base_ + o.name, o.nameLen}, trimOws({base_ + o.value, o.valueLen})};
    if (hasBlank(f.name)) {
      return fail(400, "whitespace in a header field name"); // RFC 9112 5.1
    }
    if (!validValue(f.value)) {
      return fail(400, "invalid character or obs-fold in a header value");
    }
    if (iequals(f.name, "transfer-encoding")) {
      ++transferEncodings;
      te = f.value;
    } else if (iequals(f.name, "host")) {
      ++hosts;
      h.host = f.value;
    }
    fields_.push_back(f);
  }
  h.headers = fields_;
  h.httpMinor = parser.http_minor;
  if (parser.http_major != 1) {
    return fail(505, "unsupported HTTP version");
  }
  // Request smuggling (RFC 9112 6.1, 6.3): llhttp refuses a message framed two ways
  // (Content-Length with Transfer-Encoding) or with two lengths before it gets here
  // (tests/unit/proxy_http_test.cpp, kBad). What it lets through, and other hops read
  // differently, is refused here.
  if (transferEncodings > 0) {
    if (h.httpMinor == 0) {
      return fail(400, "Transfer-Encoding in an HTTP/1.0 message");
    }
    if (transferEncodings > 1 || !iequals(te, "chunked")) {
      return fail(501, "unsupported Transfer-Encoding");
    }
  }
  if (request) {
    h.method = llhttp_method_name(static_cast<llhttp_method_t>(parser.method));
    h.target = {base_ + urlOff_, urlLen_};
    if (hosts > 1 || (hosts == 0 && h.httpMinor >= 1)) {
      return fail(400, hosts > 1 ? "more than one Host" : "HTTP/1.1 request without Host");
    }
    switch (parser.method) {
    case HTTP_GET:
    case HTTP_HEAD:
    case HTTP_OPTIONS:
    case HTTP_TRACE:
    case HTTP_PUT:
    case HTTP_DELETE:
      h.idempotent = true;
      break;
    default:
      break;
    }
    h.isHead = parser.method == HTTP_HEAD;
    h.isConnect = parser.method == HTTP_CONNECT;
  } else {
    h.status = parser.status_code;
    h.reason = {base_ + statusOff_, statusLen_};
  }
  h.keepAlive = llhttp_should_keep_alive(&parser) != 0;
  h.chunked = (parser.flags & F_CHUNKED) != 0;
  h.contentLength = (parser.flags & F_CONTENT_LENGTH) != 0;
  h.length = h.contentLength ? parser.content_length : 0;
  h.upgrade = parser.upgrade != 0;
  return 0;
}

size_t MessageParser::run(const char* base, size_t from, size_t len) {
  llhttp_t& parser = lib_->parser;
  parser.data = this; // set on every call: the parser may have moved since the last
  pending_ = Pending::kNone;
  const char* at = base + from;
  llhttp_errno_t e = llhttp_execute(&parser, at, len);
  return e == HPE_OK ? len : static_cast<size_t>(llhttp_get_error_pos(&parser) - at);
}

ParseEvent MessageParser::execute(const char* base, size_t from, size_t to, size_t* consumed) {
  llhttp_t& parser = lib_->parser;
  *consumed = 0;
  base_ = base;
  if (completeAfterHead_) {
    completeAfterHead_ = false;
    return parser.upgrade ? ParseEvent::kUpgrade : ParseEvent::kComplete;
  }
  llhttp_errno_t e = llhttp_get_errno(&parser);
  if (failed_ || (e != HPE_OK && e != HPE_PAUSED)) {
    return ParseEvent::kError; // sticky: the stream is unusable after an error (or upgrade)
  }
  if (e == HPE_PAUSED) {
    llhttp_resume(&parser);
  }
  if (from >= to) {
    return ParseEvent::kNeedMore;
  }
  size_t n = run(base, from, to - from);
  e = llhttp_get_errno(&parser);
  if (e == HPE_PAUSED && pending_ == Pending::kHead) {
    // Paused after the head's final LF. A bodiless message completes without another
    // byte: ask now, so the caller learns it with the head (as kComplete next).
    headEnd_ = from + n;
    head_.raw = {base, headEnd_};
    if (headEnd_ > limits_.maxHeaderBytes) {
      fail(431, "request head too large");
      return ParseEvent::kError;
    }
    llhttp_resume(&parser);
    run(base, headEnd_, 0);
    e = llhttp_get_errno(&parser);
    if (e == HPE_PAUSED && pending_ == Pending::kComplete) {
      completeAfterHead_ = true;
    } else if (e != HPE_OK) {
      fail(statusFor(e), llhttp_get_error_reason(&parser));
      return ParseEvent::kError;
    }
    *consumed = n;
    return ParseEvent::kHead;
  }
  if (e == HPE_PAUSED) {
    *consumed = n;
    return parser.upgrade ? ParseEvent::kUpgrade : ParseEvent::kComplete;
  }
  if (e != HPE_OK) {
    if (!failed_) {
      fail(statusFor(e), llhttp_get_error_reason(&parser));
    }
    return ParseEvent::kError;
  }
  *consumed = n;
  if (!headDone_ && from + n > limits_.maxHeaderBytes) {
    fail(431, "head too large");
    return ParseEvent::kError;
  }
  return ParseEvent::kNeedMore;
}

ParseEvent MessageParser::finish() {
  llhttp_t& parser = lib_->parser;
  llhttp_errno_t e = llhttp_get_errno(&parser);
  if (failed_ || (e != HPE_OK && e != HPE_PAUSED)) {
    return ParseEvent::kError;
  }
  if (e == HPE_PAUSED) {
    llhttp_resume(&parser); // llhttp_finish ignores a paused parser
  }
  parser.data = this;
  pending_ = Pending::kNone;
  e = llhttp_finish(&parser);
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
  return iequals(n, "connection") || iequals(n, "keep-alive") || iequals(n, "proxy-connection") ||
         iequals(n, "te") || iequals(n, "trailer") || iequals(n, "upgrade");
}

/**
 * The field lines of a received head, as received, when they can be forwarded unchanged:
 * the head's bytes start with startLine (no blank line before it), every line ends in
 * CRLF (llhttp also takes a bare LF after the start line, which the next hop might read
 * differently) and no field is hop-by-hop. "" otherwise. The view runs from the first field line
 * through the empty line that ends the head.
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
  for (const char* lf = fields.data();
       (lf = static_cast<const char*>(std::memchr(lf, '\n', end - lf))) != nullptr; ++lf) {
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

void writeDownstreamResponse(const ParsedHead& head, std::span<const HeaderEdit> edits, bool close,
                             bool keepAlive10, std::vector<OutField>& scratch, std::string& out) {
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
  out.append(reasonPhrase(status));
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
