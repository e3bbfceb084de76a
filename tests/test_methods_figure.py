"""The methods page's figure is drawn from real fits by a script that keeps running."""

import numpy as np
from benchmarks import methods_figure


def test_methods_figure_script_draws_from_fitted_models(tmp_path):
    fits = methods_figure.fit_models(quick=True)
    assert fits["genot"].shape == fits["egnot"].shape == (3, 300, 2)
    assert np.isfinite(fits["genot"]).all() and np.isfinite(fits["egnot"]).all()
    assert fits["displacement"].shape == fits["moved"].shape == (30,) and fits["moved"].sum() == 4
    out = tmp_path / "methods.png"
    methods_figure.draw(fits).savefig(out)
    assert out.stat().st_size > 10_000
