// The compact building blocks of a large config (docs/design.md, "Compiling 10,000
// services"): Str (interned strings), ThinVector, ChunkedList and the shared WorkerPool.
// Each is checked against what std::string / std::vector would do, and for the
// property it exists for: one copy per text, pointers that stay put, tasks that all run.

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/chunked_list.h"
#include "common/str.h"
#include "common/thin_vector.h"
#include "common/worker_pool.h"

namespace veer {
namespace {

TEST(Str, EqualTextsShareOneCopy) {
  const size_t before = Str::liveCount();
  std::string text = "reviews.default.svc.cluster.local";
  Str a(text);
  Str b{std::string_view(text)};
  Str c = a;
  EXPECT_EQ(Str::liveCount(), before + 1);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.data(), b.data()); // the same rep, not an equal copy
  EXPECT_EQ(a.view(), text);
  EXPECT_EQ(a.size(), text.size());
  EXPECT_STREQ(c.c_str(), text.c_str());
  EXPECT_EQ(a.hash(), std::hash<std::string_view>{}(text));
  Str other("ratings");
  EXPECT_NE(a, other);
  EXPECT_EQ(Str::liveCount(), before + 2);
}

TEST(Str, LastCopyFreesTheText) {
  const size_t before = Str::liveCount();
  {
    Str a("v2-only-here");
    {
      Str b = a;
      Str moved = std::move(b);
      EXPECT_TRUE(b.empty()); // NOLINT: a moved-from Str is ""
      EXPECT_EQ(Str::liveCount(), before + 1);
    }
    EXPECT_EQ(Str::liveCount(), before + 1); // a still holds it
    a = Str("replaced");
    EXPECT_EQ(Str::liveCount(), before + 1); // the first text went, the new one came
  }
  EXPECT_EQ(Str::liveCount(), before);
  // Interned again after it was freed: a fresh text, still equal to itself.
  Str again("v2-only-here");
  EXPECT_EQ(again, "v2-only-here");
  EXPECT_EQ(Str::liveCount(), before + 1);
}

TEST(Str, EmptyIsNoText) {
  const size_t before = Str::liveCount();
  Str e("");
  Str d;
  EXPECT_TRUE(e.empty());
  EXPECT_EQ(e, d);
  EXPECT_STREQ(e.c_str(), "");
  EXPECT_EQ(e.hash(), std::hash<std::string_view>{}(""));
  EXPECT_EQ(Str::liveCount(), before);
}

TEST(Str, OrdersAndConvertsAsItsText) {
  std::set<Str> s{Str("b"), Str("a"), Str("c"), Str("a")};
  std::vector<std::string> order(s.begin(), s.end());
  EXPECT_EQ(order, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_LT(Str("ab"), Str("b"));
  EXPECT_LT(Str("ab"), std::string_view("b"));
  std::string copy = Str("x.y");
  EXPECT_EQ(copy, "x.y");
  EXPECT_EQ(Str("x") + ".y", "x.y");
  EXPECT_EQ(std::string("w.") + Str("x"), "w.x");
  EXPECT_EQ(Str("a.b.c").substr(2), "b.c");
  EXPECT_EQ(Str("a.b.c").rfind('.'), 3u);
}

// The table is sharded and grows and shrinks under its locks: many threads making and
// dropping the same and different texts end with one live text per survivor.
TEST(Str, ThreadsInternAndReleaseTogether) {
  const size_t before = Str::liveCount();
  constexpr int kThreads = 4;
  constexpr int kTexts = 5000;
  std::vector<std::vector<Str>> kept(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t, &kept] {
      for (int round = 0; round < 3; ++round) {
        std::vector<Str> tmp;
        for (int i = 0; i < kTexts; ++i) {
          tmp.emplace_back("shared-" + std::to_string(i));
          tmp.emplace_back("own-" + std::to_string(t) + "-" + std::to_string(i));
        }
        if (round == 2) {
          for (int i = 0; i < kTexts; i += 2) {
            kept[t].push_back(tmp[2 * i]); // every other shared text
          }
        }
      }
    });
  }
  for (auto& th : threads) {
    th.join();
  }
  EXPECT_EQ(Str::liveCount(), before + kTexts / 2);
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_EQ(kept[t].size(), size_t{kTexts / 2});
    for (size_t i = 0; i < kept[t].size(); ++i) {
      EXPECT_EQ(kept[t][i], "shared-" + std::to_string(2 * i));
      EXPECT_EQ(kept[t][i].data(), kept[0][i].data());
    }
  }
  kept.clear();
  EXPECT_EQ(Str::liveCount(), before);
}

