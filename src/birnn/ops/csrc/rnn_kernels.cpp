// birnn's native LSTM and GRU kernels for the CPU (PyTorch's arithmetic, hand-written backward).
//
// What they compute is what `torch._VF.lstm` / `torch._VF.gru` compute for one layer with
// PyTorch's gate order (LSTM `i, f, g, o`; GRU `r, z, n`, reset after the recurrent
// product), one or two directions (the second one reads the sequence backwards). Two things
// make them faster than PyTorch's CPU kernels on small machines:
//
// - Both directions run at once, each on one thread of the caller's OpenMP team (`#pragma
//   omp parallel`), in the forward and in the backward pass. Each time step's matrix
//   product is too small for two cores to split well; two independent directions are not.
//   Every ATen call inside the region runs single-threaded (nested parallelism is off).
// - Every time step is one fused element-wise loop (activations, state update, or their
//   derivatives) between small products: the step's input projection, its recurrent
//   product and, in the backward pass, its contributions to the input and weight
//   gradients. exp, sigmoid and tanh are written so that the compiler vectorizes them
//   (float32: about 1 ulp from the C library's expf). The products go through oneDNN's
//   batch-reduce GEMM micro-kernel where ATen exposes it (float32), else ATen's `addmm`;
//   working step by step keeps each step's gates in cache between the products.
//
// Layouts: `x` is `(time, batch, features)`, any strides; the outputs are `(time, batch,
// directions * units)`, or `(batch, time, directions * units)` with `batch_first`, the
// directions side by side as PyTorch's. States are `(directions, batch, units)`. Weights are
// stacked by direction: `w_ih (directions, gates * units, features)`, `w_hh (directions,
// gates * units, units)`. With `keep_activations` the forward functions also return what
// the backward functions need (the activations of every step: (batch, gates * units) per
// step, or (gates * units, batch) for layers with few units, see "few units" below), which
// the Python side keeps for autograd and hands back unread; without, they keep only what
// the next step reads.

#include <ATen/ATen.h>
#include <ATen/ThreadLocalState.h>
#include <ATen/native/CPUBlas.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>
#if defined(__linux__)
#include <sys/mman.h>
#endif

using at::Tensor;

// Per-instruction-set copies of the element-wise loops, chosen at load time.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define BIRNN_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#define BIRNN_INLINE inline __attribute__((always_inline))
#else
#define BIRNN_VECTOR_CLONES
#define BIRNN_INLINE inline
#endif

