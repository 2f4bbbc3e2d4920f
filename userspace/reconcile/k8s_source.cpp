#include "reconcile/k8s_source.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace veer {

K8sSource::K8sSource(k8s::ClusterConfig config, k8s::ClusterSource::Options options,
                     proxy::TimeSource& clock, ConfigSink& sink)
    : clock_(clock), sink_(sink), client_(std::move(config), k8s::systemClock()), store_(this),
      cluster_(std::make_unique<k8s::ClusterSource>(client_, store_, std::move(options))) {}

K8sSource::~K8sSource() {
  cluster_->stop();
}

Status K8sSource::init() {
  event_ = Fd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!event_) {
    return osError(errno, "eventfd");
  }
  spdlog::info("config from the Kubernetes API at {} ({}); nothing is applied before every "
               "watched kind is listed",
               client_.config().server, client_.config().source);
  cluster_->start();
  nextSyncCheck_ = clock_.nowMs();
  return {};
}

// On a reflector thread, under the store's lock: no more than a flag and a wake-up.
void K8sSource::onUpsert(const k8s::ApiObject&) {
  wake();
}
void K8sSource::onDelete(const k8s::ApiObject&) {
  wake();
}

void K8sSource::wake() {
  events_.fetch_add(1, std::memory_order_acq_rel);
  // One write per burst: an initial list of 100,000 objects is not 100,000 syscalls under
  // the store's lock. Later events of the burst are seen through the counter.
  if (!dirty_.exchange(true, std::memory_order_acq_rel)) {
    const uint64_t one = 1;
    // Cannot fail but for an overflowing counter, which still leaves it readable.
    (void)!write(event_.get(), &one, sizeof(one));
  }
}

void K8sSource::onReadable() {
  uint64_t n = 0;
  if (read(event_.get(), &n, sizeof(n)) != sizeof(n)) {
    return;
  }
  const uint64_t now = clock_.nowMs();
  if (!firstEvent_) {
    firstEvent_ = now;
  }
  lastEvent_ = now;
  seenEvents_ = events();
}

std::optional<uint64_t> K8sSource::due() const {
  if (!delivered_) {
    return nextSyncCheck_;
  }
  if (!firstEvent_) {
    return std::nullopt;
  }
  return std::min(*lastEvent_ + kQuietMs, *firstEvent_ + kMaxDelayMs);
}

void K8sSource::onTimer() {
  const uint64_t now = clock_.nowMs();
  if (!delivered_) {
    if (now < nextSyncCheck_) {
      return;
    }
    nextSyncCheck_ = now + kSyncPollMs;
    if (!cluster_->synced()) {
      return;
    }
    spdlog::info("Kubernetes API: initial sync done ({} objects)", store_.size());
    deliver();
    return;
  }
  std::optional<uint64_t> at = due();
  if (!at || now < *at) {
    return;
  }
  // Changes since the loop last looked (they send no wake-up): the burst goes on, and the
  // quiet period starts again, up to kMaxDelayMs after the burst began.
  if (const uint64_t n = events(); n != seenEvents_ && now < *firstEvent_ + kMaxDelayMs) {
    seenEvents_ = n;
    lastEvent_ = now;
    return;
  }
  deliver();
}

void K8sSource::refresh() {
  if (delivered_) {
    deliver();
  }
}

void K8sSource::deliver() {
  // Cleared before the snapshot is taken: a change racing it marks the store dirty again
  // and is delivered by the next burst, never lost.
  dirty_.store(false, std::memory_order_release);
  seenEvents_ = events();
  firstEvent_.reset();
  lastEvent_.reset();
  std::vector<k8s::ApiObject> objects = store_.snapshot();
  ConfigSnapshot snap;
  snap.texts.reserve(objects.size());
  snap.objects.reserve(objects.size());
  for (k8s::ApiObject& obj : objects) {
    // Diagnostics name the object as "Kind ns/name": that names it for the reconciler's
    // per-object rejection; the text's file name stays shared per kind (store.h says why).
    snap.objects.push_back(obj.key.kind + " " + obj.key.ns + "/" + obj.key.name);
    snap.texts.push_back(
        {obj.sourceName(), std::make_shared<const std::string>(std::move(obj.json))});
  }
  delivered_ = true;
  sink_.update(name_, std::move(snap));
}

} // namespace veer
