"""The hostile tester's corpus through the real console command: every malformed input a CLI reads
(manifests, ladders, cascades, scenes, products, packet streams, serve and simulate configs, board
profiles, bench results, model records, evaluations, datasets, link keys and ports, options) runs
as `orbitlite ...` in a subprocess and must end non-zero with one clean line, no traceback, and
nothing written outside the output directory. Each case is a test of its own, so pytest's count
of this file is the corpus's count (issue 10's closing note: cases tried, clean one-line errors,
tracebacks: none)."""

from __future__ import annotations

import hashlib
import json
import math
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgpack
import numpy as np
import pytest

from onboard.contracts.ccsds import Packetizer
from tests.conftest import SPYNDEX_BANDS, SPYNDEX_NPY, assert_one_line_error, bench_result, orbitlite
from tests.fuzz import HUGE_INT, INF, NAN, Raw, deep, encode
from tests.test_contracts import _manifest
from tests.test_fuzz_configs import BOARD, SERVE, SIMULATE
from tests.test_fuzz_contracts import PRODUCT, _bomb

DEEP_JSON = deep().json
DEEP_DICT = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
BIG_INF = Raw(b"1e400", msgpack.packb(math.inf))
ESCAPE = "../../escaped"


@dataclass(frozen=True)
class Case:
    id: str
    args: Callable[[Path], list[str]]  # writes the case's files under the folder, returns the arguments
    says: tuple[str, ...] = ()  # what the one line names
    real_model: bool = False  # the case needs a model that loads (the ground fixture's)


CASES: list[Case] = []


def case(id: str, *says: str, real_model: bool = False):
    def register(args):
        CASES.append(Case(id, args, says, real_model))
        return args
    return register


def _write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def _out(d: Path) -> str:
    return str(d / "a" / "b" / "out")


# -- malformed JSON, as any JSON reader may be given it ---------------------------------------------

def _json_variants(seed: dict, fields: dict[str, object]) -> dict[str, bytes]:
    """The file kinds every JSON reader is tried with, and `seed` with each of `fields` spoilt."""
    return {"deep": DEEP_JSON, "deep-object": DEEP_DICT, "a-list": b'[{"schema": 1}]', "empty": b"",
            "not-json": b"\x00\xffgarbage", "bad-utf8": b'{"a": "\xed\xa0\x80"}',
            **{name: encode({**seed, key: value} if "." not in key else _nested(seed, key, value), "json")
               for name, (key, value) in fields.items()}}


def _nested(seed: dict, key: str, value: object) -> dict:
    head, tail = key.split(".", 1)
    return {**seed, head: {**seed[head], tail: value}}


# -- model manifests: `onboard run`, ladders, cascades, `hil bench`, `ground evaluate` ---------------

MODEL = b"TFL3" * 256  # a stand-in model: manifest faults are found before it is loaded
SIDECAR = json.loads(_manifest(size_bytes=len(MODEL), sha256=hashlib.sha256(MODEL).hexdigest()).to_json())
MANIFESTS = _json_variants(SIDECAR, {
    "parameters-infinity": ("parameters", INF), "parameters-1e400": ("parameters", BIG_INF),
    "parameters-5000-digits": ("parameters", HUGE_INT), "mean-nan": ("mean", [NAN, 1.0]),
    "id-escapes": ("id", ESCAPE), "id-int": ("id", 7), "version-2": ("version", 2),
    "quantization-deep": ("input.quantization", deep()),
})


def _model(d: Path, manifest: bytes, name: str = "m.tflite") -> Path:
    model = _write(d / name, MODEL)
    _write(d / f"{name}.json", manifest)
    return model


def _run_args(d: Path, *models: Path, extra: tuple[str, ...] = ()) -> list[str]:
    return ["onboard", "run", str(SPYNDEX_NPY), "--bands", SPYNDEX_BANDS, *(a for m in models for a in ("--model", str(m))),
            "--out", _out(d), *extra]


for _name, _bytes in MANIFESTS.items():
    case(f"run-manifest-{_name}", "manifest")(lambda d, b=_bytes: _run_args(d, _model(d, b)))
