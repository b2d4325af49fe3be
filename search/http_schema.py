"""The HTTP API's JSON shapes (pydantic models; the OpenAPI schema at ``/docs`` is made from them)."""

from __future__ import annotations

from enum import Enum

from pydantic import BaseModel, Field

from cbir.color_query import MAX_QUERY_COLORS
from cbir.distances import SEARCH_METRICS

#: The ``metric`` query parameter: one of the search metrics (an Enum, so the schema lists them).
Metric = Enum("Metric", {name.replace("-", "_"): name for name in SEARCH_METRICS}, type=str)  # type: ignore[misc]


class ColorIn(BaseModel):
    hex: str = Field(pattern=r"^#?[0-9a-fA-F]{6}$", examples=["#e0c080"], description="An sRGB color, #rrggbb.")
    weight: float = Field(1.0, gt=0, allow_inf_nan=False, description="Its share of the query (normalized).")


class ColorQuery(BaseModel):
    colors: list[ColorIn] = Field(min_length=1, max_length=MAX_QUERY_COLORS)


class PaletteColor(BaseModel):
    hex: str
    rgb: list[int]
    lab: list[float]
    proportion: float


class VideoShot(BaseModel):
    path: str = Field(description="the video file")
    time: float = Field(description="seconds into the video of the shot's keyframe")
    shot_start: float
    shot_end: float


class SearchResult(BaseModel):
    rank: int
    id: int
    name: str
    path: str
    distance: float
    thumbnail: str
    image: str
    palette: list[PaletteColor]
    video: VideoShot | None = Field(default=None, description="set when the result is the keyframe of a video's shot")


class QueryEcho(BaseModel):
    kind: str = Field(description="image, colors or similar")
    label: str
    palette: list[PaletteColor]


class SearchResponse(BaseModel):
    query: QueryEcho
    metric: str
    k: int
    milliseconds: float
    results: list[SearchResult]


class Info(BaseModel):
    images: int
    failures: int
    generation: int
    codebook_size: int
    layout: str
    codebook_fingerprint: str
    metrics: list[str]
    default_metric: str
    max_k: int
    max_colors: int
    max_upload_bytes: int
    thumbnail_size: int
