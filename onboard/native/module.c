/* CPython binding of the fused tile pre-processing kernel: onboard._native. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "framing.h"
#include "preprocess.h"

/* The element type a buffer format names, ignoring a byte-order prefix for native order. */
static char buffer_kind(const Py_buffer *view) {
    const char *f = view->format ? view->format : "B";
    if (*f == '@' || *f == '=' || *f == '<') ++f;
    return f[0] != '\0' && f[1] == '\0' ? f[0] : '?';
}

static int scene_type(char kind, ol_src_type *out) {
    switch (kind) {
        case 'B': *out = OL_SRC_U8; return 1;
        case 'H': *out = OL_SRC_U16; return 1;
        case 'f': *out = OL_SRC_F32; return 1;
        default: return 0;
    }
}

static int out_type(char kind, ol_out_type *out) {
    switch (kind) {
        case 'b': *out = OL_OUT_I8; return 1;
        case 'B': *out = OL_OUT_U8; return 1;
        case 'f': *out = OL_OUT_F32; return 1;
        default: return 0;
    }
}

static int check_vector(const Py_buffer *view, char kind, Py_ssize_t itemsize, Py_ssize_t len,
                        const char *name) {
    if (buffer_kind(view) != kind || view->itemsize != itemsize || view->ndim != 1 ||
        view->shape[0] != len) {
        PyErr_Format(PyExc_ValueError, "%s must be a contiguous vector of %zd items of type '%c'",
                     name, len, kind);
        return 0;
    }
    return 1;
}

PyDoc_STRVAR(preprocess_tiles_doc,
"preprocess_tiles(scene, origins, tile_rows, tile_cols, band_index, offset, factor,\n"
"                 zero_point, out) -> int\n\n"
"Write the tiles whose top-left corners are the rows of `origins` (int64, n x 2) from\n"
"`scene` (a band, row, col array of uint8, uint16 or float32, any strides) into `out`\n"
"(C-contiguous n x tile_rows x tile_cols x channels of int8, uint8 or float32). Channel c\n"
"takes scene band band_index[c] (int64) and becomes (x - offset[c]) * factor[c] (float32),\n"
"rounded half to even, shifted by zero_point and saturated for integer outputs. Pixels\n"
"outside the scene repeat its nearest edge. Returns the count of non-finite samples read.");

