// ChildProcess: starts a real program (edge_server, device_client) for integration tests and
// reads its stdout line by line with a timeout. The child is killed when this object dies.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace splitinfer::testing {

class ChildProcess {
 public:
  // argv[0] is the program path. stderr is inherited (it shows in the test log).
  explicit ChildProcess(std::vector<std::string> argv) {
    int fds[2];
    if (pipe(fds) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], STDOUT_FILENO);
      close(fds[0]);
      close(fds[1]);
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
    close(fds[1]);
    out_fd_ = fds[0];
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess() {
    Kill(SIGKILL);
    Wait();
    if (out_fd_ >= 0) close(out_fd_);
  }

  bool started() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

  // Next line of stdout (without '\n'), or nullopt on EOF or timeout.
  std::optional<std::string> ReadLine(std::chrono::milliseconds timeout) {
    const auto give_up = std::chrono::steady_clock::now() + timeout;
    while (true) {
      if (auto nl = buf_.find('\n'); nl != std::string::npos) {
        std::string line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return line;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          give_up - std::chrono::steady_clock::now());
      if (left.count() <= 0 || out_fd_ < 0) return std::nullopt;
      pollfd p{out_fd_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char chunk[4096];
      const ssize_t n = read(out_fd_, chunk, sizeof chunk);
      if (n <= 0) return std::nullopt;
      buf_.append(chunk, static_cast<size_t>(n));
    }
  }

  // All remaining stdout lines until EOF (or the timeout).
  std::vector<std::string> ReadAll(std::chrono::milliseconds timeout) {
    std::vector<std::string> lines;
    const auto give_up = std::chrono::steady_clock::now() + timeout;
    while (auto line = ReadLine(std::chrono::duration_cast<std::chrono::milliseconds>(
               give_up - std::chrono::steady_clock::now()))) {
      lines.push_back(*line);
    }
    return lines;
  }

  void Kill(int sig) {
    if (pid_ > 0 && !exited_) kill(pid_, sig);
  }

  // Waits for the exit; returns the exit status (or 128 + signal).
  int Wait() {
    if (pid_ <= 0) return -1;
    if (!exited_) {
      int status = 0;
      waitpid(pid_, &status, 0);
      exited_ = true;
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    return exit_code_;
  }

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::string buf_;
  bool exited_ = false;
  int exit_code_ = -1;
};

// An edge_server started on 127.0.0.1 port 0; port() is the port it printed.
class EdgeServerProcess {
 public:
  explicit EdgeServerProcess(std::vector<std::string> extra_args)
      : proc_(MakeArgs(std::move(extra_args))) {
    if (auto line = proc_.ReadLine(std::chrono::seconds(120))) {
      const std::string prefix = "listening 127.0.0.1:";
      if (line->rfind(prefix, 0) == 0) port_ = std::stoi(line->substr(prefix.size()));
      first_line_ = *line;
    }
  }
  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  const std::string& first_line() const { return first_line_; }
  ChildProcess& process() { return proc_; }

 private:
  static std::vector<std::string> MakeArgs(std::vector<std::string> extra) {
    std::vector<std::string> args{std::string(SPLITINFER_BIN_DIR) + "/edge_server", "--listen",
                                  "127.0.0.1:0"};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }
  ChildProcess proc_;
  int port_ = 0;
  std::string first_line_;
};

}  // namespace splitinfer::testing
