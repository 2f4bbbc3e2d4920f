// veer-proxy's engine end to end on loopback, in-process and without root (Envoy
// filter-test style): mock upstreams on 127.0.0.2-4 (one per reviews version) behind a
// RouteTable compiled from Istio YAML (the agent's path: fromPlan -> toJson -> fromJson),
// a proxy Engine on 127.0.0.1 whose port is the service port, and blocking test clients.
// Nothing sleeps to wait: sockets listen before a constructor returns, and every wait is
// a blocking read of the answer the test expects (with a receive timeout as a backstop),
// or a bounded wait for an engine counter. Timeout tests run on simulated time: the
// engine's timers fire when the test advances the clock, exactly, and never before.

#include <arpa/inet.h>
#include <llhttp.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "config/loader.h"
#include "config/resolve.h"
#include "proxy/engine.h"
#include "proxy/retry.h"
#include "proxy/stats.h"
#include "proxy/time_source.h"

namespace veer::proxy {
namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

std::string lower(std::string s) {
  for (char& c : s) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return s;
}

std::string find(const Headers& h, const std::string& name) {
  for (const auto& [k, v] : h) {
    if (lower(k) == name) {
      return v;
    }
  }
  return "";
}

int count(const Headers& h, const std::string& name) {
  return static_cast<int>(
      std::count_if(h.begin(), h.end(), [&](const auto& kv) { return lower(kv.first) == name; }));
}

bool sendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) {
      return false;
    }
    data.remove_prefix(n);
  }
  return true;
}

/** Waits (20 s at most) for a condition another thread makes true. */
bool waitFor(const std::function<bool()>& cond) {
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!cond()) {
    if (std::chrono::steady_clock::now() > until) {
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

/** Which of the fds is readable first (20 s at most); -1 when none. */
int firstReadable(std::initializer_list<int> fds) {
  std::vector<pollfd> p;
  for (int fd : fds) {
    p.push_back({fd, POLLIN, 0});
  }
  if (::poll(p.data(), p.size(), 20000) <= 0) {
    return -1;
  }
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i].revents != 0) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

void setRecvTimeout(int fd, int seconds) {
  timeval tv{seconds, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

// --- mock upstream -------------------------------------------------------------

/** A request as the upstream saw it. */
struct Seen {
  std::string method, path;
  Headers headers;
  uint64_t bodyBytes = 0;
};

/** A listening socket on ip:port (0: ephemeral); *addr gets the bound address. */
int listenOn(const char* ip, uint16_t port, int backlog, sockaddr_in* addr) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  *addr = sockaddr_in{};
  addr->sin_family = AF_INET;
  addr->sin_port = htons(port);
  ::inet_pton(AF_INET, ip, &addr->sin_addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(addr), sizeof(*addr)) != 0 ||
      ::listen(fd, backlog) != 0) {
    ADD_FAILURE() << "bind " << ip << ":" << port << ": " << std::strerror(errno);
  }
  socklen_t len = sizeof(*addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(addr), &len);
  return fd;
}

/** What a mock does with its next requests (MockUpstream::script): answer this status,
 * close without answering, or hold the request without an answer until the test ends. */
constexpr int kClose = 0;
constexpr int kStall = -1;

/**
 * An HTTP/1.1 server on ip:port (port 0: ephemeral), a thread per connection. A script
 * (status codes, kClose, kStall) decides its next answers, then the paths do:
 * /chunked answers chunked; /big/N answers N bytes chunked; /ws switches protocols and
 * echoes; /204 answers 204 without a body; /garbage answers a non-HTTP line; /slow waits for
 * openGate(); /close closes after answering. Everything else: 200 "<name> <path> <body bytes>".
 * Every answer carries x-veer-version and server headers; Expect: 100-continue gets a 100 first.
 */
class MockUpstream {
public:
  MockUpstream(std::string name, const char* ip, uint16_t port) : name_(std::move(name)) {
    sockaddr_in a;
    lfd_ = listenOn(ip, port, 128, &a);
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] { acceptLoop(); });
  }

  ~MockUpstream() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      gateOpen_ = true;
      for (int fd : conns_) {
        ::shutdown(fd, SHUT_RDWR);
      }
    }
    cv_.notify_all();
    ::shutdown(lfd_, SHUT_RDWR);
    acceptor_.join();
    for (std::thread& t : threads_) {
      t.join();
    }
    ::close(lfd_);
  }

  uint16_t port() const { return port_; }
  int accepts() const { return accepts_.load(); }
  std::vector<Seen> seen() {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_;
  }
  void openGate() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      gateOpen_ = true;
    }
    cv_.notify_all();
  }
  /** The next requests, one entry each, whatever their path: a status code (answered
   * with body "<name> <status>"), kClose or kStall. */
  void script(std::vector<int> actions) {
    std::lock_guard<std::mutex> lock(mu_);
    script_.assign(actions.begin(), actions.end());
  }
  /** Blocks until n requests in all arrived (complete with their bodies), 20 s at most. */
  std::vector<Seen> waitSeen(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(20), [&] { return seen_.size() >= n || stopping_; });
    return seen_;
  }
  /** Blocks until n requests reached /slow (the proxy forwarded them). */
  void waitSlow(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return slowArrived_ >= n || stopping_; });
  }

private:
  struct ConnState {
    MockUpstream* self;
    int fd;
    Seen cur;
    std::string field;
    bool lastWasValue = false;
    std::vector<Seen> done;
  };

  void acceptLoop() {
    for (;;) {
      int fd = ::accept4(lfd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        return;
      }
      accepts_.fetch_add(1);
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) {
        ::close(fd);
        return;
      }
      conns_.push_back(fd);
      threads_.emplace_back([this, fd] { serve(fd); });
    }
  }

  static llhttp_settings_t settings() {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_url = [](llhttp_t* p, const char* at, size_t n) {
      static_cast<ConnState*>(p->data)->cur.path.append(at, n);
      return 0;
    };
    s.on_header_field = [](llhttp_t* p, const char* at, size_t n) {
      auto* st = static_cast<ConnState*>(p->data);
      if (st->lastWasValue || st->cur.headers.empty()) {
        st->cur.headers.emplace_back();
      }
      st->lastWasValue = false;
      st->cur.headers.back().first.append(at, n);
      return 0;
    };
    s.on_header_value = [](llhttp_t* p, const char* at, size_t n) {
      auto* st = static_cast<ConnState*>(p->data);
      st->lastWasValue = true;
      st->cur.headers.back().second.append(at, n);
      return 0;
    };
    s.on_headers_complete = [](llhttp_t* p) {
      auto* st = static_cast<ConnState*>(p->data);
      st->cur.method = llhttp_method_name(static_cast<llhttp_method_t>(p->method));
      if (lower(find(st->cur.headers, "expect")) == "100-continue") {
        sendAll(st->fd, "HTTP/1.1 100 Continue\r\n\r\n");
      }
      return 0;
    };
    s.on_body = [](llhttp_t* p, const char*, size_t n) {
      static_cast<ConnState*>(p->data)->cur.bodyBytes += n;
      return 0;
    };
    s.on_message_complete = [](llhttp_t* p) {
      auto* st = static_cast<ConnState*>(p->data);
      st->done.push_back(std::move(st->cur));
      st->cur = Seen{};
      st->lastWasValue = false;
      return 0;
    };
    return s;
  }

  std::string head(int status, const char* reason, const std::string& extra) {
    return "HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\nx-veer-version: " + name_ +
           "\r\nserver: mock\r\n" + extra;
  }

  void serve(int fd) {
    static const llhttp_settings_t kSettings = settings();
    llhttp_t parser;
    llhttp_init(&parser, ::HTTP_REQUEST, &kSettings);
    ConnState st{this, fd, {}, {}, false, {}};
    parser.data = &st;
    char buf[65536];
    for (;;) {
      ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) {
        break;
      }
      llhttp_errno_t err = llhttp_execute(&parser, buf, n);
      size_t used = err == HPE_OK ? n : llhttp_get_error_pos(&parser) - buf;
      bool closeNow = false;
      for (Seen& s : st.done) {
        {
          std::lock_guard<std::mutex> lock(mu_);
          seen_.push_back(s);
        }
        cv_.notify_all();
        if (!respond(fd, s, parser.upgrade ? std::string_view(buf + used, n - used) : "")) {
          closeNow = true;
          break;
        }
      }
      st.done.clear();
      if (closeNow || parser.upgrade || err != HPE_OK) {
        break;
      }
    }
    ::close(fd);
  }

  /** Answers one request; false when the connection should end. */
  bool respond(int fd, const Seen& s, std::string_view afterUpgrade) {
    int action = 200;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (!script_.empty()) {
        action = script_.front();
        script_.erase(script_.begin());
      }
      if (action == kStall) {
        cv_.wait(lock, [&] { return stopping_; });
        return false;
      }
    }
    if (action == kClose) {
      return false;
    }
    if (action != 200) {
      std::string body = name_ + " " + std::to_string(action) + "\n";
      return sendAll(fd, head(action, "Scripted",
                              "content-length: " + std::to_string(body.size()) + "\r\n\r\n") +
                             body);
    }
    if (s.path == "/ws") {
      sendAll(fd, head(101, "Switching Protocols",
                       "upgrade: websocket\r\nconnection: upgrade\r\n\r\n"));
      sendAll(fd, afterUpgrade);
      char buf[4096];
      ssize_t n;
      while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) {
        sendAll(fd, std::string_view(buf, n));
      }
      return false;
    }
    if (s.path == "/204") {
      return sendAll(fd, head(204, "No Content", "\r\n"));
    }
    if (s.path == "/garbage") {
      sendAll(fd, "HELLO WORLD\r\n\r\n");
      return false;
    }
    if (s.path == "/slow") {
      std::unique_lock<std::mutex> lock(mu_);
      ++slowArrived_;
      cv_.notify_all();
      cv_.wait(lock, [&] { return gateOpen_; });
    }
    if (s.path.rfind("/big/", 0) == 0) {
      uint64_t total = std::stoull(s.path.substr(5));
      if (!sendAll(fd, head(200, "OK", "transfer-encoding: chunked\r\n\r\n"))) {
        return false;
      }
      std::string chunk(65536, 'x');
      for (uint64_t sent = 0; sent < total;) {
        size_t n = std::min<uint64_t>(chunk.size(), total - sent);
        char sz[32];
        std::snprintf(sz, sizeof(sz), "%zx\r\n", n);
        if (!sendAll(fd, sz) || !sendAll(fd, std::string_view(chunk.data(), n)) ||
            !sendAll(fd, "\r\n")) {
          return false;
        }
        sent += n;
      }
      return sendAll(fd, "0\r\n\r\n");
    }
    std::string body = name_ + " " + s.path + " " + std::to_string(s.bodyBytes) + "\n";
    if (s.path == "/chunked") {
      size_t half = body.size() / 2;
      char a[24], b[24];
      std::snprintf(a, sizeof(a), "%zx\r\n", half);
      std::snprintf(b, sizeof(b), "%zx\r\n", body.size() - half);
      return sendAll(fd, head(200, "OK", "transfer-encoding: chunked\r\n\r\n") + a +
                             body.substr(0, half) + "\r\n" + b + body.substr(half) +
                             "\r\n0\r\n\r\n");
    }
    bool close = s.path == "/close";
    std::string extra = "content-length: " + std::to_string(body.size()) + "\r\n" +
                        (close ? "connection: close\r\n" : "") + "\r\n";
    if (s.method == "HEAD") {
      return sendAll(fd, head(200, "OK", extra)) && !close;
    }
    return sendAll(fd, head(200, "OK", extra) + body) && !close;
  }

  std::string name_;
  int lfd_ = -1;
  uint16_t port_ = 0;
  std::atomic<int> accepts_{0};
  std::thread acceptor_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false, gateOpen_ = false;
  int slowArrived_ = 0;
  std::vector<int> script_;
  std::vector<int> conns_;
  std::vector<std::thread> threads_;
  std::vector<Seen> seen_;
};

