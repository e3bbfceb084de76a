import os

# Compiling takes about 60% of this suite's time on a 2-core CPU (about 110 training programs). XLA's LLVM
# pipeline without its expensive passes compiles faster, and the programs we checked give the same bits (a GENOT
# and an EgNOT fit and their samples). Set before JAX starts its CPU backend; flags set by the user are kept.
os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_llvm_disable_expensive_passes=true".strip()

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest

import nescot as ns


@pytest.fixture(autouse=True)
def _quiet_and_clean():
    """Silence progress bars and close figures after each test."""
    old = ns.settings.verbosity, ns.settings.progress_bar
    ns.settings.progress_bar = False
    yield
    ns.settings.verbosity, ns.settings.progress_bar = old
    plt.close("all")
