"""Model file format 2: every estimator kind survives save_model/load_model exactly.

The known answer is the estimator that was saved: the loaded one must predict,
recommend and expose embeddings bit for bit as it does, keep its ids with their
dtype, and continue training (``partial_fit``) exactly as a pickled copy of the
original does.
"""

import json
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from skorch.callbacks import EarlyStopping, EpochScoring, LRScheduler

from skcollapse import recommenders as R
from skcollapse.callbacks import CollapseMonitor
from skcollapse.cli import FORMAT_VERSION, load_model, main, save_model
from skcollapse.cli._model_codec import component_registry, estimator_registry
from skcollapse.cli._model_file import MODEL_MAGIC, read_model_header
from skcollapse.datasets import make_ctr, make_interactions
from skcollapse.model_selection import PerUserValidSplit
from skcollapse.regularizers import (
    DecorrelatedBatchNorm,
    LogDetRegularizer,
    get_regularizer_names,
)
from skcollapse.testing import all_estimators

pytestmark = pytest.mark.usefixtures("one_torch_thread")

_CF = {"embedding_dim": 4, "max_epochs": 2, "batch_size": 64, "random_state": 0}
_CTR = {"embedding_dim": 4, "max_epochs": 2, "batch_size": 128, "random_state": 0}
_MLP = {**_CTR, "hidden_units": (8,), "dropout": 0.1}

#: a small configuration per estimator the library can save
CONFIGS = {
    "MFRecommender": _CF,
    "LightGCNRecommender": {**_CF, "n_layers": 2},
    "TwoTowerRecommender": {**_CF, "hidden_units": (4,)},
    "PopularityRecommender": {},
    "EASERecommender": {"alpha": 10.0},
    "ItemKNNRecommender": {"n_neighbors": 5, "shrink": 1.0},
    "FMClassifier": _CTR,
    "DNNClassifier": {**_MLP, "n_embedding_sets": 2},
    "IPNNClassifier": _MLP,
    "NFwFMClassifier": _MLP,
    "xDeepFMClassifier": {**_MLP, "cin_layer_sizes": (4,)},
    "DCNv2Classifier": {**_MLP, "n_embedding_sets": 2, "n_cross_layers": 1},
    "FinalMLPClassifier": _MLP,
    "DeepFMClassifier": {**_MLP, "n_embedding_sets": 2},
}


def _cf_data():
    """Interactions with string user ids and gapped integer item ids."""
    X = make_interactions(50, 30, random_state=0)
    return pd.DataFrame(
        {"user": [f"u{u:02d}" for u in X[:, 0]], "item": 1000 + 7 * X[:, 1]}
    )


def _ctr_data():
    X, y = make_ctr(400, n_fields=4, cardinalities=[3, 5, 20, 40], random_state=0)[:2]
    frame = pd.DataFrame(X, columns=["site", "app", "device", "hour"])
    labels = np.where(np.asarray(y) == 1, "click", "skip")
    return frame, labels


def _fit(name, **extra):
    est = estimator_registry()[name](**CONFIGS[name], **extra)
    if name.endswith("Classifier"):
        X, y = _ctr_data()
        return est.fit(X, y)
    return est.fit(_cf_data())


def _round_trip(est, tmp_path, **kwargs):
    path = save_model(est, tmp_path / "m.skc", **kwargs)
    return load_model(path)


def _assert_same_predictions(est, loaded):
    assert type(loaded) is type(est) and loaded is not est
    if hasattr(est, "recommend"):
        X = _cf_data()
        np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
        users = ["u00", "u07", "u49"]
        for got, want in zip(loaded.recommend(users, n=5), est.recommend(users, n=5)):
            np.testing.assert_array_equal(got, want)
        for attr in ("user_ids_", "item_ids_"):
            assert getattr(loaded, attr).dtype == getattr(est, attr).dtype
            np.testing.assert_array_equal(getattr(loaded, attr), getattr(est, attr))
        assert isinstance(loaded.user_ids_[0], str) and loaded.item_ids_.dtype.kind == "i"
    else:
        X, _ = _ctr_data()
        np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))
        np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
        np.testing.assert_array_equal(loaded.classes_, est.classes_)
        assert loaded.classes_.dtype == est.classes_.dtype
        assert list(loaded.feature_names_in_) == ["site", "app", "device", "hour"]
    if hasattr(est, "get_embeddings"):
        want = est.get_embeddings()
        got = loaded.get_embeddings()
        assert list(got) == list(want)
        for name, table in want.items():
            np.testing.assert_array_equal(got[name], table)


