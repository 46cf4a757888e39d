// Channelwise (depthwise) 3D convolution for MindSpore ops.Custom(func_type="aot") on CPU.
//
// Layout NCTHW, weight (C, 1, kT, kH, kW), optional bias (C) (BatchNorm folded in for inference);
// any kernel size, stride and zero padding.
// Geometry arrives in a 6-element int64 tensor: stride (t, h, w), then padding (t, h, w).
//
// Each (n, c) plane is copied into a zero-padded buffer split into stride "phases"
// (x_p[t', h', w'] = x_pad[t'*sT + a, h'*sH + b, w'*sW + c]), so every tap of a strided
// convolution becomes a stride-1 shifted read. Rows are then processed as one flat vector per
// output frame (computing a few junk columns at the row ends, discarded afterwards), which turns
// the convolution into kT*kH*kW long, contiguous, SIMD-friendly multiply-adds per frame.
//
//   ChannelwiseConv3dForward(x, w, cfg) -> y
//   ChannelwiseConv3dForwardBias(x, w, b, cfg) -> y        + b[c] in the same pass (a folded BatchNorm)
//   ChannelwiseConv3dBackward(x, w, cfg, dy) -> (dx, dw)   dx as a gather over phases, dw as dot products
//
// Python binding (ops.Custom definitions and bprop): channelwise_conv3d.py beside this file.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "parallel.h"

