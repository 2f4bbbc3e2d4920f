#pragma once

// What the reconciler needs from the node, as narrow interfaces: the agent
// implements them over the loaded Datapath, the Recycler and veer-proxy's
// supervisor; unit tests over fakes (Katran's testing mode), without root.

#include "common/result.h"
#include "compiler/compiler.h"
#include "datapath/recycle.h"
#include "veer/maps.h"

namespace veer {

/** The socket datapath's maps and socket recycling. */
class DatapathControl {
public:
  virtual ~DatapathControl() = default;

  /** The live veer_state: generation, applies, rejections and the live image's digest. */
  virtual Result<veer_state> state() = 0;
  /** Makes image the live config in one flip; on failure the live one is untouched. */
  virtual Status apply(const MapImage& image) = 0;
  /** Counts a rejected config in veer_state (what `veerctl status` and tests read). */
  virtual Status countRejected() = 0;

  /** The recycler's mechanism ("iterator", "netlink"), or null when sockets cannot be destroyed. */
  virtual const char* recycler() const = 0;
  /** Whether the recycler can judge VEER_RECYCLE_AFFINITY targets (it sees a socket's client). */
  virtual bool recyclerSeesClients() const = 0;
  /** Destroys the sockets matching targets, in every network namespace of the node. */
  virtual Result<RecycleCount> recycle(const RecycleTargets& targets) = 0;
};

/** Where the compiled L7 route table goes (veer-proxy). */
class RoutePublisher {
public:
  virtual ~RoutePublisher() = default;
  /** Makes json the proxy's route table; an error means L7 services take the kernel path. */
  virtual Status publish(const std::string& json) = 0;
};

} // namespace veer