// --- test client ---------------------------------------------------------------

struct Response {
  int status = 0;
  Headers headers;
  std::string body;
  uint64_t bodyBytes = 0;
  bool complete = false;
  std::string header(const std::string& n) const { return find(headers, n); }
};

/** A blocking HTTP/1.1 client connection that reads responses one at a time. */
class TestClient {
public:
  explicit TestClient(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      ADD_FAILURE() << "connect to proxy: " << std::strerror(errno);
    }
    setRecvTimeout(fd_, 20);
    llhttp_init(&parser_, ::HTTP_RESPONSE, &settings());
  }
  ~TestClient() { ::close(fd_); }
  int fd() const { return fd_; }
  /** True when a response (or a part of one) is here to read. */
  bool readable() {
    pollfd p{fd_, POLLIN, 0};
    return !pending_.empty() || ::poll(&p, 1, 0) > 0;
  }

  void send(std::string_view data) { ASSERT_TRUE(sendAll(fd_, data)); }

  /** Reads one response (a 1xx counts as one). keepBody=false only counts body bytes. */
  Response read(bool headRequest = false, bool keepBody = true) {
    Response r;
    State st{&r, headRequest, keepBody};
    parser_.data = &st;
    for (;;) {
      if (!pending_.empty()) {
        llhttp_errno_t err = llhttp_execute(&parser_, pending_.data(), pending_.size());
        pending_.erase(0, err == HPE_OK ? pending_.size()
                                        : llhttp_get_error_pos(&parser_) - pending_.data());
        if (err == HPE_PAUSED) {
          llhttp_resume(&parser_);
          return r;
        }
        if (err != HPE_OK) {
          ADD_FAILURE() << "bad response: " << llhttp_errno_name(err);
          return r;
        }
        if (parser_.upgrade) {
          return r;
        }
      }
      char buf[65536];
      ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) {
        if (llhttp_finish(&parser_) == HPE_PAUSED) { // EOF ends a close-delimited body
          llhttp_resume(&parser_);
        }
        return r;
      }
      pending_.append(buf, n);
    }
  }

  /** True when the proxy closed the connection (EOF, or a reset, before any byte). */
  bool closedByPeer() {
    if (!pending_.empty()) {
      return false;
    }
    char c;
    ssize_t n = ::recv(fd_, &c, 1, 0);
    return n == 0 || (n < 0 && errno == ECONNRESET);
  }

  std::string readExactly(size_t n) {
    std::string out = pending_.substr(0, std::min(n, pending_.size()));
    pending_.erase(0, out.size());
    while (out.size() < n) {
      char buf[4096];
      ssize_t r = ::recv(fd_, buf, std::min(sizeof(buf), n - out.size()), 0);
      if (r <= 0) {
        break;
      }
      out.append(buf, r);
    }
    return out;
  }

private:
  struct State {
    Response* r;
    bool headRequest;
    bool keepBody;
    bool lastWasValue = false;
  };
  static const llhttp_settings_t& settings() {
    static const llhttp_settings_t kSettings = [] {
      llhttp_settings_t s;
      llhttp_settings_init(&s);
      s.on_header_field = [](llhttp_t* p, const char* at, size_t n) {
        auto* st = static_cast<State*>(p->data);
        if (st->lastWasValue || st->r->headers.empty()) {
          st->r->headers.emplace_back();
        }
        st->lastWasValue = false;
        st->r->headers.back().first.append(at, n);
        return 0;
      };
      s.on_header_value = [](llhttp_t* p, const char* at, size_t n) {
        auto* st = static_cast<State*>(p->data);
        st->lastWasValue = true;
        st->r->headers.back().second.append(at, n);
        return 0;
      };
      s.on_headers_complete = [](llhttp_t* p) {
        auto* st = static_cast<State*>(p->data);
        st->r->status = p->status_code;
        return st->headRequest ? 1 : 0;
      };
      s.on_body = [](llhttp_t* p, const char* at, size_t n) {
        auto* st = static_cast<State*>(p->data);
        st->r->bodyBytes += n;
        if (st->keepBody) {
          st->r->body.append(at, n);
        }
        return 0;
      };
      s.on_message_complete = [](llhttp_t* p) {
        static_cast<State*>(p->data)->r->complete = true;
        return int{HPE_PAUSED};
      };
      return s;
    }();
    return kSettings;
  }

  int fd_ = -1;
  llhttp_t parser_;
  std::string pending_;
};

std::string get(const std::string& path, const std::string& extra = "") {
  return "GET " + path + " HTTP/1.1\r\nHost: reviews:9080\r\n" + extra + "\r\n";
}

// --- routes --------------------------------------------------------------------

/**
 * Bookinfo reviews behind the proxy: the service address is the proxy's own
 * (127.0.0.1:servicePort, as when it listens directly on a service address), the pods
 * are the mocks. tableTag goes into a response header, so a test can tell tables apart.
 */
std::string reviewsConfig(uint16_t servicePort, uint16_t podPort, const std::string& tableTag,
                          const std::string& defaultRoute) {
  std::string sp = std::to_string(servicePort), pp = std::to_string(podPort);
  std::string pods;
  const std::pair<const char*, const char*> kPods[] = {{"reviews-v1", "127.0.0.2"},
                                                       {"reviews-v1-b", "127.0.0.5"},
                                                       {"reviews-v2", "127.0.0.3"},
                                                       {"reviews-v3", "127.0.0.4"}};
  for (const auto& [name, ip] : kPods) {
    std::string version = std::string(name).substr(8, 2);
    pods += "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: " + std::string(name) +
            "\n  namespace: default\n  labels:\n    app: reviews\n    version: " + version +
            "\nspec:\n  containers:\n  - name: reviews\n    ports:\n    - name: http\n"
            "      containerPort: " +
            pp + "\nstatus:\n  phase: Running\n  podIP: " + ip + "\n  podIPs:\n  - ip: " + ip +
            "\n  conditions:\n  - type: Ready\n    status: \"True\"\n";
  }
  return "apiVersion: v1\nkind: Service\nmetadata:\n  name: reviews\n  namespace: default\n"
         "spec:\n  clusterIP: 127.0.0.1\n  ports:\n  - name: http\n    port: " +
         sp + "\n    protocol: TCP\n    targetPort: " + pp + "\n  selector:\n    app: reviews\n" +
         pods +
         "---\napiVersion: networking.istio.io/v1alpha3\nkind: DestinationRule\nmetadata:\n"
         "  name: reviews\n  namespace: default\nspec:\n  host: reviews\n  subsets:\n"
         "  - name: v1\n    labels:\n      version: v1\n  - name: v2\n    labels:\n      version: "
         "v2\n"
         "  - name: v3\n    labels:\n      version: v3\n"
         "---\napiVersion: networking.istio.io/v1alpha3\nkind: VirtualService\nmetadata:\n"
         "  name: reviews\n  namespace: default\nspec:\n  hosts:\n  - reviews\n  http:\n"
         "  - match:\n    - headers:\n        end-user:\n          exact: jason\n"
         "    headers:\n      request:\n        set:\n          x-req-set: \"1\"\n"
         "        add:\n          x-req-add: a\n        remove:\n        - x-drop\n"
         "      response:\n        add:\n          x-table: " +
         tableTag +
         "\n        remove:\n        - server\n"
         "    route:\n    - destination:\n        host: reviews\n        subset: v3\n"
         "  - headers:\n      response:\n        add:\n          x-table: " +
         tableTag +
         "\n"
         "    route:\n" +
         defaultRoute;
}

