// Direct dense 3D convolution for few input channels (network stems: 3 -> C_out with kernels up to
// 7x7x7), for MindSpore ops.Custom(func_type="aot") on CPU. vol2col + one product (the `gemm`
// formulation) materialises a (C_in*taps, N*L) patch matrix: for a 7x7x7 stem at batch 8 that is
// 1029 x 401k floats, written and read again. Here each output row is computed from the padded
// input rows it needs, with the output channels in vector registers, and nothing large is stored.
// Layout NCTHW; zero padding; any kernel size and stride; geometry in a 9-element int64 tensor:
// kernel (t, h, w), stride (t, h, w), padding (t, h, w).
//
//   DirectConv3d(x, w, cfg) -> y         x (N, C, T, H, W), w (Co, C, kT, kH, kW) -> y (N, Co, To, Ho, Wo)
//   DirectConv3dGradW(x, dy, cfg) -> dw  the weight gradient, dw (Co, C, kT, kH, kW)
//
// (The input gradient is the transposed convolution; the binding computes it with MindSpore ops and
// vol2col's adjoint.) Python binding (ops.Custom definitions and bprop): direct_conv3d.py beside this file.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "parallel.h"

namespace {

using video_zoo_kernels::parallel_for;

// 8 floats, unaligned loads/stores allowed (GCC vector extension)
typedef float v8 __attribute__((vector_size(32), aligned(4)));

#ifdef __AVX512F__
constexpr int kRegs = 32;  // AVX-512VL: ymm0-31
#else
constexpr int kRegs = 16;
#endif

struct Geo {
  int64_t N, C, T, H, W, Co, kT, kH, kW, sT, sH, sW, pT, pH, pW, To, Ho, Wo;
  int64_t R() const { return C * kT * kH; }  // (c, kt, kh) input rows per output row
  int64_t Wp() const { return W + 2 * pW + sW * 8; }  // padded row, with slack for position blocks
};

bool read_geo(const int64_t *xs, int64_t co, const int64_t *cfg, Geo *g) {
  g->N = xs[0]; g->C = xs[1]; g->T = xs[2]; g->H = xs[3]; g->W = xs[4]; g->Co = co;
  g->kT = cfg[0]; g->kH = cfg[1]; g->kW = cfg[2];
  g->sT = cfg[3]; g->sH = cfg[4]; g->sW = cfg[5];
  g->pT = cfg[6]; g->pH = cfg[7]; g->pW = cfg[8];
  if (g->kT < 1 || g->kH < 1 || g->kW < 1 || g->sT < 1 || g->sH < 1 || g->sW < 1 || g->pT < 0 ||
      g->pH < 0 || g->pW < 0 || co < 1)
    return false;
  g->To = (g->T + 2 * g->pT - g->kT) / g->sT + 1;
  g->Ho = (g->H + 2 * g->pH - g->kH) / g->sH + 1;
  g->Wo = (g->W + 2 * g->pW - g->kW) / g->sW + 1;
  return g->To >= 1 && g->Ho >= 1 && g->Wo >= 1;
}

bool is_f32(const char *d) { return std::strcmp(d, "float32") == 0; }

// The padded input rows (c, kt, kh) that output row (n, to, ho) reads; returns how many are inside
// the input (their indices in `valid`); rows outside are not used (their taps add zero).
int64_t gather_rows(const Geo &g, const float *x, int64_t n, int64_t to, int64_t ho, float *rows,
                    int64_t *valid) {
  const int64_t Wp = g.Wp();
  int64_t nv = 0;
  for (int64_t c = 0; c < g.C; ++c)
    for (int64_t kt = 0; kt < g.kT; ++kt) {
      const int64_t ti = to * g.sT - g.pT + kt;
      if (ti < 0 || ti >= g.T) continue;
      for (int64_t kh = 0; kh < g.kH; ++kh) {
        const int64_t hi = ho * g.sH - g.pH + kh;
        if (hi < 0 || hi >= g.H) continue;
        const int64_t r = (c * g.kT + kt) * g.kH + kh;
        float *dst = rows + r * Wp;
        std::memset(dst, 0, sizeof(float) * Wp);
        std::memcpy(dst + g.pW, x + (((n * g.C + c) * g.T + ti) * g.H + hi) * g.W, sizeof(float) * g.W);
        valid[nv++] = r;
      }
    }
  return nv;
}

// B output positions (wo0 .. wo0+B-1) x NV*8 output channels, accumulated in registers
template <int NV, int B>
inline void positions(const Geo &g, const float *rows, const int64_t *valid, int64_t nv, const float *wt,
                      int64_t CoP, int64_t wo0, float *out) {
  v8 acc[B][NV];
  for (int b = 0; b < B; ++b)
    for (int j = 0; j < NV; ++j) acc[b][j] = v8{} ;
  const int64_t Wp = g.Wp();
  for (int64_t i = 0; i < nv; ++i) {
    const int64_t r = valid[i];
    const float *xr = rows + r * Wp + wo0 * g.sW;
    const float *wr = wt + r * g.kW * CoP;
    for (int64_t kw = 0; kw < g.kW; ++kw) {
      float xs[B];
      for (int b = 0; b < B; ++b) xs[b] = xr[b * g.sW + kw];
      const float *wk = wr + kw * CoP;
      for (int j = 0; j < NV; ++j) {
        const v8 wv = *reinterpret_cast<const v8 *>(wk + 8 * j);
        for (int b = 0; b < B; ++b) acc[b][j] += xs[b] * wv;
      }
    }
  }
  for (int b = 0; b < B; ++b)
    for (int j = 0; j < NV; ++j) *reinterpret_cast<v8 *>(out + b * CoP + 8 * j) = acc[b][j];
}

// positions per block: as many as the registers hold (accumulators + one weight + the inputs)
template <int NV>
constexpr int block_size() {
  return std::max(1, std::min(4, (kRegs - 2) / (NV + 1)));
}

template <int NV>
void row(const Geo &g, const float *rows, const int64_t *valid, int64_t nv, const float *wt, int64_t CoP,
         float *out) {
  constexpr int B = block_size<NV>();
  int64_t wo = 0;
  for (; wo + B <= g.Wo; wo += B) positions<NV, B>(g, rows, valid, nv, wt, CoP, wo, out + wo * CoP);
  for (; wo < g.Wo; ++wo) positions<NV, 1>(g, rows, valid, nv, wt, CoP, wo, out + wo * CoP);
}

// one output row for channels [cb, cb + 8*nv8) of the (position, CoP) buffer
void row_dispatch(int nv8, const Geo &g, const float *rows, const int64_t *valid, int64_t nv, const float *wt,
                  int64_t CoP, float *out) {
  switch (nv8) {
    case 1: row<1>(g, rows, valid, nv, wt, CoP, out); break;
    case 2: row<2>(g, rows, valid, nv, wt, CoP, out); break;
    case 3: row<3>(g, rows, valid, nv, wt, CoP, out); break;
    case 4: row<4>(g, rows, valid, nv, wt, CoP, out); break;
    case 5: row<5>(g, rows, valid, nv, wt, CoP, out); break;
    case 6: row<6>(g, rows, valid, nv, wt, CoP, out); break;
    case 7: row<7>(g, rows, valid, nv, wt, CoP, out); break;
    default: row<8>(g, rows, valid, nv, wt, CoP, out); break;
  }
}

void forward(const Geo &g, const float *x, const float *w, float *y) {
  const int64_t CoP = (g.Co + 7) / 8 * 8, R = g.R(), L = g.To * g.Ho * g.Wo;
  // weight as (c, kt, kh, kw) x CoP, output channels contiguous (zero beyond Co)
  std::vector<float> wt(R * g.kW * CoP, 0.0f);
  for (int64_t co = 0; co < g.Co; ++co)
    for (int64_t rk = 0; rk < R * g.kW; ++rk) wt[rk * CoP + co] = w[co * R * g.kW + rk];
  parallel_for(g.N * g.To * g.Ho, [&](int64_t begin, int64_t end) {
    std::vector<float> rows(R * g.Wp()), out(g.Wo * CoP);
    std::vector<int64_t> valid(R);
    for (int64_t q = begin; q < end; ++q) {
      const int64_t n = q / (g.To * g.Ho), to = (q / g.Ho) % g.To, ho = q % g.Ho;
      const int64_t nv = gather_rows(g, x, n, to, ho, rows.data(), valid.data());
      for (int64_t cb = 0; cb < CoP; cb += 64) {  // 64 channels (8 vectors) at a time
        const int nv8 = static_cast<int>(std::min<int64_t>(8, (CoP - cb) / 8));
        // out[wo * CoP + cb ...]: write this channel block only
        row_dispatch(nv8, g, rows.data(), valid.data(), nv, wt.data() + cb, CoP, out.data() + cb);
      }
      float *yo = y + n * g.Co * L + (to * g.Ho + ho) * g.Wo;
      for (int64_t co = 0; co < g.Co; ++co)
        for (int64_t wo = 0; wo < g.Wo; ++wo) yo[co * L + wo] = out[wo * CoP + co];
    }
  });
}

// dw[(c,kt,kh), kw, :] += x_row[wo*sW + kw] * dy[wo, :] over every output position
template <int NV>
void grad_rows(const Geo &g, const float *prow, const float *dyr, int64_t CoP, float *acc) {
  for (int64_t kw = 0; kw < g.kW; ++kw) {
    v8 a[NV];
    for (int j = 0; j < NV; ++j) a[j] = *reinterpret_cast<const v8 *>(acc + kw * CoP + 8 * j);
    for (int64_t wo = 0; wo < g.Wo; ++wo) {
      const float s = prow[wo * g.sW + kw];
      const float *d = dyr + wo * CoP;
      for (int j = 0; j < NV; ++j) a[j] += s * *reinterpret_cast<const v8 *>(d + 8 * j);
    }
    for (int j = 0; j < NV; ++j) *reinterpret_cast<v8 *>(acc + kw * CoP + 8 * j) = a[j];
  }
}

void grad_dispatch(int nv8, const Geo &g, const float *prow, const float *dyr, int64_t CoP, float *acc) {
  switch (nv8) {
    case 1: grad_rows<1>(g, prow, dyr, CoP, acc); break;
    case 2: grad_rows<2>(g, prow, dyr, CoP, acc); break;
    case 3: grad_rows<3>(g, prow, dyr, CoP, acc); break;
    case 4: grad_rows<4>(g, prow, dyr, CoP, acc); break;
    case 5: grad_rows<5>(g, prow, dyr, CoP, acc); break;
    case 6: grad_rows<6>(g, prow, dyr, CoP, acc); break;
    case 7: grad_rows<7>(g, prow, dyr, CoP, acc); break;
    default: grad_rows<8>(g, prow, dyr, CoP, acc); break;
  }
}

void grad_weight(const Geo &g, const float *x, const float *dy, float *dw) {
  const int64_t CoP = (g.Co + 7) / 8 * 8, L = g.To * g.Ho * g.Wo, P = g.N * L, R = g.R();
  // dy as (position, CoP): the channels of one position contiguous
  std::vector<float> dyt(P * CoP, 0.0f);
  parallel_for(g.N * g.To * g.Ho, [&](int64_t begin, int64_t end) {
    for (int64_t q = begin; q < end; ++q) {
      const int64_t n = q / (g.To * g.Ho), rest = q % (g.To * g.Ho);
      for (int64_t co = 0; co < g.Co; ++co) {
        const float *src = dy + (n * g.Co + co) * L + rest * g.Wo;
        for (int64_t wo = 0; wo < g.Wo; ++wo) dyt[(q * g.Wo + wo) * CoP + co] = src[wo];
      }
    }
  });
  parallel_for(R, [&](int64_t begin, int64_t end) {
    std::vector<float> prow(g.Wp()), acc(g.kW * CoP);
    for (int64_t r = begin; r < end; ++r) {
      const int64_t c = r / (g.kT * g.kH), kt = (r / g.kH) % g.kT, kh = r % g.kH;
      std::fill(acc.begin(), acc.end(), 0.0f);
      for (int64_t n = 0; n < g.N; ++n)
        for (int64_t to = 0; to < g.To; ++to) {
          const int64_t ti = to * g.sT - g.pT + kt;
          if (ti < 0 || ti >= g.T) continue;
          for (int64_t ho = 0; ho < g.Ho; ++ho) {
            const int64_t hi = ho * g.sH - g.pH + kh;
            if (hi < 0 || hi >= g.H) continue;
            std::fill(prow.begin(), prow.end(), 0.0f);
            std::memcpy(prow.data() + g.pW, x + (((n * g.C + c) * g.T + ti) * g.H + hi) * g.W,
                        sizeof(float) * g.W);
            const float *dyr = dyt.data() + (((n * g.To + to) * g.Ho + ho) * g.Wo) * CoP;
            for (int64_t cb = 0; cb < CoP; cb += 64) {
              const int nv8 = static_cast<int>(std::min<int64_t>(8, (CoP - cb) / 8));
              grad_dispatch(nv8, g, prow.data(), dyr + cb, CoP, acc.data() + cb);
            }
          }
        }
      for (int64_t co = 0; co < g.Co; ++co)
        for (int64_t kw = 0; kw < g.kW; ++kw) dw[(co * R + r) * g.kW + kw] = acc[kw * CoP + co];
    }
  });
}

bool is_weight_shape(const Geo &g, const int64_t *ws) {
  return ws[0] == g.Co && ws[1] == g.C && ws[2] == g.kT && ws[3] == g.kH && ws[4] == g.kW;
}

bool is_output_shape(const Geo &g, const int64_t *ys) {
  return ys[0] == g.N && ys[1] == g.Co && ys[2] == g.To && ys[3] == g.Ho && ys[4] == g.Wo;
}

// Both entry points take (x, a 5-D tensor, cfg, a 5-D output), float32: the forward (x, w) -> y,
// the weight gradient (x, dy) -> dw. Checks the call, then runs the one asked for.
int call(bool grad_w, int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
  if (nparam != 4 || ndims[0] != 5 || ndims[1] != 5 || ndims[2] != 1 || shapes[2][0] != 9 || ndims[3] != 5)
    return 1;
  if (!is_f32(dtypes[0]) || !is_f32(dtypes[1]) || !is_f32(dtypes[3])) return 1;
  Geo g;  // C_out: the weight's axis 0, the output gradient's axis 1
  if (!read_geo(shapes[0], shapes[1][grad_w ? 1 : 0], static_cast<const int64_t *>(params[2]), &g)) return 1;
  const int64_t *second = shapes[1], *out = shapes[3];
  if (grad_w ? !(is_output_shape(g, second) && is_weight_shape(g, out))
             : !(is_weight_shape(g, second) && is_output_shape(g, out)))
    return 1;
  const float *x = static_cast<const float *>(params[0]), *in2 = static_cast<const float *>(params[1]);
  float *y = static_cast<float *>(params[3]);
  if (grad_w) {
    grad_weight(g, x, in2, y);
  } else {
    forward(g, x, in2, y);
  }
  return 0;
}

}  // namespace

extern "C" int DirectConv3d(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                            void *stream, void *extra) {
  return call(false, nparam, params, ndims, shapes, dtypes);
}

extern "C" int DirectConv3dGradW(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes,
                                 void *stream, void *extra) {
  return call(true, nparam, params, ndims, shapes, dtypes);
}