namespace {

// ------------------------------------------------------------------ element-wise math

// e^x for x <= 0: Cody-Waite range reduction and a degree-6 polynomial (Cephes' expf
// coefficients); exactly 0 below -87.34, where e^x would leave the normal floats.
BIRNN_INLINE float exp_nonpositive(float x) {
  const float lowest = -87.33654f;
  const float clamped = x < lowest ? lowest : x;
  const float n = (clamped * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // nearest
  float r = clamped - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return x < lowest ? 0.0f : y * scale;
}

// 1 / (1 + e^-x) from e^-|x|, so that nothing overflows: exactly 0 and 1 far out.
BIRNN_INLINE float sigmoid(float x) {
  const float e = exp_nonpositive(-std::fabs(x));
  const float s = 1.0f / (1.0f + e);
  return x >= 0.0f ? s : e * s;
}

BIRNN_INLINE float tanh_(float x) { return 2.0f * sigmoid(2.0f * x) - 1.0f; }

// float64 (gradient checks, `.double()` models): the C library's functions.
BIRNN_INLINE double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
BIRNN_INLINE double tanh_(double x) { return std::tanh(x); }

// A (rows, columns) block of a matrix: row `b` starts at `data + b * stride`.
template <typename T>
struct Rows {
  T* data;
  int64_t stride;
  T* row(int64_t b) const { return data + b * stride; }
};

template <typename T>
Rows<T> rows_of(const Tensor& t) {
  return {t.data_ptr<T>(), t.stride(0)};
}

// ------------------------------------------------------------------ LSTM steps

// gates: the step's products in, activations out (`g` as tanh); bias added here. c, tanh(c)
// and h out.
template <typename T>
BIRNN_INLINE void lstm_forward_row(T* __restrict__ gates, const T* __restrict__ bias,
                                   const T* __restrict__ c_prev, T* __restrict__ c,
                                   T* __restrict__ tanh_c, T* __restrict__ h, int64_t units) {
  const int64_t u = units;
#pragma omp simd
  for (int64_t j = 0; j < u; ++j) {
    const T i = sigmoid(gates[j] + bias[j]);
    const T f = sigmoid(gates[u + j] + bias[u + j]);
    const T g = tanh_(gates[2 * u + j] + bias[2 * u + j]);
    const T o = sigmoid(gates[3 * u + j] + bias[3 * u + j]);
    const T c_new = f * c_prev[j] + i * g;
    const T t = tanh_(c_new);
    gates[j] = i;
    gates[u + j] = f;
    gates[2 * u + j] = g;
    gates[3 * u + j] = o;
    c[j] = c_new;
    tanh_c[j] = t;
    h[j] = o * t;
  }
}

template <typename T>
BIRNN_INLINE void lstm_forward_step(Rows<T> gates, const T* bias, Rows<const T> c_prev, Rows<T> c,
                                    Rows<T> tanh_c, Rows<T> h, int64_t batch, int64_t units) {
  for (int64_t b = 0; b < batch; ++b) {
    lstm_forward_row<T>(gates.row(b), bias, c_prev.row(b), c.row(b), tanh_c.row(b), h.row(b),
                        units);
  }
}

BIRNN_VECTOR_CLONES void lstm_step_forward(Rows<float> gates, const float* bias,
                                               Rows<const float> c_prev, Rows<float> c,
                                               Rows<float> tanh_c, Rows<float> h, int64_t batch,
                                               int64_t units) {
  lstm_forward_step<float>(gates, bias, c_prev, c, tanh_c, h, batch, units);
}

// dh, dc: the gradients flowing into this step's h and c from later steps (dh without this
// step's output gradient dy); out: dc for the previous step, and the gradient of the gates'
// pre-activations, also summed into d_bias.
template <typename T>
BIRNN_INLINE void lstm_backward_row(const T* __restrict__ gates, const T* __restrict__ tanh_c,
                                    const T* __restrict__ c_prev, const T* __restrict__ dy,
                                    const T* __restrict__ dh, T* __restrict__ dc,
                                    T* __restrict__ d_gates, T* __restrict__ d_bias,
                                    int64_t units) {
  const int64_t u = units;
#pragma omp simd
  for (int64_t j = 0; j < u; ++j) {
    const T i = gates[j], f = gates[u + j], g = gates[2 * u + j], o = gates[3 * u + j];
    const T t = tanh_c[j];
    const T dh_j = dh[j] + dy[j];
    const T dc_j = dc[j] + dh_j * o * (T(1) - t * t);
    const T di = dc_j * g * i * (T(1) - i);
    const T df = dc_j * c_prev[j] * f * (T(1) - f);
    const T dg = dc_j * i * (T(1) - g * g);
    const T d_o = dh_j * t * o * (T(1) - o);
    d_gates[j] = di;
    d_gates[u + j] = df;
    d_gates[2 * u + j] = dg;
    d_gates[3 * u + j] = d_o;
    d_bias[j] += di;
    d_bias[u + j] += df;
    d_bias[2 * u + j] += dg;
    d_bias[3 * u + j] += d_o;
    dc[j] = dc_j * f;
  }
}

template <typename T>
BIRNN_INLINE void lstm_backward_step(Rows<const T> gates, Rows<const T> tanh_c,
                                     Rows<const T> c_prev, Rows<const T> dy, Rows<const T> dh,
                                     Rows<T> dc, Rows<T> d_gates, T* d_bias, int64_t batch,
                                     int64_t units) {
  for (int64_t b = 0; b < batch; ++b) {
    lstm_backward_row<T>(gates.row(b), tanh_c.row(b), c_prev.row(b), dy.row(b), dh.row(b),
                         dc.row(b), d_gates.row(b), d_bias, units);
  }
}

BIRNN_VECTOR_CLONES void lstm_step_backward(Rows<const float> gates,
                                                Rows<const float> tanh_c,
                                                Rows<const float> c_prev, Rows<const float> dy,
                                                Rows<const float> dh, Rows<float> dc,
                                                Rows<float> d_gates, float* d_bias,
                                                int64_t batch, int64_t units) {
  lstm_backward_step<float>(gates, tanh_c, c_prev, dy, dh, dc, d_gates, d_bias, batch, units);
}

// ------------------------------------------------------------------ GRU steps

// x_gates: the input projection in, activations r, z, n out; h_gates: the recurrent
// product; both biases added here. h_n out: the recurrent `n` block with its bias (needed
// by the backward pass).
template <typename T>
BIRNN_INLINE void gru_forward_row(T* __restrict__ x_gates, const T* __restrict__ h_gates,
                                  const T* __restrict__ b_ih, const T* __restrict__ b_hh,
                                  const T* __restrict__ h_prev, T* __restrict__ h_n,
                                  T* __restrict__ h, int64_t units) {
  const int64_t u = units;
#pragma omp simd
  for (int64_t j = 0; j < u; ++j) {
    const T r = sigmoid(x_gates[j] + b_ih[j] + h_gates[j] + b_hh[j]);
    const T z = sigmoid(x_gates[u + j] + b_ih[u + j] + h_gates[u + j] + b_hh[u + j]);
    const T hn = h_gates[2 * u + j] + b_hh[2 * u + j];
    const T n = tanh_(x_gates[2 * u + j] + b_ih[2 * u + j] + r * hn);
    x_gates[j] = r;
    x_gates[u + j] = z;
    x_gates[2 * u + j] = n;
    h_n[j] = hn;
    h[j] = (T(1) - z) * n + z * h_prev[j];
  }
}

template <typename T>
BIRNN_INLINE void gru_forward_step(Rows<T> x_gates, Rows<const T> h_gates, const T* b_ih,
                                   const T* b_hh, Rows<const T> h_prev, Rows<T> h_n, Rows<T> h,
                                   int64_t batch, int64_t units) {
  for (int64_t b = 0; b < batch; ++b) {
    gru_forward_row<T>(x_gates.row(b), h_gates.row(b), b_ih, b_hh, h_prev.row(b), h_n.row(b),
                       h.row(b), units);
  }
}

BIRNN_VECTOR_CLONES void gru_step_forward(Rows<float> x_gates, Rows<const float> h_gates,
                                              const float* b_ih, const float* b_hh,
                                              Rows<const float> h_prev, Rows<float> h_n,
                                              Rows<float> h, int64_t batch, int64_t units) {
  gru_forward_step<float>(x_gates, h_gates, b_ih, b_hh, h_prev, h_n, h, batch, units);
}

// dh: the gradient into this step's h from later steps; out: the gradients of the input
// projection (dx_gates) and of the recurrent product (dh_gates), summed into the biases'
// gradients too, and dh_prev's direct part (z * dh; the caller adds dh_gates @ w_hh).
template <typename T>
BIRNN_INLINE void gru_backward_row(const T* __restrict__ gates, const T* __restrict__ h_n,
                                   const T* __restrict__ h_prev, const T* __restrict__ dy,
                                   const T* __restrict__ dh, T* __restrict__ dx_gates,
                                   T* __restrict__ dh_gates, T* __restrict__ dh_prev,
                                   T* __restrict__ db_ih, T* __restrict__ db_hh, int64_t units) {
  const int64_t u = units;
#pragma omp simd
  for (int64_t j = 0; j < u; ++j) {
    const T r = gates[j], z = gates[u + j], n = gates[2 * u + j];
    const T dh_j = dh[j] + dy[j];
    const T dn = dh_j * (T(1) - z) * (T(1) - n * n);
    const T dz = dh_j * (h_prev[j] - n) * z * (T(1) - z);
    const T dr = dn * h_n[j] * r * (T(1) - r);
    const T dhn = dn * r;
    dx_gates[j] = dr;
    dx_gates[u + j] = dz;
    dx_gates[2 * u + j] = dn;
    dh_gates[j] = dr;
    dh_gates[u + j] = dz;
    dh_gates[2 * u + j] = dhn;
    db_ih[j] += dr;
    db_ih[u + j] += dz;
    db_ih[2 * u + j] += dn;
    db_hh[j] += dr;
    db_hh[u + j] += dz;
    db_hh[2 * u + j] += dhn;
    dh_prev[j] = dh_j * z;
  }
}

template <typename T>
BIRNN_INLINE void gru_backward_step(Rows<const T> gates, Rows<const T> h_n, Rows<const T> h_prev,
                                    Rows<const T> dy, Rows<const T> dh, Rows<T> dx_gates,
                                    Rows<T> dh_gates, Rows<T> dh_prev, T* db_ih, T* db_hh,
                                    int64_t batch, int64_t units) {
  for (int64_t b = 0; b < batch; ++b) {
    gru_backward_row<T>(gates.row(b), h_n.row(b), h_prev.row(b), dy.row(b), dh.row(b),
                        dx_gates.row(b), dh_gates.row(b), dh_prev.row(b), db_ih, db_hh, units);
  }
}

BIRNN_VECTOR_CLONES void gru_step_backward(Rows<const float> gates, Rows<const float> h_n,
                                               Rows<const float> h_prev, Rows<const float> dy,
                                               Rows<const float> dh, Rows<float> dx_gates,
                                               Rows<float> dh_gates, Rows<float> dh_prev,
                                               float* db_ih, float* db_hh, int64_t batch,
                                               int64_t units) {
  gru_backward_step<float>(gates, h_n, h_prev, dy, dh, dx_gates, dh_gates, dh_prev, db_ih,
                           db_hh, batch, units);
}

// float64 (the float32 overloads above are the vectorized copies): the plain loops.
void lstm_step_forward(Rows<double> g, const double* bias, Rows<const double> cp,
                       Rows<double> c, Rows<double> tc, Rows<double> h, int64_t batch,
                       int64_t units) {
  lstm_forward_step<double>(g, bias, cp, c, tc, h, batch, units);
}
void lstm_step_backward(Rows<const double> g, Rows<const double> tc, Rows<const double> cp,
                        Rows<const double> dy, Rows<const double> dh, Rows<double> dc,
                        Rows<double> dg, double* db, int64_t batch, int64_t units) {
  lstm_backward_step<double>(g, tc, cp, dy, dh, dc, dg, db, batch, units);
}
void gru_step_forward(Rows<double> xg, Rows<const double> hg, const double* b_ih,
                      const double* b_hh, Rows<const double> hp, Rows<double> hn,
                      Rows<double> h, int64_t batch, int64_t units) {
  gru_forward_step<double>(xg, hg, b_ih, b_hh, hp, hn, h, batch, units);
}
void gru_step_backward(Rows<const double> g, Rows<const double> hn, Rows<const double> hp,
                       Rows<const double> dy, Rows<const double> dh, Rows<double> dxg,
                       Rows<double> dhg, Rows<double> dhp, double* db_ih, double* db_hh,
                       int64_t batch, int64_t units) {
  gru_backward_step<double>(g, hn, hp, dy, dh, dxg, dhg, dhp, db_ih, db_hh, batch, units);
}

template <typename T>
Rows<const T> const_rows(const Tensor& t) {
  return {t.data_ptr<T>(), t.stride(0)};
}

// ------------------------------------------------------------------ work buffers

// at::empty for the large buffers of one call (the activations kept for the backward pass,
// the gate gradients: tens of MB for long sequences), backed by transparent huge pages
// where the system offers them on request. Fresh 4 KiB pages cost about 0.2 ms per MB to
// fault in, which for a 500-step sequence was a tenth of a training step.
Tensor work_buffer(at::IntArrayRef sizes, const at::TensorOptions& options) {
  Tensor buffer = at::empty(sizes, options);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHugePage = uintptr_t{2} << 20;
  const uintptr_t start = reinterpret_cast<uintptr_t>(buffer.data_ptr());
  const uintptr_t end = start + buffer.nbytes();
  const uintptr_t first = (start + kHugePage - 1) & ~(kHugePage - 1);
  if (end >= first + 2 * kHugePage) {
    madvise(reinterpret_cast<void*>(first), (end - first) & ~(kHugePage - 1), MADV_HUGEPAGE);
  }
#endif
  return buffer;
}

// ------------------------------------------------------------------ products

#if defined(CPUBLAS_BRGEMM_F32F32F32)
// oneDNN's batch-reduce GEMM micro-kernel, as ATen exposes it: about 1.2x faster than the
// BLAS product on the small (batch-row) products of a time step. Checked once: a PyTorch
// built without it raises, and the products go through ATen's `addmm` instead.
bool micro_kernel_works() {
  static const bool works = [] {
    try {
      float a = 1.0f, b = 2.0f, c = 0.0f;
      at::native::cpublas::brgemm(1, 1, 1, 1, 1, 1, false, &a, &b, &c, false);
      return c == 2.0f;
    } catch (...) {
      return false;
    }
  }();
  return works;
}
#endif

// c (+)= a @ b for row-major blocks (inner stride 1): a (m, k), b (k, n), c (m, n);
// `accumulate` adds to c instead of overwriting it.
template <typename T>
void multiply(const Tensor& a, const Tensor& b, Tensor& c, bool accumulate) {
  if (a.numel() == 0 || b.numel() == 0) {  // empty batch, or nothing to sum over
    if (!accumulate) c.zero_();
    return;
  }
#if defined(CPUBLAS_BRGEMM_F32F32F32)
  if constexpr (std::is_same_v<T, float>) {
    if (micro_kernel_works() && a.stride(1) == 1 && b.stride(1) == 1 && c.stride(1) == 1) {
      at::native::cpublas::brgemm(a.size(0), b.size(1), a.size(1), a.stride(0), b.stride(0),
                                  c.stride(0), accumulate, a.data_ptr<float>(),
                                  b.data_ptr<float>(), c.data_ptr<float>(), false);
      return;
    }
  }
#endif
  c.addmm_(a, b, accumulate ? 1.0 : 0.0, 1.0);
}

// Where one direction is in the sequence: `step` counts in processing order.
struct Walk {
  int64_t time;
  bool reverse;
  int64_t at(int64_t step) const { return reverse ? time - 1 - step : step; }
  int64_t before(int64_t t) const { return reverse ? t + 1 : t - 1; }
  int64_t first() const { return reverse ? time - 1 : 0; }
  int64_t last() const { return reverse ? 0 : time - 1; }
};

Tensor transposed(const Tensor& sequence) { return sequence.permute({2, 0, 1}).contiguous(); }

// What each step of one direction's backward pass adds to the gradients of the inputs and of
// the weights, from the gradients of its input projection and of its recurrent product
// (the same tensor for an LSTM). The weight gradients are summed as (in, gates * units),
// each step's share one product of row-major blocks, in^T @ d_gates: `in^T` comes from
// transposed copies of the inputs and outputs made once, (features, time, batch), whose
// step `t` is the (features, batch) block `[:, t]`.
template <typename T>
class StepGradients {
 public:
  StepGradients(const Tensor& x, const Tensor& h0, const Tensor& y_d, const Tensor& w_ih,
                const Walk& walk, Tensor dx)
      : w_ih_(w_ih),
        walk_(walk),
        dx_(std::move(dx)),
        x_transposed_(transposed(x)),
        y_transposed_(transposed(y_d)),
        h0_transposed_(h0.t().contiguous()),
        d_input_weights_(at::zeros({x.size(2), w_ih.size(0)}, x.options())),
        d_recurrent_weights_(at::zeros({h0.size(1), w_ih.size(0)}, x.options())) {}

  void add(int64_t t, const Tensor& d_input_gates, const Tensor& d_recurrent_gates) {
    Tensor dx_t = dx_[t];
    multiply<T>(d_input_gates, w_ih_, dx_t, /*accumulate=*/false);
    multiply<T>(x_transposed_.select(1, t), d_input_gates, d_input_weights_, true);
    const Tensor h_prev_transposed = t == walk_.first()
                                         ? h0_transposed_
                                         : y_transposed_.select(1, walk_.before(t));
    multiply<T>(h_prev_transposed, d_recurrent_gates, d_recurrent_weights_, true);
  }

  void write_weights(Tensor& dw_ih, Tensor& dw_hh) const {
    dw_ih.copy_(d_input_weights_.t());
    dw_hh.copy_(d_recurrent_weights_.t());
  }

 private:
  Tensor w_ih_;
  Walk walk_;
  Tensor dx_;
  Tensor x_transposed_, y_transposed_, h0_transposed_;
  Tensor d_input_weights_, d_recurrent_weights_;
};

// ------------------------------------------------------------------ one direction

// Where a step's activations go: every step its own slot when they are kept for the
// backward pass; otherwise slot 0 for what one step uses alone, and two alternating slots
// for the carry, which the next step reads.
struct Slots {
  bool keep;
  int64_t own(int64_t t) const { return keep ? t : 0; }
  int64_t carry(int64_t t) const { return keep ? t : t % 2; }
};

int64_t slot_count(bool keep, int64_t time, int64_t needed) {
  return keep ? time : std::min(time, needed);
}

// This direction's `(time, batch, units)` block of the outputs, in either layout.
Tensor direction_block(const Tensor& y, bool batch_first, int64_t d, int64_t units) {
  Tensor time_major = batch_first ? y.transpose(0, 1) : y;
  return time_major.narrow(2, d * units, units);
}

template <typename T>
void lstm_direction_forward(const Tensor& x, const Tensor& h0, const Tensor& c0,
                            const Tensor& w_ih, const Tensor& w_hh, const Tensor& bias,
                            const Tensor& y_d, const Tensor& gates, const Tensor& c,
                            const Tensor& tanh_c, const Walk& walk, const Slots& slots,
                            Tensor h_n, Tensor c_n) {
  const int64_t batch = x.size(1), units = h0.size(1);
  const Tensor w_ih_t = w_ih.t().contiguous(), w_hh_t = w_hh.t().contiguous();
  const T* b = bias.data_ptr<T>();
  for (int64_t s = 0; s < walk.time; ++s) {
    const int64_t t = walk.at(s);
    const bool first = s == 0;
    Tensor g = gates[slots.own(t)];
    multiply<T>(x[t], w_ih_t, g, /*accumulate=*/false);
    multiply<T>(first ? h0 : y_d[walk.before(t)], w_hh_t, g, /*accumulate=*/true);
    const Tensor c_prev = first ? c0 : c[slots.carry(walk.before(t))];
    lstm_step_forward(rows_of<T>(g), b, const_rows<T>(c_prev), rows_of<T>(c[slots.carry(t)]),
                      rows_of<T>(tanh_c[slots.own(t)]), rows_of<T>(y_d[t]), batch, units);
  }
  h_n.copy_(y_d[walk.last()]);
  c_n.copy_(c[slots.carry(walk.last())]);
}

template <typename T>
void lstm_direction_backward(const Tensor& x, const Tensor& h0, const Tensor& c0,
                             const Tensor& w_ih, const Tensor& w_hh, const Tensor& y_d,
                             const Tensor& gates, const Tensor& c, const Tensor& tanh_c,
                             const Tensor& dy_d, const Tensor& dh_n, const Tensor& dc_n,
                             const Walk& walk, Tensor dx, Tensor dh0, Tensor dc0, Tensor dw_ih,
                             Tensor dw_hh, Tensor d_bias) {
  const int64_t time = walk.time, batch = x.size(1), units = h0.size(1);
  const auto options = x.options();
  Tensor d_gates = at::empty({batch, 4 * units}, options);
  Tensor dh = dh_n.clone(at::MemoryFormat::Contiguous);
  Tensor dc = dc_n.clone(at::MemoryFormat::Contiguous);
  StepGradients<T> gradients(x, h0, y_d, w_ih, walk, dx);
  d_bias.zero_();
  T* db = d_bias.data_ptr<T>();
  for (int64_t s = 0; s < time; ++s) {
    const int64_t t = walk.at(time - 1 - s);
    const Tensor c_prev = t == walk.first() ? c0 : c[walk.before(t)];
    lstm_step_backward(const_rows<T>(gates[t]), const_rows<T>(tanh_c[t]), const_rows<T>(c_prev),
                       const_rows<T>(dy_d[t]), const_rows<T>(dh), rows_of<T>(dc),
                       rows_of<T>(d_gates), db, batch, units);
    multiply<T>(d_gates, w_hh, dh, /*accumulate=*/false);
    gradients.add(t, d_gates, d_gates);
  }
  dh0.copy_(dh);
  dc0.copy_(dc);
  gradients.write_weights(dw_ih, dw_hh);
}

template <typename T>
void gru_direction_forward(const Tensor& x, const Tensor& h0, const Tensor& w_ih,
                           const Tensor& w_hh, const Tensor& b_ih, const Tensor& b_hh,
                           const Tensor& y_d, const Tensor& gates, const Tensor& h_n_block,
                           const Walk& walk, const Slots& slots, Tensor h_n) {
  const int64_t batch = x.size(1), units = h0.size(1);
  const Tensor w_ih_t = w_ih.t().contiguous(), w_hh_t = w_hh.t().contiguous();
  Tensor h_gates = at::empty({batch, 3 * units}, x.options());
  for (int64_t s = 0; s < walk.time; ++s) {
    const int64_t t = walk.at(s);
    const Tensor h_prev = s == 0 ? h0 : y_d[walk.before(t)];
    Tensor g = gates[slots.own(t)];
    multiply<T>(x[t], w_ih_t, g, /*accumulate=*/false);
    multiply<T>(h_prev, w_hh_t, h_gates, /*accumulate=*/false);
    gru_step_forward(rows_of<T>(g), const_rows<T>(h_gates), b_ih.data_ptr<T>(),
                     b_hh.data_ptr<T>(), const_rows<T>(h_prev),
                     rows_of<T>(h_n_block[slots.own(t)]), rows_of<T>(y_d[t]), batch, units);
  }
  h_n.copy_(y_d[walk.last()]);
}

template <typename T>
void gru_direction_backward(const Tensor& x, const Tensor& h0, const Tensor& w_ih,
                            const Tensor& w_hh, const Tensor& y_d, const Tensor& gates,
                            const Tensor& h_n_block, const Tensor& dy_d, const Tensor& dh_n,
                            const Walk& walk, Tensor dx, Tensor dh0, Tensor dw_ih, Tensor dw_hh,
                            Tensor db_ih, Tensor db_hh) {
  const int64_t time = walk.time, batch = x.size(1), units = h0.size(1);
  const auto options = x.options();
  Tensor dx_gates = at::empty({batch, 3 * units}, options);
  Tensor dh_gates = at::empty({batch, 3 * units}, options);
  Tensor dh = dh_n.clone(at::MemoryFormat::Contiguous);
  Tensor dh_prev = at::empty({batch, units}, options);
  StepGradients<T> gradients(x, h0, y_d, w_ih, walk, dx);
  db_ih.zero_();
  db_hh.zero_();
  for (int64_t s = 0; s < time; ++s) {
    const int64_t t = walk.at(time - 1 - s);
    const Tensor h_prev = t == walk.first() ? h0 : y_d[walk.before(t)];
    gru_step_backward(const_rows<T>(gates[t]), const_rows<T>(h_n_block[t]),
                      const_rows<T>(h_prev), const_rows<T>(dy_d[t]), const_rows<T>(dh),
                      rows_of<T>(dx_gates), rows_of<T>(dh_gates), rows_of<T>(dh_prev),
                      db_ih.data_ptr<T>(), db_hh.data_ptr<T>(), batch, units);
    multiply<T>(dh_gates, w_hh, dh_prev, /*accumulate=*/true);
    std::swap(dh, dh_prev);
    gradients.add(t, dx_gates, dh_gates);
  }
  dh0.copy_(dh);
  gradients.write_weights(dw_ih, dw_hh);
}

// ------------------------------------------------------------------ few units

// Below `kFewUnits` units a row's gate blocks are shorter than one AVX-512 vector, and the
// per-row loops above ran scalar: about a third of a seed-size call (32 rows, 10 units, 5
// steps). These kernels keep every step "unit-major" instead: the gates as (gates * units,
// batch), the states as (units, batch). Then each gate block is one contiguous run of
// units * batch values, and one flat loop per step covers all rows at full vector width.
// The products turn around to match (weights on the left: W (gates * units, in) @ x_t^T
// (in, batch)), so the weights need no transposed copy; the outputs are written back
// row-major. The backward pass keeps every step's gate gradients side by side,
// (gates * units, time * batch), and computes the input and weight gradients and the bias
// gradients once, after the walk: at these sizes the number of calls is what costs.
#ifndef BIRNN_FEW_UNITS
#define BIRNN_FEW_UNITS 16
#endif
constexpr int64_t kFewUnits = BIRNN_FEW_UNITS;

bool few_units(int64_t units) { return units < kFewUnits; }

// c (+)= a @ b for row-major blocks given by pointer and row stride: a (m, k), b (k, n),
// c (m, n).
template <typename T>
void multiply_raw(int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* b,
                  int64_t ldb, T* c, int64_t ldc, bool accumulate) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    if (!accumulate) {
      for (int64_t i = 0; i < m; ++i) std::fill_n(c + i * ldc, n, T(0));
    }
    return;
  }
#if defined(CPUBLAS_BRGEMM_F32F32F32)
  if constexpr (std::is_same_v<T, float>) {
    if (micro_kernel_works()) {
      at::native::cpublas::brgemm(m, n, k, lda, ldb, ldc, accumulate, a, b, c, false);
      return;
    }
  }
#endif
  const auto options = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
  const Tensor ta = at::from_blob(const_cast<T*>(a), {m, k}, {lda, 1}, options);
  const Tensor tb = at::from_blob(const_cast<T*>(b), {k, n}, {ldb, 1}, options);
  Tensor tc = at::from_blob(c, {m, n}, {ldc, 1}, options);
  tc.addmm_(ta, tb, accumulate ? 1.0 : 0.0, 1.0);
}

