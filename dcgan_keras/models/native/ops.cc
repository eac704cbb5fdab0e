// bfloat16 ops for DCGAN training on the CPU (dcgan_keras/models/native_ops.py builds and
// loads them): a training batch norm fused with the ReLU / LeakyReLU after it, the im2col
// and col2im of the 4x4 / stride-2 products computed as matmuls, and a LeakyReLU gradient.
//
// TensorFlow 2.21 runs a DCGAN block's batch norm and activation as two oneDNN / Eigen ops
// and their gradients as two more: 5 passes over the activations forward, 8 backward. Here
// the statistics take one pass and the normalisation + activation one more (2 reads, 1
// write); the gradient recomputes the activation's sign from x and takes 2 passes (2 + 2
// reads, 1 write). Statistics are float32 sums over fixed blocks of rows, shifted by the
// first row (no cancellation), combined in double: the result does not depend on the
// number of threads.
//
// Ops (slope: 1 = no activation, 0 = ReLU, 0 < slope < 1 = LeakyReLU):
//   DcganBatchNorm(x, gamma, beta) -> y, mean, variance (biased); y only if it is used.
//   DcganBatchNormApply(x, mean, variance, gamma, beta) -> y.
//   DcganBatchNormGrad(dy, x, mean, variance, gamma, beta) -> dx, dgamma, dbeta: the
//     gradient of training batch norm + activation, through the batch statistics.
//   DcganIm2Col(x [N, H, W, C]) -> [N, H/2, W/2, 16 C]: the patches of a 4x4 / stride-2 /
//     "same" convolution, columns ordered (kh, kw, c), zeros outside x: one copy, where
//     TensorFlow made a padded copy and then gathered from it.
//   DcganCol2Im(cols [N, h, w, 16 C]) -> [N, 2h, 2w, C]: the col2im of a 4x4 / stride-2 /
//     "same" transposed convolution computed as a matmul (fast_layers.conv_transpose),
//     columns in DcganIm2Col's order: each output value sums its (up to) four overlapping
//     patch entries in float32 and is rounded once; TensorFlow's slices, pads, AddN and
//     transpose for it moved 3-7 GB/s in bfloat16 on that Xeon. The two ops map a patch
//     entry to the same pixel, so each one's gradient is the other.
//   DcganActivationGrad(dy, y) -> dx: the gradient of a LeakyReLU with no batch norm
//     before it, from its output y (dy where y > 0, else bfloat16(slope) * dy): bit for bit
//     TensorFlow's LeakyReluGrad, whose bfloat16 kernel (Eigen) moved ~7 GB/s on a 2-core
//     Sapphire Rapids-class Xeon.
//   DcganKernelGrad(x [N, H, W, C], dy [N, H/2, W/2, C']) -> [4, 4, C, C'] (CPUs with AMX):
//     the kernel gradient of a 4x4 / stride-2 / "same" convolution on AMX tiles, the
//     patches built from x in L2-sized panels instead of a patch matrix in memory.
//   DcganActivationKernelGrad(x, dy, y) -> [4, 4, C, C'] (AMX, C <= 4): the same for a
//     convolution followed by a LeakyReLU, from the activation's output y and gradient dy.
//   DcganConvFewChannels(x [N, H, W, C <= 4], kernel [4, 4, C, C']) -> [N, H/2, W/2, C']
//     (AMX): the 4x4 / stride-2 / "same" convolution of an image's channels, with a
//     LeakyReLU (attr slope, 1: none).
//   DcganMatMul(a, b) -> c (AMX; attrs transpose_a, transpose_b): a bfloat16 matmul on AMX
//     tiles, float32 sums over all of K rounded once, for the matmul path's forward products
//     (D's last convolution, G's first input gradient), where oneDNN's ran at about the
//     2048^3 matmul's rate and this at ~1.3x it, its packing of b included.
//   DcganPaddedKernels(kernel [4, 4, C, C']) -> k [2, 2, 4 C, C'], flipped [2, 2, C', 4 C]
//     (AMX): the kernels of the padded space-to-depth form's 2x2 products, one copy each.
//   DcganToBfloat16(x float32) -> bfloat16 and DcganToFloat(x bfloat16) -> float32: the
//     casts of the float32 kernels to the products' bfloat16 and of their gradients back,
//     bit for bit TensorFlow's Cast, whose float32 -> bfloat16 kernel moved ~5 GB/s there.
//   DcganAdam(var, m, v, grads (bfloat16, N of them), beta1^t, beta2^t, lr, beta1, beta2,
//     epsilon) -> new var, m, v: Adam's update (ApplyAdam's) from the float32 sum of the
//     bfloat16 gradients a float32 variable was cast from, without float32 copies of them.
//   DcganLogit(x bfloat16 [N, K], w float32 [K, 1]) -> float32 [N, 1]: a float32 linear
//     layer with one output on bfloat16 features (D's logit), without a float32 copy of x;
//     DcganLogitInputGrad(dy, w) -> bfloat16 dy w^T and DcganLogitKernelGrad(x, dy) ->
//     float32 x^T dy are its gradients.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#if defined(__AVX512F__) && defined(__AVX512BF16__) && defined(__AVX512BW__) && \
    defined(__AVX512VL__)
#include <immintrin.h>
#define DCGAN_AVX512_BF16 1
#if defined(__AMX_TILE__) && defined(__AMX_BF16__)
#include <sys/syscall.h>
#include <unistd.h>
#define DCGAN_AMX 1
#endif
#endif

#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"

namespace dcgan_keras {
namespace {

using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::OpInputList;

// Rows are split into fixed blocks of at most kBlockRows rows, whatever the number of
// threads: the float32 sums of a block have at most kBlockRows terms, and zeroing and
// combining the blocks' partial sums costs ~1/kBlockRows of the work. (Blocks of 8192
// values, 16 rows at 512 channels, spent ~0.09 ms of a 0.2 ms call at 128x4x4x512 on the
// AMX Xeon on their partial sums; blocks of 65536 values summed up to 1024 rows in float32.)
constexpr int64_t kBlockRows = 256;

inline float load(const uint16_t* p) {
  uint32_t bits = static_cast<uint32_t>(*p) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

inline uint16_t store(float f) {  // round to nearest even, subnormals kept: TensorFlow's Cast
  if (std::isnan(f)) return 0x7FC0;
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof(f));
  return static_cast<uint16_t>((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

inline float bfloat16_rounded(float f) {  // f as the bfloat16 value TensorFlow would use
  const uint16_t bits = store(f);
  return load(&bits);
}

#ifdef DCGAN_AVX512_BF16
// 16 bfloat16 values (their bits) widened to float32.
inline __m512 widen(__m256i h) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

inline __m512 vload(const uint16_t* p) {
  return widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

inline void vstore(uint16_t* p, __m512 v) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), (__m256i)_mm512_cvtneps_pbh(v));
}

// store()'s integer rounding of 16 values (vcvtneps2bf16 flushes subnormals).
inline __m256i vround(__m512 v) {
  const __m512i bits = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(bits, _mm512_add_epi32(
      _mm512_set1_epi32(0x7FFF), lsb)), 16);
  r = _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), _mm512_set1_epi32(0x7FC0));
  return _mm512_cvtepi32_epi16(r);
}

// Software prefetch of what a stream reads kPrefetchBytes later: on the 2-core AMX Xeon VM
// the hardware prefetcher did not keep up with these loops' streams (the batch norm
// gradient at 128x32x32x64 took 3.05 ms a call without it, 2.45 with it in its first pass).
constexpr int64_t kPrefetchBytes = 4096;
template <typename T>
inline void prefetch(const T* p) {
  _mm_prefetch(reinterpret_cast<const char*>(p) + kPrefetchBytes, _MM_HINT_T0);
}

// v where v > 0, else slope * v (slope = 1: v).
inline __m512 vactivate(__m512 v, __m512 test, __m512 slope) {
  __mmask16 positive = _mm512_cmp_ps_mask(test, _mm512_setzero_ps(), _CMP_GT_OQ);
  return _mm512_mask_mul_ps(v, _knot_mask16(positive), v, slope);  // one op
}
#endif

// Views of an [R, C] bfloat16 tensor (NHWC flattened) and its per-channel parameters.
struct Rows {
  int64_t r, c;
  // A function of the shape alone.
  int64_t blocks() const { return (r + kBlockRows - 1) / kBlockRows; }
  int64_t begin(int64_t b) const { return r * b / blocks(); }
};

// Where each pixel of an [N, H, W, C] tensor starts, pixel by pixel in NHWC order: at
// r C (the tensor itself), or in its padded space-to-depth form P(x) [N, H/2 + 1, W/2 + 1,
// 4 C] (`padded`): x padded by one pixel of zeros on each side, each 2 x 2 block of the
// padded pixels one pixel of 4 C values ordered (dh, dw, c). A 4x4 / stride-2 / "same"
// convolution of x is a 2x2 / stride-1 / "valid" one of P(x) (`fast_layers`).
struct PixelWalk {
  int64_t h, w, c;
  bool padded;
  int64_t n = 0, y = 0, x = 0;  // the pixel the walk is at
  PixelWalk(int64_t h, int64_t w, int64_t c, bool padded, int64_t r)
      : h(h), w(w), c(c), padded(padded), n(r / (h * w)), y(r / w % h), x(r % w) {}
  int64_t offset() const {
    if (!padded) return ((n * h + y) * w + x) * c;
    return padded_offset(n, y + 1, x + 1);
  }
  // Pixel (py, px) of image n of x padded by one pixel, in P(x).
  int64_t padded_offset(int64_t image, int64_t py, int64_t px) const {
    return ((image * (h / 2 + 1) + py / 2) * (w / 2 + 1) + px / 2) * 4 * c +
           ((py & 1) * 2 + (px & 1)) * c;
  }
  PixelWalk from(int64_t r) const { return PixelWalk(h, w, c, padded, r); }
  void next() {
    if (++x < w) return;
    x = 0;
    if (++y < h) return;
    y = 0;
    ++n;
  }
};

// The padding of P(x) (`PixelWalk`) for an [N, H, W, C] x: zeros.
void zero_padding(OpKernelContext* ctx, int64_t n, int64_t h, int64_t w, int64_t c,
                  uint16_t* p) {
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
  const PixelWalk at(h, w, c, true, 0);
  tensorflow::Shard(workers->num_threads, workers->workers, n, 4 * (h + w + 2) * c,
                    [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      for (int64_t px = 0; px < w + 2; ++px) {
        std::memset(p + at.padded_offset(i, 0, px), 0, c * 2);
        std::memset(p + at.padded_offset(i, h + 1, px), 0, c * 2);
      }
      for (int64_t py = 1; py <= h; ++py) {
        std::memset(p + at.padded_offset(i, py, 0), 0, c * 2);
        std::memset(p + at.padded_offset(i, py, w + 1), 0, c * 2);
      }
    }
  });
}

const uint16_t* data(const Tensor& t) {
  return reinterpret_cast<const uint16_t*>(t.flat<tensorflow::bfloat16>().data());
}
uint16_t* data(Tensor* t) {
  return reinterpret_cast<uint16_t*>(t->flat<tensorflow::bfloat16>().data());
}

void for_blocks(OpKernelContext* ctx, const Rows& rows, int64_t cost_per_value,
                const std::function<void(int64_t, int64_t, int64_t)>& block) {
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
  const int64_t n = rows.blocks();
  tensorflow::Shard(workers->num_threads, workers->workers, n,
                    (rows.r / n) * rows.c * cost_per_value, [&](int64_t b0, int64_t b1) {
                      // the block's rows computed once: a division per row cost as much
                      // as the row's sums
                      for (int64_t b = b0; b < b1; ++b)
                        block(b, rows.begin(b), rows.begin(b + 1));
                    });
}

// Per-channel sums over the blocks' partial sums, in double.
std::vector<double> combine(const std::vector<float>& partial, int64_t blocks, int64_t c) {
  std::vector<double> total(c, 0.0);
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t j = 0; j < c; ++j) total[j] += partial[b * c + j];
  return total;
}

// mean and biased variance of each channel, x's pixels where `x_at` says.
void statistics(OpKernelContext* ctx, const uint16_t* x, const Rows& rows, float* mean,
                float* variance, const PixelWalk& x_at) {
  const int64_t c = rows.c, n = rows.blocks();
  std::vector<float> shift(c), s1(n * c, 0.f), s2(n * c, 0.f);
  for (int64_t j = 0; j < c; ++j) shift[j] = load(x + x_at.offset() + j);
  for_blocks(ctx, rows, 3, [&](int64_t b, int64_t r0, int64_t r1) {
    float* a1 = &s1[b * c];
    float* a2 = &s2[b * c];
    const float* sh = shift.data();
    int64_t j0 = 0;
#ifdef DCGAN_AVX512_BF16
    // 64 channels at a time down the block's rows, the sums in registers.
    for (; j0 + 64 <= c; j0 += 64) {
      __m512 m1[4], m2[4], s[4];
      for (int k = 0; k < 4; ++k) {
        m1[k] = m2[k] = _mm512_setzero_ps();
        s[k] = _mm512_loadu_ps(sh + j0 + 16 * k);
      }
      PixelWalk at = x_at.from(r0);
      for (int64_t r = r0; r < r1; ++r, at.next()) {
        const uint16_t* row = x + at.offset() + j0;  // (one stream: prefetching it was 5% slower)
        for (int k = 0; k < 4; ++k) {
          __m512 d = _mm512_sub_ps(vload(row + 16 * k), s[k]);
          m1[k] = _mm512_add_ps(m1[k], d);
          m2[k] = _mm512_fmadd_ps(d, d, m2[k]);
        }
      }
      for (int k = 0; k < 4; ++k) {
        _mm512_storeu_ps(a1 + j0 + 16 * k, m1[k]);
        _mm512_storeu_ps(a2 + j0 + 16 * k, m2[k]);
      }
    }
#endif
    PixelWalk at = x_at.from(r0);
    for (int64_t r = r0; r < r1; ++r, at.next()) {
      const uint16_t* row = x + at.offset();
      int64_t j = j0;
#ifdef DCGAN_AVX512_BF16
      for (; j + 16 <= c; j += 16) {
        __m512 d = _mm512_sub_ps(vload(row + j), _mm512_loadu_ps(sh + j));
        _mm512_storeu_ps(a1 + j, _mm512_add_ps(_mm512_loadu_ps(a1 + j), d));
        _mm512_storeu_ps(a2 + j, _mm512_fmadd_ps(d, d, _mm512_loadu_ps(a2 + j)));
      }
#endif
      for (; j < c; ++j) {
        float d = load(row + j) - sh[j];
        a1[j] += d;
        a2[j] += d * d;
      }
    }
  });
  std::vector<double> t1 = combine(s1, n, c), t2 = combine(s2, n, c);
  for (int64_t j = 0; j < c; ++j) {
    double m = t1[j] / rows.r;
    mean[j] = static_cast<float>(shift[j] + m);
    variance[j] = static_cast<float>(std::max(t2[j] / rows.r - m * m, 0.0));
  }
}

// y = activation(x * scale + offset), the normalisation folded into one scale and offset.
struct Affine {
  std::vector<float> scale, offset, rstd;
  Affine(const float* mean, const float* variance, const float* gamma, const float* beta,
         int64_t c, float epsilon)
      : scale(c), offset(c), rstd(c) {
    for (int64_t j = 0; j < c; ++j) {
      double r = 1.0 / std::sqrt(static_cast<double>(variance[j]) + epsilon);
      rstd[j] = static_cast<float>(r);
      scale[j] = static_cast<float>(gamma[j] * r);
      offset[j] = static_cast<float>(beta[j] - mean[j] * gamma[j] * r);
    }
  }
};

// y = activation(x scale + offset), x's and y's pixels where `x_at` and `y_at` say (NHWC,
// or P(x): `PixelWalk`).
void apply(OpKernelContext* ctx, const uint16_t* x, const Rows& rows, const Affine& f,
           float slope, uint16_t* y, const PixelWalk& x_at, const PixelWalk& y_at) {
  const int64_t c = rows.c;
  for_blocks(ctx, rows, 4, [&](int64_t b, int64_t r0, int64_t r1) {
    const float* sc = f.scale.data();
    const float* of = f.offset.data();
    PixelWalk in_at = x_at.from(r0), out_at = y_at.from(r0);
    for (int64_t r = r0; r < r1; ++r, in_at.next(), out_at.next()) {
      const uint16_t* in = x + in_at.offset();
      uint16_t* out = y + out_at.offset();
      int64_t j = 0;
#ifdef DCGAN_AVX512_BF16
      const __m512 vs = _mm512_set1_ps(slope);
      for (; j + 16 <= c; j += 16) {
        prefetch(in + j);
        __m512 v = _mm512_fmadd_ps(vload(in + j), _mm512_loadu_ps(sc + j),
                                   _mm512_loadu_ps(of + j));
        vstore(out + j, vactivate(v, v, vs));
      }
#endif
      for (; j < c; ++j) {
        float v = load(in + j) * sc[j] + of[j];
        out[j] = store(v > 0.f ? v : slope * v);
      }
    }
  });
}

