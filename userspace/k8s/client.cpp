#include "k8s/client.h"

#include <curl/curl.h>

#include <cerrno>
#include <charconv>
#include <mutex>

namespace veer::k8s {
namespace {

void globalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct Transfer {
  HttpResponse response;
  const std::function<bool(std::string_view)>* onData = nullptr;
  bool aborted = false; // onData asked to stop
  CURL* easy = nullptr;
};

size_t onHeader(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string_view line(data, size * n);
  constexpr std::string_view kRetry = "retry-after:";
  if (line.size() > kRetry.size()) {
    std::string lower;
    for (char c : line.substr(0, kRetry.size())) {
      lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    if (lower == kRetry) {
      std::string_view v = line.substr(kRetry.size());
      while (!v.empty() && v.front() == ' ') {
        v.remove_prefix(1);
      }
      int secs = 0;
      if (std::from_chars(v.data(), v.data() + v.size(), secs).ec == std::errc()) {
        t->response.retryAfterSeconds = secs;
      }
    }
  }
  return size * n;
}

size_t onBody(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string_view chunk(data, size * n);
  if (t->onData != nullptr) {
    if (t->response.status == 0) {
      curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->response.status);
    }
    if (t->response.status == 200) {
      if (!(*t->onData)(chunk)) {
        t->aborted = true;
        return CURL_WRITEFUNC_ERROR;
      }
      return chunk.size();
    }
  }
  t->response.body.append(chunk);
  return chunk.size();
}

CURLcode setBlob(CURL* easy, CURLoption opt, const std::string& pem) {
  curl_blob blob{const_cast<char*>(pem.data()), pem.size(), CURL_BLOB_COPY};
  return curl_easy_setopt(easy, opt, &blob);
}

} // namespace

ApiClient::ApiClient(ClusterConfig config, Clock& clock)
    : config_(std::move(config)), tokens_(config_.token, config_.tokenFile, clock) {
  globalInit();
}

ApiClient::~ApiClient() = default;

Result<HttpResponse> ApiClient::get(const std::string& pathAndQuery, StopToken& stop,
                                    Duration timeout) {
  return perform(pathAndQuery, stop, timeout, nullptr);
}

Result<HttpResponse> ApiClient::stream(const std::string& pathAndQuery, StopToken& stop,
                                       Duration timeout,
                                       const std::function<bool(std::string_view)>& onData) {
  return perform(pathAndQuery, stop, timeout, &onData);
}

Result<HttpResponse> ApiClient::perform(const std::string& pathAndQuery, StopToken& stop,
                                        Duration timeout,
                                        const std::function<bool(std::string_view)>* onData) {
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> easy(curl_easy_init(), curl_easy_cleanup);
  std::unique_ptr<CURLM, decltype(&curl_multi_cleanup)> multi(curl_multi_init(),
                                                              curl_multi_cleanup);
  if (!easy || !multi) {
    return Error{ENOMEM, "curl: cannot create a transfer"};
  }
  Transfer t;
  t.onData = onData;
  t.easy = easy.get();
  CURL* e = easy.get();
  std::string url = config_.server + pathAndQuery;
  curl_easy_setopt(e, CURLOPT_URL, url.c_str());
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, ""); // gzip when the server offers it
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, onHeader);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, onBody);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
  struct curl_slist* headers = nullptr;
  headers = curl_slist_append(headers, "Accept: application/json");
  headers = curl_slist_append(headers, "User-Agent: veer-agent");
  std::string token = tokens_.token();
  std::string auth = "Authorization: Bearer " + token;
  if (!token.empty()) {
    headers = curl_slist_append(headers, auth.c_str());
  }
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> headerList(headers,
                                                                         curl_slist_free_all);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
  // The TLS settings are what must not silently fail to apply (a libcurl without blob
  // support would otherwise verify against the system's CAs, or not present the client cert).
  CURLcode tls = CURLE_OK;
  if (config_.server.starts_with("https://")) {
    if (config_.insecureSkipTlsVerify) {
      curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
      curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    } else if (!config_.caPem.empty()) {
      tls = setBlob(e, CURLOPT_CAINFO_BLOB, config_.caPem);
    }
    if (tls == CURLE_OK && !config_.clientCertPem.empty()) {
      tls = setBlob(e, CURLOPT_SSLCERT_BLOB, config_.clientCertPem);
      if (tls == CURLE_OK) {
        tls = setBlob(e, CURLOPT_SSLKEY_BLOB, config_.clientKeyPem);
      }
    }
  }
  if (tls != CURLE_OK) {
    return Error{EINVAL,
                 "curl: cannot set the TLS certificates: " + std::string(curl_easy_strerror(tls))};
  }
  if (curl_multi_add_handle(multi.get(), e) != CURLM_OK) {
    return Error{ENOMEM, "curl: cannot start a transfer"};
  }
  // stop() wakes the poll below, so shutdown does not wait for the next byte of a quiet watch.
  CURLM* m = multi.get();
  int waker = stop.addWaker([m] { curl_multi_wakeup(m); });
  CURLcode result = CURLE_OK;
  bool done = false;
  while (!done && !stop.stopped()) {
    int running = 0;
    CURLMcode mc = curl_multi_perform(m, &running);
    if (mc != CURLM_OK) {
      result = CURLE_RECV_ERROR;
      break;
    }
    int queued = 0;
    while (CURLMsg* msg = curl_multi_info_read(m, &queued)) {
      if (msg->msg == CURLMSG_DONE) {
        result = msg->data.result;
        done = true;
      }
    }
    if (!done) {
      curl_multi_poll(m, nullptr, 0, 1000, nullptr);
    }
  }
  stop.removeWaker(waker);
  curl_multi_remove_handle(m, e);
  if (!done) {
    return Error{ECANCELED, "GET " + pathAndQuery + ": stopped"};
  }
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &t.response.status);
  if (t.response.status == 401) {
    // Like client-go's token transport: a refused token is re-read before the next request.
    tokens_.invalidate();
  }
  if (result != CURLE_OK && !(t.aborted && result == CURLE_WRITE_ERROR)) {
    // A stream that delivered a 200 and then broke is a normal end of a watch for the caller.
    if (onData != nullptr && t.response.status == 200) {
      return t.response;
    }
    return Error{EIO, "GET " + url + ": " + curl_easy_strerror(result)};
  }
  return t.response;
}

} // namespace veer::k8s

namespace veer::k8s {
std::string urlEncode(std::string_view value) {
  globalInit();
  char* out = curl_easy_escape(nullptr, value.data(), static_cast<int>(value.size()));
  std::string s = out != nullptr ? out : "";
  curl_free(out);
  return s;
}
} // namespace veer::k8s
