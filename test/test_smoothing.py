"""Score smoothing: moving average, hysteresis, and reset on a new action."""
import numpy as np
import pytest

from actiseg_ros.ros.smoothing import ScoreSmoother, hysteresis_decision


def test_first_frame_is_decided_on_its_own_score():
    smoother = ScoreSmoother(alpha=0.5, hysteresis=0.1)
    smoothed, active = smoother.update([0.9, 0.5, 0.75], gate=0.75)
    np.testing.assert_allclose(smoothed, [0.9, 0.5, 0.75])
    assert active.tolist() == [True, False, True]


def test_flickering_score_gives_a_steady_mask():
    """A score hovering around the gate would toggle every frame without smoothing."""
    scores = [0.80, 0.72, 0.79, 0.70, 0.78, 0.71, 0.80]
    plain = [s >= 0.75 for s in scores]
    smoother = ScoreSmoother(alpha=0.5, hysteresis=0.1)
    smoothed_decisions = [bool(smoother.update([s], 0.75)[1][0]) for s in scores]
    assert sum(a != b for a, b in zip(plain, plain[1:])) == 6
    assert smoothed_decisions == [True] * len(scores)


def test_a_real_drop_switches_off_and_a_real_rise_switches_on():
    smoother = ScoreSmoother(alpha=0.5, hysteresis=0.1)
    smoother.update([0.95], 0.75)
    smoothed, active = smoother.update([0.2], 0.75)  # 0.575 < 0.65
    assert smoothed[0] == pytest.approx(0.575) and not active[0]
    smoothed, active = smoother.update([0.95], 0.75)  # 0.7625 >= 0.75
    assert smoothed[0] == pytest.approx(0.7625) and active[0]


def test_alpha_one_and_no_hysteresis_is_the_plain_gate():
    smoother = ScoreSmoother(alpha=1.0, hysteresis=0.0)
    rng = np.random.default_rng(0)
    for _ in range(20):
        scores = rng.random(4)
        smoothed, active = smoother.update(scores, 0.6)
        np.testing.assert_allclose(smoothed, scores.astype(np.float32))
        assert active.tolist() == (scores >= 0.6).tolist()


def test_reset_and_a_different_object_count_start_fresh():
    smoother = ScoreSmoother(alpha=0.2, hysteresis=0.3)
    smoother.update([0.9, 0.9], 0.75)
    assert smoother.update([0.1, 0.1, 0.1], 0.75)[1].tolist() == [False] * 3  # new K: no history
    smoother.update([0.9, 0.9, 0.9], 0.75)
    smoother.reset()
    smoothed, active = smoother.update([0.1, 0.1, 0.1], 0.75)
    np.testing.assert_allclose(smoothed, [0.1] * 3)
    assert not active.any()


def test_hysteresis_decision_table():
    smoothed = np.array([0.8, 0.7, 0.6, 0.8, 0.7, 0.6])
    previous = np.array([True, True, True, False, False, False])
    assert hysteresis_decision(smoothed, previous, 0.75, 0.1).tolist() == [True, True, False, True, False, False]


@pytest.mark.parametrize("alpha, hysteresis", [(0.0, 0.1), (1.5, 0.1), (0.5, -0.1), (0.5, 1.0)])
def test_invalid_settings_are_refused(alpha, hysteresis):
    with pytest.raises(ValueError):
        ScoreSmoother(alpha, hysteresis)