bool fail(OpKernelContext* ctx, const std::string& message) {
  ctx->SetStatus(tensorflow::errors::InvalidArgument(message));
  return false;
}

// x (its logical shape) is [..., C] and not empty, and the inputs listed are vectors of C.
bool check_inputs(OpKernelContext* ctx, const TensorShape& x,
                  std::initializer_list<int> vectors, Rows* rows) {
  if (x.dims() < 2 || x.num_elements() == 0)
    return fail(ctx, "x must be a non-empty [..., channels] tensor, got shape " +
                         x.DebugString());
  rows->c = x.dim_size(x.dims() - 1);
  rows->r = x.num_elements() / rows->c;
  for (int i : vectors) {
    const Tensor& v = ctx->input(i);
    if (v.dims() != 1 || v.dim_size(0) != rows->c)
      return fail(ctx, "input " + std::to_string(i) + " must be a vector of " +
                           std::to_string(rows->c) + " channels, got shape " +
                           v.shape().DebugString());
  }
  return true;
}

// A gradient and the tensor it is taken for have one shape.
bool same_shape(OpKernelContext* ctx, const Tensor& a, const char* a_name, const Tensor& b,
                const char* b_name) {
  if (a.shape() == b.shape()) return true;
  return fail(ctx, std::string(a_name) + " and " + b_name + " must have one shape, got " +
                       a.shape().DebugString() + " and " + b.shape().DebugString());
}

const float* vec(OpKernelContext* ctx, int i) { return ctx->input(i).flat<float>().data(); }

// x is [N, H, W, C] with H and W even, as P(x) needs (`PixelWalk`).
bool check_padded(OpKernelContext* ctx, const TensorShape& x) {
  if (x.dims() == 4 && x.dim_size(1) % 2 == 0 && x.dim_size(2) % 2 == 0) return true;
  return fail(ctx, "the padded space-to-depth form needs x [N, H, W, C] with H and W even, "
                   "got shape " + x.DebugString());
}

// P(x)'s shape for an [N, H, W, C] x.
TensorShape padded_shape(const TensorShape& x) {
  return TensorShape({x.dim_size(0), x.dim_size(1) / 2 + 1, x.dim_size(2) / 2 + 1,
                      4 * x.dim_size(3)});
}

// The shape of the x a tensor is: its own, or with `padded` that of the x it is P(x) of.
bool logical_shape(OpKernelContext* ctx, const Tensor& t, bool padded, TensorShape* x) {
  if (!padded) {
    *x = t.shape();
    return true;
  }
  if (t.dims() != 4 || t.dim_size(1) < 2 || t.dim_size(2) < 2 || t.dim_size(3) % 4)
    return fail(ctx, "a padded space-to-depth form [N, H/2 + 1, W/2 + 1, 4 C] was expected, "
                     "got shape " + t.shape().DebugString());
  *x = TensorShape({t.dim_size(0), 2 * (t.dim_size(1) - 1), 2 * (t.dim_size(2) - 1),
                    t.dim_size(3) / 4});
  return true;
}

// The pixels of an x of this shape in x itself, or in P(x) with `padded`.
PixelWalk pixels_of(const TensorShape& x, bool padded) {
  const int64_t c = x.dim_size(x.dims() - 1), r = x.num_elements() / c;
  return padded ? PixelWalk(x.dim_size(1), x.dim_size(2), c, true, 0)
                : PixelWalk(1, r, c, false, 0);
}

// The batch norm ops' attributes: epsilon, the activation's slope, and which of the
// tensors are given in the padded space-to-depth form P (`PixelWalk`): x (the batch
// norm's input, and its gradient dx) and y (the activation's output, and its gradient dy).
class BatchNormKernel : public OpKernel {
 public:
  explicit BatchNormKernel(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("epsilon", &epsilon_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("slope", &slope_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("padded_x", &padded_x_));
    if (ctx->HasAttr("padded_y")) OP_REQUIRES_OK(ctx, ctx->GetAttr("padded_y", &padded_y_));
  }

 protected:
  // x's logical shape into *shape, checked with the vectors listed into *rows.
  bool check(OpKernelContext* ctx, const Tensor& x_t, std::initializer_list<int> vectors,
             TensorShape* shape, Rows* rows) {
    return logical_shape(ctx, x_t, padded_x_, shape) && check_inputs(ctx, *shape, vectors, rows) &&
           (!(padded_x_ || padded_y_) || check_padded(ctx, *shape));
  }

  float epsilon_, slope_;
  bool padded_x_ = false, padded_y_ = false;
};

class BatchNormOp : public BatchNormKernel {
 public:
  using BatchNormKernel::BatchNormKernel;

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x_t = ctx->input(0);
    TensorShape x;
    Rows rows;
    if (!check(ctx, x_t, {1, 2}, &x, &rows)) return;
    Tensor *mean, *variance;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({rows.c}), &mean));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({rows.c}), &variance));
    float* m = mean->flat<float>().data();
    float* v = variance->flat<float>().data();
    statistics(ctx, data(x_t), rows, m, v, pixels_of(x, padded_x_));
    if (!ctx->output_required(0)) return;  // an activation after it applies the statistics
    Tensor* y;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x, &y));
    apply(ctx, data(x_t), rows, Affine(m, v, vec(ctx, 1), vec(ctx, 2), rows.c, epsilon_),
          slope_, data(y), pixels_of(x, padded_x_), pixels_of(x, false));
  }
};

class BatchNormApplyOp : public BatchNormKernel {
 public:
  using BatchNormKernel::BatchNormKernel;

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x_t = ctx->input(0);
    TensorShape x;
    Rows rows;
    if (!check(ctx, x_t, {1, 2, 3, 4}, &x, &rows)) return;
    Tensor* y;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, padded_y_ ? padded_shape(x) : x, &y));
    apply(ctx, data(x_t), rows,
          Affine(vec(ctx, 1), vec(ctx, 2), vec(ctx, 3), vec(ctx, 4), rows.c, epsilon_),
          slope_, data(y), pixels_of(x, padded_x_), pixels_of(x, padded_y_));
    if (padded_y_) zero_padding(ctx, x.dim_size(0), x.dim_size(1), x.dim_size(2), rows.c, data(y));
  }
};

// dz = dy * activation'(z) at one value (z = x scale + offset, the normalised x).
inline float grad(float x, const uint16_t* dy, float scale, float offset, float slope) {
  float z = x * scale + offset;
  float g = load(dy);
  return z > 0.f ? g : slope * g;
}

#ifdef DCGAN_AVX512_BF16
// The same for 16 channels.
inline __m512 vgrad(__m512 x, const uint16_t* dy, const float* scale, const float* offset,
                    __m512 slope) {
  __m512 z = _mm512_fmadd_ps(x, _mm512_loadu_ps(scale), _mm512_loadu_ps(offset));
  return vactivate(vload(dy), z, slope);
}
#endif

// dy is the gradient of the op's y, in its form (P(x)'s shape with padded_y: its padding's
// gradient is not read); dx is x's, in x's form (with padded_x, P(x) with zeros on the
// padding, which a convolution of P(x) reads as its padding).
class BatchNormGradOp : public BatchNormKernel {
 public:
  using BatchNormKernel::BatchNormKernel;

  void Compute(OpKernelContext* ctx) override {
    const Tensor& dy_t = ctx->input(0);
    const Tensor& x_t = ctx->input(1);
    TensorShape xs;
    Rows rows;
    if (!check(ctx, x_t, {2, 3, 4, 5}, &xs, &rows)) return;
    const TensorShape dy_shape = padded_y_ ? padded_shape(xs) : xs;
    if (dy_t.shape() != dy_shape) {
      fail(ctx, "dy must have the shape of the op's y, " + dy_shape.DebugString() + ", got " +
                    dy_t.shape().DebugString());
      return;
    }
    const PixelWalk dy_at = pixels_of(xs, padded_y_), x_at = pixels_of(xs, padded_x_);
    const int64_t c = rows.c, n = rows.blocks();
    const float *mean = vec(ctx, 2), *gamma = vec(ctx, 4);
    const Affine f(mean, vec(ctx, 3), gamma, vec(ctx, 5), c, epsilon_);
    const uint16_t *x = data(x_t), *dy = data(dy_t);
    const float slope = slope_;

    // dz = dy * activation'(z), z the normalised x: its sum and its sum against x - mean.
    std::vector<float> s1(n * c, 0.f), s2(n * c, 0.f);
    for_blocks(ctx, rows, 6, [&](int64_t b, int64_t r0, int64_t r1) {
      float* a1 = &s1[b * c];
      float* a2 = &s2[b * c];
      const float *sc = f.scale.data(), *of = f.offset.data();
      int64_t j0 = 0;
#ifdef DCGAN_AVX512_BF16
      // 64 channels at a time down the block's rows, the sums in registers.
      for (; j0 + 64 <= c; j0 += 64) {
        const __m512 vs = _mm512_set1_ps(slope);
        __m512 m1[4], m2[4];
        for (int k = 0; k < 4; ++k) m1[k] = m2[k] = _mm512_setzero_ps();
        PixelWalk at = dy_at.from(r0), xat = x_at.from(r0);
        for (int64_t r = r0; r < r1; ++r, at.next(), xat.next()) {
          const uint16_t *xr = x + xat.offset() + j0, *gr = dy + at.offset() + j0;
          prefetch(xr);
          prefetch(xr + 32);
          prefetch(gr);
          prefetch(gr + 32);
          for (int k = 0; k < 4; ++k) {
            const int64_t j = j0 + 16 * k;
            __m512 xv = vload(xr + 16 * k);
            __m512 g = vgrad(xv, gr + 16 * k, sc + j, of + j, vs);
            m1[k] = _mm512_add_ps(m1[k], g);
            m2[k] = _mm512_fmadd_ps(g, _mm512_sub_ps(xv, _mm512_loadu_ps(mean + j)), m2[k]);
          }
        }
        for (int k = 0; k < 4; ++k) {
          _mm512_storeu_ps(a1 + j0 + 16 * k, m1[k]);
          _mm512_storeu_ps(a2 + j0 + 16 * k, m2[k]);
        }
      }
#endif
      PixelWalk at = dy_at.from(r0), xat = x_at.from(r0);
      for (int64_t r = r0; r < r1; ++r, at.next(), xat.next()) {
        const uint16_t *xr = x + xat.offset(), *gr = dy + at.offset();
        int64_t j = j0;
#ifdef DCGAN_AVX512_BF16
        const __m512 vs = _mm512_set1_ps(slope);
        for (; j + 16 <= c; j += 16) {
          prefetch(xr + j);
          prefetch(gr + j);
          __m512 xv = vload(xr + j);
          __m512 g = vgrad(xv, gr + j, sc + j, of + j, vs);
          _mm512_storeu_ps(a1 + j, _mm512_add_ps(_mm512_loadu_ps(a1 + j), g));
          _mm512_storeu_ps(a2 + j, _mm512_fmadd_ps(g, _mm512_sub_ps(xv, _mm512_loadu_ps(mean + j)),
                                                   _mm512_loadu_ps(a2 + j)));
        }
#endif
        for (; j < c; ++j) {
          float xv = load(xr + j);
          float g = grad(xv, gr + j, sc[j], of[j], slope);
          a1[j] += g;
          a2[j] += g * (xv - mean[j]);
        }
      }
    });
    std::vector<double> t1 = combine(s1, n, c), t2 = combine(s2, n, c);
    Tensor *dx_t, *dgamma_t, *dbeta_t;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x_t.shape(), &dx_t));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({c}), &dgamma_t));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, TensorShape({c}), &dbeta_t));
    float* dgamma = dgamma_t->flat<float>().data();
    float* dbeta = dbeta_t->flat<float>().data();
    // dx = gamma rstd (dz - mean(dz) - xhat mean(dz xhat)) = k1 dz + k2 x + k3.
    std::vector<float> k1(c), k2(c), k3(c);
    for (int64_t j = 0; j < c; ++j) {
      double r = f.rstd[j], g = gamma[j];
      double sum_dz = t1[j], sum_dz_xhat = t2[j] * r;
      dbeta[j] = static_cast<float>(sum_dz);
      dgamma[j] = static_cast<float>(sum_dz_xhat);
      k1[j] = static_cast<float>(g * r);
      k2[j] = static_cast<float>(-g * r * r * sum_dz_xhat / rows.r);
      k3[j] = static_cast<float>(-g * r * sum_dz / rows.r
                                 + g * r * r * sum_dz_xhat * mean[j] / rows.r);
    }
    uint16_t* dx = data(dx_t);
    for_blocks(ctx, rows, 6, [&](int64_t b, int64_t r0, int64_t r1) {
      const float *sc = f.scale.data(), *of = f.offset.data();
      const float *q1 = k1.data(), *q2 = k2.data(), *q3 = k3.data();
      PixelWalk at = dy_at.from(r0), xat = x_at.from(r0);
      for (int64_t r = r0; r < r1; ++r, at.next(), xat.next()) {
        const uint16_t *xr = x + xat.offset(), *gr = dy + at.offset();
        uint16_t* out = dx + xat.offset();
        int64_t j = 0;
#ifdef DCGAN_AVX512_BF16
        const __m512 vs = _mm512_set1_ps(slope);
        for (; j + 16 <= c; j += 16) {
          prefetch(xr + j);
          prefetch(gr + j);
          __m512 xv = vload(xr + j);
          __m512 g = vgrad(xv, gr + j, sc + j, of + j, vs);
          __m512 o = _mm512_fmadd_ps(_mm512_loadu_ps(q1 + j), g,
                                     _mm512_fmadd_ps(_mm512_loadu_ps(q2 + j), xv,
                                                     _mm512_loadu_ps(q3 + j)));
          vstore(out + j, o);
        }
#endif
        for (; j < c; ++j) {
          float xv = load(xr + j);
          float g = grad(xv, gr + j, sc[j], of[j], slope);
          out[j] = store(q1[j] * g + q2[j] * xv + q3[j]);
        }
      }
    });
    if (padded_x_) zero_padding(ctx, xs.dim_size(0), xs.dim_size(1), xs.dim_size(2), c, dx);
  }
};

// The values t0 <= t < t1 of one padded pixel pair (2 C values: pixels 2q, 2q + 1) of a
// col2im output row, into out[t - t0]: the float32 sum of the entries of `terms` (the
// patch entries that land on the pair, in the order (a, e) = (0, 0), (0, 1), (1, 0),
// (1, 1)), rounded once. Summed in registers: no buffer is read back.
inline void sum_pair(const uint16_t* const* terms, int count, int64_t t0, int64_t t1,
                     uint16_t* out) {
  int64_t t = t0;
#ifdef DCGAN_AVX512_BF16
  for (; t < t1; t += 16) {
    const int64_t n = std::min<int64_t>(16, t1 - t);
    const __mmask16 m = static_cast<__mmask16>(n == 16 ? 0xFFFFu : (1u << n) - 1);
    __m512 sum = _mm512_setzero_ps();
    for (int k = 0; k < count; ++k) {
      prefetch(terms[k] + t);  // 3 channels: 1.6 -> 1.0 ms a call at 128x64x64x3
      sum = _mm512_add_ps(sum, widen(_mm256_maskz_loadu_epi16(m, terms[k] + t)));
    }
    _mm256_mask_storeu_epi16(out + t - t0, m, (__m256i)_mm512_cvtneps_pbh(sum));
  }
#endif
  for (; t < t1; ++t) {
    float sum = 0.f;
    for (int k = 0; k < count; ++k) sum += load(terms[k] + t);
    out[t - t0] = store(sum);
  }
}