namespace {

using video_zoo_kernels::num_threads;
using video_zoo_kernels::parallel_for;


// 8 floats, unaligned loads/stores allowed (GCC vector extension; AVX2 or AVX-512 with -march=native)
typedef float v8 __attribute__((vector_size(32), aligned(4)));

inline double hsum(v8 a) {
  double s = 0.0;
  for (int l = 0; l < 8; ++l) s += a[l];
  return s;
}

struct Plan {
  int64_t N, C, T, H, W, kT, kH, kW, sT, sH, sW, pT, pH, pW, To, Ho, Wo;
  int64_t Tq, Hq, Wq, PQ, nphase, xb_size;   // phase planes of the padded input
  int64_t mT, mH, mW, Tg, Hg, Wg, g_size;    // dy with leading margins (for dx)
  std::vector<int64_t> off, goff, phase;      // per tap
  std::vector<int64_t> wmap, wmap_dx;         // per input column: offset in the phase planes
};

inline int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

constexpr int64_t kBlock = 64;  // outputs per register block: 8 independent accumulators
constexpr int64_t kSlack = 2 * kBlock;

// out[i] = init + sum_k wt[k] * base[i + off[k]] for i < L (computed up to L rounded up to kBlock)
void shifted_sum(const float *base, const int64_t *off, const float *wt, int64_t ntaps, int64_t L,
                 float *out, float init = 0.0f) {
  const v8 i0 = v8{} + init;
  for (int64_t i = 0; i < L; i += kBlock) {
    v8 a0 = i0, a1 = i0, a2 = i0, a3 = i0, a4 = i0, a5 = i0, a6 = i0, a7 = i0;
    for (int64_t k = 0; k < ntaps; ++k) {
      const v8 w = v8{} + wt[k];
      const v8 *p = reinterpret_cast<const v8 *>(base + off[k] + i);
      a0 += w * p[0]; a1 += w * p[1]; a2 += w * p[2]; a3 += w * p[3];
      a4 += w * p[4]; a5 += w * p[5]; a6 += w * p[6]; a7 += w * p[7];
    }
    v8 *o = reinterpret_cast<v8 *>(out + i);
    o[0] = a0; o[1] = a1; o[2] = a2; o[3] = a3; o[4] = a4; o[5] = a5; o[6] = a6; o[7] = a7;
  }
}

// acc[j] += sum_to sum_i d[to*Ld + i] * x[to*Lx + i + off[j]], j < G (vectors of 8 lanes)
template <int G>
void dot_group(const float *d, int64_t Ld, const float *x, int64_t Lx, const int64_t *off,
               int64_t nt, int64_t L, double *acc) {
  v8 a[G] = {};
  for (int64_t t = 0; t < nt; ++t) {
    const float *dt = d + t * Ld, *xt = x + t * Lx;
    for (int64_t i = 0; i < L; i += 8) {
      const v8 dv = *reinterpret_cast<const v8 *>(dt + i);
      for (int j = 0; j < G; ++j) a[j] += dv * *reinterpret_cast<const v8 *>(xt + off[j] + i);
    }
  }
  for (int j = 0; j < G; ++j) acc[j] += hsum(a[j]);
}

void dot_taps(const float *d, int64_t Ld, const float *x, int64_t Lx, const int64_t *off,
              int64_t ntaps, int64_t nt, int64_t L, double *acc) {
  int64_t k = 0;
  for (; k + 9 <= ntaps; k += 9) dot_group<9>(d, Ld, x, Lx, off + k, nt, L, acc + k);
  switch (ntaps - k) {
    case 1: dot_group<1>(d, Ld, x, Lx, off + k, nt, L, acc + k); break;
    case 2: dot_group<2>(d, Ld, x, Lx, off + k, nt, L, acc + k); break;
    case 3: dot_group<3>(d, Ld, x, Lx, off + k, nt, L, acc + k); break;
    case 4: dot_group<4>(d, Ld, x, Lx, off + k, nt, L, acc + k); break;
    case 5: dot_group<5>(d, Ld, x, Lx, off + k, nt, L, acc + k); break;
    case 6: dot_group<6>(d, Ld, x, Lx, off + k, nt, L, acc + k); break;
    case 7: dot_group<7>(d, Ld, x, Lx, off + k, nt, L, acc + k); break;
    case 8: dot_group<8>(d, Ld, x, Lx, off + k, nt, L, acc + k); break;
    default: break;
  }
}

bool check_plan(int *ndims, int64_t **shapes, const char **dtypes, void **params, Plan *p);

// on a mismatch, say what arrived (MindSpore only reports the non-zero return code)
bool make_plan(int *ndims, int64_t **shapes, const char **dtypes, void **params, Plan *p) {
  if (check_plan(ndims, shapes, dtypes, params, p)) return true;
  std::fprintf(stderr, "channelwise kernel: unsupported call: x %s", dtypes[0]);
  for (int i = 0; i < ndims[0]; ++i) std::fprintf(stderr, " %lld", static_cast<long long>(shapes[0][i]));
  std::fprintf(stderr, ", w");
  for (int i = 0; i < ndims[1]; ++i) std::fprintf(stderr, " %lld", static_cast<long long>(shapes[1][i]));
  std::fprintf(stderr, ", cfg %s", dtypes[2]);
  for (int i = 0; i < 6 && ndims[2] == 1 && shapes[2][0] == 6; ++i)
    std::fprintf(stderr, " %lld", static_cast<long long>(static_cast<const int64_t *>(params[2])[i]));
  std::fprintf(stderr, ", out");
  for (int i = 0; i < ndims[3]; ++i) std::fprintf(stderr, " %lld", static_cast<long long>(shapes[3][i]));
  std::fprintf(stderr, "\n");
  return false;
}

bool check_plan(int *ndims, int64_t **shapes, const char **dtypes, void **params, Plan *p) {
  if (ndims[0] != 5 || ndims[1] != 5 || ndims[2] != 1 || ndims[3] != 5 || shapes[2][0] != 6) return false;
  if (std::strcmp(dtypes[0], "float32") != 0 || std::strcmp(dtypes[1], "float32") != 0 ||
      std::strcmp(dtypes[3], "float32") != 0)
    return false;
  const int64_t *cfg = static_cast<const int64_t *>(params[2]);
  const int64_t *xs = shapes[0], *ws = shapes[1], *ys = shapes[3];
  Plan &g = *p;
  g.N = xs[0]; g.C = xs[1]; g.T = xs[2]; g.H = xs[3]; g.W = xs[4];
  g.kT = ws[2]; g.kH = ws[3]; g.kW = ws[4];
  g.sT = cfg[0]; g.sH = cfg[1]; g.sW = cfg[2]; g.pT = cfg[3]; g.pH = cfg[4]; g.pW = cfg[5];
  g.To = ys[2]; g.Ho = ys[3]; g.Wo = ys[4];
  if (ws[0] != g.C || ws[1] != 1 || ys[0] != g.N || ys[1] != g.C) return false;
  if (g.sT < 1 || g.sH < 1 || g.sW < 1 || g.pT < 0 || g.pH < 0 || g.pW < 0) return false;
  if (g.To != (g.T + 2 * g.pT - g.kT) / g.sT + 1 || g.Ho != (g.H + 2 * g.pH - g.kH) / g.sH + 1 ||
      g.Wo != (g.W + 2 * g.pW - g.kW) / g.sW + 1 || g.To < 1 || g.Ho < 1 || g.Wo < 1)
    return false;
  g.Tq = cdiv(g.T + 2 * g.pT, g.sT); g.Hq = cdiv(g.H + 2 * g.pH, g.sH); g.Wq = cdiv(g.W + 2 * g.pW, g.sW);
  g.PQ = g.Tq * g.Hq * g.Wq;
  g.nphase = g.sT * g.sH * g.sW;
  g.xb_size = g.nphase * g.PQ + g.Hq * g.Wq + g.Wq + 2 * kSlack;  // slack for junk-column reads
  g.mT = (g.kT - 1) / g.sT; g.mH = (g.kH - 1) / g.sH; g.mW = (g.kW - 1) / g.sW;
  g.Tg = g.Tq + g.mT; g.Hg = g.Hq + g.mH; g.Wg = g.Wq + g.mW;
  g.g_size = g.Tg * g.Hg * g.Wg + g.Wg + 2 * kSlack;
  const int64_t taps = g.kT * g.kH * g.kW;
  g.wmap.resize(g.W); g.wmap_dx.resize(g.W);
  for (int64_t w = 0; w < g.W; ++w) {
    const int64_t wp = w + g.pW;
    g.wmap[w] = (wp % g.sW) * g.PQ + wp / g.sW;
    g.wmap_dx[w] = (wp % g.sW) * g.Tq * g.Hq * g.Wg + wp / g.sW;
  }
  g.off.resize(taps); g.goff.resize(taps); g.phase.resize(taps);
  for (int64_t kt = 0; kt < g.kT; ++kt)
    for (int64_t kh = 0; kh < g.kH; ++kh)
      for (int64_t kw = 0; kw < g.kW; ++kw) {
        const int64_t tap = (kt * g.kH + kh) * g.kW + kw;
        const int64_t ph = ((kt % g.sT) * g.sH + kh % g.sH) * g.sW + kw % g.sW;
        const int64_t dt = kt / g.sT, dh = kh / g.sH, dw = kw / g.sW;
        g.phase[tap] = ph;
        g.off[tap] = ph * g.PQ + (dt * g.Hq + dh) * g.Wq + dw;
        g.goff[tap] = ((g.mT - dt) * g.Hg + (g.mH - dh)) * g.Wg + (g.mW - dw);
      }
  return true;
}

// padded (T, H, W) plane -> zeroed phase planes
void to_phases(const Plan &g, const float *src, float *xb) {
  std::memset(xb, 0, sizeof(float) * g.xb_size);
  for (int64_t t = 0; t < g.T; ++t) {
    const int64_t tp = t + g.pT;
    for (int64_t h = 0; h < g.H; ++h) {
      const int64_t hp = h + g.pH;
      const float *row = src + (t * g.H + h) * g.W;
      const int64_t base = ((tp % g.sT) * g.sH + hp % g.sH) * g.sW * g.PQ +
                           ((tp / g.sT) * g.Hq + hp / g.sH) * g.Wq;
      if (g.sW == 1) {
        std::memcpy(xb + base + g.pW, row, sizeof(float) * g.W);
      } else {
        // columns w with the same (w + pW) % sW land contiguously in one phase plane
        for (int64_t r = 0; r < g.sW && r < g.W; ++r) {
          float *dst = xb + base + g.wmap[r];
          const float *src = row + r;
          const int64_t n = (g.W - r + g.sW - 1) / g.sW, s = g.sW;
          for (int64_t j = 0; j < n; ++j) dst[j] = src[j * s];
        }
      }
    }
  }
}

void forward_plane(const Plan &g, const float *xb, const float *wc, float bias, float *ob, float *y) {
  const int64_t taps = g.kT * g.kH * g.kW, L = g.Ho * g.Wq;
  const int64_t *off = g.off.data();
  for (int64_t to = 0; to < g.To; ++to) {
    const float *base = xb + to * g.Hq * g.Wq;
    shifted_sum(base, off, wc, taps, L, ob, bias);
    for (int64_t ho = 0; ho < g.Ho; ++ho)
      std::memcpy(y + (to * g.Ho + ho) * g.Wo, ob + ho * g.Wq, sizeof(float) * g.Wo);
  }
}

void forward(const Plan &g, const float *x, const float *w, const float *b, float *y) {
  const int64_t plane_in = g.T * g.H * g.W, plane_out = g.To * g.Ho * g.Wo;
  const int64_t taps = g.kT * g.kH * g.kW;
  parallel_for(g.N * g.C, [&](int64_t begin, int64_t end) {
    std::vector<float> xb(g.xb_size), ob(g.Ho * g.Wq + kSlack);
    for (int64_t nc = begin; nc < end; ++nc) {
      to_phases(g, x + nc * plane_in, xb.data());
      const int64_t c = nc % g.C;
      forward_plane(g, xb.data(), w + c * taps, b ? b[c] : 0.0f, ob.data(), y + nc * plane_out);
    }
  });
}

void backward(const Plan &g, const float *x, const float *w, const float *dy, float *dx, float *dw) {
  const int64_t plane_in = g.T * g.H * g.W, plane_out = g.To * g.Ho * g.Wo;
  const int64_t taps = g.kT * g.kH * g.kW;
  const int64_t Ld = g.Hq * g.Wg, HgWg = g.Hg * g.Wg, HqWq = g.Hq * g.Wq, Lw = g.Ho * g.Wq;
  const int64_t LwP = cdiv(Lw, 8) * 8;  // dy frame stride for dw: zero-padded to whole vectors
  // taps grouped by phase, for the dx gather
  std::vector<std::vector<int64_t>> by_phase(g.nphase);
  for (int64_t k = 0; k < taps; ++k) by_phase[g.phase[k]].push_back(k);
  parallel_for(g.C, [&](int64_t begin, int64_t end) {
    std::vector<float> xb(g.xb_size), gb(g.g_size), db(g.To * LwP + kSlack), dxb(g.nphase * g.Tq * Ld + kSlack);
    std::vector<double> acc(taps);
    std::vector<float> wsel(taps);
    std::vector<int64_t> osel(taps);
    for (int64_t c = begin; c < end; ++c) {
      const float *wc = w + c * taps;
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t n = 0; n < g.N; ++n) {
        const int64_t nc = n * g.C + c;
        const float *dyp = dy + nc * plane_out;
        to_phases(g, x + nc * plane_in, xb.data());
        // dy rows at width Wq with zero junk columns (dw), and with leading margins (dx)
        std::memset(db.data(), 0, sizeof(float) * db.size());
        std::memset(gb.data(), 0, sizeof(float) * g.g_size);
        for (int64_t to = 0; to < g.To; ++to)
          for (int64_t ho = 0; ho < g.Ho; ++ho) {
            const float *row = dyp + (to * g.Ho + ho) * g.Wo;
            std::memcpy(db.data() + to * LwP + ho * g.Wq, row, sizeof(float) * g.Wo);
            std::memcpy(gb.data() + ((to + g.mT) * g.Hg + ho + g.mH) * g.Wg + g.mW, row, sizeof(float) * g.Wo);
          }
        // dw[tap] += sum_to sum_i dy[to, i] * x_phase[to + dt, i + shift]
        dot_taps(db.data(), LwP, xb.data(), HqWq, g.off.data(), taps, g.To, Lw, acc.data());
        // dx_phase[t', i] = sum_{taps of the phase} w * dy[t' - dt, i - shift]
        for (int64_t p = 0; p < g.nphase; ++p) {
          const int64_t nt = static_cast<int64_t>(by_phase[p].size());
          for (int64_t j = 0; j < nt; ++j) {
            wsel[j] = wc[by_phase[p][j]];
            osel[j] = g.goff[by_phase[p][j]];
          }
          const float *ws = wsel.data();
          const int64_t *os = osel.data();
          for (int64_t tq = 0; tq < g.Tq; ++tq) {
            const float *gbase = gb.data() + tq * HgWg;
            float *out = dxb.data() + (p * g.Tq + tq) * Ld;
            shifted_sum(gbase, os, ws, nt, Ld, out);
          }
        }
        float *dxp = dx + nc * plane_in;
        for (int64_t t = 0; t < g.T; ++t) {
          const int64_t tp = t + g.pT;
          for (int64_t h = 0; h < g.H; ++h) {
            const int64_t hp = h + g.pH;
            const int64_t base = (((tp % g.sT) * g.sH + hp % g.sH) * g.sW * g.Tq + tp / g.sT) * Ld +
                                 (hp / g.sH) * g.Wg;
            float *row = dxp + (t * g.H + h) * g.W;
            if (g.sW == 1) {
              std::memcpy(row, dxb.data() + base + g.pW, sizeof(float) * g.W);
            } else {
              for (int64_t r = 0; r < g.sW && r < g.W; ++r) {
                const float *src = dxb.data() + base + g.wmap_dx[r];
                const int64_t n = (g.W - r + g.sW - 1) / g.sW, s = g.sW;
                for (int64_t j = 0; j < n; ++j) row[r + j * s] = src[j];
              }
            }
          }
        }
      }
      for (int64_t k = 0; k < taps; ++k) dw[c * taps + k] = static_cast<float>(acc[k]);
    }
  });
}

}  // namespace

