// Where and when a measurement was taken, for the "host" / "date" fields that profiles, codec
// tables and exit statistics record next to their figures.
#pragma once

#include <string>

namespace splitinfer {

// gethostname(), or "unknown".
std::string HostName();
// The first "model name" of /proc/cpuinfo, or "unknown".
std::string CpuModel();
// The current UTC time as 2026-11-26T04:10:35Z.
std::string NowUtcIso8601();
// The CPU bandwidth limit of this process's cgroup in CPUs (CFS quota / period: 0.5 = half of one
// core), from cgroup v1 cpu.cfs_quota_us / cpu.cfs_period_us or cgroup v2 cpu.max; -1 when there
// is none or it cannot be read. scripts/make_unit_profiles.sh uses such a limit as a CPU-speed
// throttle, and profile_model records it next to the times it measured under it.
double CgroupCpuLimit();

}  // namespace splitinfer
