// RunCommand: runs a shell command line (a built program with its arguments) the way the CLI
// tests need it: its stdout as a string and its exit code.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace splitinfer::test_support {

// Runs `command` through /bin/sh (popen); returns what it wrote to stdout and sets *exit_code to
// its exit status, or -1 when it could not be started or did not exit normally (a signal). The
// caller adds " 2>&1" or " 2>/dev/null" to route stderr.
inline std::string RunCommand(const std::string& command, int* exit_code) {
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) {
    *exit_code = -1;
    return "";
  }
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
  const int status = pclose(pipe);
  *exit_code = status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

}  // namespace splitinfer::test_support
