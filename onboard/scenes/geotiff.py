"""GeoTIFF scenes (read with tifffile): band-sequential or pixel-interleaved, tiled or striped,
uncompressed or compressed; a read touches only the strips or tiles that cover its rows."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import tifffile

from onboard.errors import SceneError
from onboard.scenes.raster import Raster, native_dtype, one_line, open_fd, pread

# A compressed strip or tile is decoded whole, so its size bounds the memory a read needs; larger
# segments (a compressed image stored as one strip) cannot be streamed on the board.
MAX_SEGMENT_BYTES = 64 << 20
JPEG_COMPRESSIONS = {6, 7, 34892, 33007}  # these need the page's JPEG tables to decode a segment


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
            raise SceneError(f"scene {path} is not a readable TIFF ({one_line(exc)}): copy it again or re-export it") from None
        self.named = descriptions is not None  # the file names its bands, so `bands` picks from them
        self.bands = descriptions or tuple(f"B{i + 1}" for i in range(len(self._where)))
        self._fd = open_fd(path)
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
            self.dtype = native_dtype(self.path, np.dtype(page.dtype))
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
                                 f"({one_line(exc)}): pip install imagecodecs, or rewrite it deflate-compressed") from None
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
            data = pread(self._fd, self.path, (rb - ra) * row_bytes, offset + ra * row_bytes)
            return np.frombuffer(data, plane.file_dtype).reshape(rb - ra, plane.seg_cols, plane.samples)
        segment = self._carry.pop((p, k), None)  # released once used, before the next row is decoded
        if segment is None:
            data = pread(self._fd, self.path, count, offset)
            try:
                # (depth, rows, cols, samples); tifffile refuses a segment short of its rows in the image
                segment = plane.decode(data, plane.first + k, **plane.decode_args)[0][0]
            except Exception as exc:  # codecs raise their own types (imagecodecs: RuntimeError, zlib.error)
                raise SceneError(f"scene {self.path}: segment {plane.first + k} does not decode ({one_line(exc)}): "
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