// Whether multiply_raw<T> runs on pointers alone (the micro-kernel), with no ATen call.
template <typename T>
bool raw_products() {
#if defined(CPUBLAS_BRGEMM_F32F32F32)
  if constexpr (std::is_same_v<T, float>) return micro_kernel_works();
#endif
  return false;
}

// dst (cols, rows) = src (rows, cols)^T, both with row strides.
template <typename T>
void transpose_into(const T* src, int64_t rows, int64_t cols, int64_t src_stride, T* dst,
                    int64_t dst_stride) {
  for (int64_t i = 0; i < rows; ++i) {
    const T* s = src + i * src_stride;
    for (int64_t j = 0; j < cols; ++j) dst[j * dst_stride + i] = s[j];
  }
}

// (rows, batch): row r of `values` repeated over the batch.
template <typename T>
std::vector<T> broadcast_rows(const T* values, int64_t rows, int64_t batch) {
  std::vector<T> out(static_cast<size_t>(rows * batch));
  for (int64_t r = 0; r < rows; ++r) std::fill_n(out.data() + r * batch, batch, values[r]);
  return out;
}

// sums[r] = the sum of row r of a (rows, columns) block (a vectorized sum: a plain one is
// a chain of dependent scalar adds, which took a tenth of a seed-size training step).
template <typename T>
void row_sums(const T* block, int64_t rows, int64_t columns, T* sums) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* row = block + r * columns;
    T sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < columns; ++i) sum += row[i];
    sums[r] = sum;
  }
}

