"""Arguments of the wrong type or sign get a clear, typed error instead of a confusing one or a
silent truncation (issue #9)."""

from __future__ import annotations

import numpy as np
import pytest

import radiobject as ro
from radiobject import Volume


@pytest.fixture
def vol(tmp_uri):
    return Volume.from_numpy(tmp_uri(), np.arange(8 * 6 * 4, dtype=np.int16).reshape(8, 6, 4))


def test_volume_of_none_is_a_type_error():
    with pytest.raises(TypeError, match="uri must be a str"):
        Volume(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("call", [lambda v: v.axial(1.5), lambda v: v.sagittal(np.float64(2.0)), lambda v: v.coronal("1"),
                                  lambda v: v.read([(0, 2.5), (0, 6), (0, 4)]), lambda v: v.axial(1, t=0.5)])  # fmt: skip
def test_float_and_string_indices_are_type_errors_not_truncated(vol, call):
    with pytest.raises(TypeError, match="must be an integer"):
        call(vol)


def test_negative_region_bounds_are_region_errors(vol):
    with pytest.raises(ro.RegionError, match="negative bound"):
        vol.read([(-1, 2), (0, 6), (0, 4)])
    with pytest.raises(ro.RegionError):
        vol.write(np.zeros((2, 6, 4), np.int16), [(-2, 0), (0, 6), (0, 4)])


def test_integer_indices_of_every_kind_still_work(vol):
    data = np.arange(8 * 6 * 4, dtype=np.int16).reshape(8, 6, 4)
    np.testing.assert_array_equal(vol.axial(np.int64(2)), data[:, :, 2])
    np.testing.assert_array_equal(vol.read([(np.int32(1), 3), (0, 6), (0, 4)]), data[1:3])
    np.testing.assert_array_equal(vol.sagittal(-1), data[-1])
