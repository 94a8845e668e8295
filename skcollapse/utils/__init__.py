"""Internal helpers shared by the sub-packages (validation, devices, sklearn compat).

Nothing is imported eagerly here so that torch-free sub-packages (``metrics``)
stay importable without torch being loaded.
"""