for _name in ("deep", "a-list", "parameters-1e400", "id-escapes"):
    case(f"run-ladder-manifest-{_name}", "manifest", real_model=True)(
        lambda d, b=MANIFESTS[_name]: _run_args(d, d / "good.tflite", _model(d, b)))
    case(f"run-cascade-manifest-{_name}", "manifest", real_model=True)(
        lambda d, b=MANIFESTS[_name]: _run_args(d, d / "good.tflite", extra=("--cascade", str(_model(d, b)))))
for _name in ("deep", "a-list", "parameters-infinity", "parameters-5000-digits", "id-int"):
    case(f"hil-bench-manifest-{_name}", "manifest")(
        lambda d, b=MANIFESTS[_name]: ["hil", "bench", "--model", str(_model(d, b)), "--out", _out(d)])


def _patches(d: Path) -> Path:
    """A small valid patch set, so `ground evaluate` reaches the manifest."""
    rng = np.random.default_rng(0)
    path = d / "patches.npz"
    np.savez(path, x=rng.integers(0, 3000, (30, 32, 32, 2), dtype=np.uint16), y=rng.integers(0, 3, 30),
             bands=np.array(["B04", "B08"]), classes=np.array(["a", "b", "c"]), source=np.array("synthetic"))
    return path


for _name in ("deep", "a-list", "parameters-1e400", "id-escapes"):
    case(f"evaluate-manifest-{_name}", "manifest")(
        lambda d, b=MANIFESTS[_name]: ["ground", "evaluate", "--data", str(_patches(d)), "--model", str(_model(d, b)),
                                       "--runs", "1"])


# -- scenes and options of `onboard run` (the poison-scene cases are the `poison` branch's) ---------

def _tiff(d: Path, width: int, next_ifd_self: bool = False) -> Path:
    """A one-strip, one-band uint16 TIFF written by hand: ImageWidth `width`, and a next-IFD
    pointer that points at its own IFD when asked."""
    entries = [(256, 3, 1, width), (257, 3, 1, 8), (258, 3, 1, 16), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 8), (277, 3, 1, 1), (278, 3, 1, 8), (279, 4, 1, 8 * 8 * 2)]
    pixels = bytes(8 * 8 * 2)
    ifd_at = 8 + len(pixels)
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries)
    ifd += struct.pack("<I", ifd_at if next_ifd_self else 0)
    return _write(d / "scene.tif", b"II*\x00" + struct.pack("<I", ifd_at) + pixels + ifd)


def _scene_args(d: Path, scene: Path, *extra: str) -> list[str]:
    return ["onboard", "run", str(scene), "--bands", "B02", "--model", str(d / "good.tflite"), "--out", _out(d), *extra]


case("run-npy-header-cut", "scene", real_model=True)(
    lambda d: _scene_args(d, _write(d / "cut.npy", SPYNDEX_NPY.read_bytes()[:40])))
case("run-npy-not-an-array", "scene", real_model=True)(
    lambda d: _scene_args(d, _write(d / "bad.npy", b"\x93NUMPY garbage")))
case("run-tiff-width-0", "scene", real_model=True)(lambda d: _scene_args(d, _tiff(d, 0)))
case("run-tiff-ifd-cycle", "scene", real_model=True)(lambda d: _scene_args(d, _tiff(d, 8, next_ifd_self=True)))
case("run-tiff-not-a-tiff", "scene", real_model=True)(lambda d: _scene_args(d, _write(d / "x.tif", b"II*\x00junk")))
case("run-sidecar-deep", "sidecar", real_model=True)(
    lambda d: (_write(d / "raw.bin.json", DEEP_JSON), _scene_args(d, _write(d / "raw.bin", bytes(64))))[1])
case("run-sidecar-shape-1e400", "sidecar", real_model=True)(
    lambda d: (_write(d / "raw.bin.json", b'{"shape": [1, 1e400, 8], "dtype": "uint16", "bands": ["B02"]}'),
               _scene_args(d, _write(d / "raw.bin", bytes(64))))[1])
