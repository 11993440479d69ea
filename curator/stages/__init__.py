"""The dataset-level stages of analyze, one module each, in data-flow order: neighbours ->
image checks and duplicates -> labels -> outliers -> projection. They run on the driver
after the per-image stage, on the readable items' arrays (memory maps where large), and
each stays linear in the item count beyond the limits named in its module
(curator/neighbors.py ``EXACT_LIMIT``, the label check's ``fit_limit``, the map's
``MAP_SAMPLE_LIMIT``); below them they give the results they always gave.
:func:`run_stages` runs them all; analyze.find_issues wraps it with the project's I/O."""

from .run import DatasetInputs, DatasetResults, run_stages

__all__ = ["DatasetInputs", "DatasetResults", "run_stages"]
