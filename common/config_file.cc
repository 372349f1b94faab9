#include "common/config_file.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstring>
#include <iostream>
#include <iterator>
#include <sstream>

#include <toml++/toml.h>

#include "common/bounded_file.h"

namespace splitinfer {
namespace {

enum class Want { kInteger, kNumber, kText, kFlag, kAny };

// What a CLI11 option takes, from its type name ("INT", "UINT", "FLOAT", "TEXT", ...; the
// validators' descriptions follow a ':').
Want WantOf(const CLI::Option& opt) {
  if (opt.get_expected_max() == 0) return Want::kFlag;  // add_flag: expected(0)
  std::string type = opt.get_type_name();
  type = type.substr(0, type.find(':'));
  if (type == "INT" || type == "UINT") return Want::kInteger;
  if (type == "FLOAT" || type == "NUMBER") return Want::kNumber;
  if (type == "TEXT") return Want::kText;
  return Want::kAny;
}

const char* TomlTypeName(const toml::node& v) {
  switch (v.type()) {
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a number with a fraction";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::table:
      return "a table";
    default:
      return "a date or time";
  }
}

std::string Render(const toml::node& v) {
  std::ostringstream s;
  if (auto* str = v.as_string()) {
    s << '"' << str->get() << '"';
  } else if (auto* d = v.as_floating_point()) {
    s << d->get();
  } else if (auto* i = v.as_integer()) {
    s << i->get();
  } else if (auto* b = v.as_boolean()) {
    s << (b->get() ? "true" : "false");
  } else {
    s << TomlTypeName(v);
  }
  return s.str();
}

}  // namespace

std::vector<CLI::ConfigItem> StrictTomlConfig::from_config(std::istream& input) const {
  lines_.clear();
  // Bounded even when the stream is not the checked file (CheckConfigFileArg checks that one).
  std::string text;
  text.resize(kMaxConfigFileBytes + 1);
  input.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(input.gcount()));
  if (text.size() > kMaxConfigFileBytes) {
    throw CLI::ConfigError(file_name_ + ": larger than " + std::to_string(kMaxConfigFileBytes) +
                           " bytes");
  }
  toml::table table;
  try {
    table = toml::parse(text, file_name_);
  } catch (const toml::parse_error& e) {
    const auto& where = e.source().begin;
    std::string what(e.description());
    // toml++ reports an unterminated string as the newline that ends the line inside it.
    if (what.find("parsing string") != std::string::npos) what += " (an unterminated string?)";
    throw CLI::ConfigError(file_name_ + ":" + std::to_string(where.line) + ":" +
                           std::to_string(where.column) + ": syntax error: " + what);
  }
  std::vector<CLI::ConfigItem> items;
  for (auto&& [key, node] : table) {
    const std::string name(key.str());
    const int line = static_cast<int>(key.source().begin.line);
    const std::string at = file_name_ + ":" + std::to_string(line) + ": ";
    if (node.is_table()) {
      throw CLI::ConfigError(at + "[" + name + "]: sections are not used; write KEY = VALUE " +
                             "lines with the long option names (as in --help)");
    }
    const CLI::Option* opt = app_->get_option_no_throw("--" + name);
    if (opt == nullptr) {
      throw CLI::ConfigError(at + "unknown option '" + name +
                             "' (keys are long option names without --, as in --help)");
    }
    if (!opt->get_configurable()) {
      throw CLI::ConfigError(at + name + ": this option is not allowed in a configuration file");
    }
    std::vector<const toml::node*> values;
    if (const toml::array* arr = node.as_array()) {
      if (opt->get_items_expected_max() <= 1) {
        throw CLI::ConfigError(at + name + " takes one value, not an array");
      }
      for (const toml::node& e : *arr) values.push_back(&e);
    } else {
      values.push_back(&node);
    }
    CLI::ConfigItem item;
    item.name = name;
    for (const toml::node* v : values) {
      const Want want = WantOf(*opt);
      auto wrong = [&](const std::string& need) {
        return CLI::ConfigError(at + name + " = " + Render(*v) + ": " + need + ", got " +
                                TomlTypeName(*v));
      };
      if (v->is_array() || v->is_table() || v->is_date() || v->is_time() || v->is_date_time()) {
        throw wrong("needs a single value");
      }
      switch (want) {
        case Want::kInteger:
          if (!v->is_integer()) throw wrong("not an integer (this option takes a whole number)");
          break;
        case Want::kNumber:
          if (!v->is_number()) throw wrong("needs a number");
          break;
        case Want::kText:  // a number is fine as text (--print-config writes "0" unquoted)
          if (!v->is_string() && !v->is_number()) throw wrong("needs a quoted string");
          break;
        case Want::kFlag:
          if (!v->is_boolean()) throw wrong("needs true or false");
          break;
        case Want::kAny:
          break;
      }
      if (auto* s = v->as_string()) {
        item.inputs.push_back(s->get());
      } else if (auto* i = v->as_integer()) {
        item.inputs.push_back(std::to_string(i->get()));
      } else if (auto* d = v->as_floating_point()) {
        if (!std::isfinite(d->get())) throw wrong("needs a finite number");
        char buf[64];
        auto r = std::to_chars(buf, buf + sizeof buf, d->get());
        item.inputs.emplace_back(buf, r.ptr);
      } else if (auto* b = v->as_boolean()) {
        item.inputs.push_back(b->get() ? "true" : "false");
      }
    }
    lines_[name] = line;
    items.push_back(std::move(item));
  }
  return items;
}

