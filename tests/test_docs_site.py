"""The documentation site: its API index is complete, its checks work, and the
built site renders in a real browser.

Three layers:

- Always: the generated API index lists every public name, and the two
  checks the build runs on its output (missing API pages, broken links) find
  what they must on small hand-made sites.
- When the site is built (``docs/_build/html``, by the README's command):
  those checks on the real site, plus a page per gallery example with its
  figures. CI builds the site before the tests and sets
  ``SKCOLLAPSE_REQUIRE_DOCS=1``, so there a missing site fails instead of
  skipping.
- When the system has Chromium and its driver (Debian: ``chromium``,
  ``chromium-driver``) and selenium is installed (the ``docs`` extra): the
  home page, an API page and a gallery page are opened in headless Chromium,
  served over a loopback HTTP server; they must render, their images must
  load, and every internal link on them must answer 200.
"""

from __future__ import annotations

import functools
import http.server
import importlib
import json
import os
import re
import shutil
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "docs" / "_build" / "html"
sys.path.insert(0, str(ROOT / "docs" / "_ext"))

import docstring_rst
import site_checks

BUILD_COMMAND = "python -m sphinx -W --keep-going -b html docs docs/_build/html"


# -- always: the API index and the checkers ------------------------------------


def _public_subpackages_on_disk():
    """Public sub-packages found by listing the package folder (not by import)."""
    found = set()
    for path in (ROOT / "skcollapse").iterdir():
        name = path.stem if path.suffix == ".py" else path.name
        if name.startswith(("_", ".")) or name == "conftest":
            continue
        if path.suffix == ".py" or (path / "__init__.py").is_file():
            found.add(f"skcollapse.{name}")
    return found


def test_api_index_lists_every_public_name(tmp_path):
    text = site_checks.write_api_index(tmp_path)
    pages = sorted(p.name for p in tmp_path.glob("*.rst"))
    order = ["index"] + [m.split(".", 1)[1] for m in site_checks.public_api()]
    assert text == "\n".join(
        (tmp_path / f"{name}.rst").read_text(encoding="utf-8") for name in order)
    # the index is a toctree of one page per sub-package (a grouped sidebar)
    index = (tmp_path / "index.rst").read_text(encoding="utf-8")
    assert ".. toctree::" in index and "autosummary" not in index
    assert {p[:-4] for p in pages} == {"index"} | {
        m.split(".", 1)[1] for m in _public_subpackages_on_disk()
        if getattr(importlib.import_module(m), "__all__", None)}

    expected = {}
    for modname in _public_subpackages_on_disk():
        module = importlib.import_module(modname)
        for name in getattr(module, "__all__", ()):
            expected.setdefault(modname, set()).add(name)
    assert expected, "skcollapse has no public names?"

    listed = {}
    current = None
    for line in text.splitlines():
        if line.startswith(".. currentmodule:: "):
            current = line.split()[-1]
        elif re.fullmatch(r"   [A-Za-z_]\w*", line) and current:
            listed.setdefault(current, set()).add(line.strip())
    assert listed == expected
    for modname in expected:
        assert f".. automodule:: {modname}" in text


def test_api_index_is_rewritten_only_when_it_changes(tmp_path):
    site_checks.write_api_index(tmp_path)
    index = tmp_path / "index.rst"
    os.utime(index, (1, 1))
    site_checks.write_api_index(tmp_path)
    assert index.stat().st_mtime == 1  # unchanged API: Sphinx rebuilds nothing


