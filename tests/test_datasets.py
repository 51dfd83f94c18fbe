"""The dataset loaders of ground/datasets: real BigEarthNet patches from ../shared/data, and
format-faithful EuroSAT, So2Sat and hyperspectral files written with each format's own library
(tifffile, Pillow, h5py, scipy.io) where the real data is not available offline."""

from __future__ import annotations

import inspect as pyinspect
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io
import tifffile
from PIL import Image

from ground.datasets import so2sat as so2sat_module
from ground.datasets.base import SPLIT_FRACTIONS, SPLITS, Dataset
from ground.datasets.bigearthnet import CLC_43_TO_19, LABELS_19, LABELS_43, resample
from ground.datasets.eurosat import CLASSES as EUROSAT_CLASSES
from ground.datasets.geotiff import read_geotiff
from ground.datasets.inspect import band_statistics, inspect_dataset
from ground.datasets.so2sat import LCZ_CLASSES, S1_CHANNELS, S2_BANDS as SO2SAT_S2
from ground.datasets.patches import MULTI_LABEL, SINGLE_LABEL, PatchSet, split_indices
from ground.datasets.registry import DATASETS
from ground.errors import DatasetError
from tests.conftest import shared

BEN_EXAMPLES = "bigearthnet/bigearthnet-common_v1_examples/BigEarthNet-S2-Example"
BEN_NPZ = "bigearthnet/configilm_BENv1"
BEN_EXAMPLE_PATCHES = (
    "S2A_MSIL2A_20170613T101031_87_48", "S2A_MSIL2A_20170617T113321_36_85", "S2A_MSIL2A_20170617T113321_4_55",
    "S2A_MSIL2A_20171221T112501_56_35", "S2B_MSIL2A_20170924T93020_69_24", "S2B_MSIL2A_20180204T94161_57_38",
)
S2_12 = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")


# ---------------------------------------------------------------------------------------------
# The shared shape


def test_every_dataset_is_registered_with_the_shared_constructor_shape(tmp_path):
    assert set(DATASETS) == {"eurosat-ms", "eurosat-rgb", "bigearthnet-s2", "bigearthnet-s2-npz", "so2sat-lcz42",
                             "indian-pines", "pavia-university", "synthetic"}
    for name, cls in DATASETS.items():
        assert issubclass(cls, Dataset) and cls.name == name
        params = list(pyinspect.signature(cls).parameters)
        assert params[:4] == ["root", "split", "bands", "seed"], (name, params)
        with pytest.raises(DatasetError, match="unknown split 'training'"):
            cls(tmp_path, split="training")
        with pytest.raises(DatasetError, match="has no band.*NOPE"):
            cls(tmp_path, bands=["NOPE"])
    with pytest.raises(DatasetError, match="not a directory"):
        DATASETS["so2sat-lcz42"](tmp_path / "absent")


def test_split_indices_is_the_split_patch_sets_use():
    y = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1], [1, 0, 0], [0, 1, 0], [1, 0, 1], [0, 0, 0], [1, 0, 0]], np.uint8)
    p = PatchSet(np.arange(8, dtype=np.uint16).reshape(8, 1, 1, 1), y, ("B02",), ("a", "b", "c"), "test")
    parts = split_indices(y, SPLIT_FRACTIONS, seed=5)
    assert sorted(np.concatenate(parts).tolist()) == list(range(8))
    for index, part in zip(parts, p.split(SPLIT_FRACTIONS, seed=5)):
        np.testing.assert_array_equal(part.x[:, 0, 0, 0], index)


# ---------------------------------------------------------------------------------------------
# EuroSAT MS (GeoTIFF) and RGB (JPEG)


def write_eurosat_ms(root: Path, per_class: int, seed: int = 0) -> dict[str, np.ndarray]:
    """EuroSAT MS class folders of 64 x 64 x 13 uint16 GeoTIFFs, pixel-interleaved as GDAL writes
    them; pixel (0, 0) of band B01 holds a unique id, 100 * class + n."""
    rng = np.random.default_rng(seed)
    written = {}
    for c, cls in enumerate(EUROSAT_CLASSES):
        (root / cls).mkdir(parents=True)
        for n in range(1, per_class + 1):
            data = rng.integers(0, 10000, (64, 64, 13), dtype=np.uint16)
            data[0, 0, 0] = 100 * c + n
            path = root / cls / f"{cls}_{n}.tif"
            tifffile.imwrite(path, data, photometric="minisblack", planarconfig="contig")
            written[path.name] = data
    return written


