/* Fused tile pre-processing: scene window -> band selection -> per-band normalisation ->
 * input quantisation -> the interpreter's input buffer, in one pass with no temporaries. */
#ifndef ORBITLITE_PREPROCESS_H
#define ORBITLITE_PREPROCESS_H

#include <stddef.h>
#include <stdint.h>

typedef enum { OL_SRC_U8 = 0, OL_SRC_U16 = 1, OL_SRC_F32 = 2 } ol_src_type;
typedef enum { OL_OUT_I8 = 0, OL_OUT_U8 = 1, OL_OUT_F32 = 2 } ol_out_type;

/* A (band, row, col) view of a scene; strides are in bytes, so band-sequential,
 * pixel-interleaved and memory-mapped layouts are all read in place. */
typedef struct {
    const char *data;
    ol_src_type type;
    int64_t bands, rows, cols;
    ptrdiff_t stride_band, stride_row, stride_col;
} ol_scene;

/* What one model input tile is made of. For channel c the value written is
 *   float out:     (x[band_index[c]] - offset[c]) * factor[c]
 *   integer out:   saturate(rint((x - offset[c]) * factor[c]) + zero_point)
 * with factor = 1/std for float models and 1/(std * input_scale) for quantised ones, all in
 * float32 arithmetic, rounding half to even. Pixels outside the scene repeat the nearest edge. */
typedef struct {
    int64_t tile_rows, tile_cols, channels;
    const int64_t *band_index;
    const float *offset;
    const float *factor;
    int32_t zero_point;
    ol_out_type out_type;
} ol_tile_spec;

/* Fills `out` (n x tile_rows x tile_cols x channels, C order) with the n tiles whose top-left
 * corners are origins[2i] (row), origins[2i+1] (col). Returns the number of non-finite
 * samples read (always 0 for integer scenes). */
int64_t ol_preprocess_tiles(const ol_scene *scene, const ol_tile_spec *spec,
                            const int64_t *origins, int64_t n, void *out);

#endif
