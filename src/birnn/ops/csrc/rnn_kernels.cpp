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
// - One fused loop per time step applies every element-wise operation (activations, state
//   update, their derivatives), with exp, sigmoid and tanh written so that the compiler
//   vectorizes them (float32: about 1 ulp from the C library's expf). The matrix products
//   are ATen's (MKL / oneDNN): the input projection and, in the backward pass, the input and
//   weight gradients are each one product over every time step.
//
// Layouts: `x` is `(time, batch, features)`, any strides; the outputs are `(time, batch,
// directions * units)`, or `(batch, time, directions * units)` with `batch_first`, the
// directions side by side as PyTorch's. States are `(directions, batch, units)`. Weights are
// stacked by direction: `w_ih (directions, gates * units, features)`, `w_hh (directions,
// gates * units, units)`. The forward functions also return what the backward functions
// need (the activations of every step), which the Python side keeps for autograd.

#include <ATen/ThreadLocalState.h>
#include <ATen/ATen.h>
#include <torch/library.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <vector>

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

// gates: pre-activations in, activations out (`g` as tanh). c, tanh(c) and h out.
template <typename T>
BIRNN_INLINE void lstm_forward_row(T* __restrict__ gates, const T* __restrict__ c_prev,
                                   T* __restrict__ c, T* __restrict__ tanh_c, T* __restrict__ h,
                                   int64_t units) {
  const int64_t u = units;
#pragma omp simd
  for (int64_t j = 0; j < u; ++j) {
    const T i = sigmoid(gates[j]);
    const T f = sigmoid(gates[u + j]);
    const T g = tanh_(gates[2 * u + j]);
    const T o = sigmoid(gates[3 * u + j]);
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
BIRNN_INLINE void lstm_forward_step(Rows<T> gates, Rows<const T> c_prev, Rows<T> c, Rows<T> tanh_c, Rows<T> h,
                       int64_t batch, int64_t units) {
  for (int64_t b = 0; b < batch; ++b) {
    lstm_forward_row<T>(gates.row(b), c_prev.row(b), c.row(b), tanh_c.row(b), h.row(b), units);
  }
}

BIRNN_VECTOR_CLONES void lstm_forward_step_f32(Rows<float> gates, Rows<const float> c_prev,
                                               Rows<float> c, Rows<float> tanh_c, Rows<float> h,
                                               int64_t batch, int64_t units) {
  lstm_forward_step<float>(gates, c_prev, c, tanh_c, h, batch, units);
}

// dh, dc: the gradients flowing into this step's h and c from later steps (dh without
// this step's output gradient dy); out: dc for the previous step, and the gradient of the
// gates' pre-activations.
template <typename T>
BIRNN_INLINE void lstm_backward_row(const T* __restrict__ gates, const T* __restrict__ tanh_c,
                                    const T* __restrict__ c_prev, const T* __restrict__ dy,
                                    const T* __restrict__ dh, T* __restrict__ dc,
                                    T* __restrict__ d_gates, int64_t units) {
  const int64_t u = units;
#pragma omp simd
  for (int64_t j = 0; j < u; ++j) {
    const T i = gates[j], f = gates[u + j], g = gates[2 * u + j], o = gates[3 * u + j];
    const T t = tanh_c[j];
    const T dh_j = dh[j] + dy[j];
    const T dc_j = dc[j] + dh_j * o * (T(1) - t * t);
    d_gates[j] = dc_j * g * i * (T(1) - i);
    d_gates[u + j] = dc_j * c_prev[j] * f * (T(1) - f);
    d_gates[2 * u + j] = dc_j * i * (T(1) - g * g);
    d_gates[3 * u + j] = dh_j * t * o * (T(1) - o);
    dc[j] = dc_j * f;
  }
}

template <typename T>
BIRNN_INLINE void lstm_backward_step(Rows<const T> gates, Rows<const T> tanh_c, Rows<const T> c_prev,
                        Rows<const T> dy, Rows<const T> dh, Rows<T> dc, Rows<T> d_gates,
                        int64_t batch, int64_t units) {
  for (int64_t b = 0; b < batch; ++b) {
    lstm_backward_row<T>(gates.row(b), tanh_c.row(b), c_prev.row(b), dy.row(b), dh.row(b),
                         dc.row(b), d_gates.row(b), units);
  }
}

BIRNN_VECTOR_CLONES void lstm_backward_step_f32(Rows<const float> gates,
                                                Rows<const float> tanh_c,
                                                Rows<const float> c_prev, Rows<const float> dy,
                                                Rows<const float> dh, Rows<float> dc,
                                                Rows<float> d_gates, int64_t batch,
                                                int64_t units) {
  lstm_backward_step<float>(gates, tanh_c, c_prev, dy, dh, dc, d_gates, batch, units);
}

// ------------------------------------------------------------------ GRU steps

// x_gates: the input projection (with b_ih) in, activations r, z, n out; h_gates: the
// recurrent projection (with b_hh); h_n out: its `n` block (needed by the backward pass).
template <typename T>
BIRNN_INLINE void gru_forward_row(T* __restrict__ x_gates, const T* __restrict__ h_gates,
                                  const T* __restrict__ h_prev, T* __restrict__ h_n,
                                  T* __restrict__ h, int64_t units) {
  const int64_t u = units;
#pragma omp simd
  for (int64_t j = 0; j < u; ++j) {
    const T r = sigmoid(x_gates[j] + h_gates[j]);
    const T z = sigmoid(x_gates[u + j] + h_gates[u + j]);
    const T hn = h_gates[2 * u + j];
    const T n = tanh_(x_gates[2 * u + j] + r * hn);
    x_gates[j] = r;
    x_gates[u + j] = z;
    x_gates[2 * u + j] = n;
    h_n[j] = hn;
    h[j] = (T(1) - z) * n + z * h_prev[j];
  }
}

template <typename T>
BIRNN_INLINE void gru_forward_step(Rows<T> x_gates, Rows<const T> h_gates, Rows<const T> h_prev, Rows<T> h_n,
                      Rows<T> h, int64_t batch, int64_t units) {
  for (int64_t b = 0; b < batch; ++b) {
    gru_forward_row<T>(x_gates.row(b), h_gates.row(b), h_prev.row(b), h_n.row(b), h.row(b),
                       units);
  }
}

BIRNN_VECTOR_CLONES void gru_forward_step_f32(Rows<float> x_gates, Rows<const float> h_gates,
                                              Rows<const float> h_prev, Rows<float> h_n,
                                              Rows<float> h, int64_t batch, int64_t units) {
  gru_forward_step<float>(x_gates, h_gates, h_prev, h_n, h, batch, units);
}

// dh: the gradient into this step's h from later steps; out: the gradients of the input
// projection (dx_gates) and of the recurrent projection (dh_gates), and dh_prev's direct
// part (z * dh; the caller adds dh_gates @ w_hh).
template <typename T>
BIRNN_INLINE void gru_backward_row(const T* __restrict__ gates, const T* __restrict__ h_n,
                                   const T* __restrict__ h_prev, const T* __restrict__ dy,
                                   const T* __restrict__ dh, T* __restrict__ dx_gates,
                                   T* __restrict__ dh_gates, T* __restrict__ dh_prev,
                                   int64_t units) {
  const int64_t u = units;
#pragma omp simd
  for (int64_t j = 0; j < u; ++j) {
    const T r = gates[j], z = gates[u + j], n = gates[2 * u + j];
    const T dh_j = dh[j] + dy[j];
    const T dn = dh_j * (T(1) - z) * (T(1) - n * n);
    const T dz = dh_j * (h_prev[j] - n) * z * (T(1) - z);
    const T dr = dn * h_n[j] * r * (T(1) - r);
    dx_gates[j] = dr;
    dx_gates[u + j] = dz;
    dx_gates[2 * u + j] = dn;
    dh_gates[j] = dr;
    dh_gates[u + j] = dz;
    dh_gates[2 * u + j] = dn * r;
    dh_prev[j] = dh_j * z;
  }
}

template <typename T>
BIRNN_INLINE void gru_backward_step(Rows<const T> gates, Rows<const T> h_n, Rows<const T> h_prev,
                       Rows<const T> dy, Rows<const T> dh, Rows<T> dx_gates, Rows<T> dh_gates,
                       Rows<T> dh_prev, int64_t batch, int64_t units) {
  for (int64_t b = 0; b < batch; ++b) {
    gru_backward_row<T>(gates.row(b), h_n.row(b), h_prev.row(b), dy.row(b), dh.row(b),
                        dx_gates.row(b), dh_gates.row(b), dh_prev.row(b), units);
  }
}

BIRNN_VECTOR_CLONES void gru_backward_step_f32(Rows<const float> gates, Rows<const float> h_n,
                                               Rows<const float> h_prev, Rows<const float> dy,
                                               Rows<const float> dh, Rows<float> dx_gates,
                                               Rows<float> dh_gates, Rows<float> dh_prev,
                                               int64_t batch, int64_t units) {
  gru_backward_step<float>(gates, h_n, h_prev, dy, dh, dx_gates, dh_gates, dh_prev, batch,
                           units);
}

// float32 goes to the vectorized copies, float64 to the plain loops.
void lstm_step_forward(Rows<float> g, Rows<const float> cp, Rows<float> c, Rows<float> tc,
                  Rows<float> h, int64_t batch, int64_t units) {
  lstm_forward_step_f32(g, cp, c, tc, h, batch, units);
}
void lstm_step_forward(Rows<double> g, Rows<const double> cp, Rows<double> c, Rows<double> tc,
                  Rows<double> h, int64_t batch, int64_t units) {
  lstm_forward_step<double>(g, cp, c, tc, h, batch, units);
}
void lstm_step_backward(Rows<const float> g, Rows<const float> tc, Rows<const float> cp,
                   Rows<const float> dy, Rows<const float> dh, Rows<float> dc, Rows<float> dg,
                   int64_t batch, int64_t units) {
  lstm_backward_step_f32(g, tc, cp, dy, dh, dc, dg, batch, units);
}
void lstm_step_backward(Rows<const double> g, Rows<const double> tc, Rows<const double> cp,
                   Rows<const double> dy, Rows<const double> dh, Rows<double> dc,
                   Rows<double> dg, int64_t batch, int64_t units) {
  lstm_backward_step<double>(g, tc, cp, dy, dh, dc, dg, batch, units);
}
void gru_step_forward(Rows<float> xg, Rows<const float> hg, Rows<const float> hp, Rows<float> hn,
                 Rows<float> h, int64_t batch, int64_t units) {
  gru_forward_step_f32(xg, hg, hp, hn, h, batch, units);
}
void gru_step_forward(Rows<double> xg, Rows<const double> hg, Rows<const double> hp,
                 Rows<double> hn, Rows<double> h, int64_t batch, int64_t units) {
  gru_forward_step<double>(xg, hg, hp, hn, h, batch, units);
}
void gru_step_backward(Rows<const float> g, Rows<const float> hn, Rows<const float> hp,
                  Rows<const float> dy, Rows<const float> dh, Rows<float> dxg, Rows<float> dhg,
                  Rows<float> dhp, int64_t batch, int64_t units) {
  gru_backward_step_f32(g, hn, hp, dy, dh, dxg, dhg, dhp, batch, units);
}
void gru_step_backward(Rows<const double> g, Rows<const double> hn, Rows<const double> hp,
                  Rows<const double> dy, Rows<const double> dh, Rows<double> dxg,
                  Rows<double> dhg, Rows<double> dhp, int64_t batch, int64_t units) {
  gru_backward_step<double>(g, hn, hp, dy, dh, dxg, dhg, dhp, batch, units);
}

template <typename T>
Rows<const T> const_rows(const Tensor& t) {
  return {t.data_ptr<T>(), t.stride(0)};
}

// ------------------------------------------------------------------ one direction

// Where one direction is in the sequence: `step` counts in processing order.
struct Walk {
  int64_t time;
  bool reverse;
  int64_t at(int64_t step) const { return reverse ? time - 1 - step : step; }
  int64_t before(int64_t t) const { return reverse ? t + 1 : t - 1; }
  int64_t first() const { return reverse ? time - 1 : 0; }
  int64_t last() const { return reverse ? 0 : time - 1; }
};

// This direction's `(time, batch, units)` block of the outputs, in either layout.
Tensor direction_block(const Tensor& y, bool batch_first, int64_t d, int64_t units) {
  Tensor time_major = batch_first ? y.transpose(0, 1) : y;
  return time_major.narrow(2, d * units, units);
}

// The input projection of every step at once, into `gates` (time, batch, gates * units).
void input_projection(const Tensor& x, const Tensor& w_ih, const Tensor& bias,
                      const Tensor& gates) {
  const int64_t rows = x.size(0) * x.size(1);
  Tensor out = gates.view({rows, w_ih.size(0)});
  at::addmm_out(out, bias, x.reshape({rows, x.size(2)}), w_ih.t());
}

// h at each step's start, time-major (batch, units) per step, as one (time * batch, units)
// matrix lined up with the gate gradients: for the weight gradient in one product.
Tensor previous_outputs(const Tensor& y_d, const Tensor& h0, const Walk& walk) {
  Tensor h_prev = at::empty(y_d.sizes(), y_d.options());
  const int64_t time = walk.time;
  if (time > 1) {
    if (walk.reverse) {
      h_prev.narrow(0, 0, time - 1).copy_(y_d.narrow(0, 1, time - 1));
    } else {
      h_prev.narrow(0, 1, time - 1).copy_(y_d.narrow(0, 0, time - 1));
    }
  }
  h_prev[walk.first()].copy_(h0);
  return h_prev.view({time * y_d.size(1), y_d.size(2)});
}

template <typename T>
void lstm_direction_forward(const Tensor& x, const Tensor& h0, const Tensor& c0,
                            const Tensor& w_ih, const Tensor& w_hh, const Tensor& bias,
                            const Tensor& y_d, const Tensor& gates, const Tensor& c,
                            const Tensor& tanh_c, const Walk& walk, Tensor h_n, Tensor c_n) {
  const int64_t batch = x.size(1), units = h0.size(1);
  input_projection(x, w_ih, bias, gates);
  const Tensor w_hh_t = w_hh.t();
  for (int64_t s = 0; s < walk.time; ++s) {
    const int64_t t = walk.at(s);
    const bool first = s == 0;
    Tensor g = gates[t];
    g.addmm_(first ? h0 : y_d[walk.before(t)], w_hh_t);
    const Tensor c_prev = first ? c0 : c[walk.before(t)];
    lstm_step_forward(rows_of<T>(g), const_rows<T>(c_prev), rows_of<T>(c[t]), rows_of<T>(tanh_c[t]),
                 rows_of<T>(y_d[t]), batch, units);
  }
  h_n.copy_(y_d[walk.last()]);
  c_n.copy_(c[walk.last()]);
}

template <typename T>
void lstm_direction_backward(const Tensor& x, const Tensor& h0, const Tensor& c0,
                             const Tensor& w_ih, const Tensor& w_hh, const Tensor& y_d,
                             const Tensor& gates, const Tensor& c, const Tensor& tanh_c,
                             const Tensor& dy_d, const Tensor& dh_n, const Tensor& dc_n,
                             const Walk& walk, Tensor dx, Tensor dh0, Tensor dc0, Tensor dw_ih,
                             Tensor dw_hh, Tensor d_bias) {
  const int64_t time = walk.time, batch = x.size(1), units = h0.size(1);
  Tensor d_gates = at::empty({time, batch, 4 * units}, x.options());
  Tensor dh = dh_n.clone(at::MemoryFormat::Contiguous);
  Tensor dc = dc_n.clone(at::MemoryFormat::Contiguous);
  for (int64_t s = 0; s < time; ++s) {
    const int64_t t = walk.at(time - 1 - s);
    const Tensor c_prev = t == walk.first() ? c0 : c[walk.before(t)];
    Tensor dg = d_gates[t];
    lstm_step_backward(const_rows<T>(gates[t]), const_rows<T>(tanh_c[t]), const_rows<T>(c_prev),
                  const_rows<T>(dy_d[t]), const_rows<T>(dh), rows_of<T>(dc), rows_of<T>(dg),
                  batch, units);
    at::mm_out(dh, dg, w_hh);
  }
  dh0.copy_(dh);
  dc0.copy_(dc);
  const Tensor flat = d_gates.view({time * batch, 4 * units});
  at::mm_out(dx, flat, w_ih);
  at::mm_out(dw_ih, flat.t(), x.reshape({time * batch, x.size(2)}));
  at::mm_out(dw_hh, flat.t(), previous_outputs(y_d, h0, walk));
  at::sum_out(d_bias, flat, {0});
}

template <typename T>
void gru_direction_forward(const Tensor& x, const Tensor& h0, const Tensor& w_ih,
                           const Tensor& w_hh, const Tensor& b_ih, const Tensor& b_hh,
                           const Tensor& y_d, const Tensor& gates, const Tensor& h_n_block,
                           const Walk& walk, Tensor h_n) {
  const int64_t batch = x.size(1), units = h0.size(1);
  input_projection(x, w_ih, b_ih, gates);
  const Tensor w_hh_t = w_hh.t();
  Tensor h_gates = at::empty({batch, 3 * units}, x.options());
  for (int64_t s = 0; s < walk.time; ++s) {
    const int64_t t = walk.at(s);
    const Tensor h_prev = s == 0 ? h0 : y_d[walk.before(t)];
    at::addmm_out(h_gates, b_hh, h_prev, w_hh_t);
    gru_step_forward(rows_of<T>(gates[t]), const_rows<T>(h_gates), const_rows<T>(h_prev),
                rows_of<T>(h_n_block[t]), rows_of<T>(y_d[t]), batch, units);
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
  Tensor dx_gates = at::empty({time, batch, 3 * units}, x.options());
  Tensor dh_gates = at::empty({time, batch, 3 * units}, x.options());
  Tensor dh = dh_n.clone(at::MemoryFormat::Contiguous);
  Tensor dh_prev = at::empty({batch, units}, x.options());
  for (int64_t s = 0; s < time; ++s) {
    const int64_t t = walk.at(time - 1 - s);
    const Tensor h_prev = t == walk.first() ? h0 : y_d[walk.before(t)];
    Tensor dhg = dh_gates[t];
    gru_step_backward(const_rows<T>(gates[t]), const_rows<T>(h_n_block[t]), const_rows<T>(h_prev),
                 const_rows<T>(dy_d[t]), const_rows<T>(dh), rows_of<T>(dx_gates[t]),
                 rows_of<T>(dhg), rows_of<T>(dh_prev), batch, units);
    at::addmm_out(dh, dh_prev, dhg, w_hh);
  }
  dh0.copy_(dh);
  const Tensor flat_x = dx_gates.view({time * batch, 3 * units});
  const Tensor flat_h = dh_gates.view({time * batch, 3 * units});
  at::mm_out(dx, flat_x, w_ih);
  at::mm_out(dw_ih, flat_x.t(), x.reshape({time * batch, x.size(2)}));
  at::mm_out(dw_hh, flat_h.t(), previous_outputs(y_d, h0, walk));
  at::sum_out(db_ih, flat_x, {0});
  at::sum_out(db_hh, flat_h, {0});
}

// ------------------------------------------------------------------ both directions

// body(d) for each direction: both at once on two threads, or one after the other.
template <typename F>
void each_direction(int64_t directions, bool concurrent, const F& body) {
  if (concurrent && directions == 2) {
    std::exception_ptr failure;
    // The caller's thread-local settings (inference mode: the outputs are inference
    // tensors then, which only code in inference mode may write), as `at::parallel_for`.
    const at::ThreadLocalState caller;
#pragma omp parallel for num_threads(2) schedule(static, 1)
    for (int64_t d = 0; d < 2; ++d) {
      try {
        at::ThreadLocalStateGuard settings(caller);
        at::NoGradGuard no_grad;  // the products here record nothing
        body(d);
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

Tensor new_outputs(const Tensor& x, int64_t directions, int64_t units, bool batch_first) {
  const int64_t time = x.size(0), batch = x.size(1);
  return batch_first ? at::empty({batch, time, directions * units}, x.options())
                     : at::empty({time, batch, directions * units}, x.options());
}

std::vector<Tensor> lstm_forward(const Tensor& x_in, const Tensor& h0_in, const Tensor& c0_in,
                                 const Tensor& w_ih_in, const Tensor& w_hh_in,
                                 const Tensor& bias_in, bool batch_first, bool concurrent) {
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
  Tensor gates = at::empty({directions, time, batch, 4 * units}, options);
  Tensor c = at::empty({directions, time, batch, units}, options);
  Tensor tanh_c = at::empty({directions, time, batch, units}, options);
  Tensor h_n = at::empty({directions, batch, units}, options);
  Tensor c_n = at::empty({directions, batch, units}, options);
  each_direction(directions, concurrent, [&](int64_t d) {
    const Walk walk{time, d == 1};
    const Tensor y_d = direction_block(y, batch_first, d, units);
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "birnn::lstm_forward", [&] {
      lstm_direction_forward<scalar_t>(x, h0[d], c0[d], w_ih[d], w_hh[d], bias[d], y_d, gates[d],
                                       c[d], tanh_c[d], walk, h_n[d], c_n[d]);
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
  Tensor dx = at::empty({directions, time * x.size(1), x.size(2)}, options);
  Tensor dh0 = at::empty(h0.sizes(), options), dc0 = at::empty(c0.sizes(), options);
  Tensor dw_ih = at::empty(w_ih.sizes(), options), dw_hh = at::empty(w_hh.sizes(), options);
  Tensor d_bias = at::empty({directions, 4 * units}, options);
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
  Tensor dx_sum = directions == 2 ? dx[0].add_(dx[1]) : dx[0];
  return {dx_sum.view(x.sizes()), dh0, dc0, dw_ih, dw_hh, d_bias};
}

std::vector<Tensor> gru_forward(const Tensor& x_in, const Tensor& h0_in, const Tensor& w_ih_in,
                                const Tensor& w_hh_in, const Tensor& b_ih_in,
                                const Tensor& b_hh_in, bool batch_first, bool concurrent) {
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
  Tensor gates = at::empty({directions, time, batch, 3 * units}, options);
  Tensor h_n_block = at::empty({directions, time, batch, units}, options);
  Tensor h_n = at::empty({directions, batch, units}, options);
  each_direction(directions, concurrent, [&](int64_t d) {
    const Walk walk{time, d == 1};
    const Tensor y_d = direction_block(y, batch_first, d, units);
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "birnn::gru_forward", [&] {
      gru_direction_forward<scalar_t>(x, h0[d], w_ih[d], w_hh[d], b_ih[d], b_hh[d], y_d,
                                      gates[d], h_n_block[d], walk, h_n[d]);
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
  Tensor dx = at::empty({directions, time * x.size(1), x.size(2)}, options);
  Tensor dh0 = at::empty(h0.sizes(), options);
  Tensor dw_ih = at::empty(w_ih.sizes(), options), dw_hh = at::empty(w_hh.sizes(), options);
  Tensor db_ih = at::empty({directions, 3 * units}, options);
  Tensor db_hh = at::empty({directions, 3 * units}, options);
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
  Tensor dx_sum = directions == 2 ? dx[0].add_(dx[1]) : dx[0];
  return {dx_sum.view(x.sizes()), dh0, dw_ih, dw_hh, db_ih, db_hh};
}

}  // namespace

TORCH_LIBRARY(birnn_native, m) {
  m.def(
      "lstm_forward(Tensor x, Tensor h0, Tensor c0, Tensor w_ih, Tensor w_hh, Tensor bias, "
      "bool batch_first, bool concurrent) -> Tensor[]");
  m.def(
      "lstm_backward(Tensor x, Tensor h0, Tensor c0, Tensor w_ih, Tensor w_hh, Tensor y, "
      "Tensor gates, Tensor c, Tensor tanh_c, Tensor dy, Tensor dh_n, Tensor dc_n, "
      "bool batch_first, bool concurrent) -> Tensor[]");
  m.def(
      "gru_forward(Tensor x, Tensor h0, Tensor w_ih, Tensor w_hh, Tensor b_ih, Tensor b_hh, "
      "bool batch_first, bool concurrent) -> Tensor[]");
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
