#include "preprocess.h"

#include <math.h>

/* Adding and subtracting 1.5 * 2^23 rounds a float of magnitude below 2^22 to the nearest
 * integer, ties to even, in the default rounding mode; unlike rintf it vectorises on every
 * target. Values are clamped to the output range first, so they are always that small. */
#define OL_ROUND_MAGIC 12582912.0f

static inline int64_t clamp_i64(int64_t v, int64_t lo, int64_t hi) {
    return v < lo ? lo : (v > hi ? hi : v);
}

/* Written as comparisons, not fminf/fmaxf, whose NaN rules keep them from vectorising. A NaN
 * becomes lo; the caller is told of it through the count of non-finite samples. */
static inline float clamp_f32(float v, float lo, float hi) {
    v = v >= lo ? v : lo;
    return v <= hi ? v : hi;
}

#define OL_TO_INT(OUT_T) \
    (OUT_T)(int32_t)(((clamp_f32(v, lo, hi) + OL_ROUND_MAGIC) - OL_ROUND_MAGIC) + zp)

/* One row of one channel: tile_cols samples from column col0 on, written `channels` apart.
 * Columns left or right of the scene repeat its first or last column; the in-scene run over a
 * contiguous row is a plain loop the compiler vectorises. */
#define OL_DEFINE_ROW(NAME, SRC_T, OUT_T, CONVERT, CHECK_FINITE)                               \
    static int64_t NAME(const char *row_ptr, ptrdiff_t stride_col, int64_t cols, int64_t col0, \
                        int64_t tile_cols, float offset, float factor, float lo, float hi,     \
                        float zp, void *out_v, int64_t channels) {                             \
        OUT_T *out = (OUT_T *)out_v;                                                           \
        int64_t bad = 0, w = 0;                                                                \
        const int64_t w_lo = clamp_i64(-col0, 0, tile_cols);                                   \
        const int64_t w_hi = clamp_i64(cols - col0, w_lo, tile_cols);                          \
        const SRC_T first = *(const SRC_T *)row_ptr;                                           \
        const SRC_T last = *(const SRC_T *)(row_ptr + (cols - 1) * stride_col);                \
        (void)lo; (void)hi; (void)zp;                                                          \
        for (; w < w_lo; ++w) OL_SAMPLE(first, CONVERT, CHECK_FINITE)                          \
        if (stride_col == (ptrdiff_t)sizeof(SRC_T)) {                                          \
            const SRC_T *p = (const SRC_T *)row_ptr + col0;                                    \
            for (; w < w_hi; ++w) OL_SAMPLE(p[w], CONVERT, CHECK_FINITE)                       \
        } else {                                                                               \
            for (; w < w_hi; ++w)                                                              \
                OL_SAMPLE(*(const SRC_T *)(row_ptr + (col0 + w) * stride_col), CONVERT,        \
                          CHECK_FINITE)                                                        \
        }                                                                                      \
        for (; w < tile_cols; ++w) OL_SAMPLE(last, CONVERT, CHECK_FINITE)                      \
        return bad;                                                                            \
    }

#define OL_SAMPLE(XEXPR, CONVERT, CHECK_FINITE)       \
    {                                                 \
        const float x = (float)(XEXPR);               \
        if (CHECK_FINITE) bad += !isfinite(x);        \
        const float v = (x - offset) * factor;        \
        out[w * channels] = CONVERT;                  \
    }

OL_DEFINE_ROW(row_u8_i8, uint8_t, int8_t, OL_TO_INT(int8_t), 0)
OL_DEFINE_ROW(row_u8_u8, uint8_t, uint8_t, OL_TO_INT(uint8_t), 0)
OL_DEFINE_ROW(row_u8_f32, uint8_t, float, v, 0)
OL_DEFINE_ROW(row_u16_i8, uint16_t, int8_t, OL_TO_INT(int8_t), 0)
OL_DEFINE_ROW(row_u16_u8, uint16_t, uint8_t, OL_TO_INT(uint8_t), 0)
OL_DEFINE_ROW(row_u16_f32, uint16_t, float, v, 0)
OL_DEFINE_ROW(row_f32_i8, float, int8_t, OL_TO_INT(int8_t), 1)
OL_DEFINE_ROW(row_f32_u8, float, uint8_t, OL_TO_INT(uint8_t), 1)
OL_DEFINE_ROW(row_f32_f32, float, float, v, 1)

/* All CH channels of one tile row that lies wholly inside the scene, on contiguous source rows:
 * one pass over the pixels writing each pixel's channels side by side. With CH a constant the
 * compiler vectorises it with interleaving stores, about twice as fast as a channel at a time.
 * This is the common case: 3-band (RGB) and 4-band (RGB + NIR) models. */
#define OL_DEFINE_PIXELS(NAME, SRC_T, OUT_T, CONVERT, CHECK_FINITE, CH)                      \
    static int64_t NAME(const char *const *rows, int64_t tile_cols, const float *offsets,    \
                        const float *factors, float lo, float hi, float zp, void *out_v) {   \
        OUT_T *restrict out = (OUT_T *)out_v;                                                 \
        const SRC_T *restrict src[CH];                                                        \
        float offset[CH], factor[CH];                                                         \
        int64_t bad = 0;                                                                      \
        (void)lo; (void)hi; (void)zp;                                                         \
        for (int c = 0; c < CH; ++c) {                                                        \
            src[c] = (const SRC_T *)rows[c];                                                  \
            offset[c] = offsets[c];                                                           \
            factor[c] = factors[c];                                                           \
        }                                                                                     \
        for (int64_t w = 0; w < tile_cols; ++w) {                                             \
            for (int c = 0; c < CH; ++c) {                                                    \
                const float x = (float)src[c][w];                                             \
                if (CHECK_FINITE) bad += !isfinite(x);                                        \
                const float v = (x - offset[c]) * factor[c];                                  \
                out[w * CH + c] = CONVERT;                                                    \
            }                                                                                 \
        }                                                                                     \
        return bad;                                                                           \
    }

