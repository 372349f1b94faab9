// Frame I/O over Boost.Asio TCP sockets, shared by edge_server and device_client.
//
// FrameBuffers() turns an OutgoingFrame into the three buffers of one gather-write.
// BlockingConnection is a synchronous TCP connection where every operation has a deadline
// (the Asio "blocking client with timeouts" pattern: async operations run on a private
// io_context for at most the timeout). One thread uses a BlockingConnection at a time.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <boost/asio.hpp>

#include "common/frame.h"
#include "common/status.h"
#include "common/tls.h"

namespace splitinfer {

// Paces writes (uplink emulation, device/uplink_emulator.h). A paced frame is written in chunks
// of at most ChunkBytes(): BeginFrame() once, then Acquire(n) before each chunk blocks until the
// emulated link has carried those n bytes. Called only from the thread that writes.
class WritePacer {
 public:
  virtual ~WritePacer() = default;
  virtual size_t ChunkBytes() const = 0;
  virtual void BeginFrame() = 0;
  // kUnavailable when the emulated link cannot carry the bytes (e.g. a dead channel).
  virtual Status Acquire(size_t bytes) = 0;
};

inline std::array<asio::const_buffer, 3> FrameBuffers(const OutgoingFrame& f) {
  return {asio::buffer(f.header), asio::buffer(f.meta), asio::buffer(f.body, f.body_size)};
}

// Parses "host:port" (port 0..65535). kInvalidArgument on anything else.
Status ParseHostPort(const std::string& s, std::string* host, uint16_t* port);

class BlockingConnection {
 public:
  using Duration = std::chrono::steady_clock::duration;

  BlockingConnection() : stream_(io_) {}
  BlockingConnection(const BlockingConnection&) = delete;
  BlockingConnection& operator=(const BlockingConnection&) = delete;

  // Resolves and connects (TCP_NODELAY on). kUnavailable when refused or unreachable,
  // kDeadlineExceeded after `timeout`. With `tls` (a client context, common/tls.h), runs the TLS
  // handshake too, within the same `timeout`, verifying the server's certificate for
  // `tls_server_name` (the host when empty); kUnavailable naming the reason when it fails.
  Status Connect(const std::string& host, uint16_t port, Duration timeout,
                 ssl::context* tls = nullptr, const std::string& tls_server_name = "");
  // Writes the whole frame as one gather-write. With a `pacer`, in chunks, each written once
  // the pacer grants it (`timeout` then bounds each chunk's write, not the pacing).
  Status WriteFrame(const OutgoingFrame& frame, Duration timeout, WritePacer* pacer = nullptr);
  // Writes raw bytes (tests use this to send broken frames).
  Status WriteRaw(const void* data, size_t size, Duration timeout);
  // Reads exactly `size` bytes. kUnavailable when the peer closed the connection.
  // Small reads go through a receive buffer, so a small frame (header, metadata, body) costs
  // one system call instead of three; large reads go straight into `data`.
  Status ReadExact(void* data, size_t size, Duration timeout);
  // Reads one frame's header and metadata; the caller then reads header.body_len body bytes.
  Status ReadHeaderAndMeta(const FrameLimits& limits, Duration timeout, FrameHeader* header,
                           std::string* meta);

  bool is_open() const { return stream_.socket().is_open(); }
  // True when the peer has closed its side (or the connection failed): checked without
  // blocking, e.g. before reusing a connection that sat idle.
  bool PeerHungUp();
  // True when bytes are ready to read without waiting: in the receive buffer, or (plain TCP
  // only: a TLS socket may hold records that carry no data) in the socket.
  bool HasInput();
  bool tls() const { return stream_.tls_enabled(); }
  void Close();
  tcp::socket& socket() { return stream_.socket(); }

 private:
  // Runs the io_context until the pending operation completes or `timeout` passes; on timeout
  // closes the socket (which completes the operation with operation_aborted).
  bool RunFor(Duration timeout);

  // One gather-write of `buffers` within `timeout` (defined and used in frame_io.cc only).
  template <typename ConstBufferSequence>
  Status WriteBuffers(const ConstBufferSequence& buffers, Duration timeout);
  // Waits for an async read of `buf` (at least `min_bytes`); sets *got.
  Status ReadAtLeast(asio::mutable_buffer buf, size_t min_bytes, Duration timeout, size_t* got);

  static constexpr size_t kReadBufferSize = 64 * 1024;

  asio::io_context io_;
  MaybeTlsStream stream_;
  std::vector<uint8_t> rbuf_ = std::vector<uint8_t>(kReadBufferSize);
  size_t rpos_ = 0;  // rbuf_[rpos_, rend_) holds received bytes not yet consumed
  size_t rend_ = 0;
  bool write_failed_ = false;  // a write failed: reads go on until they fail (see WriteBuffers)
};

}  // namespace splitinfer
