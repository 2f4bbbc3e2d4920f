#pragma once

// veer-proxy's HTTP/1 layer without sockets: an incremental, pausing wrapper around
// llhttp (Node's parser, strict mode) that stops at the end of each head and each message,
// the checks llhttp lacks (obs-fold, control bytes, Host, HTTP/1.0 chunking, header
// limits), and the writers of the heads the proxy sends (upstream request, downstream
// response, local replies). The engine and the fuzzer drive exactly this code. No llhttp
// type appears here: the library is http.cpp's business.
//
// Bodies are never copied or re-framed: after a head, every byte the parser consumes up
// to the end of the message is body on the wire (Content-Length or chunked framing as
// received, validated by the parser) and is forwarded as is.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proxy/router.h"

namespace veer::proxy {

struct Limits {
  uint32_t maxHeaderBytes = 60 * 1024; // one head, start line included (Envoy's default)
  uint32_t maxHeaders = 100;           // fields per head (Envoy's default)
};

/** Which side of an HTTP/1 connection a MessageParser reads. */
enum class MessageType : uint8_t { kRequest, kResponse };

// http-parser's spellings, which the engine (worker.cpp, exchange.cpp) still uses; once
// it says MessageType::kRequest these two go.
inline constexpr MessageType HTTP_REQUEST = MessageType::kRequest;
inline constexpr MessageType HTTP_RESPONSE = MessageType::kResponse;

/** Where MessageParser::execute stopped. */
enum class ParseEvent : uint8_t {
  kNeedMore, // everything given was consumed
  kHead,     // a head is complete: head() is valid until the buffer moves
  kComplete, // the message ended with the last consumed byte
  kUpgrade,  // the message ended; the rest of the stream is another protocol
  kError,    // errorStatus() is the answer (requests) or 502 (responses)
};

/** The head the parser found. Views into the caller's buffer. */
struct ParsedHead {
  std::string_view method; // requests
  std::string_view target; // requests
  std::string_view reason; // responses
  int status = 0;          // responses
  int httpMinor = 1;       // HTTP/1.x
  std::string_view host;   // requests: the Host value
  std::span<const HeaderField> headers;
  /** The head as received, from the first byte given as base (blank lines before the start
   * line included) through the empty line that ends it. */
  std::string_view raw;
  bool keepAlive = true; // the connection may carry another message (RFC 9112 9.3)
  bool chunked = false;
  bool contentLength = false; // a Content-Length header was given
  uint64_t length = 0;        // its value
  bool upgrade = false;       // Connection: upgrade with an Upgrade header (101 for responses)
  bool idempotent = false;    // GET HEAD OPTIONS TRACE PUT DELETE (RFC 9110 9.2.2)
  bool isHead = false;        // request method HEAD
  bool isConnect = false;
  /** True when the message may carry a body (chunked, or a non-zero Content-Length). */
  bool hasBody() const { return chunked || (contentLength && length > 0); }
};

/**
 * One direction of an HTTP/1 connection. The caller owns a contiguous buffer and calls
 * execute() with base = the first byte of the current message; the head's bytes must
 * stay at the same offsets from base until kHead (bytes may move in memory with base).
 */
class MessageParser {
public:
  MessageParser();
  ~MessageParser();
  MessageParser(MessageParser&&) noexcept;
  MessageParser& operator=(MessageParser&&) noexcept;
  void reset(MessageType type, const Limits& limits);

  /** Parses base[from, to). *consumed = bytes used from `from`. */
  ParseEvent execute(const char* base, size_t from, size_t to, size_t* consumed);
  /** The peer closed: ends a body that runs to EOF (kComplete) or is an error. */
  ParseEvent finish();

  /** For a response to HEAD (or to CONNECT): the next head has no body. */
  void setNoBody(bool v) { noBody_ = v; }
  const ParsedHead& head() const { return head_; }
  /** Bytes from base to the end of the current head (valid after kHead). */
  size_t headEnd() const { return headEnd_; }
  bool inHead() const { return !headDone_; }
  /** HTTP status to answer a kError with (400, 431, 501, 505), or 502 for a response. */
  int errorStatus() const { return errorStatus_; }
  const char* errorText() const { return errorText_; }
  /** A message started (non-CRLF bytes were seen) and is not complete. */
  bool midMessage() const { return started_; }

private:
  struct FieldOff {
    uint32_t name = 0, nameLen = 0, value = 0, valueLen = 0;
  };
  struct Library;   // llhttp's parser state (http.cpp)
  struct Callbacks; // llhttp's callbacks, which fill the fields below
  int fail(int status, const char* text);
  int finishHead();
  /** Runs the library over base[from, from + len); the bytes it consumed. */
  size_t run(const char* base, size_t from, size_t len);

  std::unique_ptr<Library> lib_;
  MessageType type_ = MessageType::kRequest;
  Limits limits_;
  const char* base_ = nullptr;
  enum class Pending : uint8_t { kNone, kHead, kComplete } pending_ = Pending::kNone;
  bool headDone_ = false, started_ = false, lastWasValue_ = false, noBody_ = false;
  bool completeAfterHead_ = false;
  bool failed_ = false; // fail() said why: the library's own error code does not
  uint32_t urlOff_ = 0, urlLen_ = 0, statusOff_ = 0, statusLen_ = 0;
  size_t headEnd_ = 0;
  int errorStatus_ = 400;
  const char* errorText_ = "";
  std::vector<FieldOff> offs_;
  std::vector<HeaderField> fields_;
  ParsedHead head_;
};

bool iequals(std::string_view a, std::string_view b);

/** A header of the message being written: from the received head or an edit. */
struct OutField {
  std::string_view name, value;
  bool dropped = false;
};

/** Appends the header edits in order to fields (kSet replaces, kAdd appends, kRemove drops). */
void applyEdits(std::vector<OutField>& fields, std::span<const HeaderEdit> edits);

/**
 * Fields of a received head minus hop-by-hop ones (RFC 9110 7.6.1: Connection, the
 * fields it names, Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade, and Host, which
 * the writer emits itself). Upgrade survives when keepUpgrade (a WebSocket handshake).
 * Transfer-Encoding and Content-Length stay: the body is forwarded with its framing.
 */
void endToEndFields(const ParsedHead& head, bool keepUpgrade, std::vector<OutField>& out);

/**
 * Writes the upstream request head for a forwarded request into out (cleared first). A
 * shadow (Istio mirror) goes to host "<authority>-shadow" (before any port, as Envoy
 * does) with Connection: close, and is never an upgrade.
 */
void writeUpstreamRequest(const ParsedHead& head, const Decision& d, std::vector<OutField>& scratch,
                          std::string& out, bool shadow = false);

/**
 * Appends the downstream response head to out (after interim ones already there). close: the proxy
 * closes the client connection after this response; keepAlive10: an HTTP/1.0 client asked for
 * keep-alive.
 */
void writeDownstreamResponse(const ParsedHead& head, std::span<const HeaderEdit> edits, bool close,
                             bool keepAlive10, std::vector<OutField>& scratch, std::string& out);

/**
 * Appends a response the proxy makes itself, Location if set. The body is the reason text
 * and a newline (text/plain), or with asIs exactly text: a directResponse body, which
 * Envoy sends as text/plain when it is not empty.
 */
void writeLocalResponse(int status, std::string_view text, std::string_view location, bool close,
                        std::string& out, bool asIs = false);

} // namespace veer::proxy
