"""Raster sources: a scene on disk, with band names, that fills a strip of rows into a buffer the
caller owns, so a whole scene streams through bounded memory.

`open_raster` picks the source by what the path is:
- a `.npy` (band, row, col) array, or a raw (band, row, col) file described by a sidecar
  `<file>.json` such as {"shape": [13, 10980, 10980], "dtype": "uint16", "bands": ["B01", ...]};
- a GeoTIFF (read with tifffile): band-sequential or pixel-interleaved, tiled or striped,
  uncompressed or compressed; a read touches only the strips or tiles that cover its rows;
- a folder of one GeoTIFF per band named `*_<band>.tif` (Sentinel-2 granules converted to GeoTIFF,
  BigEarthNet patches), coarser bands repeated onto the finest band's grid.
"""

from __future__ import annotations

import json
import math
import os
import re
import xml.etree.ElementTree as ElementTree
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import tifffile

from onboard.errors import SceneError
from onboard.preprocess import band_positions
from onboard.scene import SUPPORTED_DTYPES

# A compressed strip or tile is decoded whole, so its size bounds the memory a read needs; larger
# segments (a compressed image stored as one strip) cannot be streamed on the board.
MAX_SEGMENT_BYTES = 64 << 20
SIDECAR_KEYS = ("shape", "dtype", "bands", "footprint")
JPEG_COMPRESSIONS = {6, 7, 34892, 33007}  # these need the page's JPEG tables to decode a segment
# `<anything>_B02.tif`, `_B8A.tif`, `_B02_10m.tif` (Sentinel-2 L2A), `_B4.TIF` (Landsat)
BAND_FILE = re.compile(r"_(B\d{1,2}A?)(?:_\d+m)?\.(tiff?|jp2)$", re.IGNORECASE)
JP2_FIX = "convert it to GeoTIFF on the ground (e.g. gdal_translate -of GTiff IN.jp2 OUT.tif)"


class Raster(ABC):
    """A scene on disk, read a strip of rows at a time.

    `bands` are the band names in source order; `shape` is (rows, cols) of the output grid (for a
    band folder, the finest band's grid); `dtype` is uint8, uint16 or float32 in native byte order;
    `footprint`, when the file georeferences itself, is {"crs": "EPSG:32633" (or None when the
    file's CRS has no EPSG code), "transform": [a, b, c, d, e, f], "bbox": [xmin, ymin, xmax, ymax]}
    with x = a * col + b * row + c and y = d * col + e * row + f at pixel corners."""

    path: Path
    id: str
    bands: tuple[str, ...]
    shape: tuple[int, int]
    dtype: np.dtype
    footprint: dict[str, Any] | None

    @abstractmethod
    def read_strip(self, band_index: Sequence[int], row0: int, out: np.ndarray) -> int:
        """Fill out[i, :n, :] with rows row0 .. row0 + n - 1 of band `band_index[i]` and return n:
        as many rows as `out` holds (out.shape[1]), fewer at the bottom of the scene. `out` is a
        C-contiguous (len(band_index), strip_rows, cols) array of this raster's dtype."""

    @abstractmethod
    def close(self) -> None:
        """Release the files; the raster cannot be read afterwards."""

    def band_indices(self, names: Sequence[str]) -> list[int]:
        """Positions of `names` in this raster, matched by name."""
        return band_positions(self.bands, names, str(self.path))

    def __enter__(self) -> "Raster":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _rows_to_fill(self, band_index: Sequence[int], row0: int, out: np.ndarray) -> int:
        # A wrong buffer or index is the caller's bug, not a fault of the scene: ValueError.
        rows, cols = self.shape
        if not 0 <= row0 < rows:
            raise ValueError(f"{self.path}: row {row0} is outside the scene's {rows} rows")
        if out.ndim != 3 or out.shape[0] != len(band_index) or out.shape[2] != cols or out.dtype != self.dtype:
            raise ValueError(f"{self.path}: out must be ({len(band_index)}, rows, {cols}) {self.dtype}, "
                             f"got {out.shape} {out.dtype}")
        if not out.flags.c_contiguous:
            raise ValueError(f"{self.path}: out must be C-contiguous")
        if any(not 0 <= b < len(self.bands) for b in band_index):
            raise ValueError(f"{self.path}: band index out of range in {list(band_index)} ({len(self.bands)} bands)")
        return min(out.shape[1], rows - row0)


