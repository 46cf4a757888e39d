// Pointwise (1x1x1) 3D convolution for inference, with what surrounds it in an X3D block fused
// in, for MindSpore ops.Custom(func_type="aot") on CPU. In a BatchNorm-folded block the 1x1x1
// convolutions follow a Swish (after an optional squeeze-excitation scale) and precede a bias, a
// ReLU and (conv c) the residual sum: as separate ops each reads and writes the whole activation
// again. Here one pass computes
//
//   u[n, c, q] = pro( x[n, c, pos(q)] )               none | swish(x) | swish(x * s[n, c])
//   y[n, o, q] = epi( sum_c w[o, c] * u[n, c, q] + bias[o] )   identity | ReLU | ReLU(. + r[n, o, q])
//
// over the output positions q (To, Ho, Wo), pos(q) = (t*sT, h*sH, w*sW) (a strided shortcut
// convolution reads every s-th position). Each task copies a block of positions, all input
// channels, into a contiguous buffer (tiles of kTile positions, zero-padded), applying the
// prologue on the way, then runs a register-blocked product over it: kMR output channels times
// kNV vectors of positions stay in registers while the input channels stream through.
//
//   PointwiseConv3d(x, w, b, r, s, cfg) -> y     (Python binding and bprop: pointwise_conv3d.py)
//
//   MovinetSeStream(x, pool_sum, count, w1, b1, w2, b2, cfg) -> (y, csum)   (one stream frame's SE)
//
// x (N, C, T, H, W), w (Co, C, 1, 1, 1), b (Co,), r (N, Co, To, Ho, Wo) for the residual epilogue
// (else any shape, unused), s (N, C, 1, 1, 1) for the scaled prologue (else unused), y (N, Co,
// To, Ho, Wo); cfg int64 (5,): stride (t, h, w), epilogue (0 identity, 1 ReLU, 2 residual + ReLU),
// prologue (0 none, 1 swish, 2 scale + swish). float32, NCTHW.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <vector>

#include "parallel.h"