const char* kSplit9010 =
    "    - destination:\n        host: reviews\n        subset: v1\n      weight: 90\n"
    "    - destination:\n        host: reviews\n        subset: v2\n      weight: 10\n";
const char* kAllV2 = "    - destination:\n        host: reviews\n        subset: v2\n";
const char* kAllV1 = "    - destination:\n        host: reviews\n        subset: v1\n";

std::shared_ptr<const RouteTable> compile(const std::string& yaml) {
  LoadResult l = loadString(yaml, "reviews.yaml");
  for (const auto& d : l.diags) {
    if (d.severity == Diagnostic::Severity::kError) {
      ADD_FAILURE() << d.format();
    }
  }
  ResolveResult r = resolve(l.config);
  std::shared_ptr<RouteTable> planned = RouteTable::fromPlan(r.plan, l.config, RouteOptions{});
  if (!planned || planned->serviceCount() == 0) {
    ADD_FAILURE() << "no L7 service in the plan";
    return planned;
  }
  // The agent's path: the table goes through JSON to the proxy.
  Result<std::shared_ptr<RouteTable>> t = RouteTable::fromJson(planned->toJson());
  if (!t) {
    ADD_FAILURE() << t.error().message;
    return nullptr;
  }
  return *t;
}

uint64_t rssKb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) {
      return std::stoull(line.substr(6));
    }
  }
  return 0;
}

class ProxyEngine : public testing::TestWithParam<IoMode> {
protected:
  void SetUp() override {
    v1_ = std::make_unique<MockUpstream>("v1", "127.0.0.2", 0);
    v2_ = std::make_unique<MockUpstream>("v2", "127.0.0.3", v1_->port());
    v3_ = std::make_unique<MockUpstream>("v3", "127.0.0.4", v1_->port());
  }
  void TearDown() override {
    if (engine_) {
      engine_->stop(0);
    }
  }

  void start(EngineOptions o = {}, const char* defaultRoute = kSplit9010) {
    o.listen = {*ListenAddr::parse("127.0.0.1:0")};
    o.io = GetParam();
    Result<std::unique_ptr<Engine>> e = Engine::create(o);
    ASSERT_TRUE(e) << e.error().message;
    engine_ = std::move(*e);
    ASSERT_EQ(engine_->io(), GetParam()); // the backend under test, never a fallback
    port_ = ntohs(reinterpret_cast<const sockaddr_in&>(engine_->boundAddrs()[0].addr).sin_port);
    setRoutes("t1", defaultRoute);
    engine_->start();
  }

  void setRoutes(const std::string& tag, const char* defaultRoute) {
    setYaml(reviewsConfig(port_, v1_->port(), tag, defaultRoute));
  }

  void setYaml(const std::string& yaml) {
    std::shared_ptr<const RouteTable> t = compile(yaml);
    ASSERT_NE(t, nullptr);
    engine_->setTable(t);
  }

  /** Options whose timers run on the fixture's simulated clock. */
  EngineOptions simulated(EngineOptions o = {}) {
    o.time = &time_;
    return o;
  }
  /** Moves simulated time; every worker has run what fell due when it returns. */
  void advance(uint64_t ms) { ASSERT_TRUE(time_.advance(ms)) << "a worker did not catch up"; }
  /** Waits until the engine has taken n requests (their timers are armed then). */
  void waitRequests(uint64_t n) {
    ASSERT_TRUE(waitFor([&] { return engine_->stats().requests >= n; }))
        << engine_->stats().requests << " requests of " << n;
  }

  /**
   * Sends (the rest of) a request and reads its answer while its retries back off on
   * simulated time: whenever the engine schedules another attempt, time moves past the
   * longest back-off (250 ms).
   */
  Response sendRetrying(TestClient& c, const std::string& data) {
    uint64_t retries = engine_->stats().retries;
    c.send(data);
    for (;;) {
      bool moved = waitFor([&] { return c.readable() || engine_->stats().retries > retries; });
      if (!moved || c.readable()) {
        return c.read();
      }
      retries = engine_->stats().retries;
      advance(250);
    }
  }

  int upstreamAccepts() const { return v1_->accepts() + v2_->accepts() + v3_->accepts(); }
  size_t upstreamRequests() const {
    return v1_->seen().size() + v2_->seen().size() + v3_->seen().size();
  }

  std::unique_ptr<MockUpstream> v1_, v2_, v3_;
  SimulatedTimeSource time_; // outlives engine_
  std::unique_ptr<Engine> engine_;
  uint16_t port_ = 0;
};

// --- routing -------------------------------------------------------------------

TEST_P(ProxyEngine, RoutesEachRequestOnOneKeepAliveConnection) {
  start();
  TestClient c(port_);
  std::map<std::string, int> versions;
  for (int i = 0; i < 300; ++i) {
    bool jason = i % 3 == 0;
    c.send(get("/r/" + std::to_string(i), jason ? "end-user: jason\r\n" : ""));
    Response r = c.read();
    ASSERT_EQ(r.status, 200) << i;
    std::string v = r.header("x-veer-version");
    if (jason) {
      ASSERT_EQ(v, "v3") << i;
    } else {
      ++versions[v];
    }
    EXPECT_EQ(r.body, v + " /r/" + std::to_string(i) + " 0\n");
  }
  // 200 unmatched requests at 90/10: both versions, v1 far ahead (binomial, p < 1e-9
  // for v2 outside [3, 45]).
  EXPECT_EQ(versions["v1"] + versions["v2"], 200);
  EXPECT_GE(versions["v2"], 3);
  EXPECT_LE(versions["v2"], 45);
  // Pool reuse: one upstream connection per live endpoint, not one per request.
  EXPECT_LE(upstreamAccepts(), 3);
  EXPECT_GE(engine_->stats().upstreamReuses, 290U);
}

TEST_P(ProxyEngine, HeaderEditsOnRequestAndResponseAndHopByHop) {
  start();
  TestClient c(port_);
  c.send(get("/edit", "end-user: jason\r\nx-drop: 1\r\nx-req-set: old\r\n"
                      "Connection: keep-alive, x-hop\r\nx-hop: secret\r\nKeep-Alive: 5\r\n"));
  Response r = c.read();
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.header("x-table"), "t1");
  EXPECT_EQ(count(r.headers, "server"), 0); // removed by the route
  std::vector<Seen> seen = v3_->seen();
  ASSERT_EQ(seen.size(), 1U);
  const Headers& h = seen[0].headers;
  EXPECT_EQ(find(h, "x-req-set"), "1");
  EXPECT_EQ(count(h, "x-req-set"), 1);
  EXPECT_EQ(find(h, "x-req-add"), "a");
  EXPECT_EQ(count(h, "x-drop"), 0);
  EXPECT_EQ(count(h, "x-hop"), 0);      // named by Connection: hop-by-hop
  EXPECT_EQ(count(h, "keep-alive"), 0); // RFC 9110 7.6.1
  EXPECT_EQ(count(h, "connection"), 0);
  EXPECT_EQ(find(h, "host"), "reviews:9080");
  EXPECT_EQ(find(h, "end-user"), "jason");
}

TEST_P(ProxyEngine, PipelinedRequestsAnswerInOrder) {
  start();
  TestClient c(port_);
  std::string burst;
  for (int i = 0; i < 8; ++i) {
    burst += get("/p/" + std::to_string(i), i % 2 ? "end-user: jason\r\n" : "");
  }
  c.send(burst);
  for (int i = 0; i < 8; ++i) {
    Response r = c.read();
    ASSERT_EQ(r.status, 200) << i;
    EXPECT_NE(r.body.find(" /p/" + std::to_string(i) + " "), std::string::npos) << r.body;
    if (i % 2) {
      EXPECT_EQ(r.header("x-veer-version"), "v3");
    }
  }
}

// --- bodies --------------------------------------------------------------------

TEST_P(ProxyEngine, ChunkedBodiesBothWays) {
  start();
  TestClient c(port_);
  c.send("POST /chunked HTTP/1.1\r\nHost: reviews\r\nend-user: jason\r\n"
         "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n");
  Response r = c.read();
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.header("transfer-encoding"), "chunked");
  EXPECT_EQ(r.body, "v3 /chunked 11\n");
  // The connection goes on after a chunked exchange.
  c.send(get("/after", "end-user: jason\r\n"));
  EXPECT_EQ(c.read().body, "v3 /after 0\n");
}

TEST_P(ProxyEngine, ExpectContinueIsRelayed) {
  start();
  TestClient c(port_);
  c.send("PUT /up HTTP/1.1\r\nHost: reviews\r\nend-user: jason\r\nContent-Length: 4\r\n"
         "Expect: 100-continue\r\n\r\n");
  Response interim = c.read();
  ASSERT_EQ(interim.status, 100); // the client sends the body only after this
  c.send("data");
  Response r = c.read();
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "v3 /up 4\n");
}

TEST_P(ProxyEngine, UpgradeSplicesBytesBothWays) {
  start();
  TestClient c(port_);
  c.send(get("/ws",
             "end-user: jason\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"));
  Response r = c.read();
  ASSERT_EQ(r.status, 101);
  EXPECT_EQ(lower(r.header("upgrade")), "websocket");
  c.send("ping-1");
  EXPECT_EQ(c.readExactly(6), "ping-1");
  c.send(std::string(100000, 'w'));
  EXPECT_EQ(c.readExactly(100000), std::string(100000, 'w'));
  std::vector<Seen> seen = v3_->seen();
  ASSERT_EQ(seen.size(), 1U);
  EXPECT_EQ(lower(find(seen[0].headers, "upgrade")), "websocket");
}

