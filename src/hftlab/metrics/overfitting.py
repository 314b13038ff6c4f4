"""Overfitting statistics of a sweep: Probabilistic and Deflated Sharpe Ratios.

Bailey & López de Prado, "The Sharpe Ratio Efficient Frontier" (2012) for the PSR and "The Deflated
Sharpe Ratio" (2014) for the DSR. Sharpe ratios here are per sampling interval (not annualized), ``T``
is the number of returns behind each, ``skew`` and ``kurtosis`` their third and fourth standardized
moments (kurtosis not in excess: 3 for a normal distribution).

- PSR(SR*) = Φ( (SR − SR*) √(T − 1) / √(1 − skew·SR + (kurtosis − 1)/4 · SR²) )
- SR0 = √V[SR_n] · ((1 − γ) Φ⁻¹(1 − 1/N) + γ Φ⁻¹(1 − 1/(N e))), γ = Euler–Mascheroni, N trials,
  V[SR_n] the variance of the trials' Sharpe ratios: the Sharpe ratio the best of N trials reaches by
  luck alone.
- DSR = PSR(SR0) of the best trial.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

EULER_GAMMA = 0.5772156649015329
_N = NormalDist()


def moments(returns: np.ndarray) -> tuple[float, float]:
    """Skewness and (non-excess) kurtosis of returns, population moments; (0, 3) when undefined."""
    if len(returns) < 2:
        return 0.0, 3.0
    d = returns - returns.mean()
    var = float(np.mean(d**2))
    if var == 0.0:
        return 0.0, 3.0
    return float(np.mean(d**3) / var**1.5), float(np.mean(d**4) / var**2)


def psr(sr: float, n: int, skew: float, kurtosis: float, sr_star: float = 0.0) -> float | None:
    """Probability that the true Sharpe ratio exceeds ``sr_star``, given ``n`` returns."""
    if n < 2:
        return None
    denom = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr
    if denom <= 0.0:
        return None
    return _N.cdf((sr - sr_star) * math.sqrt(n - 1) / math.sqrt(denom))


def expected_max_sharpe(sharpe_variance: float, trials: int) -> float | None:
    """SR0: the expected best Sharpe ratio of ``trials`` independent trials with zero true Sharpe."""
    if trials < 2 or sharpe_variance < 0.0:
        return None
    z1 = _N.inv_cdf(1.0 - 1.0 / trials)
    z2 = _N.inv_cdf(1.0 - 1.0 / (trials * math.e))
    return math.sqrt(sharpe_variance) * ((1.0 - EULER_GAMMA) * z1 + EULER_GAMMA * z2)


def deflated_sharpe(
    sharpes: list[float], best: int, n: int, skew: float, kurtosis: float
) -> dict[str, float | int | None]:
    """DSR of trial ``best`` among ``sharpes`` (the sweep's trials), with its SR0 and the trial count."""
    trials = len(sharpes)
    variance = float(np.var(sharpes, ddof=1)) if trials >= 2 else 0.0
    sr0 = expected_max_sharpe(variance, trials)
    return {
        "trials": trials,
        "sharpe_variance": variance,
        "expected_max_sharpe": sr0,
        "dsr": None if sr0 is None else psr(sharpes[best], n, skew, kurtosis, sr0),
    }
