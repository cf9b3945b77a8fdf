"""Schemas and loaders for every data file: constant cards, presets and sweep spaces.

Every constant in ``data/`` is a YAML mapping ``name: {value, unit, source}``; names carry
their unit. A *preset* (``data/presets/*.yaml`` or a user's file) names the cards to use, the
modelling choices and any overridden constants (each override with its own unit and source).
Loading validates everything with pydantic (``extra="forbid"``) and turns the first problem into
an :class:`InputError` that names the field, the value and what is allowed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
from dataclasses import dataclass, replace
from functools import cache, lru_cache
from importlib import metadata, resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError, field_validator

from chipletcloud.errors import InputError

DATA = resources.files("chipletcloud") / "data"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Quantity(_Strict):
    """One sourced constant."""

    value: float
    unit: str = Field(min_length=1)
    source: str = Field(min_length=1)

    @field_validator("value")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v


def with_quantities(
    constants: dict[str, Quantity],
    values: dict[str, float],
    source: str | None = None,
    new_unit=None,
) -> dict[str, Quantity]:
    """A copy of ``constants`` with ``values`` set, ``source`` recorded on each (else the old
    source). A key not yet there takes ``new_unit(key)`` as its unit (without ``new_unit``, a
    new key is an error)."""
    out = dict(constants)
    for key, v in values.items():
        old = out.get(key)
        if old is None and new_unit is None:
            raise InputError("constants", key, "one of " + ", ".join(sorted(constants)))
        out[key] = Quantity(
            value=float(v),
            unit=old.unit if old else new_unit(key),
            source=source or (old.source if old else "set"),
        )
    return out


class Card(RootModel[dict[str, Quantity]]):
    """A constants card: name -> Quantity."""


def validation_to_input_error(exc: ValidationError, prefix: str = "") -> InputError:
    """Turn pydantic's first error into a one-line :class:`InputError`."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__")
    field = f"{prefix}.{loc}" if prefix and loc else (prefix or loc or "input")
    value = err.get("input")
    msg = err.get("msg", "invalid")
    if err.get("type") == "extra_forbidden":
        msg = "not a known key"
    elif err.get("type") == "missing":
        msg = "required field is missing"
        value = None
    return InputError(field, value, msg)


#: The largest YAML file read (bytes of UTF-8): every config and card is a few KB
MAX_YAML_BYTES = 1_000_000
#: The most aliases (``*name``) a YAML document may use
MAX_YAML_ALIASES = 100
#: The most nodes a YAML document may have with every alias expanded (a "billion laughs" of
#: nested aliases expands 2 KB to 10^9 nodes; a 1 MB file without aliases has fewer than 500,000)
MAX_YAML_NODES = 1_000_000


class _YamlLimit(yaml.YAMLError):
    """A YAML document beyond :data:`MAX_YAML_ALIASES` or :data:`MAX_YAML_NODES`."""