namespace {

using video_zoo_kernels::parallel_for;

#ifdef __AVX512F__
constexpr int kVL = 16;  // floats per vector
constexpr int kMR = 8;   // output channels per panel
constexpr int kNV = 3;   // vectors of positions per tile: 24 accumulators of 32 registers
#else
constexpr int kVL = 8;
constexpr int kMR = 6;
constexpr int kNV = 2;  // 12 accumulators of 16 registers
#endif
typedef float vf __attribute__((vector_size(kVL * 4), aligned(4)));  // unaligned loads allowed

constexpr int64_t kTile = kNV * kVL;  // positions per register tile
constexpr int64_t kTilesPerBlock = 4;  // positions per task: the packed block stays in cache
constexpr int64_t kSerialWork = 1 << 18;  // multiply-adds below which one thread does it all

enum Epilogue { kBias = 0, kRelu = 1, kAddRelu = 2 };
enum Prologue { kNone = 0, kSwish = 1, kScaleSwish = 2 };

struct Call {
  int64_t N, C, Co, T, H, W, sT, sH, sW, To, Ho, Wo, Q;  // Q = To * Ho * Wo
  const float *x, *w, *b, *r, *s;
  float *y;
  Epilogue ep;
  Prologue pro;
};

// exp(v) for v in about [-87, 88]: 2^n * p(f) after v = n ln2 + f, |f| <= ln2 / 2 (rel. error ~2e-7)
inline vf vexp(vf v) {
  typedef int32_t vi __attribute__((vector_size(kVL * 4)));
  v = v < 88.0f ? v : 88.0f;
  v = v > -87.0f ? v : -87.0f;
  const vf n = __builtin_convertvector(__builtin_convertvector(v * 1.44269504f + (v >= 0 ? 0.5f : -0.5f), vi), vf);
  const vf f = (v - n * 0.693359375f) + n * 2.12194440e-4f;  // ln2 in two parts
  vf p = vf{} + 1.9875691500e-4f;
  p = p * f + 1.3981999507e-3f;
  p = p * f + 8.3334519073e-3f;
  p = p * f + 4.1665795894e-2f;
  p = p * f + 1.6666665459e-1f;
  p = p * f + 5.0000001201e-1f;
  p = p * f * f + f + 1.0f;
  const vi e = (__builtin_convertvector(n, vi) + 127) << 23;
  vf scale;
  std::memcpy(&scale, &e, sizeof(scale));
  return p * scale;
}

// u = swish(u * scale) over one packed row of kTile positions
inline void swish_row(float *u, float scale) {
#pragma GCC unroll 4
  for (int j = 0; j < kNV; ++j) {
    vf v = *reinterpret_cast<vf *>(u + j * kVL) * scale;
    *reinterpret_cast<vf *>(u + j * kVL) = v / (1.0f + vexp(-v));
  }
}

// w (Co, C) -> panels (Co/kMR rounded up, C, kMR), zero rows past Co
void pack_weight(const float *w, int64_t Co, int64_t C, float *out) {
  const int64_t panels = (Co + kMR - 1) / kMR;
  std::fill(out, out + panels * C * kMR, 0.0f);
  for (int64_t o = 0; o < Co; ++o) {
    float *dst = out + (o / kMR) * C * kMR + o % kMR;
    const float *src = w + o * C;
    for (int64_t c = 0; c < C; ++c) dst[c * kMR] = src[c];
  }
}

// Scratch memory that outlives the call. Fresh buffers of this size come from mmap, and their
// first-touch page faults serialise the threads on the process's memory map: the product
// then runs no faster on two threads than on one.
struct Workspace {
  std::mutex lock;
  std::vector<float> data;
  float *get(size_t n) {
    if (data.size() < n) data.resize(n);
    return data.data();
  }
};
Workspace &workspace() {
  static Workspace ws;
  return ws;
}

// input offsets (within one channel plane) of the output positions q0 .. q0+n-1
void positions(const Call &k, int64_t q0, int64_t n, int64_t *off) {
  int64_t w = q0 % k.Wo, h = (q0 / k.Wo) % k.Ho, t = q0 / (k.Wo * k.Ho);
  for (int64_t j = 0; j < n; ++j) {
    off[j] = ((t * k.sT) * k.H + h * k.sH) * k.W + w * k.sW;
    if (++w == k.Wo) {
      w = 0;
      if (++h == k.Ho) { h = 0; ++t; }
    }
  }
}

// x[n, :, positions q0 .. q0+n) -> buf (tiles, C, kTile), zero past n
void pack_block(const Call &k, int64_t n, int64_t q0, int64_t count, bool dense, const int64_t *off,
                float *buf) {
  const int64_t tiles = (count + kTile - 1) / kTile, plane = k.T * k.H * k.W;
  const float *xn = k.x + n * k.C * plane;
  for (int64_t tl = 0; tl < tiles; ++tl) {
    const int64_t j0 = tl * kTile, m = std::min(kTile, count - j0);
    float *dst = buf + tl * k.C * kTile;
    for (int64_t c = 0; c < k.C; ++c, dst += kTile) {
      const float *xc = xn + c * plane;
      if (dense) {
        std::memcpy(dst, xc + q0 + j0, sizeof(float) * m);
      } else {
        for (int64_t j = 0; j < m; ++j) dst[j] = xc[off[j0 + j]];
      }
      if (m < kTile) std::memset(dst + m, 0, sizeof(float) * (kTile - m));
      if (k.pro != kNone) swish_row(dst, k.pro == kScaleSwish ? k.s[n * k.C + c] : 1.0f);
    }
  }
}

// one register tile: rows o0 .. o0+rows-1 at positions q .. q+m-1 from a packed tile (C, kTile)
inline void tile(const Call &k, int64_t n, int64_t o0, int rows, const float *wp, const float *xp,
                 int64_t q, int64_t m) {
  vf acc[kMR][kNV];
#pragma GCC unroll 8
  for (int i = 0; i < kMR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < kNV; ++j) acc[i][j] = vf{};
  for (int64_t c = 0; c < k.C; ++c) {
    vf xv[kNV];
#pragma GCC unroll 4
    for (int j = 0; j < kNV; ++j) xv[j] = *reinterpret_cast<const vf *>(xp + c * kTile + j * kVL);
    const float *wc = wp + c * kMR;
#pragma GCC unroll 8
    for (int i = 0; i < kMR; ++i) {
      const vf wv = vf{} + wc[i];
#pragma GCC unroll 4
      for (int j = 0; j < kNV; ++j) acc[i][j] += wv * xv[j];
    }
  }
  for (int i = 0; i < rows; ++i) {
    const int64_t o = o0 + i, off = (n * k.Co + o) * k.Q + q;
    const vf bv = vf{} + k.b[o];
    vf v[kNV];
#pragma GCC unroll 4
    for (int j = 0; j < kNV; ++j) v[j] = acc[i][j] + bv;
    if (m == kTile) {
#pragma GCC unroll 4
      for (int j = 0; j < kNV; ++j) {
        if (k.ep == kAddRelu) v[j] += *reinterpret_cast<const vf *>(k.r + off + j * kVL);
        if (k.ep != kBias) v[j] = v[j] > 0.0f ? v[j] : 0.0f;
        *reinterpret_cast<vf *>(k.y + off + j * kVL) = v[j];
      }
    } else {  // the last, partial tile of the positions
      float tmp[kTile];
      std::memcpy(tmp, v, sizeof(tmp));
      for (int64_t j = 0; j < m; ++j) {
        float e = tmp[j];
        if (k.ep == kAddRelu) e += k.r[off + j];
        k.y[off + j] = (k.ep == kBias || e > 0.0f) ? e : 0.0f;
      }
    }
  }
}

// Few output positions (a squeeze-excitation's or a classifier's 1x1x1 on one pooled position):
// a register tile would be almost all padding, and packing the weight would cost more than the
// product. Each output channel is a dot product of its contiguous row of the weight with the
// position's prologue-applied input (packed as for the tiles, then one row per position), summed
// in vector lanes: the result equals the tiles' to float rounding, not bit for bit.
constexpr int64_t kFewPositions = 8;
constexpr int64_t kFewRows = 16;  // output channels per task

inline float dot(const float *a, const float *b, int64_t n) {
  vf s0 = vf{}, s1 = vf{}, s2 = vf{}, s3 = vf{};
  int64_t c = 0;
  for (; c + 4 * kVL <= n; c += 4 * kVL) {
    s0 += *reinterpret_cast<const vf *>(a + c) * *reinterpret_cast<const vf *>(b + c);
    s1 += *reinterpret_cast<const vf *>(a + c + kVL) * *reinterpret_cast<const vf *>(b + c + kVL);
    s2 += *reinterpret_cast<const vf *>(a + c + 2 * kVL) * *reinterpret_cast<const vf *>(b + c + 2 * kVL);
    s3 += *reinterpret_cast<const vf *>(a + c + 3 * kVL) * *reinterpret_cast<const vf *>(b + c + 3 * kVL);
  }
  for (; c + kVL <= n; c += kVL) s0 += *reinterpret_cast<const vf *>(a + c) * *reinterpret_cast<const vf *>(b + c);
  const vf s = (s0 + s1) + (s2 + s3);
  float r = 0.0f;
  for (int i = 0; i < kVL; ++i) r += s[i];
  for (; c < n; ++c) r += a[c] * b[c];
  return r;
}

void run_few(const Call &k) {
  Workspace &ws = workspace();
  std::lock_guard<std::mutex> guard(ws.lock);
  const int64_t packed = k.C * kTile;
  float *const buf = ws.get(packed + k.N * k.Q * k.C);
  float *const rows = buf + packed;  // (N, Q, C): one contiguous input row per position
  int64_t off[kFewPositions];
  const bool dense = k.sT == 1 && k.sH == 1 && k.sW == 1;
  if (!dense) positions(k, 0, k.Q, off);
  for (int64_t n = 0; n < k.N; ++n) {
    pack_block(k, n, 0, k.Q, dense, off, buf);
    for (int64_t j = 0; j < k.Q; ++j)
      for (int64_t c = 0; c < k.C; ++c) rows[(n * k.Q + j) * k.C + c] = buf[c * kTile + j];
  }
  const int64_t blocks = (k.Co + kFewRows - 1) / kFewRows;
  const auto work = [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t n = t / blocks, o0 = (t % blocks) * kFewRows, o1 = std::min(k.Co, o0 + kFewRows);
      for (int64_t o = o0; o < o1; ++o) {
        for (int64_t j = 0; j < k.Q; ++j) {
          const int64_t at = (n * k.Co + o) * k.Q + j;
          float e = dot(k.w + o * k.C, rows + (n * k.Q + j) * k.C, k.C) + k.b[o];
          if (k.ep == kAddRelu) e += k.r[at];
          k.y[at] = (k.ep == kBias || e > 0.0f) ? e : 0.0f;
        }
      }
    }
  };
  if (k.N * k.Q * k.C * k.Co < kSerialWork) {
    work(0, k.N * blocks);
  } else {
    parallel_for(k.N * blocks, work);
  }
}

