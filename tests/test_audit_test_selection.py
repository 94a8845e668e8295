"""Nothing in the repository chooses anything on a test split (issue 26).

``benchmarks/audit_test_selection.py`` finds every place where a choice could
be made on a test split, and its review file records what a reader found at
each one. These tests check that the checker finds planted violations, and
that the repository has no hit without a verdict and no verdict without a hit.
"""

import textwrap

from _bench import load_benchmark

PLANTED_PY = textwrap.dedent('''
    from sklearn.metrics import roc_auc_score
    from skcollapse.metrics import evaluate_ranking


    def by_weight(X_train, X_test, weights):
        scores = {}
        for w in weights:
            m = Model(weight=w).fit(X_train)
            scores[w] = evaluate_ranking(m, X_test)["ndcg"]
        return max(scores, key=scores.get)


    def run(w, X_train, X_te, y_te):
        m = Model(w).fit(X_train)
        return roc_auc_score(y_te, m.predict_proba(X_te)[:, 1])


    def through_a_helper(grid, X_train, X_te, y_te):
        aucs = {w: run(w, X_train, X_te, y_te) for w in grid}
        return sorted(aucs, key=aucs.get)[-1]


    def monitored(test_ds):
        return Net(callbacks=[EarlyStopping(monitor="test_ndcg")],
                   train_split=predefined_split(test_ds))


    def searched(X_test, grid):
        s = GridSearchCV(Model(), grid).fit(X_test)
        return s.best_params_


    def swapped(X_train, X_test):
        return HoldoutProtocol(X_test, X_train)


    def epoch_on_test(model, X_train, X_test):
        curve = []
        for epoch in range(10):
            model.partial_fit(X_train)
            curve.append(model.score(X_test))
        return int(np.argmax(curve)) + 1


    def documented():
        """The default alpha=0.5 was chosen on the test split.

        Recall@20 0.291 with the default.
        """
''')

PLANTED_MD = textwrap.dedent('''
    # Results

    We keep the weight with the best test NDCG@20.

    The default keeps 95% of Recall@20.

    A 200,000-row task shows the effect.

    ```python
    for w in grid:
        res = evaluate_ranking(Model(w).fit(X_train), X_test)
        scores.append(res["ndcg"])
    best = grid[int(np.argmax(scores))]
    ```
''')


def _rules(hits):
    return sorted((h.rule, h.line) for h in hits)


def test_checker_finds_planted_choices_on_test():
    audit = load_benchmark("audit_test_selection", shared=True)
    py = audit.scan_file("skcollapse/planted.py", PLANTED_PY)
    got = {h.rule for h in py}
    assert {"P1", "P2", "P3", "P4", "P5", "P6", "T1", "T2"} <= got, _rules(py)
    # the selection over test scores, direct and through a helper, and the epoch
    selected = {h.text for h in py if h.rule == "P2"}
    assert any("max(scores" in t for t in selected)
    assert any("sorted(aucs" in t for t in selected)
    assert any("np.argmax(curve)" in t for t in selected)
    md = audit.scan_file("docs/planted.md", PLANTED_MD)
    got = {h.rule for h in md}
    assert {"P1", "P2", "T1", "T3", "T5"} <= got, _rules(md)


def test_checker_leaves_validation_selection_alone():
    audit = load_benchmark("audit_test_selection", shared=True)
    clean = textwrap.dedent('''
        def by_weight(X_train, X_valid, X_test, weights):
            scores = {}
            for w in weights:
                m = Model(weight=w).fit(X_train)
                scores[w] = evaluate_ranking(m, X_valid)["ndcg"]
            best = max(scores, key=scores.get)
            return evaluate_ranking(Model(weight=best).fit(X_train), X_test)
    ''')
    assert audit.scan_file("benchmarks/clean.py", clean) == []


