// edge_server --config FILE (issue 8): options read from a TOML/INI file, the command line over
// the file, --print-config, clear errors for bad files, and --log-format json lines, against the
// real binary.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/integration/child_process.h"

namespace splitinfer {
namespace {

using testing::ChildProcess;
using namespace std::chrono_literals;

const std::string kEdge = std::string(SPLITINFER_BIN_DIR) + "/edge_server";

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("splitinfer_config_test_" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& text) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path) << text;
    return path;
  }
  static std::string Read(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  // Runs edge_server with `args` through sh so that its stderr lands in a file; returns the
  // process (stdout readable through it) and sets *stderr_path.
  std::unique_ptr<ChildProcess> Start(const std::string& args, std::string* stderr_path) {
    *stderr_path = (dir_ / ("stderr" + std::to_string(runs_++))).string();
    return std::make_unique<ChildProcess>(std::vector<std::string>{
        "/bin/sh", "-c", "exec '" + kEdge + "' " + args + " 2>'" + *stderr_path + "'"});
  }
  struct Result {
    int exit_code;
    std::string out, err;
  };
  Result Run(const std::string& args) {
    std::string err_path;
    auto proc = Start(args, &err_path);
    std::string out;
    for (const std::string& line : proc->ReadAll(60s)) out += line + "\n";
    const int code = proc->Wait();
    return {code, out, Read(err_path)};
  }

  std::filesystem::path dir_;
  int runs_ = 0;
};

TEST_F(ConfigTest, FileIsReadAndCommandLineOverridesIt) {
  const std::string cfg = Write("a.toml",
                                "# comment\n"
                                "max-batch-size = 4\n"
                                "drain-timeout-s = 3\n"
                                "log-format = \"text\"\n"
                                "models = \"mlp\"\n"
                                "cpu = true\n");
  const Result r = Run("--config '" + cfg + "' --max-batch-size 8 --print-config");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\nmax-batch-size=8\n"), std::string::npos) << r.out;   // command line
  EXPECT_NE(r.out.find("\ndrain-timeout-s=3\n"), std::string::npos) << r.out;  // file
  EXPECT_NE(r.out.find("\nmodels=\"mlp\"\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\ncpu=true\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\nmax-in-flight=16\n"), std::string::npos) << r.out;  // default

  // What --print-config writes reads back as the same configuration.
  const std::string printed = Write("printed.toml", r.out);
  const Result again = Run("--config '" + printed + "' --print-config");
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.out, r.out);
}

TEST_F(ConfigTest, ExampleConfigIsValid) {
  const Result r = Run("--config '" + std::string(SPLITINFER_SOURCE_DIR) +
                       "/edge_server/edge_server.example.toml' --print-config");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\nlog-format=\"text\"\n"), std::string::npos) << r.out;
}

TEST_F(ConfigTest, BadConfigsStopWithAClearMessage) {
  struct Case {
    std::string file_text;  // empty: the file does not exist
    std::string message;    // expected in stderr
  };
  const std::vector<Case> cases = {
      {"", "no such file"},
      {"max-batch-sise = 4\n", ":1: unknown option 'max-batch-sise'"},
      // Out of range: the validator's message, and the line the value came from.
      {"\nmax-batch-size = 0\n", "--max-batch-size: Value 0 not in range"},
      {"\nmax-batch-size = 0\n", "line 2)"},
      {"max-batch-size = \"many\"\n", ":1: max-batch-size = \"many\": not an integer"},
      {"log-format = \"xml\"\n", "--log-format: xml not in"},
      {"print-config = true\n", "not allowed in a configuration file"},
      {"config = \"other.toml\"\n", "not allowed in a configuration file"},
      // Strict syntax and types: each names the line and the real problem.
      {"models = \"mlp\n", ":1:"},        // unterminated string
      {"# ok\nmodels = \"mlp\n", ":2:"},  // ... on the line it is on
      {"idle-timeout-s = 1.5\n", "idle-timeout-s = 1.5: not an integer"},
      {"log-format = text\n", ":1:"},                       // unquoted word
      {"max-batch-size = 4\nmax-batch-size = 8\n", ":2:"},  // duplicate key
      {"cpu = 1\n", "cpu = 1: needs true or false"},
      {"[server]\nmodels = \"mlp\"\n", "sections are not used"},
  };
  int i = 0;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.message);
    const std::string name = "bad" + std::to_string(i++) + ".toml";
    const std::string path =
        c.file_text.empty() ? (dir_ / name).string() : Write(name, c.file_text);
    const Result r = Run("--config '" + path + "' --models mlp");
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_EQ(r.out.find("listening"), std::string::npos) << r.out;  // never started serving
    EXPECT_NE(r.err.find(c.message), std::string::npos) << r.err;
  }
}

// The config file is read only when it is a regular file of at most 1 MiB: a FIFO would block
// the start forever, /dev/zero would eat memory without end, a directory read as empty.
TEST_F(ConfigTest, OnlyBoundedRegularFilesAreRead) {
  const std::string fifo = (dir_ / "fifo.toml").string();
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  const std::string big = Write("big.toml", "# " + std::string(2u << 20, 'x') + "\n");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"/dev/zero", "is a character device, not a regular file"},
      {dir_.string(), "is a directory, not a regular file"},
      {fifo, "is a FIFO, not a regular file"},
      {big, "over the limit of 1048576"},
  };
  for (const auto& [path, message] : cases) {
    SCOPED_TRACE(path);
    const auto t0 = std::chrono::steady_clock::now();
    const Result r = Run("--config '" + path + "' --models mlp");
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find(message), std::string::npos) << r.err;
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 30s);  // refused, not read
  }
}

TEST_F(ConfigTest, ServesFromConfigWithJsonLogs) {
  const std::string cfg = Write("serve.toml",
                                "listen = \"127.0.0.1:0\"\n"
                                "models = \"mlp\"\n"
                                "mlp-width = 64\n"
                                "mlp-layers = 4\n"
                                "cpu = true\n"
                                "drain-timeout-s = 3\n"
                                "log-format = \"text\"\n");
  std::string err_path;
  auto proc = Start("--config '" + cfg + "' --log-format json", &err_path);
  auto line = proc->ReadLine(120s);
  ASSERT_TRUE(line.has_value());
  EXPECT_EQ(line->rfind("listening 127.0.0.1:", 0), 0u) << *line;
  proc->Kill(SIGTERM);
  EXPECT_EQ(proc->Wait(), 0);

  // Every stderr line is one JSON object; the drain line shows the file's drain-timeout-s.
  std::istringstream err(Read(err_path));
  int lines = 0;
  bool saw_drain_deadline = false;
  for (std::string l; std::getline(err, l);) {
    ++lines;
    const nlohmann::json j = nlohmann::json::parse(l, nullptr, /*allow_exceptions=*/false);
    ASSERT_TRUE(j.is_object()) << l;
    EXPECT_EQ(j.value("logger", ""), "edge") << l;
    EXPECT_TRUE(j.contains("ts") && j.contains("level") && j.contains("msg")) << l;
    if (j.value("msg", "").find("draining (up to 3 s") != std::string::npos) {
      saw_drain_deadline = true;
    }
  }
  EXPECT_GE(lines, 3);
  EXPECT_TRUE(saw_drain_deadline) << Read(err_path);
}

}  // namespace
}  // namespace splitinfer