void run(const Call &k) {
  if (k.Q <= kFewPositions) return run_few(k);
  const int64_t panels = (k.Co + kMR - 1) / kMR;
  const int64_t per_block = kTilesPerBlock * kTile, blocks = (k.Q + per_block - 1) / per_block;
  const int64_t wsize = panels * k.C * kMR, bsize = kTilesPerBlock * k.C * kTile + per_block * 2;
  const int nt = video_zoo_kernels::num_threads();
  Workspace &ws = workspace();
  std::lock_guard<std::mutex> guard(ws.lock);
  float *const scratch = ws.get(wsize + nt * bsize);
  const float *packed = scratch;
  pack_weight(k.w, k.Co, k.C, scratch);
  const bool dense = k.sT == 1 && k.sH == 1 && k.sW == 1;
  // tasks: (n, position block, group of panels); split the panels when there are few positions
  int64_t groups = 1;
  while (k.N * blocks * groups < 4 * video_zoo_kernels::num_threads() && groups < panels) groups *= 2;
  groups = std::min(groups, panels);
  const int64_t per_group = (panels + groups - 1) / groups;
  const auto work = [&](int64_t begin, int64_t end) {
    // the chunk's own slice of the scratch: buffer, then position offsets (as int64)
    const int64_t tasks = k.N * blocks * groups;  // parallel_for's chunk t starts at t * tasks / nt
    float *buf = scratch + wsize + ((begin * nt + tasks - 1) / tasks) * bsize;
    int64_t *off = reinterpret_cast<int64_t *>(buf + kTilesPerBlock * k.C * kTile);
    for (int64_t t = begin; t < end; ++t) {
      const int64_t g = t % groups, nb = t / groups, n = nb / blocks, blk = nb % blocks;
      const int64_t q0 = blk * per_block, count = std::min(per_block, k.Q - q0);
      if (!dense) positions(k, q0, count, off);
      pack_block(k, n, q0, count, dense, off, buf);
      const int64_t tiles = (count + kTile - 1) / kTile;
      for (int64_t pan = g * per_group; pan < std::min(panels, (g + 1) * per_group); ++pan) {
        const int64_t o0 = pan * kMR;
        const int rows = static_cast<int>(std::min<int64_t>(kMR, k.Co - o0));
        const float *wp = packed + pan * k.C * kMR;
        for (int64_t tl = 0; tl < tiles; ++tl)
          tile(k, n, o0, rows, wp, buf + tl * k.C * kTile, q0 + tl * kTile,
               std::min(kTile, count - tl * kTile));
      }
    }
  };
  // a small product (the squeeze-excitation's) costs less than starting threads
  if (k.N * k.Q * k.C * k.Co < kSerialWork) {
    work(0, k.N * blocks * groups);
  } else {
    parallel_for(k.N * blocks * groups, work);
  }
}

