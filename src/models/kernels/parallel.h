// Threading shared by the CPU kernels (channelwise, vol2col, direct and pointwise convolutions).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include <unistd.h>

namespace video_zoo_kernels {

// Worker threads: VIDEO_ZOO_KERNEL_THREADS (X3D_KERNEL_THREADS, its deprecated spelling), else
// OMP_NUM_THREADS, else all cores.
inline int num_threads() {
  static const int n = [] {
    for (const char *name : {"VIDEO_ZOO_KERNEL_THREADS", "X3D_KERNEL_THREADS", "OMP_NUM_THREADS"}) {
      const char *v = std::getenv(name);
      if (v && std::atoi(v) > 0) return std::atoi(v);
    }
    const unsigned hc = std::thread::hardware_concurrency();
    return hc > 0 ? static_cast<int>(hc) : 1;
  }();
  return n;
}

// A pool of num_threads() - 1 workers that outlive the calls. A thread started per call begins on
// a cold core (caches and clock) and a network calls the kernels hundreds of times per batch.
// Between calls a worker spins only briefly (200 us), then sleeps: a spinning team (OpenMP's
// default) would take the cores from MindSpore's own kernel threads on a small machine.
class Pool {
 public:
  static Pool &get() {
    static Pool *pool = new Pool(num_threads() - 1);  // never destroyed: workers may outlive main
    return *pool;
  }

  // fn(t) for t in [0, n): t = 0 on the caller, the others on workers; returns when all are done
  void run(int n, const std::function<void(int)> &fn) {
    n = std::min<int>(n, static_cast<int>(workers_.size()) + 1);
    if (n <= 1 || getpid() != pid_) {  // a forked child has no workers
      for (int t = 0; t < n; ++t) fn(t);
      return;
    }
    std::lock_guard<std::mutex> one_job(job_lock_);  // callers from several threads take turns
    job_ = &fn;
    pending_.store(n - 1, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> g(m_);
      // the generation and how many workers take part, published together
      ticket_.store(((ticket_.load(std::memory_order_relaxed) >> 16) + 1) << 16 | (n - 1), std::memory_order_release);
    }
    cv_.notify_all();
    fn(0);
    while (pending_.load(std::memory_order_acquire) > 0) std::this_thread::yield();
  }

 private:
  explicit Pool(int workers) : pid_(getpid()) {
    for (int i = 0; i < workers; ++i) workers_.emplace_back([this, i] { loop(i + 1); });
    for (auto &w : workers_) w.detach();
  }

  void loop(int id) {
    uint64_t seen = 0;
    for (;;) {
      uint64_t t = ticket_.load(std::memory_order_acquire);
      if (t >> 16 == seen) {
        const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(200);  // spin
        while ((t = ticket_.load(std::memory_order_acquire)) >> 16 == seen && std::chrono::steady_clock::now() < until) {
        }
        if (t >> 16 == seen) {
          std::unique_lock<std::mutex> lk(m_);
          cv_.wait(lk, [&] { return (t = ticket_.load(std::memory_order_acquire)) >> 16 != seen; });
        }
      }
      seen = t >> 16;
      if (id <= static_cast<int>(t & 0xffff)) {  // job_ stays valid until this worker reports
        (*job_)(id);
        pending_.fetch_sub(1, std::memory_order_acq_rel);
      }
    }
  }

  const pid_t pid_;
  std::vector<std::thread> workers_;
  std::mutex job_lock_, m_;
  std::condition_variable cv_;
  std::atomic<uint64_t> ticket_{0};  // generation << 16 | workers taking part
  std::atomic<int> pending_{0};
  const std::function<void(int)> *job_ = nullptr;
};

// fn(begin, end) over contiguous chunks of [0, n), one chunk per thread
template <class F>
void parallel_for(int64_t n, F fn) {
  const int64_t nt = std::min<int64_t>(num_threads(), n);
  if (nt <= 1) {
    fn(int64_t{0}, n);
    return;
  }
  Pool::get().run(static_cast<int>(nt), [&](int t) { fn(t * n / nt, (t + 1) * n / nt); });
}

}  // namespace video_zoo_kernels