def open_raster(path: Path, bands: Sequence[str] | None = None) -> Raster:
    """Open the scene at `path` (see the module's docstring for the formats) without reading its
    pixels. Where the file names its bands (a sidecar, GDAL band descriptions in a GeoTIFF, the
    file names of a band folder), `bands` picks some of them, in the order given; where it does
    not (`.npy`, a GeoTIFF without band descriptions), `bands` names them in file order: `.npy`
    needs it, a GeoTIFF's bands are otherwise called B1, B2, ... Raises SceneError, naming the
    file and the way out, for anything it cannot read."""
    path = Path(path)
    if path.is_dir():
        return _with_bands(BandFolderRaster(path), bands, named=True)
    if not path.is_file():
        raise SceneError(f"scene {path} not found: check the path")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        if bands is None:
            raise SceneError(f"scene {path} carries no band names: name its bands with --bands, e.g. B02,B03,B04,B08")
        return ArrayFileRaster.from_npy(path, bands)
    if suffix in (".tif", ".tiff"):
        raster = TiffRaster(path)
        return _with_bands(raster, bands, named=raster.named)
    if suffix == ".jp2":
        raise SceneError(f"scene {path} is JPEG 2000, which the board cannot read without GDAL or glymur: {JP2_FIX}")
    if _sidecar(path).is_file():
        return _with_bands(ArrayFileRaster.from_sidecar(path), bands, named=True)
    raise SceneError(
        f"scene {path}: unsupported format {suffix!r} (supported: .npy, GeoTIFF .tif/.tiff, a folder of "
        f"per-band GeoTIFFs, or a raw (band, row, col) file described by {_sidecar(path).name})"
    )


def _with_bands(raster: Raster, bands: Sequence[str] | None, named: bool) -> Raster:
    if bands is None:
        return raster
    try:
        if named:
            return _BandSubset(raster, bands)
        raster.bands = _checked_names(raster.path, bands, len(raster.bands))
        return raster
    except SceneError:
        raster.close()
        raise


def _checked_names(path: Path, names: Sequence[str], count: int) -> tuple[str, ...]:
    names = tuple(names)
    if len(names) != count:
        raise SceneError(f"scene {path} has {count} band(s) but {len(names)} band name(s) ({','.join(names)}) "
                         f"were given: name each band once, in file order")
    if len(set(names)) != len(names) or not all(names):
        raise SceneError(f"scene {path}: band names must be non-empty and distinct, got {','.join(names)}")
    return names


def _native_dtype(path: Path, dtype: np.dtype) -> np.dtype:
    native = dtype.newbyteorder("=")
    if native not in SUPPORTED_DTYPES:
        raise SceneError(
            f"scene {path} has dtype {native}; supported are {', '.join(d.name for d in SUPPORTED_DTYPES)} "
            f"(convert it, e.g. reflectance x 10000 as uint16)"
        )
    return native


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _open_fd(path: Path) -> int:
    try:
        return os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise SceneError(f"scene {path} cannot be opened ({exc.strerror}): check its permissions") from None


def _pread(fd: int, path: Path, size: int, offset: int) -> bytes:
    data = os.pread(fd, size, offset)
    if len(data) != size:
        raise SceneError(f"scene {path} is truncated: {size} bytes expected at byte {offset}, "
                         f"{len(data)} there; copy the file again")
    return data