case("run-stride-100000", real_model=True)(lambda d: _run_args(d, d / "good.tflite", extra=("--stride", "100000")))
case("run-stride-0", "--stride")(lambda d: _run_args(d, d / "good.tflite", extra=("--stride", "0")))
case("run-roi-not-numbers", "--roi")(lambda d: _run_args(d, d / "good.tflite", extra=("--screen", "--roi", "a,b,c,d")))
case("run-bands-empty-names", "band", real_model=True)(
    lambda d: ["onboard", "run", str(SPYNDEX_NPY), "--bands", ",,,", "--model", str(d / "good.tflite"), "--out", _out(d)])
case("run-bands-5000-digits", real_model=True)(
    lambda d: ["onboard", "run", str(SPYNDEX_NPY), "--bands", "9" * 5000, "--model", str(d / "good.tflite"),
               "--out", _out(d)])
case("run-threads-5000-digits", "--threads")(lambda d: _run_args(d, d / "good.tflite", extra=("--threads", "9" * 5000)))
case("run-cpu-seconds-nan", "--cpu-seconds")(lambda d: _run_args(d, d / "good.tflite", extra=("--cpu-seconds", "nan")))
case("run-cpu-seconds-inf", "--cpu-seconds", real_model=True)(
    lambda d: _run_args(d, d / "good.tflite", extra=("--cpu-seconds", "inf")))
case("run-nodata-value-nan", "--nodata-value", real_model=True)(
    lambda d: _run_args(d, d / "good.tflite", extra=("--screen", "--nodata-value", "nan")))


# -- products: `downlink decode` and `downlink packetize` -------------------------------------------

def _product(edit: Callable[[dict], None] | None = None, raw: bytes | None = None) -> bytes:
    if raw is not None:
        return raw
    tree = json.loads(json.dumps(PRODUCT, default=lambda b: {"\x01bytes": b.hex()}),
                      object_hook=lambda o: bytes.fromhex(o["\x01bytes"]) if "\x01bytes" in o else o)
    edit(tree)
    return encode(tree, "msgpack")


PRODUCTS: dict[str, bytes] = {
    "scene-id-escapes": _product(lambda b: b["scene"].update(id=ESCAPE)),
    "model-id-escapes": _product(lambda b: b["model"].update(id="../x")),
    "model-id-int": _product(lambda b: b["model"].update(id=7)),
    "scene-bytes-inf": _product(lambda b: b["scene"].update(bytes=INF)),
    "scene-bytes-5000-digits": _product(lambda b: b["scene"].update(bytes=HUGE_INT)),
    "stride-0": _product(lambda b: b["grid"].update(stride=[0, 0])),
    "confidence-of-another-shape": _product(lambda b: b["confidence"].update(shape=[2, 2], data=zlib.compress(bytes(4)))),
    "class-map-zlib-bomb": _product(lambda b: b["class_map"].update(data=_bomb(16 * 2**20))),
    "runtime-deep": _product(lambda b: b.update(runtime=deep())),
    "footprint-inf": _product(lambda b: b["scene"].update(footprint={"transform": [INF, 0, 0, 0, 1, 0]})),
    "version-2": _product(lambda b: b.update(version=2)),
    "a-list": msgpack.packb([1, 2, 3]),
    "deep": deep().msgpack,
    "empty": b"",
    "truncated": _product(lambda b: None)[:500],
    "json-not-msgpack": b'{"schema": "orbitlite/product"}',
}
for _name, _bytes in PRODUCTS.items():
    case(f"decode-product-{_name}", "product")(
        lambda d, b=_bytes: ["downlink", "decode", str(_write(d / "p.msgpack", b)), "--out", _out(d)])
for _name in ("scene-id-escapes", "model-id-int", "scene-bytes-inf", "stride-0", "confidence-of-another-shape",
              "deep", "empty"):
    case(f"packetize-product-{_name}", "product")(
        lambda d, b=PRODUCTS[_name]: ["downlink", "packetize", str(_write(d / "p.msgpack", b)), "--out",
                                      str(d / "stream.bin")])


# -- packet streams: `downlink reassemble` ----------------------------------------------------------

