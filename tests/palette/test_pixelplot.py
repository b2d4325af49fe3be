"""3-D pixel plots (cbir.palette.pixelplot) and `cbir plot-pixels`, on real files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from cbir.cli import main
from cbir.color import nearest_codewords
from cbir.errors import BadInputError
from cbir.palette.pixelplot import pixel_cloud, save_pixel_plot
from tests.conftest import PALETTE, noisy, write_image


def four_colors() -> np.ndarray:
    image = np.empty((40, 80, 3), dtype=np.uint8)
    for i, name in enumerate(("red", "green", "blue", "yellow")):
        image[:, i * 20 : (i + 1) * 20] = PALETTE[name]
    return noisy(image, 6, seed=0)


def test_pixel_cloud_is_a_bounded_sample_labelled_by_nearest_center() -> None:
    cloud = pixel_cloud(four_colors(), k=4, n_points=500, seed=1)
    assert cloud.rgb.shape == (500, 3) and cloud.lab.shape == (500, 3)
    assert (cloud.labels == nearest_codewords(cloud.lab, cloud.palette.lab)).all()
    assert len(np.unique(cloud.labels)) == 4
    small = pixel_cloud(four_colors()[:5, :5], k=2, n_points=10_000)
    assert len(small.rgb) == 25  # never more points than pixels
    with pytest.raises(BadInputError, match="points"):
        pixel_cloud(four_colors(), n_points=0)


def test_cli_writes_a_valid_png(tmp_path: Path) -> None:
    path = write_image(tmp_path / "four.jpg", four_colors())
    for space in ("rgb", "lab"):
        out = tmp_path / f"pixels-{space}.png"
        result = CliRunner().invoke(main, ["plot-pixels", str(path), "-k", "4", "--out", str(out), "--space", space])
        assert result.exit_code == 0, result.stderr
        with Image.open(out) as image:
            assert image.format == "PNG" and image.size[0] > 300 and image.size[1] > 300
            image.verify()
        assert "4 clusters" in result.stderr


def test_html_plot_has_the_points_and_the_centers(tmp_path: Path) -> None:
    pytest.importorskip("plotly")
    cloud = pixel_cloud(four_colors(), k=4, n_points=300)
    out = save_pixel_plot(cloud, tmp_path / "pixels.html", space="lab")
    text = out.read_text(encoding="utf-8")
    assert "<html>" in text[:200].lower() and "Plotly.newPlot" in text and "Scatter3d".lower() in text.lower()
    for color in cloud.palette.colors:
        assert color.hex in text


def test_cli_plot_errors(tmp_path: Path) -> None:
    path = write_image(tmp_path / "four.png", four_colors())
    result = CliRunner().invoke(main, ["plot-pixels", str(path), "--out", str(tmp_path / "p.gif")])
    assert result.exit_code == 2 and ".png" in result.stderr and result.stderr.strip().count("\n") == 0
    missing = CliRunner().invoke(main, ["plot-pixels", str(tmp_path / "nope.png"), "--out", str(tmp_path / "p.png")])
    assert missing.exit_code == 2 and "nope.png" in missing.stderr
    assert CliRunner().invoke(main, ["plot-pixels", str(path), "-k", "0", "--out", str(tmp_path / "p.png")]).exit_code == 2
