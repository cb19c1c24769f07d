/* Register-blocked direct convolution (float32, NCHW, one group) for the thin layers of the cpu backend, written
 * with gcc's vector extensions and compiled for AVX-512 and for AVX2 + FMA; blocked_conv.pyx wraps it.
 *
 *     y[k, oh, ow] = b[k] + Σ_{c, r, s} w[k, c, r, s] · xp[c, oh·sh + r·dh, ow·sw + s·dw]
 *
 * where xp is the input zero-padded (padded_h × padded_w per channel, rows `row` floats apart). The output channels
 * go into the lanes of a vector: the weights are packed as
 *
 *     packed[block][c][r][s][lane] = w[block·LANES + lane, c, r, s]        (0 past K)
 *
 * so that one input value, broadcast, meets LANES output channels in one fused multiply-add. A tile of B output
 * columns keeps B such vectors in registers (2·B for two blocks), so each packed weight vector loaded serves B
 * multiply-adds and each input value loaded serves LANES (2·LANES); nothing but y is written. The tile is then
 * transposed in registers (channel vectors to output rows) and stored into y's rows.
 *
 * No im2col matrix is made: for the thin layers where im2col + GEMM spends as long unfolding the input as
 * multiplying (LeNet's 6 → 16 5×5 layer, a 16 → 32 3×3 stride-2 layer) this is what runs at the speed of the
 * multiply-adds. Where the processor has neither AVX-512 nor AVX2 + FMA, or the compiler is not gcc on x86-64,
 * blocked_lanes() is 0 and the convolution is not chosen. */
#include <stddef.h>
#include <string.h>

typedef struct {
    ptrdiff_t channels, kernels;      /* C, K */
    ptrdiff_t kh, kw, sh, sw, dh, dw;  /* taps, stride, dilation */
    ptrdiff_t plane, row;             /* the input the kernels read: floats from a channel to the next, and per row */
    ptrdiff_t out_h, out_w, out_plane;
    ptrdiff_t height, width, pt, pl;  /* the input plane and its top/left padding (for the padded copy) */
    ptrdiff_t padded_h, padded_w;     /* the padded copy: (OH − 1)·sh + (R − 1)·dh + 1 rows, (OW − 1)·sw + … columns */
} BlockedConv;

/* packed[block][c][r][s][lane] = w[block·lanes + lane, c, r, s], packed_bias[block·lanes + lane] = b[…] (0 past K
 * or without a bias) */
static void blocked_pack(const BlockedConv* cv, const float* w, const float* bias, int lanes, float* packed,
                         float* packed_bias)
{
    const ptrdiff_t inner = cv->channels * cv->kh * cv->kw, blocks = (cv->kernels + lanes - 1) / lanes;
    for (ptrdiff_t block = 0; block < blocks; block++)
        for (int lane = 0; lane < lanes; lane++) {
            const ptrdiff_t k = block * lanes + lane;
            for (ptrdiff_t i = 0; i < inner; i++)
                packed[(block * inner + i) * lanes + lane] = k < cv->kernels ? w[k * inner + i] : 0.0f;
            packed_bias[k] = (k < cv->kernels && bias != NULL) ? bias[k] : 0.0f;
        }
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)

#define SUFFIX avx512
#define TARGET "avx512f,fma"
#define LANES 16
#define BMAX 12          /* 24 accumulators for two blocks, of the 32 vector registers */
#include "blocked_conv_isa.h"
#undef SUFFIX
#undef TARGET
#undef LANES
#undef BMAX

#define SUFFIX avx2
#define TARGET "avx2,fma"
#define LANES 8
#define BMAX 6           /* 12 accumulators for two blocks, of the 16 */
#include "blocked_conv_isa.h"
#undef SUFFIX
#undef TARGET
#undef LANES
#undef BMAX

/* the vector width this processor runs the kernels at: 16 (AVX-512), 8 (AVX2 + FMA) or 0 (not at all) */
static int blocked_lanes(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return 16;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return 8;
    return 0;
}

/* padded: one channel of the input copied into its zero-padded copy, the padding left as it is (see pad_avx512) */
static void blocked_pad(int lanes, const BlockedConv* cv, const float* plane, float* padded)
{
    if (lanes == 16)
        pad_avx512(cv, plane, padded);
    else if (lanes == 8)
        pad_avx2(cv, plane, padded);
}

/* one image (see image_avx512) */
static void blocked_image(int lanes, const BlockedConv* cv, const float* x, const float* packed,
                          const float* packed_bias, int relu, float* y, const float* next, ptrdiff_t ahead)
{
    if (lanes == 16)
        image_avx512(cv, x, packed, packed_bias, relu, y, next, ahead);
    else if (lanes == 8)
        image_avx2(cv, x, packed, packed_bias, relu, y, next, ahead);
}

#else

static int blocked_lanes(void) { return 0; }
static void blocked_pad(int lanes, const BlockedConv* cv, const float* plane, float* padded) {}
static void blocked_image(int lanes, const BlockedConv* cv, const float* x, const float* packed,
                          const float* packed_bias, int relu, float* y, const float* next, ptrdiff_t ahead) {}

#endif
