// vol2col / col2vol for MindSpore ops.Custom(func_type="aot") on CPU: the data movement of a 3D
// convolution computed as a matrix product (the product itself is MindSpore's MatMul).
//
// MindSpore 2.10's CPU Conv3D falls to a slow path for every kernel larger than 1x1x1 with more
// than a few input channels, and strided slicing of 5D tensors is slow too, so the patches are
// gathered here instead. Layout NCTHW; zero padding; any kernel size and stride.
// Geometry arrives in a 9-element int64 tensor: kernel (t, h, w), stride (t, h, w), padding (t, h, w).
//
//   Vol2Col(x, cfg) -> cols         x (N, C, T, H, W) -> cols (C*kT*kH*kW, N, To*Ho*Wo),
//                                   row c*taps + (kt*kH + kh)*kW + kw (the weight's (in, k...) order);
//                                   the batch inside each row, so the product reads the weight once
//   Col2Vol(x, cfg, dcols) -> dx    the adjoint (x only gives the shape): sums every patch
//                                   entry back onto the input position it was read from
//
// Python binding (ops.Custom definitions and bprop): vol2col.py beside this file.
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


struct Geo {
  int64_t N, C, T, H, W, kT, kH, kW, sT, sH, sW, pT, pH, pW, To, Ho, Wo, taps, L;
};

// x: (N, C, T, H, W) at index xi, cfg at index ci, cols (C*taps, N, L) at index oi
bool make_geo(int *ndims, int64_t **shapes, const char **dtypes, void **params, int xi, int ci, int oi,
              Geo *g) {
  if (ndims[xi] != 5 || ndims[ci] != 1 || shapes[ci][0] != 9 || ndims[oi] != 3) return false;
  if (std::strcmp(dtypes[xi], "float32") != 0 || std::strcmp(dtypes[oi], "float32") != 0) return false;
  const int64_t *cfg = static_cast<const int64_t *>(params[ci]);
  const int64_t *xs = shapes[xi];
  g->N = xs[0]; g->C = xs[1]; g->T = xs[2]; g->H = xs[3]; g->W = xs[4];
  g->kT = cfg[0]; g->kH = cfg[1]; g->kW = cfg[2];
  g->sT = cfg[3]; g->sH = cfg[4]; g->sW = cfg[5];
  g->pT = cfg[6]; g->pH = cfg[7]; g->pW = cfg[8];
  if (g->kT < 1 || g->kH < 1 || g->kW < 1 || g->sT < 1 || g->sH < 1 || g->sW < 1 || g->pT < 0 ||
      g->pH < 0 || g->pW < 0)
    return false;
  g->To = (g->T + 2 * g->pT - g->kT) / g->sT + 1;
  g->Ho = (g->H + 2 * g->pH - g->kH) / g->sH + 1;
  g->Wo = (g->W + 2 * g->pW - g->kW) / g->sW + 1;
  g->taps = g->kT * g->kH * g->kW;
  g->L = g->To * g->Ho * g->Wo;
  const int64_t *os = shapes[oi];
  if (g->To < 1 || g->Ho < 1 || g->Wo < 1) return false;
  if (os[0] != g->C * g->taps || os[1] != g->N || os[2] != g->L) {
    std::fprintf(stderr, "vol2col kernel: cols shape (%lld, %lld, %lld) does not match the geometry\n",
                 static_cast<long long>(os[0]), static_cast<long long>(os[1]), static_cast<long long>(os[2]));
    return false;
  }
  return true;
}

// valid output range [lo, hi) of one axis for tap offset k: 0 <= o*s + k - p < n
inline void valid_range(int64_t n, int64_t k, int64_t s, int64_t p, int64_t out, int64_t *lo, int64_t *hi) {
  int64_t a = p - k;  // o*s >= a
  *lo = a <= 0 ? 0 : (a + s - 1) / s;
  int64_t b = n + p - k;  // o*s < b
  *hi = b <= 0 ? 0 : std::min(out, (b + s - 1) / s);
  if (*hi < *lo) *hi = *lo;
}