// cols[n, r, s, (kh, kw, ch)] (im2col's order) is the patch entry of the padded output
// pixel (2r + kh, 2s + kw); the output drops the one-pixel "same" border.
class Col2ImOp : public OpKernel {
 public:
  explicit Col2ImOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& cols_t = ctx->input(0);
    if (cols_t.dims() != 4 || cols_t.dim_size(3) % 16 || cols_t.NumElements() == 0) {
      fail(ctx, "cols must be a non-empty [N, h, w, 16 * channels] tensor, got shape " +
                    cols_t.shape().DebugString());
      return;
    }
    const int64_t n = cols_t.dim_size(0), h = cols_t.dim_size(1), w = cols_t.dim_size(2);
    const int64_t c = cols_t.dim_size(3) / 16;
    Tensor* out_t;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({n, 2 * h, 2 * w, c}), &out_t));
    const uint16_t* cols = data(cols_t);
    uint16_t* out = data(out_t);
    auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
    // One task per output row (n, y): each value is written by one task, so any split
    // gives the same values. The padded row y + 1 = 2p + dh is covered by the patch rows
    // r = p - a (kh = 2a + dh); its pixel pair q (pixels 2q + dw) by patch q's kw = dw
    // (e = 0) and patch q - 1's kw = 2 + dw (e = 1): 2 C contiguous entries each.
    tensorflow::Shard(workers->num_threads, workers->workers, n * 2 * h, 2 * w * c * 10,
                      [&](int64_t r0, int64_t r1) {
      for (int64_t row = r0; row < r1; ++row) {
        const int64_t b = row / (2 * h), y = row % (2 * h);
        const int64_t p = (y + 1) / 2, dh = (y + 1) % 2;
        const uint16_t* base[2];
        int rows_in = 0;
        for (int64_t a = 0; a < 2; ++a) {
          const int64_t r = p - a;
          if (r >= 0 && r < h)
            base[rows_in++] = cols + (b * h + r) * w * 16 * c + (2 * a + dh) * 4 * c;
        }
        uint16_t* o = out + row * 2 * w * c;
        for (int64_t q = 0; q <= w; ++q) {
          const uint16_t* terms[4];
          int count = 0;
          for (int i = 0; i < rows_in; ++i) {
            if (q < w) terms[count++] = base[i] + q * 16 * c;
            if (q > 0) terms[count++] = base[i] + (q - 1) * 16 * c + 2 * c;
          }
          // the pair's first pixel is the border at q = 0, its second at q = w
          const int64_t t0 = q == 0 ? c : 0, t1 = q == w ? c : 2 * c;
          sum_pair(terms, count, t0, t1, o + (2 * q - 1) * c + t0);
        }
      }
    });
  }
};

// The patches [16 C] of output pixels p0 ... p1 - 1 (p = (b h + i) w + j) of a 4x4 /
// stride-2 / "same" convolution of x [N, 2h, 2w, C], (kh, kw, c) in order, zeros outside x.
void patches(const uint16_t* x, int64_t p0, int64_t p1, int64_t h, int64_t w, int64_t c,
             uint16_t* o) {
  const int64_t hh = 2 * h, ww = 2 * w;
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t b = p / (h * w), i = p / w % h, j = p % w;
    for (int64_t kh = 0; kh < 4; ++kh) {
      const int64_t y = 2 * i + kh - 1, x0 = 2 * j - 1;
      if (y >= 0 && y < hh && x0 >= 0 && x0 + 4 <= ww) {  // the 4 pixels in one copy
        std::memcpy(o, x + ((b * hh + y) * ww + x0) * c, 4 * c * sizeof(uint16_t));
        o += 4 * c;
        continue;
      }
      for (int64_t kw = 0; kw < 4; ++kw, o += c) {
        const int64_t xx = 2 * j + kw - 1;
        if (y < 0 || y >= hh || xx < 0 || xx >= ww)
          std::memset(o, 0, c * sizeof(uint16_t));
        else
          std::memcpy(o, x + ((b * hh + y) * ww + xx) * c, c * sizeof(uint16_t));
      }
    }
  }
}

class Im2ColOp : public OpKernel {
 public:
  explicit Im2ColOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x_t = ctx->input(0);
    if (x_t.dims() != 4 || x_t.dim_size(1) % 2 || x_t.dim_size(2) % 2 ||
        x_t.NumElements() == 0) {
      fail(ctx, "x must be a non-empty [N, H, W, channels] tensor with even H and W, got "
                "shape " + x_t.shape().DebugString());
      return;
    }
    const int64_t n = x_t.dim_size(0), hh = x_t.dim_size(1), ww = x_t.dim_size(2);
    const int64_t c = x_t.dim_size(3), h = hh / 2, w = ww / 2;
    Tensor* out_t;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({n, h, w, 16 * c}), &out_t));
    const uint16_t* x = data(x_t);
    uint16_t* out = data(out_t);
    auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
    // One task per patch row (n, i); a pure copy.
    tensorflow::Shard(workers->num_threads, workers->workers, n * h, w * 16 * c * 2,
                      [&](int64_t r0, int64_t r1) {
      for (int64_t row = r0; row < r1; ++row)
        patches(x, row * w, (row + 1) * w, h, w, c, out + row * w * 16 * c);
    });
  }
};

#ifdef DCGAN_AMX
// The kernel gradient of a 4x4 / stride-2 / "same" convolution on AMX, without patches in
// memory. TensorFlow's paths read 16 C patch values per output pixel: oneDNN's
// Conv2DBackpropFilter ran at ~900 GFLOP/s at 32x32x64 -> 16x16x128 and ~450 at 16x16x128
// -> 8x8x256 on the 2-core AMX Xeon, im2col + matmul at ~750 and ~1200 with a 67 / 34 MB
// patch matrix written and read back. Here dW^T [C', 16 C] = dy^T [C', K] x patches
// [K, 16 C] (K = N h w output pixels) in AMX tiles: dy is transposed once; the patches are
// built from x in L2-sized panels (whole images of ~kPanelPixels output pixels x
// kPanelColumns, in the pairs-of-rows layout AMX's B operand takes) and used for every row
// of dy^T. The sum runs over two fixed halves of the images, each in a fixed order, float32
// in the tiles, and is rounded once: the result does not depend on the number of threads.
constexpr int64_t kPanelPixels = 512, kPanelColumns = 256;
// The kernel gradient's loads waited on memory: its panel's building prefetches what the
// next output row will read, and dy's transpose its next block. With that and the panel
// built a run (one output row, one column group) at a time, a call took 6.5-6.8 -> 5.7-6.3
// ms at 32x32x64 -> 16x16x128, 5.9-6.0 -> 5.0-5.6 at 16x16x128 -> 8x8x256 (P(x)) and
// 6.8-7.2 -> 6.0-6.7 at 8x8x256 -> 4x4x512 on the AMX Xeon VM (batch 128, inputs rotated).
inline void prefetch_ahead(const uint16_t* p) {
  _mm_prefetch(reinterpret_cast<const char*>(p), _MM_HINT_T0);
}
constexpr int64_t kFewChannels = 4;  // up to this, x has an image's channels

// A zeroed buffer of n values whose first value starts a cache line, for the operands of
// tile loads: a std::vector of this size comes from mmap 16 bytes into a page, and tile
// loads that straddle cache lines made the kernel gradient's products ~1.3x slower on the
// AMX Xeon VM (7.9-8.1 -> 6.3-7.2 ms a call at 16x16x128 -> 8x8x256 with its panel aligned).
template <typename T>
class AlignedBuffer {
 public:
  explicit AlignedBuffer(int64_t n)
      : bytes_((std::max<int64_t>(n, 1) * sizeof(T) + 63) / 64 * 64),
        data_(static_cast<T*>(std::aligned_alloc(64, bytes_))) {
    std::memset(data_, 0, bytes_);
  }
  ~AlignedBuffer() { std::free(data_); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  T* data() { return data_; }
  T& operator[](int64_t i) { return data_[i]; }

 private:
  size_t bytes_;
  T* data_;
};

struct TileConfig {
  uint8_t palette, start_row, reserved[14];
  uint16_t bytes_per_row[16];
  uint8_t rows[16];
};

bool amx_allowed() {  // Linux hands AMX's tile state to a process that asks for it
  static const bool allowed = syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */,
                                      18 /* XFEATURE_XTILEDATA */) == 0;
  return allowed;
}

void configure_tiles() {  // 8 tiles of 16 rows x 64 bytes: 4 sums, 2 of A, 2 of B
  TileConfig config;
  std::memset(&config, 0, sizeof(config));
  config.palette = 1;
  for (int t = 0; t < 8; ++t) {
    config.bytes_per_row[t] = 64;
    config.rows[t] = 16;
  }
  _tile_loadconfig(&config);
}

// _mm512_permutex2var_epi16 indices that interleave two rows' values 0-15 (lo) and 16-31
// (hi) in pairs: the rows of AMX's B operand from two pixels' (or rows') values.
inline void pair_indices(__m512i* lo, __m512i* hi) {
  alignas(64) uint16_t first[32], second[32];
  for (int j = 0; j < 16; ++j) {
    first[2 * j] = j, first[2 * j + 1] = 32 + j;
    second[2 * j] = 16 + j, second[2 * j + 1] = 48 + j;
  }
  *lo = _mm512_load_si512(first);
  *hi = _mm512_load_si512(second);
}

// A 2 x 2 block of 16 x 16 float32 sums in tiles 0-3: rows c0 and c1, the next 16 columns
// 256 values on (1 KB tiles); zeroed for the block's first product, else loaded.
inline void load_sums(float* c0, float* c1, bool zero) {
  if (zero) {
    _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
    return;
  }
  _tile_loadd(0, c0, 64);
  _tile_loadd(1, c0 + 256, 64);
  _tile_loadd(2, c1, 64);
  _tile_loadd(3, c1 + 256, 64);
}

inline void store_sums(float* c0, float* c1) {
  _tile_stored(0, c0, 64);
  _tile_stored(1, c0 + 256, 64);
  _tile_stored(2, c1, 64);
  _tile_stored(3, c1 + 256, 64);
}

// The block's sums += A (16 rows at a0, 16 at a1, `stride` values apart; each step's A
// tile `a_step` values on) x B (16 columns at b0, 16 at b1, tiles 1 KB in a row), over
// `steps` steps of 32 products.
inline void multiply_rows(const uint16_t* a0, const uint16_t* a1, int64_t stride,
                          int64_t a_step, const uint16_t* b0, const uint16_t* b1,
                          int64_t steps) {
  for (int64_t s = 0; s < steps; ++s) {
    _tile_loadd(4, a0 + s * a_step, stride * 2);
    _tile_loadd(5, a1 + s * a_step, stride * 2);
    _tile_loadd(6, b0 + s * 512, 64);
    _tile_loadd(7, b1 + s * 512, 64);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
}

// The same with A's tiles 1 KB in a row too (A laid out as tiles).
inline void multiply_tiles(const uint16_t* a0, const uint16_t* a1, const uint16_t* b0,
                           const uint16_t* b1, int64_t steps) {
  multiply_rows(a0, a1, 32, 512, b0, b1, steps);
}

// The same with A read where it lies: rows of a matrix whose K runs along the row,
// `stride` values apart, each step 32 values on.
inline void multiply_along(const uint16_t* a0, const uint16_t* a1, int64_t stride,
                           const uint16_t* b0, const uint16_t* b1, int64_t steps) {
  multiply_rows(a0, a1, stride, 32, b0, b1, steps);
}

// The block's sums as sums [32 rows][32 columns] of float32 (rows 0-15 from tiles 0 and 1,
// 16-31 from tiles 2 and 3).
inline void store_block(float* sums) {
  _tile_stored(0, sums, 128);
  _tile_stored(1, sums + 16, 128);
  _tile_stored(2, sums + 512, 128);
  _tile_stored(3, sums + 528, 128);
}

// 32 float32 sums (64-byte aligned) as 32 bfloat16 values, each rounded once.
inline __m512i rounded32(const float* v) {
  return (__m512i)_mm512_cvtne2ps_pbh(_mm512_load_ps(v + 16), _mm512_load_ps(v));
}

// 64 / sizeof(Lane) rows of as many 16- or 32-bit lanes transposed in registers (rounds of
// block swaps; 32-bit lanes move pairs of bfloat16 values as one).
template <typename Lane>
inline void transpose_lanes(__m512i* r) {
  constexpr int n = 64 / sizeof(Lane);
  for (int d = n / 2; d >= 1; d >>= 1) {
    alignas(64) Lane low[n], high[n];
    for (int j = 0; j < n; ++j) {
      low[j] = (j & d) ? n + j - d : j;
      high[j] = (j & d) ? n + j : j + d;
    }
    const __m512i lo = _mm512_load_si512(low), hi = _mm512_load_si512(high);
    for (int i = 0; i < n; ++i) {
      if (i & d) continue;
      const __m512i a = r[i], b = r[i + d];
      if constexpr (sizeof(Lane) == 2) {
        r[i] = _mm512_permutex2var_epi16(a, lo, b);
        r[i + d] = _mm512_permutex2var_epi16(a, hi, b);
      } else {
        r[i] = _mm512_permutex2var_epi32(a, lo, b);
        r[i + d] = _mm512_permutex2var_epi32(a, hi, b);
      }
    }
  }
}

// 32 rows of 32 16-bit values transposed in registers.
inline void transpose32(__m512i r[32]) { transpose_lanes<uint16_t>(r); }

// `count` bfloat16 matrices [rows, cols] (the i-th at source(i)) transposed into dst, one
// [cols, rows] after another, in 32 x 32 blocks on the op's threads (rows and cols whole
// multiples of 32).
template <typename Source>
void transpose_matrices(OpKernelContext* ctx, int64_t count, int64_t rows, int64_t cols,
                        const Source& source, uint16_t* dst) {
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
  const int64_t per_matrix = (rows / 32) * (cols / 32);
  tensorflow::Shard(workers->num_threads, workers->workers, count * per_matrix, 32 * 32 * 4,
                    [&](int64_t b0, int64_t b1) {
    __m512i r[32];
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t at = blk / per_matrix, rest = blk % per_matrix;
      const int64_t p = (rest / (cols / 32)) * 32, q = (rest % (cols / 32)) * 32;
      const uint16_t* src = source(at);
      uint16_t* out = dst + at * rows * cols;
      for (int i = 0; i < 32; ++i) r[i] = _mm512_loadu_si512(src + (p + i) * cols + q);
      transpose32(r);
      for (int i = 0; i < 32; ++i) _mm512_storeu_si512(out + (q + i) * rows + p, r[i]);
    }
  });
}

// The kernel gradient where x has an image's few channels (D's first layer, G's output
// layer): dW [16 C, C'] = patches^T [16 C, K] x dy [K, C'], the 16 C patch rows the A
// operand (padded to whole pairs of tiles with zeros), dy the B one. Patches come from a
// copy of each image split by channel and column parity (each patch row is then w
// contiguous values of it), dy's pixel pairs are interleaved as they are read: nothing as
// large as dy is transposed or written (TensorFlow's oneDNN kernel gradient ran at ~0.15
// of the peak here). Sums over the two halves of the images, as the other case.
#ifdef DCGAN_AVX512_BF16
// 32 bfloat16 values of a LeakyReLU's gradient from its output y: DcganActivationGrad's.
inline __m512i activation_grad32(__m512i dy, __m512i y, __m512 slope) {
  const __m256i lo = (__m256i)_mm512_cvtneps_pbh(
      vactivate(widen(_mm512_castsi512_si256(dy)), widen(_mm512_castsi512_si256(y)), slope));
  const __m256i hi = (__m256i)_mm512_cvtneps_pbh(vactivate(
      widen(_mm512_extracti64x4_epi64(dy, 1)), widen(_mm512_extracti64x4_epi64(y, 1)), slope));
  return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}
#endif

// The few-channel kernel gradients' float32 sums: [2 halves of the batch][values], the
// second zeroed when it has no images; nullptr (and the op failed) if not allocated.
float* half_sums(OpKernelContext* ctx, Tensor* sums_t, int64_t values, bool second_empty) {
  const auto status = ctx->allocate_temp(tensorflow::DT_FLOAT, TensorShape({2, values}), sums_t);
  if (!status.ok()) {
    ctx->SetStatus(status);
    return nullptr;
  }
  float* sums = sums_t->flat<float>().data();
  if (second_empty) std::memset(sums + values, 0, values * sizeof(float));
  return sums;
}

// dW [16 C, C'] = the two halves' sums, rounded once: row r of dW is the 16 values at
// sums + tile_row(r) + (u / 16) * 256 for each 16 columns u (tiles of 16 x 16).
template <typename TileRow>
void round_halves(const float* sums, int64_t half, int64_t c, int64_t co, uint16_t* out,
                  const TileRow& tile_row) {
  for (int64_t r = 0; r < 16 * c; ++r)
    for (int64_t u = 0; u < co; u += 16) {
      const int64_t at = tile_row(r) + (u / 16) * 256;
      const __m512 v = _mm512_add_ps(_mm512_loadu_ps(sums + at), _mm512_loadu_ps(sums + half + at));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + r * co + u),
                          (__m256i)_mm512_cvtneps_pbh(v));
    }
}