def test_eurosat_ms_reads_every_band_in_file_order_and_splits_by_class(tmp_path):
    written = write_eurosat_ms(tmp_path, per_class=7)
    parts = [DATASETS["eurosat-ms"](tmp_path, split=s).load() for s in SPLITS]
    assert [len(p) for p in parts] == [50, 10, 10]  # 7 per class cut at 70/15/15: 5, 1, 1
    seen = []
    for p in parts:
        assert p.x.dtype == np.uint16 and p.x.shape[1:] == (64, 64, 13) and p.task == SINGLE_LABEL
        assert p.bands == DATASETS["eurosat-ms"].all_bands and p.classes == EUROSAT_CLASSES
        assert p.class_counts().tolist() == [len(p) // 10] * 10
        assert not p.synthetic and "eurosat-ms" in p.source
        for x, y in zip(p.x, p.y):
            c, n = divmod(int(x[0, 0, 0]), 100)
            assert y == c
            np.testing.assert_array_equal(x, written[f"{EUROSAT_CLASSES[c]}_{n}.tif"])
            seen.append((c, n))
    assert sorted(seen) == [(c, n) for c in range(10) for n in range(1, 8)]  # each file in one split only


def test_eurosat_per_file_split_matches_patch_set_split_and_follows_the_seed(tmp_path):
    write_eurosat_ms(tmp_path, per_class=7)
    ds = DATASETS["eurosat-ms"](tmp_path, split="train", bands=["B04"], seed=3)
    ids = lambda p: sorted(int(v) for v in p.x[:, 0, 0, 0])  # noqa: E731
    everything = PatchSet(*_all_eurosat(tmp_path), ds.classes, "all")
    for i, split in enumerate(SPLITS):
        mine = DATASETS["eurosat-ms"](tmp_path, split=split, bands=["B01"], seed=3).load()
        reference = everything.split(SPLIT_FRACTIONS, seed=3)[i]
        np.testing.assert_array_equal(mine.x, reference.x)
        np.testing.assert_array_equal(mine.y, reference.y)
    again = DATASETS["eurosat-ms"](tmp_path, split="test", bands=["B01"], seed=3).load()
    other = DATASETS["eurosat-ms"](tmp_path, split="test", bands=["B01"], seed=4).load()
    assert ids(again) == ids(DATASETS["eurosat-ms"](tmp_path, split="test", bands=["B01"], seed=3).load())
    assert ids(again) != ids(other)
    assert ds.load().bands == ("B04",)


def _all_eurosat(root: Path) -> tuple[np.ndarray, np.ndarray, tuple[str]]:
    """Band B01 of every file in class order, then name order, read here with tifffile."""
    xs, ys = [], []
    for c, cls in enumerate(EUROSAT_CLASSES):
        for path in sorted((root / cls).glob("*.tif")):
            xs.append(tifffile.imread(path)[:, :, :1])
            ys.append(c)
    return np.stack(xs), np.array(ys, dtype=np.int64), ("B01",)


def test_eurosat_ms_band_selection_and_band_interleaved_tiffs(tmp_path):
    written = write_eurosat_ms(tmp_path, per_class=1)
    # GDAL's INTERLEAVE=BAND gives a band-interleaved TIFF of the same raster.
    path = tmp_path / "Forest" / "Forest_1.tif"
    tifffile.imwrite(path, np.moveaxis(written["Forest_1.tif"], 2, 0), photometric="minisblack",
                     planarconfig="separate")
    assert read_geotiff(path).shape == (64, 64, 13)
    p = DATASETS["eurosat-ms"](tmp_path, bands=["B8A", "B02", "B10"]).load()
    assert len(p) == 10 and p.bands == ("B8A", "B02", "B10")  # one file per class: all in train
    for x, y in zip(p.x, p.y):
        src = written[f"{EUROSAT_CLASSES[y]}_1.tif"]
        np.testing.assert_array_equal(x, src[:, :, [8, 1, 10]])


def test_eurosat_rgb_reads_jpegs_as_b04_b03_b02(tmp_path):
    colours = {}
    for c, cls in enumerate(EUROSAT_CLASSES):
        (tmp_path / cls).mkdir()
        for n in range(1, 4):
            rgb = (20 * c + 5 * n, 200 - 10 * c, 40 + 5 * n)
            colours[(c, rgb[0])] = rgb
            Image.new("RGB", (64, 64), rgb).save(tmp_path / cls / f"{cls}_{n}.jpg", quality=95)
    ds = DATASETS["eurosat-rgb"](tmp_path, split="train")
    p = ds.load()
    assert ds.all_bands == ("B04", "B03", "B02") and p.x.dtype == np.uint8 and p.x.shape == (20, 64, 64, 3)  # 3 per class: 2 train
    for x, y in zip(p.x, p.y):
        red, green, blue = (int(np.median(x[:, :, i])) for i in range(3))
        match = [rgb for (c, r), rgb in colours.items() if c == y and abs(r - red) <= 2]
        assert len(match) == 1, (y, red)
        assert abs(green - match[0][1]) <= 2 and abs(blue - match[0][2]) <= 2
    blue_only = DATASETS["eurosat-rgb"](tmp_path, split="train", bands=["B02"]).load()
    np.testing.assert_array_equal(blue_only.x[..., 0], p.x[..., 2])


def test_eurosat_errors_name_the_file_and_the_layout(tmp_path):
    write_eurosat_ms(tmp_path, per_class=1)
    shutil.rmtree(tmp_path / "SeaLake")
    with pytest.raises(DatasetError, match=r"SeaLake is missing \(expected <root>/<class>/<class>_<n>\.tif"):
        DATASETS["eurosat-ms"](tmp_path)
    (tmp_path / "SeaLake").mkdir()
    with pytest.raises(DatasetError, match="SeaLake_1.tif is missing"):
        DATASETS["eurosat-ms"](tmp_path)

    (tmp_path / "SeaLake" / "SeaLake_1.tif").write_bytes(b"II*\x00 truncated")
    with pytest.raises(DatasetError, match=r"SeaLake_1\.tif is not readable.*expected <root>/<class>"):
        DATASETS["eurosat-ms"](tmp_path).load()
    tifffile.imwrite(tmp_path / "SeaLake" / "SeaLake_1.tif", np.zeros((32, 32, 13), np.uint16),
                     photometric="minisblack", planarconfig="contig")
    with pytest.raises(DatasetError, match=r"SeaLake_1\.tif .*uint16 image of \(32, 32, 13\)"):
        DATASETS["eurosat-ms"](tmp_path).load()
    with pytest.raises(DatasetError, match="val split .* holds no patches"):
        DATASETS["eurosat-ms"](tmp_path, split="val").load()

    (tmp_path / "rgb" / "Forest").mkdir(parents=True)
    for cls in EUROSAT_CLASSES:
        (tmp_path / "rgb" / cls).mkdir(exist_ok=True)
        Image.new("L", (64, 64), 9).save(tmp_path / "rgb" / cls / f"{cls}_1.jpg")
    with pytest.raises(DatasetError, match=r"AnnualCrop_1\.jpg .*a L image of 64 x 64 px.*RGB JPEG"):
        DATASETS["eurosat-rgb"](tmp_path / "rgb").load()


# ---------------------------------------------------------------------------------------------
# BigEarthNet-S2 on the real patches in ../shared/data


def test_bigearthnet_nomenclature_tables():
    assert len(LABELS_43) == 43 and len(set(LABELS_43)) == 43
    assert len(LABELS_19) == 19
    assert {new for _, new in CLC_43_TO_19 if new} == set(LABELS_19)
    dropped = [clc for clc, new in CLC_43_TO_19 if new is None]
    assert dropped == ["Road and rail networks and associated land", "Port areas", "Airports",
                       "Mineral extraction sites", "Dump sites", "Construction sites", "Green urban areas",
                       "Sport and leisure facilities", "Bare rock", "Burnt areas", "Intertidal flats"]


def test_bigearthnet_example_folders_real_patches():
    root = shared(BEN_EXAMPLES)
    ds = DATASETS["bigearthnet-s2"](root, split="train", nomenclature=43)
    train, val = ds.load(), DATASETS["bigearthnet-s2"](root, split="val", nomenclature=43).load()
    # Without split lists, the 6 patches are split by their rarest label: the two whose rarest
    # label is Pastures go one to train, one to val; the four others are alone in their stratum.
    names = ds.patch_names()
    val_names = DATASETS["bigearthnet-s2"](root, split="val").patch_names()
    assert val_names == ["S2A_MSIL2A_20170617T113321_4_55"]
    assert sorted(names + val_names) == list(BEN_EXAMPLE_PATCHES)
    with pytest.raises(DatasetError, match="test split .* holds no patches .*seeded split of 6 patches"):
        DATASETS["bigearthnet-s2"](root, split="test").load()

    assert train.x.shape == (5, 120, 120, 12) and train.x.dtype == np.uint16 and train.bands == S2_12
    assert train.y.shape == (5, 43) and train.y.dtype == np.uint8 and train.task == MULTI_LABEL
    counts = dict(zip(LABELS_43, train.class_counts() + val.class_counts()))
    assert {k: int(v) for k, v in counts.items() if v} == {
        "Non-irrigated arable land": 3, "Pastures": 2, "Complex cultivation patterns": 1,
        "Land principally occupied by agriculture, with significant areas of natural vegetation": 2,
        "Broad-leaved forest": 1, "Coniferous forest": 2, "Mixed forest": 2, "Transitional woodland/shrub": 2,
        "Peatbogs": 1, "Water bodies": 1}
    assert val.y[0].nonzero()[0].tolist() == [LABELS_43.index("Pastures")]

    for i, name in enumerate(names):
        raw = {b: tifffile.imread(root / name / f"{name}_{b}.tif") for b in S2_12}
        assert [raw[b].shape[0] for b in S2_12] == [20, 120, 120, 120, 60, 60, 60, 120, 60, 20, 60, 60]
        for j, band in enumerate(S2_12):
            if raw[band].shape[0] == 120:  # 10 m bands: untouched by resampling
                np.testing.assert_array_equal(train.x[i, :, :, j], raw[band])
            else:  # nearest: each native pixel fills a 2 x 2 (20 m) or 6 x 6 (60 m) block
                f = 120 // raw[band].shape[0]
                np.testing.assert_array_equal(train.x[i, ::f, ::f, j], raw[band])
                np.testing.assert_array_equal(train.x[i, f - 1::f, f - 1::f, j], raw[band])
        meta = json.loads((root / name / f"{name}_labels_metadata.json").read_text())
        assert [LABELS_43[k] for k in train.y[i].nonzero()[0]] == sorted(meta["labels"], key=LABELS_43.index)


def test_bigearthnet_19_classes_resolution_and_bilinear_on_real_patches():
    root = shared(BEN_EXAMPLES)
    p19 = DATASETS["bigearthnet-s2"](root, split="train").load()
    assert p19.classes == LABELS_19 and p19.y.shape == (5, 19)
    assert dict(zip(LABELS_19, p19.class_counts().tolist()))["Arable land"] == 3
    assert dict(zip(LABELS_19, p19.class_counts().tolist()))["Inland wetlands"] == 1

    name = DATASETS["bigearthnet-s2"](root, split="train").patch_names()[0]
    raw = {b: tifffile.imread(root / name / f"{name}_{b}.tif").astype(np.float64) for b in ("B02", "B05", "B09")}
    at20 = DATASETS["bigearthnet-s2"](root, split="train", bands=["B05", "B02", "B09"], resolution=20).load()
    assert at20.x.shape == (5, 60, 60, 3)
    np.testing.assert_array_equal(at20.x[0, :, :, 0], raw["B05"])  # 20 m band untouched
    np.testing.assert_array_equal(at20.x[0, :, :, 1], np.rint(raw["B02"].reshape(60, 2, 60, 2).mean(axis=(1, 3))))
    at60 = DATASETS["bigearthnet-s2"](root, split="train", bands=["B09"], resolution=60).load()
    assert at60.x.shape == (5, 20, 20, 1)
    np.testing.assert_array_equal(at60.x[0, :, :, 0], raw["B09"])

    bilinear = DATASETS["bigearthnet-s2"](root, split="train", bands=["B02", "B05"], upsampling="bilinear").load()
    np.testing.assert_array_equal(bilinear.x[0, :, :, 0], raw["B02"])
    b05 = bilinear.x[0, :, :, 1].astype(np.float64)
    assert raw["B05"].min() <= b05.min() and b05.max() <= raw["B05"].max()
    assert abs(b05.mean() - raw["B05"].mean()) < 0.01 * raw["B05"].mean()
    assert not np.array_equal(b05, np.repeat(np.repeat(raw["B05"], 2, 0), 2, 1))


def test_resample_by_integer_factors():
    band = np.arange(16, dtype=np.uint16).reshape(4, 4) * 10
    np.testing.assert_array_equal(resample(band, 8, "nearest")[::2, ::2], band)
    np.testing.assert_array_equal(resample(band, 2), [[25, 45], [105, 125]])  # block means
    ramp = np.tile(np.arange(0, 600, 100, dtype=np.uint16), (6, 1))  # grows 100 per pixel along a row
    up = resample(ramp, 12, "bilinear")
    # Between pixel centres, bilinear is linear: 25 per output pixel; clamped beyond the edge centres.
    np.testing.assert_array_equal(up[3, 1:11], np.arange(0, 500 + 1, 50)[:10] + 25)
    assert up[0, 0] == 0 and up[0, 11] == 500
    assert (resample(np.full((3, 3), 777, np.uint16), 12, "bilinear") == 777).all()


def test_bigearthnet_npz_real_patches_and_csv_splits():
    root = shared(BEN_NPZ)
    labels = json.loads((root / "benv1_30patches_labels.json").read_text())
    every: list[str] = []
    marine = 0
    with np.load(root / "benv1_30patches.npz") as arrays:
        for split in SPLITS:
            ds = DATASETS["bigearthnet-s2-npz"](root, split=split)
            names = ds.patch_names()
            assert names == (root / f"{split}.csv").read_text().split()
            p19 = ds.load()
            p43 = DATASETS["bigearthnet-s2-npz"](root, split=split, nomenclature=43).load()
            assert p19.x.shape == (10, 120, 120, 12) and p19.x.dtype == np.uint16 and p19.y.shape == (10, 19)
            np.testing.assert_array_equal(p19.x, p43.x)
            for i, name in enumerate(names):
                # The 43 -> 19 table reproduces the archive's own 19-class labels of every patch.
                assert [LABELS_19[k] for k in p19.y[i].nonzero()[0]] == sorted(labels[name]["new_labels"],
                                                                              key=LABELS_19.index)
                assert {LABELS_43[k] for k in p43.y[i].nonzero()[0]} == set(labels[name]["labels"])
                for j, band in enumerate(S2_12):
                    native = arrays[f"{name}/{band[1:]}"]
                    if native.shape == (120, 120):
                        np.testing.assert_array_equal(p19.x[i, :, :, j], native)
                    else:
                        f = 120 // native.shape[0]
                        np.testing.assert_array_equal(p19.x[i, ::f, ::f, j], native)
            marine += int(p19.class_counts()[LABELS_19.index("Marine waters")])
            every += names
    assert len(set(every)) == 30 and set(every) == set(labels)
    assert every[0] == "S2A_MSIL2A_20180225T114351_39_25"
    assert marine == 9  # nine of the 30 patches are sea


def test_bigearthnet_errors_name_the_file_and_the_layout(tmp_path):
    root = tmp_path / "ben"
    shutil.copytree(shared(BEN_EXAMPLES), root)
    name = BEN_EXAMPLE_PATCHES[0]
    (root / "train.csv").write_text(f"{name},S1_matching_patch\n{BEN_EXAMPLE_PATCHES[5]}\n")
    with pytest.raises(DatasetError, match=r"val\.csv is missing \(expected <root>/<patch>/<patch>_B01\.tif"):
        DATASETS["bigearthnet-s2"](root)
    (root / "val.csv").write_text(f"{BEN_EXAMPLE_PATCHES[1]}\n")
    (root / "test.csv").write_text("\n")
    ds = DATASETS["bigearthnet-s2"](root, bands=["B03"])
    assert ds.patch_names() == [name, BEN_EXAMPLE_PATCHES[5]] and len(ds.load()) == 2  # the official lists rule
    with pytest.raises(DatasetError, match=r"test split .* holds no patches .*test\.csv names no patch"):
        DATASETS["bigearthnet-s2"](root, split="test").load()

    (root / name / f"{name}_B03.tif").unlink()
    with pytest.raises(DatasetError, match=rf"{name}_B03\.tif is missing \(expected <root>/<patch>"):
        ds.load()
    tifffile.imwrite(root / name / f"{name}_B03.tif", np.zeros((60, 60), np.uint16))
    with pytest.raises(DatasetError, match=rf"{name}_B03\.tif .*band B03 is uint16 \(60, 60\), not uint16 120 x 120"):
        ds.load()
    tifffile.imwrite(root / name / f"{name}_B03.tif", np.zeros((120, 120), np.uint16))
    meta = root / name / f"{name}_labels_metadata.json"
    meta.write_text(json.dumps({"labels": ["Pastures", "Lunar regolith"]}))
    with pytest.raises(DatasetError, match=r"labels_metadata\.json .*'Lunar regolith'.* 43 CORINE classes"):
        ds.load()
    meta.write_text("{not json")
    with pytest.raises(DatasetError, match=r"labels_metadata\.json is not readable"):
        ds.load()
    with pytest.raises(DatasetError, match="nomenclature 42"):
        DATASETS["bigearthnet-s2"](root, nomenclature=42)
    with pytest.raises(DatasetError, match="upsampling 'cubic'"):
        DATASETS["bigearthnet-s2"](root, upsampling="cubic")
    with pytest.raises(DatasetError, match=r"<patch>_labels_metadata\.json is missing"):
        DATASETS["bigearthnet-s2"](tmp_path / "ben" / name)  # a patch folder is not the archive root


def test_bigearthnet_npz_errors(tmp_path):
    for f in shared(BEN_NPZ).iterdir():
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "benv1_30patches_labels.json").unlink()
    with pytest.raises(DatasetError, match=r"benv1_30patches_labels\.json is missing \(expected <root>/<name>\.npz"):
        DATASETS["bigearthnet-s2-npz"](tmp_path)
    (tmp_path / "benv1_30patches_labels.json").write_text("[]")
    with pytest.raises(DatasetError, match="labels.json .*not a map of patch names"):
        DATASETS["bigearthnet-s2-npz"](tmp_path).load()
    sea = "S2A_MSIL2A_20170613T101031_39_24"
    (tmp_path / "benv1_30patches_labels.json").write_text(json.dumps({sea: {"labels": ["Sea and ocean"]}}))
    (tmp_path / "train.csv").write_text(f"{sea}\nS2X_NOT_A_PATCH\n")
    with pytest.raises(DatasetError, match=r"benv1_30patches\.npz .*no array 'S2X_NOT_A_PATCH/01'"):
        DATASETS["bigearthnet-s2-npz"](tmp_path).load()
    (tmp_path / "train.csv").write_text(f"{sea}\nS2A_MSIL2A_20170617T113321_48_5\n")
    with pytest.raises(DatasetError, match="labels.json .*no entry for patch S2A_MSIL2A_20170617T113321_48_5"):
        DATASETS["bigearthnet-s2-npz"](tmp_path, bands=["B02"]).load()
    (tmp_path / "benv1_30patches.npz").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(DatasetError, match=r"benv1_30patches\.npz is not readable"):
        DATASETS["bigearthnet-s2-npz"](tmp_path).load()


