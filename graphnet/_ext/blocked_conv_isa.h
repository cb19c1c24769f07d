/* The kernels of blocked_conv.h for one instruction set. blocked_conv.h includes this file once per set, with
 * SUFFIX (a name), TARGET (gcc's target string), LANES (floats per vector) and BMAX (output columns per tile)
 * defined; every function here is compiled for TARGET only and called only where the processor has it. */

#define JOIN2(a, b) a##_##b
#define JOIN(a, b) JOIN2(a, b)
#define VEC JOIN(floats, SUFFIX)
#define INTS JOIN(ints, SUFFIX)
#define ISA __attribute__((target(TARGET)))

typedef float VEC __attribute__((vector_size(LANES * sizeof(float)), aligned(sizeof(float))));   /* any address */
typedef int INTS __attribute__((vector_size(LANES * sizeof(int))));

#if LANES == 16
#define ZIP_LOW (INTS){0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23}
#define ZIP_HIGH (INTS){8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31}
#elif LANES == 8
#define ZIP_LOW (INTS){0, 8, 1, 9, 2, 10, 3, 11}
#define ZIP_HIGH (INTS){4, 12, 5, 13, 6, 14, 7, 15}
#endif

/* The transpose of a rows × LANES matrix held as `rows` vectors (rows a power of two, at most LANES): zipping
 * vector i with vector i + rows/2 into vectors 2i and 2i + 1, log2(rows) times over, leaves the LANES × rows
 * transpose in the same vectors, row after row (LANES / rows rows of it per vector). */
static inline __attribute__((always_inline)) ISA void JOIN(transpose, SUFFIX)(VEC v[LANES], const int rows)
{
    for (int width = 1; width < rows; width *= 2) {
        VEC zipped[LANES];
        for (int i = 0; i < rows / 2; i++) {
            zipped[2 * i] = __builtin_shuffle(v[i], v[i + rows / 2], ZIP_LOW);
            zipped[2 * i + 1] = __builtin_shuffle(v[i], v[i + rows / 2], ZIP_HIGH);
        }
        for (int i = 0; i < rows; i++)
            v[i] = zipped[i];
    }
}

/* the epilogue of one block of LANES output channels, then its rows into y: y[lane · out_plane + b] for b < B,
 * lane < valid (acc[b] holds the LANES channels of output column b). The B columns are transposed as `rows` (the
 * power of two from B up): a tile of 8 columns or fewer costs 3 zip rounds over 8 vectors, not 4 over 16. A row
 * of y is stored whole (`rows` values) when the plane has room for them from y on (`room`): the values past B land
 * on output columns of tiles that come later in the same plane, which overwrite them; near the plane's end only
 * the B values are stored. */
static inline __attribute__((always_inline)) ISA void JOIN(store, SUFFIX)(
        VEC acc[BMAX], const int B, const float* bias, int relu, float* y, ptrdiff_t out_plane, ptrdiff_t room,
        ptrdiff_t valid)
{
    const int rows = B > LANES / 2 ? LANES : B > LANES / 4 ? LANES / 2 : B > LANES / 8 ? LANES / 4 : LANES / 8;
    VEC t[LANES];
    const VEC bias_vector = *(const VEC*)bias;
    for (int b = 0; b < rows; b++) {
        VEC value = b < B ? acc[b] + bias_vector : (VEC){0};
        if (relu)
            value = (VEC)((INTS)value & ~(INTS)(value < 0));      /* max(value, 0), NaN kept */
        t[b] = value;
    }
    JOIN(transpose, SUFFIX)(t, rows);
    const float* flat = (const float*)t;                          /* row `lane` of y at flat[lane · rows] */
#pragma GCC unroll 16
    for (int lane = 0; lane < LANES; lane++) {
        if (lane >= valid)
            break;
        if (room >= rows)
            memcpy(y + lane * out_plane, flat + lane * rows, rows * sizeof(float));
        else
            memcpy(y + lane * out_plane, flat + lane * rows, B * sizeof(float));
    }
}

/* One tile: B consecutive output columns of one output row, for one block of LANES output channels (two blocks if
 * `pair`), x pointing at the tile's first window in the padded planes, w at the block's packed weights:
 *     acc[b] = Σ_{c, r, s} w[c, r, s][0 .. LANES) · x[c, r·dh, b·sw + s·dw]          (one broadcast, LANES FMAs)
 * `stride`: sw when it is known here (1 or 2), so that each input value is read at a constant offset and its
 * multiply-add is one instruction (with sw in a register the address takes an index register, and x86 splits such
 * a multiply-add in two); 0 to read sw from cv. */
static inline __attribute__((always_inline)) ISA void JOIN(tile, SUFFIX)(
        const BlockedConv* cv, const float* x, const float* w, const float* bias, int relu, const int pair,
        const int B, const int stride, float* y, ptrdiff_t room, ptrdiff_t valid)
{
    VEC first[BMAX], second[BMAX];
    const ptrdiff_t block_floats = cv->channels * cv->kh * cv->kw * LANES, sw = stride ? stride : cv->sw;
    for (int b = 0; b < B; b++)
        first[b] = second[b] = (VEC){0};
    for (ptrdiff_t c = 0; c < cv->channels; c++) {
        for (ptrdiff_t r = 0; r < cv->kh; r++) {
            const float* row = x + c * cv->plane + r * cv->dh * cv->row;
            for (ptrdiff_t s = 0; s < cv->kw; s++, w += LANES) {
                const float* taps = row + s * cv->dw;
                const VEC a = *(const VEC*)w;
                if (pair) {
                    const VEC a2 = *(const VEC*)(w + block_floats);
                    for (int b = 0; b < B; b++) {
                        const float v = taps[b * sw];
                        first[b] += a * v;
                        second[b] += a2 * v;
                    }
                } else {
                    for (int b = 0; b < B; b++)
                        first[b] += a * taps[b * sw];
                }
            }
        }
    }
    JOIN(store, SUFFIX)(first, B, bias, relu, y, cv->out_plane, room, valid);
    if (pair)
        JOIN(store, SUFFIX)(second, B, bias + LANES, relu, y + LANES * cv->out_plane, cv->out_plane, room,
                            valid - LANES);
}

