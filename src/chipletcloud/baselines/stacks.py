"""Software stacks as cards (``data/stacks/<name>.yaml``): what the serving runtime adds to the
hardware's time.

A stack card states, with a source for each number:

* ``kernel_launch_s``: the fixed time of one kernel launched eagerly (host launch and the
  device's gap between kernels); ``graph_kernel_s``: the same inside a captured CUDA graph or a
  compiled XLA program. Decode steps pay ``graph_kernel_s`` a kernel when ``cuda_graphs`` is on
  (prefill kernels are launched eagerly); without graphs both phases pay ``kernel_launch_s``.
* ``request_overhead_s``: a request's fixed cost before its first token (API server,
  tokenisation, admission by the scheduler), added to the time to first token;
  ``step_overhead_s``: the host's work between decode iterations that the runtime does not
  overlap with the GPU, added to every decode step.
* ``allreduce``: the all-reduce algorithms the runtime may pick (NCCL rings/trees across
  domains, custom one-shot/two-shot kernels on NVLink; docs/interconnect.md), the cheapest one
  per message.
* ``fused_attention``: a FlashAttention-style kernel that never writes the attention scores to
  memory (no separate softmax pass); ``gqa_aware_decode``: the decode attention kernel reads each
  KV head once for its group of query heads (off: once per query head, as FasterTransformer's
  masked multi-head attention).
* ``memory_fraction``: the share of device memory the runtime gives weights and KV cache (the
  rest: CUDA context, activations, workspace).
* ``layer_kernels``: kernels one layer launches, by op (the fusions of the runtime).
* ``fit``: constants ``chipletcloud calibrate`` may refit on the training cases, with their bounds.

Every validation case names its stack (docs/validation.md#software-stacks).
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from chipletcloud.config import Quantity, read_yaml, validate_as, with_quantities, yaml_names
from chipletcloud.errors import InputError
from chipletcloud.perf.codes import ALGORITHMS, OP_GROUPS

DATA = resources.files("chipletcloud") / "data" / "stacks"

#: Constants every stack card carries (seconds, each >= 0).
STACK_CONSTANTS: tuple[str, ...] = (
    "kernel_launch_s",
    "graph_kernel_s",
    "request_overhead_s",
    "step_overhead_s",
    "memory_fraction",
)
#: Ops a layer launches kernels for, and the LM head.
KERNEL_OPS: tuple[str, ...] = tuple(op for ops in OP_GROUPS.values() for op in ops) + ("lm_head",)


class StackCard(BaseModel):
    """One serving runtime: ``data/stacks/<name>.yaml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    description: str = Field(min_length=1)
    era: str = Field(min_length=1)
    constants: dict[str, Quantity]
    fit: dict[str, tuple[float, float]] = Field(default_factory=dict)
    cuda_graphs: bool
    allreduce: list[str] = Field(min_length=1)
    fused_attention: bool
    gqa_aware_decode: bool
    layer_kernels: dict[str, int]

    @field_validator("constants")
    @classmethod
    def _constants(cls, v: dict[str, Quantity]) -> dict[str, Quantity]:
        for key in STACK_CONSTANTS:
            if key not in v:
                raise ValueError(f"{key}: required field is missing")
        for key, q in v.items():
            if key not in STACK_CONSTANTS:
                raise ValueError(f"{key}: not a known key; known: " + ", ".join(STACK_CONSTANTS))
            if key == "memory_fraction":
                if not 0.0 < q.value <= 1.0:
                    raise ValueError(f"{key}: {q.value} is not a fraction in (0, 1]")
            elif not 0.0 <= q.value <= 10.0:
                raise ValueError(f"{key}: {q.value} is not a time in seconds from 0 to 10")
        return v

    @field_validator("allreduce")
    @classmethod
    def _algorithms(cls, v: list[str]) -> list[str]:
        for name in v:
            if name not in ALGORITHMS:
                raise ValueError(f"{name}: not an algorithm; known: " + ", ".join(ALGORITHMS))
        return v

    @field_validator("layer_kernels")
    @classmethod
    def _kernels(cls, v: dict[str, int]) -> dict[str, int]:
        if set(v) != set(KERNEL_OPS):
            raise ValueError("kernels for exactly these ops: " + ", ".join(KERNEL_OPS))
        if any(n < 0 for n in v.values()):
            raise ValueError("kernel counts are integers >= 0")
        return v

    @model_validator(mode="after")
    def _fit_bounds(self) -> StackCard:
        for key, (lo, hi) in self.fit.items():
            if key not in STACK_CONSTANTS:
                raise ValueError(
                    f"fit.{key}: not a stack constant; known: " + ", ".join(STACK_CONSTANTS)
                )
            if not 0.0 <= lo < hi:
                raise ValueError(f"fit.{key}: bounds [{lo}, {hi}] must satisfy 0 <= low < high")
            if not lo <= self.constants[key].value <= hi:
                raise ValueError(
                    f"fit.{key}: the value {self.constants[key].value} lies outside its bounds"
                )
        return self

    def value(self, key: str) -> float:
        """The value of constant ``key`` (seconds; ``memory_fraction`` a fraction)."""
        return float(self.constants[key].value)

    def decode_kernel_s(self) -> float:
        """Fixed time a decode kernel pays: ``graph_kernel_s`` with CUDA graphs, else the eager
        launch."""
        return self.value("graph_kernel_s" if self.cuda_graphs else "kernel_launch_s")

    def with_values(self, values: dict[str, float], source: str | None = None) -> StackCard:
        """A copy with some constants replaced (``source`` recorded on each)."""
        return self.model_copy(
            update={"constants": with_quantities(self.constants, values, source)}
        )


def list_stacks() -> list[str]:
    """Names of the built-in stack cards, sorted."""
    return yaml_names(DATA)


@cache
def _builtin(name: str) -> StackCard:
    return _parse(read_yaml(DATA / f"{name}.yaml", "stack card"), f"stacks/{name}.yaml")


def _parse(raw, where: str) -> StackCard:
    return validate_as(StackCard, raw, where)


def load_stack(name_or_path: str | StackCard) -> StackCard:
    """A built-in stack by name (:func:`list_stacks`) or a path to a stack card YAML; an unknown
    name is one :class:`InputError` listing the known ones."""
    if isinstance(name_or_path, StackCard):
        return name_or_path
    key = str(name_or_path)
    if key in list_stacks():
        return _builtin(key)
    path = Path(key)
    if path.suffix in (".yaml", ".yml", ".json") and path.is_file():
        return _parse(read_yaml(path, "stack card"), str(path))
    raise InputError("stack", key, "one of " + ", ".join(list_stacks()) + ", or a stack card YAML")


#: The stack a device runs when none is named: today's vendor runtime.
DEFAULT_STACK = {"gpu": "tensorrt-llm", "tpu": "jax-xla"}
