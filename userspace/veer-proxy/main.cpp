// veer-proxy: the node-local L7 fallback. Connections the connect hooks redirect here
// (or that reach a --listen address directly) are parsed as HTTP/1, routed per request
// with the route table the agent compiles (--routes, JSON), and forwarded to the chosen
// endpoint. The table is reloaded on SIGHUP and whenever the file is replaced; SIGTERM
// drains and exits. With --stats-socket, GET /stats there answers the request and
// connection counts (proxy/stats.h) as JSON, for the agent's /metrics.

#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "common/files.h"
#include "common/status_server.h"
#include "common/version.h"
#include "compiler/maglev.h"
#include "proxy/engine.h"

namespace veer::proxy {
namespace {

namespace fs = std::filesystem;

/** Loads --routes and tells the agent how it went on --ready-fd. */
class RouteLoader {
public:
  RouteLoader(std::string path, int readyFd, Engine& engine)
      : path_(std::move(path)), readyFd_(readyFd), engine_(engine) {}

  void load() {
    Result<std::string> bytes = readFile(path_);
    if (!bytes) {
      spdlog::error("{}; the last good table keeps serving", bytes.error().message);
      report("error " + bytes.error().message);
      return;
    }
    uint64_t digest = fnv1a64(bytes->data(), bytes->size());
    char hex[17];
    std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(digest));
    if (loaded_ && digest == digest_) {
      report(std::string("loaded ") + hex); // unchanged (a touch, a same-content rename)
      return;
    }
    Result<std::shared_ptr<RouteTable>> table = RouteTable::fromJson(*bytes);
    if (!table) {
      spdlog::error("{}: {}; the last good table keeps serving", path_, table.error().message);
      report("error " + path_ + ": " + table.error().message);
      return;
    }
    size_t services = (*table)->serviceCount();
    engine_.setTable(std::move(*table));
    loaded_ = true;
    digest_ = digest;
    spdlog::info("loaded {} ({} L7 services, digest {})", path_, services, hex);
    report(std::string("loaded ") + hex);
  }

private:
  void report(std::string line) {
    if (readyFd_ < 0) {
      return;
    }
    for (char& ch : line) {
      if (ch == '\n') {
        ch = ' '; // one line per attempt, whatever the message says
      }
    }
    line.push_back('\n');
    size_t off = 0;
    while (off < line.size()) {
      ssize_t n = ::write(readyFd_, line.data() + off, line.size() - off);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n <= 0) {
        spdlog::warn("--ready-fd {}: {}", readyFd_, std::strerror(errno));
        readyFd_ = -1;
        return;
      }
      off += n;
    }
  }

  std::string path_;
  int readyFd_;
  Engine& engine_;
  bool loaded_ = false;
  uint64_t digest_ = 0;
};

int run(EngineOptions options, const std::string& routes, const std::string& statsSocket,
        int readyFd, uint32_t drainMs) {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  // Blocked before the workers start, so they inherit the mask and only signalfd sees them.
  ::pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  int sigfd = ::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sigfd < 0) {
    spdlog::critical("signalfd: {}", std::strerror(errno));
    return 1;
  }
  // The agent replaces the file by rename: watch the directory for the name.
  fs::path file(routes);
  std::string dir = file.parent_path().empty() ? "." : file.parent_path().string();
  std::string name = file.filename().string();
  int ino = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (ino < 0 ||
      ::inotify_add_watch(ino, dir.c_str(), IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE) < 0) {
    spdlog::critical("inotify on {}: {}", dir, std::strerror(errno));
    return 1;
  }

  Result<std::unique_ptr<Engine>> engine = Engine::create(options);
  if (!engine) {
    spdlog::critical("{}", engine.error().message);
    return 1;
  }
  if (!(*engine)->ioFallbackReason().empty()) {
    spdlog::warn("io_uring unavailable ({}): using epoll", (*engine)->ioFallbackReason());
  }
  for (const ListenAddr& a : (*engine)->boundAddrs()) {
    spdlog::info("listening on {} ({} threads, {})", a.str(), options.threads,
                 veer::proxy::ioName((*engine)->io()));
  }
  std::unique_ptr<StatusServer> stats;
  if (!statsSocket.empty()) {
    Engine* e = engine->get();
    auto server = StatusServer::startUnix(statsSocket, {{"/stats", [e] {
                                                           return StatusServer::Response{
                                                               .contentType = "application/json",
                                                               .body = e->proxyStats().toJson()};
                                                         }}});
    if (server) {
      stats = std::move(*server);
    } else {
      // Metrics are not worth traffic: the proxy serves without them, and says so.
      spdlog::error("--stats-socket: {}; serving without stats", server.error().message);
    }
  }
  RouteLoader loader(routes, readyFd, **engine);
  loader.load(); // before start: the first request already sees the table
  (*engine)->start();

  pollfd fds[2] = {{sigfd, POLLIN, 0}, {ino, POLLIN, 0}};
  for (;;) {
    int n = ::poll(fds, 2, -1);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      spdlog::critical("poll: {}", std::strerror(errno));
      return 1;
    }
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo si{};
      if (::read(sigfd, &si, sizeof(si)) != sizeof(si)) {
        continue;
      }
      if (si.ssi_signo == SIGHUP) {
        loader.load();
        continue;
      }
      spdlog::info("signal {}: draining (at most {} ms)", si.ssi_signo, drainMs);
      (*engine)->stop(drainMs);
      EngineStats st = (*engine)->stats();
      spdlog::info("exiting: {} connections, {} requests, {} upstream connects, {} reuses, "
                   "{} retries, {} mirrored, {} mirrors dropped, {} request timeouts, "
                   "{} stream idle timeouts",
                   st.accepted, st.requests, st.upstreamConnects, st.upstreamReuses, st.retries,
                   st.mirrors, st.mirrorsDropped, st.requestTimeouts, st.streamIdleTimeouts);
      return 0;
    }
    if (fds[1].revents & POLLIN) {
      alignas(inotify_event) char buf[4096];
      bool ours = false;
      ssize_t len;
      while ((len = ::read(ino, buf, sizeof(buf))) > 0) {
        for (char* p = buf; p < buf + len;) {
          auto* ev = reinterpret_cast<inotify_event*>(p);
          if (ev->len > 0 && name == ev->name) {
            ours = true;
          }
          p += sizeof(inotify_event) + ev->len;
        }
      }
      if (ours) {
        loader.load();
      }
    }
  }
}

} // namespace
} // namespace veer::proxy

