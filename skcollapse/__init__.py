"""skcollapse: measure, watch and fix embedding collapse in recommender systems.

Sub-packages, one concern each (see DESIGN.md):

- :mod:`skcollapse.metrics` -- collapse metrics, ranking metrics and scorers.
- :mod:`skcollapse.regularizers` -- anti-collapse regularizers and their registry.
- :mod:`skcollapse.nn` -- plain ``torch.nn.Module`` building blocks.
- :mod:`skcollapse.recommenders` -- skorch estimators (CF recommenders, CTR classifiers).
- :mod:`skcollapse.callbacks` -- skorch callbacks (collapse monitoring).
- :mod:`skcollapse.datasets` -- synthetic generators and real-data loaders.
- :mod:`skcollapse.model_selection` -- interaction splitters.
- :mod:`skcollapse.plotting` -- scikit-learn style Display objects.
"""

__version__ = "0.1.0.dev0"

__all__ = ["__version__"]
