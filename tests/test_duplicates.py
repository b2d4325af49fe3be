"""Near-duplicate groups: the grouping and scoring functions (cbir/duplicates.py) on hand-made edges,
and the self-join (search/duplicates.py) on real indexes of images written to disk (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from cbir.duplicates import centre_of, group_edges, pair_scores
from cbir.errors import BadInputError
from cbir.store import Store
from cbir.vectors import VectorIndex
from indexer import index_folder
from search import Searcher
from search.duplicates import DEFAULT_HAMMING, DEFAULT_K, DEFAULT_THRESHOLD, DEFAULT_VETO
from tests.conftest import write_image


def line_pairwise(points: np.ndarray):  # type: ignore[no-untyped-def]
    """Distances among points on a line, as group_edges asks for them."""
    return lambda positions: np.abs(points[positions][:, None] - points[positions][None, :])


# --- grouping -------------------------------------------------------------------------
def test_complete_linkage_cuts_a_chain():
    # 0 -1.0- 1 -1.2- 2: both edges are under 1.5, but 0 and 2 are 2.2 apart.
    points = np.array([0.0, 1.0, 2.2])
    groups = group_edges(3, np.array([0, 1]), np.array([1, 2]), np.array([1.0, 1.2]), threshold=1.5,
                         pairwise=line_pairwise(points))
    assert [g.tolist() for g in groups] == [[0, 1]]
    # Plain connected components would have made one group of three.
    assert all(len(g) < 3 for g in groups)


def test_groups_are_sorted_and_edges_above_the_threshold_ignored():
    points = np.array([0.0, 10.0, 0.1, 10.2, 50.0, 0.2])
    left, right = np.array([0, 1, 2, 4, 5]), np.array([2, 3, 5, 0, 0])
    distance = np.abs(points[left] - points[right])
    groups = group_edges(6, left, right, distance, threshold=0.5, pairwise=line_pairwise(points))
    assert [g.tolist() for g in groups] == [[0, 2, 5], [1, 3]]
    assert group_edges(6, left, right, distance, threshold=0.05, pairwise=line_pairwise(points)) == []


def test_large_components_are_split_around_centres():
    # A star 0-(1,2,3) and a tail 3-4: more items than linkage may take, so the centre rule applies.
    left, right = np.array([0, 0, 0, 3]), np.array([1, 2, 3, 4])

    def never(_positions: np.ndarray) -> np.ndarray:
        raise AssertionError("linkage must not run above max_linkage_size")

    groups = group_edges(5, left, right, np.full(4, 0.1), threshold=0.5, pairwise=never, max_linkage_size=3)
    assert [g.tolist() for g in groups] == [[0, 1, 2, 3]]


def test_group_edges_rejects_bad_input():
    pairwise = line_pairwise(np.zeros(3))
    with pytest.raises(BadInputError, match="threshold must be a finite number >= 0, got -1"):
        group_edges(3, np.array([0]), np.array([1]), np.array([0.1]), threshold=-1, pairwise=pairwise)
    with pytest.raises(BadInputError, match=r"edge endpoints must lie in \[0, 3\), got \[0, 7\]"):
        group_edges(3, np.array([0]), np.array([7]), np.array([0.1]), threshold=1, pairwise=pairwise)
    with pytest.raises(BadInputError, match="equal lengths, got 2, 1 and 1"):
        group_edges(3, np.array([0, 1]), np.array([1]), np.array([0.1]), threshold=1, pairwise=pairwise)


def test_centre_is_the_member_closest_to_all():
    points = np.array([0.0, 1.0, 2.0, 2.5])
    assert centre_of(np.abs(points[:, None] - points[None, :])) == 1


def test_pair_scores_by_hand():
    scores = pair_scores([["a", "b", "c"]], [["a", "b"], ["c", "d"]])
    # Predicted pairs ab, ac, bc; true pairs ab, cd; one correct.
    assert scores["precision"] == pytest.approx(1 / 3)
    assert scores["recall"] == pytest.approx(1 / 2)
    assert scores["f1"] == pytest.approx(0.4)
    assert (scores["predicted_pairs"], scores["true_pairs"], scores["correct_pairs"]) == (3, 2, 1)
    assert pair_scores([], [["a", "b"]])["recall"] == 0.0
    assert pair_scores([], [["a"]])["f1"] == 1.0


# --- the self-join on a real index ------------------------------------------------------
def blocks(seed: int, size: tuple[int, int] = (120, 160)) -> np.ndarray:
    """A smooth picture: 3 x 4 random colors blended (cubic), every seed a different one."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (3, 4, 3)).astype(np.float32)
    return np.clip(cv2.resize(small, (size[1], size[0]), interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8)


def make_duplicates_folder(folder: Path) -> dict[str, list[str]]:
    """Five sources each with a resized, a re-encoded and a brightened copy, and six unrelated images.

    Returns the expected groups, by file name; the enlarged copy of each source is the largest file.
    """
    groups = {}
    for s in range(5):
        source = blocks(s)
        names = [f"s{s}.png", f"s{s}_big.jpg", f"s{s}_jpeg.jpg", f"s{s}_bright.png"]
        write_image(folder / names[0], source)
        write_image(folder / names[1], cv2.resize(source, (320, 240), interpolation=cv2.INTER_LINEAR))
        _, data = cv2.imencode(".jpg", cv2.cvtColor(source, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 60])
        (folder / names[2]).write_bytes(data.tobytes())
        write_image(folder / names[3], np.clip(source.astype(int) + 6, 0, 255).astype(np.uint8))
        groups[f"s{s}"] = sorted(names)
    for u in range(6):
        write_image(folder / f"single{u}.png", blocks(100 + u))
    return groups


@pytest.fixture(scope="module")
def dup_index(tmp_path_factory) -> tuple[Path, dict[str, list[str]]]:
    folder = tmp_path_factory.mktemp("dups")
    expected = make_duplicates_folder(folder)
    db = tmp_path_factory.mktemp("db") / "dups.db"
    with Store(db, create=True) as store:
        index_folder(folder, store, workers=1)
    return db, expected


def found_names(found) -> list[list[str]]:  # type: ignore[no-untyped-def]
    return sorted(sorted(Path(m.path).name for m in group.members) for group in found.groups)


def test_searcher_finds_the_groups_through_one_self_join(dup_index, monkeypatch):
    import cbir.augment
    import search.duplicates

    db, expected = dup_index
    joins, hash_joins = [], []
    real_join, real_near = cbir.augment.self_join, search.duplicates.near_pairs

    def counted(vectors, k, **kw):  # type: ignore[no-untyped-def]
        joins.append((len(vectors), k))
        return real_join(vectors, k, **kw)

    def counted_near(hashes, max_distance, **kw):  # type: ignore[no-untyped-def]
        found = real_near(hashes, max_distance, **kw)
        hash_joins.append((len(hashes), max_distance, len(found[0])))
        return found

    monkeypatch.setattr(cbir.augment, "self_join", counted)
    monkeypatch.setattr(search.duplicates, "near_pairs", counted_near)
    searcher = Searcher.open(db)
    found = searcher.duplicates()
    assert found_names(found) == sorted(expected.values())
    # The candidates came from one k-NN self-join of the 26 compact vectors and one join of the 26 hashes,
    # not from all pairs; only those candidates were compared exactly.
    assert joins == [(26, DEFAULT_K)]
    assert [j[:2] for j in hash_joins] == [(26, DEFAULT_HAMMING)]
    assert found.compared <= 26 * DEFAULT_K + hash_joins[0][2]
    assert found.hamming == DEFAULT_HAMMING and found.unhashed == 0
    assert found.threshold == DEFAULT_THRESHOLD and found.images == 26
    # Within every group every pair is within the threshold; the centre comes first at distance 0.
    for group in found.groups:
        assert group.members[0].distance == 0.0
        assert [m.distance for m in group.members] == sorted(m.distance for m in group.members)
        ids = np.array([m.id for m in group.members])
        X = searcher.store.histograms(ids)
        distance = searcher.metric(found.metric)[1]
        assert max(distance(x, X).max() for x in X) <= found.threshold
    searcher.store.close()


def test_threshold_zero_finds_nothing_and_bad_options_are_named(dup_index):
    searcher = Searcher.open(dup_index[0])
    # Colour alone at 0 pairs nothing; the hash test still pairs copies whose hashes are within the bound.
    assert searcher.duplicates(threshold=0.0, hamming=-1).groups == []
    assert searcher.duplicates(threshold=0.0).groups != []
    with pytest.raises(BadInputError, match="hamming must be an integer between 0 and 64 .* got 65"):
        searcher.duplicates(hamming=65)
    with pytest.raises(BadInputError, match="threshold must be a finite number >= 0, got nan"):
        searcher.duplicates(threshold=float("nan"))
    with pytest.raises(BadInputError, match="k must be an integer between 1 and 100, got 0"):
        searcher.duplicates(k=0)
    with pytest.raises(BadInputError, match="unknown metric 'cosine'"):
        searcher.duplicates(metric="cosine")
    searcher.store.close()


def test_keep_rules(dup_index):
    searcher = Searcher.open(dup_index[0])
    found = searcher.duplicates()
    searcher.store.close()
    for group in found.groups:
        assert Path(group.kept("largest").path).name.endswith("_big.jpg")
        assert group.kept("newest").mtime == max(m.mtime for m in group.members)
        assert group.kept("oldest").mtime == min(m.mtime for m in group.members)
    document = found.to_dict(keep="largest")
    assert all(sum(image["keep"] for image in group["images"]) == 1 for group in document["groups"])
    with pytest.raises(BadInputError, match="unknown keep rule 'smallest'"):
        found.groups[0].kept("smallest")


def test_duplicates_on_postgresql(postgres_url, tmp_path):
    expected = make_duplicates_folder(tmp_path / "images")
    with Store(postgres_url, create=True) as store:
        index_folder(tmp_path / "images", store, workers=1)
    searcher = Searcher.open(postgres_url)
    try:
        assert found_names(searcher.duplicates()) == sorted(expected.values())
    finally:
        searcher.store.close()


def test_a_pair_ruled_out_by_an_infinite_distance_is_cut_by_linkage():
    # 0~1 and 1~2 are edges; 0 and 2 are ruled out (a hash veto gives inf): complete linkage must not join them.
    matrix = np.array([[0.0, 0.1, np.inf], [0.1, 0.0, 0.2], [np.inf, 0.2, 0.0]])
    groups = group_edges(3, np.array([0, 1]), np.array([1, 2]), np.array([0.1, 0.2]), threshold=0.5,
                         pairwise=lambda p: matrix[np.ix_(p, p)])
    assert [g.tolist() for g in groups] == [[0, 1]]


@pytest.mark.parametrize("metric", ["chi2-soft", "chi2", "l1"])
def test_prepared_rows_give_the_distances_of_the_paired_function(metric):
    from cbir.distances import paired_distance_function, paired_parts
    from search.duplicates import _paired, pairwise_distances

    rng = np.random.default_rng(0)
    centers = rng.uniform(0, 100, (8, 3)).astype(np.float32)
    X = rng.random((40, 16)).astype(np.float32)
    X /= X.sum(axis=1, keepdims=True)
    positions = np.array([3, 7, 8, 20, 39])
    direct, parts = paired_distance_function(metric, centers), paired_parts(metric, centers)
    np.testing.assert_allclose(pairwise_distances(parts, X, positions), pairwise_distances(direct, X, positions), rtol=1e-12)
    left, right = rng.integers(0, 40, 500), rng.integers(0, 40, 500)
    np.testing.assert_allclose(_paired(parts, X, left, right), _paired(direct, X, left, right), rtol=1e-12)


def test_centre_rule_takes_the_best_connected_free_item_first():
    # Reference: the plain rule (scan every free item for the most free neighbours, lowest first) on random graphs.
    from cbir.duplicates import _by_centres

    def plain(left, right):  # type: ignore[no-untyped-def]
        neighbours: dict[int, set[int]] = {}
        for a, b in zip(left.tolist(), right.tolist()):
            neighbours.setdefault(a, set()).add(b)
            neighbours.setdefault(b, set()).add(a)
        free, groups = set(neighbours), []
        while free:
            centre = max(sorted(free), key=lambda m: len(neighbours[m] & free))
            star = (neighbours[centre] & free) | {centre}
            free -= star
            groups += [sorted(star)] if len(star) >= 2 else []
        return groups

    rng = np.random.default_rng(0)
    for _ in range(50):
        n = int(rng.integers(3, 40))
        left, right = rng.integers(0, n, 80), rng.integers(0, n, 80)
        left, right = left[left != right], right[left != right]
        members = np.unique(np.concatenate([left, right]))
        assert [g.tolist() for g in _by_centres(members, left, right)] == plain(left, right)


def test_rows_softened_once_or_per_block_give_the_same_groups(dup_index, monkeypatch):
    import search.duplicate_exact

    searcher = Searcher.open(dup_index[0])
    once = searcher.duplicates()
    monkeypatch.setattr(search.duplicate_exact, "PREPARE_ALL_BYTES", 0)  # too big to keep: softened per block
    per_block = searcher.duplicates()
    searcher.store.close()
    assert [[m.id for m in g.members] for g in once.groups] == [[m.id for m in g.members] for g in per_block.groups]
    for a, b in zip(once.groups, per_block.groups):
        np.testing.assert_allclose([m.distance for m in a.members], [m.distance for m in b.members], atol=1e-5)


@pytest.mark.parametrize("metric", ["chi2-soft", "chi2"])
def test_prepared_float32_rows_give_the_paired_distances_bit_for_bit(metric, monkeypatch):
    # The fast path (pairs of float32 prepared rows, a few dozen at a time) against the float64 compare it replaces.
    import search.duplicate_exact
    from cbir.distances import _chi2_rows, paired_parts
    from search.duplicate_exact import READY_CHI2, KnownPairs, pairwise_distances, pairwise_many, paired_rows, prepared_once

    rng = np.random.default_rng(1)
    X = rng.random((300, 3 * 8)).astype(np.float32)
    X[:, ::3] = 0.0  # empty bins on both sides: 0/0 is 0
    paired, rows = prepared_once(paired_parts(metric, rng.uniform(0, 100, (8, 3))), X)
    assert paired is READY_CHI2 and rows.dtype == np.float32
    left, right = rng.integers(0, 300, 1000), rng.integers(0, 300, 1000)
    expected = _chi2_rows(rows[left].astype(np.float64), rows[right].astype(np.float64))
    np.testing.assert_array_equal(paired_rows(paired, rows, left, right), expected)
    positions = np.array([2, 5, 40, 41, 299])
    matrix = pairwise_distances(paired, rows, positions)
    i, j = np.triu_indices(5, 1)
    np.testing.assert_array_equal(matrix[i, j], _chi2_rows(rows[positions[i]].astype(np.float64), rows[positions[j]].astype(np.float64)))
    np.testing.assert_array_equal(matrix, matrix.T)
    # Pairs measured already (the candidate edges) are taken, the others measured: the same matrix.
    known = KnownPairs(300, np.array([41, 5, 7]), np.array([5, 299, 8]), np.array([matrix[3, 1], matrix[1, 4], -1.0]))
    np.testing.assert_array_equal(pairwise_distances(paired, rows, positions, known), matrix)
    taken = pairwise_distances(paired, rows, positions, KnownPairs(300, np.array([2]), np.array([40]), np.array([7.5])))
    assert taken[0, 2] == taken[2, 0] == 7.5 and taken[0, 1] == matrix[0, 1]
    # Several groups in one call, and many pairs shared out between threads: the same values.
    groups = [positions, np.array([0, 1]), np.arange(100, 160)]
    for one, many in zip([pairwise_distances(paired, rows, g, known) for g in groups], pairwise_many(paired, rows, groups, known)):
        np.testing.assert_array_equal(one, many)
    monkeypatch.setattr(search.duplicate_exact, "THREADS", 2)
    monkeypatch.setattr(search.duplicate_exact, "_THREADED_PAIRS", 10)
    np.testing.assert_array_equal(paired_rows(paired, rows, left, right), expected)


def make_flipped_folder(folder: Path) -> tuple[str, str]:
    """A picture, its mirror image (same colours, hashes 38 bits apart: past the default veto) and six unrelated ones."""
    write_image(folder / "s1.png", blocks(1))
    write_image(folder / "s1_flip.png", np.ascontiguousarray(blocks(1)[:, ::-1]))
    for u in range(6):
        write_image(folder / f"single{u}.png", blocks(100 + u))
    return "s1.png", "s1_flip.png"


@pytest.fixture(scope="module")
def flipped_index(tmp_path_factory) -> tuple[Path, list[str]]:
    folder = tmp_path_factory.mktemp("flipped")
    pair = make_flipped_folder(folder)
    db = tmp_path_factory.mktemp("db") / "flipped.db"
    with Store(db, create=True) as store:
        index_folder(folder, store, workers=1)
    return db, sorted(pair)


def test_the_hash_veto_keeps_a_flipped_copy_apart_unless_it_is_off(flipped_index):
    db, pair = flipped_index
    loose = 0.31  # the mirror is 0.299 from its original in colour: within this threshold, the veto alone decides
    searcher = Searcher.open(db)
    try:
        with searcher.store.engine.connect() as conn:
            hashes = dict(conn.exec_driver_sql("SELECT path, phash FROM images").all())
        a, b = (hashes[p] for p in hashes if Path(p).name in pair)
        assert DEFAULT_VETO < bin((a ^ b) & (2**64 - 1)).count("1") <= 64  # the veto's case: the mirror hashes apart
        default = searcher.duplicates(threshold=loose)
        assert default.veto == DEFAULT_VETO and found_names(default) == []
        for off in ("off", -1, "OFF"):
            unvetoed = searcher.duplicates(threshold=loose, veto=off)
            assert unvetoed.veto is None and found_names(unvetoed) == [pair]
        assert found_names(searcher.duplicates(threshold=loose, veto=64)) == [pair]  # no two 64-bit hashes are further apart
        assert found_names(searcher.duplicates(threshold=loose, veto=0)) == []
        assert found_names(searcher.duplicates(threshold=loose, veto="off", hamming=-1)) == [pair]  # colour alone: no veto either
    finally:
        searcher.store.close()


@pytest.mark.parametrize("veto", [65, -2, "x", "3.5", True, 2.0])
def test_a_bad_hash_veto_is_named(dup_index, veto):
    searcher = Searcher.open(dup_index[0])
    try:
        with pytest.raises(BadInputError, match=r"hash veto must be 'off' or an integer between 0 and 64, got "):
            searcher.duplicates(veto=veto)
    finally:
        searcher.store.close()