class _BoundedSafeLoader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses a document with more than :data:`MAX_YAML_ALIASES`
    aliases, or more than :data:`MAX_YAML_NODES` nodes once its aliases are expanded (or one that
    contains itself), before any Python object is built from it."""

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self._aliases = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_YAML_ALIASES:
                raise _YamlLimit(f"a YAML document with at most {MAX_YAML_ALIASES} aliases")
        return super().compose_node(parent, index)

    def compose_document(self):
        node = super().compose_document()
        _expanded_nodes(node)
        self._aliases = 0
        return node


def _expanded_nodes(root) -> int:
    """Nodes of a composed YAML document with its aliases expanded (each shared node counted
    once a reference, computed once a node); :class:`_YamlLimit` beyond :data:`MAX_YAML_NODES` or
    for a node that contains itself."""
    sizes: dict[int, int] = {}
    stack = [(root, False)]
    open_ids: set[int] = set()
    while stack:
        node, done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        if isinstance(node, yaml.ScalarNode):
            sizes[key] = 1
            continue
        kids = (
            node.value
            if isinstance(node, yaml.SequenceNode)
            else [n for pair in node.value for n in pair]
        )
        if done:
            open_ids.discard(key)
            sizes[key] = 1 + sum(sizes[id(k)] for k in kids)
            if sizes[key] > MAX_YAML_NODES:
                raise _YamlLimit(
                    f"a YAML document of at most {MAX_YAML_NODES:,} nodes, aliases expanded"
                )
            continue
        if key in open_ids:
            raise _YamlLimit("a YAML document without an alias inside its own anchor")
        open_ids.add(key)
        stack.append((node, True))
        stack.extend((k, False) for k in kids if id(k) not in sizes)
    return sizes[id(root)]


def load_yaml_text(text: str, source: str, what: str = "yaml") -> Any:
    """The one YAML document in ``text`` (read from ``source``, a file name for the message), safe
    and bounded: at most :data:`MAX_YAML_BYTES`, :data:`MAX_YAML_ALIASES` aliases and
    :data:`MAX_YAML_NODES` nodes with the aliases expanded. A document beyond them, or invalid
    YAML, is one :class:`InputError` naming ``what`` and ``source``."""
    if len(text) > MAX_YAML_BYTES or len(text.encode("utf-8")) > MAX_YAML_BYTES:
        raise InputError(what, source, f"a YAML file of at most {MAX_YAML_BYTES:,} bytes")
    loader = None
    try:
        loader = _BoundedSafeLoader(text)  # the reader checks the characters here
        return loader.get_single_data()
    except _YamlLimit as exc:
        raise InputError(what, source, str(exc)) from None
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" (line {line + 1})" if line is not None else ""
        raise InputError(what, source, f"valid YAML{where}") from exc
    except RecursionError:  # nesting deeper than Python's stack
        raise InputError(what, source, "a YAML document nested less deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


def read_yaml(path: Path | Any, what: str) -> Any:
    """The YAML (or JSON, a subset of it) at ``path`` through :func:`load_yaml_text` (at most
    :data:`MAX_YAML_BYTES` are read); an unreadable file or invalid YAML is one
    :class:`InputError` naming ``what``."""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_YAML_BYTES + 1)
        if len(data) > MAX_YAML_BYTES:
            raise InputError(what, str(path), f"a YAML file of at most {MAX_YAML_BYTES:,} bytes")
        text = data.decode("utf-8")
    except FileNotFoundError as exc:
        raise InputError(what, str(path), "an existing YAML file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(
            what, str(path), f"a readable UTF-8 file ({exc.__class__.__name__})"
        ) from exc
    return load_yaml_text(text, str(path), what)


@lru_cache(maxsize=64)
def yaml_names(folder) -> list[str]:
    """Names (without ``.yaml``) of the YAML files in a package data ``folder``, sorted."""
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def validate_as(model: type[BaseModel], raw: Any, where: str) -> Any:
    """``raw`` validated as ``model``; the first problem is one :class:`InputError` whose field
    starts with ``where`` (a file or card name)."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise validation_to_input_error(exc, where) from None


def load_card(kind: str, name: str) -> dict[str, Quantity]:
    """Load ``data/<kind>/<name>.yaml`` as a validated card."""
    path = DATA / kind / f"{name}.yaml"
    if not path.is_file():
        allowed = sorted(p.name[:-5] for p in (DATA / kind).iterdir() if p.name.endswith(".yaml"))
        raise InputError(f"preset.{kind}", name, ", ".join(allowed))
    raw = read_yaml(path, f"{kind} card")
    try:
        return dict(Card.model_validate(raw).root)
    except ValidationError as exc:
        raise validation_to_input_error(exc, f"{kind}/{name}") from exc


# --------------------------------------------------------------------------------------------------
# Typed parameter bundles (plain floats, for the array models)


class TechParams(_Strict):
    """Technology constants (data/tech/*.yaml); see each card entry for unit and source."""

    pad_ring_width_mm: float = Field(ge=0)
    core_area_ratio: float = Field(gt=0, le=1)
    io_cells_per_chip: float = Field(ge=0)
    io_cell_area_mm2: float = Field(ge=0)
    io_cell_power_w: float = Field(ge=0)
    io_cell_gbyte_per_s: float = Field(gt=0)
    other_area_mm2: float = Field(ge=0)
    other_power_w: float = Field(ge=0)
    mac_density_mm2_per_tflops: float = Field(gt=0)
    power_w_per_tflops: float = Field(gt=0)
    clock_ghz: float = Field(gt=0)
    word_bytes: float = Field(gt=0)
    sram_density_mm2_per_mb: float = Field(gt=0)
    sram_capacity_mm2_per_mib: float = Field(gt=0)
    sram_crossbar_mm2_per_kbit2: float = Field(ge=0)
    max_die_area_mm2: float = Field(gt=0)
    max_power_density_w_per_mm2: float = Field(gt=0)
    wafer_diameter_mm: float = Field(gt=0)
    wafer_cost_usd: float = Field(gt=0)
    defect_density_per_mm2: float = Field(ge=0)
    yield_cluster_alpha: float = Field(gt=0)
    dicing_gap_mm: float = Field(ge=0)
    test_cost_fraction: float = Field(ge=0)
    server_link_gbyte_per_s: float = Field(gt=0)
    fma_energy_pj: float = Field(ge=0)
    sram_weight_read_pj_per_byte: float = Field(ge=0)
    sram_activation_read_pj_per_byte: float = Field(ge=0)
    hbm_read_pj_per_byte: float = Field(ge=0)
    dram_read_pj_per_byte: float = Field(ge=0)
    logic_leakage_w_per_mm2: float = Field(ge=0)
    sram_leakage_w_per_mb: float = Field(ge=0)
    # achieved fractions of peak on the ASIC (Choices.asic_efficiency "derated"): each in (0, 1]
    asic_matmul_flops_efficiency: float = Field(gt=0, le=1)
    asic_attention_flops_efficiency: float = Field(gt=0, le=1)
    asic_sram_bandwidth_efficiency: float = Field(gt=0, le=1)