def _stream(*products: bytes, cut: int | None = None) -> bytes:
    packetizer = Packetizer(256)
    stream = b"".join(p for product in products for p in packetizer.packetize(product))
    return stream if cut is None else stream[:cut]


GOOD = _product(lambda b: None)
STREAMS = {
    "empty": (b"", "no packets"),
    "garbage": (b"\xff" * 100, "stream"),
    "scene-id-escapes": (_stream(PRODUCTS["scene-id-escapes"]), "scene.id"),
    "model-id-int": (_stream(PRODUCTS["model-id-int"]), "model.id"),
    "cut-inside-a-packet": (_stream(GOOD, cut=1000), "S2A_T33UUP"),
    "cut-between-packets": (_stream(GOOD, cut=3 * (6 + 256)), "S2A_T33UUP"),
    "first-packet-lost": (_stream(GOOD)[6 + 256:], "first packet"),
}
for _name, (_bytes, _says) in STREAMS.items():
    case(f"reassemble-{_name}", _says)(
        lambda d, b=_bytes: ["downlink", "reassemble", str(_write(d / "stream.bin", b)), "--out", _out(d)])


# -- configs: `onboard serve`, `downlink simulate`, board profiles, bench results --------------------

SERVE_CONFIGS = _json_variants(SERVE, {
    "capacity-1e400": ("store.capacity_bytes", BIG_INF), "capacity-5000-digits": ("store.capacity_bytes", HUGE_INT),
    "poll-seconds-nan": ("poll_seconds", NAN), "poll-seconds-infinity": ("poll_seconds", INF),
    "models-deep": ("models", deep()), "ladder-a-string": ("models.ladder", "m.tflite"),
})


def _serve(d: Path, config: bytes) -> list[str]:
    (d / "spool").mkdir(parents=True, exist_ok=True)
    _write(d / "board.json", json.dumps(BOARD))
    return ["onboard", "serve", str(_write(d / "serve.json", config)), "--once"]


for _name, _bytes in SERVE_CONFIGS.items():
    case(f"serve-config-{_name}", "config")(lambda d, b=_bytes: _serve(d, b))
def _serve_board(d: Path, board: bytes) -> list[str]:
    args = _serve(d, json.dumps(SERVE).encode())
    _write(d / "board.json", board)
    return args


for _name, _bytes in {"deep": deep(30_000).json, "a-list": b"[1]", "watts-infinity": encode({**BOARD, "idle_watts": INF}, "json"),
                      "watts-5000-digits": encode({**BOARD, "busy_watts": HUGE_INT}, "json")}.items():
    case(f"serve-board-profile-{_name}", "board")(lambda d, b=_bytes: _serve_board(d, b))

SIMULATE_CONFIGS = _json_variants(SIMULATE, {
    "storage-1e400": ("storage_bytes", BIG_INF), "storage-5000-digits": ("storage_bytes", HUGE_INT),
    "step-nan": ("step_s", NAN), "stations-deep": ("stations", deep()), "stations-a-map": ("stations", {"a": 1}),
    "scene-bytes-infinity": ("imaging.scene_bytes", INF),
})


def _simulate(d: Path, config: bytes, name: str = "mission.json") -> list[str]:
    _write(d / "bench.json", bench_result())
    return ["downlink", "simulate", str(_write(d / name, config)), "--days", "0.01", "--out", _out(d)]


for _name, _bytes in SIMULATE_CONFIGS.items():
    case(f"simulate-config-{_name}", "config")(lambda d, b=_bytes: _simulate(d, b))
for _name, _text in {"deep": "a = " + "[" * 100_000 + "]" * 100_000, "storage-inf": "storage_bytes = inf",
                     "step-nan": "step_s = nan", "storage-5000-digits": "storage_bytes = " + "9" * 5000,
                     "not-toml": "[[[", "stations-a-table": "[stations]\na = 1"}.items():
    case(f"simulate-toml-{_name}", "config")(lambda d, t=_text: _simulate(d, t.encode(), "mission.toml"))
