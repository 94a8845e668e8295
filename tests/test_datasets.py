"""Dataset fetchers and loaders, offline: tiny archives in the real layout.

Archives are built in the test and served from ``file://`` URLs or a local
``http.server`` on 127.0.0.1; nothing touches the network unless
``SKCOLLAPSE_NETWORK_TESTS=1`` (tests marked ``network``).
"""

import hashlib
import http.server
import io
import math
import os
import tarfile
import threading
import zipfile
from collections import Counter
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from skcollapse.datasets import (
    RemoteFileMetadata,
    bucketize_numeric,
    clear_data_home,
    extract_archive,
    fetch_file,
    fetch_lightgcn,
    fetch_movielens,
    get_data_home,
    load_avazu,
    load_criteo,
    load_lightgcn,
    load_movielens,
    make_collapsed_embeddings,
    make_interactions,
    read_lightgcn_file,
)
from skcollapse.datasets import _lightgcn as lightgcn_module
from skcollapse.datasets import _movielens as movielens_module

REPO_ROOT = Path(__file__).resolve().parents[1]
EVAL_DATA = Path(
    os.environ.get("SKCOLLAPSE_EVAL_DATA", REPO_ROOT / ".." / "shared" / "eval-data")
)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return path.as_uri()


# ------------------------------------------------------------------------------------
# data home
# ------------------------------------------------------------------------------------
def test_get_data_home_env_var_and_explicit(tmp_path, monkeypatch):
    monkeypatch.setenv("SKCOLLAPSE_DATA", str(tmp_path / "from_env"))
    assert get_data_home() == str(tmp_path / "from_env")
    assert (tmp_path / "from_env").is_dir()
    assert get_data_home(tmp_path / "explicit") == str(tmp_path / "explicit")
    monkeypatch.delenv("SKCOLLAPSE_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert get_data_home() == str(tmp_path / "home" / "skcollapse_data")
    (tmp_path / "explicit" / "junk.txt").write_text("x")
    clear_data_home(tmp_path / "explicit")
    assert not (tmp_path / "explicit").exists()
    with pytest.raises(TypeError, match=r"'data_home' parameter .* must be None, "):
        get_data_home(3.5)


# ------------------------------------------------------------------------------------
# fetch_file
# ------------------------------------------------------------------------------------
def test_fetch_file_downloads_verifies_and_caches(tmp_path):
    payload = os.urandom(3000)
    url = _write(tmp_path / "source.bin", payload)
    remote = RemoteFileMetadata("data.bin", url, _sha256(payload))
    path = fetch_file(remote, tmp_path / "cache")
    assert Path(path).read_bytes() == payload
    os.remove(tmp_path / "source.bin")  # cached: no second download
    assert fetch_file(remote, tmp_path / "cache") == path
    assert os.listdir(tmp_path / "cache") == ["data.bin"]


def test_fetch_file_checksum_mismatch_removes_file(tmp_path):
    url = _write(tmp_path / "source.bin", b"tampered content")
    remote = RemoteFileMetadata("data.bin", url, _sha256(b"original content"))
    with pytest.raises(OSError, match=r"Checksum mismatch.*removed"):
        fetch_file(remote, tmp_path / "cache")
    assert os.listdir(tmp_path / "cache") == []


def test_fetch_file_replaces_a_corrupted_cache(tmp_path):
    payload = b"good bytes" * 10
    url = _write(tmp_path / "source.bin", payload)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "data.bin").write_bytes(b"truncated")
    remote = RemoteFileMetadata("data.bin", url, _sha256(payload))
    assert Path(fetch_file(remote, tmp_path / "cache")).read_bytes() == payload


def test_fetch_file_md5_fallback(tmp_path):
    payload = b"md5 only"
    url = _write(tmp_path / "source.bin", payload)
    good = RemoteFileMetadata("a.bin", url, None, hashlib.md5(payload).hexdigest())
    assert Path(fetch_file(good, tmp_path / "c")).read_bytes() == payload
    bad = RemoteFileMetadata("b.bin", url, None, "0" * 32)
    with pytest.raises(OSError, match="md5"):
        fetch_file(bad, tmp_path / "c")


@pytest.mark.parametrize(
    ("remote", "match"),
    [
        (RemoteFileMetadata("../x", "file:///x", "0" * 64), "plain file name"),
        (RemoteFileMetadata("x", "file:///x", None), "checksum"),
    ],
)
def test_fetch_file_rejects_bad_metadata(tmp_path, remote, match):
    with pytest.raises(ValueError, match=match):
        fetch_file(remote, tmp_path)