// One image's dy [image pixels, co] (with `act`, a LeakyReLU's output, its gradient) as
// AMX's B operand: pixel pairs interleaved, 16 channels a tile row, the image's first
// pixel at panel pixel q0 of b ([co / 16 tiles, tile_values apart][pixels / 32][16][32]).
inline void interleave_dy(const uint16_t* d, const uint16_t* act, int64_t image, int64_t co,
                          int64_t q0, float slope, __m512i pair_lo, __m512i pair_hi,
                          uint16_t* b, int64_t tile_values) {
  const __m512 vslope = _mm512_set1_ps(slope);
  for (int64_t pair = 0; pair < image / 2; ++pair) {
    const int64_t q = q0 + 2 * pair;
    for (int64_t u = 0; u < co; u += 32) {
      const int64_t at = 2 * pair * co + u;
      prefetch(d + at);  // the two pixels' lines (D's first layer: 2.75-2.95 -> 2.35-2.5 ms)
      prefetch(d + at + co);
      if (act) {
        prefetch(act + at);
        prefetch(act + at + co);
      }
      __m512i va = _mm512_loadu_si512(d + at);
      __m512i vb = _mm512_loadu_si512(d + at + co);
      if (act) {
        va = activation_grad32(va, _mm512_loadu_si512(act + at), vslope);
        vb = activation_grad32(vb, _mm512_loadu_si512(act + at + co), vslope);
      }
      uint16_t* dst = b + (u / 16) * tile_values + (q / 32) * 512 + (q % 32 / 2) * 32;
      _mm512_storeu_si512(dst, _mm512_permutex2var_epi16(va, pair_lo, vb));
      _mm512_storeu_si512(dst + tile_values, _mm512_permutex2var_epi16(va, pair_hi, vb));
    }
  }
}


// With `act` (the output of a LeakyReLU of slope `slope` after the convolution, dy's
// shape), dy is the gradient of that output: each value read is the activation's gradient
// (DcganActivationGrad's bits), which is then never written out.
void few_channels(OpKernelContext* ctx, const Tensor& x_t, const Tensor& dy_t, Tensor* out_t,
                  const uint16_t* act = nullptr, float slope = 1.f) {
  const int64_t n = x_t.dim_size(0), hh = x_t.dim_size(1), ww = x_t.dim_size(2);
  const int64_t c = x_t.dim_size(3), h = hh / 2, w = ww / 2, co = dy_t.dim_size(3);
  const int64_t image = h * w, steps = image / 32, first_half = (n + 1) / 2, n_tiles = co / 16;
  const int64_t images = std::max<int64_t>(1, kPanelPixels / image);
  // Where an image's output row fills whole tiles (w a multiple of 32: 64x64 inputs and
  // larger) the planes are laid out [row + 1][channel][column parity][w + 1]: for one kw,
  // the 4 C (kh, channel) patch rows of an output row are then 4 C rows of the planes at
  // one stride, which a tile load takes as they are (rows past 4 C read the zero padding
  // or the next rows, and their sums are dropped). No patch tiles are written; the sums
  // are one 16-row tile per kw. Elsewhere the patch rows are built as tiles (16 C rows in
  // tiles of 16).
  const bool whole_rows = w % 32 == 0;
  const int64_t m_tiles = whole_rows ? 4 : (c + 1) / 2 * 2, row_steps = w / 32;
  const int64_t block = 2 * (w + 1);         // whole_rows: one (row, channel), both parities
  const int64_t blocks = (hh + 2) * c + 16;  // rows -1 .. hh, and what tiles read past
  Tensor sums_t;
  float* sums = half_sums(ctx, &sums_t, m_tiles * n_tiles * 256, first_half == n);
  if (!sums) return;
  const uint16_t *x = data(x_t), *dy = data(dy_t);
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
  tensorflow::Shard(workers->num_threads, workers->workers, 2, n * image * 16 * c * co,
                    [&](int64_t u0, int64_t u1) {
    configure_tiles();
    // b: [n tile][step][16 pairs][16 channels x 2] (`interleave_dy`). Whole rows: planes
    // [image][row + 1][ch][parity][w + 1], read by the tiles as they are. Else one image's
    // planes x[y][2t + parity - 1][ch] at ((ch * hh + y) * 2 + parity) * (w + 1) + t
    // (parity 1: column 2t - 1; zeros at the ends) and the patch tiles a built from them:
    // [m tile][step][16 rows][32 pixels].
    const int64_t tile = images * steps * 512;  // values from one m (or n) tile to the next
    AlignedBuffer<uint16_t> b(n_tiles * tile), a(whole_rows ? 0 : m_tiles * tile);
    AlignedBuffer<uint16_t> planes(whole_rows ? images * blocks * block : c * hh * 2 * (w + 1));
    __m512i pair_lo, pair_hi;
    pair_indices(&pair_lo, &pair_hi);
    struct { int64_t kh, kw, ch; } rows[16 * kFewChannels];  // each patch row's entry
    for (int64_t r = 0; r < 16 * c; ++r) rows[r] = {r / c / 4, r / c % 4, r % c};
    for (int64_t half = u0; half < u1; ++half) {
      float* sum = sums + half * m_tiles * n_tiles * 256;
      const int64_t b_begin = half ? first_half : 0, b_end = half ? n : first_half;
      for (int64_t b0 = b_begin; b0 < b_end; b0 += images) {
        const int64_t count = std::min(images, b_end - b0);
        for (int64_t g = 0; g < count; ++g) {
          const uint16_t* img = x + (b0 + g) * hh * ww * c;
          if (whole_rows) {
            uint16_t* pl = planes.data() + g * blocks * block;
            for (int64_t y = 0; y < hh; ++y) {
              const uint16_t* src = img + y * ww * c;  // pixels 2t and 2t + 1: 2 c values
              for (int64_t ch = 0; ch < c; ++ch) {
                uint16_t* even = pl + ((y + 1) * c + ch) * block;
                uint16_t* odd = even + (w + 1);  // odd[t]: column 2t - 1
                for (int64_t t = 0; t < w; ++t) {
                  even[t] = src[2 * t * c + ch];
                  odd[t + 1] = src[(2 * t + 1) * c + ch];
                }
              }
            }
          } else {
            for (int64_t y = 0; y < hh; ++y) {
              const uint16_t* src = img + y * ww * c;  // pixels 2t and 2t + 1: 2 c values
              for (int64_t t = 0; t < w; ++t, src += 2 * c)
                for (int64_t ch = 0; ch < c; ++ch) {
                  uint16_t* even = planes.data() + ((ch * hh + y) * 2) * (w + 1);
                  even[t] = src[ch];
                  even[w + 1 + t + 1] = src[c + ch];
                }
            }
            // patch row r = (kh, kw, ch) of output row i: plane row 2i + kh - 1 of ch,
            // parity (kw + 1) % 2, from t = kw / 2 (kw = 0: column 2j - 1, 1: 2j, 2: 2j + 1,
            // 3: 2j + 2)
            for (int64_t i = 0; i < h; ++i)
              for (int64_t r = 0; r < 16 * c; ++r) {
                const int64_t kh = rows[r].kh, kw = rows[r].kw, ch = rows[r].ch, y = 2 * i + kh - 1;
                const uint16_t* src = planes.data() + ((ch * hh + y) * 2 + (kw + 1) % 2) * (w + 1) + kw / 2;
                const bool inside = y >= 0 && y < hh;
                for (int64_t j0 = 0; j0 < w;) {  // pieces within a tile's 32 pixels
                  const int64_t q = g * image + i * w + j0, piece = std::min(w - j0, 32 - q % 32);
                  const __mmask32 mask = (__mmask32)((1ull << piece) - 1);
                  uint16_t* dst = a.data() + (r / 16) * tile + (q / 32) * 512 + r % 16 * 32 + q % 32;
                  _mm512_mask_storeu_epi16(dst, mask, inside ? _mm512_maskz_loadu_epi16(mask, src + j0)
                                                             : _mm512_setzero_si512());
                  j0 += piece;
                }
              }
          }
          interleave_dy(dy + (b0 + g) * image * co, act ? act + (b0 + g) * image * co : nullptr,
                        image, co, g * image, slope, pair_lo, pair_hi, b.data(), tile);
        }
        const bool first_panel = b0 == b_begin;
        for (int64_t mt = 0; mt < m_tiles; mt += 2)  // whole rows: mt is kw
          for (int64_t nt = 0; nt < n_tiles; nt += 2) {
            float* c0 = sum + (mt * n_tiles + nt) * 256;  // [m tile][n tile][16][16]
            float* c1 = c0 + n_tiles * 256;
            load_sums(c0, c1, first_panel);
            const uint16_t* bt = b.data() + nt * tile;
            if (!whole_rows) {
              const uint16_t* a0 = a.data() + mt * tile;
              multiply_tiles(a0, a0 + tile, bt, bt + tile, count * steps);
            }
            for (int64_t g = 0; whole_rows && g < count; ++g) {
              const uint16_t* pl = planes.data() + g * blocks * block;
              for (int64_t st = 0; st < steps; ++st) {
                // patch row (kh, ch) of output row i: plane row 2i + kh, parity (kw + 1) % 2,
                // from t = kw / 2; the next patch row is the next (row, channel) block
                const int64_t i = st / row_steps, j0 = st % row_steps * 32;
                const uint16_t* row = pl + 2 * i * c * block + j0 + mt / 2;
                _tile_loadd(4, row + (w + 1), block * 2);  // kw = mt: parity 1
                _tile_loadd(5, row, block * 2);            // kw = mt + 1: parity 0
                _tile_loadd(6, bt + (g * steps + st) * 512, 64);
                _tile_loadd(7, bt + tile + (g * steps + st) * 512, 64);
                _tile_dpbf16ps(0, 4, 6);
                _tile_dpbf16ps(1, 4, 7);
                _tile_dpbf16ps(2, 5, 6);
                _tile_dpbf16ps(3, 5, 7);
              }
            }
            store_sums(c0, c1);
          }
      }
    }
    _tile_release();
  });
  if (whole_rows) {
    // dW row (kh, kw, ch): sum tile kw, row kh c + ch
    round_halves(sums, m_tiles * n_tiles * 256, c, co, data(out_t), [&](int64_t r) {
      return (r / c % 4) * n_tiles * 256 + (r / c / 4 * c + r % c) * 16;
    });
  } else {
    // dW row r: sum tile r / 16, row r % 16
    round_halves(sums, m_tiles * n_tiles * 256, c, co, data(out_t), [&](int64_t r) {
      return (r / 16) * n_tiles * 256 + r % 16 * 16;
    });
  }
}

// A 4x4 / stride-2 / "same" convolution of x [N, H, W, C <= 4] (an image's channels) by
// kernel [4, 4, C, C'] (C' a multiple of 16), then a LeakyReLU of `slope` (1: none), on
// AMX tiles. oneDNN's runs at ~0.2 of the matmul peak at 64x64x3 -> 32x32x64 (a patch
// of 48 values a pixel). Here a block of 16 output pixels gathers its patch rows (the
// 4 input rows' runs of 4 pixels x C channels, K = 16 C padded to 64) into A, and each 16
// output channels' kernel columns are B: one 16 x 16 float32 tile a block and 16
// channels, activated and rounded once.
class ConvFewChannelsOp : public OpKernel {
 public:
  explicit ConvFewChannelsOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("slope", &slope_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x_t = ctx->input(0);
    const Tensor& k_t = ctx->input(1);
    if (x_t.dims() != 4 || k_t.dims() != 4 || k_t.dim_size(0) != 4 || k_t.dim_size(1) != 4 ||
        k_t.dim_size(2) != x_t.dim_size(3) || x_t.dim_size(3) < 1 ||
        x_t.dim_size(3) > kFewChannels || k_t.dim_size(3) % 16 || k_t.dim_size(3) == 0 ||
        x_t.dim_size(1) % 2 || x_t.dim_size(2) % 2) {
      fail(ctx, "the few-channel convolution takes x [N, H, W, C] (C at most 4, H and W "
                "even) and a kernel [4, 4, C, C'] (C' a multiple of 16), got shapes " +
                    x_t.shape().DebugString() + " and " + k_t.shape().DebugString());
      return;
    }
    if (!amx_allowed()) {
      fail(ctx, "the kernel did not grant this process AMX (arch_prctl)");
      return;
    }
    const int64_t n = x_t.dim_size(0), hh = x_t.dim_size(1), ww = x_t.dim_size(2);
    const int64_t c = x_t.dim_size(3), co = k_t.dim_size(3), h = hh / 2, w = ww / 2;
    Tensor* y_t;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({n, h, w, co}), &y_t));
    const int64_t pixels = n * h * w;
    if (pixels == 0) return;
    // B: [K tile (2)][16-channel group][16 pairs of K rows][16 channels x 2], K = (kh, kw, ch)
    const int64_t groups = co / 16;
    AlignedBuffer<uint16_t> b(2 * groups * 512);
    const uint16_t* kernel = data(k_t);
    for (int64_t k = 0; k < 16 * c; ++k)
      for (int64_t u = 0; u < co; ++u)
        b[((k / 32) * groups + u / 16) * 512 + (k % 32 / 2) * 32 + (u % 16) * 2 + k % 2] =
            kernel[k * co + u];
    const uint16_t* x = data(x_t);
    uint16_t* y = data(y_t);
    const float slope = slope_;
    const int64_t blocks = (pixels + 15) / 16;
    auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
    tensorflow::Shard(workers->num_threads, workers->workers, blocks, 16 * 32 * c * co,
                      [&](int64_t q0, int64_t q1) {
      configure_tiles();
      alignas(64) uint16_t a[16 * 64];
      alignas(64) float out[16 * 64];
      const __m512 vs = _mm512_set1_ps(slope);
      for (int64_t q = q0; q < q1; ++q) {
        const int64_t p0 = q * 16, rows = std::min<int64_t>(16, pixels - p0);
        if (rows < 16) std::memset(a, 0, sizeof(a));
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t p = p0 + r, img = p / (h * w), i = p / w % h, j = p % w;
          uint16_t* row = a + r * 64;
          _mm512_storeu_si512(row, _mm512_setzero_si512());
          _mm512_storeu_si512(row + 32, _mm512_setzero_si512());
          // columns 2j - 1 .. 2j + 2, those inside x: a run of up to 4 C <= 16 values
          const int64_t first = j == 0 ? 1 : 0, last = 2 * j + 2 >= ww ? 3 : 4;
          const __mmask16 run = (__mmask16)((1u << ((last - first) * c)) - 1);
          for (int64_t kh = 0; kh < 4; ++kh) {
            const int64_t yy = 2 * i + kh - 1;
            if (yy < 0 || yy >= hh) continue;
            const uint16_t* src = x + ((img * hh + yy) * ww + 2 * j - 1 + first) * c;
            _mm256_mask_storeu_epi16(row + (kh * 4 + first) * c, run,
                                     _mm256_maskz_loadu_epi16(run, src));
          }
        }
        _tile_loadd(4, a, 128);
        _tile_loadd(5, a + 32, 128);
        for (int64_t g0 = 0; g0 < groups; g0 += 4) {  // up to 64 channels: 4 sum tiles
          const int64_t count = std::min<int64_t>(4, groups - g0);
          for (int64_t t = 0; t < count; ++t) {
            // tile numbers must be constants: one case per sum tile
            const uint16_t* b0 = b.data() + (g0 + t) * 512;
            const uint16_t* b1 = b.data() + (groups + g0 + t) * 512;
            switch (t) {
              case 0: _tile_zero(0); _tile_loadd(6, b0, 64); _tile_dpbf16ps(0, 4, 6);
                      if (16 * c > 32) { _tile_loadd(7, b1, 64); _tile_dpbf16ps(0, 5, 7); }
                      _tile_stored(0, out, 256); break;
              case 1: _tile_zero(1); _tile_loadd(6, b0, 64); _tile_dpbf16ps(1, 4, 6);
                      if (16 * c > 32) { _tile_loadd(7, b1, 64); _tile_dpbf16ps(1, 5, 7); }
                      _tile_stored(1, out + 16, 256); break;
              case 2: _tile_zero(2); _tile_loadd(6, b0, 64); _tile_dpbf16ps(2, 4, 6);
                      if (16 * c > 32) { _tile_loadd(7, b1, 64); _tile_dpbf16ps(2, 5, 7); }
                      _tile_stored(2, out + 32, 256); break;
              default: _tile_zero(3); _tile_loadd(6, b0, 64); _tile_dpbf16ps(3, 4, 6);
                      if (16 * c > 32) { _tile_loadd(7, b1, 64); _tile_dpbf16ps(3, 5, 7); }
                      _tile_stored(3, out + 48, 256);
            }
          }
          // out [16 pixels][64 channels]: a pixel's channels g0*16 .. in whole cache lines,
          // streamed past the caches where they are (the next layer reads them from memory)
          for (int64_t r = 0; r < rows; ++r) {
            uint16_t* dst = y + (p0 + r) * co + g0 * 16;
            for (int64_t t = 0; t < count; t += 2) {
              const float* o = out + r * 64 + t * 16;
              const __m256i lo = (__m256i)_mm512_cvtneps_pbh(
                  vactivate(_mm512_loadu_ps(o), _mm512_loadu_ps(o), vs));
              if (t + 1 == count) {
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + t * 16), lo);
                break;
              }
              const __m512 v1 = _mm512_loadu_ps(o + 16);
              const __m256i hi = (__m256i)_mm512_cvtneps_pbh(vactivate(v1, v1, vs));
              const __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
              if (reinterpret_cast<uintptr_t>(dst + t * 16) % 64 == 0)
                _mm512_stream_si512(reinterpret_cast<__m512i*>(dst + t * 16), both);
              else
                _mm512_storeu_si512(dst + t * 16, both);
            }
          }
        }
      }
      _mm_sfence();
      _tile_release();
    });
  }

 private:
  float slope_;
};