#define OL_DEFINE_PIXELS_FOR(CH)                                                              \
    OL_DEFINE_PIXELS(px##CH##_u8_i8, uint8_t, int8_t, OL_TO_INT(int8_t), 0, CH)               \
    OL_DEFINE_PIXELS(px##CH##_u8_u8, uint8_t, uint8_t, OL_TO_INT(uint8_t), 0, CH)             \
    OL_DEFINE_PIXELS(px##CH##_u8_f32, uint8_t, float, v, 0, CH)                               \
    OL_DEFINE_PIXELS(px##CH##_u16_i8, uint16_t, int8_t, OL_TO_INT(int8_t), 0, CH)             \
    OL_DEFINE_PIXELS(px##CH##_u16_u8, uint16_t, uint8_t, OL_TO_INT(uint8_t), 0, CH)           \
    OL_DEFINE_PIXELS(px##CH##_u16_f32, uint16_t, float, v, 0, CH)                             \
    OL_DEFINE_PIXELS(px##CH##_f32_i8, float, int8_t, OL_TO_INT(int8_t), 1, CH)                \
    OL_DEFINE_PIXELS(px##CH##_f32_u8, float, uint8_t, OL_TO_INT(uint8_t), 1, CH)              \
    OL_DEFINE_PIXELS(px##CH##_f32_f32, float, float, v, 1, CH)

OL_DEFINE_PIXELS_FOR(3)
OL_DEFINE_PIXELS_FOR(4)

typedef int64_t (*pixels_fn)(const char *const *, int64_t, const float *, const float *, float,
                             float, float, void *);

static const pixels_fn PIXEL_FNS[2][3][3] = {
    {{px3_u8_i8, px3_u8_u8, px3_u8_f32},
     {px3_u16_i8, px3_u16_u8, px3_u16_f32},
     {px3_f32_i8, px3_f32_u8, px3_f32_f32}},
    {{px4_u8_i8, px4_u8_u8, px4_u8_f32},
     {px4_u16_i8, px4_u16_u8, px4_u16_f32},
     {px4_f32_i8, px4_f32_u8, px4_f32_f32}},
};

typedef int64_t (*row_fn)(const char *, ptrdiff_t, int64_t, int64_t, int64_t, float, float,
                          float, float, float, void *, int64_t);

static const row_fn ROW_FNS[3][3] = {
    {row_u8_i8, row_u8_u8, row_u8_f32},
    {row_u16_i8, row_u16_u8, row_u16_f32},
    {row_f32_i8, row_f32_u8, row_f32_f32},
};

int64_t ol_preprocess_tiles(const ol_scene *scene, const ol_tile_spec *spec,
                            const int64_t *origins, int64_t n, void *out) {
    const row_fn row = ROW_FNS[scene->type][spec->out_type];
    const size_t item = spec->out_type == OL_OUT_F32 ? 4 : 1;
    const int64_t ch = spec->channels;
    const float zp = (float)spec->zero_point;
    /* Bounds on v so that rint(v) + zero_point lands inside the output type. */
    float lo = 0.0f, hi = 0.0f;
    if (spec->out_type == OL_OUT_I8) {
        lo = -128.0f - zp;
        hi = 127.0f - zp;
    } else if (spec->out_type == OL_OUT_U8) {
        lo = 0.0f - zp;
        hi = 255.0f - zp;
    }
    const size_t row_bytes = (size_t)(spec->tile_cols * ch) * item;
    const size_t src_item = scene->type == OL_SRC_U8 ? 1 : (scene->type == OL_SRC_U16 ? 2 : 4);
    const pixels_fn pixels = (ch == 3 || ch == 4) && scene->stride_col == (ptrdiff_t)src_item
                                 ? PIXEL_FNS[ch - 3][scene->type][spec->out_type]
                                 : NULL;
    int64_t bad = 0;
    char *dst = (char *)out;
    for (int64_t t = 0; t < n; ++t) {
        const int64_t row0 = origins[2 * t], col0 = origins[2 * t + 1];
        const int inside = col0 >= 0 && col0 + spec->tile_cols <= scene->cols;
        for (int64_t r = 0; r < spec->tile_rows; ++r, dst += row_bytes) {
            const int64_t sr = clamp_i64(row0 + r, 0, scene->rows - 1);
            if (pixels && inside) {
                const char *rows[4];
                for (int64_t c = 0; c < ch; ++c)
                    rows[c] = scene->data + spec->band_index[c] * scene->stride_band +
                              sr * scene->stride_row + col0 * scene->stride_col;
                bad += pixels(rows, spec->tile_cols, spec->offset, spec->factor, lo, hi, zp, dst);
                continue;
            }
            for (int64_t c = 0; c < ch; ++c) {
                const char *src_row = scene->data + spec->band_index[c] * scene->stride_band +
                                      sr * scene->stride_row;
                bad += row(src_row, scene->stride_col, scene->cols, col0, spec->tile_cols,
                           spec->offset[c], spec->factor[c], lo, hi, zp, dst + (size_t)c * item,
                           ch);
            }
        }
    }
    return bad;
}
