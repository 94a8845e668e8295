"""choose_codebook_defaults.py: its rule on planted held-out figures, and
RQVAE's defaults against the committed choice."""

import json
import os

import pytest
from _bench import BENCH, load_benchmark


@pytest.fixture
def chooser(tmp_path, monkeypatch):
    results = load_benchmark("_results", shared=True)
    monkeypatch.setattr(results, "RESULTS", str(tmp_path))
    return load_benchmark("choose_codebook_defaults", shared=True)


def _cand(row, params, err, coll, quantizer="RQVAE"):
    return row, {"quantizer": quantizer, "params": params, "valid": {
        "relative_reconstruction_error": err, "collision_rate": coll,
        "usage": [1.0], "perplexity": [1.0]}}


def _write(folder, table, cands):
    rows = {}
    for row, cand in cands:
        rows.setdefault(row, {"chosen": cand["params"], "candidates": [],
                              "seeds": []})["candidates"].append(cand)
    (folder / "codebooks").mkdir(exist_ok=True)
    (folder / "codebooks" / f"{table}.json").write_text(
        json.dumps({"table": table, "rows": rows}))


def _planted_files(folder, unfixed):
    # two tuning tables, with the un-fixed RQ-VAE at error 1.0 (table a) and
    # 2.0 (table b), collision rate 0.1 on both. Table b's file spells every
    # fix out (as bench_codebooks.py does now), table a's does not (as the
    # first result files): both name the same candidates.
    for table, base, explicit in (("planted-a", 1.0, False),
                                  ("ml-100k-mf-none", 2.0, True)):
        def p(explicit=explicit, **fix):
            return {**(unfixed if explicit else {"init": "random"}), **fix}

        _write(folder, table, [
            _cand("rkm", {}, 0.01, 0.0, quantizer="ResidualKMeans"),  # not an RQ-VAE
            _cand("rqvae-none", p(), base, 0.1),
            # safe and helps: ratios 0.9 and 0.95
            _cand("rqvae-restart", p(dead_code_threshold=1),
                  base * (0.9 if table == "planted-a" else 0.95), 0.05),
            # safe and helps with a lower score: ratios 0.5 and 1.005
            _cand("rqvae-kmeans", p(init="kmeans"),
                  base * (0.5 if table == "planted-a" else 1.005), 0.05),
            # the lowest score, but 2% worse on one table: not safe
            _cand("rqvae-diversity", p(diversity_weight=0.1),
                  base * (0.3 if table == "planted-a" else 1.02), 0.05),
            # better errors, more collisions on average: not safe
            _cand("rqvae-rotation", p(straight_through="rotation"), base * 0.8, 0.2),
            # within 1% everywhere and fewer collisions, but helps < 1%
            _cand("rqvae-restart", p(dead_code_threshold=4), base * 0.995, 0.0),
        ] + ([_cand("rqvae-ema", p(codebook_update="ema", ema_decay=0.9),
                    base * 0.1, 0.0)] if table == "planted-a" else []))
    # reported tables are never read: a winner there must not count
    for table in ("gowalla-mf-none", "ml-100k-two-tower-none"):
        _write(folder, table, [
            _cand("rqvae-none", {"init": "random"}, 1.0, 0.5),
            _cand("rqvae-diversity", {"init": "random", "diversity_weight": 1.0},
                  0.01, 0.0)])


def test_rule_picks_the_safe_candidate_with_the_lowest_score(chooser, tmp_path):
    tables = load_benchmark("tables_codebooks", shared=True)
    _planted_files(tmp_path, tables.UNFIXED)
    tuning, base, cands = chooser.collect()
    assert tuning == ["ml-100k-mf-none", "planted-a"]
    assert base == {"planted-a": (1.0, 0.1), "ml-100k-mf-none": (2.0, 0.1)}
    rec = chooser.choose(tuning, base, cands)
    by = {json.dumps(c["settings"], sort_keys=True): c for c in rec["candidates"]}
    assert set(by) == {
        '{"dead_code_threshold": 1}', '{"init": "kmeans"}',
        '{"diversity_weight": 0.1}', '{"straight_through": "rotation"}',
        '{"dead_code_threshold": 4}', '{"codebook_update": "ema", "ema_decay": 0.9}'}
    kmeans = by['{"init": "kmeans"}']
    assert kmeans["score"] == pytest.approx((0.5 * 1.005) ** 0.5)
    assert kmeans["ratio"] == pytest.approx({"planted-a": 0.5, "ml-100k-mf-none": 1.005})
    assert kmeans["safe"] and kmeans["helps"]
    assert by['{"dead_code_threshold": 1}']["helps"]
    assert not by['{"diversity_weight": 0.1}']["safe"]  # a table 2% worse
    assert not by['{"straight_through": "rotation"}']["safe"]  # more collisions
    four = by['{"dead_code_threshold": 4}']
    assert four["safe"] and not four["helps"]  # 0.995 > 0.99
    ema = by['{"codebook_update": "ema", "ema_decay": 0.9}']
    assert not ema["complete"] and not ema["safe"]
    assert rec["chosen"] == {"init": "kmeans"}
    assert rec["defaults"] == {**tables.UNFIXED, "init": "kmeans"}
    assert rec["also_safe_alone"] == ["dead_code_threshold"]
    # listed by score, the candidates measured on every table first
    assert rec["candidates"][0]["settings"] == {"diversity_weight": 0.1}
    assert rec["candidates"][-1] is ema


