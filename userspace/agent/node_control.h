#pragma once

// The reconciler's interfaces over the real node: the loaded datapath, the
// socket recycler and veer-proxy's supervisor.

#include <cerrno>

#include "agent/proxy_supervisor.h"
#include "datapath/datapath.h"
#include "datapath/recycle.h"
#include "reconcile/datapath_control.h"

namespace veer {

class KernelDatapathControl final : public DatapathControl {
public:
  /** recycler: null when socket recycling is off or unavailable. */
  KernelDatapathControl(Datapath& dp, Recycler* recycler) : dp_(dp), recycler_(recycler) {}

  Result<veer_state> state() override { return dp_.maps().state(); }
  Status apply(const MapImage& image) override { return dp_.maps().apply(image); }
  Status countRejected() override { return dp_.maps().countRejected(); }
  const char* recycler() const override { return recycler_ ? recycler_->modeName() : nullptr; }
  bool recyclerSeesClients() const override { return recycler_ && recycler_->seesClients(); }
  Result<RecycleCount> recycle(const RecycleTargets& targets) override {
    if (recycler_ == nullptr) {
      return Error{EOPNOTSUPP, "socket recycling is off or unavailable"};
    }
    return recycler_->run(targets);
  }

private:
  Datapath& dp_;
  Recycler* recycler_;
};

class ProxyRoutePublisher final : public RoutePublisher {
public:
  explicit ProxyRoutePublisher(ProxySupervisor& proxy) : proxy_(proxy) {}
  Status publish(const std::string& json) override { return proxy_.publish(json); }

private:
  ProxySupervisor& proxy_;
};

} // namespace veer
