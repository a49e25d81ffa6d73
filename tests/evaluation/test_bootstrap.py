"""Bootstrap pieces: resample weights, weighted percentiles, the score-cell AP."""
from __future__ import annotations

import numpy as np
import pytest

from evaluation import bootstrap as bs
from evaluation.coco import default_recall_thresholds


def test_weights_are_draws_with_replacement_and_seeded() -> None:
    w = bs.resample_weights(7, 50, seed=3, name="overall")
    assert w.shape == (50, 7) and (w.sum(axis=1) == 7).all() and (w >= 0).all()
    np.testing.assert_array_equal(w, bs.resample_weights(7, 50, seed=3, name="overall"))
    assert not np.array_equal(w, bs.resample_weights(7, 50, seed=4, name="overall"))
    assert not np.array_equal(w, bs.resample_weights(7, 50, seed=3, name="daylight=night"))


def test_weighted_percentiles_equal_numpy_on_the_repeated_values() -> None:
    rng = np.random.default_rng(0)
    values = np.sort(rng.normal(size=40))
    groups = rng.integers(0, 6, 40)
    weights = bs.resample_weights(6, 30, seed=1)
    out = bs.weighted_percentiles(values, groups, weights, (50, 90), chunk=7)
    for r in range(30):
        rep = np.repeat(values, weights[r, groups].astype(int))
        expect = [np.percentile(rep, 50), np.percentile(rep, 90)] if rep.size else [np.nan, np.nan]
        np.testing.assert_allclose(out[:, r], expect, atol=1e-12)


def test_cell_ap_with_one_detection_per_cell_is_coco_interpolated_precision() -> None:
    rng = np.random.default_rng(2)
    rthr = default_recall_thresholds()
    for _ in range(20):
        n, npig = int(rng.integers(1, 60)), int(rng.integers(1, 40))
        tp = rng.random(n) < 0.6
        tp[np.cumsum(tp) > npig] = False
        counts = np.stack([tp, ~tp], axis=1).astype(float)
        # the reference: COCOeval.accumulate's precision cells for one class
        tpc, fpc = np.cumsum(tp).astype(float), np.cumsum(~tp).astype(float)
        rc, pr = tpc / npig, tpc / (tpc + fpc + np.spacing(1))
        pr = np.maximum.accumulate(pr[::-1])[::-1]
        inds = np.searchsorted(rc, rthr, side="left")
        expect = np.where(inds < n, pr[np.minimum(inds, n - 1)], 0.0).mean()
        assert bs.binned_ap(counts, np.array(npig), rthr) == pytest.approx(expect, abs=1e-12)
    assert np.isnan(bs.binned_ap(np.ones((3, 2)), np.array(0), rthr))


def test_intervals_need_most_resamples_defined() -> None:
    assert bs.interval(np.array([1.0, np.nan, np.nan]), 0.95) is None
    iv = bs.interval(np.arange(101.0), 0.9, shift=1.0)
    assert iv == {"low": pytest.approx(6.0), "high": pytest.approx(96.0)}