class LinkParams(_Strict):
    """Link latency constants (data/link/*.yaml, docs/interconnect.md). The hop latencies are
    sums of their parts: :attr:`chip_hop_latency_s` and :attr:`server_hop_latency_s`."""

    lanes_per_link: float = Field(ge=1)
    gbps_per_lane: float = Field(gt=0)
    chip_serdes_latency_s: float = Field(ge=0)
    chip_fec_latency_s: float = Field(ge=0)
    chip_router_latency_s: float = Field(ge=0)
    chip_wire_latency_s: float = Field(ge=0)
    net_nic_latency_s: float = Field(ge=0)
    net_switch_latency_s: float = Field(ge=0)
    net_switch_hops: float = Field(ge=0)
    net_link_latency_s: float = Field(ge=0)
    collective_sync_s: float = Field(ge=0)
    min_message_bytes: float = Field(ge=0)
    net_switch_radix: float = Field(ge=2)

    @property
    def net_tier_latency_s(self) -> float:
        """What each further switch tier adds to a server-to-server traversal: a switch and a
        link (s)."""
        return self.net_switch_latency_s + self.net_link_latency_s

    def network_columns(self) -> dict[str, float]:
        """The :class:`~chipletcloud.perf.workload.System` columns of packets and switch tiers,
        which every machine's network shares: ``packet_bytes``, ``net_radix``, ``net_tier_s``."""
        return {
            "packet_bytes": self.min_message_bytes,
            "net_radix": self.net_switch_radix,
            "net_tier_s": self.net_tier_latency_s,
        }

    @property
    def chip_hop_latency_s(self) -> float:
        """One chip-to-chip hop: SerDes + FEC + router + wire (s)."""
        return (
            self.chip_serdes_latency_s
            + self.chip_fec_latency_s
            + self.chip_router_latency_s
            + self.chip_wire_latency_s
        )

    @property
    def server_hop_latency_s(self) -> float:
        """One server-to-server traversal: two NICs, the switches and the links between them
        (s)."""
        return (
            2.0 * self.net_nic_latency_s
            + self.net_switch_hops * self.net_switch_latency_s
            + (self.net_switch_hops + 1.0) * self.net_link_latency_s
        )


class ServerParams(_Strict):
    """Package and server constants (data/server/*.yaml)."""

    package_area_ratio: float = Field(gt=0)
    package_substrate_usd_per_mm2: float = Field(ge=0)
    package_bond_yield: float = Field(gt=0, le=1)
    package_cost_die_fraction: float = Field(ge=0)
    package_fixed_usd: float = Field(ge=0)
    chips_per_package: float = Field(ge=1)
    lanes_per_server: float = Field(ge=1)
    fan_power_w: float = Field(ge=0)
    fan_cost_usd: float = Field(ge=0)
    psu_usd_per_w: float = Field(ge=0)
    psu_efficiency: float = Field(gt=0, le=1)
    dcdc_usd_per_a: float = Field(ge=0)
    dcdc_efficiency: float = Field(gt=0, le=1)
    core_voltage_v: float = Field(gt=0)
    host_rail_voltage_v: float = Field(gt=0)
    host_power_w: float = Field(ge=0)
    host_cost_usd: float = Field(ge=0)
    nic_usd: float = Field(ge=0)
    pcb_count: float = Field(ge=0)
    pcb_usd: float = Field(ge=0)
    parts_usd: float = Field(ge=0)
    chassis_usd: float = Field(ge=0)
    lane_silicon_min_mm2: float = Field(ge=0)
    lane_silicon_max_mm2: float = Field(gt=0)
    server_max_chip_power_w: float = Field(gt=0)
    rack_usd: float = Field(ge=0)
    rack_power_w: float = Field(gt=0)
    network_usd_per_server: float = Field(ge=0)
    package_assembly_usd_per_package: float = Field(ge=0)


