// Socket acceleration (veer-agent --socket-acceleration, bpf/lib/accel.h) end to end:
// byte streams between pods arrive whole and in order while delivered socket to socket,
// loopback connections never join, and nothing joins when it is off (the default).

#include <gtest/gtest.h>

#include "kernel_path_fixture.h"

namespace veer::test {
namespace {

constexpr const char* kStreamPort = "7000";

class SocketAccelerationTest : public KernelPathTest {
protected:
  /** veer-stream echoing on kStreamPort in pod. */
  void serveStream(const std::string& pod) {
    auto p = world_->spawn(pod, {(binDir() / "veer-stream").string(), "serve", kStreamPort});
    ASSERT_TRUE(p) << p.error().message;
    streams_.push_back(std::move(*p));
  }

  /** veer-stream send from pod: conns connections of bytes each, every byte checked. */
  void sendStream(const std::string& pod, const std::string& addr, int bytes, int conns) {
    auto r = world_->run(pod,
                         {(binDir() / "veer-stream").string(), "send", addr, kStreamPort,
                          std::to_string(bytes), std::to_string(conns)},
                         milliseconds(60000));
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->exitCode, 0) << addr << ": " << r->out << r->err;
  }

  void TearDown() override {
    streams_.clear(); // before the world's pods go
    KernelPathTest::TearDown();
  }

  std::vector<Process> streams_;
};

// 4 x 8 MiB over IPv4 and 2 x 4 MiB over IPv6, in writes of 1 B to 64 KiB both ways at
// once, from productpage-v1 to reviews-v1: every echoed byte checked in order, and most
// of it delivered socket to socket.
TEST_F(SocketAccelerationTest, StreamsArriveWholeAndInOrder) {
  agent_->setExtraArgs({"--socket-acceleration"});
  agent_->start();
  waitApplied();
  serveStream("reviews-v1");
  sendStream("productpage-v1", "10.244.1.21", 8 << 20, 4);
  sendStream("productpage-v1", "fd00:244:1::21", 4 << 20, 2);

  veer_accel_stats st = accelStats();
  EXPECT_EQ(st.sockets, 12u) << "both ends of 6 connections";
  // The echo side always finds its peer joined (the connecting end joins first); a
  // sender's first write may beat its peer's join and keep that direction on TCP.
  const uint64_t echoed = (4ull * (8 << 20) + 2ull * (4 << 20));
  EXPECT_GE(st.redirected_bytes, echoed) << "redirected " << st.redirected << ", tcp " << st.tcp;
  EXPECT_GT(st.redirected, 6u);
}

// Loopback addresses repeat in every pod, so a 4-tuple on them is not one connection on
// the node: such connections never join, and still work.
TEST_F(SocketAccelerationTest, LoopbackNeverJoins) {
  agent_->setExtraArgs({"--socket-acceleration"});
  agent_->start();
  waitApplied();
  serveStream("reviews-v1");
  sendStream("reviews-v1", "127.0.0.1", 1 << 20, 2);
  sendStream("reviews-v1", "::1", 1 << 20, 2);
  EXPECT_EQ(accelStats().sockets, 0u);
  sendStream("productpage-v1", "10.244.1.21", 1 << 20, 1); // and pod addresses do
  EXPECT_EQ(accelStats().sockets, 2u);
}

// Off by default: the same streams, nothing joins, nothing is redirected.
TEST_F(SocketAccelerationTest, OffByDefault) {
  agent_->start();
  waitApplied();
  serveStream("reviews-v1");
  sendStream("productpage-v1", "10.244.1.21", 4 << 20, 2);
  veer_accel_stats st = accelStats();
  EXPECT_EQ(st.sockets, 0u);
  EXPECT_EQ(st.redirected, 0u);
}

} // namespace
} // namespace veer::test
