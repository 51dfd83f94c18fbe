"""Fuzz tests of the deploy's readers: the self-test vectors a bundle carries (read on the board by
onboard/inference/selftest.py) and what the board answers the ground (the supervisor's state,
status and hashes, and `onboard check-slot`, read by hil/deploy/deploy.py). Each is fed mutants
of a valid input; it returns a valid result or refuses in one line, with the project's error."""

from __future__ import annotations

import shutil

import msgpack
from hypothesis import example, given

from hil.deploy.deploy import Checked, Hashes, State, Status
from hil.errors import DeployError
from onboard.errors import OrbitliteError
from onboard.inference import selftest
from onboard.schema import decode
from tests.fuzz import FUZZ_EXAMPLES, HUGE_INT, INF, NAN, assert_refused_or_read, deep, encode, fuzz_settings, mutants

SHA = "ab" * 32
ANSWERS = {
    State: {"root": "/root/orbitlite/payload", "active": "a", "installed": ["a", "b"], "supervisor": 4242,
            "systemd": False, "euid": 0},
    Status: {"supervisor": 4242, "slot": "b", "state": "running", "reason": "running on slot b", "service": 4243,
             "restarts": 0, "trial": {"slot": "b", "previous": "a", "seconds": 60.0},
             "fallback": {"from": "b", "to": "a", "reason": "exited", "at": "2026-12-02T06:00:00+00:00"},
             "at": "2026-12-02T06:00:00+00:00", "running": True},
    Hashes: {"p.tflite": [18928, SHA], "bundle.json": [812, SHA]},
    Checked: {"slot": "a", "bundle": "829f173ff0025cf1", "models": ["p"], "config": "service.json",
              "python": "3.11.2", "arch": "aarch64", "interpreter": "ai_edge_litert"},
}


def fuzz_answers(examples: int) -> int:
    """Mutants of each answer through its schema; returns how many inputs ran."""
    ran = 0
    for schema, tree in ANSWERS.items():
        @fuzz_settings(examples)
        @given(data=mutants(tree, "json"))
        @example(data=encode({**tree, "root": deep()} if schema is State else [deep()], "json"))
        @example(data=encode({k: HUGE_INT for k in tree} if isinstance(tree, dict) else tree, "json"))
        def run(data: bytes) -> None:
            nonlocal ran
            ran += 1
            assert_refused_or_read(lambda: decode(data, schema, source="the board's answer", error=DeployError),
                                   DeployError)

        run()
    return ran


def fuzz_vectors(tmp_path, model, examples: int) -> int:
    """Mutants of a model's self-test vectors through `selftest.check`; returns how many inputs ran."""
    shutil.copy(model, tmp_path / model.name)
    shutil.copy(f"{model}.json", tmp_path / f"{model.name}.json")
    target = tmp_path / model.name
    valid = selftest.record(target)
    tree, ran = msgpack.unpackb(valid), 0

    @fuzz_settings(examples)
    @given(data=mutants(tree, "msgpack"))
    @example(data=valid)
    @example(data=encode({**tree, "count": HUGE_INT}, "msgpack"))
    @example(data=encode({**tree, "count": 10**9, "tiles": b""}, "msgpack"))
    @example(data=encode({**tree, "tiles": tree["tiles"][:-4]}, "msgpack"))
    @example(data=encode({**tree, "output": NAN}, "msgpack"))
    @example(data=encode({**tree, "version": INF}, "msgpack"))
    @example(data=encode({**tree, "output": deep()}, "msgpack"))
    def run(data: bytes) -> None:
        nonlocal ran
        ran += 1
        selftest.vectors_path(target).write_bytes(data)
        assert_refused_or_read(lambda: selftest.check(target), OrbitliteError)

    run()
    return ran


def test_the_seeds_are_valid(tmp_path, ground_models):
    for schema, tree in ANSWERS.items():
        decode(encode(tree, "json"), schema, source="the board's answer", error=DeployError)
    model = tmp_path / "p.tflite"
    shutil.copy(ground_models["tflite"], model)
    shutil.copy(f"{ground_models['tflite']}.json", f"{model}.json")
    selftest.vectors_path(model).write_bytes(selftest.record(model))
    assert selftest.check(model) == "p"


def test_board_answer_readers_fuzz():
    assert fuzz_answers(FUZZ_EXAMPLES) >= len(ANSWERS) * FUZZ_EXAMPLES


def test_selftest_vectors_reader_fuzz(tmp_path, ground_models):
    assert fuzz_vectors(tmp_path, ground_models["tflite"], FUZZ_EXAMPLES) >= FUZZ_EXAMPLES
