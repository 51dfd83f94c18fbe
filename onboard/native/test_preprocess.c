/* ctest unit tests of the fused pre-processing kernel, independent of Python. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "preprocess.h"

/* A 2-band 3x4 uint16 scene, band-sequential. */
static const uint16_t SCENE_U16[2][3][4] = {
    {{0, 100, 200, 300}, {400, 500, 600, 700}, {800, 900, 1000, 1100}},
    {{5, 15, 25, 35}, {45, 55, 65, 75}, {85, 95, 105, 115}},
};

static ol_scene u16_scene(void) {
    ol_scene s = {(const char *)SCENE_U16, OL_SRC_U16, 2, 3, 4,
                  sizeof(SCENE_U16[0]), sizeof(SCENE_U16[0][0]), sizeof(uint16_t)};
    return s;
}

static void test_float_output_selects_and_normalises_bands(void) {
    ol_scene s = u16_scene();
    int64_t bands[2] = {1, 0}; /* swapped on purpose */
    float offset[2] = {5.0f, 100.0f}, factor[2] = {0.1f, 0.01f};
    ol_tile_spec spec = {2, 2, 2, bands, offset, factor, 0, OL_OUT_F32};
    int64_t origin[2] = {1, 1};
    float out[2 * 2 * 2];
    int64_t bad = ol_preprocess_tiles(&s, &spec, origin, 1, out);
    CHECK(bad == 0, "integer scenes never report non-finite samples");
    /* out[r][w][c]; channel 0 is band 1, channel 1 is band 0 */
    CHECK(out[0] == (55.0f - 5.0f) * 0.1f, "r0 w0 c0 = %g", out[0]);
    CHECK(out[1] == (500.0f - 100.0f) * 0.01f, "r0 w0 c1 = %g", out[1]);
    CHECK(out[2] == (65.0f - 5.0f) * 0.1f, "r0 w1 c0 = %g", out[2]);
    CHECK(out[7] == (1000.0f - 100.0f) * 0.01f, "r1 w1 c1 = %g", out[7]);
}

static void test_int8_rounds_half_to_even_and_saturates(void) {
    /* one band, one row: values chosen so (x - 0) * 0.5 hits .5 ties and the int8 limits */
    static const float row[6] = {1.0f, 3.0f, 5.0f, -1.0f, 1000.0f, -1000.0f};
    ol_scene s = {(const char *)row, OL_SRC_F32, 1, 1, 6, sizeof(row), sizeof(row), 4};
    int64_t bands[1] = {0};
    float offset[1] = {0.0f}, factor[1] = {0.5f};
    ol_tile_spec spec = {1, 6, 1, bands, offset, factor, 3, OL_OUT_I8};
    int64_t origin[2] = {0, 0};
    int8_t out[6];
    ol_preprocess_tiles(&s, &spec, origin, 1, out);
    /* 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> -0; then + 3 and saturate */
    const int8_t want[6] = {3, 5, 5, 3, 127, -128};
    for (int i = 0; i < 6; ++i) CHECK(out[i] == want[i], "int8[%d] = %d, want %d", i, out[i], want[i]);
}

static void test_uint8_output_saturates_at_zero_and_255(void) {
    static const uint8_t row[3] = {0, 128, 255};
    ol_scene s = {(const char *)row, OL_SRC_U8, 1, 1, 3, 3, 3, 1};
    int64_t bands[1] = {0};
    float offset[1] = {128.0f}, factor[1] = {4.0f};
    ol_tile_spec spec = {1, 3, 1, bands, offset, factor, 128, OL_OUT_U8};
    int64_t origin[2] = {0, 0};
    uint8_t out[3];
    ol_preprocess_tiles(&s, &spec, origin, 1, out);
    CHECK(out[0] == 0 && out[1] == 128 && out[2] == 255, "uint8 = %d %d %d", out[0], out[1], out[2]);
}

static void test_edges_repeat_nearest_pixel(void) {
    ol_scene s = u16_scene();
    int64_t bands[1] = {0};
    float offset[1] = {0.0f}, factor[1] = {1.0f};
    ol_tile_spec spec = {3, 3, 1, bands, offset, factor, 0, OL_OUT_F32};
    int64_t origins[4] = {-1, -1, 2, 3}; /* top-left corner and bottom-right corner */
    float out[2 * 9];
    ol_preprocess_tiles(&s, &spec, origins, 2, out);
    const float want_tl[9] = {0, 0, 100, 0, 0, 100, 400, 400, 500};
    const float want_br[9] = {1100, 1100, 1100, 1100, 1100, 1100, 1100, 1100, 1100};
    for (int i = 0; i < 9; ++i) {
        CHECK(out[i] == want_tl[i], "top-left[%d] = %g, want %g", i, out[i], want_tl[i]);
        CHECK(out[9 + i] == want_br[i], "bottom-right[%d] = %g, want %g", i, out[9 + i], want_br[i]);
    }
}