extern "C" int ChannelwiseConv3dForward(int nparam, void **params, int *ndims, int64_t **shapes,
                                        const char **dtypes, void *stream, void *extra) {
  Plan g;
  if (nparam != 4 || !make_plan(ndims, shapes, dtypes, params, &g)) return 1;
  forward(g, static_cast<const float *>(params[0]), static_cast<const float *>(params[1]), nullptr,
          static_cast<float *>(params[3]));
  return 0;
}

extern "C" int ChannelwiseConv3dForwardBias(int nparam, void **params, int *ndims, int64_t **shapes,
                                            const char **dtypes, void *stream, void *extra) {
  if (nparam != 5) return 1;
  // the plan reads (x, w, cfg, y): drop the bias from the argument lists
  void *p4[4] = {params[0], params[1], params[3], params[4]};
  int n4[4] = {ndims[0], ndims[1], ndims[3], ndims[4]};
  int64_t *s4[4] = {shapes[0], shapes[1], shapes[3], shapes[4]};
  const char *d4[4] = {dtypes[0], dtypes[1], dtypes[3], dtypes[4]};
  Plan g;
  if (!make_plan(n4, s4, d4, p4, &g)) return 1;
  if (ndims[2] != 1 || shapes[2][0] != g.C || std::strcmp(dtypes[2], "float32") != 0) {
    std::fprintf(stderr, "channelwise kernel: bias must be float32 (%lld), got %s with %d dims\n",
                 static_cast<long long>(g.C), dtypes[2], ndims[2]);
    return 1;
  }
  forward(g, static_cast<const float *>(params[0]), static_cast<const float *>(params[1]),
          static_cast<const float *>(params[2]), static_cast<float *>(params[4]));
  return 0;
}

extern "C" int ChannelwiseConv3dBackward(int nparam, void **params, int *ndims, int64_t **shapes,
                                         const char **dtypes, void *stream, void *extra) {
  Plan g;
  if (nparam != 6 || !make_plan(ndims, shapes, dtypes, params, &g)) return 1;
  if (ndims[4] != 5 || ndims[5] != 5) return 1;
  backward(g, static_cast<const float *>(params[0]), static_cast<const float *>(params[1]),
           static_cast<const float *>(params[3]), static_cast<float *>(params[4]),
           static_cast<float *>(params[5]));
  return 0;
}