// One LSTM step over n = units * batch values, unit-major: `gates` holds the four blocks
// (i, f, g, o) of n values each, products in, activations out; `bias` the same blocks. That
// is the row step with n in place of the units.
BIRNN_VECTOR_CLONES void lstm_forward_flat(float* gates, const float* bias, const float* c_prev,
                                           float* c, float* tanh_c, float* h, int64_t n) {
  lstm_forward_row<float>(gates, bias, c_prev, c, tanh_c, h, n);
}
void lstm_forward_flat(double* gates, const double* bias, const double* c_prev, double* c,
                       double* tanh_c, double* h, int64_t n) {
  lstm_forward_row<double>(gates, bias, c_prev, c, tanh_c, h, n);
}

// dh: the gradient into this step's h (its output gradient included); dc: into its c, and
// out for the previous step's c; d_gates out (four blocks of n).
template <typename T>
BIRNN_INLINE void lstm_backward_flat_(const T* __restrict__ gates, const T* __restrict__ tanh_c,
                                      const T* __restrict__ c_prev, const T* __restrict__ dh,
                                      T* __restrict__ dc, T* __restrict__ d_gates, int64_t n) {
#pragma omp simd
  for (int64_t e = 0; e < n; ++e) {
    const T i = gates[e], f = gates[n + e], g = gates[2 * n + e], o = gates[3 * n + e];
    const T t = tanh_c[e];
    const T dc_e = dc[e] + dh[e] * o * (T(1) - t * t);
    d_gates[e] = dc_e * g * i * (T(1) - i);
    d_gates[n + e] = dc_e * c_prev[e] * f * (T(1) - f);
    d_gates[2 * n + e] = dc_e * i * (T(1) - g * g);
    d_gates[3 * n + e] = dh[e] * t * o * (T(1) - o);
    dc[e] = dc_e * f;
  }
}

BIRNN_VECTOR_CLONES void lstm_backward_flat(const float* gates, const float* tanh_c,
                                            const float* c_prev, const float* dh, float* dc,
                                            float* d_gates, int64_t n) {
  lstm_backward_flat_<float>(gates, tanh_c, c_prev, dh, dc, d_gates, n);
}
void lstm_backward_flat(const double* gates, const double* tanh_c, const double* c_prev,
                        const double* dh, double* dc, double* d_gates, int64_t n) {
  lstm_backward_flat_<double>(gates, tanh_c, c_prev, dh, dc, d_gates, n);
}

// One GRU step, unit-major: x_gates (r, z, n blocks) the input projection in, activations
// out; h_gates the recurrent product; b_ih, b_hh broadcast to the same blocks. That is the
// row step with n = units * batch in place of the units.
BIRNN_VECTOR_CLONES void gru_forward_flat(float* x_gates, const float* h_gates,
                                          const float* b_ih, const float* b_hh,
                                          const float* h_prev, float* h_n, float* h, int64_t n) {
  gru_forward_row<float>(x_gates, h_gates, b_ih, b_hh, h_prev, h_n, h, n);
}
void gru_forward_flat(double* x_gates, const double* h_gates, const double* b_ih,
                      const double* b_hh, const double* h_prev, double* h_n, double* h,
                      int64_t n) {
  gru_forward_row<double>(x_gates, h_gates, b_ih, b_hh, h_prev, h_n, h, n);
}

