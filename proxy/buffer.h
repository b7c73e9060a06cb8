// A growable byte buffer for socket reads: bytes are appended at the tail and consumed from the
// head; consumed space is reclaimed by compaction, so steady-state reads allocate nothing.
#pragma once

#include <cstddef>
#include <cstring>
#include <string_view>
#include <vector>

#include <boost/asio/buffer.hpp>

namespace shardgate::proxy {

// Contract: Data() views [head, tail); a view stays valid until the next Prepare/Compact.
class ReadBuffer {
 public:
  explicit ReadBuffer(size_t initial = 16 * 1024) : bytes_(initial) {}

  std::string_view Data() const { return {bytes_.data() + head_, tail_ - head_}; }
  size_t Size() const { return tail_ - head_; }
  bool Empty() const { return head_ == tail_; }
  void Consume(size_t n) {
    head_ += n;
    if (head_ == tail_) head_ = tail_ = 0;
  }

  // Space for at least `min_free` more bytes (and at least a whole message of `want` bytes
  // counted from the head, when the frame reader says one is coming).
  boost::asio::mutable_buffer Prepare(size_t want = 0, size_t min_free = 4096) {
    if (want > Size() && want - Size() > min_free) min_free = want - Size();
    if (bytes_.size() - tail_ < min_free) {
      // Compact first; grow only when the live bytes plus the request do not fit.
      if (head_ > 0) {
        std::memmove(bytes_.data(), bytes_.data() + head_, tail_ - head_);
        tail_ -= head_;
        head_ = 0;
      }
      if (bytes_.size() - tail_ < min_free) bytes_.resize(tail_ + min_free);
    }
    return boost::asio::buffer(bytes_.data() + tail_, bytes_.size() - tail_);
  }
  void Commit(size_t n) { tail_ += n; }

  // Gives memory back after a huge message (e.g. a 50 MB row) once the buffer is empty.
  void ShrinkIfIdle(size_t keep = 64 * 1024) {
    if (Empty() && bytes_.size() > keep) {
      bytes_.resize(keep);
      bytes_.shrink_to_fit();
    }
  }

 private:
  std::vector<char> bytes_;
  size_t head_ = 0, tail_ = 0;
};

}  // namespace shardgate::proxy