def test_re_exported_names_point_to_their_home():
    aliases = site_checks.api_aliases()
    api = site_checks.public_api()
    for alias, home in aliases.items():
        alias_mod, name = alias.rsplit(".", 1)
        home_mod, home_name = home.rsplit(".", 1)
        assert name == home_name and alias_mod != home_mod
        assert name in api[home_mod]
        alias_obj = getattr(importlib.import_module(alias_mod), name)
        assert alias_obj is getattr(importlib.import_module(home_mod), name)
    # and a name defined in its own sub-package is never an alias
    for modname, names in api.items():
        module = importlib.import_module(modname)
        for name in names:
            origin = getattr(getattr(module, name), "__module__", "") or ""
            if origin.startswith(modname + ".") or origin == modname:
                assert f"{modname}.{name}" not in aliases


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_broken_links_finds_missing_files_and_anchors(tmp_path):
    _write(
        tmp_path / "index.html",
        '<a href="sub/page.html#there">ok</a>'
        '<a href="sub/page.html#nowhere">bad anchor</a>'
        '<a href="missing.html">bad file</a>'
        '<a href="#top">ok, same page</a><h1 id="top">x</h1>'
        '<img src="img/a.png"><img src="img/missing.png">'
        '<a href="https://example.invalid/x">external, not followed</a>'
        '<a href="sub/">folder with index</a>'
        '<a href="../outside.html">outside</a>',
    )
    _write(tmp_path / "sub" / "page.html", '<p id="there">x</p>')
    _write(tmp_path / "sub" / "index.html", "<p>x</p>")
    _write(tmp_path / "img" / "a.png", "png")
    broken = site_checks.broken_links(tmp_path)
    assert broken == sorted(
        [
            "index.html: href '../outside.html' (leaves the site)",
            "index.html: href 'missing.html' (no such file)",
            "index.html: href 'sub/page.html#nowhere' (no such anchor)",
            "index.html: src 'img/missing.png' (no such file)",
        ]
    )
    (tmp_path / "img" / "missing.png").write_text("png")
    (tmp_path / "missing.html").write_text("<p>x</p>")
    assert len(site_checks.broken_links(tmp_path)) == 2


def test_missing_api_pages_names_each_absent_page(tmp_path):
    api = site_checks.public_api()
    names = [f"{mod}.{name}" for mod, names in api.items() for name in names]
    assert site_checks.missing_api_pages(tmp_path) == names
    folder = tmp_path / "api" / "generated"
    for qualname in names[1:]:
        _write(folder / f"{qualname}.html", f"<h1>{qualname.rsplit('.', 1)[1]}</h1>")
    assert site_checks.missing_api_pages(tmp_path) == names[:1]
    # a page that does not mention its name does not count
    _write(folder / f"{names[0]}.html", "<h1>something else</h1>")
    assert site_checks.missing_api_pages(tmp_path) == names[:1]


def test_docstring_rst_escapes_fitted_attributes_and_closes_lists():
    lines = [
        "x : ndarray of shape (n_users_,)",
        "    Rows of ``item_ids_``; see n_items_.",
        "data : Bunch",
        "    n_users, n_items : int",
        "    DESCR : str",
        "(data, target) : tuple",
        "Example::",
        "",
        "    model_ = 1",
        ">>> model.n_items_",
    ]
    assert docstring_rst.fix_lines(lines) == [
        "x : ndarray of shape (n_users\\_,)",
        "    Rows of ``item_ids_``; see n_items\\_.",
        "data : Bunch",
        "    n_users, n_items : int",
        "        ..",
        "    DESCR : str",
        "        ..",
        "",
        "(data, target) : tuple",
        "Example::",
        "",
        "    model_ = 1",
        ">>> model.n_items_",
    ]


# -- when built: the real site --------------------------------------------------


def _require_site():
    if (SITE / "index.html").is_file():
        return
    if os.environ.get("SKCOLLAPSE_REQUIRE_DOCS") == "1":
        pytest.fail(f"SKCOLLAPSE_REQUIRE_DOCS=1 but the site is not built ({SITE})")
    pytest.skip(f"the site is not built; build it with: {BUILD_COMMAND}")


def test_built_site_has_a_page_for_every_public_name():
    _require_site()
    assert site_checks.missing_api_pages(SITE) == []


def test_built_site_has_no_broken_internal_links():
    _require_site()
    assert site_checks.broken_links(SITE) == []


def _gallery_pages():
    return sorted((SITE / "auto_examples").glob("plot_*.html"))


def test_built_site_renders_math_offline():
    """Formulas showed as raw LaTeX offline (MathJax came from a CDN): the site
    serves MathJax itself, and no page loads a script from the network."""
    _require_site()
    assert (SITE / "_static" / "mathjax" / "tex-chtml.js").is_file()
    page = (SITE / "user_guide" / "measuring.html").read_text(encoding="utf-8")
    assert "\\(" in page  # the formulas MathJax typesets in the browser
    assert re.search(r'<script[^>]+src="[./]*_static/mathjax/tex-chtml\.js', page)
    remote = []
    for path in SITE.rglob("*.html"):
        text = path.read_text(encoding="utf-8", errors="replace")
        remote += [(path.name, src) for src in re.findall(
            r'<script[^>]+src="((?:https?:)?//[^"]+)"', text)]
    assert remote == [], f"pages load scripts from the network: {remote[:5]}"