class TcoParams(_Strict):
    """TCO constants (data/tco/*.yaml), docs/tco.md."""

    server_life_years: float = Field(gt=0)
    electricity_usd_per_kwh: float = Field(ge=0)
    pue: float = Field(ge=1)
    interest_rate_per_year: float = Field(ge=0)
    datacenter_capex_usd_per_w: float = Field(ge=0)
    datacenter_life_years: float = Field(gt=0)
    datacenter_opex_usd_per_w_month: float = Field(ge=0)
    server_opex_fraction: float = Field(ge=0)
    billing_hours_per_year: float = Field(gt=0)
    seconds_per_year: float = Field(gt=0)
    deployment_servers: float = Field(gt=0)


class NreParams(_Strict):
    """Non-recurring engineering of one tape-out (data/nre/*.yaml), USD; docs/tco.md#nre."""

    masks_usd: float = Field(ge=0)
    ip_usd: float = Field(ge=0)
    eda_usd: float = Field(ge=0)
    design_usd: float = Field(ge=0)
    validation_usd: float = Field(ge=0)

    @property
    def total_usd(self) -> float:
        """Masks + IP + EDA + design + validation (USD)."""
        return self.masks_usd + self.ip_usd + self.eda_usd + self.design_usd + self.validation_usd


class Choices(_Strict):
    """Modelling choices a preset selects."""

    sram_area_model: Literal["linear", "bandwidth_aware", "ccmem"] = "bandwidth_aware"
    dies_per_wafer_method: Literal["rows", "grid"] = "rows"
    package_cost_model: Literal["organic", "linear"] = "organic"
    heatsink_allowance_factor: float = Field(default=2.0, gt=0)
    include_host_cost: bool = True
    #: docs/tco.md#which-power-is-charged; ``tdp_capacity``: datacentre capacity at TDP,
    #: electricity at the mean power of the mapped workload (the same rule for the baselines).
    power_source: Literal["tdp", "tdp_utilisation", "energy", "tdp_capacity"] = "energy"
    #: docs/hardware-model.md#chip-power: ``authors_density`` = 1.3 W/TFLOPS + IO (the authors'
    #: rule); ``components`` = MACs, SRAM at full bandwidth, decoders, IO and leakage.
    chip_power_model: Literal["authors_density", "components"] = "authors_density"
    #: Rack share, network share and package assembly on the server bill (docs/hardware-model.md).
    full_bom: bool = False
    #: The tape-out's NRE amortised over tco.deployment_servers as a TCO term (docs/tco.md#nre).
    include_nre: bool = False
    latency_model: Literal["isca24", "v1"] = "isca24"
    chip_topology: Literal["ring", "mesh2d", "torus2d", "full", "switch"] = "torus2d"
    collective_algorithms: list[
        Literal["ring", "recursive_doubling", "one_shot", "two_shot", "hierarchical"]
    ] = Field(
        default=["ring", "recursive_doubling", "one_shot", "two_shot", "hierarchical"],
        min_length=1,
    )
    #: ``serial``: a micro-batch's activations cross to the next pipeline stage after its
    #: compute (docs/inference-model.md); ``none``: the transfer is free, as in the authors' code
    #: (docs/attribution.md).
    stage_transfer: Literal["serial", "none"] = "serial"
    #: Defects of the authors' model as named choices (docs/inference-model.md#defects-of-the-
    #: authors-model-fixed-here); the first value of each is this project's fix, the second the
    #: authors' behaviour. ``gqa_kv_reads``: KV reads per KV head (GQA/MQA cut the traffic) or per
    #: query head (only the capacity shrinks); ``kv_read_energy``: KV read energy for every
    #: sequence or once per micro-batch; ``prefill_attention_flops``: causal P (P + 1) / 2
    #: query-key pairs or that count divided by the prompt length.
    gqa_kv_reads: Literal["per_kv_head", "per_query_head"] = "per_kv_head"
    kv_read_energy: Literal["per_sequence", "per_micro_batch"] = "per_sequence"
    prefill_attention_flops: Literal["causal", "authors"] = "causal"
    #: ``ideal``: the ASIC reaches 100% of its peak FLOP/s and SRAM bandwidth; ``derated``: the
    #: tech card's sourced fractions per op type (docs/inference-model.md#achieved-efficiency).
    asic_efficiency: Literal["ideal", "derated"] = "ideal"
    #: the energy model's mean chip power includes the static power (IO cells, other blocks and,
    #: under ``chip_power_model = components``, leakage) while serving; off in the authors' code,
    #: whose energy model has FMA, SRAM, HBM and DRAM energies only (docs/attribution.md)
    static_power: bool = True


