// Logging facade over spdlog. Callers pass finished strings; only log.cc includes spdlog.
//
// Why not spdlog directly: a pip/CUDA LibTorch bundles its own fmt headers, which clash with
// the fmt that the system's spdlog was built for in any translation unit that also includes
// LibTorch. Keeping spdlog out of those units makes the code build against both LibTorch kinds.
// (nlohmann::json, used for the JSON lines, stays in log.cc too.)
// Thread-safe (spdlog's _mt logger) for Write; configure (SetName, SetFormat, SetOutputStream)
// at startup, before other threads log.
#pragma once

#include <iosfwd>
#include <string>

namespace splitinfer::log {

enum class Level { kTrace, kDebug, kInfo, kWarn, kError, kOff };

// Names as on the command line: trace, debug, info, warn, error, off. False if unknown.
bool SetLevel(const std::string& name);
// Logs to stderr with a timestamp and the logger name `name` (default "splitinfer").
void SetName(const std::string& name);
// Line format: "text" (spdlog's "[time] [name] [level] message", the default) or "json": one
// JSON object per line, {"ts":"2026-11-25T22:15:03.123Z","level":"info","logger":"edge",
// "msg":"..."} (ts in UTC, ms; msg escaped, so quotes and newlines stay on one line; invalid
// UTF-8 is replaced by U+FFFD). False if `name` is neither.
bool SetFormat(const std::string& name);
// Sends lines to `out` instead of stderr (flushed after each line); nullptr: back to stderr.
// `out` must outlive its use. For tests.
void SetOutputStream(std::ostream* out);
bool Enabled(Level level);

void Write(Level level, const std::string& message);
inline void Debug(const std::string& m) { Write(Level::kDebug, m); }
inline void Info(const std::string& m) { Write(Level::kInfo, m); }
inline void Warn(const std::string& m) { Write(Level::kWarn, m); }
inline void Error(const std::string& m) { Write(Level::kError, m); }

}  // namespace splitinfer::log