int main(int argc, char** argv) {
  CLI::App app{"veer-proxy: node-local HTTP/1 router for veer's L7 services"};
  app.set_version_flag("--version", std::string("veer-proxy ") + veer::veerVersion());
  std::vector<std::string> listen;
  std::string routes;
  std::string statsSocket;
  int readyFd = -1;
  uint32_t drainMs = 10000;
  veer::proxy::EngineOptions o;
  app.add_option("--listen", listen, "ADDR:PORT to accept on (repeatable; IPv4 or [IPv6])")
      ->required();
  app.add_option("--routes", routes, "route table JSON written by veer-agent")->required();
  app.add_option("--stats-socket", statsSocket,
                 "unix socket (mode 0600) answering GET /stats with the request and connection "
                 "counts as JSON, for veer-agent's /metrics");
  app.add_option("--ready-fd", readyFd,
                 "write 'loaded <fnv1a-64 hex>' or 'error <message>' after each load");
  app.add_option("--mark", o.mark, "SO_MARK on upstream sockets (the hooks skip them)");
  app.add_option("--io", o.io,
                 "event loop: io_uring, epoll, or auto (io_uring where the kernel allows it)")
      ->transform(CLI::CheckedTransformer(
          std::map<std::string, veer::proxy::IoMode>{{"auto", veer::proxy::IoMode::kAuto},
                                                     {"uring", veer::proxy::IoMode::kUring},
                                                     {"epoll", veer::proxy::IoMode::kEpoll}},
          CLI::ignore_case))
      ->default_str("auto");
  app.add_flag("!--no-defer-accept", o.deferAccept,
               "accept a connection before its first request arrives (veer-agent passes it, and "
               "--io epoll, with --socket-acceleration)");
  app.add_option("--threads", o.threads, "event loop threads (SO_REUSEPORT each)")
      ->capture_default_str()
      ->check(CLI::Range(1, 256));
  app.add_option("--max-header-bytes", o.limits.maxHeaderBytes, "largest head (431 above)")
      ->capture_default_str()
      ->check(CLI::Range(1024, 1 << 20));
  app.add_option("--max-headers", o.limits.maxHeaders, "most header fields (431 above)")
      ->capture_default_str()
      ->check(CLI::Range(8, 10000));
  app.add_option("--buffer-bytes", o.bufferBytes, "I/O buffer per socket direction")
      ->capture_default_str()
      ->check(CLI::Range(4096, 1 << 24));
  app.add_option("--header-timeout-ms", o.headerTimeoutMs, "head read deadline (408)")
      ->capture_default_str();
  app.add_option("--idle-timeout-ms", o.idleTimeoutMs, "keep-alive idle between requests (408)")
      ->capture_default_str();
  app.add_option("--request-receive-timeout-ms", o.requestReceiveTimeoutMs,
                 "whole request, head and body, from its first byte (408; Envoy's "
                 "request_timeout; 0: none)")
      ->capture_default_str();
  app.add_option("--stream-idle-timeout-ms", o.streamIdleTimeoutMs,
                 "request/response exchange with no byte moved either way (408, or close once "
                 "the response started; Envoy's stream_idle_timeout; 0: none)")
      ->capture_default_str();
  app.add_option("--connect-timeout-ms", o.connectTimeoutMs, "per upstream connect attempt")
      ->capture_default_str();
  app.add_option("--request-timeout-ms", o.requestTimeoutMs,
                 "request end to response end unless the route sets one (504)")
      ->capture_default_str();
  app.add_option("--upstream-idle-timeout-ms", o.upstreamIdleTimeoutMs,
                 "pooled idle upstream connection lifetime")
      ->capture_default_str();
  app.add_option("--tunnel-idle-timeout-ms", o.tunnelIdleTimeoutMs, "upgraded connection idle")
      ->capture_default_str();
  app.add_option("--retries", o.retries, "retries when a route sets none (Istio's default: 2)")
      ->capture_default_str()
      ->check(CLI::Range(0, 10));
  app.add_option("--retry-buffer-bytes", o.retryBufferBytes,
                 "largest request body kept for a retry or mirror (larger: neither)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1 << 24));
  app.add_option("--max-mirrors", o.maxMirrors,
                 "Istio mirror copies in flight per thread (more are dropped)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65536));
  app.add_option("--drain-ms", drainMs, "SIGTERM: longest wait for in-flight requests")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  for (const std::string& l : listen) {
    veer::Result<veer::proxy::ListenAddr> a = veer::proxy::ListenAddr::parse(l);
    if (!a) {
      spdlog::critical("--listen: {}", a.error().message);
      return 2;
    }
    o.listen.push_back(*a);
  }
  return veer::proxy::run(o, routes, statsSocket, readyFd, drainMs);
}