TEST_P(ProxyEngine, HeadAndHttp10) {
  start();
  {
    TestClient c(port_);
    c.send("HEAD /h HTTP/1.1\r\nHost: reviews\r\nend-user: jason\r\n\r\n");
    Response r = c.read(true);
    ASSERT_EQ(r.status, 200);
    EXPECT_NE(r.header("content-length"), "0"); // the length of the GET body, none sent
    c.send(get("/after-head", "end-user: jason\r\n"));
    EXPECT_EQ(c.read().body, "v3 /after-head 0\n");
    c.send(get("/204", "end-user: jason\r\n"));
    EXPECT_EQ(c.read().status, 204);
    c.send(get("/after-204", "end-user: jason\r\n"));
    EXPECT_EQ(c.read().body, "v3 /after-204 0\n");
  }
  {
    TestClient c(port_);
    c.send("GET /ten HTTP/1.0\r\nend-user: jason\r\n\r\n");
    Response r = c.read();
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "v3 /ten 0\n");
    EXPECT_TRUE(c.closedByPeer()); // HTTP/1.0 without keep-alive
  }
  {
    TestClient c(port_);
    c.send(get("/bye", "end-user: jason\r\nConnection: close\r\n"));
    Response r = c.read();
    EXPECT_EQ(r.header("connection"), "close");
    EXPECT_TRUE(c.closedByPeer());
  }
}

TEST_P(ProxyEngine, HugeBodiesStreamWithBoundedMemory) {
  start();
  constexpr uint64_t kBytes = 256ULL << 20;
  uint64_t before = rssKb();
  TestClient c(port_);
  // Upload: Content-Length, sent in 1 MiB pieces while the proxy forwards.
  c.send("POST /upload HTTP/1.1\r\nHost: reviews\r\nend-user: jason\r\nContent-Length: " +
         std::to_string(kBytes) + "\r\n\r\n");
  std::string piece(1 << 20, 'u');
  for (uint64_t s = 0; s < kBytes; s += piece.size()) {
    c.send(piece);
  }
  Response up = c.read();
  ASSERT_EQ(up.status, 200);
  EXPECT_EQ(up.body, "v3 /upload " + std::to_string(kBytes) + "\n");
  // Download: chunked, counted not kept.
  c.send(get("/big/" + std::to_string(kBytes), "end-user: jason\r\n"));
  Response down = c.read(false, false);
  ASSERT_EQ(down.status, 200);
  EXPECT_TRUE(down.complete);
  EXPECT_EQ(down.bodyBytes, kBytes);
  // 512 MiB went through; the whole process grew by far less than one body.
  EXPECT_LT(rssKb() - std::min(before, rssKb()), 64U * 1024) << "before " << before;
}

// --- failures ------------------------------------------------------------------

TEST_P(ProxyEngine, ConnectFailureMovesToTheNextEndpoint) {
  // v1 has two pods; reviews-v1-b (127.0.0.5) listens nowhere: refused, then the other.
  start({}, kAllV1);
  TestClient c(port_);
  for (int i = 0; i < 40; ++i) {
    c.send(get("/v1/" + std::to_string(i)));
    Response r = c.read();
    ASSERT_EQ(r.status, 200) << i;
    EXPECT_EQ(r.header("x-veer-version"), "v1");
  }
  EXPECT_EQ(v1_->seen().size(), 40U);
  // One refused connect, then the dead pod is ejected: tried last, so never again here.
  EXPECT_EQ(engine_->stats().retries, 1U) << "0: the dead pod was never picked first";
}

TEST_P(ProxyEngine, NoLiveEndpointIs503) {
  start({}, kAllV1);
  v1_.reset(); // both v1 pods down now
  TestClient c(port_);
  c.send(get("/down"));
  Response r = c.read();
  EXPECT_EQ(r.status, 503);
  // The connection survives a local answer to a bodiless request.
  c.send(get("/up", "end-user: jason\r\n"));
  EXPECT_EQ(c.read().status, 200);
}

// consistentHash httpCookie with a ttl: a request without the cookie gets one made for
// it (Envoy's behaviour); a request that carries it gets none. (That the cookie's hash
// keeps one endpoint is the router's, tested in router_test.)
TEST_P(ProxyEngine, HashCookieIsHandedOutOnce) {
  start({}, kAllV1);
  std::string yaml = reviewsConfig(port_, v1_->port(), "t1", kAllV1);
  const std::string host = "spec:\n  host: reviews\n";
  yaml.replace(yaml.find(host), host.size(),
               host + "  trafficPolicy:\n    loadBalancer:\n      consistentHash:\n"
                      "        httpCookie:\n          name: stick\n          ttl: 60s\n");
  setYaml(yaml);
  TestClient c(port_);
  c.send(get("/first"));
  Response first = c.read();
  ASSERT_EQ(first.status, 200);
  const std::string setCookie = first.header("set-cookie");
  ASSERT_EQ(setCookie.rfind("stick=", 0), 0U) << setCookie;
  EXPECT_NE(setCookie.find("Max-Age=60"), std::string::npos) << setCookie;
  const std::string cookie = setCookie.substr(0, setCookie.find(';'));
  for (int i = 0; i < 10; ++i) {
    c.send(get("/again", "cookie: " + cookie + "\r\n"));
    Response r = c.read();
    ASSERT_EQ(r.status, 200);
    EXPECT_EQ(r.header("set-cookie"), "") << "a client with the cookie gets no new one";
  }
  EXPECT_EQ(v1_->seen().size(), 11U);
}

// ASM fallback case noavailabled: every pod of the chosen subset refuses, so the
// request is served by the fallback subset instead of failing.
TEST_P(ProxyEngine, NoAvailableEndpointGoesToTheAsmFallback) {
  start({}, "    - destination:\n        host: reviews\n        subset: v2\n"
            "      fallback:\n        case: noavailabled\n        target:\n"
            "          host: reviews\n          subset: v3\n");
  v2_.reset(); // the only v2 pod is down: its connects are refused
  TestClient c(port_);
  for (int i = 0; i < 5; ++i) {
    c.send(get("/fb/" + std::to_string(i)));
    Response r = c.read();
    ASSERT_EQ(r.status, 200) << i;
    EXPECT_EQ(r.header("x-veer-version"), "v3") << i;
  }
  EXPECT_EQ(engine_->stats().fallbacks, 5U);
}

TEST_P(ProxyEngine, PooledConnectionClosedByUpstreamIsRetried) {
  start();
  TestClient c(port_);
  c.send(get("/close", "end-user: jason\r\n")); // upstream answers, then closes
  ASSERT_EQ(c.read().status, 200);
  for (int i = 0; i < 5; ++i) {
    c.send(get("/again", "end-user: jason\r\n"));
    ASSERT_EQ(c.read().status, 200) << i;
  }
  EXPECT_EQ(v3_->seen().size(), 6U);
}

// --- local answers -------------------------------------------------------------

TEST_P(ProxyEngine, RedirectCodeAndDirectResponseBody) {
  start();
  std::string yaml = reviewsConfig(port_, v1_->port(), "t1", kAllV1);
  const std::string http = "  http:\n";
  yaml.insert(yaml.find(http) + http.size(),
              "  - match:\n    - uri: {prefix: /old}\n"
              "    redirect: {uri: /new, redirectCode: 308}\n"
              "  - match:\n    - uri: {exact: /tea}\n"
              "    directResponse: {status: 418, body: {string: \"short and stout\"}}\n"
              "  - match:\n    - uri: {exact: /empty}\n    directResponse: {status: 204}\n");
  setYaml(yaml);
  TestClient c(port_);
  c.send(get("/old/page"));
  Response moved = c.read();
  EXPECT_EQ(moved.status, 308);
  EXPECT_EQ(moved.header("location"), "/new");
  c.send(get("/tea"));
  Response tea = c.read();
  EXPECT_EQ(tea.status, 418);
  EXPECT_EQ(tea.body, "short and stout") << "the body as written, nothing added";
  EXPECT_EQ(tea.header("content-type"), "text/plain");
  c.send(get("/empty"));
  Response empty = c.read();
  EXPECT_EQ(empty.status, 204);
  EXPECT_EQ(empty.body, "");
  c.send(get("/after"));
  EXPECT_EQ(c.read().status, 200) << "local answers keep the connection";
  EXPECT_EQ(upstreamRequests(), 1U);
}

// --- mirror --------------------------------------------------------------------

const char* kV2MirrorV3 = "    - destination:\n        host: reviews\n        subset: v2\n"
                          "    mirror:\n      host: reviews\n      subset: v3\n";

TEST_P(ProxyEngine, MirrorSendsACopyToTheShadowHost) {
  start({}, kV2MirrorV3);
  TestClient c(port_);
  c.send(get("/m1"));
  Response r = c.read();
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.header("x-veer-version"), "v2") << "the answer is the primary's";
  c.send("POST /m2 HTTP/1.1\r\nHost: reviews:9080\r\nContent-Length: 5\r\n\r\nhello");
  ASSERT_EQ(c.read().body, "v2 /m2 5\n");
  std::vector<Seen> copies = v3_->waitSeen(2);
  ASSERT_EQ(copies.size(), 2U);
  // Two copies on two connections: in either order.
  std::sort(copies.begin(), copies.end(),
            [](const Seen& a, const Seen& b) { return a.path < b.path; });
  EXPECT_EQ(copies[0].path, "/m1");
  EXPECT_EQ(find(copies[0].headers, "host"), "reviews-shadow:9080") << "Envoy's shadow host";
  EXPECT_EQ(copies[1].method, "POST");
  EXPECT_EQ(copies[1].bodyBytes, 5U) << "the body goes with the copy";
  EXPECT_EQ(engine_->stats().mirrors, 2U);
  EXPECT_EQ(v2_->seen().size(), 2U);
  // The copies' connections are upstream connections to v3, as v3 accepted them.
  ProxyStats st = engine_->proxyStats();
  const std::string port = std::to_string(port_);
  EXPECT_EQ((st.connections[ServiceLabels{"default", "reviews", port, "v3"}]), 2U);
  EXPECT_EQ(v3_->accepts(), 2);
}

