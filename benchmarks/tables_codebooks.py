"""Tables of the codebook-collapse evidence, from its result files only.

``bench_codebooks.py`` writes ``benchmarks/results/codebooks/<table>.json``;
``peers/botta_rqvae.py`` writes ``benchmarks/results/codebooks/peers/*.json``.
Every figure is the mean over the seeds of a setting fitted on the whole
catalogue; ``±`` is the seeds' standard deviation. The setting of each fix was
chosen on held-out items' reconstruction error with the first seed (the files'
``selection``), never on these figures.
"""

from __future__ import annotations

import os
import re
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _results

ROWS = ("rkm", "rqvae-none", "rqvae-kmeans", "rqvae-restart", "rqvae-ema",
        "rqvae-diversity", "rqvae-rotation", "rqvae-kmeans-restart", "rqvae-all")
#: The un-fixed RQ-VAE: every fix of :class:`skcollapse.quantization.RQVAE`
#: off. ``bench_codebooks.py`` spells these out in every RQ-VAE candidate; the
#: files written before it did so left them at RQVAE's defaults of the time,
#: which were these (``init`` was always given).
UNFIXED = {"init": "random", "dead_code_threshold": 0, "codebook_update": "gradient",
           "diversity_weight": 0.0, "straight_through": "ste"}
LABELS = {
    "rkm": "residual k-means",
    "rqvae-none": "RQ-VAE, no fix",
    "rqvae-kmeans": "+ k-means init",
    "rqvae-restart": "+ dead-code restart",
    "rqvae-ema": "+ EMA codebooks",
    "rqvae-diversity": "+ diversity penalty",
    "rqvae-rotation": "+ rotation trick",
    "rqvae-kmeans-restart": "+ k-means init + restart",
    "rqvae-all": "all fixes",
}
_NONE = "_No result files yet._\n"


def _tables():
    return [r for r in _results.read_results("codebooks")
            if not r["_path"].startswith(os.path.join("codebooks", "peers"))]


_TRAINED = re.compile(r"^(?P<data>.+?)-(?P<model>mf|two-tower)-(?P<reg>.+)$")


def _table_order(rec):
    """Planted tables first, then by data set, model (MF first) and
    regularizer (none first)."""
    name = rec["table"]
    m = _TRAINED.match(name)
    if name.startswith("planted") or m is None:
        return (0, name)
    return (1, m["data"], m["model"], 0 if m["reg"] == "none" else 1, name)


_pm = _results.pm


def _levels(seeds, key, digits):
    per = np.mean([s[key] for s in seeds], axis=0)
    return " / ".join(f"{x:.{digits}f}" for x in per)


def fix_settings(params):
    """The fixes a candidate switches on: its parameters that differ from
    :data:`UNFIXED` (a missing one is off; ``ema_decay`` only with EMA), and
    any other parameter it sets."""
    out = {k: v for k, v in params.items()
           if (k not in UNFIXED and k != "ema_decay") or v != UNFIXED.get(k, v)}
    if out.get("codebook_update") == "ema" and "ema_decay" in params:
        out["ema_decay"] = params["ema_decay"]
    return out


def _params(params):
    out = [f"{k}={v}" for k, v in sorted(fix_settings(params).items())]
    return ", ".join(out) or "—"