def test_a_measured_combination_that_lost_is_not_listed_as_untried(chooser,
                                                                   tmp_path):
    tables = load_benchmark("tables_codebooks", shared=True)
    u = tables.UNFIXED
    restart = {**u, "dead_code_threshold": 1}
    kmeans = {**u, "init": "kmeans"}
    both = {**u, "init": "kmeans", "dead_code_threshold": 1}
    _write(tmp_path, "planted-x", [
        _cand("rqvae-none", u, 1.0, 0.1),
        _cand("rqvae-restart", restart, 0.7, 0.05),
        _cand("rqvae-kmeans", kmeans, 0.8, 0.05)])
    rec = chooser.choose(*chooser.collect())
    assert rec["chosen"] == {"dead_code_threshold": 1}
    assert rec["also_safe_alone"] == ["init"]  # never measured together
    _write(tmp_path, "planted-x", [
        _cand("rqvae-none", u, 1.0, 0.1),
        _cand("rqvae-restart", restart, 0.7, 0.05),
        _cand("rqvae-kmeans", kmeans, 0.8, 0.05),
        _cand("rqvae-kmeans-restart", both, 0.75, 0.05)])
    rec = chooser.choose(*chooser.collect())
    assert rec["chosen"] == {"dead_code_threshold": 1}
    assert rec["also_safe_alone"] == []  # measured together, and it lost


def test_nothing_safe_that_helps_keeps_every_fix_off(chooser, tmp_path):
    tables = load_benchmark("tables_codebooks", shared=True)
    _write(tmp_path, "planted-x", [
        _cand("rqvae-none", tables.UNFIXED, 1.0, 0.1),
        _cand("rqvae-kmeans", {**tables.UNFIXED, "init": "kmeans"}, 1.011, 0.0),
        _cand("rqvae-restart", {**tables.UNFIXED, "dead_code_threshold": 1}, 0.995, 0.1)])
    rec = chooser.choose(*chooser.collect())
    assert rec["chosen"] == {} and rec["defaults"] == tables.UNFIXED
    assert rec["also_safe_alone"] == []
    with pytest.raises(ValueError, match="no tuning table"):
        chooser.choose([], {}, {})


def test_main_writes_the_choice_and_the_table_shows_it(chooser, tmp_path):
    tables = load_benchmark("tables_codebooks", shared=True)
    _planted_files(tmp_path, tables.UNFIXED)
    assert chooser.main([]) == 0
    saved = json.loads((tmp_path / "codebook_defaults.json").read_text())
    assert saved["chosen"] == {"init": "kmeans"}
    assert saved["procedure"].startswith("Choose RQVAE's collapse-fix defaults")
    rows = tables.table_codebook_defaults().splitlines()
    assert rows[0].startswith("| candidate (fixes on) | ratio, ml-100k-mf-none | "
                              "ratio, planted-a |")
    assert rows[2].startswith("| RQ-VAE, no fix") and "| 2.0000 | 1.0000 |" in rows[2]
    chosen = [r for r in rows if r.endswith("| **chosen** |")]
    assert chosen == ["| init=kmeans | 1.005 | 0.500 | 0.709 | 0.0500 | **chosen** |"]


def test_rqvae_defaults_are_the_committed_choice():
    from skcollapse.quantization import RQVAE

    path = os.path.join(os.path.dirname(BENCH), "benchmarks", "results",
                        "codebook_defaults.json")
    with open(path) as fh:
        saved = json.load(fh)
    params = RQVAE().get_params()
    assert {k: params[k] for k in saved["defaults"]} == saved["defaults"]