void vol2col(const Geo &g, const float *x, float *cols) {
  const int64_t plane = g.T * g.H * g.W;
  parallel_for(g.N * g.C, [&](int64_t begin, int64_t end) {
    for (int64_t nc = begin; nc < end; ++nc) {
      const float *xp = x + nc * plane;
      const int64_t n = nc / g.C, c = nc % g.C;
      float *out = cols + (c * g.taps * g.N + n) * g.L;  // tap k of (n, c): out + k * N * L
      for (int64_t kt = 0; kt < g.kT; ++kt) {
        int64_t t0, t1;
        valid_range(g.T, kt, g.sT, g.pT, g.To, &t0, &t1);
        for (int64_t kh = 0; kh < g.kH; ++kh) {
          int64_t h0, h1;
          valid_range(g.H, kh, g.sH, g.pH, g.Ho, &h0, &h1);
          for (int64_t kw = 0; kw < g.kW; ++kw) {
            int64_t w0, w1;
            valid_range(g.W, kw, g.sW, g.pW, g.Wo, &w0, &w1);
            float *row = out + ((kt * g.kH + kh) * g.kW + kw) * g.N * g.L;
            for (int64_t to = 0; to < g.To; ++to) {
              float *rt = row + to * g.Ho * g.Wo;
              if (to < t0 || to >= t1) {
                std::memset(rt, 0, sizeof(float) * g.Ho * g.Wo);
                continue;
              }
              const float *xt = xp + (to * g.sT + kt - g.pT) * g.H * g.W;
              for (int64_t ho = 0; ho < g.Ho; ++ho) {
                float *r = rt + ho * g.Wo;
                if (ho < h0 || ho >= h1) {
                  std::memset(r, 0, sizeof(float) * g.Wo);
                  continue;
                }
                const float *xr = xt + (ho * g.sH + kh - g.pH) * g.W + kw - g.pW;
                for (int64_t wo = 0; wo < w0; ++wo) r[wo] = 0.0f;
                if (g.sW == 1) {
                  if (w1 > w0) std::memcpy(r + w0, xr + w0, sizeof(float) * (w1 - w0));
                } else {
                  for (int64_t wo = w0; wo < w1; ++wo) r[wo] = xr[wo * g.sW];
                }
                for (int64_t wo = std::max(w1, w0); wo < g.Wo; ++wo) r[wo] = 0.0f;
              }
            }
          }
        }
      }
    }
  });
}

void col2vol(const Geo &g, const float *cols, float *dx) {
  const int64_t plane = g.T * g.H * g.W;
  parallel_for(g.N * g.C, [&](int64_t begin, int64_t end) {
    for (int64_t nc = begin; nc < end; ++nc) {
      float *xp = dx + nc * plane;
      std::memset(xp, 0, sizeof(float) * plane);
      const int64_t n = nc / g.C, c = nc % g.C;
      const float *in = cols + (c * g.taps * g.N + n) * g.L;
      for (int64_t kt = 0; kt < g.kT; ++kt) {
        int64_t t0, t1;
        valid_range(g.T, kt, g.sT, g.pT, g.To, &t0, &t1);
        for (int64_t kh = 0; kh < g.kH; ++kh) {
          int64_t h0, h1;
          valid_range(g.H, kh, g.sH, g.pH, g.Ho, &h0, &h1);
          for (int64_t kw = 0; kw < g.kW; ++kw) {
            int64_t w0, w1;
            valid_range(g.W, kw, g.sW, g.pW, g.Wo, &w0, &w1);
            const float *row = in + ((kt * g.kH + kh) * g.kW + kw) * g.N * g.L;
            for (int64_t to = t0; to < t1; ++to) {
              float *xt = xp + (to * g.sT + kt - g.pT) * g.H * g.W;
              for (int64_t ho = h0; ho < h1; ++ho) {
                const float *r = row + (to * g.Ho + ho) * g.Wo;
                float *xr = xt + (ho * g.sH + kh - g.pH) * g.W + kw - g.pW;
                if (g.sW == 1) {
#pragma omp simd
                  for (int64_t wo = w0; wo < w1; ++wo) xr[wo] += r[wo];
                } else {
                  for (int64_t wo = w0; wo < w1; ++wo) xr[wo * g.sW] += r[wo];
                }
              }
            }
          }
        }
      }
    }
  });
}

}  // namespace

extern "C" int Vol2Col(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                       void *stream, void *extra) {
  Geo g;
  if (nparam != 3 || !make_geo(ndims, shapes, dtypes, params, 0, 1, 2, &g)) return 1;
  vol2col(g, static_cast<const float *>(params[0]), static_cast<float *>(params[2]));
  return 0;
}

extern "C" int Col2Vol(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                       void *stream, void *extra) {
  Geo g;
  if (nparam != 4 || !make_geo(ndims, shapes, dtypes, params, 0, 1, 2, &g)) return 1;
  if (ndims[3] != 5 || std::strcmp(dtypes[3], "float32") != 0) return 1;
  for (int i = 0; i < 5; ++i)
    if (shapes[3][i] != shapes[0][i]) return 1;
  col2vol(g, static_cast<const float *>(params[2]), static_cast<float *>(params[3]));
  return 0;
}