TEST_P(ProxyEngine, MirrorPercentageIsExactAndASlowMirrorNeverHoldsThePrimary) {
  start({}, (std::string(kV2MirrorV3) + "    mirrorPercentage: {value: 50}\n").c_str());
  TestClient c(port_);
  for (int i = 0; i < 10; ++i) {
    c.send(get("/half/" + std::to_string(i)));
    ASSERT_EQ(c.read().status, 200) << i;
  }
  EXPECT_EQ(v3_->waitSeen(5).size(), 5U);
  EXPECT_EQ(engine_->stats().mirrors, 5U);
  EXPECT_EQ(engine_->stats().mirrorsDropped, 0U);

  // Every copy now hangs at the mirror: two stay in flight, the rest are dropped, and
  // the primary answers all the same.
  EngineOptions o;
  o.maxMirrors = 2;
  o.retryBufferBytes = 4096;
  engine_->stop(0);
  start(o, kV2MirrorV3);
  v3_->script(std::vector<int>(8, kStall));
  for (int i = 0; i < 5; ++i) {
    TestClient k(port_);
    k.send(get("/stuck/" + std::to_string(i)));
    ASSERT_EQ(k.read().status, 200) << i;
  }
  // A body the proxy did not keep is not copied either.
  TestClient big(port_);
  big.send("PUT /big HTTP/1.1\r\nHost: reviews\r\nContent-Length: 100000\r\n\r\n" +
           std::string(100000, 'x'));
  ASSERT_EQ(big.read().status, 200);
  EXPECT_EQ(engine_->stats().mirrors, 2U);
  EXPECT_EQ(engine_->stats().mirrorsDropped, 4U);
}

// --- retries -------------------------------------------------------------------

/** The default rule (not jason) to v2's single pod, with these rule-level YAML lines. */
std::string v2With(const std::string& ruleLines) {
  return std::string(kAllV2) + ruleLines;
}

// Istio's default policy (no retries block): 2 retries on connect-failure and on 503
// (retriable-status-codes), each to an endpoint not tried yet while there is one.
TEST_P(ProxyEngine, DefaultPolicyRetries503OnAnotherEndpointButNot500) {
  MockUpstream v1b("v1b", "127.0.0.5", v1_->port()); // v1 now has two live pods
  start(simulated(), kAllV1);
  v1_->script({503});
  v1b.script({503});
  TestClient c(port_);
  Response r = sendRetrying(c, get("/r"));
  ASSERT_EQ(r.status, 200);
  // 503 from one pod, 503 from the other (previous hosts are avoided), then the first.
  EXPECT_EQ(v1_->seen().size() + v1b.seen().size(), 3U);
  EXPECT_GE(v1_->seen().size(), 1U);
  EXPECT_GE(v1b.seen().size(), 1U);
  EXPECT_EQ(engine_->stats().retries, 2U);

  v1_->script({500});
  v1b.script({500});
  Response r500 = sendRetrying(c, get("/r500"));
  EXPECT_EQ(r500.status, 500) << "500 is not in Istio's default policy";
  EXPECT_EQ(v1_->seen().size() + v1b.seen().size(), 4U);
}

struct RetryCase {
  const char* retries; // the rule's retries block
  std::vector<int> script;
  int status;      // what the client gets
  size_t attempts; // requests the upstream saw
};

TEST_P(ProxyEngine, RetryOnConditionsAndAttempts) {
  start(simulated(), kAllV2);
  const RetryCase cases[] = {
      {"{attempts: 2, retryOn: 5xx}", {500}, 200, 2},
      {"{attempts: 2, retryOn: 5xx}", {500, 502, 599}, 599, 3},
      {"{attempts: 3, retryOn: gateway-error}", {500}, 500, 1},
      {"{attempts: 3, retryOn: gateway-error}", {502, 503, 504}, 200, 4},
      {"{attempts: 1, retryOn: retriable-4xx}", {409}, 200, 2},
      {"{attempts: 1, retryOn: retriable-4xx}", {404}, 404, 1},
      {"{attempts: 1, retryOn: \"429,connect-failure\"}", {429}, 200, 2},
      {"{attempts: 2, retryOn: \"connect-failure\"}", {503}, 503, 1},
      {"{attempts: 2}", {503}, 200, 2}, // retryOn unset: Istio's default conditions
      {"{attempts: 0}", {503}, 503, 1},
      {"{perTryTimeout: 1s}", {503}, 503, 1}, // attempts unset: Istio reads 0
  };
  size_t seen = 0;
  for (const RetryCase& k : cases) {
    setRoutes("t1", v2With(std::string("    retries: ") + k.retries + "\n").c_str());
    v2_->script(k.script);
    TestClient c(port_);
    Response r = sendRetrying(c, get("/retry"));
    EXPECT_EQ(r.status, k.status) << k.retries;
    EXPECT_EQ(v2_->seen().size() - seen, k.attempts) << k.retries;
    seen = v2_->seen().size();
    v2_->script({});
  }
}

TEST_P(ProxyEngine, ResetBeforeResponseIsRetriedWithTheWholeBody) {
  start(simulated(), v2With("    retries: {attempts: 1, retryOn: reset}\n").c_str());
  const std::string body(3000, 'b');
  const std::string post =
      "POST /post HTTP/1.1\r\nHost: reviews\r\nContent-Length: 3000\r\n\r\n" + body;
  v2_->script({kClose});
  TestClient c(port_);
  Response r = sendRetrying(c, post);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "v2 /post 3000\n") << "the retry carried the whole body";
  ASSERT_EQ(v2_->seen().size(), 2U);
  EXPECT_EQ(v2_->seen()[0].bodyBytes, 3000U);

  // Istio's default policy has no `reset`: a POST whose connection closes unanswered is
  // a 502 (not the keep-alive race: the request was written and is not idempotent).
  setRoutes("t1", kAllV2);
  v2_->script({kClose});
  EXPECT_EQ(sendRetrying(c, post).status, 502);
  EXPECT_EQ(v2_->seen().size(), 3U);
}

TEST_P(ProxyEngine, PerTryTimeoutRetriesAndTheRouteTimeoutBoundsThemAll) {
  start(simulated(),
        v2With("    retries: {attempts: 2, perTryTimeout: 200ms, retryOn: 5xx}\n").c_str());
  v2_->script({kStall});
  TestClient a(port_);
  a.send(get("/stall-once"));
  ASSERT_EQ(v2_->waitSeen(1).size(), 1U); // the attempt is out: its 200 ms run from here
  advance(199);
  EXPECT_EQ(engine_->stats().retries, 0U);
  advance(1);
  EXPECT_EQ(engine_->stats().retries, 1U) << "the per-try timeout fired at 200 ms exactly";
  advance(25); // the first back-off is below 25 ms
  EXPECT_EQ(a.read().status, 200);
  EXPECT_EQ(v2_->seen().size(), 2U);

  // Without 5xx, gateway-error or reset in retryOn a per-try timeout is the answer.
  setRoutes("t1", v2With("    retries: {attempts: 2, perTryTimeout: 200ms}\n").c_str());
  v2_->script({kStall});
  TestClient b(port_);
  b.send(get("/stall-default"));
  ASSERT_EQ(v2_->waitSeen(3).size(), 3U);
  advance(199);
  EXPECT_EQ(engine_->stats().localReplies, 0U);
  advance(1);
  Response rb = b.read();
  EXPECT_EQ(rb.status, 504);
  EXPECT_EQ(rb.body, "upstream per try timeout\n");
  EXPECT_EQ(v2_->seen().size(), 3U);
  EXPECT_EQ(engine_->stats().retries, 1U);

  // The route timeout covers every attempt and back-off: at 700 ms it cuts 10 retries of
  // 200 ms short. Attempt k+1 starts 200 ms after attempt k plus a back-off of 1 to
  // (2^k - 1) * 25 ms, so 3 or 4 attempts fit in 700 ms; time moves a millisecond at a
  // time, as it would for real.
  setRoutes("t1", v2With("    timeout: 700ms\n"
                         "    retries: {attempts: 10, perTryTimeout: 200ms, retryOn: reset}\n")
                      .c_str());
  v2_->script(std::vector<int>(12, kStall));
  TestClient d(port_);
  d.send(get("/stall-always"));
  ASSERT_EQ(v2_->waitSeen(4).size(), 4U);
  uint64_t retriesBefore = engine_->stats().retries;
  for (int ms = 0; ms < 699; ++ms) {
    advance(1);
  }
  EXPECT_EQ(engine_->stats().localReplies, 1U) << "nothing answered d before 700 ms";
  advance(1);
  Response rd = d.read();
  EXPECT_EQ(rd.status, 504);
  EXPECT_EQ(rd.body, "upstream request timeout\n");
  uint64_t attempts = engine_->stats().retries - retriesBefore + 1;
  EXPECT_GE(attempts, 3U);
  EXPECT_LE(attempts, 4U);
  // The first three attempts reached the upstream; a fourth may have been cut while it
  // was still connecting.
  size_t seen = v2_->waitSeen(6).size();
  EXPECT_GE(seen, 6U);
  EXPECT_LE(seen, 3 + attempts);
}

