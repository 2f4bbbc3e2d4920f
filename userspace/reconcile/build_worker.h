#pragma once

// Config builds (load, resolve, compile: seconds on a huge or hostile config)
// on a thread of their own, so the agent's loop keeps supervising veer-proxy
// and the datapath while one runs.

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"
#include "compiler/pipeline.h"
#include "common/files.h"

namespace veer {

/** What to build: the texts of every source, numbered in the order they were asked for. */
struct BuildInput {
  uint64_t seq = 0;
  std::vector<ConfigText> texts;
  Diagnostics diags; // the sources' own findings (files they could not read)
  /** Per text: the object it holds when its source rejects per object, else "". */
  std::vector<std::string> objects;
};

/** An object left out of a build (or kept at its last good version) for its errors. */
struct RejectedObject {
  std::string object;                      // "VirtualService shop/reviews"
  std::shared_ptr<const std::string> text; // the version rejected
  bool keptLastGood = false;               // false: left out (it never had a good version)
  Diagnostics errors;                      // why: the errors naming it
};

struct BuildOutput {
  uint64_t seq = 0;
  BuildResult build;
  std::string routesJson; // veer-proxy's route table, when one is published and the build is ok
  std::vector<RejectedObject> rejected; // when ok: the objects it was built without
};

/**
 * One build at a time, on its own thread. A request replaces one that has not
 * started; a finished result replaces one not yet taken. A build in flight
 * cannot be interrupted (the parser has no cancellation point): its result is
 * superseded by the newer one, which the caller tells apart by seq.
 */
class BuildWorker {
public:
  using Fn = std::function<BuildOutput(BuildInput)>;

  explicit BuildWorker(Fn fn);
  /** Waits for a build in flight to finish. */
  ~BuildWorker();
  BuildWorker(const BuildWorker&) = delete;
  BuildWorker& operator=(const BuildWorker&) = delete;

  /** Makes the eventfd and starts the thread. */
  Status start();
  void submit(BuildInput input);
  /** Readable (POLLIN) when a result is ready. */
  int fd() const { return event_.get(); }
  /** The newest finished result, if one arrived since the last take. */
  std::optional<BuildOutput> take();

private:
  void run();

  Fn fn_;
  Fd event_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<BuildInput> pending_;
  std::optional<BuildOutput> done_;
  bool stop_ = false;
  std::thread thread_;
};

} // namespace veer