/* the tile for a B known only at run time: one copy of the tile per B, pair and stride (1, 2, other), so that its
 * loops over b unroll */
static ISA void JOIN(any_tile, SUFFIX)(const BlockedConv* cv, const float* x, const float* w, const float* bias,
                                       int relu, int pair, int B, float* y, ptrdiff_t room, ptrdiff_t valid)
{
    const int stride = cv->sw <= 2 ? (int)cv->sw : 0;
#define STRIDED(n, p) switch (stride) { \
        case 1: JOIN(tile, SUFFIX)(cv, x, w, bias, relu, p, n, 1, y, room, valid); break; \
        case 2: JOIN(tile, SUFFIX)(cv, x, w, bias, relu, p, n, 2, y, room, valid); break; \
        default: JOIN(tile, SUFFIX)(cv, x, w, bias, relu, p, n, 0, y, room, valid); }
#define TILE(n) case n: if (pair) { STRIDED(n, 1) } else { STRIDED(n, 0) } break;
    switch (B) {
        TILE(1) TILE(2) TILE(3) TILE(4) TILE(5) TILE(6)
#if BMAX > 6
        TILE(7) TILE(8) TILE(9) TILE(10) TILE(11) TILE(12)
#endif
    }
#undef TILE
#undef STRIDED
}

/* padded[i·row + j] = plane[i − pt, j − pl] for the i, j inside the plane (i < padded_h, j < padded_w): one input
 * channel copied into its zero-padded copy, whose padding (zeroed once per call) it leaves alone. Where `padded` + pl
 * is 64-byte aligned and row a multiple of 16 floats (blocked_conv.pyx lays the copy out so), each row's copy is
 * aligned vector stores. */
__attribute__((optimize("no-tree-loop-distribute-patterns")))   /* the short loops stay loops, not memcpy calls */
static ISA void JOIN(pad, SUFFIX)(const BlockedConv* cv, const float* restrict plane, float* restrict padded)
{
    const ptrdiff_t first = cv->pt, stop = cv->pt + cv->height < cv->padded_h ? cv->pt + cv->height : cv->padded_h;
    const ptrdiff_t count = (cv->pl + cv->width < cv->padded_w ? cv->pl + cv->width : cv->padded_w) - cv->pl;
    for (ptrdiff_t i = first; i < stop; i++) {
        float* row = padded + i * cv->row + cv->pl;
        const float* source = plane + (i - cv->pt) * cv->width;
        ptrdiff_t j = 0;
        for (; j + LANES <= count; j += LANES)
            *(VEC*)(row + j) = *(const VEC*)(source + j);
        for (; j < count; j++)
            row[j] = source[j];
    }
}

/* y (K × OH × OW) of one image, x pointing at its (padded) input planes, from the packed weights and bias; while
 * it runs, the `ahead` floats from `next` on are asked into the cache, a share after each tile (the next image, for
 * the padded copy: copying it from memory with nothing to overlap with took 15% of a stride-2 layer's time) */
static ISA void JOIN(image, SUFFIX)(const BlockedConv* cv, const float* x, const float* packed,
                                    const float* packed_bias, int relu, float* y, const float* next, ptrdiff_t ahead)
{
    const ptrdiff_t blocks = (cv->kernels + LANES - 1) / LANES;
    const ptrdiff_t block_floats = cv->channels * cv->kh * cv->kw * LANES;
    const ptrdiff_t chunks = (cv->out_w + BMAX - 1) / BMAX;
    const ptrdiff_t share = (ahead + cv->out_h * chunks - 1) / (cv->out_h * chunks);      /* floats per tile */
    ptrdiff_t asked = 0;
    for (ptrdiff_t kb = 0; kb < blocks; kb += 2) {
        const int pair = kb + 1 < blocks;
        for (ptrdiff_t oh = 0; oh < cv->out_h; oh++) {
            for (ptrdiff_t chunk = 0; chunk < chunks; chunk++) {
                const ptrdiff_t first = chunk * cv->out_w / chunks, stop = (chunk + 1) * cv->out_w / chunks;
                const ptrdiff_t position = oh * cv->out_w + first;
                JOIN(any_tile, SUFFIX)(cv, x + oh * cv->sh * cv->row + first * cv->sw,
                                       packed + kb * block_floats, packed_bias + kb * LANES, relu, pair,
                                       (int)(stop - first), y + kb * LANES * cv->out_plane + position,
                                       cv->out_plane - position, cv->kernels - kb * LANES);
                for (ptrdiff_t i = 0; i < share && asked < ahead; i += 16, asked += 16)
                    __builtin_prefetch(next + asked, 0, 2);
            }
        }
    }
}

#undef ISA
#undef ZIP_LOW
#undef ZIP_HIGH
#undef VEC
#undef INTS
