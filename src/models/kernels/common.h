// Shared helpers of the CPU kernels: worker threads and 8-lane float vectors.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <thread>
#include <vector>

namespace x3d {

// Worker threads: X3D_KERNEL_THREADS, else OMP_NUM_THREADS, else all cores. Plain std::threads
// that exit when the call ends: OpenMP teams keep spinning after a region and would steal the
// cores from MindSpore's own kernel threads on a small machine.
inline int num_threads() {
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

// fn(begin, end, thread_index) over contiguous chunks of [0, n), one chunk per thread
template <class F>
void parallel_for(int64_t n, F fn) {
  const int64_t nt = std::min<int64_t>(num_threads(), n);
  if (nt <= 1) {
    fn(int64_t{0}, n, 0);
    return;
  }
  std::vector<std::thread> pool;
  for (int64_t t = 1; t < nt; ++t) pool.emplace_back(fn, t * n / nt, (t + 1) * n / nt, static_cast<int>(t));
  fn(int64_t{0}, n / nt, 0);
  for (auto &th : pool) th.join();
}

// 8 floats, unaligned loads/stores allowed (GCC vector extension; AVX2 or AVX-512 with -march=native)
typedef float v8 __attribute__((vector_size(32), aligned(4)));

inline double hsum(v8 a) {
  double s = 0.0;
  for (int l = 0; l < 8; ++l) s += a[l];
  return s;
}

}  // namespace x3d
