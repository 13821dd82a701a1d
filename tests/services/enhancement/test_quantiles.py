"""The frame percentiles equal np.percentile's to the last bit."""

import numpy as np
import pytest

from services.enhancement.quantiles import percentile, percentiles


@pytest.mark.parametrize("n", [1, 2, 3, 7, 100, 14_400, 19_200])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_percentiles_equal_numpy_bit_for_bit(n, dtype) -> None:
    rng = np.random.default_rng(n)
    raw = rng.gamma(2.0, 3.0, n) * (40 if dtype == np.uint8 else 1)
    sample = raw.astype(dtype) if dtype != np.uint8 else np.clip(raw, 0, 255).astype(np.uint8)
    percents = [0.0, 1.0, 12.5, 50.0, 99.0, 99.9, 100.0]
    ours = percentiles(sample, percents)
    theirs = np.percentile(sample, percents).tolist()
    assert [float(x).hex() for x in ours] == [float(x).hex() for x in theirs]
    for p in [*percents, 37.3, 99.5]:
        one = percentile(sample, p)
        assert float(one).hex() == float(np.percentile(sample, p)).hex(), p


def test_percentiles_of_a_strided_2d_view_leave_the_frame_untouched() -> None:
    frame = np.random.default_rng(0).random((90, 160)).astype(np.float32)
    before = frame.copy()
    view = frame[::4, ::4]
    assert percentile(view, 99.0) == float(np.percentile(view, 99.0))
    assert percentiles(view, [1.0, 50.0, 99.0]) == np.percentile(view, [1.0, 50.0, 99.0]).tolist()
    np.testing.assert_array_equal(frame, before)


def test_non_finite_samples_follow_numpy() -> None:
    sample = np.array([1.0, np.nan, 3.0], np.float32)
    assert np.isnan(percentile(sample, 50.0)) and np.isnan(percentiles(sample, [50.0])[0])


@pytest.mark.parametrize("bad", [-1.0, 100.5])
def test_percent_out_of_range_is_refused(bad) -> None:
    with pytest.raises(ValueError, match="percentile"):
        percentile(np.ones(3, np.float32), bad)
    with pytest.raises(ValueError, match="percentiles"):
        percentiles(np.ones(3, np.float32), [bad])


def test_empty_sample_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        percentile(np.ones(0, np.float32), 50.0)