// dh: the gradient into this step's h (output gradient included); out: the gradients of
// the input projection and of the recurrent product, and dh_prev's direct part (z * dh).
template <typename T>
BIRNN_INLINE void gru_backward_flat_(const T* __restrict__ gates, const T* __restrict__ h_n,
                                     const T* __restrict__ h_prev, const T* __restrict__ dh,
                                     T* __restrict__ dx_gates, T* __restrict__ dh_gates,
                                     T* __restrict__ dh_prev, int64_t n) {
#pragma omp simd
  for (int64_t e = 0; e < n; ++e) {
    const T r = gates[e], z = gates[n + e], nn = gates[2 * n + e];
    const T dn = dh[e] * (T(1) - z) * (T(1) - nn * nn);
    const T dz = dh[e] * (h_prev[e] - nn) * z * (T(1) - z);
    const T dr = dn * h_n[e] * r * (T(1) - r);
    dx_gates[e] = dr;
    dx_gates[n + e] = dz;
    dx_gates[2 * n + e] = dn;
    dh_gates[e] = dr;
    dh_gates[n + e] = dz;
    dh_gates[2 * n + e] = dn * r;
    dh_prev[e] = dh[e] * z;
  }
}

BIRNN_VECTOR_CLONES void gru_backward_flat(const float* gates, const float* h_n,
                                           const float* h_prev, const float* dh,
                                           float* dx_gates, float* dh_gates, float* dh_prev,
                                           int64_t n) {
  gru_backward_flat_<float>(gates, h_n, h_prev, dh, dx_gates, dh_gates, dh_prev, n);
}
void gru_backward_flat(const double* gates, const double* h_n, const double* h_prev,
                       const double* dh, double* dx_gates, double* dh_gates, double* dh_prev,
                       int64_t n) {
  gru_backward_flat_<double>(gates, h_n, h_prev, dh, dx_gates, dh_gates, dh_prev, n);
}

// Uninitialized scratch memory for one call.
template <typename T>
std::unique_ptr<T[]> scratch(int64_t count) {
  return std::unique_ptr<T[]>(new T[static_cast<size_t>(count)]);
}

// One direction's `(time, batch, units)` block of the outputs (or of their gradients), in
// either layout, as a pointer and strides: step t's rows. No tensor views: at these sizes
// each one cost about as much as a step's arithmetic.
template <typename T>
struct StepRows {
  T* data;
  int64_t step_stride, row_stride;
  T* at(int64_t t) const { return data + t * step_stride; }
};

template <typename T>
StepRows<T> direction_rows(const Tensor& y, bool batch_first, int64_t d, int64_t units) {
  return {y.data_ptr<std::remove_const_t<T>>() + d * units, y.stride(batch_first ? 1 : 0),
          y.stride(batch_first ? 0 : 1)};
}

// The sizes of one call.
struct Sizes {
  int64_t time, batch, features, units;
};

// What the backward passes need besides the gate gradients: from the gradients of the
// input projection (and of the recurrent product; the same for an LSTM), all steps side
// by side as (rows, time * batch), the gradients of the inputs (dx, row-major (time, batch,
// features)), of the weights, and of the biases (db_hh optional).
template <typename T>
void few_units_gradients(const Sizes& z, int64_t rows, const T* x, const T* h0,
                         StepRows<const T> y, const Walk& walk, const T* w_ih,
                         const T* d_input_gates, const T* d_recurrent_gates, T* dx, T* dw_ih,
                         T* dw_hh, T* db_ih, T* db_hh) {
  const int64_t columns = z.time * z.batch, units = z.units, features = z.features;
  row_sums(d_input_gates, rows, columns, db_ih);
  if (db_hh != nullptr) row_sums(d_recurrent_gates, rows, columns, db_hh);
  // x as (time * batch, features): the input weights' gradient in one product.
  multiply_raw<T>(rows, features, columns, d_input_gates, columns, x, features, dw_ih, features,
                  false);
  // Each step's previous h, row-major (time * batch, units), in time order.
  auto h_prev = scratch<T>(columns * units);
  for (int64_t t = 0; t < z.time; ++t) {
    const bool first = t == walk.first();
    const T* source = first ? h0 : y.at(walk.before(t));
    const int64_t stride = first ? units : y.row_stride;
    for (int64_t b = 0; b < z.batch; ++b) {
      std::copy_n(source + b * stride, units, h_prev.get() + (t * z.batch + b) * units);
    }
  }
  multiply_raw<T>(rows, units, columns, d_recurrent_gates, columns, h_prev.get(), units, dw_hh,
                  units, false);
  // dx^T (features, time * batch) = w_ih^T @ d_input_gates, then back to row-major.
  auto w_ih_t = scratch<T>(features * rows);
  transpose_into(w_ih, rows, features, features, w_ih_t.get(), rows);
  auto dx_t = scratch<T>(features * columns);
  multiply_raw<T>(features, columns, rows, w_ih_t.get(), rows, d_input_gates, columns,
                  dx_t.get(), columns, false);
  transpose_into(dx_t.get(), features, columns, columns, dx, features);
}

// Copies one step's (rows, batch) block into column block `t` of a (rows, time * batch)
// matrix.
template <typename T>
void store_step(const T* block, int64_t rows, int64_t batch, int64_t t, int64_t time, T* all) {
  for (int64_t r = 0; r < rows; ++r) {
    std::copy_n(block + r * batch, batch, all + r * time * batch + t * batch);
  }
}

// dh (units, batch) += dy_t^T: a step's output gradient, into the unit-major carry.
template <typename T>
void add_transposed(const T* dy_t, int64_t row_stride, int64_t batch, int64_t units, T* dh) {
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t j = 0; j < units; ++j) dh[j * batch + b] += dy_t[b * row_stride + j];
  }
}

// The forward walk of one direction that the LSTM and the GRU share. x_t: (features,
// time * batch), x transposed once for both directions; h kept unit-major in a double
// buffer. Per step: the input projection into the step's gate slot g, then
// step(t, g, h_prev, h) for the recurrence; h goes to y row-major, the last h to h_n.
template <typename T, typename Step>
void few_forward_walk(const Sizes& z, int64_t rows, const T* x_t, const T* h0, const T* w_ih,
                      StepRows<T> y, T* gates, const Walk& walk, const Slots& slots, T* h_n,
                      const Step& step) {
  const int64_t batch = z.batch, units = z.units, n = units * batch;
  auto h_t = scratch<T>(2 * n);
  transpose_into(h0, batch, units, units, h_t.get(), batch);
  for (int64_t s = 0; s < z.time; ++s) {
    const int64_t t = walk.at(s);
    T* g = gates + slots.own(t) * rows * batch;
    const T* h_prev = h_t.get() + (s % 2) * n;
    T* h = h_t.get() + ((s + 1) % 2) * n;
    multiply_raw<T>(rows, batch, z.features, w_ih, z.features, x_t + t * batch,
                    z.time * batch, g, batch, false);
    step(s, t, g, h_prev, h);
    transpose_into(h, units, batch, batch, y.at(t), y.row_stride);
  }
  transpose_into(h_t.get() + (z.time % 2) * n, units, batch, batch, h_n, units);
}

// One direction, forward; states row-major (batch, units); the activations unit-major
// per slot.
template <typename T>
void lstm_few_forward(const Sizes& z, const T* x_t, const T* h0, const T* c0, const T* w_ih,
                      const T* w_hh, const T* bias, StepRows<T> y, T* gates, T* c, T* tanh_c,
                      const Walk& walk, const Slots& slots, T* h_n, T* c_n) {
  const int64_t batch = z.batch, units = z.units, rows = 4 * units, n = units * batch;
  const std::vector<T> bias_rows = broadcast_rows(bias, rows, batch);
  auto c0_t = scratch<T>(n);
  transpose_into(c0, batch, units, units, c0_t.get(), batch);
  few_forward_walk<T>(z, rows, x_t, h0, w_ih, y, gates, walk, slots, h_n,
                      [&](int64_t s, int64_t t, T* g, const T* h_prev, T* h) {
                        multiply_raw<T>(rows, batch, units, w_hh, units, h_prev, batch, g,
                                        batch, true);
                        const T* c_prev =
                            s == 0 ? c0_t.get() : c + slots.carry(walk.before(t)) * n;
                        lstm_forward_flat(g, bias_rows.data(), c_prev, c + slots.carry(t) * n,
                                          tanh_c + slots.own(t) * n, h, n);
                      });
  transpose_into(c + slots.carry(walk.last()) * n, units, batch, batch, c_n, units);
}