def table_codebooks():
    """Every item table x quantizer: usage, perplexity, collisions, error, erank."""
    recs = sorted(_tables(), key=_table_order)
    if not recs:
        return _NONE
    lines = [
        ("| item table (erank) | quantizer | chosen on validation | usage per level "
         "| perplexity per level | collision rate | largest group "
         "| rel. reconstruction error | code erank per level | seeds |"),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for rec in recs:
        for row in ROWS:
            if row not in rec["rows"]:
                continue
            r = rec["rows"][row]
            s = r["seeds"]
            lines.append("| " + " | ".join([
                f"{rec['table']} ({rec['item_erank']:.1f})", LABELS[row],
                _params(r["chosen"]), _levels(s, "usage", 2),
                _levels(s, "perplexity", 1), _pm([x["collision_rate"] for x in s]),
                f"{np.mean([x['largest_collision_group'] for x in s]):.1f}",
                _pm([x["relative_reconstruction_error"] for x in s]),
                _levels(s, "code_erank", 1), str(len(s)),
            ]) + " |")
    return "\n".join(lines) + "\n"


def table_codebooks_planted():
    """The planted table's known answer: level 0 should find the clusters.

    Purity (each cluster's items share one level-0 code) and codes used (each
    cluster gets a code of its own: as many codes used as clusters) together
    make the right answer; purity alone is met by merging clusters.
    """
    recs = [r for r in _tables() if r["table"] == "planted-clusters"]
    if not recs:
        return _NONE
    rec = recs[0]
    K = rec["config"]["codebook_size"]
    lines = [
        ("| quantizer | level-0 purity (1 = right) | level-0 codes per cluster "
         f"(1 = right) | level-0 codes used ({K} = right) | level-0 perplexity "
         "| collision rate |"),
        "|---|---|---|---|---|---|",
    ]
    for row in ROWS:
        if row not in rec["rows"]:
            continue
        s = rec["rows"][row]["seeds"]
        lines.append(
            f"| {LABELS[row]} | {_pm([x['level0_purity'] for x in s])} "
            f"| {np.mean([x['level0_codes_per_cluster'] for x in s]):.2f} "
            f"| {K * np.mean([x['usage'][0] for x in s]):.1f} "
            f"| {np.mean([x['perplexity'][0] for x in s]):.1f} "
            f"| {_pm([x['collision_rate'] for x in s])} |")
    return "\n".join(lines) + "\n"


def table_codebooks_erank():
    """Do codes from a less collapsed item table collide less? One row per table."""
    recs = sorted(_tables(), key=_table_order)
    if not recs:
        return _NONE
    shown = [r for r in ("rkm", "rqvae-kmeans", "rqvae-all")
             if any(r in rec["rows"] for rec in recs)]
    lines = [
        "| item table | item erank | " + " | ".join(
            f"collision rate, {LABELS[r]}" for r in shown)
        + " | " + " | ".join(f"rel. error, {LABELS[r]}" for r in shown) + " |",
        "|---|---|" + "---|" * (2 * len(shown)),
    ]
    for rec in recs:
        if rec["table"] == "planted-clusters":
            continue
        cells = [rec["table"], f"{rec['item_erank']:.1f}"]
        for key in ("collision_rate", "relative_reconstruction_error"):
            for r in shown:
                s = rec["rows"].get(r, {}).get("seeds")
                cells.append(_pm([x[key] for x in s]) if s else "—")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def table_codebooks_peer():
    """skcollapse's RQVAE beside the peer RQ-VAE, same table and settings."""
    recs = _results.read_results(os.path.join("codebooks", "peers"))
    if not recs:
        return _NONE
    lines = [
        ("| item table | implementation | usage per level | perplexity per level "
         "| collision rate | largest group | rel. reconstruction error | fit s | seeds |"),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for rec in recs:
        peer = rec["peer"]
        names = {"peer": f"{peer['repo']} @ {str(peer['commit'])[:7]} "
                         f"(`RqVae`, {peer['mode']})",
                 "skcollapse": "skcollapse `RQVAE(init=\"kmeans\", "
                               "dead_code_threshold=0)`"}
        for who in ("peer", "skcollapse"):
            s = rec["rows"][who]
            lines.append("| " + " | ".join([
                rec["table"], names[who], _levels(s, "usage", 2),
                _levels(s, "perplexity", 1), _pm([x["collision_rate"] for x in s]),
                f"{np.mean([x['largest_collision_group'] for x in s]):.1f}",
                _pm([x["relative_reconstruction_error"] for x in s]),
                f"{np.mean([x['fit_s'] for x in s]):.0f}", str(len(s)),
            ]) + " |")
    return "\n".join(lines) + "\n"


def table_codebooks_validation():
    """Which RQ-VAE setting reconstructs held-out items best, per item table
    (first seed, fitted on 80% of the items, measured on the other 20%)."""
    recs = sorted(_tables(), key=_table_order)
    if not recs:
        return _NONE
    lines = [
        ("| item table | best on validation | held-out rel. error | runner-up "
         "| held-out rel. error | RQ-VAE, no fix |"),
        "|---|---|---|---|---|---|",
    ]
    for rec in recs:
        cands = sorted(
            ((c["valid"]["relative_reconstruction_error"], row, c["params"])
             for row, v in rec["rows"].items() if row != "rkm"
             for c in v["candidates"]), key=lambda x: x[0])
        none = [f"{c[0]:.4f}" for c in cands if c[1] == "rqvae-none"] or ["—"]
        (e1, r1, p1), (e2, r2, p2) = cands[0], cands[1]
        lines.append(
            f"| {rec['table']} | {LABELS[r1]} ({_params(p1)}) | {e1:.4f} "
            f"| {LABELS[r2]} ({_params(p2)}) | {e2:.4f} "
            f"| {none[0]} |")
    return "\n".join(lines) + "\n"


def table_codebook_defaults():
    """RQVAE's collapse-fix defaults, chosen by choose_codebook_defaults.py on
    held-out items of the tuning tables (never on the reported figures)."""
    rec = _results.read_result("codebook_defaults.json")
    if rec is None:
        return _NONE
    tables = rec["tuning_tables"]
    lines = [
        "| candidate (fixes on) | " + " | ".join(f"ratio, {t}" for t in tables)
        + " | score (geometric mean) | mean held-out collision rate | verdict |",
        "|---|" + "---|" * len(tables) + "---|---|---|",
        "| RQ-VAE, no fix: its held-out rel. error (the denominator) | "
        + " | ".join(f"{rec['unfixed_relative_error'][t]:.4f}" for t in tables)
        + f" | 1.000 | {rec['unfixed_mean_collision_rate']:.4f} | |",
    ]
    for c in rec["candidates"]:
        chosen = c["settings"] == rec["chosen"]
        verdict = ("**chosen**" if chosen else "safe, helps" if c["helps"]
                   else "safe" if c["safe"] else "incomplete" if not c["complete"]
                   else "not safe")
        lines.append(
            f"| {_params(c['settings'])} | "
            + " | ".join(f"{c['ratio'][t]:.3f}" if t in c["ratio"] else "—"
                         for t in tables)
            + f" | {c['score']:.3f} | {c['mean_collision_rate']:.4f} | {verdict} |")
    return "\n".join(lines) + "\n"
