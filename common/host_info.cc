#include "common/host_info.h"

#include <unistd.h>

#include <ctime>
#include <fstream>
#include <sstream>
#include <vector>

namespace splitinfer {

std::string HostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "unknown";
  return buf;
}

std::string CpuModel() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) != 0) continue;
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    const size_t b = line.find_first_not_of(' ', colon + 1);
    return b == std::string::npos ? "" : line.substr(b);
  }
  return "unknown";
}

std::string NowUtcIso8601() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

namespace {

// "N:controllers:/path" lines of /proc/self/cgroup.
struct CgroupLine {
  std::string controllers, path;
};

std::vector<CgroupLine> ReadCgroups() {
  std::vector<CgroupLine> out;
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    const size_t a = line.find(':');
    const size_t b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    out.push_back({line.substr(a + 1, b - a - 1), line.substr(b + 1)});
  }
  return out;
}

bool HasController(const std::string& list, const std::string& name) {
  std::stringstream ss(list);
  std::string c;
  while (std::getline(ss, c, ','))
    if (c == name) return true;
  return false;
}

}  // namespace

double CgroupCpuLimit() {
  for (const CgroupLine& c : ReadCgroups()) {
    if (c.controllers.empty()) {
      // cgroup v2: "max 100000" or "50000 100000".
      for (const char* root : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}) {
        std::ifstream in(std::string(root) + c.path + "/cpu.max");
        std::string quota;
        double period = 0;
        if (in >> quota >> period && quota != "max" && period > 0) {
          try {
            return std::stod(quota) / period;
          } catch (...) {
            return -1.0;
          }
        }
      }
    } else if (HasController(c.controllers, "cpu")) {
      const std::string dir = "/sys/fs/cgroup/" + c.controllers + c.path;
      std::ifstream q(dir + "/cpu.cfs_quota_us"), p(dir + "/cpu.cfs_period_us");
      double quota = 0, period = 0;
      if (q >> quota && p >> period && quota > 0 && period > 0) return quota / period;
    }
  }
  return -1.0;
}

}  // namespace splitinfer