// The shapes the AMX kernel gradients take, and AMX granted.
// Whether an image's output pixels fill whole tiles (h w a multiple of 32), or a tile's 32
// pixels span whole images (h w divides 32, N h w a multiple of 32; not with few channels).
bool pixels_fill_tiles(int64_t n, int64_t image, bool few) {
  return image % 32 == 0 || (!few && 32 % image == 0 && (n * image) % 32 == 0);
}

bool check_kernel_grad(OpKernelContext* ctx, const TensorShape& x_t, const Tensor& dy_t) {
  const bool few = x_t.dims() == 4 && x_t.dim_size(3) <= kFewChannels;
  if (x_t.dims() != 4 || dy_t.dims() != 4 || x_t.dim_size(0) != dy_t.dim_size(0) ||
      x_t.dim_size(1) != 2 * dy_t.dim_size(1) || x_t.dim_size(2) != 2 * dy_t.dim_size(2) ||
      (x_t.dim_size(3) % 32 && !few) || x_t.dim_size(3) == 0 ||
      dy_t.dim_size(3) % 32 || dy_t.dim_size(2) % 2 || dy_t.NumElements() == 0 ||
      !pixels_fill_tiles(dy_t.dim_size(0), dy_t.dim_size(1) * dy_t.dim_size(2), few))
    return fail(ctx, "x [N, H, W, C] and dy [N, H/2, W/2, C'] need C a multiple of 32 or at "
                     "most 4, C' a multiple of 32, an even W/2 and H W / 4 a multiple of 32 "
                     "(or, C a multiple of 32, a divisor of 32 with N H W / 4 a multiple of "
                     "32), got shapes " + x_t.DebugString() + " and " +
                         dy_t.shape().DebugString());
  if (!amx_allowed()) return fail(ctx, "the kernel did not grant this process AMX (arch_prctl)");
  return true;
}

// The kernel gradient of a convolution of few input channels followed by a LeakyReLU, from
// the activation's output y and its gradient dy: DcganKernelGrad(x, DcganActivationGrad(dy,
// y)) in one op, the activation's gradient never written out.
class ActivationKernelGradOp : public OpKernel {
 public:
  explicit ActivationKernelGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    float slope;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("slope", &slope));
    slope_ = bfloat16_rounded(slope);  // as DcganActivationGrad
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x_t = ctx->input(0);
    const Tensor& dy_t = ctx->input(1);
    const Tensor& y_t = ctx->input(2);
    if (!check_kernel_grad(ctx, x_t.shape(), dy_t) || !same_shape(ctx, dy_t, "dy", y_t, "y"))
      return;
    if (x_t.dim_size(3) > kFewChannels) {
      fail(ctx, "the activation's kernel gradient takes x of at most 4 channels, got shape " +
                    x_t.shape().DebugString());
      return;
    }
    Tensor* out_t;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(
                            0, TensorShape({4, 4, x_t.dim_size(3), dy_t.dim_size(3)}), &out_t));
    few_channels(ctx, x_t, dy_t, out_t, data(y_t), slope_);
  }

 private:
  float slope_;
};

// With `padded_s2d`, x is given as P(x) [N, H/2 + 1, W/2 + 1, 4 C] (`PixelWalk`), C a
// multiple of 32: the patches are read from it, its padding as the zeros outside x.
class KernelGradOp : public OpKernel {
 public:
  explicit KernelGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("padded_s2d", &padded_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x_t = ctx->input(0);
    const Tensor& dy_t = ctx->input(1);
    TensorShape xs;  // x's own shape, also where it is given as P(x)
    if (!logical_shape(ctx, x_t, padded_, &xs) || !check_kernel_grad(ctx, xs, dy_t)) return;
    if (padded_ && xs.dim_size(3) % 32) {
      fail(ctx, "with padded_s2d, x [N, h + 1, w + 1, 4 C] needs C a multiple of 32, got "
                "shape " + x_t.shape().DebugString());
      return;
    }
    const int64_t hh = xs.dim_size(1), ww = xs.dim_size(2), c = xs.dim_size(3);
    const int64_t h = hh / 2, w = ww / 2, co = dy_t.dim_size(3), m = 16 * c;
    const int64_t k = dy_t.NumElements() / co;
    Tensor* out_t;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({4, 4, c, co}), &out_t));
    if (c <= kFewChannels) {
      few_channels(ctx, x_t, dy_t, out_t);
      return;
    }
    Tensor dyt_t, sums_t;
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(tensorflow::DT_BFLOAT16, TensorShape({co, k}),
                                           &dyt_t));
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(tensorflow::DT_FLOAT, TensorShape({2, co, m}),
                                           &sums_t));
    const uint16_t *x = data(x_t), *dy = data(dy_t);
    uint16_t* dyt = data(&dyt_t);
    float* sums = sums_t.flat<float>().data();
    uint16_t* out = data(out_t);
    auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
    // 1. dy^T [C', K], in 32 x 32 blocks.
    tensorflow::Shard(workers->num_threads, workers->workers, (k / 32) * (co / 32), 32 * 32 * 4,
                      [&](int64_t b0, int64_t b1) {
      __m512i r[32];
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t p = (b / (co / 32)) * 32, q = (b % (co / 32)) * 32;
        if (b + 1 < b1) {  // the next block's 32 lines, prefetched: the loads waited on memory
          const int64_t pn = ((b + 1) / (co / 32)) * 32, qn = ((b + 1) % (co / 32)) * 32;
          for (int i = 0; i < 32; ++i)
            _mm_prefetch(reinterpret_cast<const char*>(dy + (pn + i) * co + qn), _MM_HINT_T0);
        }
        for (int i = 0; i < 32; ++i) r[i] = _mm512_loadu_si512(dy + (p + i) * co + q);
        transpose32(r);
        // dy^T in tiles of 16 rows x 32 pixels, [C' / 16][K / 32]: one row of tiles is in
        // a row in memory
        for (int i = 0; i < 32; ++i)
          _mm512_storeu_si512(dyt + (((q + i) / 16) * (k / 32) + p / 32) * 512 + (q + i) % 16 * 32,
                              r[i]);
      }
    });
    // 2. Each half of the images times each block of kPanelColumns patch columns with kh
    // = 0, 1 and its block with kh + 2: their sums. Patch row kh + 2 of output row i is
    // patch row kh of output row i + 1, so the panel holds kh = 0, 1 for h + 1 output rows
    // of each image (the last: x's row 2h - 1 for kh = 0, the padding for kh = 1) and the
    // kh + 2 columns read it w pixels further on: half the patch values to build.
    // Images of fewer than 32 output pixels (`spans`: 4x4 -> D's last layer, G's first)
    // take whole patches instead, all four kh in the panel's columns, so that its pixels
    // run on from image to image and a tile's 32 take 32 / h w images; each half then
    // holds a whole number of tiles' images.
    const int64_t n = x_t.dim_size(0), image = h * w;
    const bool spans = image % 32 != 0;
    const int64_t image_pairs = spans ? image / 2 : (h + 1) * w / 2, shifts = spans ? 1 : 2;
    const int64_t images = std::max<int64_t>(1, kPanelPixels / image);  // a panel's
    const int64_t panel_pairs = images * image_pairs;
    const int64_t per_tile = spans ? 32 / image : 1;  // images
    const int64_t blocks = m / shifts / kPanelColumns;
    const int64_t first_half = std::min(n, ((n + 1) / 2 + per_tile - 1) / per_tile * per_tile);
    if (first_half == n) std::memset(sums + co * m, 0, co * m * sizeof(float));  // one image
    tensorflow::Shard(workers->num_threads, workers->workers, 2 * blocks,
                      k / 2 * 2 * kPanelColumns * co * 2, [&](int64_t u0, int64_t u1) {
      configure_tiles();
      AlignedBuffer<uint16_t> panel(panel_pairs * 2 * kPanelColumns);
      __m512i pair_lo, pair_hi;  // the pairs of two pixels' channels
      pair_indices(&pair_lo, &pair_hi);
      for (int64_t u = u0; u < u1; ++u) {
        const int64_t half = u / blocks, col0 = (u % blocks) * kPanelColumns;
        float* sum = sums + half * co * m;
        struct { int64_t kh, kw, ch; } group[kPanelColumns / 32];  // each 32 columns' patch entry
        int64_t padded_column[kPanelColumns / 32];  // the group's offset from a pair's base
        for (int g = 0; g < kPanelColumns / 32; ++g) {
          const int64_t col = col0 + 32 * g;
          group[g] = {col / c / 4, col / c % 4, col % c};
          const int64_t kh = group[g].kh, kw = group[g].kw;
          padded_column[g] = ((kh / 2) * (w + 1) + kw / 2) * 4 * c + ((kh % 2) * 2 + kw % 2) * c +
                             group[g].ch;
        }
        const int64_t b_end = half ? n : first_half;
        for (int64_t b0 = half ? first_half : 0; b0 < b_end; b0 += images) {
          const int64_t count = std::min(images, b_end - b0);
          // The panel: for each 16 columns, 16 pixel pairs x 16 columns x 2 a tile (1 KB),
          // pairs in pixel order: the patch values of output pixels (i, j), (i, j + 1) (w
          // is even), i = 0 ... h (h - 1 with `spans`); zeros outside x. Built a run of
          // one output row's pairs and one column group at a time: the run's loads step
          // through one row of x (or P(x)) at one stride and its stores are in a row.
          const int64_t run = w / 2, rows = image_pairs / run;  // pairs a row, rows an image
          // what the same run of the next output row reads is prefetched: 2 rows of x on,
          // 1 of P(x)
          const int64_t next_row = padded_ ? (w + 1) * 4 * c : 2 * ww * c;
          for (int64_t img = 0; img < count; ++img)
            for (int64_t i = 0; i < rows; ++i) {
              const int64_t b = b0 + img;
              uint16_t* row = panel.data() + (img * image_pairs + i * run) * 32;
              for (int g = 0; g < kPanelColumns / 32; ++g) {
                uint16_t* t = row + 2 * g * panel_pairs * 32;
                uint16_t* t_hi = t + panel_pairs * 32;
                if (padded_) {
                  // P(x): padded pixel (2i + kh, 2j + kw) is at s2d pixel (i + kh / 2, j + kw /
                  // 2), block (kh % 2, kw % 2); pixels 2j + kw and 2j + 2 + kw are neighbours
                  const uint16_t* src = x + ((b * (h + 1) + i) * (w + 1)) * 4 * c + padded_column[g];
                  for (int64_t q = 0; q < run; ++q, src += 8 * c) {
                    prefetch_ahead(src + next_row);
                    prefetch_ahead(src + next_row + 4 * c);
                    const __m512i va = _mm512_loadu_si512(src), vb = _mm512_loadu_si512(src + 4 * c);
                    _mm512_storeu_si512(t + q * 32, _mm512_permutex2var_epi16(va, pair_lo, vb));
                    _mm512_storeu_si512(t_hi + q * 32, _mm512_permutex2var_epi16(va, pair_hi, vb));
                  }
                  continue;
                }
                const int64_t kh = group[g].kh, kw = group[g].kw, y = 2 * i + kh - 1;
                if (y < 0 || y >= hh) {
                  for (int64_t q = 0; q < run; ++q) {
                    _mm512_storeu_si512(t + q * 32, _mm512_setzero_si512());
                    _mm512_storeu_si512(t_hi + q * 32, _mm512_setzero_si512());
                  }
                  continue;
                }
                // pair q: x columns xa = 4q + kw - 1 and xa + 2; only the first (kw = 0)
                // and the last (kw = 3) reach past x
                const uint16_t* base = x + ((b * hh + y) * ww) * c + group[g].ch;
                for (int64_t q = 0; q < run; ++q) {
                  const int64_t xa = 4 * q + kw - 1, xb = xa + 2;
                  prefetch_ahead(base + next_row + xa * c);
                  prefetch_ahead(base + next_row + xb * c);
                  const __m512i va = xa >= 0 ? _mm512_loadu_si512(base + xa * c)
                                             : _mm512_setzero_si512();
                  const __m512i vb = xb < ww ? _mm512_loadu_si512(base + xb * c)
                                             : _mm512_setzero_si512();
                  _mm512_storeu_si512(t + q * 32, _mm512_permutex2var_epi16(va, pair_lo, vb));
                  _mm512_storeu_si512(t_hi + q * 32, _mm512_permutex2var_epi16(va, pair_hi, vb));
                }
              }
            }
          // Each 32 columns' tiles stay in L1 while the rows of dy^T go by, for kh and kh + 2.
          const bool first_panel = b0 == (half ? first_half : 0);
          for (int64_t nt = 0; nt < kPanelColumns; nt += 32) {
            for (int64_t shift = 0; shift < shifts; ++shift) {
              const uint16_t* b0t = panel.data() + (nt / 16 * panel_pairs + shift * w / 2) * 32;
              const uint16_t* b1t = b0t + panel_pairs * 32;
              const int64_t col = col0 + nt + shift * m / 2;
              for (int64_t mt = 0; mt < co; mt += 32) {
                // sums in [C' / 16][16 C / 16] tiles of 16 x 16, each 1 KB in a row
                float* c0 = sum + ((mt / 16) * (m / 16) + col / 16) * 256;
                float* c1 = c0 + (m / 16) * 256;
                load_sums(c0, c1, first_panel);
                // dy^T's tiles of image b0 + g on; with `spans` all the panel's at once
                for (int64_t g = 0; g < count; g += spans ? count : 1) {
                  const uint16_t* a0 = dyt + ((mt / 16) * (k / 32) + (b0 + g) * image / 32) * 512;
                  multiply_tiles(a0, a0 + (k / 32) * 512, b0t + g * image_pairs * 32,
                                 b1t + g * image_pairs * 32, (spans ? count : 1) * image / 32);
                }
                store_sums(c0, c1);
              }
            }
          }
        }
      }
      _tile_release();
    });
    // 3. dW [16 C, C'] = the two halves' sum, rounded once, transposed back.
    tensorflow::Shard(workers->num_threads, workers->workers, (m / 32) * (co / 32), 32 * 32 * 6,
                      [&](int64_t b0, int64_t b1) {
      __m512i r[32];
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t p = (b / (co / 32)) * 32, q = (b % (co / 32)) * 32;  // rows of dW, of dW^T
        for (int i = 0; i < 32; ++i) {
          const float* a = sums + (((q + i) / 16) * (m / 16) + p / 16) * 256 + (q + i) % 16 * 16;
          const float* s = a + co * m;
          const __m512 lo = _mm512_add_ps(_mm512_loadu_ps(a), _mm512_loadu_ps(s));
          const __m512 hi = _mm512_add_ps(_mm512_loadu_ps(a + 256), _mm512_loadu_ps(s + 256));
          r[i] = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
        }
        transpose32(r);
        for (int i = 0; i < 32; ++i) _mm512_storeu_si512(out + (p + i) * co + q, r[i]);
      }
    });
  }

 private:
  bool padded_;
};

// The matmuls of the layers at 8x8 -> 4x4 (D's last convolution, G's first transposed one:
// im2col / col2im + a matmul, `fast_layers.conv`), where TensorFlow's bfloat16 MatMul
// (oneDNN) ran at about the 2048^3 matmul's rate: c [M, N] = a [M, K] b [K, N] (a given as
// [K, M] with transpose_a, b as [N, K] with transpose_b) on AMX tiles, float32 sums over
// the whole of K in the tiles, each rounded once to bfloat16. b is first laid out as AMX's
// B operand (16-column tiles of 16 pairs of rows, each column's tiles in a row in memory),
// a transposed a into a [M, K] copy; then each thread takes blocks of kMatMulRows rows of
// c, and for each 32 columns of b (in L2) runs over the block's rows 32 at a time. At
// [2048, 4096] x [4096, 512] (a block's rows of a: 1 MB, in L2) blocks of 128 rows took
// 5.1-5.4 ms a call, of 64 5.6-5.7 and of 256 6.7-6.8. The layers use it for that shape
// only: for the transposed product (K = 512) and the kernel gradient (a transposed, ~4.5
// ms of the call) TensorFlow's MatMul was faster.
constexpr int64_t kMatMulRows = 128;

