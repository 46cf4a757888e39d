// Training-mode BatchNorm over (N, C, S) (S = T*H*W) for MindSpore ops.Custom(func_type="aot") on CPU.
//
//   X3dBnForwardUpdate(x, gamma, beta, cfg, moving_mean, moving_var) -> (y, mean, var)
//       batch mean and biased variance per channel; y = (x - mean) / sqrt(var + eps) * gamma + beta;
//       moving_* updated in place: (1 - m) * moving + m * batch (unbiased variance)
//   X3dBnBackward(x, gamma, mean, var, dy, cfg) -> (dx, dgamma, dbeta)
//
// cfg: float32 [eps, m]. Channels are split over the worker threads; per channel the forward reads
// x twice (statistics, then y = a x + b) and the backward reads (x, dy) twice (the two sums, then
// dx), with partial sums in float vectors flushed to double every kFlush elements.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "common.h"

namespace {

using x3d::parallel_for;
using x3d::v8;

constexpr int64_t kFlush = 1024;

inline v8 load(const float *p) { return *reinterpret_cast<const v8 *>(p); }
inline void store(float *p, v8 v) { *reinterpret_cast<v8 *>(p) = v; }

// s1 += sum(x - k), s2 += sum((x - k)^2) over n floats
void shifted_sums(const float *x, int64_t n, float k, double &s1, double &s2) {
  const v8 kv = v8{} + k;
  for (int64_t i0 = 0; i0 < n; i0 += kFlush) {
    const int64_t i1 = std::min(n, i0 + kFlush);
    v8 a = {}, b = {};
    int64_t i = i0;
    for (; i + 8 <= i1; i += 8) {
      const v8 d = load(x + i) - kv;
      a += d;
      b += d * d;
    }
    double t1 = x3d::hsum(a), t2 = x3d::hsum(b);
    for (; i < i1; ++i) {
      const double d = double(x[i]) - k;
      t1 += d;
      t2 += d * d;
    }
    s1 += t1;
    s2 += t2;
  }
}

// s1 += sum(g), s2 += sum(g * (x - m)) over n floats
void grad_sums(const float *g, const float *x, int64_t n, float m, double &s1, double &s2) {
  const v8 mv = v8{} + m;
  for (int64_t i0 = 0; i0 < n; i0 += kFlush) {
    const int64_t i1 = std::min(n, i0 + kFlush);
    v8 a = {}, b = {};
    int64_t i = i0;
    for (; i + 8 <= i1; i += 8) {
      const v8 gv = load(g + i);
      a += gv;
      b += gv * (load(x + i) - mv);
    }
    double t1 = x3d::hsum(a), t2 = x3d::hsum(b);
    for (; i < i1; ++i) {
      t1 += g[i];
      t2 += double(g[i]) * (double(x[i]) - m);
    }
    s1 += t1;
    s2 += t2;
  }
}

// out = a * x + b
void affine(const float *x, int64_t n, float a, float b, float *out) {
  const v8 av = v8{} + a, bv = v8{} + b;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) store(out + i, av * load(x + i) + bv);
  for (; i < n; ++i) out[i] = a * x[i] + b;
}

// dx = a * g + c0 + c1 * (x - m)
void input_grad(const float *g, const float *x, int64_t n, float a, float c0, float c1, float m, float *dx) {
  const v8 av = v8{} + a, c0v = v8{} + c0, c1v = v8{} + c1, mv = v8{} + m;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) store(dx + i, av * load(g + i) + c0v + c1v * (load(x + i) - mv));
  for (; i < n; ++i) dx[i] = a * g[i] + c0 + c1 * (x[i] - m);
}

struct Dims {
  int64_t N, C, S;
};

bool is_f32(const char *t) { return std::strcmp(t, "float32") == 0; }

// x (N, C, ...) at index xi; vectors of C at the indices in vec
bool dims_of(int xi, std::initializer_list<int> vec, int *ndims, int64_t **shapes, const char **dtypes,
             Dims *d) {
  if (ndims[xi] < 2 || !is_f32(dtypes[xi])) return false;
  d->N = shapes[xi][0];
  d->C = shapes[xi][1];
  d->S = 1;
  for (int i = 2; i < ndims[xi]; ++i) d->S *= shapes[xi][i];
  for (int v : vec)
    if (ndims[v] != 1 || shapes[v][0] != d->C || !is_f32(dtypes[v])) return false;
  return d->N * d->S > 1;
}

int refuse(const char *what) {
  std::fprintf(stderr, "x3d batchnorm kernel: unsupported call to %s (expects float32 x (N, C, ...) with "
                       "N*T*H*W > 1 and per-channel vectors of C)\n", what);
  return 1;
}

}  // namespace