TEST(ThinVector, BehavesAsAVector) {
  static_assert(sizeof(ThinVector<std::string>) == sizeof(void*));
  ThinVector<std::string> v;
  EXPECT_TRUE(v.empty());
  EXPECT_EQ(v.capacity(), 0u); // nothing allocated
  std::vector<std::string> ref;
  for (int i = 0; i < 100; ++i) {
    v.push_back(std::to_string(i));
    ref.push_back(std::to_string(i));
  }
  EXPECT_EQ(v, ref);
  v.insert(v.begin() + 1, "x");
  ref.insert(ref.begin() + 1, "x");
  v.erase(v.begin() + 10, v.begin() + 20);
  ref.erase(ref.begin() + 10, ref.begin() + 20);
  v.emplace(v.end(), "end");
  ref.emplace(ref.end(), "end");
  v.pop_back();
  ref.pop_back();
  EXPECT_EQ(v, ref);
  EXPECT_EQ(v.at(1), "x");
  EXPECT_THROW(v.at(v.size()), std::out_of_range);
  ThinVector<std::string> copy = v;
  ThinVector<std::string> moved = std::move(copy);
  EXPECT_EQ(moved, ref);
  EXPECT_TRUE(copy.empty()); // NOLINT: moved from
  v.shrink_to_fit();
  EXPECT_EQ(v.capacity(), v.size());
  EXPECT_EQ(v, ref);
  v.clear();
  EXPECT_TRUE(v.empty());
  EXPECT_LT(ThinVector<int>({1, 2}), ThinVector<int>({1, 3}));
}

TEST(ThinVector, DestroysWhatItHolds) {
  auto counter = std::make_shared<int>(0);
  {
    ThinVector<std::shared_ptr<int>> v;
    for (int i = 0; i < 33; ++i) {
      v.push_back(counter); // grows past several capacities
    }
    v.erase(v.begin(), v.begin() + 3);
    EXPECT_EQ(counter.use_count(), 31);
  }
  EXPECT_EQ(counter.use_count(), 1);
}

TEST(ChunkedList, ElementsNeverMove) {
  ChunkedList<std::string, 4> l;
  std::vector<const std::string*> where;
  for (int i = 0; i < 50; ++i) {
    where.push_back(&l.emplace_back(std::to_string(i)));
  }
  ASSERT_EQ(l.size(), 50u);
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(&l[i], where[i]) << i;
    EXPECT_EQ(l[i], std::to_string(i));
  }
  EXPECT_EQ(l.front(), "0");
  EXPECT_EQ(l.back(), "49");
  // Random-access iterators, as algorithms use them.
  EXPECT_EQ(l.end() - l.begin(), 50);
  EXPECT_EQ(*(l.begin() + 17), "17");
  auto it = std::find(l.begin(), l.end(), "42");
  EXPECT_EQ(it - l.begin(), 42);
  ChunkedList<std::string, 4> copy = l;
  EXPECT_TRUE(std::equal(copy.begin(), copy.end(), l.begin(), l.end()));
  std::vector<std::string> more{"a", "b"};
  copy.append(more.begin(), more.end());
  EXPECT_EQ(copy.size(), 52u);
  EXPECT_EQ(copy.back(), "b");
  copy.clear();
  EXPECT_TRUE(copy.empty());
}

TEST(WorkerPool, RunsEveryTaskAndEveryPart) {
  WorkerPool pool(2);
  std::vector<std::future<int>> results;
  for (int i = 0; i < 100; ++i) {
    results.push_back(pool.submit([i] { return i * i; }));
  }
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(results[i].get(), i * i);
  }
  std::vector<std::atomic<int>> seen(7);
  pool.parallelFor(7, [&](size_t part, size_t parts) {
    EXPECT_EQ(parts, 7u);
    seen[part].fetch_add(1);
  });
  for (auto& s : seen) {
    EXPECT_EQ(s.load(), 1);
  }
}

// releaseFreeMemory() collects each worker's allocator heap: every worker once, none twice,
// also when asked from a worker (which then cannot take a task).
TEST(WorkerPool, OnEachThreadRunsOncePerWorker) {
  WorkerPool pool(3);
  pool.parallelFor(3, [](size_t, size_t) {}); // starts the workers
  std::mutex mu;
  std::multiset<std::thread::id> ran;
  auto record = [&] {
    std::lock_guard<std::mutex> lock(mu);
    ran.insert(std::this_thread::get_id());
  };
  pool.onEachThread(record);
  const size_t workers = ran.size();
  EXPECT_GE(workers, 1u);
  EXPECT_EQ(std::set<std::thread::id>(ran.begin(), ran.end()).size(), workers);
  EXPECT_EQ(ran.count(std::this_thread::get_id()), 0u);
  ran.clear();
  pool.submit([&] { pool.onEachThread(record); }).get();
  EXPECT_EQ(ran.size(), workers);
  EXPECT_EQ(std::set<std::thread::id>(ran.begin(), ran.end()).size(), workers);
}

TEST(WorkerPool, ATaskExceptionReachesItsFuture) {
  WorkerPool pool(1);
  auto f = pool.submit([]() -> int { throw std::runtime_error("bad batch"); });
  EXPECT_THROW(f.get(), std::runtime_error);
  EXPECT_EQ(pool.submit([] { return 7; }).get(), 7); // the worker lives on
}

} // namespace
} // namespace veer
