#include "common/log.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <memory>
#include <mutex>
#include <string>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

namespace splitinfer::log {
namespace {

spdlog::level::level_enum ToSpd(Level l) {
  switch (l) {
    case Level::kTrace:
      return spdlog::level::trace;
    case Level::kDebug:
      return spdlog::level::debug;
    case Level::kInfo:
      return spdlog::level::info;
    case Level::kWarn:
      return spdlog::level::warn;
    case Level::kError:
      return spdlog::level::err;
    case Level::kOff:
      return spdlog::level::off;
  }
  return spdlog::level::info;
}

const char* LevelName(spdlog::level::level_enum l) {
  switch (l) {
    case spdlog::level::trace:
      return "trace";
    case spdlog::level::debug:
      return "debug";
    case spdlog::level::info:
      return "info";
    case spdlog::level::warn:
      return "warn";
    case spdlog::level::err:
      return "error";
    case spdlog::level::critical:
      return "critical";
    default:
      return "off";
  }
}

// 2026-11-25T22:15:03.123Z
std::string IsoTimestamp(spdlog::log_clock::time_point t) {
  using namespace std::chrono;
  const auto since_epoch = duration_cast<milliseconds>(t.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(since_epoch / 1000);
  const int ms = static_cast<int>(since_epoch % 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  const size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%03dZ", ms);
  return buf;
}

// One JSON object per line, built by nlohmann::json so that every string is escaped.
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    nlohmann::ordered_json line;
    line["ts"] = IsoTimestamp(msg.time);
    line["level"] = LevelName(msg.level);
    line["logger"] = std::string(msg.logger_name.data(), msg.logger_name.size());
    line["msg"] = std::string(msg.payload.data(), msg.payload.size());
    const std::string text =
        line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
    dest.append(text.data(), text.data() + text.size());
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

struct Config {
  std::mutex mu;
  std::string name = "splitinfer";
  bool json = false;
  std::ostream* out = nullptr;
};

Config& GetConfig() {
  static Config config;
  return config;
}

// Replaces the default logger by one built from the configuration, keeping its level.
void Rebuild(Config& c) {
  const spdlog::level::level_enum level = spdlog::get_level();
  spdlog::sink_ptr sink;
  if (c.out != nullptr) {
    sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(*c.out, /*force_flush=*/true);
  } else {
    sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  }
  auto logger = std::make_shared<spdlog::logger>(c.name, std::move(sink));
  if (c.json) {
    logger->set_formatter(std::make_unique<JsonFormatter>());
  } else {
    logger->set_formatter(std::make_unique<spdlog::pattern_formatter>());
  }
  logger->set_level(level);
  spdlog::set_default_logger(std::move(logger));
}

}  // namespace

bool SetLevel(const std::string& name) {
  static const char* kNames[] = {"trace", "debug", "info", "warn", "error", "off"};
  for (int i = 0; i < 6; ++i) {
    if (name == kNames[i]) {
      spdlog::set_level(ToSpd(static_cast<Level>(i)));
      return true;
    }
  }
  return false;
}

void SetName(const std::string& name) {
  Config& c = GetConfig();
  std::lock_guard<std::mutex> lock(c.mu);
  c.name = name;
  Rebuild(c);
}

bool SetFormat(const std::string& name) {
  if (name != "text" && name != "json") return false;
  Config& c = GetConfig();
  std::lock_guard<std::mutex> lock(c.mu);
  c.json = name == "json";
  Rebuild(c);
  return true;
}

void SetOutputStream(std::ostream* out) {
  Config& c = GetConfig();
  std::lock_guard<std::mutex> lock(c.mu);
  c.out = out;
  Rebuild(c);
}

bool Enabled(Level level) { return spdlog::should_log(ToSpd(level)); }

void Write(Level level, const std::string& message) { spdlog::log(ToSpd(level), "{}", message); }

}  // namespace splitinfer::log