bool is_f32(const char *d) { return std::strcmp(d, "float32") == 0; }

// checks the call: x (N, C, T, H, W), w (Co, C, 1, 1, 1), b (Co,), r, s, cfg (5,) int64, y
int call(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  if (nparam != 7) return 1;
  for (int i = 0; i < 7; ++i)
    if (i != 5 && !is_f32(dtypes[i])) return 1;
  if (std::strcmp(dtypes[5], "int64") != 0 || ndims[5] != 1 || shapes[5][0] != 5) return 1;
  if (ndims[0] != 5 || ndims[1] != 5 || ndims[2] != 1 || ndims[6] != 5) return 1;
  const int64_t *xs = shapes[0], *ws = shapes[1], *ys = shapes[6];
  const int64_t *cfg = static_cast<const int64_t *>(params[5]);
  Call k;
  k.N = xs[0]; k.C = xs[1]; k.T = xs[2]; k.H = xs[3]; k.W = xs[4]; k.Co = ws[0];
  k.sT = cfg[0]; k.sH = cfg[1]; k.sW = cfg[2];
  if (k.sT < 1 || k.sH < 1 || k.sW < 1 || k.C < 1 || cfg[3] < 0 || cfg[3] > 2 || cfg[4] < 0 || cfg[4] > 2) return 1;
  k.ep = static_cast<Epilogue>(cfg[3]);
  k.pro = static_cast<Prologue>(cfg[4]);
  k.To = (k.T - 1) / k.sT + 1; k.Ho = (k.H - 1) / k.sH + 1; k.Wo = (k.W - 1) / k.sW + 1;
  k.Q = k.To * k.Ho * k.Wo;
  if (ws[1] != k.C || ws[2] != 1 || ws[3] != 1 || ws[4] != 1 || shapes[2][0] != k.Co) return 1;
  const int64_t out[5] = {k.N, k.Co, k.To, k.Ho, k.Wo};
  for (int d = 0; d < 5; ++d) {
    if (ys[d] != out[d]) return 1;
    if (k.ep == kAddRelu && (ndims[3] != 5 || shapes[3][d] != out[d])) return 1;
  }
  if (k.pro == kScaleSwish) {  // s holds N * C values, (N, C) or (N, C, 1, 1, 1)
    int64_t count = 1;
    for (int d = 0; d < ndims[4]; ++d) count *= shapes[4][d];
    if (ndims[4] < 2 || shapes[4][0] != k.N || shapes[4][1] != k.C || count != k.N * k.C) return 1;
  }
  k.x = static_cast<const float *>(params[0]);
  k.w = static_cast<const float *>(params[1]);
  k.b = static_cast<const float *>(params[2]);
  k.r = static_cast<const float *>(params[3]);
  k.s = static_cast<const float *>(params[4]);
  k.y = static_cast<float *>(params[6]);
  if (k.N * k.Q > 0 && k.Co > 0) run(k);
  return 0;
}

