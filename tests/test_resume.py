"""Kill the runtime with SIGKILL at random points of a scene, restart it, and check the final
product equals an uninterrupted run's: nothing lost, nothing duplicated, work resumed from the
last committed tile."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np

from onboard.contracts.product import decode_product
from onboard.inference.model import load_model
from onboard.run.plan import Plan
from onboard.run.strips import classify_scene
from onboard.scenes.scene import Scene
from onboard.store.store import Store, StoreConfig

BANDS = ("B02", "B03", "B04", "B08")

CHILD = textwrap.dedent("""
    import sys, numpy as np
    from onboard.inference.model import load_model
    from onboard.run.plan import Plan
    from onboard.run.strips import classify_scene
    from onboard.scenes.scene import Scene
    from onboard.store.store import Store, StoreConfig
    scene_path, model_path, store_path = sys.argv[1:4]
    store = Store(store_path, StoreConfig(capacity_bytes=1 << 24), clock=lambda: 0.0)
    scene = Scene("big", np.load(scene_path, mmap_mode="r"), ("B02", "B03", "B04", "B08"))
    model = load_model(model_path, batch=1)
    print("ready", store.begin_scene("big", "p", 8100, {}), flush=True)
    classify_scene(scene, Plan([model], store=store), clock=lambda: 0.0)
    print("done", flush=True)
""")


def _product(store: Store):
    (queued,) = store.next_for_downlink(5)
    return decode_product(store.read_product(queued.product_id))


def test_sigkill_at_random_points_then_resume(ground_models, spyndex_scene, tmp_path):
    # 90 x 90 = 8,100 tiles of 32 px: over 0.3 s of work on any machine (twice this one's best rate),
    # so a kill within 50 ms of the start always cuts the scene short
    scene = np.tile(spyndex_scene, (1, 10, 10))[:, :2880, :2880]
    np.save(tmp_path / "scene.npy", scene)
    model_path = ground_models["tflite"]
    assert load_model(model_path).manifest.id == "p"

    reference = Store(tmp_path / "reference.db", StoreConfig(capacity_bytes=1 << 24), clock=lambda: 0.0)
    classify_scene(Scene("big", scene, BANDS), Plan([load_model(model_path, batch=1)], store=reference),
                   clock=lambda: 0.0)
    want = _product(reference)

    rng = np.random.default_rng(7)
    store_path = tmp_path / "flight.db"
    resumed_from, kills = [], 0
    for _ in range(12):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "scene.npy"), str(model_path),
                                  str(store_path)], stdout=subprocess.PIPE, text=True)
        line = child.stdout.readline().split()
        assert line[0] == "ready", line
        resumed_from.append(int(line[1]))
        time.sleep(float(rng.uniform(0.0, 0.05)))
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            kills += 1
        child.wait()
        child.stdout.close()
    final = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "scene.npy"), str(model_path),
                            str(store_path)], capture_output=True, text=True, timeout=120)
    assert final.returncode == 0 and "done" in final.stdout, final.stderr

    print(f"\n{kills} SIGKILLs; each restart resumed at tile {resumed_from} of 8100")
    assert kills >= 1 and resumed_from[1] > 0, "the first run was cut short after committing its first strips"
    assert resumed_from == sorted(resumed_from) and len(set(resumed_from)) >= 2, resumed_from
    store = Store(store_path, StoreConfig(capacity_bytes=1 << 24), clock=lambda: 0.0)
    got = _product(store)  # exactly one product: finishing twice would have queued two
    np.testing.assert_array_equal(got.class_map, want.class_map)
    np.testing.assert_array_equal(got.confidence, want.confidence)
    assert got.skipped == want.skipped and got.model_id == want.model_id
    assert store.telemetry()["products_stored"] == 1
