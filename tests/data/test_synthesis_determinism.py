"""The same inputs give the same bytes, whichever SIMD code numpy picks on this CPU."""

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

RENDER_HASHES = """
import hashlib, sys
import numpy as np
sys.path[:0] = [sys.argv[1]]
from pipeline.data import contour_synth as cs, voice as V, voice_contours as VC
from tests.data import contour_signals as K

def digest(audio):
    return hashlib.sha256(np.ascontiguousarray(audio).tobytes()).hexdigest()

sr = 44_100
vibrato = K.vibrato(sr, seconds=1.0)
for kind in cs.TONE_KINDS:
    print(kind, digest(cs.draw_tone_timbre(np.random.default_rng(3), kind, 400.0).render(vibrato, sr)))
print("glide", digest(cs.render_contour(K.glide(sr, seconds=1.0), sr, cs.waveform_gains("sawtooth", 160))))
for register in V.REGISTERS:
    for draw in (VC.draw_speech_contour, VC.draw_sung_line):
        rng = np.random.default_rng(9)
        spec = V.draw_voice(rng, register)
        contour = draw(rng, 1.5, sr, register)
        audio = V.render_voice(spec, contour.f0_hz, sr, 4, contour.segments)
        print(register, draw.__name__, digest(contour.f0_hz), digest(audio))
"""


def hashes(extra_env: dict) -> str:
    done = subprocess.run([sys.executable, "-c", RENDER_HASHES, str(REPO)], capture_output=True, text=True,
                          check=True, env={**os.environ, **extra_env}, timeout=120)
    return done.stdout


def test_same_bytes_whatever_simd_numpy_picks():
    """numpy's float64 exp/log/sin/pow take other code (and give other last bits) without AVX-512/AVX2."""
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    except ImportError:
        pytest.skip("this numpy does not say which SIMD extensions it dispatches to")
    optional = [f for f in __cpu_dispatch__ if __cpu_features__.get(f)]
    if not optional:
        pytest.skip("this CPU has none of numpy's optional SIMD extensions to switch off")
    default, baseline = hashes({}), hashes({"NPY_DISABLE_CPU_FEATURES": " ".join(optional)})
    print(f"\nswitched off: {' '.join(optional)}\n{default}")
    assert len(default.splitlines()) == 7 + 1 + 2 * 4
    assert default == baseline