namespace {

int forward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                            void *stream, void *extra) {
  // inputs x, gamma, beta, cfg; outputs y, mean, var
  Dims d;
  if (nparam != 7 || !dims_of(0, {1, 2, 5, 6}, ndims, shapes, dtypes, &d)) return refuse("X3dBnForwardUpdate");
  const float *x = static_cast<const float *>(params[0]);
  const float *gamma = static_cast<const float *>(params[1]), *beta = static_cast<const float *>(params[2]);
  const float eps = static_cast<const float *>(params[3])[0];
  float *y = static_cast<float *>(params[4]);
  float *mean = static_cast<float *>(params[5]), *var = static_cast<float *>(params[6]);
  const int64_t M = d.N * d.S;
  parallel_for(d.C, [&](int64_t begin, int64_t end, int) {
    for (int64_t c = begin; c < end; ++c) {
      const float k = x[c * d.S];  // shift: the sums stay small next to the mean
      double s1 = 0.0, s2 = 0.0;
      for (int64_t n = 0; n < d.N; ++n) shifted_sums(x + (n * d.C + c) * d.S, d.S, k, s1, s2);
      const double mu = s1 / M, v = std::max(0.0, s2 / M - mu * mu);
      const double m = k + mu, inv = 1.0 / std::sqrt(v + eps);
      const double a = gamma[c] * inv, b = beta[c] - m * a;
      for (int64_t n = 0; n < d.N; ++n) {
        const int64_t off = (n * d.C + c) * d.S;
        affine(x + off, d.S, static_cast<float>(a), static_cast<float>(b), y + off);
      }
      mean[c] = static_cast<float>(m);
      var[c] = static_cast<float>(v);
    }
  });
  return 0;
}

}  // namespace

extern "C" int X3dBnBackward(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                             void *stream, void *extra) {
  // inputs x, gamma, mean, var, dy, cfg; outputs dx, dgamma, dbeta
  Dims d;
  if (nparam != 9 || !dims_of(0, {1, 2, 3, 7, 8}, ndims, shapes, dtypes, &d) || ndims[4] != ndims[0] ||
      ndims[6] != ndims[0])
    return refuse("X3dBnBackward");
  const float *x = static_cast<const float *>(params[0]), *gamma = static_cast<const float *>(params[1]);
  const float *mean = static_cast<const float *>(params[2]), *var = static_cast<const float *>(params[3]);
  const float *dy = static_cast<const float *>(params[4]);
  const float eps = static_cast<const float *>(params[5])[0];
  float *dx = static_cast<float *>(params[6]);
  float *dgamma = static_cast<float *>(params[7]), *dbeta = static_cast<float *>(params[8]);
  const int64_t M = d.N * d.S;
  parallel_for(d.C, [&](int64_t begin, int64_t end, int) {
    for (int64_t c = begin; c < end; ++c) {
      double sg = 0.0, sgx = 0.0;
      for (int64_t n = 0; n < d.N; ++n) {
        const int64_t off = (n * d.C + c) * d.S;
        grad_sums(dy + off, x + off, d.S, mean[c], sg, sgx);
      }
      const double inv = 1.0 / std::sqrt(double(var[c]) + eps), a = gamma[c] * inv;
      const double c0 = -a * sg / M, c1 = -a * inv * inv * sgx / M;
      for (int64_t n = 0; n < d.N; ++n) {
        const int64_t off = (n * d.C + c) * d.S;
        input_grad(dy + off, x + off, d.S, static_cast<float>(a), static_cast<float>(c0),
                   static_cast<float>(c1), mean[c], dx + off);
      }
      dgamma[c] = static_cast<float>(inv * sgx);
      dbeta[c] = static_cast<float>(sg);
    }
  });
  return 0;
}

extern "C" int X3dBnForwardUpdate(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                                  void *stream, void *extra) {
  // inputs x, gamma, beta, cfg [eps, m], moving_mean, moving_var (updated in place); outputs y, mean, var
  if (nparam != 9 || ndims[3] != 1 || shapes[3][0] != 2 || ndims[4] != 1 || ndims[5] != 1 ||
      shapes[4][0] != shapes[0][1] || shapes[5][0] != shapes[0][1])
    return refuse("X3dBnForwardUpdate");
  void *p7[7] = {params[0], params[1], params[2], params[3], params[6], params[7], params[8]};
  int n7[7] = {ndims[0], ndims[1], ndims[2], ndims[3], ndims[6], ndims[7], ndims[8]};
  int64_t *s7[7] = {shapes[0], shapes[1], shapes[2], shapes[3], shapes[6], shapes[7], shapes[8]};
  const char *d7[7] = {dtypes[0], dtypes[1], dtypes[2], dtypes[3], dtypes[6], dtypes[7], dtypes[8]};
  if (forward(7, p7, n7, s7, d7, stream, extra) != 0) return 1;
  const float mom = static_cast<const float *>(params[3])[1];
  float *mm = static_cast<float *>(params[4]), *mv = static_cast<float *>(params[5]);
  const float *mean = static_cast<const float *>(params[7]), *var = static_cast<const float *>(params[8]);
  int64_t M = shapes[0][0];
  for (int i = 2; i < ndims[0]; ++i) M *= shapes[0][i];
  const int64_t C = shapes[0][1];
  const double corr = M > 1 ? double(M) / double(M - 1) : 1.0;
  for (int64_t c = 0; c < C; ++c) {
    mm[c] = static_cast<float>((1.0 - mom) * mm[c] + mom * mean[c]);
    mv[c] = static_cast<float>((1.0 - mom) * mv[c] + mom * corr * var[c]);
  }
  return 0;
}
