"""The 3-D scatter of an image's pixels in RGB or L*a*b*, colored by cluster, centers marked.

:func:`pixel_cloud` takes a bounded random sample of pixels and assigns each to
its nearest palette color (the same clusters ``cbir palette`` reports);
:func:`save_pixel_plot` draws it as a PNG (or SVG/PDF) with matplotlib, or as an
interactive HTML page with plotly (the optional ``cbir[plot]`` extra).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cbir.color import nearest_codewords, rgb_to_lab
from cbir.errors import BadInputError
from cbir.palette.extract import DEFAULT_METHOD, Palette, check_k, check_rgb, extract_palette

SPACES = ("rgb", "lab")
DEFAULT_K = 8
DEFAULT_POINTS = 5_000
MAX_POINTS = 100_000
MATPLOTLIB_SUFFIXES = (".png", ".svg", ".pdf")
HTML_SUFFIXES = (".html", ".htm")
PLOTLY_MISSING = "HTML plots need plotly: pip install -e '.[plot]' in the cbir checkout (or pip install plotly)"


@dataclass(frozen=True)
class PixelCloud:
    """A sample of an image's pixels and their clusters.

    Attributes
    ----------
    rgb : ndarray, shape (n, 3), uint8
        The sampled pixels.
    lab : ndarray, shape (n, 3), float64
        The same pixels in L*a*b*.
    labels : ndarray, shape (n,), int64
        Index into ``palette.colors`` of each pixel's cluster (nearest center in Lab).
    palette : Palette
        The image's palette (largest share first).
    """

    rgb: np.ndarray
    lab: np.ndarray
    labels: np.ndarray
    palette: Palette


def pixel_cloud(
    rgb: np.ndarray,
    *,
    k: int = DEFAULT_K,
    n_points: int = DEFAULT_POINTS,
    method: str = DEFAULT_METHOD,
    seed: int = 0,
) -> PixelCloud:
    """Sample ``n_points`` pixels of an image and cluster them into its ``k`` dominant colors.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
    k : int
        Number of clusters, 1..256.
    n_points : int
        Pixels to plot, 1..100000 (all of them when the image is smaller).
    method : {"minibatch", "kmeans", "agglomerative"}
    seed : int
        Seeds the sample and the clustering.

    Returns
    -------
    PixelCloud

    Raises
    ------
    BadInputError
        If the image, ``k``, ``n_points`` or ``method`` is invalid.
    """
    rgb = check_rgb(rgb)
    k = check_k(k)
    if isinstance(n_points, bool) or not isinstance(n_points, (int, np.integer)) or not 1 <= n_points <= MAX_POINTS:
        raise BadInputError(f"the number of points must be between 1 and {MAX_POINTS}, got {n_points!r}")
    palette = extract_palette(rgb, k=k, method=method, seed=seed)
    flat = rgb.reshape(-1, 3)
    rng = np.random.default_rng(seed)
    if len(flat) > n_points:
        flat = flat[np.sort(rng.choice(len(flat), size=int(n_points), replace=False))]
    lab = rgb_to_lab(flat)
    return PixelCloud(rgb=flat.copy(), lab=lab, labels=nearest_codewords(lab, palette.lab), palette=palette)


def _coordinates(points_rgb: np.ndarray, points_lab: np.ndarray, space: str) -> tuple[np.ndarray, tuple[str, str, str]]:
    if space == "rgb":
        return points_rgb.astype(np.float64), ("R", "G", "B")
    # L* vertical, as colour scientists draw the Lab solid.
    return points_lab[:, [1, 2, 0]], ("a*", "b*", "L*")


def _title(cloud: PixelCloud, space: str) -> str:
    return f"{len(cloud.rgb):,} pixels in {space.upper()}, {len(cloud.palette)} clusters"


def _save_matplotlib(cloud: PixelCloud, path: Path, space: str) -> None:
    from matplotlib.figure import Figure

    points, names = _coordinates(cloud.rgb, cloud.lab, space)
    centers, _ = _coordinates(cloud.palette.rgb, cloud.palette.lab, space)
    colors = cloud.palette.rgb / 255.0
    figure = Figure(figsize=(7.5, 6.5), dpi=100)
    axes = figure.add_subplot(projection="3d")
    axes.scatter(*points.T, c=colors[cloud.labels], s=4, alpha=0.5, depthshade=False, linewidths=0)
    axes.scatter(*centers.T, c=colors, s=220, marker="o", edgecolors="black", linewidths=1.5, depthshade=False, alpha=1.0)
    axes.set_xlabel(names[0])
    axes.set_ylabel(names[1])
    axes.set_zlabel(names[2])
    if space == "rgb":
        for setter in (axes.set_xlim, axes.set_ylim, axes.set_zlim):
            setter(0, 255)
    axes.set_title(_title(cloud, space))
    figure.savefig(path)


def _save_plotly(cloud: PixelCloud, path: Path, space: str) -> None:
    try:
        import plotly.graph_objects as go
    except ImportError:
        raise BadInputError(PLOTLY_MISSING) from None
    points, names = _coordinates(cloud.rgb, cloud.lab, space)
    centers, _ = _coordinates(cloud.palette.rgb, cloud.palette.lab, space)
    css = [f"rgb({r},{g},{b})" for r, g, b in cloud.palette.rgb.tolist()]
    figure = go.Figure()
    figure.add_trace(
        go.Scatter3d(
            x=points[:, 0], y=points[:, 1], z=points[:, 2], mode="markers", name="pixels",
            marker={"size": 2, "color": [css[i] for i in cloud.labels], "opacity": 0.6},
            text=["#{:02x}{:02x}{:02x}".format(*p) for p in cloud.rgb.tolist()], hoverinfo="text",
        )
    )
    figure.add_trace(
        go.Scatter3d(
            x=centers[:, 0], y=centers[:, 1], z=centers[:, 2], mode="markers", name="centers",
            marker={"size": 10, "color": css, "symbol": "diamond", "line": {"color": "black", "width": 2}},
            text=[f"{c.hex} {c.proportion:.1%}" for c in cloud.palette.colors], hoverinfo="text",
        )
    )
    figure.update_layout(
        title=_title(cloud, space),
        scene={"xaxis_title": names[0], "yaxis_title": names[1], "zaxis_title": names[2]},
    )
    # The plotly library is embedded so the page works offline.
    figure.write_html(path, include_plotlyjs=True, full_html=True)


def check_plot_path(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path if a plot can be written there (known extension; plotly installed for HTML).

    Raises
    ------
    BadInputError
        If the extension is not supported or plotly is missing for an HTML plot.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MATPLOTLIB_SUFFIXES + HTML_SUFFIXES:
        raise BadInputError(f"{path}: the plot file must end in {', '.join(MATPLOTLIB_SUFFIXES + HTML_SUFFIXES)}")
    if suffix in HTML_SUFFIXES:
        try:
            import plotly  # noqa: F401
        except ImportError:
            raise BadInputError(PLOTLY_MISSING) from None
    return path


def save_pixel_plot(cloud: PixelCloud, path: str | os.PathLike[str], *, space: str = "rgb") -> Path:
    """Draw a :class:`PixelCloud` to ``path``: PNG/SVG/PDF with matplotlib, HTML with plotly.

    Parameters
    ----------
    cloud : PixelCloud
    path : str or path
        ``.png``, ``.svg`` or ``.pdf`` for a still image; ``.html`` for an interactive page.
    space : {"rgb", "lab"}
        Axes: R, G, B in 0..255, or a*, b*, L* (L* vertical).

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    BadInputError
        If the extension or space is not supported, plotly is missing for HTML, or the
        file cannot be written.
    """
    path = check_plot_path(path)
    if space not in SPACES:
        raise BadInputError(f"unknown color space {space!r}; choose from {', '.join(SPACES)}")
    try:
        if path.suffix.lower() in HTML_SUFFIXES:
            _save_plotly(cloud, path, space)
        else:
            _save_matplotlib(cloud, path, space)
    except OSError as exc:
        raise BadInputError(f"{path}: cannot write file ({exc.strerror or exc})") from None
    return path