# ---------------------------------------------------------------------------------------------
# So2Sat LCZ42 (HDF5)


def write_so2sat(path: Path, n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    data = {"sen1": rng.normal(0, 1, (n, 32, 32, 8)), "sen2": rng.uniform(0, 1, (n, 32, 32, 10)),
            "label": np.eye(17)[rng.integers(0, 17, n)]}
    with h5py.File(path, "w") as f:
        for key, value in data.items():
            f.create_dataset(key, data=value)  # float64, as the published files
    return data


def test_so2sat_reads_only_its_split_file_in_band_order(tmp_path, monkeypatch):
    monkeypatch.setattr(so2sat_module, "CHUNK", 7)  # several chunks, the last one short
    data = write_so2sat(tmp_path / "validation.h5", 23, seed=1)
    p = DATASETS["so2sat-lcz42"](tmp_path, split="val").load()  # no training.h5 or testing.h5 needed
    assert p.x.dtype == np.float32 and p.x.shape == (23, 32, 32, 18) and p.classes == LCZ_CLASSES
    assert p.bands == S1_CHANNELS + SO2SAT_S2 and p.bands[4] == "VH_lee" and p.bands[8:11] == ("B02", "B03", "B04")
    np.testing.assert_array_equal(p.x, np.concatenate([data["sen1"], data["sen2"]], axis=3).astype(np.float32))
    np.testing.assert_array_equal(p.y, data["label"].argmax(axis=1))
    assert p.y.dtype == np.int64 and p.class_counts().sum() == 23

    picked = DATASETS["so2sat-lcz42"](tmp_path, split="val", bands=["B8A", "VV_lee", "B02"]).load()
    np.testing.assert_array_equal(picked.x[..., 0], data["sen2"][..., 7].astype(np.float32))
    np.testing.assert_array_equal(picked.x[..., 1], data["sen1"][..., 5].astype(np.float32))
    np.testing.assert_array_equal(picked.x[..., 2], data["sen2"][..., 0].astype(np.float32))
    with pytest.raises(DatasetError, match=r"testing\.h5 is missing \(expected <root>/training\.h5"):
        DATASETS["so2sat-lcz42"](tmp_path, split="test")


def test_so2sat_malformed_files(tmp_path):
    write_so2sat(tmp_path / "training.h5", 5, seed=2)
    with h5py.File(tmp_path / "training.h5", "a") as f:
        f["label"][2] = np.r_[1.0, 1.0, np.zeros(15)]
    with pytest.raises(DatasetError, match=r"training\.h5 .*label row 2 is not one-hot"):
        DATASETS["so2sat-lcz42"](tmp_path).load()
    with h5py.File(tmp_path / "training.h5", "a") as f:
        del f["sen2"]
        f.create_dataset("sen2", data=np.zeros((5, 32, 32, 13)))
    with pytest.raises(DatasetError, match=r"training\.h5 .*sen2 is \(5, 32, 32, 13\)"):
        DATASETS["so2sat-lcz42"](tmp_path, bands=["B02"]).load()
    with h5py.File(tmp_path / "training.h5", "a") as f:
        del f["sen1"]
    with pytest.raises(DatasetError, match=r"training\.h5 .*no dataset 'sen1'"):
        DATASETS["so2sat-lcz42"](tmp_path).load()
    (tmp_path / "training.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    with pytest.raises(DatasetError, match=r"training\.h5 is not readable as this dataset"):
        DATASETS["so2sat-lcz42"](tmp_path).load()


# ---------------------------------------------------------------------------------------------
# Hyperspectral scenes (.mat)


def hyperspectral_scene(rows: int, cols: int, n_bands: int, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A cube whose first two bands hold each pixel's row and column, so a patch tells where it was
    cut; a ground truth with about a third of the pixels unlabelled."""
    rng = np.random.default_rng(seed)
    cube = rng.integers(0, 9000, (rows, cols, n_bands), dtype=np.uint16)
    cube[:, :, 0] = np.arange(rows)[:, None]
    cube[:, :, 1] = np.arange(cols)[None, :]
    gt = rng.integers(1, n_classes + 1, (rows, cols)).astype(np.uint8)
    gt[rng.random((rows, cols)) < 0.3] = 0
    return cube, gt


def write_indian_pines(root: Path, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    cube, gt = hyperspectral_scene(48, 42, 200, 16, seed)
    scipy.io.savemat(root / "Indian_pines_corrected.mat", {"indian_pines_corrected": cube})
    scipy.io.savemat(root / "Indian_pines_gt.mat", {"indian_pines_gt": gt})
    return cube, gt


def test_hyperspectral_patches_are_centred_on_labelled_pixels(tmp_path):
    cube, gt = write_indian_pines(tmp_path)
    ds = DATASETS["indian-pines"](tmp_path, split="train", patch_size=5, blocks=(3, 3))
    p = ds.load()
    assert ds.all_bands[0] == "b000" and ds.all_bands[-1] == "b199" and len(ds.classes) == 16
    assert p.x.dtype == np.float32 and p.x.shape[1:] == (5, 5, 200) and p.y.dtype == np.int64
    r, c = p.x[:, 2, 2, 0].astype(int), p.x[:, 2, 2, 1].astype(int)
    np.testing.assert_array_equal(p.x[:, 2, 2, :], cube[r, c].astype(np.float32))
    np.testing.assert_array_equal(p.y, gt[r, c].astype(np.int64) - 1)  # class k is label k + 1
    assert (gt[r, c] > 0).all()
    np.testing.assert_array_equal(p.x[:, 0, 0, 0], r - 2)  # windows are (row, col)-ordered around the centre
    np.testing.assert_array_equal(p.x[:, 4, 1, 1], c - 1)
    picked = DATASETS["indian-pines"](tmp_path, bands=["b150", "b001"], patch_size=5, blocks=(3, 3)).load()
    np.testing.assert_array_equal(picked.x, p.x[..., [150, 1]])


def test_hyperspectral_splits_are_spatially_disjoint_and_seeded(tmp_path):
    write_indian_pines(tmp_path)
    footprints, centres = [], []
    for split in SPLITS:
        p = DATASETS["indian-pines"](tmp_path, split=split, patch_size=5, blocks=(3, 3), seed=1).load()
        assert len(p) > 0
        pixels = {(int(a), int(b)) for a, b in p.x[:, :, :, :2].reshape(-1, 2)}
        footprints.append(pixels)
        centres.append({(int(a), int(b)) for a, b in p.x[:, 2, 2, :2]})
    for i in range(3):
        for j in range(i + 1, 3):
            assert not footprints[i] & footprints[j], (SPLITS[i], SPLITS[j])  # no pixel in two splits' windows
    # 9 blocks dealt 70/15/15: 6, 2, 1; train's windows cover the most ground.
    assert len(footprints[0]) > len(footprints[1]) > len(footprints[2])
    other = DATASETS["indian-pines"](tmp_path, split="test", patch_size=5, blocks=(3, 3), seed=2).load()
    again = DATASETS["indian-pines"](tmp_path, split="test", patch_size=5, blocks=(3, 3), seed=1).load()
    assert {(int(a), int(b)) for a, b in again.x[:, 2, 2, :2]} == centres[2]
    assert {(int(a), int(b)) for a, b in other.x[:, 2, 2, :2]} != centres[2]


def test_pavia_university_from_a_matlab_v73_file(tmp_path):
    cube, gt = hyperspectral_scene(40, 30, 103, 9, seed=4)
    for file, key, value in (("PaviaU.mat", "paviaU", cube), ("PaviaU_gt.mat", "paviaU_gt", gt)):
        # MATLAB v7.3: HDF5 behind a 512-byte header, arrays stored column-major (axes reversed).
        with h5py.File(tmp_path / file, "w", userblock_size=512) as f:
            f.create_dataset(key, data=value.T)
        with open(tmp_path / file, "r+b") as f:
            f.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 .")
    p = DATASETS["pavia-university"](tmp_path, split="train", patch_size=3, blocks=(3, 3)).load()
    assert p.x.shape[1:] == (3, 3, 103) and p.bands[-1] == "b102" and p.classes[0] == "Asphalt"
    r, c = p.x[:, 1, 1, 0].astype(int), p.x[:, 1, 1, 1].astype(int)
    np.testing.assert_array_equal(p.x[:, 1, 1, :], cube[r, c].astype(np.float32))
    np.testing.assert_array_equal(p.y, gt[r, c] - 1)


def test_hyperspectral_errors_name_the_file_and_the_layout(tmp_path):
    cube, gt = write_indian_pines(tmp_path)
    (tmp_path / "Indian_pines_gt.mat").unlink()
    with pytest.raises(DatasetError, match=r"Indian_pines_gt\.mat is missing \(expected <root>/Indian_pines_corrected"):
        DATASETS["indian-pines"](tmp_path)
    scipy.io.savemat(tmp_path / "Indian_pines_gt.mat", {"gt": gt})
    with pytest.raises(DatasetError, match=r"Indian_pines_gt\.mat .*no variable 'indian_pines_gt'"):
        DATASETS["indian-pines"](tmp_path).load()
    scipy.io.savemat(tmp_path / "Indian_pines_gt.mat", {"indian_pines_gt": gt[:-1]})
    with pytest.raises(DatasetError, match=r"Indian_pines_gt\.mat .*not a \(48, 42\) map of class numbers 0"):
        DATASETS["indian-pines"](tmp_path).load()
    scipy.io.savemat(tmp_path / "Indian_pines_gt.mat", {"indian_pines_gt": gt + 10})
    with pytest.raises(DatasetError, match="0 \\(unlabelled\\) .. 16"):
        DATASETS["indian-pines"](tmp_path).load()
    scipy.io.savemat(tmp_path / "Indian_pines_corrected.mat", {"indian_pines_corrected": cube[:, :, :103]})
    with pytest.raises(DatasetError, match=r"indian_pines_corrected is \(48, 42, 103\), not rows x cols x 200"):
        DATASETS["indian-pines"](tmp_path).load()
    (tmp_path / "Indian_pines_corrected.mat").write_bytes(b"")
    with pytest.raises(DatasetError, match=r"Indian_pines_corrected\.mat is not readable .*truncated"):
        DATASETS["indian-pines"](tmp_path).load()
    with pytest.raises(DatasetError, match="patch size 4 must be odd"):
        DATASETS["indian-pines"](tmp_path, patch_size=4)
    write_indian_pines(tmp_path)
    with pytest.raises(DatasetError, match="1 x 2 blocks leave the test split no area"):
        DATASETS["indian-pines"](tmp_path, blocks=(1, 2)).load()
    with pytest.raises(DatasetError, match="holds no patches .*no labelled pixel has its 41 x 41 window"):
        DATASETS["indian-pines"](tmp_path, patch_size=41, blocks=(3, 3), split="test").load()


# ---------------------------------------------------------------------------------------------
# Synthetic, and the inspect report


def test_synthetic_dataset_is_labelled_synthetic_and_seeded(tmp_path):
    ds = DATASETS["synthetic"](tmp_path, split="val", bands=["B04", "B08"], per_class=20, size=16, seed=2)
    p = ds.load()
    assert p.synthetic and p.source.startswith("synthetic") and p.bands == ("B04", "B08")
    assert p.x.shape == (18, 16, 16, 2) and p.class_counts().tolist() == [3] * 6  # 20 per class -> 14/3/3
    again = DATASETS["synthetic"](tmp_path, split="val", bands=["B04", "B08"], per_class=20, size=16, seed=2).load()
    np.testing.assert_array_equal(p.x, again.x)
    assert list(tmp_path.iterdir()) == []


def test_inspect_reports_class_counts_and_band_statistics(tmp_path):
    write_eurosat_ms(tmp_path, per_class=3)
    ds = DATASETS["eurosat-ms"](tmp_path, split="train", bands=["B02", "B8A"])
    report = inspect_dataset(ds)
    p = ds.load()
    lines = report.splitlines()
    assert lines[0].startswith(f"eurosat-ms (train split of {tmp_path}): 20 patches of 64 x 64 px, 2 bands (uint16), "
                               "single-label, 10 classes")
    assert "SYNTHETIC" not in report
    assert [line.split()[:2] for line in lines if line.startswith("Pasture ")] == [["Pasture", "2"]]
    b8a = next(line.split() for line in lines if line.startswith("B8A "))
    values = p.x[..., 1].astype(np.float64)
    assert [float(v) for v in b8a[1:]] == pytest.approx([values.min(), values.max(), values.mean(), values.std()],
                                                        rel=1e-5)
    assert [s.band for s in band_statistics(p)] == ["B02", "B8A"]


def test_inspect_on_real_bigearthnet_and_synthetic(tmp_path):
    report = inspect_dataset(DATASETS["bigearthnet-s2-npz"](shared(BEN_NPZ), split="test"))
    lines = report.splitlines()
    assert "10 patches of 120 x 120 px, 12 bands (uint16), multi-label, 19 classes" in lines[0]
    assert next(line for line in lines if line.startswith("Coniferous forest ")).split()[-2:] == ["6", "60.0%"]
    assert next(line for line in lines if line.startswith("B02 ")).split()[1:3] == ["1", "10808"]
    synthetic = inspect_dataset(DATASETS["synthetic"](tmp_path, per_class=5, size=8))
    assert "(SYNTHETIC)" in synthetic.splitlines()[1]
