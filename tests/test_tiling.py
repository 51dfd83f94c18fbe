import numpy as np
import pytest

from onboard.contracts.tiling import TileGrid


@pytest.mark.parametrize("extent, tile, stride, count", [
    (300, 32, 32, 10), (320, 32, 32, 10), (321, 32, 32, 11), (20, 32, 32, 1), (300, 32, 16, 18), (32, 32, 8, 1),
])
def test_grid_covers_the_scene(extent, tile, stride, count):
    grid = TileGrid.covering((extent, extent + 5), (tile, tile), (stride, stride))
    assert grid.rows == count
    origins = grid.origins()
    assert len(origins) == len(grid) == grid.rows * grid.cols
    assert origins[:, 0].max() + tile >= extent  # the last tile reaches the edge
    assert origins[:, 1].max() + tile >= extent + 5
    assert origins.dtype == np.int64 and origins.flags["C_CONTIGUOUS"]


def test_origins_are_row_major():
    origins = TileGrid.covering((64, 96), (32, 32)).origins()
    assert origins.tolist() == [[0, 0], [0, 32], [0, 64], [32, 0], [32, 32], [32, 64]]