// b [K, N] (as [N, K] with transpose_b) as AMX's B operand: bp [N / 16][K / 32][16 pairs
// of rows][16 columns x 2], two column tiles at a time (whole cache lines of b's rows).
void pack_b(OpKernelContext* ctx, const uint16_t* b, int64_t k, int64_t n, bool transpose_b,
            uint16_t* bp) {
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
  const int64_t steps = k / 32;
  tensorflow::Shard(workers->num_threads, workers->workers, (n / 32) * steps, 1024 * 4,
                    [&](int64_t t0, int64_t t1) {
    __m512i pair_lo, pair_hi;
    pair_indices(&pair_lo, &pair_hi);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t col = (t / steps) * 32, row = (t % steps) * 32;
      uint16_t* tile0 = bp + ((col / 16) * steps + t % steps) * 512;
      uint16_t* tile1 = tile0 + steps * 512;
      if (transpose_b) {  // b [N, K]: 16 rows of b, 16 pairs each, transposed
        for (int half = 0; half < 2; ++half) {
          __m512i r[16];
          for (int j = 0; j < 16; ++j)
            r[j] = _mm512_loadu_si512(b + (col + 16 * half + j) * k + row);
          transpose_lanes<uint32_t>(r);
          uint16_t* tile = half ? tile1 : tile0;
          for (int i = 0; i < 16; ++i) _mm512_store_si512(tile + i * 32, r[i]);
        }
      } else {  // b [K, N]: rows 2i and 2i + 1 interleaved
        for (int i = 0; i < 16; ++i) {
          const uint16_t* src = b + (row + 2 * i) * n + col;
          const __m512i even = _mm512_loadu_si512(src), odd = _mm512_loadu_si512(src + n);
          _mm512_store_si512(tile0 + i * 32, _mm512_permutex2var_epi16(even, pair_lo, odd));
          _mm512_store_si512(tile1 + i * 32, _mm512_permutex2var_epi16(even, pair_hi, odd));
        }
      }
    }
  });
}

// c [M, N] = A bp (`pack_b`) in blocks of kMatMulRows rows, each thread a block at a time:
// rows(r0, r1, buffer) gives A's rows r0 ... r1 - 1 ([r1 - r0, K], K in a row), built in
// `buffer` (kMatMulRows x K, the thread's) where `buffered`. For each 32 columns of bp (in
// L2) the block's rows go by 32 at a time, float32 sums over all of K in four tiles,
// rounded once.
template <typename RowSource>
void multiply_blocks(OpKernelContext* ctx, int64_t m, int64_t k, int64_t n, const uint16_t* bp,
                     uint16_t* c, bool buffered, const RowSource& rows) {
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
  const int64_t steps = k / 32, blocks = (m + kMatMulRows - 1) / kMatMulRows;
  tensorflow::Shard(workers->num_threads, workers->workers, blocks,
                    kMatMulRows * n * k * 2, [&](int64_t u0, int64_t u1) {
    configure_tiles();
    AlignedBuffer<uint16_t> buffer(buffered ? kMatMulRows * k : 0);
    alignas(64) float sums[4 * 256];
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t r0 = u * kMatMulRows, r1 = std::min(m, r0 + kMatMulRows);
      const uint16_t* a = rows(r0, r1, buffer.data());
      for (int64_t col = 0; col < n; col += 32) {
        const uint16_t* b0 = bp + (col / 16) * steps * 512;
        const uint16_t* b1 = b0 + steps * 512;
        for (int64_t row = r0; row < r1; row += 32) {
          const uint16_t* a0 = a + (row - r0) * k;
          const uint16_t* a1 = a0 + 16 * k;
          _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
          multiply_along(a0, a1, k, b0, b1, steps);
          store_block(sums);  // then rounded into c
          for (int i = 0; i < 32; ++i)
            _mm512_storeu_si512(c + (row + i) * n + col, rounded32(sums + i * 32));
        }
      }
    }
    _tile_release();
  });
}

class MatMulOp : public OpKernel {
 public:
  explicit MatMulOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("transpose_a", &transpose_a_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("transpose_b", &transpose_b_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& a_t = ctx->input(0);
    const Tensor& b_t = ctx->input(1);
    const bool shapes = a_t.dims() == 2 && b_t.dims() == 2;
    const int64_t m = shapes ? a_t.dim_size(transpose_a_ ? 1 : 0) : 0;
    const int64_t k = shapes ? a_t.dim_size(transpose_a_ ? 0 : 1) : 0;
    const int64_t n = shapes ? b_t.dim_size(transpose_b_ ? 0 : 1) : 0;
    if (!shapes || b_t.dim_size(transpose_b_ ? 1 : 0) != k || m % 32 || n % 32 || k % 32 ||
        m == 0 || n == 0 || k == 0) {
      fail(ctx, "the AMX matmul takes a [M, K] and b [K, N] (as [K, M] / [N, K] where "
                "transposed) with M, K and N whole multiples of 32, got shapes " +
                    a_t.shape().DebugString() + " and " + b_t.shape().DebugString());
      return;
    }
    if (!amx_allowed()) {
      fail(ctx, "the kernel did not grant this process AMX (arch_prctl)");
      return;
    }
    Tensor* c_t;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({m, n}), &c_t));
    Tensor bp_t, at_t;
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(tensorflow::DT_BFLOAT16, TensorShape({k * n}), &bp_t));
    const uint16_t* a = data(a_t);
    pack_b(ctx, data(b_t), k, n, transpose_b_, data(&bp_t));
    // With transpose_a, a [K, M] -> [M, K] in 32 x 32 blocks.
    if (transpose_a_) {
      OP_REQUIRES_OK(ctx, ctx->allocate_temp(tensorflow::DT_BFLOAT16, TensorShape({m * k}),
                                             &at_t));
      uint16_t* at = data(&at_t);
      transpose_matrices(ctx, 1, k, m, [&](int64_t) { return a; }, at);
      a = at;
    }
    multiply_blocks(ctx, m, k, n, data(&bp_t), data(c_t), false,
                    [&](int64_t r0, int64_t, uint16_t*) { return a + r0 * k; });
  }

 private:
  bool transpose_a_, transpose_b_;
};

// The 4x4 / stride-2 / "same" convolution y [N, h, w, N'] of x [N, 2h, 2w, C] by the
// kernel as a matrix [16 C, N'] (`fast_layers.conv`): im2col and the AMX matmul in one op,
// each block of kMatMulRows output pixels' patches built in a buffer of the thread's (in
// L2) instead of the whole patch matrix in memory (D's last layer at 64x64: 16 MB written
// and read back a call).
class ConvMatMulOp : public OpKernel {
 public:
  explicit ConvMatMulOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x_t = ctx->input(0);
    const Tensor& b_t = ctx->input(1);
    if (x_t.dims() != 4 || b_t.dims() != 2 || x_t.dim_size(1) % 2 || x_t.dim_size(2) % 2 ||
        b_t.dim_size(0) != 16 * x_t.dim_size(3) || b_t.dim_size(0) % 32 ||
        b_t.dim_size(1) % 32 || x_t.NumElements() == 0 || b_t.NumElements() == 0 ||
        (x_t.dim_size(0) * x_t.dim_size(1) * x_t.dim_size(2) / 4) % 32) {
      fail(ctx, "the AMX convolution takes x [N, H, W, C] and a kernel [16 C, N'] with H and "
                "W even, 16 C and N' multiples of 32 and N H W / 4 a multiple of 32, got "
                "shapes " + x_t.shape().DebugString() + " and " + b_t.shape().DebugString());
      return;
    }
    if (!amx_allowed()) {
      fail(ctx, "the kernel did not grant this process AMX (arch_prctl)");
      return;
    }
    const int64_t h = x_t.dim_size(1) / 2, w = x_t.dim_size(2) / 2, c = x_t.dim_size(3);
    const int64_t m = x_t.dim_size(0) * h * w, k = 16 * c, n = b_t.dim_size(1);
    Tensor *y_t, bp_t;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({x_t.dim_size(0), h, w, n}), &y_t));
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(tensorflow::DT_BFLOAT16, TensorShape({k * n}), &bp_t));
    const uint16_t* x = data(x_t);
    pack_b(ctx, data(b_t), k, n, false, data(&bp_t));
    multiply_blocks(ctx, m, k, n, data(&bp_t), data(y_t), true,
                    [&](int64_t r0, int64_t r1, uint16_t* buffer) {
                      patches(x, r0, r1, h, w, c, buffer);
                      return static_cast<const uint16_t*>(buffer);
                    });
  }
};

// The transposed 4x4 / stride-2 / "same" convolution (a convolution's input gradient) dx
// [N, 2h, 2w, C] of dy [N, h, w, C'] by kernel [4, 4, C, C'] on AMX tiles, where w is a
// multiple of 16 or divides 16: oneDNN's bfloat16 one ran at ~1.0 of the matmul peak in the
// step at 16x16x128 -> 32x32x64 (D's second layer's input gradient) on the AMX Xeon VM. dx
// pixel (2u + py, 2t + px) sums dy (u + di, t + dj) W[kh, kw]^T over the 2 x 2 taps (kh,
// kw) of its parities (kh = 1, 3 for py = 0 with di = 0, -1; kh = 0, 2 for py = 1 with di
// = 1, 0; so for columns): for 16 dx pixels of one parity class (a run of positions u w +
// t) the A operand of a tap is 16 consecutive pixels of a copy of dy shifted by dj, one
// strided tile load. Each block of 4 tiles holds two runs x 32 channels; the float32 sums
// over the 4 taps and all C' are rounded once.
// Whether dy [n, h, w, C'] splits into pairs of runs of 16 positions (`ConvTransposeOp`).
bool transposed_runs_pair(int64_t n, int64_t h, int64_t w) {
  if (w <= 0 || h <= 0 || (w % 16 && 16 % w) || (h * w) % 16) return false;
  const int64_t runs = h * w / 16;
  return runs % 2 == 0 || (runs == 1 && n % 2 == 0);
}

class ConvTransposeOp : public OpKernel {
 public:
  explicit ConvTransposeOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& dy_t = ctx->input(0);
    const Tensor& k_t = ctx->input(1);
    if (dy_t.dims() != 4 || k_t.dims() != 4 || k_t.dim_size(0) != 4 || k_t.dim_size(1) != 4 ||
        k_t.dim_size(3) != dy_t.dim_size(3) || k_t.dim_size(2) % 32 || dy_t.dim_size(3) % 32 ||
        dy_t.NumElements() == 0 || k_t.NumElements() == 0 ||
        !transposed_runs_pair(dy_t.dim_size(0), dy_t.dim_size(1), dy_t.dim_size(2))) {
      fail(ctx, "the AMX transposed convolution takes dy [N, h, w, C'] and kernel [4, 4, C, "
                "C'] with C and C' multiples of 32 and an even number of runs of 16 pixels "
                "(w a multiple of 16 or dividing 16, h w / 16 even, or 1 with N even), got "
                "shapes " + dy_t.shape().DebugString() + " and " + k_t.shape().DebugString());
      return;
    }
    if (!amx_allowed()) {
      fail(ctx, "the kernel did not grant this process AMX (arch_prctl)");
      return;
    }
    const int64_t n = dy_t.dim_size(0), h = dy_t.dim_size(1), w = dy_t.dim_size(2);
    const int64_t co = dy_t.dim_size(3), c = k_t.dim_size(2), steps = co / 32;
    Tensor* dx_t;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({n, 2 * h, 2 * w, c}), &dx_t));
    Tensor bp_t;
    OP_REQUIRES_OK(ctx, ctx->allocate_temp(tensorflow::DT_BFLOAT16, TensorShape({16 * c * co}),
                                           &bp_t));
    const uint16_t *dy = data(dy_t), *kernel = data(k_t);
    uint16_t *bp = data(&bp_t), *dx = data(dx_t);
    auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
    // 1. Each tap's W[kh, kw]^T [C', C] as B tiles: the kernel is [16 C, C'] with rows (tap,
    // channel), b as [N, K] to `pack_b`, so bp is [tap][C / 16][C' / 32][16 pairs][16 x 2].
    pack_b(ctx, kernel, co, 16 * c, true, bp);
    // 2. A group of images at a time (two where an image is one run, else one), each
    // image's dy copied with zeros around it so that a run of 16 positions q = u w + t is
    // 16 pixels at one stride for every tap. Where w is a multiple of 16 (a run within a
    // row) that is one copy with a zero border, [h + 2][w + 2][C']; where w divides 16 (a
    // run of 16 / w whole rows) three copies shifted by dj = -1, 0, 1 columns (zeros
    // shifted in) with a zero row above and below, [dj][h + 2][w][C']. Runs go in pairs
    // (the A tiles).
    const int64_t image_runs = h * w / 16, group = image_runs == 1 ? 2 : 1;
    const bool shifts = w < 16;
    const int64_t wp = shifts ? w : w + 2, copy = (h + 2) * wp * co;
    // Where the B tiles of all taps outgrow L2 (16 C C' values: 4 MB at 4x4x512 -> 8x8x256),
    // the parity classes go outermost (a class's B tiles, a quarter, stay in L2 while the
    // thread's images go by, their copies made first); else each image's classes in turn.
    const int64_t per_group = group * (shifts ? 3 : 1) * copy;
    const bool classes_outer = 16 * c * co * 2 > (1 << 20);
    tensorflow::Shard(workers->num_threads, workers->workers, n / group,
                      4 * group * h * w * c * co * 2, [&](int64_t g0, int64_t g1) {
      configure_tiles();
      AlignedBuffer<uint16_t> copies((classes_outer ? g1 - g0 : 1) * per_group);  // zeros kept
      alignas(64) float sums[4 * 256];
      auto make_copies = [&](int64_t g, uint16_t* to) {
        for (int64_t img = 0; img < group; ++img)
          for (int64_t i = 0; i < h; ++i) {
            const uint16_t* src = dy + ((g * group + img) * h + i) * w * co;
            uint16_t* row = to + img * (shifts ? 3 : 1) * copy + (i + 1) * wp * co;
            if (!shifts) {
              std::memcpy(row + co, src, w * co * sizeof(uint16_t));
              continue;
            }
            std::memcpy(row + co, src, (w - 1) * co * sizeof(uint16_t));             // dj = -1
            std::memcpy(row + copy, src, w * co * sizeof(uint16_t));                  // dj = 0
            std::memcpy(row + 2 * copy, src + co, (w - 1) * co * sizeof(uint16_t));  // dj = 1
          }
      };
      // runs run and run + 1 of group g (copies at `from`), class (py, px), channels c0 on
      auto block = [&](int64_t g, const uint16_t* from, int64_t py, int64_t px, int64_t c0,
                       int64_t run) {
        _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
        int64_t img[2], q0[2];  // the pair's runs: image and first position
        for (int r = 0; r < 2; ++r) {
          img[r] = (run + r) / image_runs;
          q0[r] = (run + r) % image_runs * 16;
        }
        for (int64_t a = 0; a < 2; ++a)
          for (int64_t bb = 0; bb < 2; ++bb) {
            // tap (kh, kw) and its dy pixel offset (di rows, dj columns)
            const int64_t kh = py ? 2 * a : 2 * a + 1, di = py ? 1 - a : -a;
            const int64_t kw = px ? 2 * bb : 2 * bb + 1, dj = px ? 1 - bb : -bb;
            const uint16_t* at[2];
            for (int r = 0; r < 2; ++r)
              at[r] = shifts ? from + (img[r] * 3 + dj + 1) * copy +
                                   ((q0[r] / w + di + 1) * w + q0[r] % w) * co
                             : from + img[r] * copy +
                                   ((q0[r] / w + di + 1) * wp + q0[r] % w + dj + 1) * co;
            const uint16_t* bt = bp + ((kh * 4 + kw) * (c / 16) + c0 / 16) * steps * 512;
            multiply_along(at[0], at[1], co, bt, bt + steps * 512, steps);
          }
        // sums [2 runs][16 positions][32 channels], rounded into dx pixels (2u + py, 2t + px)
        store_block(sums);
        for (int r = 0; r < 2; ++r) {
          uint16_t* image = dx + (g * group + img[r]) * 4 * h * w * c;
          for (int64_t p = 0; p < 16; ++p) {
            const int64_t u = (q0[r] + p) / w, t = (q0[r] + p) % w;
            _mm512_storeu_si512(image + ((2 * u + py) * 2 * w + 2 * t + px) * c + c0,
                                rounded32(sums + r * 512 + p * 32));
          }
        }
      };
      if (classes_outer) {
        for (int64_t g = g0; g < g1; ++g) make_copies(g, copies.data() + (g - g0) * per_group);
        for (int64_t py = 0; py < 2; ++py)
          for (int64_t px = 0; px < 2; ++px)
            for (int64_t g = g0; g < g1; ++g)
              for (int64_t c0 = 0; c0 < c; c0 += 32)
                for (int64_t run = 0; run < group * image_runs; run += 2)
                  block(g, copies.data() + (g - g0) * per_group, py, px, c0, run);
      } else {
        for (int64_t g = g0; g < g1; ++g) {
          make_copies(g, copies.data());
          // one (py, px, c0)'s B tiles, 32 KB at C' = 128, stay in L1 while the runs go by
          for (int64_t py = 0; py < 2; ++py)
            for (int64_t px = 0; px < 2; ++px)
              for (int64_t c0 = 0; c0 < c; c0 += 32)
                for (int64_t run = 0; run < group * image_runs; run += 2)
                  block(g, copies.data(), py, px, c0, run);
        }
      }
      _tile_release();
    });
  }
};