def test_fetch_file_missing_source_reports_after_retries(tmp_path):
    remote = RemoteFileMetadata("x.bin", (tmp_path / "nowhere.bin").as_uri(), "0" * 64)
    with pytest.raises(OSError, match="after 2 attempt"):
        fetch_file(remote, tmp_path / "cache", n_retries=1, delay=0)
    assert os.listdir(tmp_path / "cache") == []


class _Handler(http.server.BaseHTTPRequestHandler):
    files: ClassVar[dict] = {}

    def do_GET(self):
        body, announced = self.files.get(self.path, (None, None))
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(announced))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Handler.files = {}
    yield server, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_fetch_file_over_http_and_partial_download(tmp_path, http_server):
    _, base = http_server
    payload = os.urandom(5000)
    _Handler.files["/full.bin"] = (payload, len(payload))
    _Handler.files["/partial.bin"] = (payload[:1000], len(payload))
    ok = RemoteFileMetadata("full.bin", base + "/full.bin", _sha256(payload))
    assert Path(fetch_file(ok, tmp_path / "cache")).read_bytes() == payload
    partial = RemoteFileMetadata("partial.bin", base + "/partial.bin", _sha256(payload))
    with pytest.raises(OSError, match=r"partial\.bin"):
        fetch_file(partial, tmp_path / "cache", n_retries=0, timeout=5)
    assert sorted(os.listdir(tmp_path / "cache")) == ["full.bin"]  # no .part left
    missing = RemoteFileMetadata("m.bin", base + "/missing.bin", _sha256(b""))
    with pytest.raises(OSError, match="404"):
        fetch_file(missing, tmp_path / "cache")


# ------------------------------------------------------------------------------------
# extract_archive
# ------------------------------------------------------------------------------------
def _zip_bytes(members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _tar_bytes(members, links=()):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        for name, target in links:
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            archive.addfile(info)
    return buffer.getvalue()


def test_extract_archive_zip_and_tar(tmp_path):
    members = {"pkg/a.txt": b"alpha", "pkg/sub/b.txt": b"beta"}
    (tmp_path / "x.zip").write_bytes(_zip_bytes(members))
    (tmp_path / "x.tar.gz").write_bytes(_tar_bytes(members))
    for archive, dest in (("x.zip", "z"), ("x.tar.gz", "t")):
        names = extract_archive(tmp_path / archive, tmp_path / dest)
        assert names == ["pkg"]
        assert (tmp_path / dest / "pkg" / "sub" / "b.txt").read_bytes() == b"beta"
        assert sorted(os.listdir(tmp_path / dest)) == ["pkg"]  # no staging left


@pytest.mark.parametrize(
    "bad_name", ["../evil.txt", "pkg/../../evil.txt", "/tmp/evil.txt", "C:/evil.txt"]
)
@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_extract_archive_rejects_path_traversal(tmp_path, bad_name, kind):
    members = {"pkg/ok.txt": b"ok", bad_name: b"evil"}
    data = _zip_bytes(members) if kind == "zip" else _tar_bytes(members)
    archive = tmp_path / f"bad.{kind}"
    archive.write_bytes(data)
    dest = tmp_path / "dest"
    with pytest.raises(ValueError, match="refusing"):
        extract_archive(archive, dest)
    assert os.listdir(dest) == []  # nothing extracted, not even the good member
    assert not (tmp_path / "evil.txt").exists()


def test_extract_archive_rejects_links_and_non_archives(tmp_path):
    archive = tmp_path / "link.tar.gz"
    archive.write_bytes(_tar_bytes({"pkg/a.txt": b"a"}, links=[("pkg/l", "/etc")]))
    with pytest.raises(ValueError, match="link"):
        extract_archive(archive, tmp_path / "dest")
    (tmp_path / "plain.txt").write_text("not an archive")
    with pytest.raises(ValueError, match="neither a zip nor a tar"):
        extract_archive(tmp_path / "plain.txt", tmp_path / "dest2")


# ------------------------------------------------------------------------------------
# MovieLens, offline
# ------------------------------------------------------------------------------------
GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip


def _ml100k_members(rng):
    # raw ids 1..n with a gap (user 3, item 5 never rate) to test the re-coding
    users, items = [1, 2, 4, 5], [1, 2, 3, 4, 6]
    ratings = [
        (u, i, int(rng.integers(1, 6)), 880000000 + 17 * k)
        for k, (u, i) in enumerate((u, i) for u in users for i in items if (u + i) % 3)
    ]
    u_data = "".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in ratings)
    u_item = ""
    for i in range(1, 7):
        flags = ["0"] * 19
        flags[i] = "1"
        flags[(i * 7) % 19] = "1"
        u_item += (
            f"{i}|Movie {i} (199{i})|01-Jan-199{i}||http://imdb/{i}|"
            + "|".join(flags)
            + "\n"
        )
    u_user = "".join(
        f"{u}|{20 + u}|{'MF'[u % 2]}|job{u}|0{u}123\n" for u in range(1, 6)
    )
    u_genre = "".join(f"{g}|{k}\n" for k, g in enumerate(GENRES)) + "\n"
    return ratings, {
        "ml-100k/u.data": u_data.encode(),
        "ml-100k/u.item": u_item.encode("latin-1"),
        "ml-100k/u.user": u_user.encode(),
        "ml-100k/u.genre": u_genre.encode(),
        "ml-100k/README": b"tiny test copy",
    }