// One direction, backward: every step's activations kept by the forward pass; dh_n, dc_n
// row-major (batch, units); dx row-major (time, batch, features).
template <typename T>
void lstm_few_backward(const Sizes& z, const T* x, const T* h0, const T* c0, const T* w_ih,
                       const T* w_hh, StepRows<const T> y, const T* gates, const T* c,
                       const T* tanh_c, StepRows<const T> dy, const T* dh_n, const T* dc_n,
                       const Walk& walk, T* dx, T* dh0, T* dc0, T* dw_ih, T* dw_hh, T* d_bias) {
  const int64_t time = z.time, batch = z.batch, units = z.units;
  const int64_t rows = 4 * units, n = units * batch;
  auto w_hh_t = scratch<T>(units * rows);  // (units, gates * units)
  transpose_into(w_hh, rows, units, units, w_hh_t.get(), rows);
  auto dh = scratch<T>(n), dc = scratch<T>(n), c0_t = scratch<T>(n);
  auto d_gates = scratch<T>(rows * batch), d_all = scratch<T>(rows * time * batch);
  transpose_into(dh_n, batch, units, units, dh.get(), batch);
  transpose_into(dc_n, batch, units, units, dc.get(), batch);
  transpose_into(c0, batch, units, units, c0_t.get(), batch);
  for (int64_t s = 0; s < time; ++s) {
    const int64_t t = walk.at(time - 1 - s);
    add_transposed(dy.at(t), dy.row_stride, batch, units, dh.get());
    const T* c_prev = t == walk.first() ? c0_t.get() : c + walk.before(t) * n;
    lstm_backward_flat(gates + t * rows * batch, tanh_c + t * n, c_prev, dh.get(), dc.get(),
                       d_gates.get(), n);
    store_step(d_gates.get(), rows, batch, t, time, d_all.get());
    multiply_raw<T>(units, batch, rows, w_hh_t.get(), rows, d_gates.get(), batch, dh.get(),
                    batch, false);
  }
  transpose_into(dh.get(), units, batch, batch, dh0, units);
  transpose_into(dc.get(), units, batch, batch, dc0, units);
  few_units_gradients<T>(z, rows, x, h0, y, walk, w_ih, d_all.get(), d_all.get(), dx, dw_ih,
                         dw_hh, d_bias, nullptr);
}

template <typename T>
void gru_few_forward(const Sizes& z, const T* x_t, const T* h0, const T* w_ih, const T* w_hh,
                     const T* b_ih, const T* b_hh, StepRows<T> y, T* gates, T* h_n_block,
                     const Walk& walk, const Slots& slots, T* h_n) {
  const int64_t batch = z.batch, units = z.units, rows = 3 * units, n = units * batch;
  const std::vector<T> b_ih_rows = broadcast_rows(b_ih, rows, batch);
  const std::vector<T> b_hh_rows = broadcast_rows(b_hh, rows, batch);
  auto h_gates = scratch<T>(rows * batch);
  few_forward_walk<T>(z, rows, x_t, h0, w_ih, y, gates, walk, slots, h_n,
                      [&](int64_t, int64_t t, T* g, const T* h_prev, T* h) {
                        multiply_raw<T>(rows, batch, units, w_hh, units, h_prev, batch,
                                        h_gates.get(), batch, false);
                        gru_forward_flat(g, h_gates.get(), b_ih_rows.data(), b_hh_rows.data(),
                                         h_prev, h_n_block + slots.own(t) * n, h, n);
                      });
}

template <typename T>
void gru_few_backward(const Sizes& z, const T* x, const T* h0, const T* w_ih, const T* w_hh,
                      StepRows<const T> y, const T* gates, const T* h_n_block,
                      StepRows<const T> dy, const T* dh_n, const Walk& walk, T* dx, T* dh0,
                      T* dw_ih, T* dw_hh, T* db_ih, T* db_hh) {
  const int64_t time = z.time, batch = z.batch, units = z.units;
  const int64_t rows = 3 * units, n = units * batch;
  auto w_hh_t = scratch<T>(units * rows);  // (units, gates * units)
  transpose_into(w_hh, rows, units, units, w_hh_t.get(), rows);
  auto dh = scratch<T>(n), dh_prev = scratch<T>(n), h_prev = scratch<T>(n);
  auto dx_gates = scratch<T>(rows * batch), dh_gates = scratch<T>(rows * batch);
  auto dx_all = scratch<T>(rows * time * batch), dh_all = scratch<T>(rows * time * batch);
  transpose_into(dh_n, batch, units, units, dh.get(), batch);
  for (int64_t s = 0; s < time; ++s) {
    const int64_t t = walk.at(time - 1 - s);
    add_transposed(dy.at(t), dy.row_stride, batch, units, dh.get());
    if (t == walk.first()) {
      transpose_into(h0, batch, units, units, h_prev.get(), batch);
    } else {
      transpose_into(y.at(walk.before(t)), batch, units, y.row_stride, h_prev.get(), batch);
    }
    gru_backward_flat(gates + t * rows * batch, h_n_block + t * n, h_prev.get(), dh.get(),
                      dx_gates.get(), dh_gates.get(), dh_prev.get(), n);
    store_step(dx_gates.get(), rows, batch, t, time, dx_all.get());
    store_step(dh_gates.get(), rows, batch, t, time, dh_all.get());
    multiply_raw<T>(units, batch, rows, w_hh_t.get(), rows, dh_gates.get(), batch,
                    dh_prev.get(), batch, true);
    std::swap(dh, dh_prev);
  }
  transpose_into(dh.get(), units, batch, batch, dh0, units);
  few_units_gradients<T>(z, rows, x, h0, y, walk, w_ih, dx_all.get(), dh_all.get(), dx, dw_ih,
                         dw_hh, db_ih, db_hh);
}

// x (time, batch, features) as (features, time * batch), for the unit-major products.
template <typename T>
std::unique_ptr<T[]> inputs_transposed(const Tensor& x) {
  const int64_t columns = x.size(0) * x.size(1), features = x.size(2);
  auto out = scratch<T>(features * columns);
  transpose_into(x.data_ptr<T>(), columns, features, features, out.get(), columns);
  return out;
}

// ------------------------------------------------------------------ both directions

// body(d) for each direction: both at once on two threads, or one after the other.
// `tensor_ops`: whether body makes ATen calls, which need the caller's thread-local
// settings on the second thread; a body on raw pointers alone skips copying them, a
// microsecond or two that counts at the seed model's sizes.
template <typename F>
void each_direction(int64_t directions, bool concurrent, const F& body, bool tensor_ops = true) {
  if (concurrent && directions == 2) {
    std::exception_ptr failure;
    // The caller's thread-local settings (inference mode: the outputs are inference
    // tensors then, which only code in inference mode may write), as `at::parallel_for`.
    const std::optional<at::ThreadLocalState> caller =
        tensor_ops ? std::make_optional<at::ThreadLocalState>() : std::nullopt;
#pragma omp parallel for num_threads(2) schedule(static, 1)
    for (int64_t d = 0; d < 2; ++d) {
      try {
        if (caller) {
          at::ThreadLocalStateGuard settings(*caller);
          at::NoGradGuard no_grad;  // the products here record nothing
          body(d);
        } else {
          body(d);
        }
      } catch (...) {
#pragma omp critical
        failure = std::current_exception();
      }
    }
    if (failure) std::rethrow_exception(failure);
  } else {
    for (int64_t d = 0; d < directions; ++d) body(d);
  }
}

void check_inputs(const char* name, const Tensor& x, const Tensor& h0, const Tensor& w_ih,
                  const Tensor& w_hh, int64_t gates) {
  TORCH_CHECK(x.dim() == 3, name, ": x must be (time, batch, features)");
  TORCH_CHECK(x.size(0) > 0, name, ": x needs at least one time step");
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble, name,
              ": float32 or float64 only");
  for (const Tensor* t : {&h0, &w_ih, &w_hh}) {
    TORCH_CHECK(t->scalar_type() == x.scalar_type(), name, ": states and weights need x's dtype ",
                x.scalar_type(), ", got ", t->scalar_type());
  }
  TORCH_CHECK(h0.dim() == 3 && w_ih.dim() == 3, name,
              ": states must be (directions, batch, units), w_ih (directions, gates * units, "
              "features)");
  const int64_t directions = w_ih.size(0), units = h0.size(2);
  TORCH_CHECK(directions == 1 || directions == 2, name, ": one or two directions");
  TORCH_CHECK(h0.dim() == 3 && h0.size(0) == directions && h0.size(1) == x.size(1), name,
              ": states must be (directions, batch, units)");
  TORCH_CHECK(w_ih.dim() == 3 && w_ih.size(1) == gates * units && w_ih.size(2) == x.size(2),
              name, ": w_ih must be (directions, gates * units, features)");
  TORCH_CHECK(w_hh.dim() == 3 && w_hh.size(0) == directions && w_hh.size(1) == gates * units &&
                  w_hh.size(2) == units,
              name, ": w_hh must be (directions, gates * units, units)");
}

