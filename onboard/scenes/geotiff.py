"""GeoTIFF scenes (read with tifffile): band-sequential or pixel-interleaved, tiled or striped,
uncompressed or compressed; a read touches only the strips or tiles that cover its rows."""

from __future__ import annotations

import logging
import math
import os
import struct
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Sequence

import numpy as np
import tifffile

from onboard.errors import SceneError
from onboard.scenes.raster import (MAX_BANDS, MAX_SAMPLES, MAX_SIDE, Raster, check_shape, native_dtype, one_line,
                                   open_fd, pread)

# A row of compressed strips or tiles is decoded whole and kept while reads reach into it, so its
# size bounds the memory a read needs; larger rows (a compressed image stored as one strip) cannot
# be streamed on the board.
MAX_SEGMENT_BYTES = 64 << 20
MAX_PAGES = 1024  # pages (IFDs) a file may hold: a band each, and overviews and masks
MAX_TAGS = 4096  # entries an IFD may list (tifffile stops a chain at an IFD listing more)
# The bytes all the tags of all the pages may hold: tifffile reads each page's segment offsets and
# counts (and a few more) at once, so pages whose tags all point at one large span of the file
# would each read it again. A Sentinel-2 band striped a row a strip needs 88 kB.
MAX_TAG_BYTES = 64 << 20
# Bytes of a value of each TIFF field type (1 BYTE ... 18 IFD8); tifffile reads no other type.
TYPE_BYTES = np.array([0, 1, 1, 2, 4, 8, 1, 1, 2, 4, 8, 4, 8, 4, 0, 0, 8, 8, 8], np.float64)
MAX_METADATA_CHARS = 2**20  # GDAL_METADATA longer than this is not parsed for band names
# The codecs read on board: the ones EO GeoTIFFs use, each decoding into the size the page gives a
# segment. Others are refused at open: image codecs (JPEG, PNG, WebP, JPEG 2000, ...) decode to the
# size their own header states, so a small hostile segment could ask for gigabytes, and the rarer
# codecs are not worth their attack surface on a satellite (a fuzzed CCITT segment crashed one).
CODECS = {1: "none", 5: "LZW", 8: "deflate", 32946: "deflate", 32773: "PackBits", 34925: "LZMA", 50000: "zstd"}
PREDICTORS = {1, 2, 3}  # none, horizontal differencing, floating point
CORRUPT = "the file is corrupt, copy it again or re-export it"
# tifffile logs what it finds wrong in a file, several lines a file, and carries on; this reader
# refuses what it cannot use in one line of its own, so tifffile's logging stays quiet.
logging.getLogger("tifffile").setLevel(logging.CRITICAL)
# Microscopy formats tifffile recognises by a tag of the first page and then loads every page of
# at open, before any check of this reader's: a scene is none of them.
NOT_MICROSCOPY = {"is_lsm": False, "is_ndpi": False, "is_scanimage": False}


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
    nodata: int | float
    decode: Callable[..., Any] | None  # None: stored uncompressed, so any rows are read directly


@dataclass(frozen=True)
class _Page:
    """What the reader uses of one TIFF page, as tifffile gives it: read inside the reader's
    boundary with tifffile (`_read_page`), checked field by field before use (`_add_page`)."""

    index: int
    subfiletype: Any
    shape: Any
    shaped: Any  # (separate planes, depth, rows, cols, contiguous samples)
    dtype: Any
    sampleformat: Any
    bitspersample: Any
    is_tiled: bool
    tile: Any  # (depth, rows, cols) of a tile
    rowsperstrip: Any
    offsets: Any
    counts: Any
    compression: Any
    predictor: Any
    fillorder: Any
    nodata: Any
    decode: Callable[..., Any] | None


def _count_pages(path: Path) -> int:
    """How many pages (IFDs) the TIFF at `path` chains, found by following its next-IFD pointers
    before tifffile does, and bounded: tifffile notices only a loop that closes within its first
    100 IFDs and follows any other chain to its end, so a chain looping back after them never
    ends (the list of offsets it keeps grows until memory runs out). Refuses, in one line, a chain
    that loops, that leaves the file, that holds more than MAX_PAGES IFDs, an IFD of more than
    MAX_TAGS entries, or tags of more than MAX_TAG_BYTES in all; what it passes, tifffile follows
    the same way to the same end, reading at most MAX_TAG_BYTES of tags."""
    try:
        with open(path, "rb") as f:
            return _follow_pages(f, path)
    except OSError as exc:
        raise SceneError(f"scene {path} cannot be read ({exc.strerror}): check it and its permissions") from None