def test_built_gallery_has_every_example_with_its_figures():
    _require_site()
    examples = sorted(p.stem for p in (ROOT / "examples").glob("plot_*.py"))
    assert [p.stem for p in _gallery_pages()] == examples
    for page in _gallery_pages():
        html = page.read_text(encoding="utf-8")
        images = re.findall(r'<img[^>]+src="([^"]*sphx_glr_[^"]+\.png)"', html)
        assert images, f"{page.name} shows no figure"
        for src in images:
            assert (page.parent / src).is_file(), f"{page.name}: {src}"


def test_built_gallery_examples_ran_under_a_minute_each():
    # "under a minute on two CPU cores": under 120 CPU seconds of the build
    # process (all threads) per example, recorded by site_checks during the
    # build; wall-clock time depends on what else the machine runs
    _require_site()
    path = ROOT / "docs" / "auto_examples" / site_checks.CPU_TIMES
    assert path.is_file(), f"{path} is missing: the gallery was not executed"
    cpu = json.loads(path.read_text(encoding="utf-8"))
    assert set(cpu) >= {p.stem for p in _gallery_pages()}
    slow = {name: t for name, t in cpu.items() if t >= 120}
    assert slow == {}, f"examples over two CPU-minutes: {slow}"


# -- when a browser is there: the site as a reader sees it -----------------------


def _browser_or_skip():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[docs]')")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        pytest.skip(
            "no system Chromium with its driver (Debian: apt-get install "
            "chromium chromium-driver); the browser check needs both"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
    ):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=options)


@pytest.fixture(scope="module")
def served_site():
    _require_site()
    handler = functools.partial(
        _QuietHandler, directory=str(SITE)
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


_CHECK_PAGE = """
const done = arguments[arguments.length - 1];
// formulas are typeset by MathJax after the page loads: wait for it
const typeset = (window.MathJax && MathJax.startup && MathJax.startup.promise)
    || Promise.resolve();
typeset.then(() => {
const images = Array.from(document.images).map(
    img => [img.getAttribute('src'), img.complete && img.naturalWidth > 0]);
const links = Array.from(document.querySelectorAll('a[href]'))
    .map(a => a.href.split('#')[0])
    .filter(h => h.startsWith(location.origin));
const unique = Array.from(new Set(links));
Promise.all(unique.map(h => fetch(h, {method: 'HEAD'})
        .then(r => [h, r.status]).catch(e => [h, String(e)])))
    .then(statuses => done({
        title: document.title,
        h1: (document.querySelector('main h1') || {}).textContent || '',
        main_text: (document.querySelector('main') || {}).innerText || '',
        images: images,
        links: statuses,
        math: document.querySelectorAll('mjx-container').length,
    }));
});
"""


def _open(driver, url):
    driver.get(url)
    driver.set_script_timeout(60)
    return driver.execute_async_script(_CHECK_PAGE)


@pytest.mark.parametrize(
    "page, heading",
    [
        ("index.html", "skcollapse"),
        ("api/generated/skcollapse.metrics.effective_rank.html", "effective_rank"),
        ("auto_examples/index.html", "Examples"),
        ("auto_examples/plot_watch_erank.html", "Watching erank during training"),
        ("user_guide/measuring.html", "Measuring collapse"),
        ("api/generated/skcollapse.regularizers.LogDetRegularizer.html",
         "LogDetRegularizer"),
    ],
)
def test_pages_render_in_headless_chromium(served_site, page, heading, tmp_path):
    driver = _browser_or_skip()
    try:
        result = _open(driver, f"{served_site}/{page}")
        shots = os.environ.get("SKCOLLAPSE_DOCS_SCREENSHOTS")
        if shots:
            Path(shots).mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(Path(shots) / (page.replace("/", "_") + ".png")))
    finally:
        driver.quit()
    assert heading in result["h1"], result["h1"]
    assert len(result["main_text"]) > 200, "the page body did not render"
    # formulas are rendered (offline: MathJax is served by the site), never
    # left as raw LaTeX
    for raw in ("\\(", "\\)", "\\["):
        assert raw not in result["main_text"], f"raw LaTeX {raw} on {page}"
    if page.startswith(("user_guide/measuring", "api/generated/skcollapse.reg")):
        assert result["math"] > 0, "no formula was typeset"
    if page.startswith("auto_examples/"):  # thumbnails, figures
        assert result["images"], "a gallery page without images"
    failed = [src for src, ok in result["images"] if not ok]
    assert failed == [], f"images that did not load: {failed}"
    assert result["links"], "no internal links on the page"
    bad = [(h, s) for h, s in result["links"] if s != 200]
    assert bad == [], f"internal links that do not answer 200: {bad}"