class ArrayFileRaster(Raster):
    """A C-ordered (band, row, col) array stored raw in a file from byte `offset`: a `.npy` file,
    or a raw file with a sidecar. Reads go through pread into the caller's buffer: no page of the
    file stays mapped into the process, where (unlike the page cache) it would count in its RSS."""

    def __init__(self, path: Path, bands: Sequence[str], shape: Sequence[int], dtype: np.dtype, offset: int,
                 footprint: dict[str, Any] | None = None) -> None:
        if len(shape) != 3 or min(shape) < 1:
            raise SceneError(f"scene {path} has shape {tuple(shape)}; expected (band, row, col), e.g. (4, 300, 300)")
        self.path, self.id, self.footprint = path, path.stem, footprint
        self.dtype = _native_dtype(path, dtype)
        self.bands = _checked_names(path, bands, shape[0])
        self.shape = (int(shape[1]), int(shape[2]))
        self._swap = not dtype.isnative
        self._offset = offset
        self._fd = _open_fd(path)
        size = os.fstat(self._fd).st_size
        need = offset + math.prod(shape) * dtype.itemsize
        if size < need:
            self.close()
            raise SceneError(f"scene {path} is truncated: {size} bytes where shape {tuple(shape)} {dtype} needs "
                             f"{need}; copy the file again")

    @classmethod
    def from_npy(cls, path: Path, bands: Sequence[str]) -> "ArrayFileRaster":
        try:
            with open(path, "rb") as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise ValueError(f".npy format version {version} is not supported")
                offset = f.tell()
        except (OSError, ValueError, EOFError) as exc:
            raise SceneError(f"scene {path} is not a readable .npy file ({_one_line(exc)}): save it with numpy.save") from None
        if fortran_order:
            raise SceneError(f"scene {path} is stored in Fortran order: save it C-ordered, "
                             f"numpy.save(path, numpy.ascontiguousarray(a))")
        return cls(path, bands, shape, dtype, offset)

    @classmethod
    def from_sidecar(cls, path: Path) -> "ArrayFileRaster":
        sidecar = _sidecar(path)
        example = '{"shape": [4, 300, 300], "dtype": "uint16", "bands": ["B02", "B03", "B04", "B08"]}'
        try:
            meta = json.loads(sidecar.read_text())
        except (OSError, ValueError) as exc:
            raise SceneError(f"sidecar {sidecar} is not readable JSON ({_one_line(exc)}): write it like {example}") from None
        if not isinstance(meta, dict) or any(k not in meta for k in ("shape", "dtype", "bands")):
            raise SceneError(f"sidecar {sidecar} needs shape, dtype and bands, like {example}")
        unknown = sorted(set(meta) - set(SIDECAR_KEYS))
        if unknown:
            raise SceneError(f"sidecar {sidecar} has unknown key(s) {','.join(unknown)}; known: {','.join(SIDECAR_KEYS)}")
        shape, bands, footprint = meta["shape"], meta["bands"], meta.get("footprint")
        if (not isinstance(shape, list) or not all(isinstance(n, int) for n in shape)
                or not isinstance(bands, list) or not all(isinstance(b, str) for b in bands)
                or not isinstance(footprint, (dict, type(None)))):
            raise SceneError(f"sidecar {sidecar}: shape is a list of 3 integers, bands a list of names, footprint "
                             f"an object, like {example}")
        try:
            dtype = np.dtype(meta["dtype"])
        except TypeError:
            raise SceneError(f"sidecar {sidecar}: unknown dtype {meta['dtype']!r}; use uint8, uint16 or float32") from None
        return cls(path, bands, shape, dtype, 0, footprint)

    def read_strip(self, band_index: Sequence[int], row0: int, out: np.ndarray) -> int:
        n = self._rows_to_fill(band_index, row0, out)
        rows, cols = self.shape
        for i, b in enumerate(band_index):
            dst = out[i, :n]
            offset = self._offset + (b * rows + row0) * cols * self.dtype.itemsize
            if os.preadv(self._fd, [dst], offset) != dst.nbytes:
                raise SceneError(f"scene {self.path} is truncated (band {self.bands[b]}, rows from {row0}): "
                                 f"copy the file again")
            if self._swap:
                dst.byteswap(inplace=True)
        return n

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


