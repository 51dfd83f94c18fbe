"""Contract 4: a bundle's manifest of hashes, built on the ground and checked in the payload's slot."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from hil.deploy.bundle import build_bundle
from onboard.contracts import bundle
from onboard.errors import BundleError


@pytest.fixture
def slot(ground_models, tmp_path):
    """A slot holding the converted model, its manifest and their bundle manifest."""
    slot = tmp_path / "slots" / "b"
    build_bundle([ground_models["tflite"]], slot)
    return slot


def test_a_bundle_lists_each_model_with_its_manifest(slot, ground_models):
    listed = bundle.verify(slot)
    assert sorted(listed.files) == ["p.tflite", "p.tflite.json", "p.tflite.selftest"]
    assert listed.models == ["p.tflite"] and listed.runtime is None and listed.wheels == []
    body = json.loads((slot / bundle.MANIFEST_NAME).read_text())
    assert body["schema"] == "orbitlite/bundle" and body["version"] == 2
    assert body["files"]["p.tflite"]["size"] == ground_models["tflite"].stat().st_size


def test_a_slot_that_is_not_its_bundle_is_refused(slot):
    (slot / "p.tflite.json").write_text((slot / "p.tflite.json").read_text().replace('"p"', '"q"', 1))
    with pytest.raises(BundleError, match="p.tflite.json is not the file its bundle lists"):
        bundle.verify(slot)
    (slot / "p.tflite.json").unlink()
    with pytest.raises(BundleError, match="lacks p.tflite.json"):
        bundle.verify(slot)
    (slot / bundle.MANIFEST_NAME).unlink()
    with pytest.raises(BundleError, match="holds no bundle.json"):
        bundle.verify(slot)


def test_a_model_that_is_not_its_manifest_is_not_bundled(ground_models, tmp_path):
    model = tmp_path / "p.tflite"
    shutil.copy(ground_models["tflite"], model)
    shutil.copy(f"{ground_models['tflite']}.json", f"{model}.json")
    model.write_bytes(model.read_bytes()[:-10])
    with pytest.raises(BundleError, match="does not match its manifest"):
        build_bundle([model], tmp_path / "bundle")


def test_a_slot_is_its_whole_bundle_and_nothing_else(slot, tmp_path):
    listed = json.loads((slot / bundle.MANIFEST_NAME).read_text())
    with pytest.raises(BundleError, match="does not list other.tflite, which the service needs"):
        bundle.verify(slot, needs=["p.tflite", "p.tflite.json", "other.tflite"])
    (slot / bundle.MANIFEST_NAME).write_text(json.dumps({**listed, "files": {}}))
    with pytest.raises(BundleError, match="files: Expected `object` of length >= 1"):
        bundle.verify(slot)
    short = {**listed, "files": {"p.tflite": listed["files"]["p.tflite"]}}  # fewer files than were shipped
    (slot / bundle.MANIFEST_NAME).write_text(json.dumps(short))
    with pytest.raises(BundleError, match="slot b holds p.tflite.json, p.tflite.selftest, which its bundle does not"):
        bundle.verify(slot)
    with pytest.raises(BundleError, match="does not list p.tflite.json, which the service needs"):
        bundle.verify(slot, needs=["p.tflite", "p.tflite.json"])
    (slot / bundle.MANIFEST_NAME).write_text(json.dumps(listed))
    assert bundle.verify(slot, needs=["p.tflite", "p.tflite.json"]).id == bundle.read(slot).id
    os.rename(slot / "p.tflite", tmp_path / "p.tflite")  # the listed file a link to one of the same bytes
    os.symlink(tmp_path / "p.tflite", slot / "p.tflite")
    with pytest.raises(BundleError, match="p.tflite is a symbolic link or a folder"):
        bundle.verify(slot)


def test_a_runtime_travels_with_its_wheels_and_a_config_is_a_listed_file(slot):
    listed = json.loads((slot / bundle.MANIFEST_NAME).read_text())
    wheel = {"size": 1, "sha256": "ab" * 32}
    runtime = {"arch": "aarch64", "python": "3.11", "requirement": "orbitlite==0.1.0"}
    for body, why in (({**listed, "runtime": runtime}, "wheels travel with a runtime"),
                      ({**listed, "files": {**listed["files"], "numpy-2.4.6-cp311-cp311-linux_aarch64.whl": wheel}},
                       "wheels travel with a runtime"),
                      ({**listed, "config": "service.json"}, "config names service.json, which the bundle does not"),
                      ({**listed, "runtime": {**runtime, "arch": "sparc"}}, "runtime.arch"),
                      ({**listed, "runtime": {**runtime, "requirement": "numpy==1.0"}}, "runtime.requirement"),
                      ({**listed, "version": 1}, "version 1; this reader knows version 2")):
        (slot / bundle.MANIFEST_NAME).write_text(json.dumps(body))
        with pytest.raises(BundleError, match=why):
            bundle.verify(slot)


def test_a_bundles_identity_is_its_files_not_when_it_was_built(ground_models, tmp_path):
    first = build_bundle([ground_models["tflite"]], tmp_path / "one")
    again = build_bundle([ground_models["tflite"]], tmp_path / "two")
    assert first.id == again.id and len(first.id) == 16
    (tmp_path / "two" / "p.tflite.selftest").write_bytes(b"other")
    assert bundle.bundle_id({n: f.sha256 for n, f in first.files.items()}) == first.id
    assert bundle.bundle_id({**{n: f.sha256 for n, f in first.files.items()}, "p.tflite.selftest": "0" * 64}) != first.id
    with pytest.raises(BundleError, match="is not empty"):
        build_bundle([ground_models["tflite"]], tmp_path / "one")
