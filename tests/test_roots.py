"""Several roots in one index, removals by path, and no silent mass deletion (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from sqlalchemy import delete

from cbir.errors import BadInputError, MassRemovalError, StoreError
from cbir.store import ImageRow, RootRow, Store
from indexer import index_folder
from indexer.roots import check_removals, forget_root
from tests.conftest import PALETTE, noisy, solid, write_image


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "roots.db")
    return request.getfixturevalue("postgres_url")


def make_folder(folder, names):
    for i, name in enumerate(names):
        write_image(folder / f"{name}.png", noisy(solid(PALETTE[name]), 5, seed=i))
    return folder


def paths(store):
    return sorted(store.file_states())


def test_a_second_folder_is_a_second_root_and_syncs_touch_only_their_own(tmp_path, db):
    pictures = make_folder(tmp_path / "Pictures", ["red", "green", "blue"])
    downloads = make_folder(tmp_path / "Downloads", ["sand", "navy"])
    with Store(db, create=True) as store:
        index_folder(pictures, store, n_colors=16, workers=1)
        second = index_folder(downloads, store, workers=1)
        assert (second.added, second.removed) == (2, 0)
        assert store.roots() == {str(downloads.resolve()): 2, str(pictures.resolve()): 3}
        # A sync of one root removes what is gone there, and nothing of the other.
        (pictures / "red.png").unlink()
        again = index_folder(pictures, store, workers=1)
        assert (again.removed, again.unchanged) == (1, 2)
        assert store.roots() == {str(downloads.resolve()): 2, str(pictures.resolve()): 2}
        # A folder inside a root is synced in its place, without becoming a root of its own.
        make_folder(downloads / "sub", ["white"])
        index_folder(downloads / "sub", store, workers=1)
        assert list(store.roots()) == [str(downloads.resolve()), str(pictures.resolve())]
        # A folder holding roots absorbs them.
        merged = index_folder(tmp_path, store, workers=1)
        assert (merged.added, merged.removed) == (0, 0)
        assert store.roots() == {str(tmp_path.resolve()): 5}


def test_an_empty_root_is_not_wiped_without_prune(tmp_path, db):
    mount = make_folder(tmp_path / "mnt" / "photos", ["red", "green", "blue"])
    with Store(db, create=True) as store:
        index_folder(mount, store, n_colors=16, workers=1)
        before, generation = paths(store), store.generation()
        shutil.rmtree(mount)
        mount.mkdir()  # the drive is not mounted: an empty mount point
        with pytest.raises(MassRemovalError) as refused:
            index_folder(mount, store, workers=1)
        message = str(refused.value)
        assert "would remove 3 of the 3" in message and "no image files" in message and "--prune" in message
        assert "\n" not in message and str(mount) in message
        assert paths(store) == before and store.generation() == generation  # nothing written
        pruned = index_folder(mount, store, workers=1, prune=True)
        assert pruned.removed == 3 and store.count() == 0


def test_removing_more_than_the_share_needs_prune(tmp_path, db):
    folder = make_folder(tmp_path / "f", ["red", "green", "blue", "sand"])
    with Store(db, create=True) as store:
        index_folder(folder, store, n_colors=16, workers=1)
        for name in ("red", "green", "blue"):
            (folder / f"{name}.png").unlink()
        with pytest.raises(MassRemovalError, match="would remove 3 of the 4 .* more than 50%"):
            index_folder(folder, store, workers=1)
        assert store.count() == 4
        # The share is tunable: 3 of 4 is allowed at 0.8.
        assert index_folder(folder, store, workers=1, max_removal_share=0.8).removed == 3
        with pytest.raises(BadInputError, match=r"\[0, 1\], got 1.5"):
            index_folder(folder, store, workers=1, max_removal_share=1.5)


def test_half_is_allowed_and_the_rule_is_a_pure_function():
    check_removals("/x", found=2, indexed=4, gone=["/x/a", "/x/b"], prune=False, max_share=0.5)
    with pytest.raises(MassRemovalError):
        check_removals("/x", found=1, indexed=4, gone=["/x/a", "/x/b", "/x/c"], prune=False, max_share=0.5)
    check_removals("/x", found=0, indexed=4, gone=["/x/a"] * 4, prune=True, max_share=0.5)
    with pytest.raises(MassRemovalError, match="no image files"):
        check_removals("/x", found=0, indexed=1, gone=["/x/a"], prune=False, max_share=1.0)


def test_identical_copies_are_separate_rows_removed_by_path(tmp_path, db):
    folder = tmp_path / "copies"
    write_image(folder / "a.png", solid(PALETTE["red"]))
    for name in ("b.png", "c.png"):
        shutil.copyfile(folder / "a.png", folder / name)
    make_folder(folder / "others", ["green", "blue", "sand"])
    with Store(db, create=True) as store:
        index_folder(folder, store, n_colors=16, workers=1)
        assert store.count() == 6
        (folder / "b.png").unlink()
        (folder / "c.png").unlink()
        report = index_folder(folder, store, workers=1)
        assert (report.removed, report.moved) == (2, 0)
        assert [os.path.basename(p) for p in paths(store) if "others" not in p] == ["a.png"]


def test_moves_of_copies_reuse_each_vanished_row_once(tmp_path, db):
    folder = tmp_path / "copies"
    write_image(folder / "a.png", solid(PALETTE["red"]))
    for name in ("b.png", "c.png"):
        shutil.copyfile(folder / "a.png", folder / name)
    make_folder(folder / "others", ["green", "blue", "sand"])
    with Store(db, create=True) as store:
        index_folder(folder, store, n_colors=16, workers=1)
        ids = {os.path.basename(p): s.id for p, s in store.file_states().items()}
        os.rename(folder / "b.png", folder / "d.png")
        os.rename(folder / "c.png", folder / "e.png")
        shutil.copyfile(folder / "a.png", folder / "f.png")  # a third new copy: no vanished row left for it
        report = index_folder(folder, store, workers=1)
        assert (report.moved, report.added, report.removed) == (2, 1, 0)
        now = {os.path.basename(p): s.id for p, s in store.file_states().items()}
        assert {now["d.png"], now["e.png"]} == {ids["b.png"], ids["c.png"]}
        assert now["a.png"] == ids["a.png"] and now["f.png"] not in ids.values()


def test_forget_root_drops_its_rows_only(tmp_path, db):
    one = make_folder(tmp_path / "one", ["red", "green"])
    two = make_folder(tmp_path / "two", ["blue", "sand", "navy"])
    (two / "broken.png").write_bytes(b"not a png")
    with Store(db, create=True) as store:
        index_folder(one, store, n_colors=16, workers=1)
        index_folder(two, store, workers=1)
        generation = store.generation()
        assert forget_root(store, two) == (str(two.resolve()), 3)
        assert store.roots() == {str(one.resolve()): 2}
        assert store.failure_count() == 0 and store.generation() > generation
        assert all(p.startswith(str(one.resolve())) for p in paths(store))
        with pytest.raises(StoreError, match="is not a root"):
            forget_root(store, two)


def test_an_index_from_before_roots_adopts_its_folder(tmp_path, db):
    folder = make_folder(tmp_path / "old", ["red", "green"])
    make_folder(folder / "deeper", ["blue"])
    other = make_folder(tmp_path / "new", ["sand"])
    with Store(db, create=True) as store:
        index_folder(folder, store, n_colors=16, workers=1)
        RootRow.__table__.drop(store.engine)  # what an index made before roots has
        assert store.roots() == {}
        index_folder(other, store, workers=1)
        assert store.roots() == {str(folder.resolve()): 3, str(other.resolve()): 1}
        # Without a roots table, --remove-root adopts the one folder first, then forgets it.
        with store.engine.begin() as conn:
            conn.execute(delete(ImageRow).where(ImageRow.path.startswith(str(other.resolve()))))
        RootRow.__table__.drop(store.engine)
        assert forget_root(store, folder) == (str(folder.resolve()), 3)
        assert store.count() == 0 and store.roots() == {}


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cbir", *args], capture_output=True, text=True, timeout=300, check=False)


def test_command_line_roots_refusal_prune_and_remove_root(tmp_path):
    pictures = make_folder(tmp_path / "Pictures", ["red", "green", "blue"])
    downloads = make_folder(tmp_path / "Downloads", ["sand"])
    db = str(tmp_path / "photos.db")
    assert run("index", str(pictures), "--db", db, "--colors", "16", "-q").returncode == 0
    second = run("index", str(downloads), "--db", db, "-q")
    assert second.returncode == 0 and "1 added" in second.stderr and "0 removed" in second.stderr
    info = json.loads(run("info", "--db", db, "--json").stdout)
    assert info["roots"] == [{"path": str(downloads.resolve()), "images": 1}, {"path": str(pictures.resolve()), "images": 3}]
    text = run("info", "--db", db).stdout
    assert f"root: {pictures.resolve()} (3 images)" in text

    shutil.rmtree(pictures)
    pictures.mkdir()
    refused = run("index", str(pictures), "--db", db, "-q")
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.strip().count("\n") == 0 and "would remove 3 of the 3" in refused.stderr
    assert "--prune" in refused.stderr and "Traceback" not in refused.stderr
    assert json.loads(run("info", "--db", db, "--json").stdout)["images"] == 4
    pruned = run("index", str(pictures), "--db", db, "--prune", "--json", "-q")
    assert pruned.returncode == 0 and json.loads(pruned.stdout)["removed"] == 3

    forgot = run("index", "--remove-root", str(downloads), "--db", db)
    assert forgot.returncode == 0 and f"forgot root {downloads.resolve()}: 1 image rows removed" in forgot.stderr
    unknown = run("index", "--remove-root", str(tmp_path / "elsewhere"), "--db", db)
    assert unknown.returncode == 2 and "is not a root" in unknown.stderr and unknown.stderr.strip().count("\n") == 0
    both = run("index", str(pictures), "--remove-root", str(pictures), "--db", db)
    assert both.returncode == 2 and "exactly one of FOLDER or --remove-root" in both.stderr