TEST_P(ProxyEngine, NoRetryWhenTheBodyOutgrewTheBufferOrAnInterimWasRelayed) {
  EngineOptions o = simulated();
  o.retryBufferBytes = 4096;
  start(o, v2With("    retries: {attempts: 2, retryOn: 5xx}\n").c_str());
  TestClient c(port_);
  // A body within the buffer: retried.
  v2_->script({503});
  Response small =
      sendRetrying(c, "PUT /small HTTP/1.1\r\nHost: reviews\r\nContent-Length: 1000\r\n\r\n" +
                          std::string(1000, 's'));
  EXPECT_EQ(small.status, 200);
  EXPECT_EQ(small.body, "v2 /small 1000\n");
  EXPECT_EQ(v2_->seen().size(), 2U);
  // A body over it streams through and cannot be sent again.
  v2_->script({503});
  Response large =
      sendRetrying(c, "PUT /large HTTP/1.1\r\nHost: reviews\r\nContent-Length: 100000\r\n\r\n" +
                          std::string(100000, 'l'));
  EXPECT_EQ(large.status, 503);
  EXPECT_EQ(v2_->seen().size(), 3U);
  EXPECT_EQ(v2_->seen()[2].bodyBytes, 100000U);
  // The client saw 100 Continue: what follows is the answer, retriable or not.
  v2_->script({503});
  c.send("PUT /continue HTTP/1.1\r\nHost: reviews\r\nContent-Length: 4\r\n"
         "Expect: 100-continue\r\n\r\n");
  ASSERT_EQ(c.read().status, 100);
  EXPECT_EQ(sendRetrying(c, "data").status, 503);
  EXPECT_EQ(v2_->seen().size(), 4U);
}

// A listener whose accept queue is full drops SYNs: a connect to it hangs.
class Blackhole {
public:
  Blackhole(const char* ip, uint16_t port) {
    sockaddr_in a;
    lfd_ = listenOn(ip, port, 0, &a);
    for (int i = 0; i < 3; ++i) { // fill the queue, never accepted
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
      fillers_.push_back(fd);
    }
  }
  ~Blackhole() {
    for (int fd : fillers_) {
      ::close(fd);
    }
    ::close(lfd_);
  }

private:
  int lfd_ = -1;
  std::vector<int> fillers_;
};

TEST_P(ProxyEngine, AConnectSlowerThanThePerTryTimeoutIsAConnectFailure) {
  Blackhole hole("127.0.0.5", v1_->port()); // v1's second pod: SYNs go unanswered
  start(simulated(), std::string(kAllV1)
                         .append("    retries: {attempts: 1, perTryTimeout: 200ms, retryOn: "
                                 "connect-failure}\n")
                         .c_str());
  // Round robin: one of two requests starts at the hole, the other is answered at once.
  TestClient a(port_), b(port_);
  a.send(get("/hole/0"));
  b.send(get("/hole/1"));
  int answered = firstReadable({a.fd(), b.fd()});
  ASSERT_GE(answered, 0);
  TestClient& direct = answered == 0 ? a : b;
  TestClient& held = answered == 0 ? b : a;
  Response first = direct.read();
  EXPECT_EQ(first.status, 200);
  waitRequests(2);
  advance(199);
  EXPECT_EQ(engine_->stats().retries, 0U) << "still connecting within the attempt's time";
  advance(1); // the connect outlived the per-try timeout: a connect failure, retried
  Response second = held.read();
  EXPECT_EQ(second.status, 200);
  EXPECT_EQ(second.header("x-veer-version"), "v1");
  EXPECT_EQ(v1_->seen().size(), 2U);
  EXPECT_EQ(engine_->stats().retries, 1U);
}

TEST_P(ProxyEngine, ConnectFailureWithRetriesOffIs503) {
  // v1's second pod (127.0.0.5) listens nowhere. attempts: 0 turns retries off, so the
  // request that tries the dead pod first fails; the dead pod is ejected after that.
  start({}, std::string(kAllV1).append("    retries: {attempts: 0}\n").c_str());
  TestClient c(port_);
  int failed = 0;
  for (int i = 0; i < 6; ++i) {
    c.send(get("/v1/" + std::to_string(i)));
    Response r = c.read();
    failed += r.status == 503;
    EXPECT_TRUE(r.status == 200 || r.status == 503) << r.status;
  }
  EXPECT_EQ(failed, 1);
  EXPECT_EQ(engine_->stats().retries, 0U);
}

TEST_P(ProxyEngine, UpstreamProtocolErrorIs502) {
  start();
  TestClient c(port_);
  c.send(get("/garbage", "end-user: jason\r\n"));
  EXPECT_EQ(c.read().status, 502);
}

TEST_P(ProxyEngine, UpstreamTimeoutIs504) {
  EngineOptions o = simulated();
  o.requestTimeoutMs = 200;
  start(o);
  TestClient c(port_);
  c.send(get("/slow", "end-user: jason\r\n"));
  v3_->waitSlow(1); // the request ended: the route timeout runs from here
  advance(199);
  EXPECT_EQ(engine_->stats().localReplies, 0U);
  advance(1);
  EXPECT_EQ(c.read().status, 504);
  v3_->openGate();
}

// --- hardening -----------------------------------------------------------------

struct Rejected {
  const char* name;
  std::string request;
  int status;
};

