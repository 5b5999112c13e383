import pickle
from fractions import Fraction

import numpy as np
import pytest

from kinema.core.errors import (
    CorruptMediaError,
    InvalidArgumentError,
    KinemaError,
    MediaOpenError,
    MissingExtraError,
    UnsupportedMediaError,
)
from kinema.core.extras import require
from kinema.core.frames import check_frame, check_mask
from kinema.core.timebase import format_time, parse_time, snap_rate, to_fraction


def test_errors_inherit_the_builtin_they_resemble_and_name_the_file():
    err = MediaOpenError("no such file", path="/x/clip.mp4", hint="check the path")
    assert isinstance(err, KinemaError) and isinstance(err, OSError)
    assert isinstance(UnsupportedMediaError("x"), ValueError)
    assert isinstance(CorruptMediaError("x"), ValueError)
    assert isinstance(MissingExtraError("x"), ImportError)
    assert str(err) == "/x/clip.mp4: no such file; check the path"
    assert "\n" not in str(err)


def test_errors_survive_pickling_for_worker_processes():
    err = CorruptMediaError("truncated", path="a.mkv", hint="re-export")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is CorruptMediaError and str(back) == str(err) and back.path == "a.mkv"


def test_require_names_the_extra_to_install():
    with pytest.raises(MissingExtraError, match=r"pip install 'kinema\[ml\]'"):
        require("kinema_no_such_module_xyz", "ml", feature="segmentation")
    assert require("json", "ml").dumps([1]) == "[1]"


def test_fractions_parse_snap_and_format():
    assert to_fraction("30000/1001") == Fraction(30000, 1001)
    assert to_fraction(25) == 25
    assert snap_rate(Fraction(29970, 1000)) == Fraction(30000, 1001)
    assert snap_rate(Fraction(17, 1)) == 17
    assert parse_time("1:02.5") == Fraction(125, 2)
    assert parse_time("1:00:00") == 3600
    assert format_time(3725.5) == "1:02:05.500"
    with pytest.raises(InvalidArgumentError):
        parse_time("1:xx")
    with pytest.raises(InvalidArgumentError):
        to_fraction("abc")


def test_frame_and_mask_validation():
    rgb = np.zeros((4, 6, 3), np.uint8)
    assert check_frame(rgb, (6, 4)) is not None
    with pytest.raises(InvalidArgumentError, match="expected 5x4"):
        check_frame(rgb, (5, 4))
    with pytest.raises(InvalidArgumentError, match="uint8"):
        check_frame(rgb.astype(np.float32))
    with pytest.raises(InvalidArgumentError, match="4 \\(RGBA\\)"):
        check_frame(rgb, alpha=True)
    assert check_mask(np.ones((3, 3), np.uint8)).dtype == bool
