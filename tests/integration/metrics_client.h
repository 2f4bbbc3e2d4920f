#pragma once

// Talking to veer-agent's status endpoint from a test: a free loopback port to give it,
// and plain HTTP GETs with a bounded wait for an answer.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <curl/curl.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "common/files.h"

namespace veer::test {

/** A port free on 127.0.0.1 now (the kernel's pick), for a server started right after. */
inline uint16_t freePort() {
  Fd s(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (!s || bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      getsockname(s.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    return 0;
  }
  return ntohs(a.sin_port);
}

struct HttpAnswer {
  long status = 0; // 0: no answer
  std::string body;
};

inline size_t collectHttpBody(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

inline HttpAnswer httpGet(const std::string& url) {
  HttpAnswer a;
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> c(curl_easy_init(), curl_easy_cleanup);
  curl_easy_setopt(c.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(c.get(), CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(c.get(), CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c.get(), CURLOPT_WRITEFUNCTION, collectHttpBody);
  curl_easy_setopt(c.get(), CURLOPT_WRITEDATA, &a.body);
  if (curl_easy_perform(c.get()) == CURLE_OK) {
    curl_easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &a.status);
  }
  return a;
}

/** Asks until done(answer) or 30 s pass; returns the last answer. */
template <typename Done> HttpAnswer getUntil(const std::string& url, Done done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  HttpAnswer a = httpGet(url);
  while (!done(a) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    a = httpGet(url);
  }
  return a;
}

} // namespace veer::test
