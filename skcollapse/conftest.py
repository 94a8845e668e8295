"""Set-up of the docstring examples of the package (``--doctest-modules``)."""


def pytest_configure(config):
    # The Display examples draw figures: off screen, whatever the machine has.
    try:
        import matplotlib
    except ImportError:  # pragma: no cover - matplotlib is a test dependency
        return
    matplotlib.use("Agg")
