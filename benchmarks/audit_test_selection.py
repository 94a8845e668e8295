"""Audit the repository for choices made on a test split (issue 26).

Rule of the project: nothing is chosen on a test split -- not an epoch, a
weight, a default, a data-set size or a docstring's recommendation. Settings
are tuned on validation carved from the training data (or on other data) and
the test split is scored once; a figure read on test is labelled so and never
used to pick anything.

This script finds the places where that rule could be broken and checks that
each one has been *reviewed*: a person read the code or the sentence and
recorded a verdict in ``benchmarks/audit_test_selection_review.json``. It does
not decide by itself whether a hit is a violation (a loop that scores the test
split once per seed is fine; a loop that scores it once per weight and keeps the
best is not, and only reading the code tells them apart); it makes sure no
candidate goes unread, and that a new one appears as unreviewed.

What it scans: every file git tracks (or, outside a git checkout, every file)
with the suffix ``.py``, ``.md``, ``.rst`` or ``.txt``, except result data
(``benchmarks/results/``), the test suite (``tests/``, which publishes nothing
and scores fixtures on purpose) and this script and its review file.

Rules on Python code (``ast``; a "test name" is an identifier, attribute or
string whose snake_case part is ``test``, ``tests``, ``tested``, ``testing``
or ``te``, e.g. ``X_test``, ``test_auc``, ``tested``, ``"test"``):

``P1 test-eval-in-loop``
    an evaluation call (``evaluate_ranking``, ``score``, ``roc_auc_score``,
    ``log_loss``, ``recall_at_k``, ``ndcg_at_k``, ``predict*``, ...) with a test
    name among its arguments, inside a ``for``/``while`` loop or comprehension:
    a test split scored once per setting or per epoch, or once per seed.
``P2 select-over-test``
    ``max``/``min``/``sorted``/``argmax``/``argmin``/``idxmax``/... whose
    arguments mention a test name: something picked by a test figure.
``P3 monitor-on-test``
    a keyword that steers training or selection (``monitor``, ``scoring``,
    ``eval_set``, ``validation_data``, ``valid_data``, ``train_split``,
    ``X_valid``, ``refit``, ...) or an ``EarlyStopping``/``EpochScoring``/
    ``predefined_split``/``PredefinedSplit`` call, fed a test name.
``P4 fit-on-test``
    ``fit``/``partial_fit``/``fit_transform``/``select`` called with a test
    name: training (or selecting) on test pairs.
``P5 protocol-misuse``
    ``HoldoutProtocol(...)`` whose first argument is a test name or whose
    second is not one, and any read of a protocol's private ``_X_test``
    outside ``skcollapse/model_selection/_protocol.py``.
``P6 best-near-test``
    ``best_params_``/``best_score_``/``best_estimator_``/``best_index_``/
    ``best_epoch``/``best_iteration`` read in a function that also uses a test
    name.

Rules on prose (docstrings, comments and string constants of ``.py`` files;
every paragraph of ``.md``/``.rst``/``.txt``), per sentence:

``T1 test-figure-and-choice``
    a sentence naming a test split or a test figure (``test split``, ``test
    Recall``, ``on the test``, ``best epoch on test``, ``X_test``, ...) *and* a
    word of choosing (``chosen``, ``select``, ``pick``, ``tune``, ``default``,
    ``recommend``, ``best``, ``early stopping``, ``monitor``, ...).
``T2 figure-in-library-docstring``
    a metric figure (``Recall@20 0.291``, ``NDCG 0.35``, ``AUC 0.81``, ``1.004x
    of ...``) in a docstring or comment under ``skcollapse/``: every figure a
    library docstring quotes must come from validation or be labelled.
``T3 figure-and-choice-without-source``
    elsewhere, a sentence with a metric figure and a word of choosing that says
    neither "validation" nor "test": a setting justified by a number whose
    split is not named.

``T5 known-test-read-unlabelled``
    a mention of a result or setting this audit found to have been read or
    chosen on a test split (``KNOWN_TEST_READ``: the 200,000-row
    multi-embedding task, the Gowalla 0.166, the Gowalla softmax recipe,
    DirectSpec's ``keep_norm`` default, the Gowalla ItemKNN 0.127) in a
    paragraph that does not label it (``read on test``, ``test curve``,
    ``chosen after``, ``not re-tuned``, ...). Unlike the other rules this one
    is a verdict by itself: a hit is a missing label, to be fixed.

Rules on the committed result files (``benchmarks/results/``), which hold
every choice behind the published tables (:func:`check_results`):

``R1 selection-not-validation-best``
    a file's selected setting is not its candidates' best validation score
    (ties: the first), or a codebook row's chosen setting is not the lowest
    held-out reconstruction error.
``R2 epoch-not-validation-best``
    an epoch kept for a candidate or a seed is not the best epoch of its own
    validation curve.
``R3 default-not-from-validation``
    ``choose_defaults.py`` run again on the result files does not give
    ``defaults.json``, or a registered regularizer's default in the code
    differs from it; the same for ``choose_codebook_defaults.py``,
    ``codebook_defaults.json`` and the collapse-fix defaults of ``RQVAE``.

Tables between ``<!-- BEGIN TABLE -->`` markers are skipped: they are made by
``benchmarks/make_tables.py`` from result files, and that code (and the code
that writes the files) is what is scanned.

A hit is identified by its file, its rule and its text (the sentence, or the
source line of the call), not by its line number, so edits elsewhere in a file
do not disturb the review. A review entry matches a hit when ``path`` and
``rule`` are equal and its ``match`` string is a substring of the hit's text
(whitespace-normalised). Verdicts:

``validation``  the choice is made on validation carved from training data
                (or on other data); the test split is scored after it, once.
``report``      the test split is scored and printed or saved, nothing is
                chosen from it (fixed settings, one score per seed, a table).
``labelled``    a figure or choice that was read on test, labelled as such
                where it appears; nothing is chosen from it now.
``not-selection`` the words match but nothing is chosen on a test split
                (a statistical "test", a unit test, how a split is built...).

Usage::

    python benchmarks/audit_test_selection.py            # summary; exit 1 if unreviewed
    python benchmarks/audit_test_selection.py --list     # every hit with its verdict
    python benchmarks/audit_test_selection.py --unreviewed --json

``tests/test_audit_test_selection.py`` runs it in CI: a new hit fails the
suite until someone reads it and records a verdict (or fixes it).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import io
import json
import math
import os
import re
import subprocess
import sys
import tokenize
from dataclasses import asdict, dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
REVIEW = os.path.join(HERE, "audit_test_selection_review.json")
SELF = {"benchmarks/audit_test_selection.py", "benchmarks/audit_test_selection_review.json"}
SUFFIXES = (".py", ".md", ".rst", ".txt")
EXCLUDED_DIRS = ("benchmarks/results/", "tests/", "docs/_build/", ".venv/")
VERDICTS = ("validation", "report", "labelled", "not-selection")

RULES = {
    "P1": "test-eval-in-loop",
    "P2": "select-over-test",
    "P3": "monitor-on-test",
    "P4": "fit-on-test",
    "P5": "protocol-misuse",
    "P6": "best-near-test",
    "T1": "test-figure-and-choice",
    "T2": "figure-in-library-docstring",
    "T3": "figure-and-choice-without-source",
    "T5": "known-test-read-unlabelled",
    "R1": "selection-not-validation-best",
    "R2": "epoch-not-validation-best",
    "R3": "default-not-from-validation",
}

# ----------------------------------------------------------------- vocabulary
_TEST_PARTS = {"test", "tests", "tested", "testing", "te"}
EVAL_CALLS = {
    "evaluate_ranking", "_ranked", "score", "roc_auc_score", "log_loss",
    "recall_at_k", "ndcg_at_k", "precision_at_k", "map_at_k", "mrr_at_k",
    "predict", "predict_proba", "decision_function", "recommend", "evaluate",
    "accuracy_score", "average_precision_score", "auc", "get_scorer",
    "ranking_scorer", "catalog_coverage", "hit_rate",
}
SELECT_CALLS = {
    "max", "min", "sorted", "argmax", "argmin", "nanargmax", "nanargmin",
    "idxmax", "idxmin", "argsort", "nlargest", "nsmallest", "best",
}
STEER_KEYWORDS = {
    "monitor", "scoring", "eval_set", "validation_data", "valid_data",
    "train_split", "X_valid", "X_val", "y_valid", "y_val", "valid", "val",
    "refit", "early_stopping", "cv", "eval_metric", "validation_split",
}
STEER_CALLS = {"EarlyStopping", "EpochScoring", "predefined_split",
               "PredefinedSplit", "Checkpoint", "LoadInitState"}
FIT_CALLS = {"fit", "partial_fit", "fit_transform", "fit_predict", "select"}
BEST_ATTRS = {"best_params_", "best_score_", "best_estimator_", "best_index_",
              "best_epoch", "best_iteration", "best_epoch_", "best_iteration_"}

_TEST_PHRASE = re.compile(
    r"""(
        \btest[- ](split|set|sets|data|pairs|users|file|files|fold|folds|rows
                   |recall|ndcg|auc|logloss|metric|metrics|score|scores|figure
                   |figures|curve|curves|epoch|epochs|results?|accuracy|side
                   |numbers?|performance)\b
      | \bon\ (the\ )?test\b
      | \b(at|off|from)\ (the\ )?test\b
      | \bbest[- ]test\b
      | \btest\ (Recall|NDCG|AUC|MRR|Hit|Precision)
      | \bX_test\b | \btest\.(txt|csv)\b | \btest_(auc|ndcg|recall|score)\b
      | \bread\ (on|at|off)\b[^.]{0,30}\btest\b
    )""",
    re.IGNORECASE | re.VERBOSE,
)
_CHOICE = re.compile(
    r"""\b(choos\w*|chose\w*|choice\w*|select\w*|pick\w*|tun(e|ed|es|ing)
         |defaults?|recommend\w*|best|optimal|early[- ]stop\w*|monitor\w*
         |justif\w*|preferred|winner|keeps?\ the\ best|grid\w*)\b""",
    re.IGNORECASE | re.VERBOSE,
)
_FIGURE = re.compile(
    r"""(\b(Recall|NDCG|AUC|MRR|HR|Hit|Precision|logloss|recall|ndcg)(@\d+)?
          (\s*(of|=|:|was|is|from|to|->|→))?\s*\d?\.\d{2,}
      | \b\d\.\d{2,}x\b
      | \b\d?\.\d{2,}\s*(->|→)\s*\d?\.\d{2,}
      | [+\-−]?\d+(\.\d+)?\s*%\s*(of\s*)?(the\s*|its\s*|their\s*)?
        (Recall|NDCG|AUC|MRR|accuracy|recall|ndcg)
      | \b(Recall|NDCG|AUC|MRR|recall|ndcg)(@\d+)?\s*(by\s*|of\s*)?[+\-−]?\d+(\.\d+)?\s*%
    )""",
    re.VERBOSE,
)
#: Results and settings the audit found to have been read or chosen on a test
#: split (issue 26). Each stays in the repository only with a label: every
#: paragraph that mentions one must say so (``_LABEL``), or rule T5 fires.
KNOWN_TEST_READ = {
    "the 200,000-row synthetic multi-embedding task, chosen after the "
    "60,000-row and the pilot test results":
        re.compile(r"200,000[- ]rows?|200000 rows|200k rows", re.IGNORECASE),
    "the Gowalla MF figure 0.166, read at the best test epoch":
        re.compile(r"Recall@20 0\.166|0\.166 (after|at|in)\b"),
    "the softmax recipe (1024 shared negatives, temperature 0.1, lr 1e-2, no "
    "weight decay) found on Gowalla's test curve":
        re.compile(r"n_negatives=1024|1,?024 (uniform |shared )?negatives"
                   r"|softmax recipe", re.IGNORECASE),
    "DirectSpec's default keep_norm=True, chosen on a test split":
        re.compile(r"\bkeep_norm=True\b"),
    "the Gowalla full-catalogue ItemKNN figure 0.127, read on test in several "
    "runs": re.compile(r"\b0\.127\b"),
}
_LABEL = re.compile(
    r"read (on|off) (the )?test|test[- ]read|(on|from) (the |its |Gowalla's |a )?"
    r"test[- ](split|set|curve|figures?|data)|test curve|chosen after|best \*?test\*? "
    r"epoch|re-tuned|not (been )?(re-)?tuned|labelled|pre-registered",
    re.IGNORECASE)
_VALID = re.compile(r"\bvalid(ation|ated)?\b|\bvalid_|held-out items|hold-out",
                    re.IGNORECASE)
_TABLE = re.compile(r"(<!-- BEGIN TABLE (?P<name>[\w.+-]+) -->\n)(?P<body>.*?)"
                    r"(<!-- END TABLE (?P=name) -->)", re.DOTALL)
_SENTENCE_END = re.compile(
    r"(?<=[.!?;])\s+(?=[A-Z(`*\"'])"       # end of a sentence
    r"|\n\s*\n"                               # blank line
    # a line that starts a new unit: a numpydoc parameter or section rule, a
    # doctest or code-fence line, a list item, a table row, a heading
    r"|\n(?=[ \t]*(\w[\w, *]*\s:\s|\w[\w, *]*\s:$|-{3,}|={3,}|>>>|\.\.\.\s|```"
    r"|[-*+]\s|\d+\.\s|\||#))",
    re.MULTILINE,
)


def _norm(text):
    return re.sub(r"\s+", " ", text).strip()


def _snake_parts(name):
    name = re.sub(r"^([XYxyR])(te|test)$", r"\1_\2", name)     # Xte, yte
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return {p.lower() for p in re.split(r"[^A-Za-z0-9]+|_", name) if p}


def is_test_name(name):
    return bool(_snake_parts(name) & _TEST_PARTS)


_FIGURE_PARTS = {
    "auc", "ndcg", "recall", "score", "scores", "metric", "metrics", "result",
    "results", "res", "curve", "curves", "loss", "acc", "accuracy", "logloss",
    "precision", "hit", "mrr", "eval", "tested", "perf", "best",
}


def test_kind(name):
    """``"figure"`` for a name of a test figure (``test_auc``, ``tested``),
    ``"data"`` for a test split (``X_test``, ``test``), else ``None``."""
    parts = _snake_parts(name)
    if not parts & _TEST_PARTS:
        return None
    return "figure" if parts & _FIGURE_PARTS else "data"


# ----------------------------------------------------------------- hits
@dataclass
class Hit:
    path: str
    rule: str
    line: int
    text: str
    context: str = ""
    verdict: str | None = None
    why: str | None = None
    review_index: int | None = field(default=None, repr=False)

    @property
    def key(self):
        return (self.path, self.rule, self.text)


_WALKS = {}   # id(node) -> (node, its _walk_values list); cleared per file


def _walk_values(node):
    """``ast.walk`` without the callee of calls (``train_test_split(X)`` names
    no test split; its result is handled by the assignment rules). Cached per
    node: the taint fixpoints walk the same subtrees many times."""
    got = _WALKS.get(id(node))
    if got is None or got[0] is not node:
        got = _WALKS[id(node)] = (node, list(_walk_values_uncached(node)))
    return got[1]


def _walk_values_uncached(node):
    todo = [node]
    while todo:
        sub = todo.pop()
        yield sub
        for name, value in ast.iter_fields(sub):
            if isinstance(sub, ast.Call) and name == "func":
                if isinstance(value, ast.Attribute):
                    todo.append(value.value)   # model.score(...): the receiver
                continue
            if isinstance(value, ast.AST):
                todo.append(value)
            elif isinstance(value, list):
                todo.extend(v for v in value if isinstance(v, ast.AST))


_KEY = re.compile(r"^[A-Za-z_][\w@]*$")


def _mentions_test(node, tainted=frozenset(), kinds=("data", "figure")):
    """Whether an AST subtree names a test split (``"data"``: an identifier such
    as ``X_test``) or a test figure (``"figure"``: ``test_auc``, a ``"test"`` key
    of a result record, ``rec.test_auc``, or a local name in ``tainted``, which
    holds a value computed from a test split)."""
    for sub in _walk_values(node):
        if isinstance(sub, ast.Name):
            kind = "figure" if sub.id in tainted else test_kind(sub.id)
        elif isinstance(sub, ast.arg):
            kind = test_kind(sub.arg)
        elif isinstance(sub, ast.Attribute):
            # ``args.test_curve`` is a command-line flag, not a test split
            flag = isinstance(sub.value, ast.Name) and sub.value.id in ("args", "opts")
            kind = None if flag else test_kind(sub.attr)
        elif (isinstance(sub, ast.Constant) and isinstance(sub.value, str)
              and _KEY.match(sub.value)):
            # a key of a result record (``r["test"]``, ``"test_auc"``); file
            # names such as ``"test.txt"`` are the split itself
            kind = test_kind(sub.value) and "figure"
        elif (isinstance(sub, ast.Constant) and isinstance(sub.value, str)
              and len(sub.value) < 40):
            kind = test_kind(sub.value) and "data"
        else:
            kind = None
        if kind in kinds:
            return True
    return False


def _mentions_figure(node, tainted=frozenset()):
    return _mentions_test(node, tainted, kinds=("figure",))


def _call_name(call):
    f = call.func
    if isinstance(f, ast.Name):
        return f.id
    if isinstance(f, ast.Attribute):
        return f.attr
    return None


_COLLECT = {"append", "extend", "update", "add", "insert", "setdefault", "put"}


def _base_name(expr):
    """``rows`` of ``rows``, ``rows[k]``, ``rows.setdefault(k, [])``, ``a.b``."""
    while True:
        if isinstance(expr, ast.Name):
            return expr.id
        if isinstance(expr, (ast.Attribute, ast.Subscript, ast.Starred)):
            expr = expr.value
        elif isinstance(expr, ast.Call):
            expr = expr.func
        else:
            return None


def _assigned(target):
    if isinstance(target, (ast.Tuple, ast.List)):
        return [n for elt in target.elts for n in _assigned(elt)]
    name = _base_name(target)
    return [name] if name else []


def _local_calls(node, scoring):
    return any(isinstance(sub, ast.Call) and _call_name(sub) in scoring
               for sub in _walk_values(node))


def _walk_scope(scope):
    """``ast.walk`` of a module or function, without nested functions/classes
    (cached per scope, like :func:`_walk_values`)."""
    key = ("scope", id(scope))
    got = _WALKS.get(key)
    if got is None or got[0] is not scope:
        got = _WALKS[key] = (scope, list(_walk_scope_uncached(scope)))
    return got[1]


def _walk_scope_uncached(scope):
    todo = list(ast.iter_child_nodes(scope))
    while todo:
        node = todo.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
                                 ast.Lambda)):
            todo.extend(ast.iter_child_nodes(node))


def _evaluates_test(node, tainted=frozenset()):
    """Whether ``node`` holds an evaluation call on a test split or figure."""
    return any(
        isinstance(sub, ast.Call) and _call_name(sub) in EVAL_CALLS
        and any(_mentions_test(a, tainted) for a in [*sub.args, *(k.value for k in sub.keywords)])
        for sub in _walk_values(node))


def _taint(scope, scoring=frozenset()):
    """Local names of ``scope`` that hold test figures: assigned (or looped
    over, or collected with ``append``/``update``/...) from an expression that
    evaluates on a test split, names a test figure or a tainted name, or calls
    a function of the module that scores a test split (``scoring``). Iterated
    to a fixpoint."""
    key = ("taint", id(scope), frozenset(scoring))
    got = _WALKS.get(key)
    if got is not None and got[0] is scope:
        return got[1]
    tainted = _taint_uncached(scope, scoring)
    _WALKS[key] = (scope, tainted)
    return tainted


def _taint_uncached(scope, scoring):
    tainted = set()

    def dirty(expr):
        return (_mentions_figure(expr, tainted) or _local_calls(expr, scoring)
                or _evaluates_test(expr, tainted))

    changed = True
    while changed:
        changed = False
        new = set()
        for node in _walk_scope(scope):
            pairs = []
            if isinstance(node, ast.Assign):
                pairs = [(t, node.value) for t in node.targets]
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign)) and node.value:
                pairs = [(node.target, node.value)]
            elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
                pairs = [(node.target, node.iter)]
            elif isinstance(node, ast.NamedExpr):
                pairs = [(node.target, node.value)]
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr in _COLLECT
                  and any(dirty(a) for a in [*node.args, *(k.value for k in node.keywords)])):
                name = _base_name(node.func.value)
                if name:
                    new.add(name)
            for target, value in pairs:
                if (isinstance(target, (ast.Tuple, ast.List))
                        and isinstance(value, (ast.Tuple, ast.List))
                        and len(target.elts) == len(value.elts)):
                    pairs += list(zip(target.elts, value.elts))
                    continue
                if isinstance(target, (ast.Tuple, ast.List)):
                    # a, b = f(...): only the parts that are themselves test names
                    if dirty(value):
                        new.update(n for n in _assigned(target)
                                   if test_kind(n) == "figure")
                    continue
                if dirty(value):
                    new.update(_assigned(target))
        if not new <= tainted:
            tainted |= new
            changed = True
    return tainted


def _scoring_functions(tree):
    """Names of the module's functions that score a test split: they make an
    evaluation call with a test name (or a name tainted by one), or return a
    value computed from one. Iterated so that callers of callers count."""
    funcs = [n for n in ast.walk(tree)
             if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    bodies = {id(fn): list(ast.walk(fn)) for fn in funcs}
    scoring = set()
    changed = True
    while changed:
        changed = False
        for fn in funcs:
            if fn.name in scoring:
                continue
            tainted = _taint(fn, frozenset(scoring))
            for sub in bodies[id(fn)]:
                evaluates = (isinstance(sub, ast.Call) and _call_name(sub) in EVAL_CALLS
                             and any(_mentions_test(a, tainted) for a in
                                     [*sub.args, *(k.value for k in sub.keywords)]))
                returns = (isinstance(sub, ast.Return) and sub.value is not None
                           and (_mentions_figure(sub.value, tainted)
                                or _evaluates_test(sub.value, tainted)
                                or _local_calls(sub.value, scoring)))
                if evaluates or returns:
                    scoring.add(fn.name)
                    changed = True
                    break
    return scoring


class _PyVisitor(ast.NodeVisitor):
    def __init__(self, path, source, tree=None):
        self.path = path
        self.lines = source.splitlines()
        self.hits = []
        self.loops = []        # stack of loop header texts
        self.functions = []    # stack of function nodes
        tree = tree if tree is not None else ast.parse(source)
        self.module = tree
        self.scoring = frozenset(_scoring_functions(tree))
        self.tainted = [_taint(tree, self.scoring)]   # module level

    def _src(self, node):
        line = self.lines[node.lineno - 1] if 0 < node.lineno <= len(self.lines) else ""
        return _norm(line)

    def _hit(self, rule, node, context=""):
        self.hits.append(Hit(self.path, rule, node.lineno, self._src(node), context))

    # scopes
    def visit_FunctionDef(self, node):
        self.functions.append(node)
        self.tainted.append(_taint(node, self.scoring) | self.tainted[-1])
        saved, self.loops = self.loops, []
        self.generic_visit(node)
        self.loops = saved
        self.tainted.pop()
        self.functions.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def _loop(self, node, header):
        self.loops.append(header)
        self.generic_visit(node)
        self.loops.pop()

    def visit_For(self, node):
        self._loop(node, "for " + _norm(ast.unparse(node.target)) + " in "
                   + _norm(ast.unparse(node.iter))[:80])

    visit_AsyncFor = visit_For

    def visit_While(self, node):
        self._loop(node, "while " + _norm(ast.unparse(node.test))[:80])

    def _comp(self, node):
        gens = "; ".join("for " + _norm(ast.unparse(g.target)) + " in "
                         + _norm(ast.unparse(g.iter))[:60] for g in node.generators)
        self._loop(node, gens)

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _comp

    def visit_Attribute(self, node):
        if node.attr == "_X_test" and self.path != "skcollapse/model_selection/_protocol.py":
            self._hit("P5", node, "reads a protocol's private test pairs")
        if node.attr in BEST_ATTRS:
            scope = self.functions[-1] if self.functions else self.module
            if _mentions_test(scope, self.tainted[-1]):
                where = (f"in {scope.name}()" if self.functions else "at module level")
                self._hit("P6", node, where)
        self.generic_visit(node)

    def visit_Call(self, node):
        name = _call_name(node)
        tainted = self.tainted[-1]
        args = list(node.args) + [k.value for k in node.keywords]
        test_args = any(_mentions_test(a) for a in args)
        dirty_args = any(_mentions_test(a, tainted) for a in args)
        if self.loops and name in EVAL_CALLS and dirty_args:
            self._hit("P1", node, "loop: " + " / ".join(self.loops))
        elif self.loops and name in self.scoring:
            self._hit("P1", node, f"loop: {' / '.join(self.loops)}; "
                      f"{name}() scores a test split")
        if name in SELECT_CALLS and any(_mentions_figure(a, tainted) for a in args):
            self._hit("P2", node)
        if name in STEER_CALLS and dirty_args:
            self._hit("P3", node)
        for kw in node.keywords:
            if kw.arg in STEER_KEYWORDS and _mentions_test(kw.value, tainted):
                self._hit("P3", node, f"{kw.arg}=")
        if name in FIT_CALLS and test_args:
            self._hit("P4", node)
        if name == "HoldoutProtocol":
            pos = list(node.args)
            kws = {k.arg: k.value for k in node.keywords}
            first = pos[0] if pos else kws.get("X_train")
            second = pos[1] if len(pos) > 1 else kws.get("X_test")
            if (first is not None and _mentions_test(first)) or (
                    second is not None and not _mentions_test(second)):
                self._hit("P5", node, "HoldoutProtocol(train?, test?)")
        self.generic_visit(node)


# ----------------------------------------------------------------- prose
def _split(text, separator):
    """Yield ``(offset, piece)`` of ``text`` cut at each match of ``separator``."""
    start = 0
    for m in separator.finditer(text):
        yield start, text[start:m.start()]
        start = m.end()
    yield start, text[start:]


_PARAGRAPH = re.compile(r"\n[ \t]*\n")


def _sentences(text):
    """Yield ``(offset, sentence)`` of a block of prose."""
    return _split(text, _SENTENCE_END)


def _paragraphs(text):
    """``(offset, paragraph)`` of a block of prose (blank-line separated)."""
    return _split(text, _PARAGRAPH)


def _prose_hits(path, text, first_line, library):
    """T1, T2 (library docstrings), T3 and T5 over a block of prose."""
    hits = []
    labelled = []      # (start, end, has a label) of each paragraph
    for start, para in _paragraphs(text):
        labelled.append((start, start + len(para), bool(_LABEL.search(_norm(para)))))
    for offset, sentence in _sentences(text):
        line = first_line + text.count("\n", 0, offset)
        s = _norm(sentence)
        if not s:
            continue
        has_label = any(a <= offset < b and lab for a, b, lab in labelled)
        for what, pattern in KNOWN_TEST_READ.items():
            if pattern.search(s) and not has_label:
                hits.append(Hit(path, "T5", line, s, what))
        if _TEST_PHRASE.search(s) and _CHOICE.search(s):
            hits.append(Hit(path, "T1", line, s))
        if library and _FIGURE.search(s):
            hits.append(Hit(path, "T2", line, s))
        elif (_FIGURE.search(s) and _CHOICE.search(s) and not _VALID.search(s)
              and not _TEST_PHRASE.search(s)):
            hits.append(Hit(path, "T3", line, s))
    return hits


def _python_prose(path, source, library):
    """Docstrings, comments and longer string constants of a Python file."""
    hits = []
    tree = ast.parse(source)
    docstring_nodes = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                             ast.AsyncFunctionDef)):
            body = getattr(node, "body", [])
            if (body and isinstance(body[0], ast.Expr)
                    and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                docstring_nodes.add(id(body[0].value))
                hits += _prose_hits(path, body[0].value.value, body[0].value.lineno,
                                    library)
    for node in ast.walk(tree):
        if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                and id(node) not in docstring_nodes and len(node.value.split()) >= 3):
            hits += [h for h in _prose_hits(path, node.value, node.lineno, False)
                     if h.rule == "T1"]
    # comments, consecutive ones joined into one block
    block, block_line = [], None
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            if not block:
                block_line = tok.start[0]
            block.append(tok.string.lstrip("#").strip())
        elif tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                              tokenize.DEDENT) and block:
            hits += _prose_hits(path, "\n".join(block), block_line, library)
            block = []
    if block:
        hits += _prose_hits(path, "\n".join(block), block_line, library)
    return hits


def scan_file(path, text):
    _WALKS.clear()
    library = path.startswith("skcollapse/")
    if path.endswith(".py"):
        try:
            tree = ast.parse(text)
        except SyntaxError as exc:
            return [Hit(path, "P0", exc.lineno or 0, f"cannot parse: {exc.msg}")]
        visitor = _PyVisitor(path, text, tree)
        visitor.visit(tree)
        return visitor.hits + _python_prose(path, text, library)
    # tables generated by make_tables.py from result files: their provenance
    # is the code that writes the files and the tables (scanned); blanked
    # here, line numbers kept
    text = _TABLE.sub(lambda m: m.group(1) + re.sub(r"[^\n]", "", m.group("body"))
                      + m.group(4), text)
    prose, blocks = _split_code_blocks(text)
    hits = _prose_hits(path, prose, 1, False)
    for first_line, code in blocks:
        try:
            tree = ast.parse(code)
        except SyntaxError:
            continue          # a shell session, a fragment: read as prose above
        visitor = _PyVisitor(path, code, tree)
        visitor.visit(tree)
        for h in visitor.hits:
            h.line += first_line - 1
            hits.append(h)
    return hits


_FENCE = re.compile(r"^([ \t]*)```\s*(\w*)[^\n]*\n(.*?)^\1```[ \t]*$",
                    re.MULTILINE | re.DOTALL)
_RST_CODE = re.compile(
    r"^([ \t]*)\.\. (?:code-block|code|sourcecode):: *(python|py|pycon)?[ \t]*\n"
    r"(?:\1[ \t]+:[^\n]*\n)*\n?((?:\1[ \t]+[^\n]*\n|[ \t]*\n)+)", re.MULTILINE)


def _split_code_blocks(text):
    """Markdown fences and reST code blocks: each line of them becomes its own
    "sentence" of the prose (blank lines around it), and the Python ones are
    returned as ``(first_line, code)`` for the code rules."""
    blocks = []
    out = []
    pos = 0
    spans = []
    for m in _FENCE.finditer(text):
        spans.append((m.start(3), m.end(3), m.group(2).lower() in ("python", "py", "")))
    for m in _RST_CODE.finditer(text):
        spans.append((m.start(3), m.end(3), bool(m.group(2))))
    for start, end, is_python in sorted(spans):
        if start < pos:
            continue
        out.append(text[pos:start])
        body = text[start:end]
        # each line its own unit (a leading "|" starts one), line numbers kept
        out.append("\n".join("|" + line for line in body.split("\n")))
        pos = end
        if is_python:
            import textwrap

            blocks.append((text.count("\n", 0, start) + 1, textwrap.dedent(body)))
    out.append(text[pos:])
    prose = "".join(out)
    return prose, blocks


def tracked_files(root, include_tests=False):
    try:
        out = subprocess.run(["git", "ls-files"], cwd=root, check=True,
                             capture_output=True, text=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        out = [os.path.relpath(os.path.join(d, f), root)
               for d, _, fs in os.walk(root) for f in fs]
    files = []
    for rel in sorted(out):
        rel = rel.replace(os.sep, "/")
        excluded = tuple(d for d in EXCLUDED_DIRS
                         if not (include_tests and d == "tests/"))
        if (rel.endswith(SUFFIXES) and rel not in SELF
                and not rel.startswith(excluded)
                and os.path.isfile(os.path.join(root, rel))):
            files.append(rel)
    return files


def scan(root=ROOT, include_tests=False):
    hits = []
    files = tracked_files(root, include_tests)
    for rel in files:
        with open(os.path.join(root, rel), encoding="utf-8") as fh:
            hits += scan_file(rel, fh.read())
    seen, unique = set(), []
    for h in hits:           # one hit per (path, rule, text)
        if h.key not in seen:
            seen.add(h.key)
            unique.append(h)
    return files, unique


# ----------------------------------------------------------------- review
def load_review(path=REVIEW):
    with open(path, encoding="utf-8") as fh:
        entries = json.load(fh)["reviews"]
    for e in entries:
        if e["verdict"] not in VERDICTS:
            raise ValueError(f"unknown verdict {e['verdict']!r} in {e}")
        if e["rule"] not in RULES:
            raise ValueError(f"unknown rule {e['rule']!r} in {e}")
    return entries


def apply_review(hits, entries):
    used = [0] * len(entries)
    for h in hits:
        for j, e in enumerate(entries):
            if e["path"] == h.path and e["rule"] == h.rule and _norm(e["match"]) in h.text:
                h.verdict, h.why, h.review_index = e["verdict"], e["why"], j
                used[j] += 1
                break
    stale = [e for e, n in zip(entries, used) if n == 0]
    return stale


# ----------------------------------------------------------------- results
def _first_best(values, lower=False):
    """Index of the first best finite value (ties: the first), or None."""
    best = None
    for j, v in enumerate(values):
        if v is None or not math.isfinite(v):
            continue
        if best is None or (v < values[best] if lower else v > values[best]):
            best = j
    return best


def _init_defaults(cls_node):
    """``{param: default}`` of the literal defaults of a class's ``__init__``
    (``ast``), or None when it has no ``__init__``."""
    init = next((b for b in cls_node.body if isinstance(b, ast.FunctionDef)
                 and b.name == "__init__"), None)
    if init is None:
        return None
    a = init.args
    pos = a.args[len(a.args) - len(a.defaults):]
    params = {}
    for arg, default in [*zip(pos, a.defaults), *zip(a.kwonlyargs, a.kw_defaults)]:
        if default is not None:
            try:
                params[arg.arg] = ast.literal_eval(default)
            except ValueError:
                pass
    return params


def _registered_defaults(root):
    """``{name: {param: default}}`` of the registered regularizers, read from
    the source (no import: the audit needs no torch)."""
    out = {}
    folder = os.path.join(root, "skcollapse", "regularizers")
    for fname in sorted(os.listdir(folder)):
        if not fname.endswith(".py"):
            continue
        with open(os.path.join(folder, fname), encoding="utf-8") as fh:
            tree = ast.parse(fh.read())
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef):
                continue
            names = [d.args[0].value for d in node.decorator_list
                     if isinstance(d, ast.Call) and _call_name(d) == "register_regularizer"
                     and d.args and isinstance(d.args[0], ast.Constant)]
            params = _init_defaults(node)
            if not names or params is None:
                continue
            for name in names:
                out[name] = params
    return out


def _class_defaults(path, class_name):
    """``{param: default}`` of ``class_name``'s ``__init__`` in ``path``."""
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as fh:
        tree = ast.parse(fh.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            return _init_defaults(node) or {}
    return {}


#: Result files written by the default choosers, checked by R3 (not by R1/R2).
_DEFAULTS_FILES = ("defaults.json", "codebook_defaults.json")


#: What :func:`check_results` verified in its last call (counts).
CHECKED = {}


def check_results(root=ROOT):
    """Rules on the committed result files (``benchmarks/results/``):

    ``R1 selection-not-validation-best``: a file's ``selection`` is not the
    candidate with the best validation score (HoldoutProtocol files: the first
    highest ``valid_score``; codebooks: the first lowest held-out
    reconstruction error).
    ``R2 epoch-not-validation-best``: an epoch kept for a candidate or a seed
    is not the first best epoch of its own validation curve (protocol files,
    the pre-registered scaling files).
    ``R3 default-not-from-validation``: a regularizer's default in the code
    differs from what ``choose_defaults.py`` picks from the validation figures
    of the result files, or ``defaults.json`` differs from that pick; the same
    for ``RQVAE``'s collapse-fix defaults, ``choose_codebook_defaults.py`` and
    ``codebook_defaults.json``.
    """
    hits = []
    results = os.path.join(root, "benchmarks", "results")
    stats = CHECKED
    stats.clear()
    stats.update(files=0, selections=0, epochs=0, defaults=0)

    def hit(rule, path, text, context=""):
        hits.append(Hit(os.path.relpath(path, root).replace(os.sep, "/"), rule, 0,
                        text, context))

    for dirpath, _, names in sorted(os.walk(results)):
        for fname in sorted(names):
            if not fname.endswith(".json") or fname in _DEFAULTS_FILES:
                continue
            path = os.path.join(dirpath, fname)
            with open(path, encoding="utf-8") as fh:
                rec = json.load(fh)
            stats["files"] += 1
            cands, sel = rec.get("candidates"), rec.get("selection")
            if isinstance(cands, list) and isinstance(sel, dict) and "params" in sel:
                j = _first_best([c.get("valid_score") for c in cands])
                stats["selections"] += 1
                if j is None or cands[j]["params"] != sel["params"]:
                    hit("R1", path, f"selection {sel['params']} is not the validation "
                        f"best {cands[j]['params'] if j is not None else None}")
                for c in cands:
                    curve = c.get("valid_curve")
                    stats["epochs"] += bool(curve)
                    if curve and c.get("epochs") != _first_best(curve) + 1:
                        hit("R2", path, f"candidate {c['params']}: epoch {c.get('epochs')}"
                            f" is not the validation best {_first_best(curve) + 1}")
            for row, r in (rec.get("rows") or {}).items():
                if isinstance(r, dict) and r.get("candidates") and "chosen" in r:
                    errs = [c["valid"]["relative_reconstruction_error"]
                            for c in r["candidates"]]
                    j = _first_best(errs, lower=True)
                    stats["selections"] += 1
                    if j is None or r["candidates"][j]["params"] != r["chosen"]:
                        hit("R1", path, f"row {row}: chosen {r['chosen']} is not the "
                            "lowest held-out reconstruction error")
            for seed in rec.get("seeds") or []:
                if not isinstance(seed, dict):
                    continue
                curve = seed.get("valid_curve")
                if not curve:
                    continue
                best = _first_best(curve) + 1
                stats["epochs"] += 1
                kept = seed.get("epochs", seed.get("selected_epoch"))
                if kept != best:
                    hit("R2", path, f"seed {seed.get('seed')}: epoch {kept} is not "
                        f"the validation best {best}")

    defaults_path = os.path.join(results, "defaults.json")
    if os.path.exists(defaults_path):
        with open(defaults_path, encoding="utf-8") as fh:
            saved = json.load(fh)
        choose_defaults = _import_here("choose_defaults")
        datasets = sorted({c.split("/")[0] for c in saved["tuning_cells"]})
        base, regs, cells = choose_defaults.collect(datasets)
        again = choose_defaults.choose(base, regs, cells)
        code = _registered_defaults(root)
        for name, rec in saved["regularizers"].items():
            if again.get(name, {}).get("chosen") != rec["chosen"]:
                hit("R3", defaults_path, f"{name}: defaults.json says {rec['chosen']}, "
                    f"the validation figures give {again.get(name, {}).get('chosen')}")
            for param, value in rec["chosen"].items():
                stats["defaults"] += 1
                if code.get(name, {}).get(param) != value:
                    hit("R3", defaults_path, f"{name}: the code's default {param}="
                        f"{code.get(name, {}).get(param)!r}, the validation procedure's "
                        f"{value!r}")
    _check_codebook_defaults(root, results, hit, stats)
    return hits


def _import_here(name):
    """Import the benchmark script ``name`` that sits beside this one."""
    sys.path.insert(0, HERE)
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(HERE)


def _check_codebook_defaults(root, results, hit, stats):
    """R3 for RQVAE: ``codebook_defaults.json`` is what
    ``choose_codebook_defaults.py`` makes of the result files, and the code's
    defaults of the fixes are the file's."""
    path = os.path.join(results, "codebook_defaults.json")
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as fh:
        saved = json.load(fh)
    chooser = _import_here("choose_codebook_defaults")
    try:
        again = chooser.choose(*chooser.collect(results))
    except ValueError as exc:
        hit("R3", path, f"the result files give no choice: {exc}")
        return
    if again["defaults"] != saved["defaults"]:
        hit("R3", path, f"RQVAE: codebook_defaults.json says {saved['defaults']}, "
            f"the held-out figures give {again['defaults']}")
    code = _class_defaults(
        os.path.join(root, "skcollapse", "quantization", "_rqvae.py"), "RQVAE")
    for param, value in saved["defaults"].items():
        stats["defaults"] += 1
        if code.get(param) != value:
            hit("R3", path, f"RQVAE: the code's default {param}={code.get(param)!r}, "
                f"the validation procedure's {value!r}")


def audit(root=ROOT, review=REVIEW, include_tests=False):
    files, hits = scan(root, include_tests)
    hits += check_results(root)
    entries = load_review(review)
    stale = apply_review(hits, entries)
    return files, hits, stale


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="print every hit")
    parser.add_argument("--unreviewed", action="store_true",
                        help="print only the hits without a verdict")
    parser.add_argument("--json", action="store_true", help="hits as JSON lines")
    parser.add_argument("--include-tests", action="store_true",
                        help="scan tests/ too (a one-off look: the suite is not "
                        "reviewed, and review entries of other files may then "
                        "look stale only if tests/ changes their hits)")
    args = parser.parse_args(argv)
    files, hits, stale = audit(include_tests=args.include_tests)
    unreviewed = [h for h in hits if h.verdict is None]
    shown = unreviewed if args.unreviewed else (hits if args.list else [])
    for h in shown:
        if args.json:
            print(json.dumps({k: v for k, v in asdict(h).items() if k != "review_index"}))
        else:
            print(f"{h.path}:{h.line}: {h.rule} {RULES.get(h.rule, '?')} "
                  f"[{h.verdict or 'UNREVIEWED'}]\n    {h.text[:300]}"
                  + (f"\n    ({h.context})" if h.context else "")
                  + (f"\n    -> {h.why}" if h.why and args.list else ""))
    by_rule, by_verdict = {}, {}
    for h in hits:
        by_rule[h.rule] = by_rule.get(h.rule, 0) + 1
        v = h.verdict or "UNREVIEWED"
        by_verdict[v] = by_verdict.get(v, 0) + 1
    print(f"\nscanned {len(files)} files; result files {CHECKED.get('files', 0)}: "
          f"{CHECKED.get('selections', 0)} selections, {CHECKED.get('epochs', 0)} "
          f"kept epochs and {CHECKED.get('defaults', 0)} defaults checked against "
          f"validation; {len(hits)} hits")
    print("by rule:    " + ", ".join(f"{r} {RULES.get(r, '?')} {n}"
                                     for r, n in sorted(by_rule.items())))
    print("by verdict: " + ", ".join(f"{v} {n}" for v, n in sorted(by_verdict.items())))
    if stale:
        print(f"{len(stale)} review entries match no hit (stale: remove or update):")
        for e in stale:
            print(f"    {e['path']} {e['rule']}: {e['match'][:100]!r}")
    if unreviewed:
        print(f"{len(unreviewed)} hits have no verdict: read them, then fix or record "
              f"a verdict in {os.path.relpath(REVIEW, ROOT)}")
    return 1 if unreviewed or stale else 0


if __name__ == "__main__":
    sys.exit(main())