TEST_P(ProxyEngine, MalformedRequestsNeverReachAnUpstream) {
  EngineOptions o;
  o.limits.maxHeaders = 20;
  o.limits.maxHeaderBytes = 8192;
  start(o);
  std::string manyHeaders;
  for (int i = 0; i < 30; ++i) {
    manyHeaders += "x-h" + std::to_string(i) + ": v\r\n";
  }
  const Rejected cases[] = {
      {"cl+te",
       "POST / HTTP/1.1\r\nHost: r\r\nContent-Length: 5\r\nTransfer-Encoding: "
       "chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: r\r\n\r\n",
       400},
      {"duplicate cl",
       "POST / HTTP/1.1\r\nHost: r\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400},
      {"bad chunk size",
       "POST / HTTP/1.1\r\nHost: r\r\nend-user: jason\r\nTransfer-Encoding: chunked\r\n\r\nz\r\n",
       400},
      {"obs-fold", "GET / HTTP/1.1\r\nHost: r\r\nX-A: 1\r\n 2\r\n\r\n", 400},
      {"control char", "GET / HTTP/1.1\r\nHost: r\r\nX-A: 1\x7f\r\n\r\n", 400},
      {"too many headers", "GET / HTTP/1.1\r\nHost: r\r\n" + manyHeaders + "\r\n", 431},
      {"head too large",
       "GET / HTTP/1.1\r\nHost: r\r\nX-Big: " + std::string(10000, 'b') + "\r\n\r\n", 431},
      {"connect", "CONNECT reviews:443 HTTP/1.1\r\nHost: reviews:443\r\n\r\n", 501},
  };
  for (const Rejected& k : cases) {
    TestClient c(port_);
    c.send(k.request);
    Response r = c.read();
    EXPECT_EQ(r.status, k.status) << k.name;
    EXPECT_EQ(r.header("connection"), "close") << k.name;
    EXPECT_TRUE(c.closedByPeer()) << k.name;
  }
  // The bad-chunk request was forwarded up to its body (its head was fine); the rest
  // never reached an upstream.
  EXPECT_LE(upstreamRequests(), 1U);
  for (const Seen& s : v3_->seen()) {
    EXPECT_NE(s.path, "/smuggled");
  }
}

TEST_P(ProxyEngine, SlowlorisAndIdleConnectionsGet408) {
  EngineOptions o = simulated();
  o.headerTimeoutMs = 300;
  o.idleTimeoutMs = 500;
  start(o);
  TestClient slow(port_);
  slow.send("GET / HTTP/1.1\r\nHost: r\r\nX-Slow: "); // and nothing more
  ASSERT_TRUE(waitFor([&] { return engine_->stats().accepted == 1; }));
  advance(299);
  EXPECT_EQ(engine_->stats().localReplies, 0U);
  advance(1);
  Response r = slow.read();
  EXPECT_EQ(r.status, 408);
  EXPECT_EQ(r.body, "request header timeout\n");
  EXPECT_TRUE(slow.closedByPeer());

  TestClient idle(port_);
  idle.send(get("/once", "end-user: jason\r\n"));
  ASSERT_EQ(idle.read().status, 200); // the idle timer started as the answer went out
  advance(499);
  EXPECT_EQ(engine_->stats().localReplies, 1U);
  advance(1);
  Response timeout = idle.read(); // nothing sent: the idle timeout answers
  EXPECT_EQ(timeout.status, 408);
  EXPECT_EQ(timeout.body, "idle timeout\n");
  EXPECT_TRUE(idle.closedByPeer());
}

// Issue 21 M10: a body trickled a byte at a time never lets an idle timer fire, so only a
// deadline for the whole request (Envoy's request_timeout) frees the client and upstream.
TEST_P(ProxyEngine, ABodyTrickledPastTheRequestTimeoutIs408AndCounted) {
  EngineOptions o = simulated();
  o.requestReceiveTimeoutMs = 1000;
  o.streamIdleTimeoutMs = 300;
  start(o);
  TestClient c(port_);
  c.send("POST /trickle HTTP/1.1\r\nHost: reviews\r\nend-user: jason\r\n"
         "Content-Length: 100\r\n\r\nx");
  waitRequests(1);
  for (int i = 0; i < 3; ++i) { // a byte every 250 ms: never idle for 300
    advance(250);
    c.send("x");
  }
  advance(249);
  EXPECT_EQ(engine_->stats().localReplies, 0U);
  EXPECT_EQ(engine_->stats().streamIdleTimeouts, 0U);
  advance(1);
  EXPECT_EQ(engine_->stats().requestTimeouts, 1U) << "1000 ms after the head's first byte";
  Response r = c.read();
  EXPECT_EQ(r.status, 408);
  EXPECT_EQ(r.body, "request timeout\n");
  EXPECT_EQ(r.header("connection"), "close");
  EXPECT_TRUE(c.closedByPeer());
  EXPECT_EQ(v3_->seen().size(), 0U) << "the upstream never got a whole request";

  // A request that arrives in time is not cut by the deadline while it waits for its
  // answer: the request timeout ends with the request.
  TestClient ok(port_);
  ok.send("POST /slow HTTP/1.1\r\nHost: reviews\r\nend-user: jason\r\n"
          "Content-Length: 1\r\n\r\nx");
  v3_->waitSlow(1);
  advance(250);
  v3_->openGate();
  EXPECT_EQ(ok.read().status, 200);
  EXPECT_EQ(engine_->stats().requestTimeouts, 1U);
}

TEST_P(ProxyEngine, AStalledRequestBodyHitsTheStreamIdleTimeout) {
  EngineOptions o = simulated();
  o.requestReceiveTimeoutMs = 0; // off: only the idle timer can end this
  o.streamIdleTimeoutMs = 300;
  start(o);
  TestClient c(port_);
  c.send("POST /stalled HTTP/1.1\r\nHost: reviews\r\nend-user: jason\r\n"
         "Content-Length: 10\r\n\r\nxy");
  waitRequests(1);
  advance(299);
  EXPECT_EQ(engine_->stats().localReplies, 0U);
  advance(1);
  EXPECT_EQ(engine_->stats().streamIdleTimeouts, 1U);
  EXPECT_EQ(engine_->stats().requestTimeouts, 0U);
  Response r = c.read();
  EXPECT_EQ(r.status, 408);
  EXPECT_EQ(r.body, "stream timeout\n");
  EXPECT_TRUE(c.closedByPeer());
}

TEST(ProxyEngineBare, Ipv6ListenerWithoutTableAnswers503) {
  EngineOptions o;
  o.listen = {*ListenAddr::parse("[::1]:0")};
  Result<std::unique_ptr<Engine>> e = Engine::create(o);
  ASSERT_TRUE(e) << e.error().message;
  (*e)->start();
  ListenAddr bound = (*e)->boundAddrs()[0];
  EXPECT_EQ(bound.str().rfind("[::1]:", 0), 0U) << bound.str();
  int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(::connect(fd, reinterpret_cast<const sockaddr*>(&bound.addr), bound.len), 0);
  setRecvTimeout(fd, 20);
  ASSERT_TRUE(sendAll(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string got;
  char buf[4096];
  while (got.find("\r\n\r\n") == std::string::npos) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    ASSERT_GT(n, 0);
    got.append(buf, n);
  }
  EXPECT_EQ(got.rfind("HTTP/1.1 503 ", 0), 0U) << got;
  ::close(fd);
  (*e)->stop(0);
}

/** This process (a death-test child) gets `err` from io_uring_setup from now on, as under
 * kernel.io_uring_disabled (EPERM) or a container's seccomp profile (ENOSYS). */
bool refuseIoUring(int err) {
  sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
      BPF_STMT(BPF_RET | BPF_K,
               SECCOMP_RET_ERRNO | (static_cast<uint32_t>(err) & SECCOMP_RET_DATA)),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog prog{static_cast<unsigned short>(std::size(filter)), filter};
  return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
         ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0;
}

/** Exit status 0 when, with io_uring refused, auto runs on epoll and serves, and uring
 * fails with an error that says why. */
int autoFallsBackToEpoll(int err) {
  if (!refuseIoUring(err)) {
    return 10;
  }
  EngineOptions o;
  o.listen = {*ListenAddr::parse("127.0.0.1:0")};
  o.io = IoMode::kUring;
  Result<std::unique_ptr<Engine>> forced = Engine::create(o);
  if (forced || forced.error().message.find("io_uring") == std::string::npos) {
    return 11;
  }
  o.io = IoMode::kAuto;
  Result<std::unique_ptr<Engine>> e = Engine::create(o);
  if (!e || (*e)->io() != IoMode::kEpoll || (*e)->ioFallbackReason().empty()) {
    return 12;
  }
  (*e)->start();
  ListenAddr bound = (*e)->boundAddrs()[0];
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  setRecvTimeout(fd, 20);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&bound.addr), bound.len) != 0 ||
      !sendAll(fd, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")) {
    return 13;
  }
  std::string got;
  char buf[4096];
  while (got.find("\r\n\r\n") == std::string::npos) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) {
      return 14;
    }
    got.append(buf, n);
  }
  (*e)->stop(0);
  return got.rfind("HTTP/1.1 503 ", 0) == 0 ? 0 : 15; // no table loaded: 503, served
}

TEST(ProxyEngineBare, AutoFallsBackToEpollWhenIoUringIsRefused) {
  testing::FLAGS_gtest_death_test_style = "threadsafe"; // the child runs alone
  EXPECT_EXIT(std::_Exit(autoFallsBackToEpoll(EPERM)), testing::ExitedWithCode(0), "");
  EXPECT_EXIT(std::_Exit(autoFallsBackToEpoll(ENOSYS)), testing::ExitedWithCode(0), "");
}

// --- reload and drain ----------------------------------------------------------

TEST_P(ProxyEngine, ReloadAppliesToNewRequestsInFlightOnesFinishOnTheOld) {
  start({}, kAllV1);
  TestClient a(port_);
  a.send(get("/slow")); // v1 holds it
  v1_->waitSlow(1);
  setRoutes("t2", kAllV2);
  TestClient b(port_);
  b.send(get("/new"));
  Response rb = b.read();
  EXPECT_EQ(rb.header("x-veer-version"), "v2");
  EXPECT_EQ(rb.header("x-table"), "t2");
  v1_->openGate();
  Response ra = a.read();
  ASSERT_EQ(ra.status, 200);
  EXPECT_EQ(ra.header("x-veer-version"), "v1");
  EXPECT_EQ(ra.header("x-table"), "t1"); // edits of the table it was routed with
  // The reload did not close a's connection; its next request sees the new table.
  a.send(get("/next"));
  Response next = a.read();
  EXPECT_EQ(next.header("x-veer-version"), "v2");
  EXPECT_EQ(next.header("x-table"), "t2");
}

TEST_P(ProxyEngine, StopFinishesInFlightRequests) {
  start({}, kAllV1);
  TestClient idle(port_);
  idle.send(get("/idle"));
  ASSERT_EQ(idle.read().status, 200);
  TestClient busy(port_);
  busy.send(get("/slow"));
  v1_->waitSlow(1);
  std::thread stopper([&] { engine_->stop(10000); });
  EXPECT_TRUE(idle.closedByPeer()); // idle keep-alive connections close at once
  v1_->openGate();
  Response r = busy.read();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("connection"), "close");
  stopper.join();
  engine_.reset();
}

TEST_P(ProxyEngine, StopClosesTheListenerAndEveryConnection) {
  start({}, kAllV1);
  TestClient idle(port_);
  idle.send(get("/idle"));
  ASSERT_EQ(idle.read().status, 200);
  engine_->stop(0);
  EXPECT_TRUE(idle.closedByPeer());
  // Nothing of the engine outlives stop(): its port refuses (a socket kept open by an
  // operation still in flight would take the connection and never answer).
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port_);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_NE(::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof(a)), 0);
  EXPECT_EQ(errno, ECONNREFUSED);
  ::close(fd);
}

// --- the rooms on their own ------------------------------------------------------

// Retry decisions are plain functions of a Decision and a request's state: no sockets.
TEST(ProxyRetry, DecisionsFollowEnvoysRouter) {
  const uint16_t statuses[] = {429};
  Decision d;
  d.retryOn = retry_on::k5xx | retry_on::kConnectFailure | retry_on::kStatusCodes;
  d.retryStatuses = statuses;
  d.retries = 2;
  EXPECT_EQ(retryConditions(d, 503), retry_on::k5xx | retry_on::kGatewayError);
  EXPECT_EQ(retryConditions(d, 500), retry_on::k5xx);
  EXPECT_EQ(retryConditions(d, 409), retry_on::kRetriable4xx);
  EXPECT_EQ(retryConditions(d, 429), retry_on::kStatusCodes);
  EXPECT_EQ(retryConditions(d, 200), 0U);

  RetryState r;
  r.replay = true;
  EXPECT_TRUE(mayRetry(d, 0, r, false, retryConditions(d, 503)));
  EXPECT_FALSE(mayRetry(d, 0, r, false, retryConditions(d, 409))) << "not in retryOn";
  EXPECT_FALSE(mayRetry(d, 0, r, true, retryConditions(d, 503))) << "response started";
  r.retried = 2;
  EXPECT_FALSE(mayRetry(d, 0, r, false, retryConditions(d, 503))) << "budget spent";
  d.retries = -1; // unset: the proxy's default budget
  EXPECT_TRUE(mayRetry(d, 3, r, false, retryConditions(d, 503)));
  r.retried = 0;
  r.relayed = true;
  EXPECT_FALSE(mayRetry(d, 3, r, false, kOnReset)) << "the client saw 100 Continue";
  r.relayed = false;
  r.replay = false; // the body streamed on: only a connect failure (nothing sent) retries
  EXPECT_FALSE(mayRetry(d, 3, r, false, kOnReset));
  EXPECT_TRUE(mayRetry(d, 3, r, false, kOnConnectFailure));

  std::minstd_rand rng(1);
  const uint64_t caps[] = {25, 75, 175, 250, 250, 250, 250, 250, 250, 250};
  for (int k = 1; k <= 10; ++k) {
    for (int i = 0; i < 1000; ++i) {
      uint64_t b = backoffMs(k, rng);
      ASSERT_GE(b, 1U) << "0 would mean no delay";
      ASSERT_LE(b, caps[k - 1]) << "retry " << k;
    }
  }

  d.perTryTimeoutMs = 0;
  EXPECT_EQ(tryDeadline(d, 1000), 0U);
  d.perTryTimeoutMs = kNoTimeout;
  EXPECT_EQ(tryDeadline(d, 1000), 0U);
  d.perTryTimeoutMs = 200;
  EXPECT_EQ(tryDeadline(d, 1000), 1200U);
}

