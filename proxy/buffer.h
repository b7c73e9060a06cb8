// A growable byte buffer for socket reads: bytes are appended at the tail and consumed from the
// head; consumed space is reclaimed by compaction, so steady-state reads allocate nothing.
#pragma once

#include <cstddef>
#include <cstring>
#include <string_view>
#include <utility>
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

// A FIFO queue over a ring of slots that are reused: unlike std::deque, pushing and popping in
// steady state allocates nothing (the ring grows, by doubling, only when full). Contract:
// front() stays valid until the next push_back or pop_front.
template <typename T>
class RingQueue {
 public:
  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }
  T& front() { return slots_[head_]; }
  T& back() { return slots_[(head_ + size_ - 1) % slots_.size()]; }
  T& at(size_t i) { return slots_[(head_ + i) % slots_.size()]; }  // i < size()
  const T& at(size_t i) const { return slots_[(head_ + i) % slots_.size()]; }
  void push_back(T value) {
    if (size_ == slots_.size()) Grow();
    slots_[(head_ + size_) % slots_.size()] = std::move(value);
    ++size_;
  }
  void pop_front() {
    slots_[head_] = T{};  // releases what the slot holds (its capacity may stay)
    head_ = (head_ + 1) % slots_.size();
    --size_;
  }
  void clear() {
    while (!empty()) pop_front();
  }

 private:
  void Grow() {
    std::vector<T> bigger(slots_.empty() ? 8 : slots_.size() * 2);
    for (size_t i = 0; i < size_; ++i) {
      bigger[i] = std::move(slots_[(head_ + i) % slots_.size()]);
    }
    slots_.swap(bigger);
    head_ = 0;
  }
  std::vector<T> slots_;
  size_t head_ = 0, size_ = 0;
};

}  // namespace shardgate::proxy
