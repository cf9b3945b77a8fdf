"""The paper's design studies, recomputed from phase 1 and phase 2: die size, batch, pipeline
stages, design choice (SRAM chiplets vs HBM chips), NRE and break-even, sensitivity, and TCO per
token against weight sparsity. Each study is a function returning plain JSON-able data."""

from chipletcloud.studies.core import (
    batch_study,
    design_choice_study,
    die_size_study,
    nre_study,
    pipeline_study,
    sensitivity_study,
    sparsity_sweep,
    top_designs,
)

__all__ = [
    "batch_study",
    "design_choice_study",
    "die_size_study",
    "nre_study",
    "pipeline_study",
    "sensitivity_study",
    "sparsity_sweep",
    "top_designs",
]