int StrictTomlConfig::LineOf(const std::string& key) const {
  auto it = lines_.find(key);
  return it == lines_.end() ? 0 : it->second;
}

std::shared_ptr<StrictTomlConfig> UseStrictTomlConfig(CLI::App* app) {
  auto reader = std::make_shared<StrictTomlConfig>(app);
  app->config_formatter(reader);
  return reader;
}

Status CheckConfigFileArg(int argc, char** argv, StrictTomlConfig* reader,
                          const std::string& flag) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    std::string path;
    if (arg == flag) {
      if (i + 1 >= argc) return Status::Ok();  // CLI11 reports the missing value
      path = argv[i + 1];
    } else if (arg.rfind(flag + "=", 0) == 0) {
      path = arg.substr(flag.size() + 1);
    } else {
      continue;
    }
    if (path.empty()) continue;
    SPLITINFER_RETURN_IF_ERROR(CheckBoundedFile(path, kMaxConfigFileBytes, flag));
    if (reader != nullptr) reader->set_file_name(path);
  }
  return Status::Ok();
}

std::string ConfigErrorSuffix(const StrictTomlConfig& reader, const std::string& what, int argc,
                              char** argv) {
  for (const auto& [key, line] : reader.lines()) {
    const std::string flag = "--" + key;
    const size_t at = what.find(flag);
    if (at == std::string::npos) continue;
    const size_t end = at + flag.size();
    if (end < what.size() && (std::isalnum(static_cast<unsigned char>(what[end])) ||
                              what[end] == '-' || what[end] == '_')) {
      continue;  // a longer option name
    }
    bool on_command_line = false;  // the command line wins over the file: its value failed
    for (int i = 1; i < argc; ++i) {
      const std::string arg = argv[i];
      on_command_line |= arg == flag || arg.rfind(flag + "=", 0) == 0;
    }
    if (on_command_line) return "";
    return " (" + reader.file_name() + " line " + std::to_string(line) + ")";
  }
  return "";
}

std::optional<int> ParseWithConfigFile(CLI::App& app, StrictTomlConfig& reader, int argc,
                                       char** argv, const std::string& program) {
  if (Status file = CheckConfigFileArg(argc, argv, &reader); !file.ok()) {
    std::cerr << program << ": " << file.message() << "\n";
    return 2;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const bool config_error = dynamic_cast<const CLI::ConfigError*>(&e) != nullptr ||
                              dynamic_cast<const CLI::FileError*>(&e) != nullptr;
    if (!config_error) {
      if (e.get_exit_code() == 0) return app.exit(e);  // --help
      const std::string where = ConfigErrorSuffix(reader, e.what(), argc, argv);
      if (!where.empty()) {
        std::cerr << program << ": " << e.what() << where << "\n";
        return 2;
      }
      const int rc = app.exit(e);  // a bad option: CLI11's message
      if (rc != 0 && app.get_config_ptr() != nullptr && app.get_config_ptr()->count() > 0) {
        std::cerr << "(options come from the command line and from --config "
                  << app.get_config_ptr()->as<std::string>() << ")\n";
      }
      return rc == 0 ? 0 : 2;  // bad options exit 2, as every other bad start-up does
    }
    const std::string file =
        app.get_config_ptr() != nullptr ? app.get_config_ptr()->as<std::string>() : "?";
    std::cerr << program << ": --config " << file << ": " << e.what() << "\n";
    return 2;
  }
  return std::nullopt;
}

}  // namespace splitinfer