// The two kernels of the padded space-to-depth form's products (`fast_layers`) from a
// 4x4 kernel [4, 4, C, C'] in one op: k [2, 2, 4 C, C'] (row (a, b, dh, dw, c) is kernel row
// (2a + dh, 2b + dw, c)), the 2x2 / stride-1 convolution's, and flipped [2, 2, C', 4 C] =
// k[1 - a, 1 - b]^T, its transposed one's. TensorFlow's Transpose and ReverseV2 for them
// took ~0.25 ms each a call at 4x4x128x256 on the AMX Xeon, 6 + 3 a step for D's third
// layer alone.
class PaddedKernelsOp : public OpKernel {
 public:
  explicit PaddedKernelsOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& k_t = ctx->input(0);
    if (k_t.dims() != 4 || k_t.dim_size(0) != 4 || k_t.dim_size(1) != 4 ||
        (4 * k_t.dim_size(2)) % 32 || k_t.dim_size(3) % 32 || k_t.NumElements() == 0) {
      fail(ctx, "the padded kernels take a kernel [4, 4, C, C'] with 4 C and C' whole "
                "multiples of 32, got shape " + k_t.shape().DebugString());
      return;
    }
    const int64_t c = k_t.dim_size(2), co = k_t.dim_size(3), rows = 4 * c;
    Tensor *k2_t, *flipped_t;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({2, 2, rows, co}), &k2_t));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({2, 2, co, rows}), &flipped_t));
    const uint16_t* kernel = data(k_t);
    uint16_t *k2 = data(k2_t), *flipped = data(flipped_t);
    auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
    tensorflow::Shard(workers->num_threads, workers->workers, 16, c * co * 2,
                      [&](int64_t b0, int64_t b1) {
      for (int64_t block = b0; block < b1; ++block) {  // (a, b, dh, dw)
        const int64_t a = block / 8, b = block / 4 % 2, dh = block / 2 % 2, dw = block % 2;
        std::memcpy(k2 + block * c * co, kernel + ((2 * a + dh) * 4 + 2 * b + dw) * c * co,
                    c * co * sizeof(uint16_t));
      }
    });
    // flipped (a, b) is k (1 - a, 1 - b) transposed
    transpose_matrices(ctx, 4, rows, co, [&](int64_t at) { return k2 + (3 - at) * rows * co; },
                       flipped);
  }
};
#endif  // DCGAN_AMX

// Elementwise over n values in blocks of kChunk: any split gives the same values.
constexpr int64_t kChunk = 4096;

void for_chunks(OpKernelContext* ctx, int64_t n, int64_t cost_per_value,
                const std::function<void(int64_t, int64_t)>& chunk) {
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
  tensorflow::Shard(workers->num_threads, workers->workers, (n + kChunk - 1) / kChunk,
                    kChunk * cost_per_value, [&](int64_t b0, int64_t b1) {
                      chunk(b0 * kChunk, std::min(n, b1 * kChunk));
                    });
}

class ToBfloat16Op : public OpKernel {
 public:
  explicit ToBfloat16Op(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x_t = ctx->input(0);
    Tensor* y_t;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x_t.shape(), &y_t));
    const float* x = x_t.flat<float>().data();
    uint16_t* y = data(y_t);
    for_chunks(ctx, x_t.NumElements(), 2, [&](int64_t i, int64_t end) {
#ifdef DCGAN_AVX512_BF16
      for (; i + 16 <= end; i += 16) {
        prefetch(x + i);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), vround(_mm512_loadu_ps(x + i)));
      }
#endif
      for (; i < end; ++i) y[i] = store(x[i]);
    });
  }
};

class ToFloatOp : public OpKernel {
 public:
  explicit ToFloatOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x_t = ctx->input(0);
    Tensor* y_t;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, x_t.shape(), &y_t));
    const uint16_t* x = data(x_t);
    float* y = y_t->flat<float>().data();
    for_chunks(ctx, x_t.NumElements(), 2, [&](int64_t i, int64_t end) {
#ifdef DCGAN_AVX512_BF16
      for (; i + 16 <= end; i += 16) {
        prefetch(x + i);
        _mm512_storeu_ps(y + i, vload(x + i));
      }
#endif
      for (; i < end; ++i) y[i] = load(x + i);
    });
  }
};

class ActivationGradOp : public OpKernel {
 public:
  explicit ActivationGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    float slope;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("slope", &slope));
    slope_ = bfloat16_rounded(slope);  // TensorFlow's kernel multiplies in T
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& dy_t = ctx->input(0);
    const Tensor& y_t = ctx->input(1);
    if (!same_shape(ctx, dy_t, "dy", y_t, "y")) return;
    Tensor* dx_t;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, y_t.shape(), &dx_t));
    const int64_t n = y_t.NumElements();
    if (n == 0) return;
    const uint16_t *dy = data(dy_t), *y = data(y_t);
    uint16_t* dx = data(dx_t);
    const float slope = slope_;
    for_chunks(ctx, n, 3, [&](int64_t i, int64_t end) {
#ifdef DCGAN_AVX512_BF16
      const __m512 vs = _mm512_set1_ps(slope);
      for (; i + 16 <= end; i += 16) {
        prefetch(dy + i);
        prefetch(y + i);
        vstore(dx + i, vactivate(vload(dy + i), vload(y + i), vs));
      }
#endif
      for (; i < end; ++i) dx[i] = load(y + i) > 0.f ? dy[i] : store(slope * load(dy + i));
    });
  }

 private:
  float slope_;
};

// A float32 linear layer with one output on bfloat16 features (D's logit):
// y[n] = sum_k x[n, k] w[k] in float32, where TensorFlow cast x to a float32 copy first
// (4 MB at 128x8192) and took its gradient as float32 products cast back (0.9-1.3 ms a call
// in all on the AMX Xeon). Each row's sum runs in 64 float32 lanes over fixed positions,
// added up in a fixed order: the result does not depend on the number of threads.
bool check_logit(OpKernelContext* ctx, const Tensor& x, const Tensor& w) {
  if (x.dims() != 2 || w.dims() != 2 || w.dim_size(1) != 1 || w.dim_size(0) != x.dim_size(1))
    return fail(ctx, "the logit takes x [N, K] and w [K, 1], got " + x.shape().DebugString() +
                         " and " + w.shape().DebugString());
  return true;
}

class LogitOp : public OpKernel {
 public:
  explicit LogitOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x_t = ctx->input(0);
    const Tensor& w_t = ctx->input(1);
    if (!check_logit(ctx, x_t, w_t)) return;
    const int64_t n = x_t.dim_size(0), k = x_t.dim_size(1);
    Tensor* y_t;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({n, 1}), &y_t));
    const uint16_t* x = data(x_t);
    const float* w = w_t.flat<float>().data();
    float* y = y_t->flat<float>().data();
    auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
    tensorflow::Shard(workers->num_threads, workers->workers, n, 3 * k, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const uint16_t* row = x + r * k;
        float lanes[64] = {0.f};
        int64_t i = 0;
#ifdef DCGAN_AVX512_BF16
        __m512 acc[4];
        for (int q = 0; q < 4; ++q) acc[q] = _mm512_setzero_ps();
        for (; i + 64 <= k; i += 64)
          for (int q = 0; q < 4; ++q)
            acc[q] = _mm512_fmadd_ps(vload(row + i + 16 * q), _mm512_loadu_ps(w + i + 16 * q),
                                     acc[q]);
        for (int q = 0; q < 4; ++q) _mm512_storeu_ps(lanes + 16 * q, acc[q]);
#endif
        for (; i < k; ++i) lanes[i % 64] += load(row + i) * w[i];
        float sum = 0.f;
        for (int q = 0; q < 64; ++q) sum += lanes[q];
        y[r] = sum;
      }
    });
  }
};

// dx[n, k] = dy[n] w[k] rounded to bfloat16: bit for bit the float32 product's gradient
// cast back, as TensorFlow took it.
class LogitInputGradOp : public OpKernel {
 public:
  explicit LogitInputGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& dy_t = ctx->input(0);
    const Tensor& w_t = ctx->input(1);
    if (dy_t.dims() != 2 || dy_t.dim_size(1) != 1 || w_t.dims() != 2 || w_t.dim_size(1) != 1) {
      fail(ctx, "the logit's input gradient takes dy [N, 1] and w [K, 1], got " +
                    dy_t.shape().DebugString() + " and " + w_t.shape().DebugString());
      return;
    }
    const int64_t n = dy_t.dim_size(0), k = w_t.dim_size(0);
    Tensor* dx_t;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({n, k}), &dx_t));
    const float *dy = dy_t.flat<float>().data(), *w = w_t.flat<float>().data();
    uint16_t* dx = data(dx_t);
    for_chunks(ctx, n * k, 2, [&](int64_t i, int64_t end) {
      // a chunk may span rows: one row's stretch at a time
      while (i < end) {
        const int64_t r = i / k, stop = std::min(end, (r + 1) * k);
        const float g = dy[r];
        const float* wr = w - r * k;  // wr[i]: w at value i's column
#ifdef DCGAN_AVX512_BF16
        const __m512 vg = _mm512_set1_ps(g);
        for (; i + 16 <= stop; i += 16)
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(dx + i),
                              vround(_mm512_mul_ps(vg, _mm512_loadu_ps(wr + i))));
#endif
        for (; i < stop; ++i) dx[i] = store(g * wr[i]);
      }
    });
  }
};

// dw[k] = sum_n x[n, k] dy[n] in float32, n in order.
class LogitKernelGradOp : public OpKernel {
 public:
  explicit LogitKernelGradOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor& x_t = ctx->input(0);
    const Tensor& dy_t = ctx->input(1);
    if (x_t.dims() != 2 || dy_t.dims() != 2 || dy_t.dim_size(1) != 1 ||
        dy_t.dim_size(0) != x_t.dim_size(0)) {
      fail(ctx, "the logit's kernel gradient takes x [N, K] and dy [N, 1], got " +
                    x_t.shape().DebugString() + " and " + dy_t.shape().DebugString());
      return;
    }
    const int64_t n = x_t.dim_size(0), k = x_t.dim_size(1);
    Tensor* dw_t;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({k, 1}), &dw_t));
    const uint16_t* x = data(x_t);
    const float* dy = dy_t.flat<float>().data();
    float* dw = dw_t->flat<float>().data();
    constexpr int64_t kColumns = 256;  // a block of columns, its sums in registers
    auto* workers = ctx->device()->tensorflow_cpu_worker_threads();
    tensorflow::Shard(workers->num_threads, workers->workers, (k + kColumns - 1) / kColumns,
                      3 * n * kColumns, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        const int64_t c0 = b * kColumns, c1 = std::min(k, c0 + kColumns);
        int64_t j = c0;
#ifdef DCGAN_AVX512_BF16
        for (; j + 64 <= c1; j += 64) {
          __m512 acc[4];
          for (int q = 0; q < 4; ++q) acc[q] = _mm512_setzero_ps();
          for (int64_t r = 0; r < n; ++r) {
            const __m512 g = _mm512_set1_ps(dy[r]);
            for (int q = 0; q < 4; ++q)
              acc[q] = _mm512_fmadd_ps(vload(x + r * k + j + 16 * q), g, acc[q]);
          }
          for (int q = 0; q < 4; ++q) _mm512_storeu_ps(dw + j + 16 * q, acc[q]);
        }
#endif
        for (; j < c1; ++j) {
          float sum = 0.f;
          for (int64_t r = 0; r < n; ++r) sum += load(x + r * k + j) * dy[r];
          dw[j] = sum;
        }
      }
    });
  }
};

// Adam's update of a float32 variable from the bfloat16 gradients it was cast from: the
// gradient is their float32 sum (in order: what casting each and adding them gave), and the
// update TensorFlow's ApplyAdam: m += (g - m)(1 - beta1), v += (g^2 - v)(1 - beta2),
// var -= alpha m / (sqrt(v) + epsilon), alpha = lr sqrt(1 - beta2^t) / (1 - beta1^t).
// Where the casts wrote float32 gradients (and AddN their sum) that ResourceApplyAdam read
// back, this reads 2 bytes a gradient value; the same operations in the same order, so
// the same bits as ResourceApplyAdam on the AMX Xeon. Outputs the new var, m and v (the
// caller assigns them, which adopts the buffers).
class AdamOp : public OpKernel {
 public:
  explicit AdamOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    const Tensor &var_t = ctx->input(0), &m_t = ctx->input(1), &v_t = ctx->input(2);
    OpInputList grads;
    OP_REQUIRES_OK(ctx, ctx->input_list("grads", &grads));
    if (!same_shape(ctx, m_t, "m", var_t, "var") || !same_shape(ctx, v_t, "v", var_t, "var"))
      return;
    for (int i = 0; i < grads.size(); ++i)
      if (!same_shape(ctx, grads[i], "each gradient", var_t, "var")) return;
    float scalars[6];
    for (int i = 0; i < 6; ++i) {
      const Tensor& t = ctx->input(4 + grads.size() - 1 + i);
      if (t.NumElements() != 1) {
        fail(ctx, "Adam's powers, lr, betas and epsilon must be scalars, got shape " +
                      t.shape().DebugString());
        return;
      }
      scalars[i] = t.flat<float>()(0);
    }
    const float beta1_power = scalars[0], beta2_power = scalars[1], lr = scalars[2];
    const float beta1 = scalars[3], beta2 = scalars[4], epsilon = scalars[5];
    const float alpha = lr * std::sqrt(1.f - beta2_power) / (1.f - beta1_power);
    const float one_b1 = 1.f - beta1, one_b2 = 1.f - beta2;
    Tensor *var_out, *m_out, *v_out;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, var_t.shape(), &var_out));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, var_t.shape(), &m_out));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(2, var_t.shape(), &v_out));
    const float *var = var_t.flat<float>().data(), *m = m_t.flat<float>().data();
    const float* v = v_t.flat<float>().data();
    float *var2 = var_out->flat<float>().data(), *m2 = m_out->flat<float>().data();
    float* v2 = v_out->flat<float>().data();
    std::vector<const uint16_t*> g(grads.size());
    for (int i = 0; i < grads.size(); ++i) g[i] = data(grads[i]);
    const int count = grads.size();
    for_chunks(ctx, var_t.NumElements(), 8, [&](int64_t i, int64_t end) {
#ifdef DCGAN_AVX512_BF16
      const __m512 vb1 = _mm512_set1_ps(one_b1), vb2 = _mm512_set1_ps(one_b2);
      const __m512 va = _mm512_set1_ps(alpha), ve = _mm512_set1_ps(epsilon);
      for (; i + 16 <= end; i += 16) {
        __m512 gv = vload(g[0] + i);
        for (int k = 1; k < count; ++k) gv = _mm512_add_ps(gv, vload(g[k] + i));
        __m512 mv = _mm512_loadu_ps(m + i), vv = _mm512_loadu_ps(v + i);
        mv = _mm512_add_ps(mv, _mm512_mul_ps(_mm512_sub_ps(gv, mv), vb1));
        vv = _mm512_add_ps(vv, _mm512_mul_ps(_mm512_sub_ps(_mm512_mul_ps(gv, gv), vv), vb2));
        const __m512 step = _mm512_div_ps(_mm512_mul_ps(mv, va),
                                          _mm512_add_ps(_mm512_sqrt_ps(vv), ve));
        _mm512_storeu_ps(m2 + i, mv);
        _mm512_storeu_ps(v2 + i, vv);
        _mm512_storeu_ps(var2 + i, _mm512_sub_ps(_mm512_loadu_ps(var + i), step));
      }
#endif
      for (; i < end; ++i) {
        float gs = load(g[0] + i);
        for (int k = 1; k < count; ++k) gs += load(g[k] + i);
        const float mv = m[i] + (gs - m[i]) * one_b1;
        const float vv = v[i] + (gs * gs - v[i]) * one_b2;
        m2[i] = mv;
        v2[i] = vv;
        var2[i] = var[i] - (mv * alpha) / (std::sqrt(vv) + epsilon);
      }
    });
  }
};

}  // namespace
}  // namespace dcgan_keras

using tensorflow::shape_inference::InferenceContext;