// Another state (c0) or a bias: the shape it must have, and x's dtype (the kernels read
// them row by row, unchecked).
void check_like(const char* name, const char* what, const Tensor& t, const Tensor& x,
                at::IntArrayRef shape) {
  TORCH_CHECK(t.scalar_type() == x.scalar_type(), name, ": ", what, " needs x's dtype ",
              x.scalar_type(), ", got ", t.scalar_type());
  TORCH_CHECK(t.sizes() == shape, name, ": ", what, " must have shape ", shape, ", got ",
              t.sizes());
}

// The input gradient: the sum of the directions' shares `dx (directions, time, batch,
// features)`, shaped as x.
Tensor directions_summed(const Tensor& dx, const Tensor& x) {
  if (dx.size(0) == 1) return dx.view(x.sizes());
  Tensor out = at::empty(x.sizes(), x.options());
  const int64_t count = out.numel();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "birnn::directions_summed", [&] {
    const scalar_t* a = dx.data_ptr<scalar_t>();
    const scalar_t* b = a + count;
    scalar_t* o = out.data_ptr<scalar_t>();
    for (int64_t i = 0; i < count; ++i) o[i] = a[i] + b[i];
  });
  return out;
}

Tensor new_outputs(const Tensor& x, int64_t directions, int64_t units, bool batch_first) {
  const int64_t time = x.size(0), batch = x.size(1);
  return batch_first ? at::empty({batch, time, directions * units}, x.options())
                     : at::empty({time, batch, directions * units}, x.options());
}

std::vector<Tensor> lstm_forward(const Tensor& x_in, const Tensor& h0_in, const Tensor& c0_in,
                                 const Tensor& w_ih_in, const Tensor& w_hh_in,
                                 const Tensor& bias_in, bool batch_first, bool concurrent,
                                 bool keep_activations) {
  check_inputs("birnn::lstm_forward", x_in, h0_in, w_ih_in, w_hh_in, 4);
  check_like("birnn::lstm_forward", "c0", c0_in, x_in, h0_in.sizes());
  check_like("birnn::lstm_forward", "bias", bias_in, x_in, {w_hh_in.size(0), w_hh_in.size(1)});
  const Tensor x = x_in.contiguous(), h0 = h0_in.contiguous(), c0 = c0_in.contiguous();
  const Tensor w_ih = w_ih_in.contiguous(), w_hh = w_hh_in.contiguous();
  const Tensor bias = bias_in.contiguous();
  const int64_t time = x.size(0), batch = x.size(1), directions = w_ih.size(0);
  const int64_t units = h0.size(2);
  const auto options = x.options();
  Tensor y = new_outputs(x, directions, units, batch_first);
  const Slots slots{keep_activations};
  const int64_t own = slot_count(keep_activations, time, 1);
  // Unit-major activations with few units: (gates * units, batch) per step.
  const bool few = few_units(units);
  const int64_t carried = slot_count(keep_activations, time, 2);
  Tensor gates = few ? work_buffer({directions, own, 4 * units, batch}, options)
                     : work_buffer({directions, own, batch, 4 * units}, options);
  Tensor c = few ? work_buffer({directions, carried, units, batch}, options)
                 : work_buffer({directions, carried, batch, units}, options);
  Tensor tanh_c = few ? work_buffer({directions, own, units, batch}, options)
                      : work_buffer({directions, own, batch, units}, options);
  Tensor h_n = at::empty({directions, batch, units}, options);
  Tensor c_n = at::empty({directions, batch, units}, options);
  if (few) {
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "birnn::lstm_forward", [&] {
      using T = scalar_t;
      const Sizes z{time, batch, x.size(2), units};
      const int64_t rows = 4 * units, state = batch * units;
      const auto x_t = inputs_transposed<T>(x);
      each_direction(directions, concurrent, [&](int64_t d) {
        lstm_few_forward<T>(z, x_t.get(), h0.data_ptr<T>() + d * state,
                            c0.data_ptr<T>() + d * state, w_ih.data_ptr<T>() + d * rows * z.features,
                            w_hh.data_ptr<T>() + d * rows * units, bias.data_ptr<T>() + d * rows,
                            direction_rows<T>(y, batch_first, d, units),
                            gates.data_ptr<T>() + d * own * rows * batch,
                            c.data_ptr<T>() + d * carried * state,
                            tanh_c.data_ptr<T>() + d * own * state, Walk{time, d == 1}, slots,
                            h_n.data_ptr<T>() + d * state, c_n.data_ptr<T>() + d * state);
      }, !raw_products<T>());
    });
    return {y, h_n, c_n, gates, c, tanh_c};
  }
  each_direction(directions, concurrent, [&](int64_t d) {
    const Walk walk{time, d == 1};
    const Tensor y_d = direction_block(y, batch_first, d, units);
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "birnn::lstm_forward", [&] {
      lstm_direction_forward<scalar_t>(x, h0[d], c0[d], w_ih[d], w_hh[d], bias[d], y_d, gates[d],
                                       c[d], tanh_c[d], walk, slots, h_n[d], c_n[d]);
    });
  });
  return {y, h_n, c_n, gates, c, tanh_c};
}

std::vector<Tensor> lstm_backward(const Tensor& x_in, const Tensor& h0_in, const Tensor& c0_in,
                                  const Tensor& w_ih_in, const Tensor& w_hh_in, const Tensor& y,
                                  const Tensor& gates, const Tensor& c, const Tensor& tanh_c,
                                  const Tensor& dy_in, const Tensor& dh_n, const Tensor& dc_n,
                                  bool batch_first, bool concurrent) {
  const Tensor dy = dy_in.contiguous();
  const Tensor x = x_in.contiguous(), h0 = h0_in.contiguous(), c0 = c0_in.contiguous();
  const Tensor w_ih = w_ih_in.contiguous(), w_hh = w_hh_in.contiguous();
  const int64_t time = x.size(0), directions = w_ih.size(0), units = h0.size(2);
  const auto options = x.options();
  Tensor dx = work_buffer({directions, time, x.size(1), x.size(2)}, options);
  Tensor dh0 = at::empty(h0.sizes(), options), dc0 = at::empty(c0.sizes(), options);
  Tensor dw_ih = at::empty(w_ih.sizes(), options), dw_hh = at::empty(w_hh.sizes(), options);
  Tensor d_bias = at::empty({directions, 4 * units}, options);
  if (few_units(units)) {
    const Tensor dh_n_c = dh_n.contiguous(), dc_n_c = dc_n.contiguous();
    const Tensor gates_c = gates.contiguous(), c_c = c.contiguous();
    const Tensor tanh_c_c = tanh_c.contiguous();
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "birnn::lstm_backward", [&] {
      using T = scalar_t;
      const Sizes z{time, x.size(1), x.size(2), units};
      const int64_t rows = 4 * units, state = z.batch * units, steps = time * z.batch;
      each_direction(directions, concurrent, [&](int64_t d) {
        lstm_few_backward<T>(
            z, x.data_ptr<T>(), h0.data_ptr<T>() + d * state, c0.data_ptr<T>() + d * state,
            w_ih.data_ptr<T>() + d * rows * z.features, w_hh.data_ptr<T>() + d * rows * units,
            direction_rows<const T>(y, batch_first, d, units),
            gates_c.data_ptr<T>() + d * rows * steps, c_c.data_ptr<T>() + d * units * steps,
            tanh_c_c.data_ptr<T>() + d * units * steps,
            direction_rows<const T>(dy, batch_first, d, units), dh_n_c.data_ptr<T>() + d * state,
            dc_n_c.data_ptr<T>() + d * state, Walk{time, d == 1},
            dx.data_ptr<T>() + d * steps * z.features, dh0.data_ptr<T>() + d * state,
            dc0.data_ptr<T>() + d * state, dw_ih.data_ptr<T>() + d * rows * z.features,
            dw_hh.data_ptr<T>() + d * rows * units, d_bias.data_ptr<T>() + d * rows);
      }, !raw_products<T>());
    });
    return {directions_summed(dx, x), dh0, dc0, dw_ih, dw_hh, d_bias};
  }
  each_direction(directions, concurrent, [&](int64_t d) {
    const Walk walk{time, d == 1};
    const Tensor y_d = direction_block(y, batch_first, d, units);
    const Tensor dy_d = direction_block(dy, batch_first, d, units);
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "birnn::lstm_backward", [&] {
      lstm_direction_backward<scalar_t>(x, h0[d], c0[d], w_ih[d], w_hh[d], y_d, gates[d], c[d],
                                        tanh_c[d], dy_d, dh_n[d], dc_n[d], walk, dx[d], dh0[d],
                                        dc0[d], dw_ih[d], dw_hh[d], d_bias[d]);
    });
  });
  Tensor dx_sum = directions == 2 ? at::add(dx[0], dx[1]) : dx[0].clone();
  return {dx_sum.view(x.sizes()), dh0, dc0, dw_ih, dw_hh, d_bias};
}

