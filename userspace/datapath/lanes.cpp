#include "datapath/lanes.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <set>

namespace veer {

std::vector<std::pair<veer_lane_key, veer_lane>>
laneCgroups(const std::string& root,
            const std::vector<std::pair<PlanLaneClient, uint32_t>>& clients,
            std::vector<std::string>* unmatched) {
  namespace fs = std::filesystem;
  std::vector<std::pair<veer_lane_key, veer_lane>> out;
  std::set<size_t> found;
  if (!clients.empty()) {
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(root, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (!it->is_directory(ec)) {
        continue;
      }
      const std::string base = it->path().filename().string();
      for (size_t i = 0; i < clients.size(); ++i) {
        const PlanLaneClient& c = clients[i].first;
        bool mine = false;
        if (!c.uid.empty()) {
          std::string systemd = c.uid;
          std::replace(systemd.begin(), systemd.end(), '-', '_');
          mine = base.find(c.uid) != std::string::npos || base.find(systemd) != std::string::npos;
        } else {
          mine = base == c.name;
        }
        if (!mine) {
          continue;
        }
        struct stat st {};
        if (stat(it->path().c_str(), &st) != 0) {
          break; // removed under us
        }
        veer_lane_key key{};
        key.cgroup_id = st.st_ino; // cgroup v2 id == inode of its directory
        veer_lane lane{};
        lane.id = clients[i].second;
        out.emplace_back(key, lane);
        found.insert(i);
        it.disable_recursion_pending(); // its children are the pod's containers
        break;
      }
    }
  }
  if (unmatched != nullptr) {
    for (size_t i = 0; i < clients.size(); ++i) {
      if (!found.count(i)) {
        unmatched->push_back(clients[i].first.ns + "/" + clients[i].first.name);
      }
    }
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.first.cgroup_id < b.first.cgroup_id; });
  return out;
}

} // namespace veer
