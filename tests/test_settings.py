import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.experimental.compilation_cache import compilation_cache

import nescot as ns


@pytest.fixture
def cache_off():
    yield
    ns.settings.compilation_cache_dir = None


def _compile_something_new(scale: float) -> None:
    jax.jit(lambda x: x * scale + 1.0)(jnp.ones(7))  # a new function object: compiled, not found in memory


def test_compilation_cache_dir_switches_jax_cache(tmp_path, cache_off):
    min_time = jax.config.jax_persistent_cache_min_compile_time_secs
    first, second = tmp_path / "first", tmp_path / "second"
    ns.settings.compilation_cache_dir = first
    assert ns.settings.compilation_cache_dir == first and first.is_dir()
    _compile_something_new(2.0)
    n_first = len(os.listdir(first))
    assert n_first > 0  # programs of any compile time are kept
    ns.settings.compilation_cache_dir = second  # a new directory takes over (JAX opens its cache once)
    _compile_something_new(3.0)
    assert len(os.listdir(second)) > 0 and len(os.listdir(first)) == n_first
    ns.settings.compilation_cache_dir = None
    _compile_something_new(4.0)
    assert len(os.listdir(first)) == n_first and jax.config.jax_compilation_cache_dir is None
    assert jax.config.jax_persistent_cache_min_compile_time_secs == min_time  # JAX's setting back


def test_compilation_cache_dir_must_be_a_directory(tmp_path, cache_off):
    a_file = tmp_path / "model.nescot"
    a_file.write_text("")
    with pytest.raises(NotADirectoryError, match="model.nescot"):
        ns.settings.compilation_cache_dir = a_file
    assert ns.settings.compilation_cache_dir is None and jax.config.jax_compilation_cache_dir is None


def test_turning_the_cache_off_gives_jax_its_own_settings_back(tmp_path, cache_off):
    own = str(tmp_path / "own")
    jax.config.update("jax_compilation_cache_dir", own)  # a user's own JAX setting
    try:
        ns.settings.compilation_cache_dir = tmp_path / "ours"
        assert jax.config.jax_compilation_cache_dir == str(tmp_path / "ours")
        ns.settings.compilation_cache_dir = None
        assert jax.config.jax_compilation_cache_dir == own
    finally:
        jax.config.update("jax_compilation_cache_dir", None)
        compilation_cache.reset_cache()


_SESSION = """
import json, sys
import numpy as np
import nescot as ns
from nescot.solvers._compile_cache import count_compiles

ns.settings.progress_bar = False
ns.settings.compilation_cache_dir = sys.argv[1]
rng = np.random.default_rng(0)
x, y = rng.normal(size=(64, 2)).astype(np.float32), rng.normal(size=(64, 2)).astype(np.float32) + 1
with count_compiles() as n:
    model = ns.solvers.GENOT(hidden_dims=(8,), embed_dim=8, n_frequencies=2, chunk_size=5)
    model.fit(x, y, n_iters=5, batch_size=16, seed=0)
    samples = model.transport(x[:4], n_samples=2, seed=0)
print(json.dumps({"compiled": n[0], "loaded": n[1], "samples": samples.ravel().tolist()}))
"""


def test_a_new_session_loads_what_an_earlier_one_compiled(tmp_path):
    def session() -> dict:
        out = subprocess.run(
            [sys.executable, "-c", _SESSION, str(tmp_path / "jax")], check=True, capture_output=True, text=True
        )
        return json.loads(out.stdout.strip().splitlines()[-1])

    cold, warm = session(), session()
    assert cold["compiled"] > 50 and cold["loaded"] == 0  # a fit compiles many programs and writes them all
    assert warm["compiled"] == 0 and warm["loaded"] == cold["compiled"]  # the next session loads them all
    np.testing.assert_array_equal(warm["samples"], cold["samples"])