# ------------------------------------------------------------------ every kind
def test_every_saveable_estimator_has_a_round_trip_config():
    """The registry is the recommenders the discovery finds; each is tested here."""
    found = {
        name for name, cls in all_estimators()
        if cls.__module__.startswith("skcollapse.recommenders")
    }
    assert set(estimator_registry()) == found == set(CONFIGS)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_round_trip_predicts_and_recommends_exactly(name, tmp_path):
    est = _fit(name)
    loaded = _round_trip(est, tmp_path)
    _assert_same_predictions(est, loaded)
    assert loaded.get_params(deep=False).keys() == est.get_params(deep=False).keys()


@pytest.mark.parametrize(
    "name", ["MFRecommender", "LightGCNRecommender", "TwoTowerRecommender",
             "DNNClassifier", "DCNv2Classifier"],
)
def test_loaded_net_keeps_training_like_the_original(name, tmp_path):
    """Module, optimiser and regularizer state are all restored: one more
    partial_fit gives the same model as on a pickled copy of the original."""
    est = _fit(name, regularizer="logdet")
    loaded = _round_trip(est, tmp_path)
    reference = pickle.loads(pickle.dumps(est))
    for model in (loaded, reference):
        if name.endswith("Classifier"):
            model.partial_fit(*_ctr_data())
        else:
            model.partial_fit(_cf_data())
    assert len(loaded.history) == len(reference.history) == 4
    for a, b in zip(loaded.module_.state_dict().values(),
                    reference.module_.state_dict().values()):
        assert torch.equal(a, b)
    _assert_same_predictions(reference, loaded)


def test_layer_regularizer_running_statistics_are_restored(tmp_path):
    """Decorrelated BN whitens the tables at inference with running statistics
    kept in the regularizer: they must come back, or every score changes."""
    est = _fit("MFRecommender", regularizer=DecorrelatedBatchNorm(eps=1.0),
               weight_decay=0.0)
    stats = est.regularizer_.state_dict()
    assert stats and any(int(t.sum()) > 0 for k, t in stats.items()
                         if k.endswith("num_batches_tracked"))
    loaded = _round_trip(est, tmp_path)
    for key, tensor in stats.items():
        assert torch.equal(loaded.regularizer_.state_dict()[key], tensor)
    assert isinstance(loaded.regularizer, DecorrelatedBatchNorm)
    assert loaded.regularizer.eps == 1.0
    _assert_same_predictions(est, loaded)
    # recomputed from the module through the whitening layer, not the cache
    for side, table in loaded._compute_tables().items():
        assert torch.equal(table, est.embeddings_cache_[side])


@pytest.mark.parametrize("name", get_regularizer_names())
def test_every_registered_regularizer_round_trips(name, tmp_path):
    est = _fit("MFRecommender", regularizer=name)
    loaded = _round_trip(est, tmp_path)
    _assert_same_predictions(est, loaded)
    want = est.regularizer_.state_dict()
    assert list(loaded.regularizer_.state_dict()) == list(want)
    for key, tensor in want.items():
        assert torch.equal(loaded.regularizer_.state_dict()[key], tensor)


def test_two_tower_feature_vocabularies(tmp_path):
    """Feature tables given at construction (a parameter, with list cells and a
    categorical column) and at fit (fitted state only) both come back."""
    X = _cf_data()
    users = pd.DataFrame(
        {"group": [f"g{i % 3}" for i in range(50)],
         "age": pd.Categorical([["young", "old"][i % 2] for i in range(50)])},
        index=[f"u{i:02d}" for i in range(50)],
    )
    items = pd.DataFrame(
        {"genre": [("a", "b") if i % 2 else "c" for i in range(30)],
         "year": [1990 + i % 4 for i in range(30)]},
        index=1000 + 7 * np.arange(30),
    )
    est = R.TwoTowerRecommender(**CONFIGS["TwoTowerRecommender"],
                                user_features=users).fit(X, item_features=items)
    loaded = _round_trip(est, tmp_path)
    _assert_same_predictions(est, loaded)
    pd.testing.assert_frame_equal(loaded.user_features, users)
    assert loaded.item_features is None
    for side in ("user", "item"):
        assert getattr(loaded, f"{side}_fields_") == getattr(est, f"{side}_fields_")
        cats, want = (getattr(m, f"{side}_categories_") for m in (loaded, est))
        assert list(cats) == list(want)
        for field in want:
            assert cats[field].dtype == want[field].dtype
            assert list(cats[field]) == list(want[field])
    np.testing.assert_array_equal(
        loaded.item_sampling_probability_, est.item_sampling_probability_
    )