class WorkloadSpec(_Strict):
    """The serving workload of phase 2 (docs/inference-model.md: 128-token prompt, 256 generated),
    the
    number formats, which model shape the paper models use (``paper``: the authors' simplified
    shape of docs/models.md#the-eight-paper-models; ``true``: the real one) and whether a paper
    shape counts its
    embedding and LM-head matrices (the authors' 12 L d^2 does not; real shapes always do), and
    the weight sparsity with its storage format."""

    prompt_tokens: int = Field(default=128, ge=1, le=1_000_000)
    output_tokens: int = Field(default=256, ge=1, le=1_000_000)
    weight_bytes: float = Field(default=2.0, gt=0, le=8)
    kv_bytes: float = Field(default=2.0, gt=0, le=8)
    act_bytes: float = Field(default=2.0, gt=0, le=8)
    model_shape: Literal["paper", "true"] = "paper"
    include_embeddings: bool = False
    count_prefill: bool = True
    kv_in_capacity: bool = True
    sparsity: float = Field(default=0.0, ge=0.0, lt=1.0)
    sparse_format: Literal["value_index", "bitmask", "nm24", "dense"] = "value_index"
    index_bits: int = Field(default=8, ge=1, le=16)
    #: the authors' code has Gopher's d_model as 16,328 (a typo): when set, a paper shape whose
    #: card records such a value (``paper_shape.authors_code_hidden_size``) uses it
    authors_gopher_typo: bool = False


class SearchSpec(_Strict):
    """The phase-2 mapping space (docs/inference-model.md): batch 1..1024 in powers of two,
    micro-batches
    dividing the batch, pipeline degrees dividing the layers, servers from the capacity minimum
    times each multiplier. ``units_per_layer`` > 1 lets stages hold parts of a layer and
    ``uneven_pipeline`` allows stages of unequal size (the slowest sets the pace), as the v1 model
    did (3 units a layer: attention, MLP in, MLP out). ``whole_heads`` admits only tensor degrees
    that divide the attention heads (each chip computes whole heads; by default a chip may hold
    a fraction of a head, as the authors' model allows). ``server_count_range`` = [first, last]
    searches every server count in that range instead of the capacity minimum times the
    multipliers (the authors' code searched 1..128 servers: docs/attribution.md)."""

    batch_sizes: list[int] = Field(
        default=[1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024], min_length=1
    )
    server_multipliers: list[float] = Field(default=[1, 1.25, 1.5, 2, 3, 4, 6, 8], min_length=1)
    max_servers: int = Field(default=100_000, ge=1)
    whole_heads: bool = False
    units_per_layer: int = Field(default=1, ge=1, le=3)
    uneven_pipeline: bool = False
    server_count_range: tuple[int, int] | None = None
    #: how a tensor group wider than the KV heads (MQA/GQA) holds the KV cache, both searched:
    #: ``replicate`` (each chip a copy of its KV head for all sequences) or ``split`` (the
    #: sequences sharded over the chips sharing a KV head, an all-to-all of the queries and
    #: attention outputs a layer; Pope et al., MLSys 2023); docs/inference-model.md#kv-heads
    kv_modes: list[Literal["replicate", "split"]] = Field(
        default=["replicate", "split"], min_length=1
    )
    #: assign layers to stages so that the slowest stage, the LM head counted on the last one,
    #: is as short as it can be (the last stage gets fewer layers; the pipeline degree need not
    #: divide the layers): docs/inference-model.md#balanced-stages
    balance_stages: bool = False

    @field_validator("server_count_range")
    @classmethod
    def _count_range(cls, v: tuple[int, int] | None) -> tuple[int, int] | None:
        if v is not None and not (1 <= v[0] <= v[1] <= 100_000):
            raise ValueError("must be [first, last] with 1 <= first <= last <= 100000")
        return v

    @field_validator("batch_sizes")
    @classmethod
    def _batches(cls, v: list[int]) -> list[int]:
        if any(b < 1 for b in v):
            raise ValueError("batch sizes must be >= 1")
        return sorted(set(v))

    @field_validator("server_multipliers")
    @classmethod
    def _mults(cls, v: list[float]) -> list[float]:
        if any(not (1 <= x <= 1000) for x in v):
            raise ValueError("server multipliers must lie in [1, 1000]")
        return sorted(set(v))

    @field_validator("kv_modes")
    @classmethod
    def _kv_modes(cls, v: list[str]) -> list[str]:
        return [m for m in ("replicate", "split") if m in v]  # each once, in a fixed order


