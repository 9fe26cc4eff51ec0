"""ECG rhythm and morphology segments for a swarm of hospitals, generated offline with physiokit.

physiokit (BSD-3-Clause, `physiokit.ecg.synthesize`) builds single-lead ECG from rhythm and
morphology presets; it needs no download. Each hospital gets 3-second lead-I segments at 100 Hz
(300 samples, each segment z-normalised) of five classes:

    0 sinus rhythm (SR), 1 atrial fibrillation (AFIB), 2 anterior STEMI, 3 LBBB, 4 LAHB

Non-IID like real sites: hospital i's class mix is a seeded Dirichlet(alpha) draw, and its noise
level rises with its index (a clean cardiology lab to a noisy ambulance feed). The "sites" mixes
(`site_mix`) give two kinds of hospital instead, alternating by index: rhythm clinics (mostly sinus
rhythm, atrial fibrillation, LAHB) and chest-pain units (mostly sinus rhythm, STEMI, LBBB); each
sees the other kind's classes only rarely (a few segments each), the strongly non-IID split on
which grouping similar sites is measured. Two framings share
the segments: "ecg_rhythm" keeps the five classes, "ecg_anomaly" is normal (SR) against abnormal
(every other class), the anomaly-detection task of peer-to-peer ECG monitoring.

Every draw is seeded (physiokit reads Python's `random` and numpy's global generator, so both are
seeded and restored around each call): the same (hospital, seed, sizes) give the same segments
on every machine with the same physiokit and numpy. Generation costs about 25 ms per segment, so
finished arrays are cached as plain-array `.npz` files (`node.scenarios.cache`).

The published validation set (`published_validation`) is the same for every hospital: balanced
over the classes, mid-range noise, from its own seed stream; the task on chain carries its
keccak256 digest, and the `best` merge rule ranks models on it.
"""

from __future__ import annotations

import logging
import random
from contextlib import contextmanager
from typing import Iterator

import numpy as np

from .cache import cached_arrays

logger = logging.getLogger(__name__)

SAMPLE_RATE = 100  # Hz
SEGMENT_SECONDS = 3
SEGMENT = SAMPLE_RATE * SEGMENT_SECONDS  # samples per segment
SEGMENTS_PER_RECORDING = 10  # one synthesised 30 s recording gives 10 segments
CLASSES: tuple[str, ...] = ("SR", "AFIB", "ant_STEMI", "LBBB", "LAHB")
NORMAL = 0  # sinus rhythm: the "normal" class of the anomaly framing
ROWS_PER_HOSPITAL = 240
VALIDATION_PER_CLASS = 40
NOISE_RANGE = (0.2, 1.4)  # noise multiplier of the first and the last hospital
VALIDATION_NOISE = 0.8
GENERATOR_VERSION = 1  # bump when the generation changes: it keys the cache
# The two kinds of hospital of the "sites" mixes: each kind's main classes, in equal shares
SITE_KINDS: tuple[tuple[int, ...], ...] = ((0, 1, 4), (0, 2, 3))
SITE_RARE_SHARE = 0.08  # share of a site's rows that a seeded Dirichlet(1) spreads over all classes


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed the global generators physiokit draws from, and put them back afterwards."""
    py_state, np_state = random.getstate(), np.random.get_state()
    random.seed(seed)
    np.random.seed(seed)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def recording(label: int, seed: int, noise: float, heart_rate: float) -> np.ndarray:
    """SEGMENTS_PER_RECORDING z-normalised segments (float32, (n, SEGMENT)) of one synthetic recording."""
    import warnings

    import physiokit as pk

    preset = pk.ecg.EcgPreset(CLASSES[label])
    with _seeded(seed), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # physiokit warns about scipy filter settings at 100 Hz
        ecg, _, _ = pk.ecg.synthesize(signal_length=SEGMENT * SEGMENTS_PER_RECORDING, sample_rate=SAMPLE_RATE,
                                      leads=1, heart_rate=heart_rate, preset=preset, noise_multiplier=noise)
    segments = np.asarray(ecg[0], dtype=np.float64).reshape(SEGMENTS_PER_RECORDING, SEGMENT)
    centred = segments - segments.mean(axis=1, keepdims=True)
    spread = np.maximum(centred.std(axis=1, keepdims=True), 1e-6)
    return (centred / spread).astype(np.float32)


def _segments(counts: np.ndarray, noise: float, seed_stream: list[int]) -> dict[str, np.ndarray]:
    """`counts[c]` segments of each class c from whole recordings (the last one cut short)."""
    rng = np.random.default_rng(seed_stream)
    xs, ys = [], []
    for label, n in enumerate(counts):
        for k in range(-(-int(n) // SEGMENTS_PER_RECORDING)):
            heart_rate = float(rng.uniform(55.0, 95.0))
            seed = int(rng.integers(2**31 - 1))
            part = recording(label, seed, noise, heart_rate)[: int(n) - k * SEGMENTS_PER_RECORDING]
            xs.append(part)
            ys.append(np.full(len(part), label, dtype=np.int64))
    if not xs:
        return {"x": np.empty((0, SEGMENT), np.float32), "y": np.empty(0, np.int64)}
    return {"x": np.concatenate(xs), "y": np.concatenate(ys)}


def hospital_mix(index: int, n_hospitals: int, alpha: float, seed: int) -> np.ndarray:
    """Hospital `index`'s share of each class: Dirichlet(alpha), seeded by (seed, index)."""
    if not 0 <= index < n_hospitals:
        raise ValueError(f"hospital index must be 0..{n_hospitals - 1}, got {index}")
    if not alpha > 0:
        raise ValueError(f"alpha must be positive, got {alpha}")
    return np.random.default_rng([seed, 52391, index]).dirichlet(np.full(len(CLASSES), alpha))