def test_components_and_callbacks_are_stored_by_name(tmp_path):
    est = _fit(
        "MFRecommender",
        regularizer=LogDetRegularizer(weight=0.05),
        optimizer=torch.optim.Adam,
        callbacks=[CollapseMonitor(metrics=("erank",)),
                   ("stop", EarlyStopping(monitor="train_loss", patience=3)),
                   LRScheduler(policy="StepLR", step_size=2)],  # **kwargs kept
        train_split=PerUserValidSplit(0.2, random_state=0),
    )
    path = save_model(est, tmp_path / "m.skc")
    line = path.read_bytes().split(b"\n")[2]
    assert b'"name":"torch.optim.Adam"' in line
    assert b'"class":"skcollapse.callbacks.CollapseMonitor"' in line
    loaded = load_model(path)
    _assert_same_predictions(est, loaded)
    assert loaded.optimizer is torch.optim.Adam
    assert isinstance(loaded.regularizer, LogDetRegularizer)
    assert loaded.regularizer.weight == 0.05
    monitor, (name, stop), scheduler = loaded.callbacks
    assert monitor.metrics == ("erank",) and name == "stop"
    assert stop.monitor == "train_loss" and stop.patience == 3
    assert scheduler.policy == "StepLR" and scheduler.kwargs == {"step_size": 2}
    assert loaded.train_split.valid_size == 0.2
    # the history (what the callbacks recorded) comes back as it was
    assert [h["erank_item"] for h in loaded.history] == [
        h["erank_item"] for h in est.history
    ]
    loaded.partial_fit(_cf_data())  # and the rebuilt callbacks work
    assert len(loaded.history) == len(est.history) + 2


def test_unfitted_and_trimmed_estimators(tmp_path):
    unfitted = R.MFRecommender(embedding_dim=3, lr=0.1)
    loaded = _round_trip(unfitted, tmp_path)
    assert loaded.get_params()["embedding_dim"] == 3 and not loaded.initialized_
    assert R.EASERecommender(alpha=3.0).get_params() == _round_trip(
        R.EASERecommender(alpha=3.0), tmp_path, overwrite=True).get_params()
    est = _fit("DNNClassifier")
    X, _ = _ctr_data()
    proba = est.predict_proba(X)
    est.trim_for_prediction()
    loaded = load_model(save_model(est, tmp_path / "t.skc"))
    assert loaded._trimmed_for_prediction and loaded.optimizer_ is None
    np.testing.assert_array_equal(loaded.predict_proba(X), proba)


def test_random_state_instance_and_metadata(tmp_path):
    rs = np.random.RandomState(7)
    rs.rand(3)
    est = _fit("MFRecommender")
    est.set_params(random_state=rs)
    path = save_model(est, tmp_path / "m.skc", user_ids=est.user_ids_,
                      item_ids=[5, 6], note="n", metrics={"x": np.float32(0.5)})
    loaded, meta = load_model(path, return_metadata=True)
    assert loaded.random_state.rand() == rs.rand()
    assert meta["format_version"] == FORMAT_VERSION == 2
    assert meta["note"] == "n" and meta["metrics"] == {"x": 0.5}
    assert meta["user_ids"].dtype == est.user_ids_.dtype
    np.testing.assert_array_equal(meta["user_ids"], est.user_ids_)
    np.testing.assert_array_equal(meta["item_ids"], [5, 6])
    assert read_model_header(path) == {"format_version": 2, "metrics": {"x": 0.5},
                                       "note": "n"}


def test_load_leaves_the_global_rng_alone(tmp_path):
    est = R.MFRecommender(embedding_dim=4, max_epochs=1).fit(_cf_data())
    path = save_model(est, tmp_path / "m.skc")
    torch.manual_seed(3)
    want = torch.rand(2)
    torch.manual_seed(3)
    load_model(path)
    assert torch.equal(torch.rand(2), want)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_gpu_model_loads_on_the_cpu_with_a_warning(tmp_path):
    est = _fit("MFRecommender")
    path = save_model(est, tmp_path / "m.skc")
    lines = path.read_bytes().split(b"\n", 3)
    model = json.loads(lines[2])
    model["params"]["device"] = "cuda"
    lines[2] = json.dumps(model).encode()
    path.write_bytes(b"\n".join(lines))
    with pytest.warns(UserWarning, match="CUDA is not available here"):
        loaded = load_model(path)
    assert loaded.device == "cpu"
    _assert_same_predictions(est, loaded)


def test_file_listing_skorchs_params_to_validate_still_loads(tmp_path):
    """Files written while get_params listed skorch's private set load as before."""
    from skcollapse.cli._model_codec import TAG

    est = _fit("MFRecommender", regularizer="logdet", regularizer__weight=0.05)
    path = save_model(est, tmp_path / "m.skc")
    lines = path.read_bytes().split(b"\n", 3)
    model = json.loads(lines[2])
    assert "_params_to_validate" not in model["params"]
    model["params"]["_params_to_validate"] = {
        TAG: "set", "items": ["regularizer__weight"]
    }
    lines[2] = json.dumps(model).encode()
    path.write_bytes(b"\n".join(lines))
    loaded = load_model(path)
    assert loaded._params_to_validate == {"regularizer__weight"}
    assert "_params_to_validate" not in loaded.get_params()
    _assert_same_predictions(est, loaded)