def _follow_pages(f: BinaryIO, path: Path) -> int:
    def read(offset: int, size: int) -> bytes:
        f.seek(offset)
        return f.read(size)

    head = read(0, 16)
    order = {b"II": "<", b"MM": ">", b"EP": "<"}.get(head[:2])
    if order is None or len(head) < 8:
        raise SceneError(f"scene {path} is not a readable TIFF (it does not begin with a TIFF header): "
                         f"copy it again or re-export it")
    big = struct.unpack(order + "H", head[2:4])[0] == 43  # BigTIFF: 8-byte offsets and counts
    count_format, offset_format = (order + "Q", order + "Q") if big else (order + "H", order + "I")
    count_size, offset_size = struct.calcsize(count_format), struct.calcsize(offset_format)
    offset = struct.unpack_from(offset_format, head.ljust(16, b"\0"), 8 if big else 4)[0]
    integer = "u8" if big else "u4"
    entry = np.dtype([("tag", order + "u2"), ("type", order + "u2"), ("count", order + integer),
                      ("value", order + integer)])
    entry_size = entry.itemsize
    seen: dict[int, int] = {}  # IFD offset -> its page
    tag_bytes = 0.0
    while offset:
        page = len(seen)
        if offset in seen:
            raise SceneError(f"scene {path}: its chain of pages loops (page {page - 1} points back to page "
                             f"{seen[offset]}): {CORRUPT}")
        if page == MAX_PAGES:
            raise SceneError(f"scene {path} holds more than the {MAX_PAGES:,} pages a scene may have: {CORRUPT}")
        entries = read(offset, count_size)
        if len(entries) < count_size:
            where = f"{path} holds no image: its first page" if page == 0 else f"{path}: its page {page}"
            raise SceneError(f"scene {where} would lie at byte {offset:,}, past the file's end: {CORRUPT}")
        n = struct.unpack(count_format, entries)[0]
        if n > MAX_TAGS:
            raise SceneError(f"scene {path}: page {page} lists {n:,} tags, more than the {MAX_TAGS:,} a page may "
                             f"have: {CORRUPT}")
        seen[offset] = page
        listed = read(offset + count_size, n * entry_size + offset_size)
        if len(listed) < n * entry_size + offset_size:
            raise SceneError(f"scene {path}: page {page} reaches past the file's end: {CORRUPT}")
        tags = np.frombuffer(listed, entry, n)
        known = tags["type"] < len(TYPE_BYTES)
        tag_bytes += float((tags["count"][known] * TYPE_BYTES[tags["type"][known]]).sum())
        if tag_bytes > MAX_TAG_BYTES:
            raise SceneError(f"scene {path}: the tags of its pages (to page {page}) hold more than "
                             f"{MAX_TAG_BYTES >> 20} MiB: {CORRUPT}")
        offset = struct.unpack_from(offset_format, listed, n * entry_size)[0]
    if not seen:
        raise SceneError(f"scene {path} holds no image: give a GeoTIFF with one")
    return len(seen)


def _read_page(tif: tifffile.TiffFile, index: int, path: Path) -> _Page:
    """Page `index` of `tif`. tifffile raises many types on a hostile file (ValueError,
    ZeroDivisionError, TypeError, IndexError, struct.error, ...): any of them, from tifffile only,
    is this file's fault."""
    try:
        page = tif.pages[index]
        compression = page.compression
        return _Page(
            index=index, subfiletype=page.subfiletype, shape=page.shape, shaped=page.shaped, dtype=page.dtype,
            sampleformat=getattr(page.sampleformat, "name", page.sampleformat), bitspersample=page.bitspersample,
            is_tiled=bool(page.is_tiled), tile=(page.tiledepth, page.tilelength, page.tilewidth),
            rowsperstrip=page.rowsperstrip, offsets=page.dataoffsets, counts=page.databytecounts,
            compression=compression, predictor=page.predictor, fillorder=page.fillorder, nodata=page.nodata,
            decode=page.decode if page.dtype is not None and _whole(compression, 0, 2**16 - 1) in CODECS else None,
        )
    except Exception as exc:
        raise SceneError(f"scene {path}: page {index} is not readable ({one_line(exc)}): {CORRUPT}") from None


def _metadata(tif: tifffile.TiffFile, index: int) -> tuple[Any, Any]:
    """The GDAL_METADATA text and GeoTIFF tags of page `index`: optional, so tags tifffile cannot
    parse leave the scene without band names or footprint rather than refuse it."""
    try:
        page = tif.pages[index]
        return page.tags.valueof(42112), page.geotiff_tags
    except Exception:
        return None, None


