"""``make soak``'s verdict (tools/soak/run.py), on made-up samples: flat, growing RSS,
growing objects, too few samples."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

# Loaded by path under its own name: tools/bench/run.py is imported as ``run`` elsewhere.
_PATH = Path(__file__).resolve().parent.parent.parent / "tools" / "soak" / "run.py"
_spec = importlib.util.spec_from_file_location("soak_run", _PATH)
assert _spec is not None and _spec.loader is not None
soak_run = importlib.util.module_from_spec(_spec)
sys.modules["soak_run"] = soak_run  # dataclasses look their module up here
_spec.loader.exec_module(soak_run)
Sample, verdict = soak_run.Sample, soak_run.verdict


def _samples(rss_step: int = 0, objects_step: int = 0, count: int = 12) -> list[Sample]:
    return [
        Sample(10.0 * (i + 1), 1000 * i, 20000 + rss_step * i, 9, 18000 + objects_step * i, 2)
        for i in range(count)
    ]


def test_flat() -> None:
    flat, lines = verdict(_samples(rss_step=10, objects_step=20), warmup=20)
    assert flat, lines


def test_growing_rss_is_not_flat() -> None:
    flat, lines = verdict(_samples(rss_step=512), warmup=20)  # 512 KiB per interval
    assert not flat
    assert "rss_kib" in next(line for line in lines if "GROWING" in line)


def test_growing_objects_is_not_flat() -> None:
    flat, lines = verdict(_samples(objects_step=300), warmup=20)
    assert not flat
    assert "objects" in next(line for line in lines if "GROWING" in line)


def test_warm_up_growth_is_not_counted() -> None:
    samples = _samples()
    samples[0].rss_kib += 50_000  # the first interval: caches, arenas, socket buffers
    assert verdict(samples, warmup=20)[0]


def test_too_few_samples_is_no_verdict() -> None:
    flat, lines = verdict(_samples(count=3), warmup=20)
    assert not flat and "too few" in lines[0]
