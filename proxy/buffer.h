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
// front() stays valid until the next push_back or pop_front. The ring's size is a power of two,
// so positions wrap with a mask (a division costs tens of cycles, and the session's queue is
// touched several times per transaction).
template <typename T>
class RingQueue {
 public:
  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }
  T& front() { return slots_[head_]; }
  T& back() { return slots_[Wrap(head_ + size_ - 1)]; }
  T& at(size_t i) { return slots_[Wrap(head_ + i)]; }  // i < size()
  const T& at(size_t i) const { return slots_[Wrap(head_ + i)]; }
  void push_back(T value) { emplace_back() = std::move(value); }
  // A new last element, in its default state (slots outside the queue always are: popped ones
  // are reset), for the caller to fill in place.
  T& emplace_back() {
    if (size_ == slots_.size()) Grow();
    ++size_;
    return back();
  }
  void pop_front() {
    slots_[head_] = T{};  // releases what the slot holds (its capacity may stay)
    head_ = Wrap(head_ + 1);
    --size_;
  }
  void clear() {
    while (!empty()) pop_front();
  }

 private:
  size_t Wrap(size_t i) const { return i & (slots_.size() - 1); }
  void Grow() {
    std::vector<T> bigger(slots_.empty() ? 8 : slots_.size() * 2);
    for (size_t i = 0; i < size_; ++i) bigger[i] = std::move(at(i));
    slots_.swap(bigger);
    head_ = 0;
  }
  std::vector<T> slots_;
  size_t head_ = 0, size_ = 0;
};

}  // namespace shardgate::proxy