std::vector<Tensor> gru_forward(const Tensor& x_in, const Tensor& h0_in, const Tensor& w_ih_in,
                                const Tensor& w_hh_in, const Tensor& b_ih_in,
                                const Tensor& b_hh_in, bool batch_first, bool concurrent,
                                bool keep_activations) {
  check_inputs("birnn::gru_forward", x_in, h0_in, w_ih_in, w_hh_in, 3);
  check_like("birnn::gru_forward", "b_ih", b_ih_in, x_in, {w_hh_in.size(0), w_hh_in.size(1)});
  check_like("birnn::gru_forward", "b_hh", b_hh_in, x_in, {w_hh_in.size(0), w_hh_in.size(1)});
  const Tensor x = x_in.contiguous(), h0 = h0_in.contiguous();
  const Tensor w_ih = w_ih_in.contiguous(), w_hh = w_hh_in.contiguous();
  const Tensor b_ih = b_ih_in.contiguous(), b_hh = b_hh_in.contiguous();
  const int64_t time = x.size(0), batch = x.size(1), directions = w_ih.size(0);
  const int64_t units = h0.size(2);
  const auto options = x.options();
  Tensor y = new_outputs(x, directions, units, batch_first);
  const Slots slots{keep_activations};
  const int64_t own = slot_count(keep_activations, time, 1);
  // Unit-major activations with few units: (gates * units, batch) per step.
  const bool few = few_units(units);
  Tensor gates = few ? work_buffer({directions, own, 3 * units, batch}, options)
                     : work_buffer({directions, own, batch, 3 * units}, options);
  Tensor h_n_block = few ? work_buffer({directions, own, units, batch}, options)
                         : work_buffer({directions, own, batch, units}, options);
  Tensor h_n = at::empty({directions, batch, units}, options);
  if (few) {
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "birnn::gru_forward", [&] {
      using T = scalar_t;
      const Sizes z{time, batch, x.size(2), units};
      const int64_t rows = 3 * units, state = batch * units;
      const auto x_t = inputs_transposed<T>(x);
      each_direction(directions, concurrent, [&](int64_t d) {
        gru_few_forward<T>(z, x_t.get(), h0.data_ptr<T>() + d * state,
                           w_ih.data_ptr<T>() + d * rows * z.features,
                           w_hh.data_ptr<T>() + d * rows * units, b_ih.data_ptr<T>() + d * rows,
                           b_hh.data_ptr<T>() + d * rows,
                           direction_rows<T>(y, batch_first, d, units),
                           gates.data_ptr<T>() + d * own * rows * batch,
                           h_n_block.data_ptr<T>() + d * own * state, Walk{time, d == 1}, slots,
                           h_n.data_ptr<T>() + d * state);
      }, !raw_products<T>());
    });
    return {y, h_n, gates, h_n_block};
  }
  each_direction(directions, concurrent, [&](int64_t d) {
    const Walk walk{time, d == 1};
    const Tensor y_d = direction_block(y, batch_first, d, units);
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "birnn::gru_forward", [&] {
      gru_direction_forward<scalar_t>(x, h0[d], w_ih[d], w_hh[d], b_ih[d], b_hh[d], y_d,
                                      gates[d], h_n_block[d], walk, slots, h_n[d]);
    });
  });
  return {y, h_n, gates, h_n_block};
}

std::vector<Tensor> gru_backward(const Tensor& x_in, const Tensor& h0_in, const Tensor& w_ih_in,
                                 const Tensor& w_hh_in, const Tensor& y, const Tensor& gates,
                                 const Tensor& h_n_block, const Tensor& dy_in,
                                 const Tensor& dh_n, bool batch_first, bool concurrent) {
  const Tensor dy = dy_in.contiguous();
  const Tensor x = x_in.contiguous(), h0 = h0_in.contiguous();
  const Tensor w_ih = w_ih_in.contiguous(), w_hh = w_hh_in.contiguous();
  const int64_t time = x.size(0), directions = w_ih.size(0), units = h0.size(2);
  const auto options = x.options();
  Tensor dx = work_buffer({directions, time, x.size(1), x.size(2)}, options);
  Tensor dh0 = at::empty(h0.sizes(), options);
  Tensor dw_ih = at::empty(w_ih.sizes(), options), dw_hh = at::empty(w_hh.sizes(), options);
  Tensor db_ih = at::empty({directions, 3 * units}, options);
  Tensor db_hh = at::empty({directions, 3 * units}, options);
  if (few_units(units)) {
    const Tensor dh_n_c = dh_n.contiguous();
    const Tensor gates_c = gates.contiguous(), h_n_block_c = h_n_block.contiguous();
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "birnn::gru_backward", [&] {
      using T = scalar_t;
      const Sizes z{time, x.size(1), x.size(2), units};
      const int64_t rows = 3 * units, state = z.batch * units, steps = time * z.batch;
      each_direction(directions, concurrent, [&](int64_t d) {
        gru_few_backward<T>(
            z, x.data_ptr<T>(), h0.data_ptr<T>() + d * state,
            w_ih.data_ptr<T>() + d * rows * z.features, w_hh.data_ptr<T>() + d * rows * units,
            direction_rows<const T>(y, batch_first, d, units),
            gates_c.data_ptr<T>() + d * rows * steps,
            h_n_block_c.data_ptr<T>() + d * units * steps,
            direction_rows<const T>(dy, batch_first, d, units), dh_n_c.data_ptr<T>() + d * state,
            Walk{time, d == 1}, dx.data_ptr<T>() + d * steps * z.features,
            dh0.data_ptr<T>() + d * state, dw_ih.data_ptr<T>() + d * rows * z.features,
            dw_hh.data_ptr<T>() + d * rows * units, db_ih.data_ptr<T>() + d * rows,
            db_hh.data_ptr<T>() + d * rows);
      }, !raw_products<T>());
    });
    return {directions_summed(dx, x), dh0, dw_ih, dw_hh, db_ih, db_hh};
  }
  each_direction(directions, concurrent, [&](int64_t d) {
    const Walk walk{time, d == 1};
    const Tensor y_d = direction_block(y, batch_first, d, units);
    const Tensor dy_d = direction_block(dy, batch_first, d, units);
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "birnn::gru_backward", [&] {
      gru_direction_backward<scalar_t>(x, h0[d], w_ih[d], w_hh[d], y_d, gates[d], h_n_block[d],
                                       dy_d, dh_n[d], walk, dx[d], dh0[d], dw_ih[d], dw_hh[d],
                                       db_ih[d], db_hh[d]);
    });
  });
  Tensor dx_sum = directions == 2 ? at::add(dx[0], dx[1]) : dx[0].clone();
  return {dx_sum.view(x.sizes()), dh0, dw_ih, dw_hh, db_ih, db_hh};
}

}  // namespace

TORCH_LIBRARY(birnn_native, m) {
  m.def(
      "lstm_forward(Tensor x, Tensor h0, Tensor c0, Tensor w_ih, Tensor w_hh, Tensor bias, "
      "bool batch_first, bool concurrent, bool keep_activations) -> Tensor[]");
  m.def(
      "lstm_backward(Tensor x, Tensor h0, Tensor c0, Tensor w_ih, Tensor w_hh, Tensor y, "
      "Tensor gates, Tensor c, Tensor tanh_c, Tensor dy, Tensor dh_n, Tensor dc_n, "
      "bool batch_first, bool concurrent) -> Tensor[]");
  m.def(
      "gru_forward(Tensor x, Tensor h0, Tensor w_ih, Tensor w_hh, Tensor b_ih, Tensor b_hh, "
      "bool batch_first, bool concurrent, bool keep_activations) -> Tensor[]");
  m.def(
      "gru_backward(Tensor x, Tensor h0, Tensor w_ih, Tensor w_hh, Tensor y, Tensor gates, "
      "Tensor h_n_block, Tensor dy, Tensor dh_n, bool batch_first, bool concurrent) -> Tensor[]");
}

TORCH_LIBRARY_IMPL(birnn_native, CPU, m) {
  m.impl("lstm_forward", &lstm_forward);
  m.impl("lstm_backward", &lstm_backward);
  m.impl("gru_forward", &gru_forward);
  m.impl("gru_backward", &gru_backward);
}