// ------------------------------------------------------------------ MoViNet stream SE, one frame
// A causal squeeze-excitation on one frame is a dozen tiny ops (spatial mean, running sum, divide
// by the global frame count, concat, fc1 + act, fc2 + gate, scale): in a stream step, where every
// tensor is one frame, their per-op cost exceeds their arithmetic. One pass here:
//
//   space[c] = mean_hw x[n, c]           csum[n, c] = space[c] + pool_sum[n, c]
//   v = (csum / (count + 1), space)      h = act(w1 v + b1)      g = gate(w2 h + b2)
//   y[n, c] = x[n, c] * g[c]
//
// x (N, C, 1, H, W) f32, pool_sum N*C f32, count (1,) int32 (frames before this one), w1 (Hd, 2C,
// 1, 1, 1), b1 (Hd,), w2 (C, Hd, 1, 1, 1), b2 (C,), cfg (2,) int64 (act: 0 swish, 1 hard swish;
// gate: 0 sigmoid, 1 clamp(0.2 v + 0.5, 0, 1), 2 relu6(v + 3) * 0.16667); y like x, csum (N, C,
// 1, 1, 1). Inference only (the Python side keeps the MindSpore ops for training and clips).

inline float act_fn(int code, float v) {
  if (code == 0) return v / (1.0f + std::exp(-v));
  return v * std::min(std::max(v + 3.0f, 0.0f), 6.0f) / 6.0f;
}