static PyObject *preprocess_tiles(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *o_scene, *o_origins, *o_bands, *o_offset, *o_factor, *o_out;
    long long tile_rows, tile_cols;
    int zero_point;
    if (!PyArg_ParseTuple(args, "OOLLOOOiO:preprocess_tiles", &o_scene, &o_origins, &tile_rows,
                          &tile_cols, &o_bands, &o_offset, &o_factor, &zero_point, &o_out))
        return NULL;

    Py_buffer scene = {0}, origins = {0}, bands = {0}, offset = {0}, factor = {0}, out = {0};
    PyObject *result = NULL;
    if (PyObject_GetBuffer(o_scene, &scene, PyBUF_STRIDED_RO | PyBUF_FORMAT) < 0) goto done;
    if (PyObject_GetBuffer(o_origins, &origins, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) goto done;
    if (PyObject_GetBuffer(o_bands, &bands, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) goto done;
    if (PyObject_GetBuffer(o_offset, &offset, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) goto done;
    if (PyObject_GetBuffer(o_factor, &factor, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) goto done;
    if (PyObject_GetBuffer(o_out, &out, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0)
        goto done;

    ol_scene sc;
    if (scene.ndim != 3 || !scene_type(buffer_kind(&scene), &sc.type)) {
        PyErr_SetString(PyExc_ValueError,
                        "scene must be a 3-d (band, row, col) array of uint8, uint16 or float32");
        goto done;
    }
    sc.data = (const char *)scene.buf;
    sc.bands = scene.shape[0];
    sc.rows = scene.shape[1];
    sc.cols = scene.shape[2];
    sc.stride_band = scene.strides[0];
    sc.stride_row = scene.strides[1];
    sc.stride_col = scene.strides[2];
    if (sc.rows < 1 || sc.cols < 1) {
        PyErr_SetString(PyExc_ValueError, "scene has no pixels");
        goto done;
    }
    if (tile_rows < 1 || tile_cols < 1) {
        PyErr_SetString(PyExc_ValueError, "tile_rows and tile_cols must be positive");
        goto done;
    }
    if (buffer_kind(&origins) != 'q' && buffer_kind(&origins) != 'l') {
        PyErr_SetString(PyExc_ValueError, "origins must be int64");
        goto done;
    }
    if (origins.itemsize != 8 || origins.ndim != 2 || origins.shape[1] != 2) {
        PyErr_SetString(PyExc_ValueError, "origins must be an n x 2 int64 array");
        goto done;
    }
    const Py_ssize_t n = origins.shape[0];
    const Py_ssize_t ch = bands.ndim == 1 ? bands.shape[0] : -1;
    if (ch < 1 || bands.itemsize != 8 ||
        (buffer_kind(&bands) != 'q' && buffer_kind(&bands) != 'l')) {
        PyErr_SetString(PyExc_ValueError, "band_index must be a non-empty int64 vector");
        goto done;
    }
    if (!check_vector(&offset, 'f', 4, ch, "offset") ||
        !check_vector(&factor, 'f', 4, ch, "factor"))
        goto done;
    const int64_t *band_index = (const int64_t *)bands.buf;
    for (Py_ssize_t c = 0; c < ch; ++c) {
        if (band_index[c] < 0 || band_index[c] >= sc.bands) {
            PyErr_Format(PyExc_ValueError, "band_index[%zd] = %lld is outside the scene's %lld bands",
                         c, (long long)band_index[c], (long long)sc.bands);
            goto done;
        }
    }
    ol_tile_spec spec = {tile_rows, tile_cols, ch, band_index, (const float *)offset.buf,
                         (const float *)factor.buf, zero_point, OL_OUT_I8};
    if (!out_type(buffer_kind(&out), &spec.out_type)) {
        PyErr_SetString(PyExc_ValueError, "out must be int8, uint8 or float32");
        goto done;
    }
    const Py_ssize_t need = n * tile_rows * tile_cols * ch * (spec.out_type == OL_OUT_F32 ? 4 : 1);
    if (out.len != need) {
        PyErr_Format(PyExc_ValueError, "out holds %zd bytes, %zd tiles of %lld x %lld x %zd need %zd",
                     out.len, n, tile_rows, tile_cols, ch, need);
        goto done;
    }
    int64_t bad;
    Py_BEGIN_ALLOW_THREADS
    bad = ol_preprocess_tiles(&sc, &spec, (const int64_t *)origins.buf, n, out.buf);
    Py_END_ALLOW_THREADS
    result = PyLong_FromLongLong(bad);

done:
    PyBuffer_Release(&scene);
    PyBuffer_Release(&origins);
    PyBuffer_Release(&bands);
    PyBuffer_Release(&offset);
    PyBuffer_Release(&factor);
    PyBuffer_Release(&out);
    return result;
}

PyDoc_STRVAR(crc32c_doc,
"crc32c(data, value=0) -> int\n\n"
"CRC-32C (Castagnoli) of a bytes-like `data`, continued from `value`:\n"
"crc32c(b, crc32c(a)) == crc32c(a + b), as zlib.crc32 chains.");

static PyObject *crc32c(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer data;
    unsigned int value = 0;
    if (!PyArg_ParseTuple(args, "y*|I:crc32c", &data, &value)) return NULL;
    uint32_t crc;
    Py_BEGIN_ALLOW_THREADS
    crc = ol_crc32c(value, (const uint8_t *)data.buf, (size_t)data.len);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&data);
    return PyLong_FromUnsignedLong(crc);
}

PyDoc_STRVAR(cobs_encode_doc,
"cobs_encode(data) -> bytes\n\n"
"The COBS encoding of `data`: no zero byte in it, so 0x00 can delimit frames.");

static PyObject *cobs_encode(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer data;
    if (!PyArg_ParseTuple(args, "y*:cobs_encode", &data)) return NULL;
    PyObject *out = PyBytes_FromStringAndSize(NULL, OL_COBS_MAX_ENCODED(data.len));
    if (out != NULL) {
        size_t n = ol_cobs_encode((const uint8_t *)data.buf, (size_t)data.len, (uint8_t *)PyBytes_AS_STRING(out));
        if (_PyBytes_Resize(&out, (Py_ssize_t)n) < 0) out = NULL;
    }
    PyBuffer_Release(&data);
    return out;
}

PyDoc_STRVAR(cobs_decode_doc,
"cobs_decode(data) -> bytes\n\n"
"Decode one COBS-encoded frame (without its delimiter); ValueError if it is no COBS encoding.");

static PyObject *cobs_decode(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer data;
    if (!PyArg_ParseTuple(args, "y*:cobs_decode", &data)) return NULL;
    PyObject *out = PyBytes_FromStringAndSize(NULL, data.len);
    if (out != NULL) {
        ptrdiff_t n = ol_cobs_decode((const uint8_t *)data.buf, (size_t)data.len, (uint8_t *)PyBytes_AS_STRING(out));
        if (n < 0) {
            Py_DECREF(out);
            out = NULL;
            PyErr_SetString(PyExc_ValueError, "not a COBS encoding");
        } else if (_PyBytes_Resize(&out, (Py_ssize_t)n) < 0) {
            out = NULL;
        }
    }
    PyBuffer_Release(&data);
    return out;
}

static PyMethodDef methods[] = {
    {"preprocess_tiles", preprocess_tiles, METH_VARARGS, preprocess_tiles_doc},
    {"crc32c", crc32c, METH_VARARGS, crc32c_doc},
    {"cobs_encode", cobs_encode, METH_VARARGS, cobs_encode_doc},
    {"cobs_decode", cobs_decode, METH_VARARGS, cobs_decode_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_native", "orbitlite's C kernels for the on-board hot path.", -1,
    methods,
};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