def _serve_archive(monkeypatch, tmp_path, variant, members):
    data = _zip_bytes(members)
    url = _write(tmp_path / f"{variant}.zip", data)
    meta = movielens_module.ARCHIVES[variant]
    monkeypatch.setitem(
        movielens_module.ARCHIVES,
        variant,
        RemoteFileMetadata(meta.filename, url, _sha256(data)),
    )
    return data


def _check_codes(bunch, ratings, codes=False):
    """The Bunch holds the rating file's own ids (or 0-based codes of them)."""
    raw_users = sorted({r[0] for r in ratings})
    raw_items = sorted({r[1] for r in ratings})
    assert bunch.user_ids.tolist() == raw_users
    assert bunch.item_ids.tolist() == raw_items
    assert bunch.n_users == len(raw_users) and bunch.n_items == len(raw_items)
    if codes:
        expected = [(raw_users.index(u), raw_items.index(i), float(r), t)
                    for u, i, r, t in ratings]
    else:
        expected = [(u, i, float(r), t) for u, i, r, t in ratings]
    got = list(
        zip(
            bunch.data[:, 0].tolist(),
            bunch.data[:, 1].tolist(),
            np.asarray(bunch.target).tolist(),
            bunch.timestamp.tolist(),
        )
    )
    assert got == expected


def test_fetch_movielens_100k_offline(tmp_path, monkeypatch):
    ratings, members = _ml100k_members(np.random.default_rng(0))
    _serve_archive(monkeypatch, tmp_path, "100k", members)
    home = tmp_path / "home"
    bunch = fetch_movielens("100k", data_home=home)
    _check_codes(bunch, ratings)
    assert bunch.frame is None
    assert "Harper" in bunch.DESCR and "research purposes only" in bunch.DESCR
    assert bunch.user_info["user_id"].tolist() == bunch.user_ids.tolist()
    assert bunch.user_info["age"].tolist() == [20 + u for u in bunch.user_ids]
    movie2 = bunch.item_info.set_index("item_id").loc[2]
    assert movie2["title"] == "Movie 2 (1992)"
    assert movie2["genres"] == "Adventure|Romance"  # flags 2 and 14 of u.genre
    # archive removed after extraction; the cache works without the source
    assert sorted(os.listdir(home / "movielens")) == ["ml-100k"]
    os.remove(tmp_path / "100k.zip")
    X, y = fetch_movielens(
        "100k", data_home=home, download_if_missing=False, return_X_y=True
    )
    assert np.array_equal(X, bunch.data) and np.array_equal(y, bunch.target)
    frame_bunch = fetch_movielens("100k", data_home=home, as_frame=True)
    assert list(frame_bunch.frame.columns) == ["user", "item", "rating", "timestamp"]
    assert isinstance(frame_bunch.data, pd.DataFrame)


def test_movielens_ids_are_the_data_sets_own_everywhere(tmp_path):
    """Issue 29: load_movielens(...).data[0] was [195, 241] for the u.data row
    "196 242", and joining titles by item_info.item_id was off by one."""
    ratings, members = _ml100k_members(np.random.default_rng(0))
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    for name, data in members.items():
        (tmp_path / name).write_bytes(data)
    first = members["ml-100k/u.data"].decode().splitlines()[0].split("\t")
    bunch = load_movielens(folder)
    assert bunch.data[0].tolist() == [int(first[0]), int(first[1])]
    _check_codes(bunch, ratings)
    # side tables: one row per id, indexed by the ids of data
    assert bunch.item_info.index.tolist() == bunch.item_ids.tolist()
    assert bunch.item_info["item_id"].tolist() == bunch.item_ids.tolist()
    assert bunch.item_info.loc[6, "title"] == "Movie 6 (1996)"  # raw id 6, no gap
    joined = pd.DataFrame(bunch.data, columns=["user", "item"]).merge(
        bunch.item_info, left_on="item", right_on="item_id")
    assert (joined["title"] == [f"Movie {i} (199{i})" for i in joined["item"]]).all()
    assert bunch.user_info.loc[5, "age"] == 25 and bunch.user_features.loc[5, "age"]
    assert set(bunch.item_features.index) == set(bunch.data[:, 1])
    assert set(bunch.user_features.index) == set(bunch.data[:, 0])
    # the 0-based code matrix is a named option, consistent the same way
    coded = load_movielens(folder, codes=True)
    _check_codes(coded, ratings, codes=True)
    np.testing.assert_array_equal(coded.user_ids[coded.data[:, 0]], bunch.data[:, 0])
    assert coded.item_info.index.tolist() == list(range(coded.n_items))
    assert coded.item_info.loc[4, "item_id"] == 6  # code 4 is MovieLens item 6
    assert coded.user_features.index.tolist() == list(range(coded.n_users))