// Output `i` is P(x)'s shape [N, H/2 + 1, W/2 + 1, 4 C] for x [N, H, W, C] (`PixelWalk`).
static absl::Status PaddedShape(InferenceContext* c, tensorflow::shape_inference::ShapeHandle x,
                                int i) {
  tensorflow::shape_inference::DimensionHandle h, w, ch;
  TF_RETURN_IF_ERROR(c->WithRank(x, 4, &x));
  TF_RETURN_IF_ERROR(c->Divide(c->Dim(x, 1), 2, true, &h));
  TF_RETURN_IF_ERROR(c->Divide(c->Dim(x, 2), 2, true, &w));
  TF_RETURN_IF_ERROR(c->Add(h, 1, &h));
  TF_RETURN_IF_ERROR(c->Add(w, 1, &w));
  TF_RETURN_IF_ERROR(c->Multiply(c->Dim(x, 3), 4, &ch));
  c->set_output(i, c->MakeShape({c->Dim(x, 0), h, w, ch}));
  return absl::OkStatus();
}

// The shape of the x that P(x) of this shape is (`PixelWalk`).
static absl::Status UnpaddedShape(InferenceContext* c, tensorflow::shape_inference::ShapeHandle p,
                                  tensorflow::shape_inference::ShapeHandle* x) {
  tensorflow::shape_inference::DimensionHandle h, w, ch;
  TF_RETURN_IF_ERROR(c->WithRank(p, 4, &p));
  TF_RETURN_IF_ERROR(c->Subtract(c->Dim(p, 1), 1, &h));
  TF_RETURN_IF_ERROR(c->Subtract(c->Dim(p, 2), 1, &w));
  TF_RETURN_IF_ERROR(c->Multiply(h, 2, &h));
  TF_RETURN_IF_ERROR(c->Multiply(w, 2, &w));
  TF_RETURN_IF_ERROR(c->Divide(c->Dim(p, 3), 4, true, &ch));
  *x = c->MakeShape({c->Dim(p, 0), h, w, ch});
  return absl::OkStatus();
}

// x's shape from the op's input 0, given as itself or (padded_x) as P(x).
static absl::Status BatchNormInputShape(InferenceContext* c,
                                        tensorflow::shape_inference::ShapeHandle* x) {
  bool padded_x;
  TF_RETURN_IF_ERROR(c->GetAttr("padded_x", &padded_x));
  if (!padded_x) {
    *x = c->input(0);
    return absl::OkStatus();
  }
  return UnpaddedShape(c, c->input(0), x);
}

REGISTER_OP("DcganBatchNorm")
    .Input("x: bfloat16")
    .Input("gamma: float")
    .Input("beta: float")
    .Output("y: bfloat16")
    .Output("mean: float")
    .Output("variance: float")
    .Attr("epsilon: float")
    .Attr("slope: float = 1.0")
    .Attr("padded_x: bool = false")
    .SetShapeFn([](InferenceContext* c) {
      tensorflow::shape_inference::ShapeHandle x;
      TF_RETURN_IF_ERROR(BatchNormInputShape(c, &x));
      c->set_output(0, x);
      c->set_output(1, c->Vector(c->Dim(x, -1)));
      c->set_output(2, c->Vector(c->Dim(x, -1)));
      return absl::OkStatus();
    });

REGISTER_OP("DcganBatchNormApply")
    .Input("x: bfloat16")
    .Input("mean: float")
    .Input("variance: float")
    .Input("gamma: float")
    .Input("beta: float")
    .Output("y: bfloat16")
    .Attr("epsilon: float")
    .Attr("slope: float = 1.0")
    .Attr("padded_x: bool = false")
    .Attr("padded_y: bool = false")
    .SetShapeFn([](InferenceContext* c) {
      bool padded_y;
      TF_RETURN_IF_ERROR(c->GetAttr("padded_y", &padded_y));
      tensorflow::shape_inference::ShapeHandle x;
      TF_RETURN_IF_ERROR(BatchNormInputShape(c, &x));
      if (!padded_y) {
        c->set_output(0, x);
        return absl::OkStatus();
      }
      return PaddedShape(c, x, 0);
    });

REGISTER_OP("DcganBatchNormGrad")
    .Input("dy: bfloat16")
    .Input("x: bfloat16")
    .Input("mean: float")
    .Input("variance: float")
    .Input("gamma: float")
    .Input("beta: float")
    .Output("dx: bfloat16")
    .Output("dgamma: float")
    .Output("dbeta: float")
    .Attr("epsilon: float")
    .Attr("slope: float = 1.0")
    .Attr("padded_x: bool = false")
    .Attr("padded_y: bool = false")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(1));
      c->set_output(1, c->input(4));
      c->set_output(2, c->input(4));
      return absl::OkStatus();
    });

REGISTER_OP("DcganCol2Im")
    .Input("cols: bfloat16")
    .Output("y: bfloat16")
    .SetShapeFn([](InferenceContext* c) {
      auto cols = c->input(0);
      tensorflow::shape_inference::DimensionHandle h, w, ch;
      TF_RETURN_IF_ERROR(c->WithRank(cols, 4, &cols));
      TF_RETURN_IF_ERROR(c->Multiply(c->Dim(cols, 1), 2, &h));
      TF_RETURN_IF_ERROR(c->Multiply(c->Dim(cols, 2), 2, &w));
      TF_RETURN_IF_ERROR(c->Divide(c->Dim(cols, 3), 16, true, &ch));
      c->set_output(0, c->MakeShape({c->Dim(cols, 0), h, w, ch}));
      return absl::OkStatus();
    });

REGISTER_KERNEL_BUILDER(Name("DcganCol2Im").Device(tensorflow::DEVICE_CPU),
                        dcgan_keras::Col2ImOp);
REGISTER_OP("DcganIm2Col")
    .Input("x: bfloat16")
    .Output("patches: bfloat16")
    .SetShapeFn([](InferenceContext* c) {
      auto x = c->input(0);
      tensorflow::shape_inference::DimensionHandle h, w, ch;
      TF_RETURN_IF_ERROR(c->WithRank(x, 4, &x));
      TF_RETURN_IF_ERROR(c->Divide(c->Dim(x, 1), 2, true, &h));
      TF_RETURN_IF_ERROR(c->Divide(c->Dim(x, 2), 2, true, &w));
      TF_RETURN_IF_ERROR(c->Multiply(c->Dim(x, 3), 16, &ch));
      c->set_output(0, c->MakeShape({c->Dim(x, 0), h, w, ch}));
      return absl::OkStatus();
    });

REGISTER_KERNEL_BUILDER(Name("DcganIm2Col").Device(tensorflow::DEVICE_CPU),
                        dcgan_keras::Im2ColOp);
REGISTER_OP("DcganActivationGrad")
    .Input("dy: bfloat16")
    .Input("y: bfloat16")
    .Output("dx: bfloat16")
    .Attr("slope: float")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(1));
      return absl::OkStatus();
    });

REGISTER_KERNEL_BUILDER(Name("DcganActivationGrad").Device(tensorflow::DEVICE_CPU),
                        dcgan_keras::ActivationGradOp);
REGISTER_KERNEL_BUILDER(Name("DcganBatchNorm").Device(tensorflow::DEVICE_CPU),
                        dcgan_keras::BatchNormOp);
REGISTER_KERNEL_BUILDER(Name("DcganBatchNormApply").Device(tensorflow::DEVICE_CPU),
                        dcgan_keras::BatchNormApplyOp);
REGISTER_KERNEL_BUILDER(Name("DcganBatchNormGrad").Device(tensorflow::DEVICE_CPU),
                        dcgan_keras::BatchNormGradOp);
REGISTER_OP("DcganToBfloat16")
    .Input("x: float")
    .Output("y: bfloat16")
    .SetShapeFn(tensorflow::shape_inference::UnchangedShape);
REGISTER_KERNEL_BUILDER(Name("DcganToBfloat16").Device(tensorflow::DEVICE_CPU),
                        dcgan_keras::ToBfloat16Op);
REGISTER_OP("DcganToFloat")
    .Input("x: bfloat16")
    .Output("y: float")
    .SetShapeFn(tensorflow::shape_inference::UnchangedShape);
REGISTER_KERNEL_BUILDER(Name("DcganToFloat").Device(tensorflow::DEVICE_CPU),
                        dcgan_keras::ToFloatOp);
REGISTER_OP("DcganLogit")
    .Input("x: bfloat16")
    .Input("w: float")
    .Output("y: float")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->Matrix(c->Dim(c->input(0), 0), 1));
      return absl::OkStatus();
    });
REGISTER_KERNEL_BUILDER(Name("DcganLogit").Device(tensorflow::DEVICE_CPU), dcgan_keras::LogitOp);
REGISTER_OP("DcganLogitInputGrad")
    .Input("dy: float")
    .Input("w: float")
    .Output("dx: bfloat16")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->Matrix(c->Dim(c->input(0), 0), c->Dim(c->input(1), 0)));
      return absl::OkStatus();
    });
REGISTER_KERNEL_BUILDER(Name("DcganLogitInputGrad").Device(tensorflow::DEVICE_CPU),
                        dcgan_keras::LogitInputGradOp);
REGISTER_OP("DcganLogitKernelGrad")
    .Input("x: bfloat16")
    .Input("dy: float")
    .Output("dw: float")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->Matrix(c->Dim(c->input(0), 1), 1));
      return absl::OkStatus();
    });
REGISTER_KERNEL_BUILDER(Name("DcganLogitKernelGrad").Device(tensorflow::DEVICE_CPU),
                        dcgan_keras::LogitKernelGradOp);
REGISTER_OP("DcganAdam")
    .Input("var: float")
    .Input("m: float")
    .Input("v: float")
    .Input("grads: N * bfloat16")
    .Input("beta1_power: float")
    .Input("beta2_power: float")
    .Input("lr: float")
    .Input("beta1: float")
    .Input("beta2: float")
    .Input("epsilon: float")
    .Output("new_var: float")
    .Output("new_m: float")
    .Output("new_v: float")
    .Attr("N: int >= 1")
    .SetShapeFn([](InferenceContext* c) {
      for (int i = 0; i < 3; ++i) c->set_output(i, c->input(0));
      return absl::OkStatus();
    });
REGISTER_KERNEL_BUILDER(Name("DcganAdam").Device(tensorflow::DEVICE_CPU), dcgan_keras::AdamOp);
#ifdef DCGAN_AMX
// A 4x4 convolution's kernel gradient from x [N, H, W, C] and dy [N, h, w, C']: [4, 4, C, C'].
absl::Status KernelGradShape(InferenceContext* c) {
  auto x = c->input(0), dy = c->input(1);
  TF_RETURN_IF_ERROR(c->WithRank(x, 4, &x));
  TF_RETURN_IF_ERROR(c->WithRank(dy, 4, &dy));
  c->set_output(0, c->MakeShape({4, 4, c->Dim(x, 3), c->Dim(dy, 3)}));
  return absl::OkStatus();
}

REGISTER_OP("DcganKernelGrad")
    .Input("x: bfloat16")
    .Input("dy: bfloat16")
    .Output("dkernel: bfloat16")
    .Attr("padded_s2d: bool = false")
    .SetShapeFn([](InferenceContext* c) {
      bool padded;
      TF_RETURN_IF_ERROR(c->GetAttr("padded_s2d", &padded));
      if (!padded) return KernelGradShape(c);
      auto x = c->input(0), dy = c->input(1);  // x is P(x) [N, H/2 + 1, W/2 + 1, 4 C]
      tensorflow::shape_inference::DimensionHandle ch;
      TF_RETURN_IF_ERROR(c->WithRank(x, 4, &x));
      TF_RETURN_IF_ERROR(c->WithRank(dy, 4, &dy));
      TF_RETURN_IF_ERROR(c->Divide(c->Dim(x, 3), 4, true, &ch));
      c->set_output(0, c->MakeShape({4, 4, ch, c->Dim(dy, 3)}));
      return absl::OkStatus();
    });
REGISTER_KERNEL_BUILDER(Name("DcganKernelGrad").Device(tensorflow::DEVICE_CPU),
                        dcgan_keras::KernelGradOp);
REGISTER_OP("DcganConvFewChannels")
    .Input("x: bfloat16")
    .Input("kernel: bfloat16")
    .Output("y: bfloat16")
    .Attr("slope: float")
    .SetShapeFn([](InferenceContext* c) {
      auto x = c->input(0), k = c->input(1);
      tensorflow::shape_inference::DimensionHandle h, w;
      TF_RETURN_IF_ERROR(c->WithRank(x, 4, &x));
      TF_RETURN_IF_ERROR(c->WithRank(k, 4, &k));
      TF_RETURN_IF_ERROR(c->Divide(c->Dim(x, 1), 2, true, &h));
      TF_RETURN_IF_ERROR(c->Divide(c->Dim(x, 2), 2, true, &w));
      c->set_output(0, c->MakeShape({c->Dim(x, 0), h, w, c->Dim(k, 3)}));
      return absl::OkStatus();
    });
REGISTER_KERNEL_BUILDER(Name("DcganConvFewChannels").Device(tensorflow::DEVICE_CPU),
                        dcgan_keras::ConvFewChannelsOp);
REGISTER_OP("DcganMatMul")
    .Input("a: bfloat16")
    .Input("b: bfloat16")
    .Output("c: bfloat16")
    .Attr("transpose_a: bool = false")
    .Attr("transpose_b: bool = false")
    .SetShapeFn(tensorflow::shape_inference::MatMulShape);
REGISTER_KERNEL_BUILDER(Name("DcganMatMul").Device(tensorflow::DEVICE_CPU),
                        dcgan_keras::MatMulOp);
REGISTER_OP("DcganConvMatMul")
    .Input("x: bfloat16")
    .Input("kernel: bfloat16")
    .Output("y: bfloat16")
    .SetShapeFn([](InferenceContext* c) {
      auto x = c->input(0), k = c->input(1);
      TF_RETURN_IF_ERROR(c->WithRank(x, 4, &x));
      TF_RETURN_IF_ERROR(c->WithRank(k, 2, &k));
      tensorflow::shape_inference::DimensionHandle h, w;
      TF_RETURN_IF_ERROR(c->Divide(c->Dim(x, 1), 2, true, &h));
      TF_RETURN_IF_ERROR(c->Divide(c->Dim(x, 2), 2, true, &w));
      c->set_output(0, c->MakeShape({c->Dim(x, 0), h, w, c->Dim(k, 1)}));
      return absl::OkStatus();
    });
REGISTER_KERNEL_BUILDER(Name("DcganConvMatMul").Device(tensorflow::DEVICE_CPU),
                        dcgan_keras::ConvMatMulOp);
REGISTER_OP("DcganConvTranspose")
    .Input("dy: bfloat16")
    .Input("kernel: bfloat16")
    .Output("dx: bfloat16")
    .SetShapeFn([](InferenceContext* c) {
      auto dy = c->input(0), k = c->input(1);
      TF_RETURN_IF_ERROR(c->WithRank(dy, 4, &dy));
      TF_RETURN_IF_ERROR(c->WithRank(k, 4, &k));
      tensorflow::shape_inference::DimensionHandle hh, ww;
      TF_RETURN_IF_ERROR(c->Multiply(c->Dim(dy, 1), 2, &hh));
      TF_RETURN_IF_ERROR(c->Multiply(c->Dim(dy, 2), 2, &ww));
      c->set_output(0, c->MakeShape({c->Dim(dy, 0), hh, ww, c->Dim(k, 2)}));
      return absl::OkStatus();
    });
REGISTER_KERNEL_BUILDER(Name("DcganConvTranspose").Device(tensorflow::DEVICE_CPU),
                        dcgan_keras::ConvTransposeOp);
REGISTER_OP("DcganPaddedKernels")
    .Input("kernel: bfloat16")
    .Output("k: bfloat16")
    .Output("flipped: bfloat16")
    .SetShapeFn([](InferenceContext* c) {
      auto k = c->input(0);
      tensorflow::shape_inference::DimensionHandle rows;
      TF_RETURN_IF_ERROR(c->WithRank(k, 4, &k));
      TF_RETURN_IF_ERROR(c->Multiply(c->Dim(k, 2), 4, &rows));
      c->set_output(0, c->MakeShape({2, 2, rows, c->Dim(k, 3)}));
      c->set_output(1, c->MakeShape({2, 2, c->Dim(k, 3), rows}));
      return absl::OkStatus();
    });
REGISTER_KERNEL_BUILDER(Name("DcganPaddedKernels").Device(tensorflow::DEVICE_CPU),
                        dcgan_keras::PaddedKernelsOp);
REGISTER_OP("DcganActivationKernelGrad")
    .Input("x: bfloat16")
    .Input("dy: bfloat16")
    .Input("y: bfloat16")
    .Output("dkernel: bfloat16")
    .Attr("slope: float")
    .SetShapeFn(KernelGradShape);
REGISTER_KERNEL_BUILDER(Name("DcganActivationKernelGrad").Device(tensorflow::DEVICE_CPU),
                        dcgan_keras::ActivationKernelGradOp);
#endif
