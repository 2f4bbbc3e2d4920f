#include "proxy/engine.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>

#include "proxy/worker.h"

// The engine: options, listeners per thread, the shared table, start and stop. What a
// thread does is in worker.h and the rooms it names.

namespace veer::proxy {

Result<ListenAddr> ListenAddr::parse(std::string_view text) {
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return Error{EINVAL, "listen address '" + std::string(text) + "': want ADDR:PORT"};
  }
  std::string_view host = text.substr(0, colon);
  std::string_view portText = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  unsigned port = 0;
  auto [p, ec] = std::from_chars(portText.data(), portText.data() + portText.size(), port);
  if (ec != std::errc() || p != portText.data() + portText.size() || port > 65535) {
    return Error{EINVAL, "listen address '" + std::string(text) + "': bad port"};
  }
  std::optional<IpAddr> ip = IpAddr::parse(host);
  if (!ip) {
    return Error{EINVAL, "listen address '" + std::string(text) + "': bad IP address"};
  }
  ListenAddr a;
  a.len = toSockaddr(*ip, static_cast<uint16_t>(port), &a.addr);
  return a;
}

std::string ListenAddr::str() const {
  IpAddr ip = ipOf(addr);
  std::string host = ip.str();
  if (!ip.v4) {
    host = "[" + host + "]";
  }
  return host + ":" + std::to_string(portOf(addr));
}

// --- Engine ------------------------------------------------------------------

Result<std::unique_ptr<Engine>> Engine::create(const EngineOptions& options) {
  if (options.listen.empty()) {
    return Error{EINVAL, "no listen address"};
  }
  if (options.threads < 1) {
    return Error{EINVAL, "threads must be at least 1"};
  }
  if (options.mark != 0) {
    // SO_MARK needs CAP_NET_ADMIN: say so now, not as a 503 on every request.
    int probe = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rc = probe < 0
                 ? -1
                 : ::setsockopt(probe, SOL_SOCKET, SO_MARK, &options.mark, sizeof(options.mark));
    int err = errno;
    if (probe >= 0) {
      ::close(probe);
    }
    if (rc != 0) {
      return osError(err, "--mark " + std::to_string(options.mark) + ": SO_MARK");
    }
  }
  std::unique_ptr<Engine> e(new Engine());
  e->options_ = options;
  e->io_ = options.io == IoMode::kEpoll ? IoMode::kEpoll : IoMode::kUring;
  if (e->io_ == IoMode::kUring) {
    if (Status st = probeUring(); !st) {
      // No io_uring here (ENOSYS: too old or compiled out; EPERM: kernel.io_uring_disabled
      // or a seccomp filter; EINVAL: before 6.1): auto runs the same engine on epoll.
      if (options.io == IoMode::kUring) {
        return Error{st.error().code, "--io uring: " + st.error().message};
      }
      e->ioFallback_ = st.error().message;
      e->io_ = IoMode::kEpoll;
    }
  }
  TimeSource& time = options.time != nullptr ? *options.time : MonotonicTimeSource::instance();
  std::vector<ListenAddr> addrs = options.listen;
  for (int t = 0; t < options.threads; ++t) {
    auto w = std::make_unique<Worker>(*e, time);
    if (Status s = w->init(e->io_); !s) {
      return s.error();
    }
    for (size_t i = 0; i < addrs.size(); ++i) {
      if (Status s = w->bindListener(addrs[i], i); !s) {
        return s.error();
      }
      if (t == 0) {
        addrs[i] = w->boundAddr(i); // port 0: the other threads share the chosen port
      }
    }
    e->workers_.push_back(std::move(w));
  }
  return e;
}

Engine::~Engine() {
  stop(0);
}

const char* ioName(IoMode io) {
  switch (io) {
  case IoMode::kAuto:
    return "auto";
  case IoMode::kUring:
    return "io_uring";
  case IoMode::kEpoll:
    return "epoll";
  }
  return "?";
}

std::vector<ListenAddr> Engine::boundAddrs() const {
  std::vector<ListenAddr> out;
  for (size_t i = 0; i < options_.listen.size(); ++i) {
    out.push_back(workers_[0]->boundAddr(i));
  }
  return out;
}

void Engine::setTable(std::shared_ptr<const RouteTable> table) {
  {
    std::lock_guard<std::mutex> lock(tableMu_);
    table_ = std::move(table);
  }
  generation_.fetch_add(1, std::memory_order_acq_rel);
}

std::shared_ptr<const RouteTable> Engine::table() const {
  std::lock_guard<std::mutex> lock(tableMu_);
  return table_;
}

void Engine::start() {
  for (auto& w : workers_) {
    threads_.emplace_back([w = w.get()] { w->run(); });
  }
}

void Engine::stop(uint32_t drainMs) {
  for (auto& w : workers_) {
    w->requestStop(drainMs);
  }
  for (std::thread& t : threads_) {
    t.join();
  }
  threads_.clear();
}

EngineStats Engine::stats() const {
  EngineStats s;
  auto sum = [](const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); };
  for (const auto& w : workers_) {
    const Counters& c = w->counters;
    s.accepted += sum(c.accepted);
    s.requests += sum(c.requests);
    s.upstreamConnects += sum(c.upstreamConnects);
    s.upstreamReuses += sum(c.upstreamReuses);
    s.retries += sum(c.retries);
    s.localReplies += sum(c.localReplies);
    s.fallbacks += sum(c.fallbacks);
    s.mirrors += sum(c.mirrors);
    s.mirrorsDropped += sum(c.mirrorsDropped);
    s.requestTimeouts += sum(c.requestTimeouts);
    s.streamIdleTimeouts += sum(c.streamIdleTimeouts);
  }
  return s;
}

ProxyStats Engine::proxyStats() const {
  ProxyStats out;
  for (const auto& w : workers_) {
    w->stats.addTo(out);
  }
  return out;
}

} // namespace veer::proxy
