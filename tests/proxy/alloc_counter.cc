// Linked into shardgate_alloc_counted (the daemon's main.cc plus this file, tests only): replaces
// the global operator new, and the C aligned allocators (Asio's recycling allocator gets its
// coroutine frames and handlers from aligned_alloc, past operator new), to count every
// allocation of the process but plain malloc, and reports the count to
// the file named by $SHARDGATE_ALLOC_REPORT (rewritten about every 20 ms while it changes) so
// that tests/proxy/alloc_test.cc can measure how many allocations a run of transactions costs.
// The reporter thread itself allocates nothing (raw system calls, a stack buffer).
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <thread>

// glibc's allocator under the aligned entry points replaced below.
extern "C" void* __libc_memalign(std::size_t align, std::size_t size);

namespace {

std::atomic<unsigned long long> g_allocations{0};

void* Allocate(std::size_t size, std::size_t align) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (size == 0) size = 1;
  void* p = align <= alignof(std::max_align_t) ? std::malloc(size) : __libc_memalign(align, size);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void Report(const char* path) {
  char tmp[4096];
  if (std::snprintf(tmp, sizeof tmp, "%s.tmp", path) >= static_cast<int>(sizeof tmp)) return;
  unsigned long long last = ~0ull;
  for (;;) {
    const unsigned long long now = g_allocations.load(std::memory_order_relaxed);
    if (now != last) {
      char line[32];
      const int n = std::snprintf(line, sizeof line, "%llu\n", now);
      const int fd = ::open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd >= 0) {
        const bool ok = ::write(fd, line, static_cast<size_t>(n)) == n;
        ::close(fd);
        if (ok && ::rename(tmp, path) == 0) last = now;
      }
    }
    ::usleep(20000);
  }
}

// Started before main: the reporter lives as long as the process.
const bool g_started = [] {
  const char* path = std::getenv("SHARDGATE_ALLOC_REPORT");
  if (path != nullptr && *path != '\0') std::thread(Report, path).detach();
  return true;
}();

}  // namespace

void* operator new(std::size_t size) { return Allocate(size, alignof(std::max_align_t)); }
void* operator new[](std::size_t size) { return Allocate(size, alignof(std::max_align_t)); }
void* operator new(std::size_t size, std::align_val_t al) {
  return Allocate(size, static_cast<std::size_t>(al));
}
void* operator new[](std::size_t size, std::align_val_t al) {
  return Allocate(size, static_cast<std::size_t>(al));
}
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  try {
    return Allocate(size, alignof(std::max_align_t));
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  try {
    return Allocate(size, alignof(std::max_align_t));
  } catch (...) {
    return nullptr;
  }
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

// The C aligned allocators: the same count (free() releases what they return).
extern "C" void* aligned_alloc(std::size_t align, std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_memalign(align, size);
}
extern "C" void* memalign(std::size_t align, std::size_t size) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_memalign(align, size);
}
extern "C" int posix_memalign(void** out, std::size_t align, std::size_t size) {
  if (align < sizeof(void*) || (align & (align - 1)) != 0) return EINVAL;
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  void* p = __libc_memalign(align, size);
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}