def test_fetch_movielens_reads_a_copy_where_a_user_puts_it(tmp_path, monkeypatch):
    """Issue 29: with the files in DIR/ml-100k/, fetch_movielens(data_home=DIR)
    tried to download (and failed with a bare DNS error)."""
    ratings, members = _ml100k_members(np.random.default_rng(0))
    unreachable = (tmp_path / "nowhere" / "ml-100k.zip").as_uri()
    monkeypatch.setitem(
        movielens_module.ARCHIVES, "100k",
        RemoteFileMetadata("ml-100k.zip", unreachable, _sha256(_zip_bytes(members))),
    )
    home = tmp_path / "home"
    with pytest.raises(OSError) as info:
        fetch_movielens("100k", data_home=home, n_retries=0, delay=0)
    message = str(info.value)
    assert "could not download MovieLens 100k" in message
    assert str(home / "ml-100k") in message and "u.data" in message
    assert str(home / "movielens" / "ml-100k") in message
    with pytest.raises(OSError, match=r"download_if_missing=False\. Looked for"):
        fetch_movielens("100k", data_home=home, download_if_missing=False)
    for name, data in members.items():  # the natural layout: DIR/ml-100k/u.data
        (home / name).parent.mkdir(parents=True, exist_ok=True)
        (home / name).write_bytes(data)
    bunch = fetch_movielens("100k", data_home=home, download_if_missing=False)
    _check_codes(bunch, ratings)
    # or the official archive, put there by hand: verified, extracted, kept
    other = tmp_path / "other"
    other.mkdir()
    (other / "ml-100k.zip").write_bytes(_zip_bytes(members))
    _check_codes(fetch_movielens("100k", data_home=other), ratings)
    assert sorted(os.listdir(other)) == ["ml-100k", "ml-100k.zip"]


def test_fetch_movielens_1m_and_latest_small_offline(tmp_path, monkeypatch):
    ratings = [(1, 10, 5, 978300760), (1, 20, 3, 978302109), (6, 10, 4, 978301968)]
    members_1m = {
        "ml-1m/ratings.dat": "".join(f"{u}::{i}::{r}::{t}\n" for u, i, r, t in ratings),
        "ml-1m/movies.dat": "10::Amélie (2001)::Comedy|Romance\n20::Heat (1995)::"
        "Action|Crime|Thriller\n30::Unrated (1990)::Drama\n",
        "ml-1m/users.dat": "1::F::1::10::48067\n6::M::56::16::70072\n",
    }
    members_1m = {
        k: v.encode("latin-1") if "movies" in k else v.encode()
        for k, v in members_1m.items()
    }
    _serve_archive(monkeypatch, tmp_path, "1m", members_1m)
    bunch = fetch_movielens("1m", data_home=tmp_path / "home")
    _check_codes(bunch, ratings)
    assert bunch.item_info["title"].tolist() == ["Amélie (2001)", "Heat (1995)"]
    assert bunch.user_info["occupation"].tolist() == [10, 16]

    half = [(1, 1, 4.5, 964982703), (1, 3, 4.0, 964981247), (2, 3, 0.5, 1445714835)]
    members_small = {
        "ml-latest-small/ratings.csv": (
            "userId,movieId,rating,timestamp\n"
            + "".join(f"{u},{i},{r},{t}\n" for u, i, r, t in half)
        ).encode(),
        "ml-latest-small/movies.csv": b'movieId,title,genres\n1,"Toy Story, The '
        b'(1995)",Animation|Children\n3,Heat (1995),Action\n',
        "ml-latest-small/links.csv": b"movieId,imdbId,tmdbId\n1,0114709,862\n"
        b"3,0113277,949\n",
    }
    _serve_archive(monkeypatch, tmp_path, "latest-small", members_small)
    small = fetch_movielens("latest-small", data_home=tmp_path / "home")
    _check_codes(small, half)
    assert small.user_info is None
    assert small.item_info["imdb_id"].tolist() == ["0114709", "0113277"]
    assert small.item_info["title"].iloc[0] == "Toy Story, The (1995)"