class Preset(_Strict):
    """A preset file: which cards, which choices, which overrides."""

    name: str = Field(min_length=1)
    description: str = ""
    tech: str = "7nm"
    server: str = "asic_clouds"
    tco: str = "asic_clouds"
    thermal: str = "thermal"
    link: str = "serdes_7nm"
    nre: str = "7nm"
    choices: Choices = Choices()
    workload: WorkloadSpec = WorkloadSpec()
    search: SearchSpec = SearchSpec()
    overrides: dict[str, Quantity] = {}
    #: Switches (data/attribution/switches.yaml) set to the authors' code's behaviour, or
    #: ``[all]``: applied on top of the fields above when the preset is resolved.
    authors: list[str] = []


# --------------------------------------------------------------------------------------------------
# Switches: every modelling difference from the authors' code, named (docs/attribution.md)


class Switch(_Strict):
    """One named difference from the authors' ISCA-era code: the preset settings (dotted paths:
    ``link``, ``choices.X``, ``workload.X``, ``search.X``, ``overrides.GROUP.NAME``) that give
    the authors' behaviour. The other behaviour is whatever the preset being attributed says."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    summary: str = Field(min_length=1)
    source: str = Field(min_length=1)
    authors: dict[str, Any] = Field(min_length=1)


class SwitchFile(_Strict):
    switches: list[Switch] = Field(min_length=1)


@cache
def switches() -> tuple[Switch, ...]:
    """The switch registry, in the order ``attribute`` flips them (authors -> default)."""
    raw = read_yaml(DATA / "attribution" / "switches.yaml", "switches")
    try:
        out = tuple(SwitchFile.model_validate(raw).switches)
    except ValidationError as exc:
        raise validation_to_input_error(exc, "switches") from exc
    names = [s.name for s in out]
    if len(set(names)) != len(names):
        raise InputError("switches", names, "unique switch names")
    return out


def switch_names() -> list[str]:
    return [s.name for s in switches()]


def check_switch_names(names: list[str], field: str = "switch") -> list[str]:
    """``names`` with ``all`` expanded, in registry order; an unknown name is an InputError."""
    known = switch_names()
    for n in names:
        if n != "all" and n not in known:
            raise InputError(field, n, "one of " + ", ".join(known) + " (or all)")
    if "all" in names:
        return known
    return [n for n in known if n in names]


def _set_path(raw: dict[str, Any], path: str, value: Any) -> None:
    head, _, rest = path.partition(".")
    if head == "overrides":
        raw.setdefault("overrides", {})[rest] = value
    elif rest:
        raw.setdefault(head, {})[rest] = value
    else:
        raw[head] = value


def _get_path(raw: dict[str, Any], path: str) -> Any:
    head, _, rest = path.partition(".")
    if head == "overrides":
        return raw.get("overrides", {}).get(rest)
    return raw.get(head, {}).get(rest) if rest else raw.get(head)


def with_switches(preset: Preset, authors: list[str], name: str | None = None) -> Preset:
    """``preset`` with the named switches (or ``all``), and those of its own ``authors`` list,
    set to the authors' code's behaviour; the result's ``authors`` list is empty."""
    names = check_switch_names([*preset.authors, *authors], "preset.authors")
    raw = preset.model_dump()
    raw["authors"] = []
    for sw in switches():
        if sw.name in names:
            for path, value in sw.authors.items():
                _set_path(raw, path, value)
    if name is not None:
        raw["name"] = name
    try:
        return Preset.model_validate(raw)
    except ValidationError as exc:
        raise validation_to_input_error(exc, "preset") from exc


def restore_switch(preset: Preset, base: Preset, switch: Switch) -> Preset:
    """``preset`` with ``switch``'s settings taken back from ``base`` (a resolved-switch-free
    preset): one step of the walk from the authors' behaviour to ``base``."""
    raw, ref = preset.model_dump(), base.model_dump()
    for path in switch.authors:
        head, _, rest = path.partition(".")
        if head == "overrides" and rest not in ref.get("overrides", {}):
            raw.get("overrides", {}).pop(rest, None)
        else:
            _set_path(raw, path, _get_path(ref, path))
    try:
        return Preset.model_validate(raw)
    except ValidationError as exc:
        raise validation_to_input_error(exc, "preset") from exc


