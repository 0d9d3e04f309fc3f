"""common/experiment.py: every variant × seed trained with the same base flags, the table's mean ± sd, the figure."""
from pathlib import Path

import pytest
from PIL import Image

from common import experiment
from common.experiment import Variant


def fake_train(calls: list):
    """A train.main stand-in whose score is a known function of the variant and the seed."""
    def main(argv: list[str]) -> dict:
        calls.append(argv)
        seed = int(argv[argv.index("--seed") + 1])
        width = float(argv[argv.index("--width") + 1]) if "--width" in argv else 1.0
        return {"metrics": {"miou": width / 10 + seed / 100, "iou": [0.1, 0.2]}}
    return main


def test_every_variant_and_seed_runs_with_the_same_base_flags(tmp_path):
    calls: list = []
    rows = experiment.run(fake_train(calls), [Variant("a"), Variant("b", ["--width", "2"])], seeds=[0, 1, 2],
                          base=["--epochs", "3"], output_dir=tmp_path, log=None)
    assert [(r["variant"], r["seed"]) for r in rows] == [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1), ("b", 2)]
    assert calls[4] == ["--epochs", "3", "--width", "2", "--seed", "1", "--output-dir", str(tmp_path / "b" / "seed1"),
                        "--overwrite"]
    assert [r["miou"] for r in rows] == pytest.approx([0.1, 0.11, 0.12, 0.2, 0.21, 0.22])
    staged = Variant("16s", ["--weights", "{root}/32s/seed{seed}/last.pth"])
    assert staged.flags(2, tmp_path) == ["--weights", f"{tmp_path}/32s/seed2/last.pth"]
    with pytest.raises(ValueError, match="distinct"):
        experiment.run(fake_train([]), [Variant("a"), Variant("a")], [0], [], tmp_path, log=None)
    with pytest.raises(ValueError, match="distinct"):
        experiment.run(fake_train([]), [Variant("a")], [], [], tmp_path, log=None)


def test_table_is_mean_and_sample_sd_per_variant(tmp_path):
    rows = experiment.run(fake_train([]), [Variant("a"), Variant("b", ["--width", "2"])], seeds=[0, 1, 2],
                          base=[], output_dir=tmp_path, log=None)
    for row in rows:
        row["seconds"] = 10.0 + row["seed"]
    lines = experiment.table(rows, {"miou": "mIoU"}).splitlines()
    assert lines[:2] == ["| variant | mIoU | seeds | time / run |", "| --- | ---: | ---: | ---: |"]
    assert lines[2:] == ["| a | 0.110 ± 0.010 | 3 | 11 s |", "| b | 0.210 ± 0.010 | 3 | 11 s |"]  # sd of .10 .11 .12
    assert experiment.mean_sd([0.5]) == "0.500" and experiment.mean_sd([1.0, 3.0]) == "2.000 ± 1.414"
    nan = float("nan")
    assert experiment.mean_sd([1.0, nan, 3.0]) == "2.000 ± 1.414 (n=2)" and experiment.mean_sd([nan, nan]) == "–"


def test_provenance_names_command_machine_date_and_wall_time(monkeypatch):
    monkeypatch.setattr("sys.argv", ["06_fcn/compare.py"])
    line = experiment.provenance(["--quick", "--seeds", "3"], seconds=90)
    assert line.startswith("`python 06_fcn/compare.py --quick --seeds 3` — ") and line.endswith("wall time 1.5 min")
    assert "cores" in line and "torch " in line


def test_plot_writes_a_png(tmp_path):
    rows = [{"variant": v, "seed": s, "miou": m, "seconds": 1.0} for v, s, m in
            [("32s", 0, 0.3), ("32s", 1, 0.34), ("8s", 0, 0.4), ("8s", 1, 0.42)]]
    path = experiment.plot(rows, "miou", "mIoU", tmp_path / "fig" / "compare.png", title="skips")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 200 and image.height > 200


def test_tools_figures_draws_the_synthetic_context_figure(tmp_path):
    import importlib.util

    from util import ROOT

    spec = importlib.util.spec_from_file_location("tools_figures", ROOT / "tools" / "figures.py")
    figures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(figures)
    path = figures.synthetic_context(tmp_path / "context.png")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 800
    with pytest.raises(SystemExit):
        figures.main(["no_such_figure"])


class _TinySegmentation:
    """Two 8×8 images whose label is all class 1; `[i]` hands out a marker the predictors must receive."""
    classes = ["background", "disk"]

    def sample(self, i):
        import numpy as np

        return np.full((8, 8, 3), 40 * i, dtype=np.uint8), np.ones((8, 8), dtype=np.uint8)

    def __getitem__(self, i):
        return f"image {i}", None


def test_prediction_grid_draws_every_predictor_on_every_row(tmp_path, monkeypatch):
    import matplotlib.figure
    import numpy as np

    seen, drawn = [], {}
    predictors = {name: (lambda image, name=name: seen.append((name, image)) or np.zeros((8, 8), dtype=np.uint8))
                  for name in ("32s", "8s")}
    save = matplotlib.figure.Figure.savefig

    def capture(fig, path, *args, **kwargs):
        drawn["titles"] = [ax.get_title() for ax in fig.axes]
        drawn["legend"] = [t.get_text() for t in fig.legends[0].get_texts()]
        drawn["suptitle"] = fig._suptitle.get_text()
        drawn["label"] = fig.axes[1].images[0].get_array()[0, 0].tolist()
        return save(fig, path, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", capture)
    path = experiment.prediction_grid(_TinySegmentation(), predictors, tmp_path / "a" / "grid.png", title="stages", n=2)
    assert seen == [("32s", "image 0"), ("8s", "image 0"), ("32s", "image 1"), ("8s", "image 1")]
    assert drawn["titles"] == ["image", "label", "32s", "8s"] + [""] * 4  # column titles on the first row only
    assert drawn["legend"] == ["background", "disk", "void"] and drawn["suptitle"] == "stages"
    assert drawn["label"] == pytest.approx([128 / 255, 0, 0])  # class 1 in the VOC colours
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (968, 572)  # 2.2 in per column, 2.3 in per row + 0.6, at 110 dpi
