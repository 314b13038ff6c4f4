"""PSR and DSR against values computed by hand from the formulas (Bailey & López de Prado)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hftlab.metrics import overfitting as O


def phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def test_psr_by_hand():
    """SR 0.1 over 101 returns, skew -0.5, kurtosis 4: Φ(0.1·10 / sqrt(1 + 0.05 + 0.0075))."""
    expected = phi(0.1 * 10 / math.sqrt(1 + 0.5 * 0.1 + (4 - 1) / 4 * 0.01))
    assert pytest.approx(expected, abs=1e-12) == O.psr(0.1, 101, -0.5, 4.0)
    assert pytest.approx(0.5, abs=1e-12) == O.psr(0.2, 50, 0.0, 3.0, sr_star=0.2)
    assert O.psr(0.1, 1, 0.0, 3.0) is None


def test_expected_max_sharpe_and_dsr_on_fixed_sharpes():
    """Five trials with Sharpe 0.05, 0.1, 0.15, 0.2, 0.3: SR0 and DSR of the best, by hand."""
    sharpes = [0.05, 0.1, 0.15, 0.2, 0.3]
    mean = sum(sharpes) / 5
    var = sum((s - mean) ** 2 for s in sharpes) / 4  # 0.00925
    assert pytest.approx(0.00925, abs=1e-15) == var
    # Φ⁻¹(0.8) = 0.8416212335729143, Φ⁻¹(1 − 1/(5e)) = Φ⁻¹(0.9264241117657115) = 1.4496656592240218
    z1, z2 = 0.8416212335729143, 1.4496656592240218
    g = 0.5772156649015329
    sr0 = math.sqrt(var) * ((1 - g) * z1 + g * z2)
    assert pytest.approx(sr0, abs=1e-12) == O.expected_max_sharpe(var, 5)
    n, skew, kurt = 250, 0.2, 5.0
    dsr = phi((0.3 - sr0) * math.sqrt(n - 1) / math.sqrt(1 - skew * 0.3 + (kurt - 1) / 4 * 0.09))
    out = O.deflated_sharpe(sharpes, 4, n, skew, kurt)
    assert 5 == out["trials"]
    assert pytest.approx(var, abs=1e-15) == out["sharpe_variance"]
    assert pytest.approx(dsr, abs=1e-12) == out["dsr"]
    assert out["dsr"] < O.psr(0.3, n, skew, kurt)  # deflation lowers confidence


def test_one_trial_has_no_dsr():
    """With a single trial there is no multiple-testing correction to compute."""
    assert O.deflated_sharpe([0.2], 0, 100, 0.0, 3.0)["dsr"] is None


def test_moments():
    """Skewness and non-excess kurtosis of a small sample, by hand."""
    r = np.array([1.0, 2.0, 3.0, 10.0])
    d = r - 4.0
    var = np.mean(d**2)
    skew, kurt = O.moments(r)
    assert pytest.approx(np.mean(d**3) / var**1.5) == skew
    assert pytest.approx(np.mean(d**4) / var**2) == kurt
    assert (0.0, 3.0) == O.moments(np.array([1.0, 1.0]))