@dataclass(frozen=True)
class Params:
    """A resolved preset: typed constants, choices and the source of every value."""

    preset: Preset
    tech: TechParams
    server: ServerParams
    tco: TcoParams
    thermal: dict[str, float]
    link: LinkParams
    choices: Choices
    sources: dict[str, Quantity]
    nre: NreParams | None = None  # set by resolve(); data/nre/<preset.nre>.yaml

    def with_workload(self, **changes: Any) -> Params:
        """A copy with workload fields changed (``None`` values are ignored)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if not changes:
            return self
        try:
            wl = WorkloadSpec.model_validate({**self.preset.workload.model_dump(), **changes})
        except ValidationError as exc:
            raise validation_to_input_error(exc, "workload") from exc
        return replace(self, preset=self.preset.model_copy(update={"workload": wl}))

    def config_dict(self) -> dict[str, Any]:
        """Everything that determines results, as plain JSON-able values."""
        return {
            "preset": self.preset.name,
            "choices": self.choices.model_dump(),
            "workload": self.preset.workload.model_dump(),
            "search": self.preset.search.model_dump(),
            "constants": {k: q.value for k, q in sorted(self.sources.items())},
        }


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in (DATA / "presets").iterdir() if p.name.endswith(".yaml"))


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``: mappings merged key by key, anything else replaced."""
    out = dict(base)
    for k, v in top.items():
        out[k] = _merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def load_preset(name_or_path: str = "isca24", _depth: int = 0) -> Preset:
    """Load a built-in preset by name, or a user's preset YAML by path. A preset with
    ``extends: NAME|PATH`` starts from that preset and changes only what it states (mappings
    merged key by key)."""
    raw = _preset_raw(name_or_path)
    base = raw.pop("extends", None)
    if base is not None:
        if _depth >= 8 or not isinstance(base, str):
            raise InputError("preset.extends", base, "a preset name or path, at most 8 deep")
        parent = load_preset(base, _depth + 1).model_dump()
        parent.pop("description", None)
        raw = _merge(parent, raw)
    try:
        return Preset.model_validate(raw)
    except ValidationError as exc:
        raise validation_to_input_error(exc, "preset") from exc


def _preset_raw(name_or_path: str) -> dict[str, Any]:
    path = Path(name_or_path)
    if name_or_path in preset_names():
        raw = read_yaml(DATA / "presets" / f"{name_or_path}.yaml", "preset")
    elif path.suffix in (".yaml", ".yml") and path.is_file():
        raw = read_yaml(path, "preset")
    else:
        allowed = ", ".join(preset_names()) + ", or a path to a preset .yaml file"
        raise InputError("preset", name_or_path, allowed)
    if not isinstance(raw, dict):
        raise InputError("preset", name_or_path, "a YAML mapping")
    return raw


_GROUPS = {
    "tech": TechParams,
    "server": ServerParams,
    "tco": TcoParams,
    "thermal": None,
    "link": LinkParams,
    "nre": NreParams,
}


def resolve(preset: Preset | str = "isca24") -> Params:
    """Resolve a preset into typed parameters (cards + overrides)."""
    if isinstance(preset, str):
        preset = load_preset(preset)
    if preset.authors:
        preset = with_switches(preset, [])
    values: dict[str, dict[str, Quantity]] = {
        group: dict(load_card(group if group != "thermal" else "tech", getattr(preset, group)))
        for group in _GROUPS
    }
    for key, q in preset.overrides.items():
        group, _, name = key.partition(".")
        if group not in values or name not in values[group]:
            allowed = (
                "GROUP.NAME with GROUP in tech, server, tco, thermal, link, nre and NAME a key of"
                " that card"
            )
            raise InputError(f"preset.overrides.{key}", q.value, allowed)
        values[group][name] = q
    typed: dict[str, Any] = {}
    for group, model in _GROUPS.items():
        plain = {k: q.value for k, q in values[group].items()}
        if model is None:
            typed[group] = plain
            continue
        try:
            typed[group] = model.model_validate(plain)
        except ValidationError as exc:
            raise validation_to_input_error(exc, group) from exc
    sources = {f"{g}.{k}": q for g, card in values.items() for k, q in card.items()}
    return Params(preset=preset, choices=preset.choices, sources=sources, **typed)


def preset_constants(params: Params) -> dict[str, dict[str, Any]]:
    """Every resolved constant of ``params`` as dotted name -> ``{value, unit, source}``, plus
    the derived per-hop latencies ``link.chip.hop_latency_s`` and ``link.server.hop_latency_s``
    (docs/interconnect.md)."""
    out = {
        k: {"value": q.value, "unit": q.unit, "source": q.source}
        for k, q in sorted(params.sources.items())
    }
    lk = params.link
    out["link.chip.hop_latency_s"] = {
        "value": lk.chip_hop_latency_s,
        "unit": "s",
        "source": "sum of link.chip_serdes_latency_s, link.chip_fec_latency_s, "
        "link.chip_router_latency_s and link.chip_wire_latency_s",
    }
    out["link.server.hop_latency_s"] = {
        "value": lk.server_hop_latency_s,
        "unit": "s",
        "source": "2 x link.net_nic_latency_s + link.net_switch_hops x link.net_switch_latency_s"
        " + (link.net_switch_hops + 1) x link.net_link_latency_s",
    }
    return out