@dataclass(frozen=True)
class _Plane:
    """The segments (strips or tiles) of one TIFF page that hold some of its bands, on one grid."""

    first: int  # index of this plane's first segment in the page's offsets
    offsets: np.ndarray
    counts: np.ndarray
    seg_rows: int
    seg_cols: int
    grid_cols: int  # segments across the image
    samples: int  # samples per pixel inside a segment
    file_dtype: np.dtype
    nodata: float
    decode: Callable[..., Any] | None  # None: stored uncompressed, so any rows are read directly
    decode_args: dict[str, Any]


class TiffRaster(Raster):
    """A TIFF's full-resolution image (overviews and masks are skipped; a stack of same-size pages
    is a band each). A read decodes only the segments covering its rows; the compressed segments
    that reach below it are kept for the next read, so a top-to-bottom pass decodes each segment
    once, whatever the strip height, holding about one row of decoded segments of the bands read
    (uncompressed segments are read row range by row range and never held)."""

    def __init__(self, path: Path) -> None:
        self.path, self.id = path, path.stem
        self._planes: list[_Plane] = []
        self._where: list[tuple[int, int]] = []  # band -> (plane, sample)
        try:
            with tifffile.TiffFile(path) as tif:
                pages = [p for p in tif.pages if not int(p.subfiletype) & 0b101]  # not an overview or mask
                first = pages[0] if pages else None
                if first is None or not first.shape:
                    raise SceneError(f"scene {path} holds no image: give a GeoTIFF with one")
                for page in pages:
                    self._add_page(page, first, tif.byteorder)
                descriptions = _gdal_band_names(first, len(self._where)) if len(pages) == 1 else None
                self.footprint = _footprint(first.geotiff_tags, self.shape)
        except (OSError, ValueError) as exc:  # tifffile's TiffFileError is a ValueError
            raise SceneError(f"scene {path} is not a readable TIFF ({_one_line(exc)}): copy it again or re-export it") from None
        self.named = descriptions is not None  # the file names its bands, so `bands` picks from them
        self.bands = descriptions or tuple(f"B{i + 1}" for i in range(len(self._where)))
        self._fd = _open_fd(path)
        self._carry: dict[tuple[int, int], np.ndarray] = {}
        self._check_extents()

    def _add_page(self, page: Any, first: Any, byteorder: str) -> None:
        separate, depth, rows, cols, contig = page.shaped
        if page.dtype is None:
            kind = getattr(page.sampleformat, "name", page.sampleformat)
            raise SceneError(f"scene {self.path} has {page.bitspersample}-bit {kind} samples, which numpy cannot hold; "
                             f"supported are uint8, uint16, float32 (convert it, e.g. reflectance x 10000 as uint16)")
        if page is first:
            self.shape = (rows, cols)
            self.dtype = _native_dtype(self.path, np.dtype(page.dtype))
        elif (rows, cols) != self.shape or page.dtype != self.dtype:
            raise SceneError(f"scene {self.path}: page {page.index} is {rows} x {cols} {page.dtype}, page 0 "
                             f"{self.shape[0]} x {self.shape[1]} {self.dtype}; keep one image per file")
        if depth != 1:
            raise SceneError(f"scene {self.path} is a volume of depth {depth}: give one 2-D image of bands")
        seg_rows, seg_cols = (page.tilelength, page.tilewidth) if page.is_tiled else (min(page.rowsperstrip or rows, rows), cols)
        grid_cols = -(-cols // seg_cols)
        per_plane = -(-rows // seg_rows) * grid_cols
        offsets = np.asarray(page.dataoffsets, dtype=np.int64)
        counts = np.asarray(page.databytecounts, dtype=np.int64)
        if len(offsets) != separate * per_plane or len(counts) != len(offsets):
            raise SceneError(f"scene {self.path}: page {page.index} lists {len(offsets)} segments where its layout "
                             f"needs {separate * per_plane}; the file is corrupt, re-export it")
        file_dtype = np.dtype(byteorder + self.dtype.char)
        raw = (page.compression == 1 and page.predictor == 1 and page.fillorder == 1
               and page.bitspersample == self.dtype.itemsize * 8)
        if not raw and seg_rows * seg_cols * contig * self.dtype.itemsize > MAX_SEGMENT_BYTES:
            raise SceneError(
                f"scene {self.path} stores {seg_rows} x {seg_cols} px compressed segments, too large to decode in "
                f"bounded memory: rewrite it tiled (gdal_translate -co TILED=YES -co COMPRESS=DEFLATE IN OUT)"
            )
        decode_args = ({"jpegtables": page.jpegtables, "jpegheader": page.jpegheader}
                       if page.compression in JPEG_COMPRESSIONS else {})
        if not raw:
            try:
                page.decode(None, 0, **decode_args)  # an empty segment: a no-op for a decoder that works
            except Exception as exc:  # tifffile stands in for a missing codec with one that always raises
                kind = getattr(page.compression, "name", page.compression)
                raise SceneError(f"scene {self.path} is {kind}-compressed, which cannot be decoded here "
                                 f"({_one_line(exc)}): pip install imagecodecs, or rewrite it deflate-compressed") from None
        for s in range(separate):
            part = slice(s * per_plane, (s + 1) * per_plane)
            self._planes.append(_Plane(
                first=s * per_plane, offsets=offsets[part], counts=counts[part], seg_rows=seg_rows,
                seg_cols=seg_cols, grid_cols=grid_cols, samples=contig, file_dtype=file_dtype,
                nodata=page.nodata, decode=None if raw else page.decode, decode_args=decode_args,
            ))
            self._where.extend((len(self._planes) - 1, c) for c in range(contig))

    def _check_extents(self) -> None:
        """Refuse a truncated file now rather than halfway through a scene."""
        size = os.fstat(self._fd).st_size
        rows = self.shape[0]
        for plane in self._planes:
            present = plane.counts > 0
            tops = np.arange(len(plane.offsets)) // plane.grid_cols * plane.seg_rows
            # Uncompressed segments must hold every row of theirs inside the image.
            need = (np.minimum(plane.seg_rows, rows - tops) * plane.seg_cols * plane.samples * plane.file_dtype.itemsize
                    if plane.decode is None else 1)
            short = present & ((plane.offsets + plane.counts > size) | (plane.counts < need))
            if short.any():
                i = int(np.argmax(short))
                self.close()
                raise SceneError(f"scene {self.path} is truncated: its segment {plane.first + i} (bytes "
                                 f"{plane.offsets[i]}..{plane.offsets[i] + plane.counts[i]}) lies past its "
                                 f"{size} bytes or is short; copy the file again")

    def read_strip(self, band_index: Sequence[int], row0: int, out: np.ndarray) -> int:
        n = self._rows_to_fill(band_index, row0, out)
        end, cols = row0 + n, self.shape[1]
        targets: dict[int, list[tuple[int, int]]] = {}
        for i, b in enumerate(band_index):
            plane, sample = self._where[b]
            targets.setdefault(plane, []).append((i, sample))
        carry: dict[tuple[int, int], np.ndarray] = {}
        for p, wanted in targets.items():
            plane = self._planes[p]
            for seg_row in range(row0 // plane.seg_rows, (end - 1) // plane.seg_rows + 1):
                top = seg_row * plane.seg_rows
                a, b = max(row0, top), min(end, top + plane.seg_rows)
                reaches_below = min(top + plane.seg_rows, self.shape[0]) > end
                for seg_col in range(plane.grid_cols):
                    c0 = seg_col * plane.seg_cols
                    c1 = min(c0 + plane.seg_cols, cols)
                    block = self._segment_rows(p, seg_row * plane.grid_cols + seg_col, a - top, b - top,
                                               carry if reaches_below else None)
                    for i, sample in wanted:
                        out[i, a - row0:b - row0, c0:c1] = plane.nodata if block is None else block[:, :c1 - c0, sample]
        self._carry = carry
        return n

    def _segment_rows(self, p: int, k: int, ra: int, rb: int, carry: dict | None) -> np.ndarray | None:
        """Rows ra..rb-1 of segment k of plane p as (rows, cols, samples); None for a segment the
        file leaves empty (GDAL's sparse files), which reads as no-data."""
        plane = self._planes[p]
        offset, count = int(plane.offsets[k]), int(plane.counts[k])
        if count == 0:
            return None
        if plane.decode is None:
            row_bytes = plane.seg_cols * plane.samples * plane.file_dtype.itemsize
            data = _pread(self._fd, self.path, (rb - ra) * row_bytes, offset + ra * row_bytes)
            return np.frombuffer(data, plane.file_dtype).reshape(rb - ra, plane.seg_cols, plane.samples)
        segment = self._carry.pop((p, k), None)  # released once used, before the next row is decoded
        if segment is None:
            data = _pread(self._fd, self.path, count, offset)
            try:
                # (depth, rows, cols, samples); tifffile refuses a segment short of its rows in the image
                segment = plane.decode(data, plane.first + k, **plane.decode_args)[0][0]
            except Exception as exc:  # codecs raise their own types (imagecodecs: RuntimeError, zlib.error)
                raise SceneError(f"scene {self.path}: segment {plane.first + k} does not decode ({_one_line(exc)}): "
                                 f"the file is corrupt, copy it again or re-export it") from None
        if carry is not None:
            carry[(p, k)] = segment
        return segment[ra:rb]

    def close(self) -> None:
        self._carry = {}
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _gdal_band_names(page: Any, count: int) -> tuple[str, ...] | None:
    """Band names from GDAL's band descriptions (GDAL_METADATA items of role "description"),
    when every band has a distinct one. The metadata is optional: when it is missing or cannot be
    parsed, the bands go by their default names."""
    text = page.tags.valueof(42112)
    if not text:
        return None
    try:
        items = ElementTree.fromstring(text).iter("Item")
        names = {int(item.get("sample", "")): (item.text or "").strip()
                 for item in items if item.get("role") == "description"}
    except (ElementTree.ParseError, ValueError):
        return None
    ordered = tuple(names.get(i, "") for i in range(count))
    if len(names) != count or not all(ordered) or len(set(ordered)) != count:
        return None
    return ordered


def _footprint(geo: dict[str, Any] | None, shape: tuple[int, int]) -> dict[str, Any] | None:
    """CRS, affine transform and bounding box from GeoTIFF tags, as GDAL reads them."""
    if not geo:
        return None
    if "ModelTransformation" in geo:
        m = np.asarray(geo["ModelTransformation"], dtype=np.float64).reshape(-1)
        a, b, c, d, e, f = m[0], m[1], m[3], m[4], m[5], m[7]
    elif "ModelPixelScale" in geo and len(geo.get("ModelTiepoint", ())) == 6:
        sx, sy = geo["ModelPixelScale"][:2]
        i, j, _, x, y, _ = geo["ModelTiepoint"]
        a, b, c, d, e, f = sx, 0.0, x - i * sx, 0.0, -sy, y + j * sy
    else:
        return None  # ground control points only: no affine transform
    if int(geo.get("GTRasterTypeGeoKey", 1)) == 2:  # PixelIsPoint: the tie point is a pixel's centre
        c, f = c - (a + b) / 2, f - (d + e) / 2
    code = geo.get("ProjectedCSTypeGeoKey") or geo.get("GeographicTypeGeoKey")
    crs = f"EPSG:{int(code)}" if code is not None and int(code) not in (0, 32767) else None
    rows, cols = shape
    xs = [a * x + b * y + c for x, y in ((0, 0), (cols, 0), (0, rows), (cols, rows))]
    ys = [d * x + e * y + f for x, y in ((0, 0), (cols, 0), (0, rows), (cols, rows))]
    return {"crs": crs, "transform": [float(v) for v in (a, b, c, d, e, f)],
            "bbox": [float(min(xs)), float(min(ys)), float(max(xs)), float(max(ys))]}


def _band_order(name: str) -> tuple[int, str]:
    # B8A sits between B08 and B09, as in Sentinel-2's own band order.
    return int(name[1:].rstrip("Aa")), name


class BandFolderRaster(Raster):
    """A folder of single-band GeoTIFFs named `*_<band>.tif`, on the grid of the finest band;
    a band of 1/k its size (20 m or 60 m beside 10 m) is repeated k x k, reading only the source
    rows a strip needs. Other files in the folder are ignored."""

    def __init__(self, folder: Path) -> None:
        self.path, self.id = folder, folder.name
        tifs: dict[str, Path] = {}
        jp2s: list[Path] = []
        try:
            entries = sorted(folder.iterdir())
        except OSError as exc:
            raise SceneError(f"scene {folder} cannot be listed ({exc.strerror}): check its permissions") from None
        for entry in entries:
            match = BAND_FILE.search(entry.name)
            if not match or not entry.is_file():
                continue
            if match.group(2).lower() == "jp2":
                jp2s.append(entry)
                continue
            band = match.group(1).upper()
            if band in tifs:
                raise SceneError(f"scene {folder} has two files for band {band} ({tifs[band].name}, {entry.name}): "
                                 f"keep one")
            tifs[band] = entry
        if not tifs:
            if jp2s:
                raise SceneError(f"scene {folder} holds its bands as JPEG 2000 ({jp2s[0].name}, ...), which the board "
                                 f"cannot read without GDAL or glymur: {JP2_FIX}")
            raise SceneError(f"scene {folder} holds no band files: expected one GeoTIFF per band named like "
                             f"<scene>_B02.tif")
        self.bands = tuple(sorted(tifs, key=_band_order))
        self._members: list[TiffRaster] = []
        try:
            for band in self.bands:
                self._members.append(TiffRaster(tifs[band]))
            self._fit_grid()
        except SceneError:
            self.close()
            raise

    def _fit_grid(self) -> None:
        finest = max(self._members, key=lambda m: m.shape[0] * m.shape[1])
        self.shape, self.dtype, self.footprint = finest.shape, finest.dtype, finest.footprint
        rows, cols = self.shape
        self._factors = []
        for member in self._members:
            if len(member.bands) != 1:
                raise SceneError(f"scene {member.path} holds {len(member.bands)} bands; a band folder needs one band "
                                 f"per file: open that file on its own")
            if member.dtype != self.dtype:
                raise SceneError(f"scene {member.path} is {member.dtype} but {finest.path.name} is {self.dtype}: "
                                 f"a band folder's files must share one data type")
            k = rows // member.shape[0]
            if (member.shape[0] * k, member.shape[1] * k) != (rows, cols):
                raise SceneError(
                    f"scene {member.path} is {member.shape[0]} x {member.shape[1]} px, not 1/k of the finest band's "
                    f"{rows} x {cols} px ({finest.path.name}): resample it to an integer fraction of that grid"
                )
            self._factors.append(k)

    def read_strip(self, band_index: Sequence[int], row0: int, out: np.ndarray) -> int:
        n = self._rows_to_fill(band_index, row0, out)
        for i, b in enumerate(band_index):
            member, k = self._members[b], self._factors[b]
            if k == 1:
                member.read_strip([0], row0, out[i:i + 1, :n])
                continue
            first, last = row0 // k, (row0 + n - 1) // k
            source = np.empty((1, last - first + 1, member.shape[1]), self.dtype)
            member.read_strip([0], first, source)
            blocks = out[i, :n].reshape(n, member.shape[1], k)  # a view, as out is C-contiguous
            blocks[...] = source[0, np.arange(row0, row0 + n) // k - first, :, None]
        return n

    def close(self) -> None:
        for member in self._members:
            member.close()


class _BandSubset(Raster):
    """Some of a source's bands, by name, in the order asked for."""

    def __init__(self, source: Raster, names: Sequence[str]) -> None:
        names = tuple(names)
        if len(set(names)) != len(names) or not names:
            raise SceneError(f"scene {source.path}: name each band you want once, got {','.join(names)}")
        self._source, self._index = source, source.band_indices(names)
        self.path, self.id, self.bands = source.path, source.id, names
        self.shape, self.dtype, self.footprint = source.shape, source.dtype, source.footprint

    def read_strip(self, band_index: Sequence[int], row0: int, out: np.ndarray) -> int:
        self._rows_to_fill(band_index, row0, out)
        return self._source.read_strip([self._index[b] for b in band_index], row0, out)

    def close(self) -> None:
        self._source.close()