// advance() returns only once every attached loop ran the timers due at the new time.
TEST(ProxySimulatedTime, AdvanceWaitsForEveryLoop) {
  SimulatedTimeSource time;
  EXPECT_TRUE(time.advance(5)) << "no loop attached: nothing to wait for";
  uint64_t start = time.nowMs();
  int wake = ::eventfd(0, EFD_CLOEXEC);
  ASSERT_GE(wake, 0);
  time.attach(wake);
  std::atomic<uint64_t> seen{0};
  std::thread loop([&] {
    for (;;) {
      uint64_t v;
      if (::read(wake, &v, sizeof(v)) != sizeof(v)) {
        return;
      }
      uint64_t now = time.nowMs();
      seen.store(now);
      time.caughtUp(wake, now);
      if (now >= start + 300) {
        return;
      }
    }
  });
  EXPECT_TRUE(time.advance(100));
  EXPECT_EQ(seen.load(), start + 100) << "advance returned before the loop saw the time";
  EXPECT_TRUE(time.advance(200));
  EXPECT_EQ(seen.load(), start + 300);
  loop.join();
  time.detach(wake);
  ::close(wake);
}

// --- metrics (proxy/stats.h) ---------------------------------------------------

/** The count of requests with these labels, 0 when none. */
uint64_t requestsOf(const ProxyStats& st, const std::string& version, int code,
                    const std::string& route, const std::string& name = "reviews",
                    const std::string& ns = "default") {
  auto it = st.requests.find(RequestLabels{ns, name, version, code, route});
  return it == st.requests.end() ? 0 : it->second;
}

const char* kDefaultRule = "VirtualService default/reviews spec.http[1]";
const char* kJasonRule = "VirtualService default/reviews spec.http[0]";

TEST_P(ProxyEngine, MetricsCountRequestsByVersionCodeAndRouteAndConnectionsPerVersion) {
  start(simulated(), kAllV2);
  TestClient c(port_);
  for (int i = 0; i < 5; ++i) {
    c.send(get("/m/" + std::to_string(i)));
    ASSERT_EQ(c.read().status, 200) << i;
  }
  v3_->script({500}); // the default policy does not retry a 500
  c.send(get("/err", "end-user: jason\r\n"));
  ASSERT_EQ(c.read().status, 500);
  c.send(get("/ok", "end-user: jason\r\n"));
  ASSERT_EQ(c.read().status, 200);
  TestClient other(port_); // a second client: the pooled connections serve it
  other.send(get("/m/other"));
  ASSERT_EQ(other.read().status, 200);

  // A request is counted just after its last byte went out: wait for the last one.
  ProxyStats st;
  ASSERT_TRUE(waitFor([&] {
    st = engine_->proxyStats();
    return requestsOf(st, "v2", 200, kDefaultRule) == 6;
  })) << st.toJson();
  EXPECT_EQ(requestsOf(st, "v3", 500, kJasonRule), 1U);
  EXPECT_EQ(requestsOf(st, "v3", 200, kJasonRule), 1U);
  EXPECT_EQ(st.requests.size(), 3U) << st.toJson();

  // Simulated time never moved: every request took 0 ms, in the first bucket.
  const DurationCounts& v2 = st.durations[DurationLabels{"default", "reviews", "v2", 200}];
  EXPECT_EQ(v2.count(), 6U);
  EXPECT_EQ(v2.buckets[0], 6U);
  EXPECT_EQ(v2.sumUs, 0U);
  EXPECT_EQ((st.durations[DurationLabels{"default", "reviews", "v3", 500}].count()), 1U);

  // Upstream connections per version, as the upstreams accepted them.
  const std::string port = std::to_string(port_);
  EXPECT_EQ((st.connections[ServiceLabels{"default", "reviews", port, "v2"}]),
            static_cast<uint64_t>(v2_->accepts()));
  EXPECT_EQ((st.connections[ServiceLabels{"default", "reviews", port, "v3"}]),
            static_cast<uint64_t>(v3_->accepts()));
  EXPECT_GE(v2_->accepts(), 1);
  EXPECT_EQ(v1_->accepts(), 0);
  EXPECT_EQ((st.connections.count(ServiceLabels{"default", "reviews", port, "v1"})), 0U);
}

TEST_P(ProxyEngine, MetricsDurationLandsInIstiosBucket) {
  start(simulated());
  TestClient c(port_);
  c.send(get("/slow", "end-user: jason\r\n"));
  v3_->waitSlow(1); // the request is at the upstream; the answer waits for the gate
  advance(30);
  v3_->openGate();
  ASSERT_EQ(c.read().status, 200);
  DurationCounts d;
  ASSERT_TRUE(waitFor([&] {
    d = engine_->proxyStats().durations[DurationLabels{"default", "reviews", "v3", 200}];
    return d.count() == 1;
  }));
  EXPECT_EQ(d.sumUs, 30000U) << "from the request's first byte to the response's last";
  for (size_t i = 0; i < kDurationBuckets; ++i) {
    // 30 ms: past le=25 (index 4), inside le=50 (index 5).
    EXPECT_EQ(d.buckets[i], i == 5 ? 1U : 0U) << "bucket le=" << kDurationBoundsMs[i];
  }
}

TEST_P(ProxyEngine, MetricsCountLocalAnswers) {
  EngineOptions o = simulated();
  o.headerTimeoutMs = 300;
  o.idleTimeoutMs = 500;
  start(o, kAllV1);
  std::string yaml = reviewsConfig(port_, v1_->port(), "t1", kAllV1);
  const std::string http = "  http:\n";
  yaml.insert(yaml.find(http) + http.size(),
              "  - match:\n    - uri: {exact: /tea}\n"
              "    directResponse: {status: 418, body: {string: \"short and stout\"}}\n");
  setYaml(yaml);
  v1_.reset(); // both v1 pods refuse: 503 for a request routed to v1
  TestClient c(port_);
  c.send(get("/tea"));
  EXPECT_EQ(c.read().status, 418);
  c.send(get("/down"));
  EXPECT_EQ(c.read().status, 503);
  TestClient bad(port_);
  bad.send("GET / HTTP/1.1\r\nHost: a\r\nbad header\r\n\r\n");
  EXPECT_EQ(bad.read().status, 400);
  TestClient slow(port_);
  slow.send("GET / HTTP/1.1\r\nHost: r\r\nX-Slow: "); // a head that never ends
  TestClient idle(port_);
  idle.send(get("/tea"));
  EXPECT_EQ(idle.read().status, 418);
  advance(500); // the slow head times out (408, a request); the idle client too (not one)
  EXPECT_EQ(slow.read().status, 408);
  EXPECT_EQ(idle.read().status, 408);

  ProxyStats st;
  ASSERT_TRUE(waitFor([&] {
    st = engine_->proxyStats();
    return requestsOf(st, "unknown", 408, "unknown", "unknown", "unknown") == 1;
  })) << st.toJson();
  // A direct response belongs to the service and its rule, no version.
  EXPECT_EQ(requestsOf(st, "unknown", 418, "VirtualService default/reviews spec.http[0]"), 2U);
  EXPECT_EQ(requestsOf(st, "v1", 503, "VirtualService default/reviews spec.http[2]"), 1U);
  EXPECT_EQ(requestsOf(st, "unknown", 400, "unknown", "unknown", "unknown"), 1U);
  uint64_t total = 0;
  for (const auto& [labels, n] : st.requests) {
    total += n;
  }
  EXPECT_EQ(total, 5U) << "the idle connection's 408 is not a request: " << st.toJson();
}

TEST_P(ProxyEngine, MetricsCountAClientThatLeftBeforeAnAnswerAsCode0) {
  start(simulated());
  {
    TestClient c(port_);
    c.send("POST /upload HTTP/1.1\r\nHost: reviews\r\nend-user: jason\r\n"
           "content-length: 100\r\n\r\nonly part");
    waitRequests(1);
  } // gone inside its request body
  ProxyStats st;
  ASSERT_TRUE(waitFor([&] {
    st = engine_->proxyStats();
    return requestsOf(st, "v3", 0, kJasonRule) == 1;
  })) << st.toJson();
  EXPECT_EQ(st.requests.size(), 1U) << st.toJson();
}

// Every engine test runs on both I/O backends: one state machine, two ways to move bytes.
INSTANTIATE_TEST_SUITE_P(Io, ProxyEngine, testing::Values(IoMode::kUring, IoMode::kEpoll),
                         [](const testing::TestParamInfo<IoMode>& i) {
                           return std::string(i.param == IoMode::kUring ? "Uring" : "Epoll");
                         });

} // namespace
} // namespace veer::proxy
