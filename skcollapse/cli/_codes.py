"""``skcollapse score --codes``: codebook-collapse metrics of a semantic-ID file.

A code file holds one integer array of shape ``(n_items, n_levels)`` (e.g.
``np.save("ids.npy", quantizer.transform(item_embeddings))``). The flag is
explicit, never guessed from the dtype: an integer array without ``--codes``
is still scored as an embedding table (as before), with a note on stderr when
it looks like codes; a non-integer array with ``--codes`` is refused.
"""

from __future__ import annotations

import numpy as np

from skcollapse.cli import CLIError

#: What the table's footnote says of the columns.
CODES_NOTE = (
    "usage: share of the K codes some item uses (1 healthy, 1/K collapsed); "
    "perplexity: exp of the code entropy (K for uniform use, 1 for one code). "
    "Collisions count items whose full ID (all levels) another item also has."
)


def _as_numpy(table):
    if hasattr(table, "detach"):  # a torch tensor from a .pt file
        table = table.detach().cpu().numpy()
    return np.asarray(table)


def check_code_table(name, table):
    """The table as int64 codes, or a :class:`CLIError` saying why it is not."""
    arr = _as_numpy(table)
    if arr.dtype.kind == "f":
        finite = np.all(np.isfinite(arr))
        if not (finite and np.all(arr == np.round(arr))):
            raise CLIError(
                f"table {name!r} holds non-integer values (dtype {arr.dtype}): "
                "it looks like an embedding table, not semantic-ID codes; drop "
                "--codes to score it as embeddings"
            )
    elif arr.dtype.kind not in "iu":
        raise CLIError(
            f"table {name!r} has dtype {arr.dtype}; --codes needs integer codes"
        )
    arr = arr.astype(np.int64)
    if arr.min() < 0:
        raise CLIError(
            f"table {name!r} holds the negative value {int(arr.min())}; codes are "
            "indices 0..K-1 into each level's codebook"
        )
    return arr


def score_codes(tables, *, codebook_size=None):
    """Codebook metrics of each code table, as a list of JSON-ready dicts.

    ``codebook_size=None`` infers ``K`` as the largest code plus one (of each
    table), which understates dead codes at the top of the codebook: pass the
    quantizer's ``codebook_size`` when it is known.
    """
    from skcollapse.quantization import (
        code_perplexity,
        code_usage,
        collision_rate,
        largest_collision_group,
    )

    rows = []
    for name, table in tables.items():
        codes = check_code_table(name, table)
        top = int(codes.max())
        if codebook_size is not None and top >= codebook_size:
            raise CLIError(
                f"table {name!r} holds code {top}, outside [0, --codebook-size="
                f"{codebook_size})"
            )
        K = codebook_size if codebook_size is not None else top + 1
        used = [int(np.unique(col).size) for col in codes.T]
        n_ids = int(np.unique(codes, axis=0).shape[0])
        rows.append({
            "name": str(name),
            "shape": [int(s) for s in codes.shape],
            "codebook_size": int(K),
            "codebook_size_inferred": codebook_size is None,
            "used_codes": used,
            "usage": code_usage(codes, K).tolist(),
            "perplexity": code_perplexity(codes, K).tolist(),
            "n_unique_ids": n_ids,
            "collision_rate": collision_rate(codes),
            "largest_collision_group": largest_collision_group(codes),
        })
    return rows


def format_codes(rows):
    """Human-readable table of :func:`score_codes` output: one line per level,
    then one line per table with its collisions."""
    header = ["table", "level", "K", "used", "usage", "perplexity"]
    body = []
    for row in rows:
        K = str(row["codebook_size"]) + ("*" if row["codebook_size_inferred"] else "")
        for lvl, (used, usage, ppl) in enumerate(
            zip(row["used_codes"], row["usage"], row["perplexity"])
        ):
            body.append([row["name"] if lvl == 0 else "", str(lvl), K, str(used),
                         f"{usage:.4f}", f"{ppl:.2f}"])
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = []
    for r in [header, *body]:
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
    for row in rows:
        n = row["shape"][0]
        shared = round(row["collision_rate"] * n)
        lines.append(
            f"{row['name']}: {n} items, {row['shape'][1]} levels, "
            f"{row['n_unique_ids']} distinct IDs; collision rate "
            f"{row['collision_rate']:.4f} ({shared} items share an ID), largest "
            f"collision group {row['largest_collision_group']}"
        )
    if any(row["codebook_size_inferred"] for row in rows):
        lines.append("* K inferred as the largest code + 1; give --codebook-size K "
                     "to count codes above it as unused.")
    lines.append(CODES_NOTE)
    return "\n".join(lines)


def looks_like_codes(table):
    """True for a non-negative integer table of few columns (a hint, no more)."""
    arr = _as_numpy(table)
    if arr.dtype.kind not in "iu" or arr.ndim != 2 or arr.shape[1] > 16:
        return False
    return bool(arr.size) and int(arr.min()) >= 0