inline float gate_fn(int code, float v) {
  if (code == 0) return 1.0f / (1.0f + std::exp(-v));
  if (code == 1) return std::min(std::max(0.2f * v + 0.5f, 0.0f), 1.0f);
  return std::min(std::max(v + 3.0f, 0.0f), 6.0f) * 0.16667f;
}

int se_stream(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  if (nparam != 10) return 1;
  for (int i : {0, 1, 3, 4, 5, 6, 8, 9})
    if (!is_f32(dtypes[i])) return 1;
  if (std::strcmp(dtypes[2], "int32") != 0 || std::strcmp(dtypes[7], "int64") != 0) return 1;
  if (ndims[0] != 5 || shapes[0][2] != 1 || ndims[3] != 5 || ndims[5] != 5 || ndims[7] != 1 || shapes[7][0] != 2)
    return 1;
  const int64_t N = shapes[0][0], C = shapes[0][1], HW = shapes[0][3] * shapes[0][4];
  const int64_t Hd = shapes[3][0];
  if (shapes[3][1] != 2 * C || shapes[4][0] != Hd || shapes[5][0] != C || shapes[5][1] != Hd || shapes[6][0] != C)
    return 1;
  const int64_t *cfg = static_cast<const int64_t *>(params[7]);
  const int act = static_cast<int>(cfg[0]), gate = static_cast<int>(cfg[1]);
  if (act < 0 || act > 1 || gate < 0 || gate > 2) return 1;
  const float *x = static_cast<const float *>(params[0]), *pool = static_cast<const float *>(params[1]);
  const float frames = static_cast<float>(static_cast<const int32_t *>(params[2])[0]) + 1.0f;
  const float *w1 = static_cast<const float *>(params[3]), *b1 = static_cast<const float *>(params[4]);
  const float *w2 = static_cast<const float *>(params[5]), *b2 = static_cast<const float *>(params[6]);
  float *y = static_cast<float *>(params[8]), *csum = static_cast<float *>(params[9]);
  std::vector<float> v(2 * C), h(Hd), g(C);
  const bool threads = N * C * HW >= kSerialWork;
  for (int64_t n = 0; n < N; ++n) {
    const float *xn = x + n * C * HW;
    float *yn = y + n * C * HW;
    const auto mean = [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c) {
        float sum = 0.0f;
        for (int64_t q = 0; q < HW; ++q) sum += xn[c * HW + q];
        const float space = sum / static_cast<float>(HW), cs = space + pool[n * C + c];
        csum[n * C + c] = cs;
        v[c] = cs / frames;
        v[C + c] = space;
      }
    };
    if (threads) parallel_for(C, mean); else mean(0, C);
    for (int64_t j = 0; j < Hd; ++j) h[j] = act_fn(act, dot(w1 + j * 2 * C, v.data(), 2 * C) + b1[j]);
    for (int64_t c = 0; c < C; ++c) g[c] = gate_fn(gate, dot(w2 + c * Hd, h.data(), Hd) + b2[c]);
    const auto scale = [&](int64_t c0, int64_t c1) {
      for (int64_t c = c0; c < c1; ++c)
        for (int64_t q = 0; q < HW; ++q) yn[c * HW + q] = xn[c * HW + q] * g[c];
    };
    if (threads) parallel_for(C, scale); else scale(0, C);
  }
  return 0;
}

}  // namespace

extern "C" int MovinetSeStream(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                               void *stream, void *extra) {
  return se_stream(nparam, params, ndims, shapes, dtypes);
}

extern "C" int PointwiseConv3d(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                               void *stream, void *extra) {
  return call(nparam, params, ndims, shapes, dtypes);
}