_BENCH = json.loads(bench_result())
for _name, _bytes in {"deep": DEEP_JSON, "a-list": b"[1]", "tiles-per-s-1e400": b'{"tiles_per_s": 1e400}',
                      "old-unversioned": b'{"model": "m.tflite", "batch": 256, "tiles_per_s": 14428.0}',
                      "energy-source-guessed": json.dumps({**_BENCH, "energy": {**_BENCH["energy"],
                                                                               "source": "guessed"}}).encode()}.items():
    case(f"simulate-bench-result-{_name}", "bench")(
        lambda d, b=_bytes: (_simulate(d, json.dumps(SIMULATE).encode()), _write(d / "bench.json", b))[0])


# -- ground: model records (convert), evaluations (pareto), datasets, model files --------------------

def _record(d: Path, record: bytes) -> list[str]:
    keras = _write(d / "m.keras", b"PK\x05\x06" + bytes(18))  # an empty zip: the record is read first
    _write(d / "m.keras.json", record)
    return ["ground", "convert", "--data", str(_patches(d)), "--model", str(keras), "--out", str(d / "m.tflite")]


RECORD = {"architecture": "zoo-cnn-s", "bands": ["B04", "B08"], "classes": ["a", "b", "c"], "mean": [1.0, 2.0],
          "std": [1.0, 1.0], "parameters": 100, "dataset": "synthetic", "split_seed": 0}
for _name, _bytes in {"deep": DEEP_JSON, "a-list": b"[1]", "mean-infinity": encode({**RECORD, "mean": [INF, 1]}, "json"),
                      "parameters-5000-digits": encode({**RECORD, "parameters": HUGE_INT}, "json")}.items():
    case(f"convert-record-{_name}", "m.keras.json")(lambda d, b=_bytes: _record(d, b))
case("convert-id-escapes", "model id (--id)")(
    lambda d: _record(d, json.dumps(RECORD).encode()) + ["--id", ESCAPE])

EVALUATION = {"model": "m", "metrics": {"accuracy": 0.9}, "size_bytes": 1000, "latency": {"avg_us": 10.0}}
for _name, _bytes in {"deep": DEEP_JSON, "a-list": b"[1]", "no-metrics": encode({**EVALUATION, "metrics": {}}, "json"),
                      "latency-a-string": encode({**EVALUATION, "latency": "fast"}, "json")}.items():
    case(f"pareto-evaluation-{_name}", "eval.json")(
        lambda d, b=_bytes: (_write(d / "m.tflite.eval.json", b),
                             ["ground", "pareto", str(d / "m.tflite"), "--out", str(d / "p.png")])[1])

case("train-data-not-npz", "dataset")(
    lambda d: ["ground", "train", "--data", str(_write(d / "x.npz", b"PK junk")), "--out", str(d / "m.keras")])
case("train-data-pickled", "dataset")(
    lambda d: (np.savez(d / "x.npz", x=np.array([{"a": 1}], dtype=object)),
               ["ground", "train", "--data", str(d / "x.npz"), "--out", str(d / "m.keras")])[1])
case("train-set-deep", "--set matrix")(
    lambda d: ["ground", "train", "--data", str(_patches(d)), "--out", str(d / "m.keras"), "--arch", "nas-cell",
               "--set", "matrix=" + "[" * 60_000 + "]" * 60_000])
case("train-set-nan", "--set dropout")(
    lambda d: ["ground", "train", "--data", str(_patches(d)), "--out", str(d / "m.keras"), "--set", "dropout=nan"])


def _bigearthnet(d: Path, labels: bytes) -> list[str]:
    _write(d / "ben" / "P1" / "P1_labels_metadata.json", labels)
    return ["ground", "data", "inspect", "--dataset", "bigearthnet-s2", "--root", str(d / "ben")]


def _bigearthnet_npz(d: Path, labels: bytes) -> list[str]:
    for split in ("train", "val", "test"):
        _write(d / "ben" / f"{split}.csv", "P1\n")
    np.savez(d / "ben" / "b.npz", a=np.zeros(3))
    _write(d / "ben" / "b_labels.json", labels)
    return ["ground", "data", "inspect", "--dataset", "bigearthnet-s2-npz", "--root", str(d / "ben")]