def test_every_hit_in_the_repository_has_a_verdict():
    audit = load_benchmark("audit_test_selection", shared=True)
    files, hits, stale = audit.audit()
    assert len(files) > 100
    unreviewed = [f"{h.path}:{h.line} {h.rule} {h.text[:120]}"
                  for h in hits if h.verdict is None]
    assert not unreviewed, (
        "new places that may choose on a test split; read each, then fix it or "
        "record a verdict in benchmarks/audit_test_selection_review.json:\n"
        + "\n".join(unreviewed))
    assert not stale, f"review entries that match no hit any more: {stale}"
    # T5 (a known test-read result mentioned without a label) is a missing
    # label: only a mention that is not a result may carry a verdict
    for h in hits:
        if h.rule == "T5":
            assert h.verdict in ("labelled", "not-selection"), h


def test_result_files_are_checked_against_validation(tmp_path):
    import json

    audit = load_benchmark("audit_test_selection", shared=True)
    folder = tmp_path / "benchmarks" / "results" / "planted"
    folder.mkdir(parents=True)
    record = {
        "candidates": [
            {"params": {"w": 1}, "valid_score": 0.30, "valid_curve": [0.1, 0.3, 0.2],
             "epochs": 2},
            {"params": {"w": 2}, "valid_score": 0.25, "valid_curve": [0.25, 0.2],
             "epochs": 1},
        ],
        # chosen as if by a test figure: not the validation best, and seed 0
        # kept an epoch its validation curve does not prefer
        "selection": {"params": {"w": 2}, "epochs": 1, "valid_score": 0.25},
        "seeds": [{"seed": 0, "epochs": 3, "valid_curve": [0.1, 0.3, 0.2]}],
    }
    (folder / "run.json").write_text(json.dumps(record))
    got = sorted(h.rule for h in audit.check_results(str(tmp_path)))
    assert got == ["R1", "R2"]
    record["selection"]["params"] = {"w": 1}
    record["seeds"][0]["epochs"] = 2
    (folder / "run.json").write_text(json.dumps(record))
    assert audit.check_results(str(tmp_path)) == []


def test_codebook_defaults_are_checked_against_the_chooser(tmp_path):
    import json

    audit = load_benchmark("audit_test_selection", shared=True)
    tables = load_benchmark("tables_codebooks", shared=True)
    results = tmp_path / "benchmarks" / "results"
    (results / "codebooks").mkdir(parents=True)

    def cand(params, err):
        return {"quantizer": "RQVAE", "params": {**tables.UNFIXED, **params},
                "valid": {"relative_reconstruction_error": err, "collision_rate": 0.0}}

    rows = {"rqvae-none": [cand({}, 1.0)],
            "rqvae-restart": [cand({"dead_code_threshold": 1}, 0.5)]}
    (results / "codebooks" / "planted-a.json").write_text(json.dumps({
        "table": "planted-a", "rows": {
            r: {"chosen": c[0]["params"], "candidates": c} for r, c in rows.items()}}))
    chosen = {**tables.UNFIXED, "dead_code_threshold": 1}
    (results / "codebook_defaults.json").write_text(json.dumps({"defaults": chosen}))
    source = tmp_path / "skcollapse" / "quantization"
    source.mkdir(parents=True)

    def write_rqvae(**defaults):
        args = ", ".join(f"{k}={v!r}" for k, v in defaults.items())
        (source / "_rqvae.py").write_text(
            f"class RQVAE:\n    def __init__(self, n_levels=3, *, {args}):\n        pass\n")

    write_rqvae(**chosen)
    assert audit.check_results(str(tmp_path)) == []
    write_rqvae(**tables.UNFIXED)  # the code's default is not the chosen one
    hits = audit.check_results(str(tmp_path))
    assert [(h.rule, "dead_code_threshold=0" in h.text) for h in hits] == [("R3", True)]
    write_rqvae(**chosen)
    (results / "codebook_defaults.json").write_text(json.dumps({"defaults": tables.UNFIXED}))
    hits = audit.check_results(str(tmp_path))  # the file is not what the rule gives
    assert "the held-out figures give" in hits[0].text
