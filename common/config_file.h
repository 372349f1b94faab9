// Strict --config files for CLI11 programs (edge_server; docs/operations.md, "Configuration").
//
// A config file is TOML: `key = value` lines whose keys are the program's long option names
// without `--`. CLI11's own reader is lenient (an unterminated quote is taken literally, `1.5`
// for an integer option is reported as "out of range"); this one parses with toml++ and refuses,
// naming the file, the line and the key:
//   - any TOML syntax error (unterminated strings, bad numbers, duplicate keys, ...);
//   - tables ([section]): the options are flat;
//   - a key that is not an option of the program, or not one a file may set;
//   - a value of the wrong TOML type: a whole-number option given 1.5 or "5" is "not an
//     integer", a text option needs a quoted string, a flag true or false.
// Ranges are still checked by the options' own validators; ConfigLineOf() tells callers where a
// key came from so that those errors can name the line too.
//
// The file itself is checked before CLI11 opens it (CheckConfigFileArg): a regular file of at
// most kMaxConfigFileBytes (common/bounded_file.h).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "common/status.h"

namespace splitinfer {

class StrictTomlConfig : public CLI::ConfigBase {
 public:
  // `app` must outlive this reader (it looks up the option of each key).
  explicit StrictTomlConfig(const CLI::App* app) : app_(app) {}

  std::vector<CLI::ConfigItem> from_config(std::istream& input) const override;

  // The file name used in messages (CLI11 hands from_config only a stream).
  void set_file_name(std::string name) { file_name_ = std::move(name); }
  const std::string& file_name() const { return file_name_; }
  // The line a key was read from, or 0.
  int LineOf(const std::string& key) const;
  const std::map<std::string, int>& lines() const { return lines_; }

 private:
  const CLI::App* app_;
  std::string file_name_ = "config";
  mutable std::map<std::string, int> lines_;
};

// Installs a StrictTomlConfig as `app`'s config reader and returns it (owned by the app).
std::shared_ptr<StrictTomlConfig> UseStrictTomlConfig(CLI::App* app);

// Finds `--config FILE` / `--config=FILE` in argv; when present, checks the file (regular file,
// size) and tells `reader` its name. Call before app.parse(): CLI11 would block on a FIFO and
// read /dev/zero without end.
Status CheckConfigFileArg(int argc, char** argv, StrictTomlConfig* reader,
                          const std::string& flag = "--config");

// For a parse error of an option the file set and the command line did not: " (FILE line N)",
// else "". `what` is the error text; keys are matched as "--key" in it.
std::string ConfigErrorSuffix(const StrictTomlConfig& reader, const std::string& what, int argc,
                              char** argv);

// app.parse(argc, argv) with the config file checked first (CheckConfigFileArg) and every error
// printed as "PROGRAM: ..." naming the file and line where it has them. Returns the exit code
// when the program should stop (0 after --help, 2 for a bad command line or config file), or
// nothing when parsing succeeded.
std::optional<int> ParseWithConfigFile(CLI::App& app, StrictTomlConfig& reader, int argc,
                                       char** argv, const std::string& program);

}  // namespace splitinfer