@cache
def card_params(group: str, name: str) -> Any:
    """A card (``data/<group>/<name>.yaml``) as the typed parameters of its group
    (:class:`TechParams`, :class:`ServerParams`, :class:`TcoParams`), without a preset's
    overrides: the defaults of functions called outside a preset."""
    raw = {k: q.value for k, q in load_card(group, name).items()}
    try:
        return _GROUPS[group].model_validate(raw)
    except ValidationError as exc:
        raise validation_to_input_error(exc, f"{group}/{name}") from exc


# --------------------------------------------------------------------------------------------------
# Sweep spaces


def _as_list(v: Any) -> Any:
    return v if isinstance(v, list) else [v]


class HardwareSpace(_Strict):
    """Phase-1 design space. Each field is a scalar or a non-empty list
    (docs/design-space.md#phase-1-hardware-space)."""

    die_area_mm2: list[float] = Field(min_length=1)
    mac_ratio: list[float] = Field(min_length=1)
    operational_intensity: list[float] = Field(min_length=1)
    packages_per_lane: list[int] = Field(min_length=1)
    lanes_per_server: list[int] = Field(default=[8], min_length=1)
    chips_per_package: list[int] = Field(default=[1], min_length=1)

    @field_validator("*", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return _as_list(v)

    @field_validator("die_area_mm2", "operational_intensity")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        for x in v:
            if not (math.isfinite(x) and 1e-6 <= x <= 1e6):
                raise ValueError(f"every value must be a finite number > 0 (1e-6 to 1e6), got {x}")
        return v

    @field_validator("mac_ratio")
    @classmethod
    def _ratio(cls, v: list[float]) -> list[float]:
        for x in v:
            if not (0 < x < 1):
                raise ValueError(f"every value must lie in the open interval (0, 1), got {x}")
        return v

    @field_validator("packages_per_lane", "lanes_per_server", "chips_per_package")
    @classmethod
    def _count(cls, v: list[int]) -> list[int]:
        for x in v:
            if x < 1 or x > 10_000:
                raise ValueError(f"every value must be an integer in 1..10000, got {x}")
        return v

    @property
    def size(self) -> int:
        n = 1
        for name in type(self).model_fields:
            n *= len(getattr(self, name))
        return n


def _space_error(exc: ValidationError, what: str) -> InputError:
    err = exc.errors()[0]
    loc = [str(p) for p in err.get("loc", ())]
    field = f"{what}.{loc[0]}" if loc else what
    value = err.get("input")
    msg = err.get("msg", "invalid").removeprefix("Value error, ")
    if err.get("type") == "extra_forbidden":
        allowed = ", ".join(HardwareSpace.model_fields)
        return InputError(field, value, f"a known key ({allowed})")
    if err.get("type") == "too_short":
        return InputError(field, value, "a scalar or a non-empty list")
    if err.get("type") == "missing":
        return InputError(field, None, "required field is missing")
    if len(loc) > 1 and isinstance(value, float | int | str):
        field = f"{field}[{loc[1]}]"
    return InputError(field, value, msg)


def load_space(path: str | Path | None = None) -> HardwareSpace:
    """Load a phase-1 space YAML (default: data/spaces/default.yaml)."""
    if path is None:
        raw = read_yaml(DATA / "spaces" / "default.yaml", "space")
    else:
        raw = read_yaml(Path(path), "space")
    if not isinstance(raw, dict):
        raise InputError("space", type(raw).__name__, "a YAML mapping of field -> scalar or list")
    try:
        return HardwareSpace.model_validate(raw)
    except ValidationError as exc:
        raise _space_error(exc, "space") from exc


def config_hash(obj: Any) -> str:
    """SHA-256 (first 16 hex digits) of a JSON-able config, keys sorted."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


PACKAGES = (
    "chipletcloud",
    "numpy",
    "numba",
    "duckdb",
    "pyarrow",
    "pydantic",
    "scipy",
    "typer",
    "simpy",
    "matplotlib",
    "plotly",
    "jinja2",
)


def file_mode() -> int:
    """The mode a new file gets under the process's umask (0o666 & ~umask): results are
    written through temporary files (mode 0o600) renamed in place, which then get this mode."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def versions() -> dict[str, str]:
    """Versions of Python and the packages results depend on."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