def _whole(value: Any, low: int, high: int) -> int | None:
    """`value` as an int if it is one (not a bool, a tuple of them, a float) in low..high."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and low <= value <= high:
        return int(value)
    return None


def _positions(value: Any) -> np.ndarray | None:
    """Segment offsets or byte counts as int64, if they are a list of non-negative integers."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if array.ndim != 1 or array.size == 0 or array.dtype.kind not in "iu" or array.min() < 0 or array.max() > 2**62:
        return None
    return array.astype(np.int64)


class TiffRaster(Raster):
    """A TIFF's full-resolution image (overviews and masks are skipped; a stack of same-size pages
    is a band each). A read decodes only the segments covering its rows; the compressed segments
    that reach below it are kept for the next read, so a top-to-bottom pass decodes each segment
    once, whatever the strip height, holding about one row of decoded segments of the bands read
    (uncompressed segments are read row range by row range and never held). What the file states
    is checked before it is used: page counts, sizes, tags, segment positions and sizes."""

    def __init__(self, path: Path) -> None:
        self.path, self.id = path, path.stem
        self._planes: list[_Plane] = []
        self._where: list[tuple[int, int]] = []  # band -> (plane, sample)
        count = _count_pages(path)
        try:
            tif = tifffile.TiffFile(path, **NOT_MICROSCOPY)
        except Exception as exc:  # TiffFileError (a ValueError), OSError, and whatever a hostile header trips
            raise SceneError(f"scene {path} is not a readable TIFF ({one_line(exc)}): copy it again or re-export it") from None
        with tif:
            pages = []
            for i in range(count):
                page = _read_page(tif, i, path)
                subfiletype = _whole(page.subfiletype, 0, 2**32 - 1)
                if subfiletype is None:
                    raise SceneError(f"scene {path}: page {i} has a NewSubfileType of {_brief(page.subfiletype)}: "
                                     f"{CORRUPT}")
                if not subfiletype & 0b101:  # not an overview or mask
                    pages.append(page)
            if not pages or not pages[0].shape:
                raise SceneError(f"scene {path} holds no image: give a GeoTIFF with one")
            for page in pages:
                self._add_page(page, pages[0], tif.byteorder)
            check_shape(path, len(self._where), *self.shape)
            names_xml, geo = _metadata(tif, pages[0].index)
        descriptions = _gdal_band_names(names_xml, len(self._where)) if len(pages) == 1 else None
        self.footprint = _footprint(geo, self.shape)
        self.named = descriptions is not None  # the file names its bands, so `bands` picks from them
        self.bands = descriptions or tuple(f"B{i + 1}" for i in range(len(self._where)))
        self._fd = open_fd(path)
        self._carry: dict[tuple[int, int], np.ndarray] = {}
        self._check_extents()

    def _corrupt(self, page: _Page, what: str, value: Any) -> SceneError:
        return SceneError(f"scene {self.path}: page {page.index} has {what} {_brief(value)}: {CORRUPT}")

    def _add_page(self, page: _Page, first: _Page, byteorder: str) -> None:
        shaped = page.shaped if isinstance(page.shaped, tuple) and len(page.shaped) == 5 else ()
        layout = [_whole(v, 0, MAX_SAMPLES) for v in shaped]
        if len(layout) != 5 or None in layout:
            raise self._corrupt(page, "a shape of", page.shaped)
        separate, depth, rows, cols, contig = layout
        if not (1 <= rows <= MAX_SIDE and 1 <= cols <= MAX_SIDE and 1 <= separate * contig <= MAX_BANDS):
            raise SceneError(f"scene {self.path}: page {page.index} is {rows} x {cols} px of {separate * contig} "
                             f"band(s); a scene has 1 to {MAX_BANDS} bands of 1 to {MAX_SIDE:,} px a side: {CORRUPT}")
        if page.dtype is None:
            raise SceneError(f"scene {self.path} has {_brief(page.bitspersample)}-bit {page.sampleformat} samples, "
                             f"which numpy cannot hold; supported are uint8, uint16, float32 (convert it, e.g. "
                             f"reflectance x 10000 as uint16)")
        if page is first:
            self.shape = (rows, cols)
            self.dtype = native_dtype(self.path, np.dtype(page.dtype))
        elif (rows, cols) != self.shape or page.dtype != self.dtype:
            raise SceneError(f"scene {self.path}: page {page.index} is {rows} x {cols} {page.dtype}, page 0 "
                             f"{self.shape[0]} x {self.shape[1]} {self.dtype}; keep one image per file")
        if depth != 1:
            raise SceneError(f"scene {self.path} is a volume of depth {depth}: give one 2-D image of bands")
        if page.is_tiled:
            tile = [_whole(v, 1, MAX_SIDE) for v in page.tile] if isinstance(page.tile, tuple) else [None]
            if None in tile or tile[0] != 1:
                raise self._corrupt(page, "a tile of", page.tile)
            seg_rows, seg_cols = tile[1], tile[2]
        else:
            strip = _whole(page.rowsperstrip, 1, 2**32 - 1)
            if strip is None:
                raise self._corrupt(page, "RowsPerStrip", page.rowsperstrip)
            seg_rows, seg_cols = min(strip, rows), cols
        grid_cols = -(-cols // seg_cols)
        per_plane = -(-rows // seg_rows) * grid_cols
        offsets, counts = _positions(page.offsets), _positions(page.counts)
        if offsets is None or counts is None:
            raise self._corrupt(page, "segment offsets or byte counts", page.offsets if offsets is None else page.counts)
        if len(offsets) != separate * per_plane or len(counts) != len(offsets):
            raise SceneError(f"scene {self.path}: page {page.index} lists {len(offsets)} segments where its layout "
                             f"needs {separate * per_plane}; the file is corrupt, re-export it")
        compression = _whole(page.compression, 0, 2**16 - 1)
        if compression not in CODECS or _whole(page.predictor, 0, 2**16 - 1) not in PREDICTORS:
            kind = getattr(page.compression, "name", page.compression)
            raise SceneError(f"scene {self.path} is {_brief(kind)}-compressed (predictor {_brief(page.predictor)}), "
                             f"which the board does not decode ({', '.join(sorted(set(CODECS.values())))}, predictor "
                             f"none, horizontal or floating point): rewrite it deflate-compressed "
                             f"(gdal_translate -co TILED=YES -co COMPRESS=DEFLATE IN OUT)")
        if page.bitspersample != self.dtype.itemsize * 8:
            raise SceneError(f"scene {self.path} packs {_brief(page.bitspersample)}-bit samples into {self.dtype}, "
                             f"which the board does not unpack: rewrite it with {self.dtype.itemsize * 8}-bit samples")
        file_dtype = np.dtype(byteorder + self.dtype.char)
        raw = compression == 1 and page.predictor == 1 and page.fillorder == 1
        if not raw and seg_rows * grid_cols * seg_cols * contig * self.dtype.itemsize > MAX_SEGMENT_BYTES:
            raise SceneError(
                f"scene {self.path} stores {seg_rows} x {seg_cols} px compressed segments, too large to decode in "
                f"bounded memory: rewrite it tiled (gdal_translate -co TILED=YES -co COMPRESS=DEFLATE IN OUT)"
            )
        if not raw:
            try:
                page.decode(None, 0)  # an empty segment: a no-op for a decoder that works
            except Exception as exc:  # tifffile stands in for a missing codec with one that always raises
                kind = getattr(page.compression, "name", page.compression)
                raise SceneError(f"scene {self.path} is {kind}-compressed, which cannot be decoded here "
                                 f"({one_line(exc)}): pip install imagecodecs, or rewrite it deflate-compressed") from None
        nodata = page.nodata
        if (counts == 0).any() and not _fits(nodata, self.dtype):
            raise SceneError(f"scene {self.path} leaves segments empty, to read as its no-data value "
                             f"{_brief(nodata)}, which a {self.dtype} pixel cannot hold: {CORRUPT}")
        for s in range(separate):
            part = slice(s * per_plane, (s + 1) * per_plane)
            self._planes.append(_Plane(
                first=s * per_plane, offsets=offsets[part], counts=counts[part], seg_rows=seg_rows,
                seg_cols=seg_cols, grid_cols=grid_cols, samples=contig, file_dtype=file_dtype,
                nodata=nodata if (counts[part] == 0).any() else 0, decode=None if raw else page.decode,
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
            data = pread(self._fd, self.path, (rb - ra) * row_bytes, offset + ra * row_bytes)
            return np.frombuffer(data, plane.file_dtype).reshape(rb - ra, plane.seg_cols, plane.samples)
        segment = self._carry.pop((p, k), None)  # released once used, before the next row is decoded
        if segment is None:
            data = pread(self._fd, self.path, count, offset)
            try:
                # (depth, rows, cols, samples); tifffile refuses a segment short of its rows in the image
                segment = plane.decode(data, plane.first + k)[0]
            except Exception as exc:  # codecs raise their own types (imagecodecs: RuntimeError, zlib.error)
                raise SceneError(f"scene {self.path}: segment {plane.first + k} does not decode ({one_line(exc)}): "
                                 f"the file is corrupt, copy it again or re-export it") from None
            top, left = k // plane.grid_cols * plane.seg_rows, k % plane.grid_cols * plane.seg_cols
            need = (1, min(plane.seg_rows, self.shape[0] - top), min(plane.seg_cols, self.shape[1] - left), plane.samples)
            if (not isinstance(segment, np.ndarray) or segment.ndim != 4 or segment.shape[0] != 1
                    or segment.shape[3] != plane.samples or segment.shape[1] < need[1] or segment.shape[2] < need[2]):
                raise SceneError(f"scene {self.path}: segment {plane.first + k} decodes to "
                                 f"{getattr(segment, 'shape', None)} where its page needs {need}: {CORRUPT}")
            segment = segment[0]
        if carry is not None:
            carry[(p, k)] = segment
        return segment[ra:rb]

    def close(self) -> None:
        self._carry = {}
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _gdal_band_names(text: Any, count: int) -> tuple[str, ...] | None:
    """Band names from GDAL's band descriptions (GDAL_METADATA items of role "description"),
    when every band has a distinct one of 1 to 255 printable characters. The metadata is optional: when
    it is missing or cannot be parsed, the bands go by their default names."""
    if not isinstance(text, str) or not text or len(text) > MAX_METADATA_CHARS:
        return None
    try:
        items = ElementTree.fromstring(text).iter("Item")
        names = {int(item.get("sample", "")): (item.text or "").strip()
                 for item in items if item.get("role") == "description"}
    except (ElementTree.ParseError, ValueError):
        return None
    ordered = tuple(names.get(i, "") for i in range(count))
    if (len(names) != count or not all(0 < len(n) <= 255 and n.isprintable() for n in ordered)
            or len(set(ordered)) != count):
        return None
    return ordered


def _numbers(value: Any, *sizes: int) -> np.ndarray | None:
    """`value` as one of `sizes` finite floats, or None."""
    try:
        array = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError, OverflowError):
        return None
    return array if array.size in sizes and np.isfinite(array).all() else None


def _footprint(geo: Any, shape: tuple[int, int]) -> dict[str, Any] | None:
    """CRS, affine transform and bounding box from GeoTIFF tags, as GDAL reads them; None for a
    file without them, or whose tags do not make a finite transform."""
    if not isinstance(geo, dict):
        return None
    matrix = _numbers(geo.get("ModelTransformation"), 16)
    scale, tie = _numbers(geo.get("ModelPixelScale"), 2, 3), _numbers(geo.get("ModelTiepoint"), 6)
    if matrix is not None:
        a, b, c, d, e, f = (float(matrix[i]) for i in (0, 1, 3, 4, 5, 7))
    elif scale is not None and tie is not None:
        (sx, sy), (i, j, _, x, y, _) = scale[:2].tolist(), tie.tolist()
        a, b, c, d, e, f = sx, 0.0, x - i * sx, 0.0, -sy, y + j * sy
    else:
        return None  # ground control points only: no affine transform
    if _whole(geo.get("GTRasterTypeGeoKey", 1), 0, 2**16 - 1) == 2:  # PixelIsPoint: the tie point is a pixel's centre
        c, f = c - (a + b) / 2, f - (d + e) / 2
    code = _whole(geo.get("ProjectedCSTypeGeoKey") or geo.get("GeographicTypeGeoKey"), 1, 2**31 - 1)
    crs = f"EPSG:{code}" if code is not None and code != 32767 else None
    rows, cols = shape
    xs = [a * x + b * y + c for x, y in ((0, 0), (cols, 0), (0, rows), (cols, rows))]
    ys = [d * x + e * y + f for x, y in ((0, 0), (cols, 0), (0, rows), (cols, rows))]
    transform, bbox = [a, b, c, d, e, f], [min(xs), min(ys), max(xs), max(ys)]
    if not np.isfinite(transform + bbox).all():
        return None
    return {"crs": crs, "transform": transform, "bbox": bbox}


def _fits(value: Any, dtype: np.dtype) -> bool:
    """Whether a pixel of `dtype` holds `value` (a no-data value) as it is."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return False
    if dtype.kind == "f":
        return not math.isfinite(value) or abs(value) <= np.finfo(dtype).max
    if isinstance(value, (float, np.floating)) and not float(value).is_integer():
        return False
    return np.iinfo(dtype).min <= value <= np.iinfo(dtype).max


def _brief(value: Any) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= 40 else text[:37] + "..."