# ------------------------------------------------------------------ saving refuses
@pytest.mark.parametrize(
    "params, match",
    [
        ({"callbacks": [EpochScoring(lambda net, X, y: 0.0)]},
         r"parameter 'callbacks'\[0\]\.scoring is the function"),
        ({"regularizer": lambda emb, ctx: emb["user"].sum()},
         "parameter 'regularizer' is the function"),
        ({"optimizer": type("MyAdam", (torch.optim.Adam,), {})},
         "parameter 'optimizer' is the class"),
    ],
)
def test_save_refuses_what_needs_pickle_naming_the_parameter(tmp_path, params, match):
    est = R.MFRecommender(**params)
    with pytest.raises(TypeError, match=match):
        save_model(est, tmp_path / "m.skc")
    assert list(tmp_path.iterdir()) == []


def test_save_refuses_other_classes(tmp_path):
    class MyMF(R.MFRecommender):
        pass

    with pytest.raises(TypeError, match=r"save_model saves the estimators of "
                                        r"skcollapse\.recommenders"):
        save_model(MyMF(), tmp_path / "m.skc")
    with pytest.raises(TypeError, match=r"got builtins\.dict"):
        save_model({"not": "an estimator"}, tmp_path / "m.skc")


def test_registry_names_no_file_writing_callbacks():
    names = set(component_registry())
    assert "skorch.callbacks.EpochScoring" in names
    assert not {n for n in names if "Checkpoint" in n or "LoadInitState" in n}
    assert "builtins.exec" not in names and "builtins.eval" not in names


# ------------------------------------------------------------------ format 1
def _write_v1(est, path):
    payload = {"estimator": est, "user_ids": None, "item_ids": np.arange(3)}
    path.write_bytes(MODEL_MAGIC + b'{"format_version": 1, "note": "old"}\n'
                     + pickle.dumps(payload))
    return path


def test_format_1_needs_trusted_and_convert_rewrites_it(tmp_path, capsys):
    est = _fit("MFRecommender")
    old = _write_v1(est, tmp_path / "old.skc")
    with pytest.raises(ValueError, match=r"format-1 model file.*skcollapse convert"):
        load_model(old)
    assert main(["score", str(old)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "old.skc" in err
    assert "skcollapse convert" in err
    _assert_same_predictions(est, load_model(old, trusted=True))

    new = tmp_path / "new.skc"
    assert main(["convert", str(old), str(new)]) == 0
    assert "format 1" in capsys.readouterr().out
    loaded, meta = load_model(new, return_metadata=True)
    _assert_same_predictions(est, loaded)
    assert meta["format_version"] == 2 and meta["note"] == "old"
    np.testing.assert_array_equal(meta["item_ids"], np.arange(3))
    assert main(["score", str(new)]) == 0
    assert "item" in capsys.readouterr().out
    # NEW is checked first, and only replaced on request
    assert main(["convert", str(old), str(new)]) == 2
    assert "NEW: " in capsys.readouterr().err
    assert main(["convert", str(old), str(new), "--overwrite"]) == 0


def test_convert_help_says_it_trusts_the_file(capsys):
    assert main(["convert", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "you trust OLD" in text and "pickle" in text


def test_convert_of_an_unsaveable_model_names_the_parameter(tmp_path, capsys):
    est = R.MFRecommender(embedding_dim=4, max_epochs=1,
                          callbacks=[EpochScoring(len)]).fit(_cf_data())
    old = _write_v1(est, tmp_path / "old.skc")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["convert", str(old), str(tmp_path / "new.skc")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "cannot convert" in err and "parameter 'callbacks'[0].scoring" in err
    assert not (tmp_path / "new.skc").exists()


# ------------------------------------------------------------------ score
@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "the file is empty (0 bytes)"),
        (b"hello, not a model\n", "not a skcollapse model file, or it is damaged"),
        (MODEL_MAGIC + b"{not json\n", "header is damaged"),
        (MODEL_MAGIC + b'{"format_version": 2}\n{"estimator": "MFRe',
         "the file ends inside its model description"),
    ],
)
def test_score_of_a_damaged_skc_says_so(tmp_path, capsys, content, match):
    path = tmp_path / "corrupt.skc"
    path.write_bytes(content)
    assert main(["score", str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "corrupt.skc" in err and match in err
    assert "unsupported file type" not in err


def test_score_of_a_model_without_tables_says_what_to_do(tmp_path, capsys):
    path = save_model(_fit("EASERecommender"), tmp_path / "ease.skc")
    assert main(["score", str(path)]) == 2
    err = capsys.readouterr().err
    assert "ease.skc: the saved EASERecommender has no embedding tables" in err
    assert "score a model that learns embeddings" in err
