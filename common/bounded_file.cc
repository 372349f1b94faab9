#include "common/bounded_file.h"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace splitinfer {
namespace {

const char* KindOf(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

// Opens `path` without blocking (O_NONBLOCK: opening a FIFO with no writer would wait forever)
// and checks what it is. Returns the descriptor, or -1 with *st set.
int OpenChecked(const std::string& path, uint64_t max_bytes, const std::string& what, Status* st) {
  const std::string name = what + " " + path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    const int e = errno;
    if (e == ENOENT || e == ENOTDIR) {
      *st = NotFoundError(name + ": no such file");
    } else if (e == EACCES || e == EPERM) {
      *st = FailedPreconditionError(name + ": permission denied");
    } else {
      *st = InvalidArgumentError(name + ": cannot open: " + std::strerror(e));
    }
    return -1;
  }
  struct stat sb {};
  if (::fstat(fd, &sb) != 0) {
    *st = InvalidArgumentError(name + ": cannot stat: " + std::strerror(errno));
    ::close(fd);
    return -1;
  }
  if (!S_ISREG(sb.st_mode)) {
    *st = InvalidArgumentError(name + " is " + KindOf(sb.st_mode) + ", not a regular file");
    ::close(fd);
    return -1;
  }
  if (static_cast<uint64_t>(sb.st_size) > max_bytes) {
    *st = ResourceExhaustedError(name + " is " + std::to_string(sb.st_size) +
                                 " bytes, over the limit of " + std::to_string(max_bytes));
    ::close(fd);
    return -1;
  }
  *st = Status::Ok();
  return fd;
}

}  // namespace

Status CheckBoundedFile(const std::string& path, uint64_t max_bytes, const std::string& what) {
  Status st;
  const int fd = OpenChecked(path, max_bytes, what, &st);
  if (fd >= 0) ::close(fd);
  return st;
}

Result<std::string> ReadBoundedFile(const std::string& path, uint64_t max_bytes,
                                    const std::string& what) {
  Status st;
  const int fd = OpenChecked(path, max_bytes, what, &st);
  if (fd < 0) return st;
  std::string out;
  char buf[64 * 1024];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      ::close(fd);
      return InvalidArgumentError(what + " " + path + ": read failed: " + std::strerror(e));
    }
    if (n == 0) break;
    if (out.size() + static_cast<size_t>(n) > max_bytes) {
      ::close(fd);
      return ResourceExhaustedError(what + " " + path + " grew past the limit of " +
                                    std::to_string(max_bytes) + " bytes while being read");
    }
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

}  // namespace splitinfer