for _name, _bytes in {"deep": DEEP_JSON, "labels-1e400": b'{"labels": 1e400}', "not-json": b"\xff"}.items():
    case(f"bigearthnet-metadata-{_name}", "labels_metadata.json")(lambda d, b=_bytes: _bigearthnet(d, b))
    case(f"bigearthnet-npz-labels-{_name}", "b_labels.json")(lambda d, b=_bytes: _bigearthnet_npz(d, b))


def _carrying(d: Path, carried: bytes) -> Path:
    """The good model, carrying `carried` as its embedded manifest, with a sidecar that matches its bytes."""
    from onboard.contracts.manifest import EMBEDDED_NAME
    from onboard.inference.tflite_file import with_metadata

    content = with_metadata((d / "good.tflite").read_bytes(), EMBEDDED_NAME, carried)
    sidecar = json.loads((d / "good.tflite.json").read_text())
    sidecar.update(size_bytes=len(content), sha256=hashlib.sha256(content).hexdigest())
    _write(d / "carrier.tflite.json", json.dumps(sidecar))
    return _write(d / "carrier.tflite", content)


case("run-embedded-manifest-deep", "carries", real_model=True)(lambda d: _run_args(d, _carrying(d, DEEP_DICT)))
case("run-embedded-manifest-a-list", "carries", real_model=True)(lambda d: _run_args(d, _carrying(d, b"[1]")))
case("hil-bench-embedded-manifest-deep", "carries", real_model=True)(
    lambda d: ["hil", "bench", "--model", str(_carrying(d, DEEP_JSON)), "--out", _out(d), "--min-runs", "1",
               "--min-seconds", "0", "--batches", "1"])
case("preflight-not-tflite", "not a TFLite")(
    lambda d: ["ground", "preflight", str(_write(d / "m.tflite", b"\x00" * 64))])


# -- the link's ground end: `hil link`, `hil keygen` ------------------------------------------------

def _key(d: Path, text: bytes) -> str:
    return str(_write(d / "link.key", text))


case("link-key-empty", "key")(lambda d: ["hil", "link", "--port", "loop://", "--key-file", _key(d, b""), "ping"])
case("link-key-not-hex", "key")(lambda d: ["hil", "link", "--port", "loop://", "--key-file", _key(d, b"zz" * 32), "ping"])
case("link-key-missing", "key")(lambda d: ["hil", "link", "--port", "loop://", "--key-file", str(d / "none"), "ping"])
case("link-port-missing")(
    lambda d: ["hil", "link", "--port", str(d / "ttyNONE"), "--key-file", _key(d, b"ab" * 32 + b"\n"), "ping"])
case("link-port-bad-url")(
    lambda d: ["hil", "link", "--port", "nosuch://x", "--key-file", _key(d, b"ab" * 32 + b"\n"), "ping"])
case("link-baud-5000-digits", "--baud")(
    lambda d: ["hil", "link", "--port", "loop://", "--baud", "9" * 5000, "--key-file", _key(d, b"ab" * 32), "ping"])
case("link-timeout-nan", "--timeout")(
    lambda d: ["hil", "link", "--port", "loop://", "--timeout", "nan", "--key-file", _key(d, b"ab" * 32), "ping"])
case("keygen-over-a-key", "exists")(lambda d: ["hil", "keygen", "--out", _key(d, b"ab" * 32)])


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_a_malformed_input_ends_in_one_line(c: Case, tmp_path, request):
    if c.real_model:
        model = request.getfixturevalue("ground_models")["tflite"]
        (tmp_path / "good.tflite").write_bytes(model.read_bytes())
        (tmp_path / "good.tflite.json").write_bytes(Path(f"{model}.json").read_bytes())
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    result = orbitlite(*c.args(tmp_path), cwd=work)
    assert_one_line_error(result, *c.says)
    escaped = list(tmp_path.rglob("*escaped*"))
    assert not escaped, f"written outside --out: {escaped}"


def test_the_corpus_is_the_testers_size():
    """At least the 87 malformed inputs the tester tried, each its own test above."""
    assert len(CASES) >= 87 and len({c.id for c in CASES}) == len(CASES)