def test_fetch_movielens_corrupted_download_is_removed(tmp_path, monkeypatch):
    _, members = _ml100k_members(np.random.default_rng(0))
    data = _zip_bytes(members)
    url = _write(tmp_path / "a.zip", data[: len(data) // 2])  # truncated archive
    monkeypatch.setitem(
        movielens_module.ARCHIVES,
        "100k",
        RemoteFileMetadata("ml-100k.zip", url, _sha256(data)),
    )
    with pytest.raises(OSError, match="Checksum mismatch"):
        fetch_movielens("100k", data_home=tmp_path / "home")
    assert os.listdir(tmp_path / "home" / "movielens") == []


def test_fetch_movielens_validation(tmp_path):
    with pytest.raises(
        ValueError, match=r"'variant' parameter of fetch_movielens must be a str among"
    ):
        fetch_movielens("10k", data_home=tmp_path)
    with pytest.raises(OSError, match="download_if_missing=False"):
        fetch_movielens("100k", data_home=tmp_path, download_if_missing=False)
    with pytest.raises(OSError, match="not an existing folder"):
        load_movielens(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(OSError, match="does not look like"):
        load_movielens(tmp_path / "empty")


def test_pinned_checksums_are_well_formed():
    for meta in movielens_module.ARCHIVES.values():
        assert meta.url.startswith("https://files.grouplens.org/datasets/movielens/")
        assert len(meta.sha256) == 64 and int(meta.sha256, 16) >= 0
    for files in lightgcn_module._FILES.values():
        for digests in files.values():
            digest = digests["sha256"] or digests["md5"]
            int(digest, 16)


# ------------------------------------------------------------------------------------
# LightGCN split format
# ------------------------------------------------------------------------------------
def _lightgcn_text(rows):
    return "".join(" ".join(str(v) for v in row) + "\n" for row in rows)


def test_read_and_load_lightgcn_match_python_parse(tmp_path):
    rng = np.random.default_rng(0)
    train_rows, test_rows = [], []
    for u in range(7):
        items = rng.choice(20, size=int(rng.integers(2, 8)), replace=False).tolist()
        train_rows.append([u, *items[:-1]])
        test_rows.append([u, items[-1]] if u != 3 else [u])  # user 3: no test item
    folder = tmp_path / "toy"
    folder.mkdir()
    (folder / "train.txt").write_text(_lightgcn_text(train_rows) + "\n")
    (folder / "test.txt").write_text(_lightgcn_text(test_rows))
    expected = [(row[0], i) for row in train_rows for i in row[1:]]
    assert [tuple(p) for p in read_lightgcn_file(folder / "train.txt").tolist()] == (
        expected
    )
    data = load_lightgcn(folder)
    assert data.test.shape == (6, 2)
    assert data.n_users == 7
    assert data.n_items == int(max(data.train[:, 1].max(), data.test[:, 1].max())) + 1
    assert load_lightgcn(folder, n_items=100).n_items == 100
    with pytest.raises(ValueError, match="too small"):
        load_lightgcn(folder, n_users=2)
    (folder / "item_list.txt").write_text(
        "org_id remap_id\n" + "".join(f"x{i} {i}\n" for i in range(30))
    )
    with_list = load_lightgcn(folder)
    assert with_list.n_items == 30 and with_list.item_org_ids[4] == "x4"


def test_lightgcn_bad_files(tmp_path):
    (tmp_path / "train.txt").write_text("0 1 2\n1 x 3\n")
    (tmp_path / "test.txt").write_text("0 3\n")
    with pytest.raises(ValueError, match="line 2"):
        load_lightgcn(tmp_path)
    (tmp_path / "train.txt").write_text("0 1 -2\n")
    with pytest.raises(ValueError, match="negative"):
        load_lightgcn(tmp_path)
    os.remove(tmp_path / "test.txt")
    with pytest.raises(OSError, match=r"test\.txt"):
        load_lightgcn(tmp_path)


def test_fetch_lightgcn_offline(tmp_path, monkeypatch):
    source = tmp_path / "source" / "gowalla"
    source.mkdir(parents=True)
    train = _lightgcn_text([[0, 1, 2], [1, 0, 3]]).encode()
    test = _lightgcn_text([[0, 3], [1, 1]]).encode()
    (source / "train.txt").write_bytes(train)
    (source / "test.txt").write_bytes(test)
    monkeypatch.setattr(lightgcn_module, "_RAW", (tmp_path / "source").as_uri() + "/")
    monkeypatch.setitem(
        lightgcn_module._FILES,
        "gowalla",
        {
            "train.txt": {"sha256": _sha256(train)},
            "test.txt": {"sha256": None, "md5": hashlib.md5(test).hexdigest()},
        },
    )
    data = fetch_lightgcn("gowalla", data_home=tmp_path / "home")
    assert data.train.tolist() == [[0, 1], [0, 2], [1, 0], [1, 3]]
    assert data.n_users == 2 and data.n_items == 4
    again = fetch_lightgcn(
        "gowalla", data_home=tmp_path / "home", download_if_missing=False
    )
    assert np.array_equal(again.test, data.test)
    with pytest.raises(OSError, match="download_if_missing=False"):
        fetch_lightgcn("yelp2018", data_home=tmp_path / "h2", download_if_missing=False)
    # a copy put by hand in <data_home>/<dataset>/ is read as it is, ids as in
    # its files (issue 29)
    by_hand = tmp_path / "h3" / "gowalla"
    by_hand.mkdir(parents=True)
    (by_hand / "train.txt").write_text(_lightgcn_text([[5, 7, 9]]))
    (by_hand / "test.txt").write_text(_lightgcn_text([[5, 8]]))
    local = fetch_lightgcn("gowalla", data_home=tmp_path / "h3",
                           download_if_missing=False)
    assert local.train.tolist() == [[5, 7], [5, 9]] and local.test.tolist() == [[5, 8]]
    monkeypatch.setattr(lightgcn_module, "_RAW", (tmp_path / "nowhere").as_uri() + "/")
    with pytest.raises(OSError, match=r"could not download gowalla train\.txt .*"
                       r"looked for train\.txt and test\.txt in .*h4.gowalla"):
        fetch_lightgcn("gowalla", data_home=tmp_path / "h4", n_retries=0, delay=0)
    with pytest.raises(
        ValueError, match=r"'dataset' parameter of fetch_lightgcn must be a str among"
    ):
        fetch_lightgcn("movielens")


# ------------------------------------------------------------------------------------
# Criteo / Avazu
# ------------------------------------------------------------------------------------
def test_bucketize_numeric_known_values():
    values = [-1, 0, 1, 2, 3, 10, 100, 1_000_000, np.nan]
    expected = [
        "-3", "-2", "-1", "0",
        str(math.floor(math.log(3) ** 2)),  # 1
        str(math.floor(math.log(10) ** 2)),  # 5
        str(math.floor(math.log(100) ** 2)),  # 21
        str(math.floor(math.log(1_000_000) ** 2)),  # 190
        "",
    ]  # fmt: skip
    assert bucketize_numeric(values).tolist() == expected
    with pytest.raises(ValueError, match="integers"):
        bucketize_numeric([1.5])


def _reference_criteo(rows, min_count):
    # rows: list of 40-string lists; returns codes with an independent Counter pass
    tokens = []
    for row in rows:
        toks = []
        for j, value in enumerate(row[1:14]):
            if value == "":
                toks.append("")
            else:
                v = int(float(value))
                toks.append(str(math.floor(math.log(v) ** 2)) if v > 2 else str(v - 2))
        toks.extend(row[14:])
        tokens.append(toks)
    codes = np.empty((len(rows), 39), dtype=np.int64)
    for j in range(39):
        counts = Counter(t[j] for t in tokens)
        vocab = sorted(v for v, c in counts.items() if c >= min_count)
        index = {v: k for k, v in enumerate(vocab)}
        for r, t in enumerate(tokens):
            codes[r, j] = index.get(t[j], -1)
    return codes, np.array([int(row[0]) for row in rows])


def _criteo_rows(rng, n=60):
    rows = []
    for _ in range(n):
        label = str(int(rng.integers(0, 2)))
        nums = [
            "" if rng.random() < 0.2 else str(int(rng.integers(-2, 400)))
            for _ in range(13)
        ]
        cats = [
            "" if rng.random() < 0.1 else f"{int(rng.integers(0, 6 + j)):08x}"
            for j in range(26)
        ]
        rows.append([label, *nums, *cats])
    return rows


def test_load_criteo_raw_tab_matches_reference(tmp_path):
    rows = _criteo_rows(np.random.default_rng(0))
    # the Kaggle file as stored in some mirrors: trailing empty fields stripped
    text = "".join("\t".join(row).rstrip("\t") + "\n" for row in rows)
    (tmp_path / "train.txt").write_text(text)
    bunch = load_criteo(tmp_path / "train.txt", min_count=3)
    expected, labels = _reference_criteo(rows, 3)
    assert np.array_equal(bunch.data, expected)
    assert np.array_equal(bunch.target, labels)
    assert bunch.field_dims.tolist() == [
        int(expected[:, j].max()) + 1 for j in range(39)
    ]
    # a second file encoded with the first file's vocabularies
    other = _criteo_rows(np.random.default_rng(1), n=10)
    (tmp_path / "test.txt").write_text("".join("\t".join(r) + "\n" for r in other))
    X_test, _ = load_criteo(
        tmp_path / "test.txt", vocabularies=bunch.vocabularies, return_X_y=True
    )
    ref_vocab = [list(v) for v in bunch.vocabularies]
    ref_tokens, _ = _reference_criteo(other, 1)  # codes vs its own vocab: re-map
    for j in range(39):
        own_vocab = sorted(
            {
                t
                for t in (
                    bucketize_numeric([np.nan if r[1 + j] == "" else float(r[1 + j])])[
                        0
                    ]
                    if j < 13
                    else r[1 + j]
                    for r in other
                )
            }
        )
        for r in range(len(other)):
            token = own_vocab[ref_tokens[r, j]]
            want = ref_vocab[j].index(token) if token in ref_vocab[j] else -1
            assert X_test[r, j] == want


def test_load_criteo_csv_header_and_validation(tmp_path):
    rows = _criteo_rows(np.random.default_rng(2), n=20)
    header = [
        "label",
        *[f"I{i}" for i in range(1, 14)],
        *[f"C{i}" for i in range(1, 27)],
    ]
    (tmp_path / "sample.csv").write_text(
        ",".join(header) + "\n" + "".join(",".join(r) + "\n" for r in rows)
    )
    X, y = load_criteo(tmp_path / "sample.csv", min_count=2, return_X_y=True)
    expected, labels = _reference_criteo(rows, 2)
    assert np.array_equal(X, expected) and np.array_equal(y, labels)
    assert load_criteo(tmp_path / "sample.csv", n_rows=5).data.shape == (5, 39)
    bad = [list(r) for r in rows]
    bad[3][0] = "7"
    (tmp_path / "bad.txt").write_text("".join("\t".join(r) + "\n" for r in bad))
    with pytest.raises(ValueError, match="0/1 labels"):
        load_criteo(tmp_path / "bad.txt")
    bad = [list(r) for r in rows]
    bad[2][4] = "abc"
    (tmp_path / "bad2.txt").write_text("".join("\t".join(r) + "\n" for r in bad))
    with pytest.raises(ValueError, match="I4"):
        load_criteo(tmp_path / "bad2.txt")
    with pytest.raises(
        ValueError, match=r"'min_count' parameter .* an int in the range \[1, inf\)"
    ):
        load_criteo(tmp_path / "sample.csv", min_count=0)
    with pytest.raises(OSError, match="not an existing file"):
        load_criteo(tmp_path / "missing.txt")


def test_load_avazu(tmp_path):
    from skcollapse.datasets._criteo import AVAZU_FIELDS

    rng = np.random.default_rng(3)
    header = ["id", "click", *AVAZU_FIELDS]
    rows = [
        [
            str(k),
            str(int(rng.integers(0, 2))),
            *[str(rng.integers(0, 4)) for _ in AVAZU_FIELDS],
        ]
        for k in range(40)
    ]
    (tmp_path / "avazu.csv").write_text(
        ",".join(header) + "\n" + "".join(",".join(r) + "\n" for r in rows)
    )
    bunch = load_avazu(tmp_path / "avazu.csv", min_count=12)
    assert bunch.data.shape == (40, 22)
    for j in range(22):
        counts = Counter(r[2 + j] for r in rows)
        vocab = sorted(v for v, c in counts.items() if c >= 12)
        want = [vocab.index(r[2 + j]) if r[2 + j] in vocab else -1 for r in rows]
        assert bunch.data[:, j].tolist() == want
    assert bunch.target.tolist() == [int(r[1]) for r in rows]


# ------------------------------------------------------------------------------------
# Real data (slow) and network (opt-in)
# ------------------------------------------------------------------------------------
def _eval_folder(name):
    folder = EVAL_DATA / name
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent (set SKCOLLAPSE_EVAL_DATA)")
    return folder


@pytest.mark.slow
def test_real_movielens_100k_folder():
    bunch = load_movielens(_eval_folder("ml-100k"))
    assert bunch.variant == "100k"
    assert bunch.data.shape == (100000, 2)
    assert (bunch.n_users, bunch.n_items) == (943, 1682)
    counts = Counter(np.asarray(bunch.target).tolist())
    assert counts == {1.0: 6110, 2.0: 11370, 3.0: 27145, 4.0: 34174, 5.0: 21201}
    assert bunch.item_info["title"].iloc[0] == "Toy Story (1995)"
    # the data set's own ids: the first row of u.data is "196 242 3 881250949"
    assert bunch.data[0].tolist() == [196, 242]
    assert bunch.item_info.loc[242, "title"] == "Kolya (1996)"


@pytest.mark.slow
def test_real_gowalla_split_and_pinned_checksums():
    folder = _eval_folder("gowalla")
    data = load_lightgcn(folder)
    assert data.train.shape == (810128, 2) and data.test.shape == (217242, 2)
    assert (data.n_users, data.n_items) == (29858, 40981)
    for name in ("train.txt", "test.txt"):
        digest = hashlib.sha256((folder / name).read_bytes()).hexdigest()
        assert digest == lightgcn_module._FILES["gowalla"][name]["sha256"]


@pytest.mark.slow
def test_real_criteo_head_file_pads_stripped_fields():
    folder = _eval_folder("criteo")
    bunch = load_criteo(folder / "criteo_kaggle_train_head1000.txt")
    assert bunch.data.shape == (1000, 39)
    assert int(bunch.target.sum()) == 205
    sample = load_criteo(folder / "criteo_sample.txt", min_count=1)
    assert sample.data.shape == (200, 39) and (sample.data >= 0).all()
    avazu = load_avazu(folder / "avazu_sample.txt", min_count=1)
    assert avazu.data.shape == (100, 22)


@pytest.mark.network
def test_network_fetch_movielens_100k(tmp_path):
    bunch = fetch_movielens("100k", data_home=tmp_path)
    assert bunch.data.shape == (100000, 2)


def test_criteo_streaming_chunks_give_the_same_result(tmp_path):
    rows = _criteo_rows(np.random.default_rng(7), n=50)
    (tmp_path / "t.txt").write_text("".join("\t".join(r) + "\n" for r in rows))
    whole = load_criteo(tmp_path / "t.txt", min_count=2)
    chunked = load_criteo(tmp_path / "t.txt", min_count=2, chunksize=7, dtype=np.int32)
    assert chunked.data.dtype == np.int32
    assert np.array_equal(whole.data, chunked.data)
    assert np.array_equal(whole.target, chunked.target)
    header = "label," + ",".join(
        [*(f"I{i}" for i in range(1, 14)), *(f"C{i}" for i in range(1, 27))]
    )
    (tmp_path / "empty.csv").write_text(header + "\n")
    with pytest.raises(ValueError, match="no data rows"):
        load_criteo(tmp_path / "empty.csv")
    with pytest.raises(TypeError, match="dtype"):
        load_criteo(tmp_path / "t.txt", dtype=np.float32)


# ------------------------------------------------------------------------------------
# Parameter validation: sklearn's validate_params on every public function
# ------------------------------------------------------------------------------------
def test_generators_validate_parameters_with_sklearn_messages():
    E = make_collapsed_embeddings(
        np.int64(20), np.int64(8), effective_rank=np.int64(2), random_state=0
    )
    assert E.shape == (20, 8)
    assert (
        make_interactions(np.int64(20), np.int64(10), random_state=0)[:, 0].max() == 19
    )
    fn = "make_collapsed_embeddings"
    with pytest.raises(
        ValueError,
        match=rf"'effective_rank' parameter of {fn} must be an int in the "
        r"range \[1, inf\)",
    ):
        make_collapsed_embeddings(10, 4, effective_rank=0)
    with pytest.raises(
        TypeError, match=rf"'n_samples' parameter of {fn} must be an int"
    ):
        make_collapsed_embeddings(True, 4)
    with pytest.raises(
        ValueError, match=r"'noise' .* a float in the range \[0.0, inf\)"
    ):
        make_collapsed_embeddings(10, 4, effective_rank=2, noise=np.inf)
    with pytest.raises(ValueError, match="effective_rank must be at most n_features=4"):
        make_collapsed_embeddings(10, 4, effective_rank=5)
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        make_collapsed_embeddings(10, 4, effective_rank=2, dtype=np.int64)
    with pytest.raises(
        ValueError, match=r"'density' parameter of make_interactions .* \(0.0, 0.5\]"
    ):
        make_interactions(10, 10, density=0.0)


def test_loaders_validate_parameters_with_sklearn_messages(tmp_path):
    with pytest.raises(
        TypeError, match=r"'n_users' parameter of load_lightgcn must be"
    ):
        load_lightgcn(tmp_path, n_users=True)
    with pytest.raises(
        ValueError, match=r"'n_retries' parameter of fetch_file .* \[0, inf\)"
    ):
        fetch_file(
            RemoteFileMetadata("x", "file:///x", "0" * 64), tmp_path, n_retries=-1
        )
    with pytest.raises(TypeError, match=r"'remote' parameter of fetch_file must be"):
        fetch_file(("x", "file:///x", "0" * 64), tmp_path)
    with pytest.raises(
        ValueError, match=r"'chunksize' parameter of load_avazu .* \[1, inf\)"
    ):
        load_avazu(tmp_path / "missing.csv", chunksize=0)