static void test_pixel_interleaved_layout_reads_in_place(void) {
    /* rows x cols x bands, as a chunky GeoTIFF: 2 x 2 x 3 */
    static const uint16_t hwc[2][2][3] = {{{1, 2, 3}, {4, 5, 6}}, {{7, 8, 9}, {10, 11, 12}}};
    ol_scene s = {(const char *)hwc, OL_SRC_U16, 3, 2, 2, sizeof(uint16_t), sizeof(hwc[0]),
                  sizeof(hwc[0][0])};
    int64_t bands[1] = {2};
    float offset[1] = {0.0f}, factor[1] = {1.0f};
    ol_tile_spec spec = {2, 2, 1, bands, offset, factor, 0, OL_OUT_F32};
    int64_t origin[2] = {0, 0};
    float out[4];
    ol_preprocess_tiles(&s, &spec, origin, 1, out);
    CHECK(out[0] == 3 && out[1] == 6 && out[2] == 9 && out[3] == 12, "band 2 = %g %g %g %g",
          out[0], out[1], out[2], out[3]);
}

static void test_non_finite_samples_are_counted(void) {
    const float row[4] = {1.0f, NAN, INFINITY, 2.0f};
    ol_scene s = {(const char *)row, OL_SRC_F32, 1, 1, 4, sizeof(row), sizeof(row), 4};
    int64_t bands[1] = {0};
    float offset[1] = {0.0f}, factor[1] = {1.0f};
    ol_tile_spec spec = {1, 4, 1, bands, offset, factor, 0, OL_OUT_I8};
    int64_t origin[2] = {0, 0};
    int8_t out[4];
    CHECK(ol_preprocess_tiles(&s, &spec, origin, 1, out) == 2, "two non-finite samples");
}

static void test_four_band_fast_path_matches_the_formula(void) {
    /* 4 bands of 5 x 6: tiles wholly inside take the interleaved path, edge tiles the other;
     * both must give (x - offset) * factor exactly. */
    uint16_t scene[4][5][6];
    for (int b = 0; b < 4; ++b)
        for (int r = 0; r < 5; ++r)
            for (int c = 0; c < 6; ++c) scene[b][r][c] = (uint16_t)(1000 * b + 37 * r + 11 * c);
    ol_scene s = {(const char *)scene, OL_SRC_U16, 4, 5, 6, sizeof(scene[0]), sizeof(scene[0][0]),
                  sizeof(uint16_t)};
    int64_t bands[4] = {2, 0, 3, 1};
    float offset[4] = {10.0f, 20.0f, 30.0f, 40.0f}, factor[4] = {0.5f, 0.25f, 0.125f, 2.0f};
    ol_tile_spec spec = {3, 4, 4, bands, offset, factor, 0, OL_OUT_F32};
    int64_t origins[4] = {1, 1, 2, 4}; /* inside; hanging over the right edge */
    float out[2 * 3 * 4 * 4];
    ol_preprocess_tiles(&s, &spec, origins, 2, out);
    for (int t = 0; t < 2; ++t)
        for (int r = 0; r < 3; ++r)
            for (int w = 0; w < 4; ++w)
                for (int c = 0; c < 4; ++c) {
                    int sr = (int)origins[2 * t] + r, sc = (int)origins[2 * t + 1] + w;
                    sr = sr > 4 ? 4 : sr;
                    sc = sc > 5 ? 5 : sc;
                    const float want = ((float)scene[bands[c]][sr][sc] - offset[c]) * factor[c];
                    const float got = out[((t * 3 + r) * 4 + w) * 4 + c];
                    CHECK(got == want, "tile %d r%d w%d c%d = %g, want %g", t, r, w, c, got, want);
                }
}

int main(void) {
    test_four_band_fast_path_matches_the_formula();
    test_float_output_selects_and_normalises_bands();
    test_int8_rounds_half_to_even_and_saturates();
    test_uint8_output_saturates_at_zero_and_255();
    test_edges_repeat_nearest_pixel();
    test_pixel_interleaved_layout_reads_in_place();
    test_non_finite_samples_are_counted();
    return check_report("preprocess");
}
