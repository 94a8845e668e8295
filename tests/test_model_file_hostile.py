"""Hostile model files: each is refused with a one-line error, and no code runs.

Every crafted file carries a payload: a pickle that, if anything unpickled it,
would create a marker file (``test_the_payload_is_real`` shows that it does).
Each test checks that ``load_model`` raises a ``ValueError`` of one line that
names the file, that ``skcollapse score`` exits with code 2 and one line on
stderr, and that the marker does not exist afterwards.
"""

import io
import json
import pickle
import zipfile

import numpy as np
import pytest

from skcollapse.cli import load_model, main, save_model
from skcollapse.cli._model_file import MODEL_MAGIC
from skcollapse.datasets import make_interactions
from skcollapse.recommenders import MFRecommender

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Payload:
    """Unpickling this creates ``marker`` (what a real attack would do instead:
    run a shell command)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


def _payload_npy(marker):
    """An ``.npy`` file of dtype object: its data is a pickle of the payload."""
    buf = io.BytesIO()
    np.save(buf, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    return buf.getvalue()


def _npy(array, shape=None, descr=None):
    """``.npy`` bytes of ``array``, optionally with a header that lies."""
    buf = io.BytesIO()
    header = np.lib.format.header_data_from_array_1_0(array)
    if shape is not None:
        header["shape"] = shape
    if descr is not None:
        header["descr"] = descr
    np.lib.format.write_array_header_1_0(buf, header)
    buf.write(np.ascontiguousarray(array).tobytes())
    return buf.getvalue()


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "PAYLOAD_RAN"
    yield path
    assert not path.exists(), "code from a model file ran"


@pytest.fixture(scope="module")
def good_file(tmp_path_factory):
    """A fitted MF model: 20 string user ids, 12 items, 32 x 4 embedding table."""
    X = make_interactions(20, 12, random_state=0)
    users = np.array([f"u{u}" for u in X[:, 0]], dtype=object)
    est = MFRecommender(embedding_dim=4, max_epochs=1, batch_size=32,
                        random_state=0).fit(np.column_stack([users, X[:, 1]]))
    path = tmp_path_factory.mktemp("good") / "good.skc"
    return save_model(est, path)


def _parts(path):
    _magic, header, model, rest = path.read_bytes().split(b"\n", 3)
    with zipfile.ZipFile(io.BytesIO(rest)) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    return header, json.loads(model), members


def _write(path, header, model, members, *, compression=zipfile.ZIP_STORED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    line = model if isinstance(model, bytes) else json.dumps(model).encode()
    path.write_bytes(MODEL_MAGIC + header + b"\n" + line + b"\n" + buf.getvalue())


def _craft(good_file, path, marker, edit, **write_kwargs):
    """Copy ``good_file`` with ``edit(model, members)`` applied and the payload
    added as archive member ``evil.npy``."""
    header, model, members = _parts(good_file)
    members["evil.npy"] = _payload_npy(marker)
    edit(model, members)
    _write(path, header, model, members, **write_kwargs)
    return path


def _tensor_key(model, entry="embedding.weight"):
    return model["components"]["module"]["items"][entry]["key"]


def _assert_refused(path, match, capsys):
    with pytest.raises(ValueError) as info:
        load_model(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    assert "\n" not in message
    assert match in message, message
    assert main(["score", str(path)]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"skcollapse: error: {path}"), err
    assert "Traceback" not in err


# ------------------------------------------------------------------ the payload
def test_the_payload_is_real(tmp_path):
    """The marker check means something: unpickling the payload creates it."""
    marker = tmp_path / "PAYLOAD_RAN"
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists()
    marker.unlink()
    np.load(io.BytesIO(_payload_npy(marker)), allow_pickle=True)
    assert marker.exists()


def test_good_file_loads(good_file):
    model = load_model(good_file)
    assert model.user_ids_.dtype == object
    assert (model.n_users_, model.n_items_) == (20, 12)


# ------------------------------------------------------------------ format 1
def test_format_1_pickle_is_never_unpickled(tmp_path, marker, capsys):
    """The crafted file of the report: a format-1 header and a pickle payload."""
    path = tmp_path / "evil.skc"
    path.write_bytes(
        MODEL_MAGIC + b'{"format_version": 1, "model": "mf"}\n'
        + pickle.dumps({"estimator": Payload(marker)})
    )
    _assert_refused(path, "is a format-1 model file", capsys)
    assert not marker.exists()
    # the explicit, documented opt-in does unpickle (and so runs the payload)
    load_model(path, trusted=True)
    assert marker.exists()
    marker.unlink()


# ------------------------------------------------------------------ format 2
def _set(path_in_model, value):
    def edit(model, members):
        node = model
        for key in path_in_model[:-1]:
            node = node[key]
        node[path_in_model[-1]] = value(model, members) if callable(value) else value
    return edit


def _replace_member(shape=None, descr=None, array=None):
    def edit(model, members):
        key = _tensor_key(model)
        data = np.zeros((32, 4), np.float32) if array is None else array
        members[f"{key}.npy"] = _npy(data, shape=shape, descr=descr)
    return edit


def _ids_member(values):
    def edit(model, members):
        members["ids.npy"] = _npy(np.asarray(values))
        arr = np.asarray(values)
        model["attributes"]["user_ids_"] = {
            "__skc__": "array", "key": "ids", "dtype": arr.dtype.str,
            "shape": list(arr.shape),
        }
    return edit


def _compose(*edits):
    def edit(model, members):
        for e in edits:
            e(model, members)
    return edit


def _evil_param(node):
    return _set(["params", "callbacks"], [node])


CASES = {
    # classes, functions and objects outside the registry
    "estimator class outside the registry": (
        _compose(_set(["estimator"], "system"), _set(["params"], {"command": "x"})),
        "names the estimator class 'system', which is not one of skcollapse's",
    ),
    "estimator named by a module path": (
        _set(["estimator"], "subprocess.Popen"),
        "names the estimator class 'subprocess.Popen'",
    ),
    "estimator named by a library module path": (
        _set(["estimator"], "skcollapse.recommenders.MFRecommender"),
        "names the estimator class 'skcollapse.recommenders.MFRecommender'",
    ),
    "component class outside the registry": (
        _set(["params", "module"], {"__skc__": "class", "name": "os.system"}),
        "names class 'os.system', which is not one of the components",
    ),
    "object of a class outside the registry": (
        _evil_param({"__skc__": "object", "class": "subprocess.Popen",
                     "params": {"args": ["touch", "x"]}}),
        "names class 'subprocess.Popen'",
    ),
    "a function outside the registry": (
        _evil_param({"__skc__": "object", "class": "skorch.callbacks.PrintLog",
                     "params": {"sink": {"__skc__": "function",
                                         "name": "builtins.exec"}}}),
        "names function 'builtins.exec'",
    ),
    "a registered class the file may not build": (
        _evil_param({"__skc__": "object", "class": "skcollapse.nn.MatrixFactorization",
                     "params": {"n_users": 10**12, "n_items": 1,
                                "embedding_dim": 64}}),
        "which a model file may name but not build",
    ),
    "a registered class of the wrong kind": (
        _set(["params", "optimizer"],
             {"__skc__": "class", "name": "skcollapse.nn.MatrixFactorization"}),
        "parameter 'optimizer' is MatrixFactorization, which is not a valid optimizer class",
    ),
    # pickles hidden in the archive
    "an object array member": (
        _set(["attributes", "user_ids_"],
             {"__skc__": "array", "key": "evil", "dtype": "|O", "shape": [1]}),
        "array dtype '|O' is not a plain numeric or text dtype",
    ),
    "an object array member described as numbers": (
        _set(["attributes", "item_popularity_"],
             {"__skc__": "array", "key": "evil", "dtype": "<i8", "shape": [1]}),
        "member evil.npy holds Python objects",
    ),
    "a pickle in an untagged JSON value": (
        _set(["params", "lr"], {"py/reduce": "os.system"}),
        "holds an untagged JSON object",
    ),
    "an unknown kind": (
        _set(["params", "lr"], {"__skc__": "pickle", "data": "gASV"}),
        "has unknown kind 'pickle'",
    ),
    # shapes and sizes
    "an oversized shape in the array header": (
        _compose(_replace_member(shape=(10**12, 4)),
                 lambda m, _: m["components"]["module"]["items"]["embedding.weight"]
                 .update(shape=[10**12, 4])),
        "bytes of data, but its shape (1000000000000, 4) needs",
    ),
    "a shape that disagrees with the description": (
        _replace_member(shape=(40, 3), array=np.zeros((40, 3), np.float32)),
        "is <f4 (40, 3), but the file's description says <f4 (32, 4)",
    ),
    "a negative shape": (
        lambda m, _: m["components"]["module"]["items"]["embedding.weight"]
        .update(shape=[-30, 4]),
        "negative or not integers",
    ),
    "a negative shape in the array header": (
        _replace_member(shape=(-1, 4)),
        "is <f4 (-1, 4), but the file's description says <f4 (32, 4)",
    ),
    "sizes larger than the saved tables": (
        _set(["params", "embedding_dim"], 10**9),
        ("has shape (32, 4) in the file, but the sizes saved with it give "
         "(32, 1000000000)"),
    ),
    "a count larger than its ids": (
        _set(["attributes", "n_users_"], 10**9),
        "n_users_=1000000000 but user_ids_ holds 20 ids",
    ),
    "a sparse matrix pointing outside its shape": (
        lambda m, members: members.update(
            {f"{m['attributes']['user_items_']['indices']['key']}.npy":
             _npy(np.full(m["attributes"]["user_items_"]["indices"]["shape"],
                          10**6, dtype=np.int32))}),
        "inconsistent sparse matrix",
    ),
    # ids
    "NaN in the ids": (_ids_member([0.0, np.nan, *range(2, 20)]),
                       "user_ids_ holds NaN, floats or mixed values"),
    "negative ids": (_ids_member(list(range(-1, 19))), "user_ids_ holds negative ids"),
    "negative ids beyond int64": (
        _set(["attributes", "user_ids_"], {"__skc__": "object_array", "shape": [20],
                                           "items": [-(2**70), *range(1, 20)]}),
        "user_ids_ holds negative ids"),
    "an id twice": (_ids_member([0, *range(19)]), "user_ids_ holds an id twice"),
    # names the loader would set
    "an attribute named like a dunder": (
        _set(["attributes", "__class__"], None), "sets an attribute named '__class__'"
    ),
    "an attribute that is a method": (
        _set(["attributes", "fit"], None), "sets an attribute named 'fit'"
    ),
    "a component as an attribute": (
        _set(["attributes", "module_"], None), "sets an attribute named 'module_'"
    ),
    "a parameter the class does not have": (
        _set(["params", "__reduce__"], None), "has a parameter named '__reduce__'"
    ),
    # JSON
    "nesting too deep": (
        _set(["params", "lr"], json.loads("[" * 200 + "]" * 200)),
        "nested more than 64 levels deep",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_crafted_format_2_file_is_refused(case, good_file, tmp_path, marker, capsys):
    edit, match = CASES[case]
    path = _craft(good_file, tmp_path / "hostile.skc", marker, edit)
    _assert_refused(path, match, capsys)


def test_compressed_members_are_refused(good_file, tmp_path, marker, capsys):
    """A deflated member could expand into more memory than the file holds."""
    path = _craft(good_file, tmp_path / "bomb.skc", marker, lambda m, _: None,
                  compression=zipfile.ZIP_DEFLATED)
    _assert_refused(path, "is compressed or encrypted", capsys)


@pytest.mark.parametrize(
    "line, match",
    [
        (b'{"estimator": "MFRecommender", "params": {"lr": NaN}}',
         "the non-JSON constant NaN"),
        (pickle.dumps({"x": 1}).replace(b"\n", b" "),
         "its model description is not valid JSON"),
        (b"[1, 2]", "its model description is not a JSON object"),
        (b'{"estimator": "MFRecommender", "params": {"lr": ' + b"9" * 5000 + b"}}",
         "its model description is not valid JSON"),
    ],
)
def test_a_model_line_that_is_not_json_is_refused(
    good_file, tmp_path, marker, capsys, line, match
):
    header, _, members = _parts(good_file)
    members["evil.npy"] = _payload_npy(marker)
    path = tmp_path / "bad.skc"
    _write(path, header, line, members)
    _assert_refused(path, match, capsys)


@pytest.mark.parametrize("keep", [0.02, 0.3, 0.6, 0.9, -1])
def test_truncated_files_are_refused(good_file, tmp_path, marker, capsys, keep):
    data = good_file.read_bytes()
    path = tmp_path / "cut.skc"
    path.write_bytes(data[: int(len(data) * keep)] if keep > 0 else data[:keep])
    with pytest.raises(ValueError) as info:
        load_model(path)
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message
    assert any(w in message for w in ("damaged", "truncated", "ends inside")), message
    assert main(["score", str(path)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_members_listed_twice_are_refused(good_file, tmp_path, marker, capsys):
    header, model, members = _parts(good_file)
    key = _tensor_key(model)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        with pytest.warns(UserWarning, match="Duplicate name"):
            zf.writestr(f"{key}.npy", _payload_npy(marker))
    path = tmp_path / "twice.skc"
    path.write_bytes(MODEL_MAGIC + header + b"\n" + json.dumps(model).encode()
                     + b"\n" + buf.getvalue())
    _assert_refused(path, "lists a member twice", capsys)
