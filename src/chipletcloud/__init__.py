"""chipletcloud: co-design of chiplet-based LLM-serving supercomputers for the lowest TCO/token."""

from chipletcloud import sparsity
from chipletcloud.models import cost, tco

__all__ = ["cost", "sparsity", "tco", "__version__"]
__version__ = "0.1.0"