def site_mix(index: int, n_hospitals: int, alpha: float, seed: int) -> np.ndarray:
    """Hospital `index`'s class shares in the "sites" mixes: its kind's main classes (kind =
    index modulo the number of kinds) in Dirichlet(alpha x 1) shares, plus SITE_RARE_SHARE
    spread over every class by a seeded Dirichlet(1) draw."""
    if not 0 <= index < n_hospitals:
        raise ValueError(f"hospital index must be 0..{n_hospitals - 1}, got {index}")
    if not alpha > 0:
        raise ValueError(f"alpha must be positive, got {alpha}")
    rng = np.random.default_rng([seed, 40813, index])
    main = SITE_KINDS[index % len(SITE_KINDS)]
    mix = SITE_RARE_SHARE * rng.dirichlet(np.ones(len(CLASSES)))
    mix[list(main)] += (1.0 - SITE_RARE_SHARE) * rng.dirichlet(np.full(len(main), alpha))
    return mix


MIXES = {"dirichlet": hospital_mix, "sites": site_mix}


def hospital_noise(index: int, n_hospitals: int) -> float:
    lo, hi = NOISE_RANGE
    return lo if n_hospitals == 1 else lo + (hi - lo) * index / (n_hospitals - 1)


def hospital_segments(index: int, n_hospitals: int, alpha: float = 0.5, seed: int = 0,
                      rows: int = ROWS_PER_HOSPITAL, mixes: str = "dirichlet") -> tuple[np.ndarray, np.ndarray]:
    """All segments of one hospital (x float32 (rows, SEGMENT), y int64 five-class labels).

    Every class present gets at least 4 segments, so each one shows up on both sides of a
    stratified train/test split; the rest follow the hospital's mix (`MIXES[mixes]`).
    """
    if mixes not in MIXES:
        raise ValueError(f"unknown ECG class mixes {mixes!r}; expected one of {tuple(MIXES)}")
    mix = MIXES[mixes](index, n_hospitals, alpha, seed)
    counts = np.floor(mix * rows).astype(int)
    counts[(counts > 0) & (counts < 4)] = 4
    counts[int(np.argmax(mix))] += max(0, rows - int(counts.sum()))
    noise = hospital_noise(index, n_hospitals)
    kind = "" if mixes == "dirichlet" else f"-{mixes}"
    key = f"ecg-v{GENERATOR_VERSION}{kind}-h{index}of{n_hospitals}-a{alpha:g}-s{seed}-r{rows}"
    arrays = cached_arrays(key, lambda: _segments(counts, noise, [seed, 7213, index]))
    return arrays["x"], arrays["y"]


def published_validation(per_class: int = VALIDATION_PER_CLASS) -> tuple[np.ndarray, np.ndarray]:
    """The unified validation set: `per_class` segments of each class, from a fixed seed stream."""
    key = f"ecg-v{GENERATOR_VERSION}-validation-{per_class}"
    counts = np.full(len(CLASSES), per_class)
    arrays = cached_arrays(key, lambda: _segments(counts, VALIDATION_NOISE, [104723, 1]))
    return arrays["x"], arrays["y"]


def frame(y: np.ndarray, framing: str) -> np.ndarray:
    """Labels for a framing: "rhythm" keeps the classes, "anomaly" is 0 normal / 1 abnormal."""
    if framing == "rhythm":
        return y
    if framing == "anomaly":
        return (y != NORMAL).astype(np.int64)
    raise ValueError(f"unknown ECG framing {framing!r}; expected 'rhythm' or 'anomaly'")
