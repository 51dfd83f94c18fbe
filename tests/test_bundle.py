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
