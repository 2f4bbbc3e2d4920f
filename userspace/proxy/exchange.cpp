#include "proxy/exchange.h"

#include <cerrno>

#include "proxy/retry.h"
#include "proxy/worker.h"

namespace veer::proxy {

namespace {
// After an error reply the client may still be sending (a body we refused): closing
// with unread bytes would send a reset that can destroy the reply before the client
// reads it. So: shut down our side, discard what comes, close at EOF or after this.
constexpr uint32_t kLingerMs = 2000;
} // namespace

Exchange::Exchange(Worker& worker, const EngineOptions& opt, const uint64_t& now,
                   const uint64_t& nowUs, const bool& draining,
                   const std::unique_ptr<IoBackend>& io, UpstreamPool& pool, MirrorSet& mirrors,
                   Counters& counters, WorkerStats& stats)
    : worker_(worker), opt_(opt), now_(now), draining_(draining), io_(io), pool_(pool),
      mirrors_(mirrors), counters_(counters), stats_(stats), nowUs_(nowUs) {
  scratch_.reserve(opt_.limits.maxHeaders + 16);
}

void Exchange::closeClient(Client* c) {
  worker_.closeClient(c);
}

uint64_t Exchange::streamIdleFrom(uint64_t t) const {
  return opt_.streamIdleTimeoutMs != 0 ? t + opt_.streamIdleTimeoutMs : 0;
}

void Exchange::delayEnded(Client* c) {
  c->delayUntil = 0;
  startUpstream(c);
}

void Exchange::receiveTimedOut(Client* c) {
  // A body trickled a byte per idle interval would otherwise hold the client and the
  // upstream forever (issue 21, M10).
  Counters::bump(counters_.requestTimeouts);
  reply(c, 408, "request timeout", {}, true);
}

bool Exchange::streamIdleTimedOut(Client* c) {
  Counters::bump(counters_.streamIdleTimeouts);
  if (c->respHeadSent) {
    closeClient(c); // mid-response: nothing else tells the client
    return false;
  }
  reply(c, 408, "stream timeout", {}, true);
  return true;
}

void Exchange::drive(Client* c) {
  // Each step moves what it can; loop while anything moved (a response may free the
  // connection for the next pipelined request, which may complete at once).
  for (;;) {
    Step s = Step::kIdle;
    switch (c->phase) {
    case Phase::kHead:
      s = stepHead(c);
      break;
    case Phase::kExchange:
      s = stepExchange(c);
      break;
    case Phase::kReply:
      s = stepReply(c);
      break;
    case Phase::kTunnel:
      s = stepTunnel(c);
      break;
    case Phase::kLinger:
      s = stepLinger(c);
      break;
    }
    if (s == Step::kClosed) {
      return;
    }
    if (s != Step::kProgress) {
      break;
    }
  }
  // A client is watched only when it must be waited for. One that sent its whole
  // request and only waits for the upstream is not: with Connection: close it may be
  // answered and closed without ever being registered (one epoll_ctl fewer). Adding
  // reports readiness that is already there, so nothing that arrived before is missed.
  if (!c->watched &&
      !(c->phase == Phase::kExchange && c->reqDone && c->writable && c->out.empty()) &&
      !io_->watch(c)) {
    closeClient(c);
  }
}

// --- I/O ---------------------------------------------------------------------

ssize_t Exchange::readSome(int fd, Buffer& b, bool& readable, bool& eof) {
  if (!readable || eof || b.len == b.cap) {
    return 0;
  }
  for (;;) {
    size_t room = b.cap - b.len;
    ssize_t n = ::recv(fd, b.at(b.len), room, 0);
    if (n > 0) {
      b.len += n;
      if (static_cast<size_t>(n) < room) {
        readable = false; // drained: edge-triggered epoll reports the next arrival
      }
      return n;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    readable = false;
    if (n == 0 || errno != EAGAIN) {
      eof = true; // EOF, or ECONNRESET and friends
    }
    return 0;
  }
}

Step Exchange::flushClient(Client* c, const char* body, size_t bodyLen, size_t* bodySent) {
  *bodySent = 0;
  size_t headLen = c->out.size() - c->outOff;
  if (headLen + bodyLen == 0) {
    return Step::kIdle;
  }
  if (!c->writable) {
    return Step::kIdle;
  }
  iovec iov[2];
  int cnt = 0;
  if (headLen > 0) {
    iov[cnt++] = {c->out.data() + c->outOff, headLen};
  }
  if (bodyLen > 0) {
    iov[cnt++] = {const_cast<char*>(body), bodyLen};
  }
  ssize_t n = io_->send(c, iov, cnt);
  if (n < 0) {
    c->writable = false;
    if (errno == EAGAIN) {
      return Step::kIdle;
    }
    closeClient(c); // the client went away
    return Step::kClosed;
  }
  size_t w = static_cast<size_t>(n);
  size_t h = std::min(w, headLen);
  c->outOff += h;
  if (c->outOff == c->out.size()) {
    c->out.clear();
    c->outOff = 0;
  }
  *bodySent = w - h;
  if (w < headLen + bodyLen) {
    c->writable = false;
  }
  return Step::kProgress;
}

bool Exchange::flushUpstream(Client* c, Upstream* u, size_t bodyLen, size_t* bodySent) {
  *bodySent = 0;
  size_t headLen = c->upHead.size() - c->upHeadOff;
  if (headLen + bodyLen == 0 || !u->writable || u->connecting) {
    return false;
  }
  iovec iov[2];
  int cnt = 0;
  if (headLen > 0) {
    iov[cnt++] = {c->upHead.data() + c->upHeadOff, headLen};
  }
  if (bodyLen > 0) {
    iov[cnt++] = {c->in.at(c->sendPos), bodyLen};
  }
  ssize_t n = io_->send(u, iov, cnt);
  if (n < 0) {
    u->writable = false;
    if (errno != EAGAIN) {
      u->eof = true; // reset: the read side reports it as a failure
      u->readable = true;
    }
    return false;
  }
  size_t w = static_cast<size_t>(n);
  size_t h = std::min(w, headLen);
  c->upHeadOff += h;
  *bodySent = w - h;
  u->sent += w;
  if (w < headLen + bodyLen) {
    u->writable = false;
  }
  return true;
}

// --- request head ------------------------------------------------------------

Step Exchange::stepHead(Client* c) {
  for (;;) {
    size_t used = 0;
    ParseEvent e = c->req.execute(c->in.at(c->msgStart), c->parsePos - c->msgStart,
                                  c->in.len - c->msgStart, &used);
    c->parsePos += used;
    if (e != ParseEvent::kNeedMore && !c->headTimer) {
      c->headStartUs = nowUs_; // the whole head (or the bytes that broke it) came in one read
    }
    if (e == ParseEvent::kHead) {
      onRequestHead(c);
      return Step::kProgress;
    }
    if (e == ParseEvent::kError) {
      beginRequest(c); // a request, if a bad one: counted, to no destination
      reply(c, c->req.errorStatus(), c->req.errorText(), {}, true);
      return Step::kProgress;
    }
    if (e != ParseEvent::kNeedMore) {
      beginRequest(c);
      reply(c, 400, "malformed request", {}, true); // cannot happen before a head
      return Step::kProgress;
    }
    if (c->req.midMessage() && !c->headTimer) {
      c->headTimer = true;
      c->headStartUs = nowUs_;
      c->deadline = now_ + opt_.headerTimeoutMs;
    }
    // Need more bytes. Make room: drop what is before the message, then grow up to one
    // maximal head (only a head being read needs to be contiguous).
    reclaim(c->in, c->msgStart, c->parsePos, c->sendPos, true);
    if (c->in.len == c->in.cap && !c->in.grow(opt_.limits.maxHeaderBytes + 1024)) {
      beginRequest(c);
      reply(c, 431, "request head too large", {}, true);
      return Step::kProgress;
    }
    ssize_t n = readSome(c->fd, c->in, c->readable, c->eof);
    if (n > 0) {
      continue;
    }
    if (c->eof) {
      // The client closed. Between requests that is the normal end; inside a head
      // there is nobody left to answer.
      closeClient(c);
      return Step::kClosed;
    }
    return Step::kIdle;
  }
}

void Exchange::onRequestHead(Client* c) {
  Counters::bump(counters_.requests);
  beginRequest(c);
  const ParsedHead& h = c->req.head();
  c->headTimer = false;
  c->reqDone = false;
  c->respHeadSent = c->respDone = false;
  c->closeAfter = !h.keepAlive || draining_;
  c->keepAlive10 = h.httpMinor == 0 && h.keepAlive;
  c->http10 = h.httpMinor == 0;
  c->isHead = h.isHead;
  c->idempotent = h.idempotent;
  c->reqHasBody = h.hasBody();
  c->upgradeReq = h.upgrade;
  c->forceFresh = false;
  c->retry.tries = 0;
  c->retry.retried = 0;
  c->retry.relayed = false;
  c->retry.replay = true;
  c->delayUntil = c->tryDeadline = 0;
  c->startMs = now_;
  c->sendPos = c->parsePos; // the raw head is not forwarded; upHead replaces it
  c->bodyStart = c->parsePos;
  if (h.isConnect) {
    reply(c, 501, "CONNECT is not supported", {}, true);
    return;
  }
  c->table = worker_.currentTable();
  if (!c->table) {
    reply(c, 503, "no route table loaded", {}, c->reqHasBody || c->closeAfter);
    return;
  }
  RequestHead rh{h.method, h.target, h.host, h.headers};
  c->d = c->table->route(rh, c->origin);
  c->metrics.destination = stats_.destinationId(c->table, c->d.cluster);
  c->metrics.route = stats_.routeId(c->table, c->d.rule);
  c->respEdits = c->d.responseEdits;
  if (!c->d.setCookie.empty()) {
    // consistentHash httpCookie with a ttl and no cookie yet: hand one out, as Envoy does,
    // so the client's next requests hash to the same endpoint.
    c->ownEdits.assign(c->d.responseEdits.begin(), c->d.responseEdits.end());
    c->ownEdits.push_back(
        HeaderEdit{HeaderEdit::Op::kAdd, "set-cookie", std::string(c->d.setCookie)});
    c->respEdits = c->ownEdits;
  }
  if (c->d.kind == Decision::Kind::kRespond || c->d.endpoints.empty()) {
    bool asIs = c->d.kind == Decision::Kind::kRespond && c->d.direct;
    std::string_view why = asIs                  ? c->d.body
                           : c->d.reason.empty() ? std::string_view("no route")
                                                 : c->d.reason;
    reply(c, c->d.kind == Decision::Kind::kRespond ? c->d.status : 503, why, c->d.location,
          c->reqHasBody || c->closeAfter, asIs);
    return;
  }
  writeUpstreamRequest(h, c->d, scratch_, c->upHead);
  c->upHeadOff = 0;
  if (!c->d.mirrorEndpoints.empty()) {
    writeUpstreamRequest(h, c->d, scratch_, c->shadowHead, true);
  }
  c->phase = Phase::kExchange;
  // Envoy's timers: while the request arrives, request_timeout (from the head's first
  // byte) and stream_idle_timeout (no byte either way); the route's timeout runs from the
  // end of the request (as Envoy's route timeout does).
  c->requestDeadlineMs = c->d.timeoutMs != 0 ? c->d.timeoutMs : opt_.requestTimeoutMs;
  c->deadline = 0;
  c->receiveDeadline =
      opt_.requestReceiveTimeoutMs != 0 ? c->headStartUs / 1000 + opt_.requestReceiveTimeoutMs : 0;
  c->streamIdleDeadline = streamIdleFrom(now_);
  if (c->d.delayMs > 0) {
    // fault.delay: hold the request (its body waits in the buffer), then forward it.
    // The sweep starts it. The wait is ours, not the client's: its timers move with it.
    c->delayUntil = now_ + c->d.delayMs;
    c->streamIdleDeadline = streamIdleFrom(c->delayUntil);
    if (c->receiveDeadline != 0) {
      c->receiveDeadline += c->d.delayMs;
    }
    worker_.wakeAt(c->delayUntil);
    return;
  }
  startUpstream(c);
}

// --- upstream ----------------------------------------------------------------

void Exchange::startUpstream(Client* c) {
  const Decision& d = c->d;
  size_t n = d.endpoints.size();
  // Two passes over the endpoints from the walk's position: the healthy ones, then the
  // ones ejected before this request (the last chance when every endpoint looks down).
  // The walk only moves forward, so a retry goes to an endpoint not tried yet while there
  // is one (Envoy's previous_hosts predicate, which Istio configures).
  for (size_t scanned = 0; scanned < 2 * n; ++scanned) {
    bool lastChance = scanned >= n;
    const Endpoint& ep = d.endpoints[(d.first + c->retry.tries) % n];
    EndpointKey key;
    key.addr = ep.addr.bytes;
    key.port = ep.port;
    uint64_t since = pool_.ejectedSince(key, now_);
    if (lastChance ? (since == 0 || since >= c->startMs) : since != 0) {
      ++c->retry.tries;
      continue;
    }
    Upstream* u = c->forceFresh ? nullptr : pool_.takeIdle(key);
    if (u != nullptr) {
      Counters::bump(counters_.upstreamReuses);
    } else {
      u = pool_.connect(key, ep, now_);
      if (u == nullptr) {
        ++c->retry.tries; // refused, unreachable, no route: the next endpoint, if retries allow
        if (!mayRetry(c, kOnConnectFailure)) {
          break;
        }
        ++c->retry.retried;
        Counters::bump(counters_.retries);
        continue;
      }
      Counters::bump(counters_.upstreamConnects);
      stats_.connectionOpened(c->metrics.destination);
    }
    u->owner = c;
    u->msgStart = u->parsePos = u->sendPos = 0;
    u->in.len = 0;
    u->gotBytes = false;
    u->sent = 0;
    u->resp.reset(HTTP_RESPONSE, opt_.limits);
    u->resp.setNoBody(c->isHead);
    c->up = u;
    c->forceFresh = false;
    armTry(c);
    return;
  }
  noEndpoint(c);
}

void Exchange::noEndpoint(Client* c) {
  if (!c->d.fallbackEndpoints.empty()) {
    // ASM fallback case noavailabled: no endpoint of the chosen subset accepted the
    // connection (or the retries ran out on them), so the fallback subset's endpoints are
    // tried the same way, once: its first attempt is not a retry.
    c->d.endpoints = c->d.fallbackEndpoints;
    c->d.first = c->d.fallbackFirst;
    c->d.cluster = c->d.fallbackCluster;
    c->metrics.destination = stats_.destinationId(c->table, c->d.cluster);
    c->d.fallbackEndpoints = {};
    c->retry.tries = 0;
    Counters::bump(counters_.fallbacks);
    startUpstream(c);
    return;
  }
  reply(c, 503, "upstream connect error: no endpoint accepted the connection", {},
        !c->reqDone && c->reqHasBody);
}

void Exchange::connectFailed(Client* c) {
  pool_.eject(c->up->key, now_);
  dropUpstream(c);
  ++c->retry.tries;
  if (!mayRetry(c, kOnConnectFailure)) {
    noEndpoint(c);
    return;
  }
  ++c->retry.retried;
  Counters::bump(counters_.retries);
  c->tryDeadline = 0;
  startUpstream(c);
}

bool Exchange::mayRetry(const Client* c, uint32_t conditions) const {
  return proxy::mayRetry(c->d, opt_.retries, c->retry, c->respHeadSent, conditions);
}

void Exchange::retry(Client* c, bool backoff) {
  ++c->retry.retried;
  ++c->retry.tries; // another endpoint, while there is one not tried
  Counters::bump(counters_.retries);
  c->sendPos = c->bodyStart; // the whole request again: head, then the kept body
  c->upHeadOff = 0;
  c->tryDeadline = 0;
  if (!backoff) {
    startUpstream(c);
    return;
  }
  c->delayUntil = now_ + backoffMs(c->retry.retried, rng_);
  worker_.wakeAt(c->delayUntil);
}

void Exchange::armTry(Client* c) {
  c->tryDeadline = c->reqDone && c->up != nullptr ? tryDeadline(c->d, now_) : 0;
}

void Exchange::tryTimedOut(Client* c) {
  c->tryDeadline = 0;
  if (c->phase != Phase::kExchange || c->up == nullptr || c->respHeadSent || c->retry.relayed) {
    return; // Envoy: once the response started downstream, only the route timeout counts
  }
  if (c->up->connecting) {
    connectFailed(c); // not even connected within the attempt's time: a connect failure
    return;
  }
  dropUpstream(c);
  if (mayRetry(c, kOnReset)) {
    retry(c, true);
    return;
  }
  reply(c, 504, "upstream per try timeout", {}, !c->reqDone);
}

bool Exchange::keepForReplay(Client* c) {
  // Keeps the request body in `in` for a retry: compacts, then grows up to the head plus
  // --retry-buffer-bytes. A body larger than that streams on as before, unreplayable.
  if (!c->retry.replay || c->in.len < c->in.cap) {
    return c->retry.replay;
  }
  if (c->msgStart > 0) {
    size_t drop = c->msgStart;
    c->in.drop(drop);
    c->msgStart = 0;
    c->bodyStart -= drop;
    c->parsePos -= drop;
    c->sendPos -= drop;
    return true;
  }
  if (c->in.grow(c->bodyStart + opt_.retryBufferBytes)) {
    return true;
  }
  c->retry.replay = false;
  return false;
}

void Exchange::timedOut(Client* c) {
  switch (c->phase) {
  case Phase::kHead:
    // Slowloris, or an idle keep-alive connection: 408 then close (RFC 9110 15.5.9).
    // Only the first is a request (bytes of one came); an idle connection is not.
    if (c->headTimer && c->req.midMessage()) {
      beginRequest(c);
    }
    reply(c, 408, c->headTimer ? "request header timeout" : "idle timeout", {}, true);
    drive(c);
    return;
  case Phase::kExchange:
    // The route timeout, armed at the end of the request.
    if (!c->respHeadSent) {
      reply(c, 504, "upstream request timeout", {}, false);
      drive(c);
      return;
    }
    closeClient(c); // mid-response: nothing else tells the client
    return;
  case Phase::kReply:
  case Phase::kTunnel:
  case Phase::kLinger:
    closeClient(c);
    return;
  }
}

void Exchange::dropUpstream(Client* c) {
  if (c->up != nullptr) {
    Upstream* u = c->up;
    c->up = nullptr;
    pool_.close(u);
  }
}

// --- exchange ----------------------------------------------------------------

Step Exchange::upstreamGone(Client* c) {
  Upstream* u = c->up;
  // The connection ended before a response head. A pooled connection the server had
  // closed (the keep-alive race) is not the endpoint's fault: the request goes again on a
  // fresh connection to the same endpoint, outside the retry budget, when nothing of a
  // response came and it is safe (RFC 9110 9.2.2: nothing was written, or an idempotent
  // request whose bytes are all still here). Otherwise it is Envoy's reset, retried when
  // the route's retryOn says so.
  if (u->reused && !u->gotBytes && !c->retry.relayed &&
      (u->sent == 0 || (c->idempotent && c->retry.replay))) {
    dropUpstream(c);
    c->forceFresh = true;
    if (c->retry.replay) {
      c->sendPos = c->bodyStart;
    }
    c->upHeadOff = 0;
    Counters::bump(counters_.retries);
    startUpstream(c);
    return Step::kProgress;
  }
  dropUpstream(c);
  if (mayRetry(c, kOnReset | (u->sent == 0 ? retry_on::kResetBeforeRequest : 0))) {
    retry(c, true);
    return Step::kProgress;
  }
  if (!c->respHeadSent) {
    reply(c, 502, "upstream reset before response", {}, true);
    return Step::kProgress;
  }
  closeClient(c); // mid-response: closing is the only way to say it was cut
  return Step::kClosed;
}

Step Exchange::stepExchange(Client* c) {
  Upstream* u = c->up;
  if (u == nullptr) {
    return Step::kIdle;
  }
  bool moved = false;

  // Request: parse what is buffered (to find the end of the body), send, read more.
  if (!c->reqDone) {
    size_t used = 0;
    ParseEvent e = c->req.execute(c->in.at(c->msgStart), c->parsePos - c->msgStart,
                                  c->in.len - c->msgStart, &used);
    c->parsePos += used;
    moved |= used > 0;
    if (e == ParseEvent::kComplete || e == ParseEvent::kUpgrade) {
      c->reqDone = true;
      c->receiveDeadline = 0;
      c->deadline = now_ + c->requestDeadlineMs;
      armTry(c);
      if (!c->d.mirrorEndpoints.empty() && e == ParseEvent::kComplete) {
        mirrors_.start(*c, now_);
      }
      moved = true;
    } else if (e == ParseEvent::kError) {
      // A bad chunk inside the body: the upstream got part of it. Stop both sides.
      dropUpstream(c);
      if (!c->respHeadSent) {
        reply(c, 400, c->req.errorText(), {}, true);
        return Step::kProgress;
      }
      closeClient(c);
      return Step::kClosed;
    }
  }
  size_t sent = 0;
  if (flushUpstream(c, u, c->parsePos - c->sendPos, &sent)) {
    c->sendPos += sent;
    moved = true;
  }
  if (!c->reqDone) {
    if (!keepForReplay(c)) {
      reclaim(c->in, c->msgStart, c->parsePos, c->sendPos, false);
    }
    if (readSome(c->fd, c->in, c->readable, c->eof) > 0) {
      moved = true;
    } else if (c->eof && c->parsePos == c->in.len) {
      dropUpstream(c); // the client left inside its request
      closeClient(c);
      return Step::kClosed;
    }
  }

  // Response: read, parse, send to the client.
  if (!u->connecting) {
    reclaim(u->in, u->msgStart, u->parsePos, u->sendPos, u->resp.inHead());
    ssize_t n = readSome(u->fd, u->in, u->readable, u->eof);
    if (n > 0) {
      u->gotBytes = true;
      moved = true;
    }
    while (!c->respDone) {
      size_t used = 0;
      ParseEvent e = u->resp.execute(u->in.at(u->msgStart), u->parsePos - u->msgStart,
                                     u->in.len - u->msgStart, &used);
      u->parsePos += used;
      if (e == ParseEvent::kNeedMore && u->eof && u->parsePos == u->in.len) {
        e = u->resp.finish();
        if (e == ParseEvent::kNeedMore || (e == ParseEvent::kError && !u->gotBytes)) {
          return upstreamGone(c);
        }
      }
      if (e == ParseEvent::kNeedMore) {
        if (u->resp.inHead() && u->in.len == u->in.cap) {
          reclaim(u->in, u->msgStart, u->parsePos, u->sendPos, true);
          if (u->in.len < u->in.cap || u->in.grow(opt_.limits.maxHeaderBytes + 1024)) {
            if (readSome(u->fd, u->in, u->readable, u->eof) > 0) {
              continue;
            }
          } else {
            e = ParseEvent::kError; // response head over the limit
          }
        }
        if (e == ParseEvent::kNeedMore) {
          break;
        }
      }
      moved = true;
      if (e == ParseEvent::kError) {
        dropUpstream(c);
        if (!c->respHeadSent) {
          reply(c, 502, "upstream sent an invalid response", {}, true);
          return Step::kProgress;
        }
        closeClient(c);
        return Step::kClosed;
      }
      if (e == ParseEvent::kHead) {
        const ParsedHead& h = u->resp.head();
        u->sendPos = u->parsePos; // the raw head is replaced by ours
        if (h.status == 101) {
          if (!c->upgradeReq) {
            dropUpstream(c);
            reply(c, 502, "upstream switched protocols unasked", {}, true);
            return Step::kProgress;
          }
          writeDownstreamResponse(h, c->respEdits, false, false, scratch_, c->out);
          c->respHeadSent = true;
          c->metrics.code = h.status;
        } else if (h.status < 200) {
          // Interim (100 Continue, 103): relayed as they come; HTTP/1.0 clients
          // cannot take them (RFC 9110 15.2).
          if (!c->http10) {
            writeDownstreamResponse(h, {}, false, false, scratch_, c->out);
            c->retry.relayed = true; // the client may act on it: no retry from here on
          }
        } else if (mayRetry(c, retryConditions(c->d, h.status))) {
          dropUpstream(c); // the answer is dropped with its connection (Envoy resets it)
          retry(c, true);
          return Step::kProgress;
        } else {
          // A body that ends at EOF cannot be followed by another response.
          bool delimited =
              h.chunked || h.contentLength || c->isHead || h.status == 204 || h.status == 304;
          if (!delimited) {
            c->closeAfter = true;
          }
          writeDownstreamResponse(h, c->respEdits, c->closeAfter, c->keepAlive10, scratch_, c->out);
          c->respHeadSent = true;
          c->metrics.code = h.status;
        }
        continue;
      }
      // kComplete or kUpgrade: the message ended at parsePos.
      const ParsedHead& h = u->resp.head();
      if (h.status < 200 && h.status != 101) {
        u->msgStart = u->sendPos = u->parsePos; // interim: the final response follows
        continue;
      }
      c->respDone = true;
      if (e == ParseEvent::kUpgrade || h.status == 101) {
        endRequest(c, c->metrics.code); // the request is the upgrade; the tunnel is not one
        c->phase = Phase::kTunnel;
        c->deadline = now_ + opt_.tunnelIdleTimeoutMs;
        c->sendPos = c->parsePos;
        return Step::kProgress;
      }
    }
  }

  // Write the response out: head(s) in c->out, body straight from the upstream buffer.
  size_t bodyLen = u->parsePos - u->sendPos;
  size_t sentBody = 0;
  Step s = flushClient(c, u->in.at(u->sendPos), bodyLen, &sentBody);
  if (s == Step::kClosed) {
    return s;
  }
  u->sendPos += sentBody;
  moved |= s == Step::kProgress;
  if (c->respDone && c->out.empty() && u->sendPos == u->parsePos) {
    return finishExchange(c);
  }
  if (!moved) {
    return Step::kIdle;
  }
  c->streamIdleDeadline = streamIdleFrom(now_);
  return Step::kProgress;
}

Step Exchange::finishExchange(Client* c) {
  endRequest(c, c->metrics.code);
  Upstream* u = c->up;
  c->up = nullptr;
  c->tryDeadline = 0;
  bool reusable = c->reqDone && c->sendPos == c->parsePos && c->upHeadOff == c->upHead.size() &&
                  u->resp.head().keepAlive && !u->eof && u->parsePos == u->in.len;
  pool_.release(u, reusable, draining_, now_);
  if (!c->reqDone) {
    c->closeAfter = true; // answered before the request ended: its rest is unreadable
  }
  return nextRequest(c);
}

Step Exchange::nextRequest(Client* c) {
  c->table.reset();
  if (c->closeAfter || draining_) {
    closeClient(c);
    return Step::kClosed;
  }
  if (c->upgradeReq) {
    c->req.reset(HTTP_REQUEST, opt_.limits); // the parser stops for good after an upgrade
  }
  c->phase = Phase::kHead;
  c->msgStart = c->sendPos = c->parsePos;
  c->headTimer = false;
  c->deadline = now_ + opt_.idleTimeoutMs;
  if (c->parsePos == c->in.len) {
    c->in.len = c->msgStart = c->sendPos = c->parsePos = 0;
    c->in.shrinkTo(opt_.bufferBytes); // grown to keep a body for a retry
  }
  return Step::kProgress;
}

void Exchange::reply(Client* c, int status, std::string_view text, std::string_view location,
                     bool close, bool asIs) {
  Counters::bump(counters_.localReplies);
  endRequest(c, status);
  dropUpstream(c);
  c->delayUntil = c->tryDeadline = 0; // no timer may start an upstream for this request now
  c->closeAfter = c->closeAfter || close || draining_;
  c->out.clear();
  c->outOff = 0;
  writeLocalResponse(status, text, location, c->closeAfter, c->out, asIs);
  if (c->phase == Phase::kExchange && c->deadline == 0) {
    // Answered while the request arrived: a client that does not take the answer is
    // given up on the exchange's idle timer, as it would have been mid-request.
    c->deadline = c->streamIdleDeadline;
  }
  c->phase = Phase::kReply;
}

void Exchange::endRequest(Client* c, int code) {
  if (!c->metrics.open) {
    return;
  }
  c->metrics.open = false;
  uint64_t took = nowUs_ > c->headStartUs ? nowUs_ - c->headStartUs : 0;
  stats_.request(c->metrics.destination, c->metrics.route, code, took);
}

Step Exchange::stepReply(Client* c) {
  size_t sent = 0;
  Step s = flushClient(c, nullptr, 0, &sent);
  if (s == Step::kClosed) {
    return s;
  }
  if (!c->out.empty()) {
    return s;
  }
  if (!c->closeAfter && !c->reqDone) {
    // Answered from the head (no route, redirect, directResponse, fault abort): the end
    // of the bodiless request is still in the parser, to be taken before the next head.
    size_t used = 0;
    size_t at = c->parsePos - c->msgStart;
    if (c->req.execute(c->in.at(c->msgStart), at, at, &used) != ParseEvent::kComplete) {
      c->closeAfter = true;
    }
  }
  if (c->closeAfter) {
    io_->shutdownWrite(c);
    c->phase = Phase::kLinger;
    c->deadline = now_ + kLingerMs;
    return Step::kProgress;
  }
  c->sendPos = c->parsePos;
  return nextRequest(c);
}

Step Exchange::stepLinger(Client* c) {
  for (;;) {
    c->in.len = 0;
    if (readSome(c->fd, c->in, c->readable, c->eof) == 0) {
      break;
    }
  }
  if (c->eof) {
    closeClient(c);
    return Step::kClosed;
  }
  return Step::kIdle;
}

Step Exchange::stepTunnel(Client* c) {
  Upstream* u = c->up;
  bool moved = false;
  // client -> upstream
  c->parsePos = c->in.len;
  size_t sent = 0;
  if (flushUpstream(c, u, c->parsePos - c->sendPos, &sent)) {
    c->sendPos += sent;
    moved = true;
  }
  if (c->sendPos == c->in.len) {
    c->in.len = c->msgStart = c->parsePos = c->sendPos = 0;
  }
  if (readSome(c->fd, c->in, c->readable, c->eof) > 0) {
    moved = true;
  }
  if (c->eof && c->sendPos == c->in.len && !c->tunnelClientEof) {
    c->tunnelClientEof = true;
    io_->shutdownWrite(u);
  }
  // upstream -> client
  u->parsePos = u->in.len;
  Step s = flushClient(c, u->in.at(u->sendPos), u->parsePos - u->sendPos, &sent);
  if (s == Step::kClosed) {
    return s;
  }
  u->sendPos += sent;
  moved |= s == Step::kProgress;
  if (u->sendPos == u->in.len) {
    u->in.len = u->msgStart = u->parsePos = u->sendPos = 0;
  }
  if (readSome(u->fd, u->in, u->readable, u->eof) > 0) {
    moved = true;
  }
  if (u->eof && u->sendPos == u->in.len && c->out.empty() && !c->tunnelUpEof) {
    c->tunnelUpEof = true;
    io_->shutdownWrite(c);
  }
  if (c->tunnelClientEof && c->tunnelUpEof) {
    closeClient(c);
    return Step::kClosed;
  }
  if (moved) {
    c->deadline = now_ + opt_.tunnelIdleTimeoutMs;
  }
  return moved ? Step::kProgress : Step::kIdle;
}

} // namespace veer::proxy
