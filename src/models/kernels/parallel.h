// Threading shared by the CPU kernels (channelwise_conv3d.cc, vol2col.cc).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <thread>
#include <vector>

namespace x3d_kernels {

// Worker threads: X3D_KERNEL_THREADS, else OMP_NUM_THREADS, else all cores. Plain std::threads
// that exit when the call ends: OpenMP teams keep spinning after a region and would steal the
// cores from MindSpore's own kernel threads on a small machine.
int num_threads() {
  static const int n = [] {
    for (const char *name : {"X3D_KERNEL_THREADS", "OMP_NUM_THREADS"}) {
      const char *v = std::getenv(name);
      if (v && std::atoi(v) > 0) return std::atoi(v);
    }
    const unsigned hc = std::thread::hardware_concurrency();
    return hc > 0 ? static_cast<int>(hc) : 1;
  }();
  return n;
}

// fn(begin, end) over contiguous chunks of [0, n), one chunk per thread
template <class F>
void parallel_for(int64_t n, F fn) {
  const int64_t nt = std::min<int64_t>(num_threads(), n);
  if (nt <= 1) {
    fn(int64_t{0}, n);
    return;
  }
  std::vector<std::thread> pool;
  for (int64_t t = 1; t < nt; ++t) pool.emplace_back(fn, t * n / nt, (t + 1) * n / nt);
  fn(int64_t{0}, n / nt);
  for (auto &th : pool) th.join();
}

}  // namespace x3d_kernels
