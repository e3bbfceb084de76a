import anndata as ad
import pytest

from nescot.__main__ import main


def test_demo_writes_h5ad_figure_and_table(tmp_path, capsys):
    main(["demo", "--out", str(tmp_path), "--n-iters", "30"])
    out = capsys.readouterr().out
    assert "GENOT prediction" in out and "unmapped control" in out and "energy_distance" in out
    adata = ad.read_h5ad(tmp_path / "demo.h5ad")
    assert "map_perturbation" in adata.obsm and "map_perturbation_mass" in adata.obs
    assert (tmp_path / "demo_pushforward.png").stat().st_size > 10_000


@pytest.mark.slow
def test_demo_beats_the_unmapped_baseline_on_every_metric(tmp_path):
    # What a new user sees first: with the default training every printed metric must favour the prediction.
    rows = main(["demo", "--out", str(tmp_path)])
    pred, unmapped = rows["GENOT prediction"], rows["unmapped control"]
    for name in ("energy_distance", "sinkhorn_divergence", "mmd_rbf"):
        assert pred[name] < unmapped[name], name
    for name in ("pearson_r_means", "r2_means"):
        assert pred[name] > unmapped[name], name
