// Reading files a user names (traces, profiles, codec tables, configs, secrets) without trusting
// them: regular files only (a FIFO would block forever, /dev/zero never ends, a directory reads
// as nothing), and at most a stated size, checked before anything is read and again while
// reading (the file may grow). Every error names the file and the reason.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace splitinfer {

// Caps for the kinds of file the programs read (docs/security.md, "Files").
inline constexpr uint64_t kMaxDataFileBytes = 256ull << 20;  // traces, profiles, codec tables
inline constexpr uint64_t kMaxConfigFileBytes = 1ull << 20;  // --config files

// The whole file. kNotFound when it does not exist, kFailedPrecondition when it may not be read,
// kInvalidArgument when it is not a regular file, kResourceExhausted when it is larger than
// `max_bytes`. `what` names the file's role in messages ("trace", "--config").
Result<std::string> ReadBoundedFile(const std::string& path, uint64_t max_bytes,
                                    const std::string& what = "file");

// The same checks without reading, for files a library opens itself (CLI11's --config reader,
// zlib): call it just before.
Status CheckBoundedFile(const std::string& path, uint64_t max_bytes,
                        const std::string& what = "file");

}  // namespace splitinfer
