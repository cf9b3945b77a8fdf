"""Device cards and pricing cards of the GPU/TPU baselines.

A *device card* (``data/devices/<name>.json``) describes one accelerator: its kind, its scale-up
domain (an NVSwitch island of 8 GPUs, or a 3D-torus TPU pod) and a ``constants`` mapping of sourced
quantities (``{value, unit, source}``, the same :class:`~chipletcloud.config.Quantity` as the
technology cards): peak throughput per number format, HBM capacity and bandwidth, scale-up and
scale-out bandwidth per device and direction, TDP, die area, node, and four efficiency / overhead
constants that the validation suite calibrates.

A *price card* (``data/prices/<name>.json``) lists dated public rental prices per device-hour
(``rented``, one of them the default) and the inputs of an in-house ("fabricated") cost: die, HBM
per GB, package, board, server and network share per device, and server power beyond the device
TDP.

Values are plain SI units (FLOP/s, bytes, bytes/s, W, s) except where the unit says otherwise.
Loading validates everything and turns the first problem into an :class:`InputError` that names
the field (for a constant: ``constants.<key>``).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from chipletcloud.config import Quantity, validation_to_input_error, with_quantities
from chipletcloud.errors import InputError

#: Constants every device card must carry (each a positive Quantity).
REQUIRED_CONSTANTS: tuple[str, ...] = (
    "peak_bf16_flops",
    "hbm_bytes",
    "hbm_bandwidth_bytes_per_s",
    "scale_up_bytes_per_s",
    "scale_out_bytes_per_s",
    "tdp_w",
    "die_area_mm2",
    "process_nm",
    "flops_efficiency",
    "hbm_efficiency",
    "collective_startup_s",
    "link_efficiency",
)
#: Constants a card may carry; a number format the device lacks is simply left out.
OPTIONAL_CONSTANTS: tuple[str, ...] = (
    "peak_fp8_flops",
    "peak_int8_ops",
    "peak_int4_ops",
    "peak_fp4_flops",
    "hbm_stacks",
    "idle_power_w",
    "flops_efficiency_fp8",
    "flops_efficiency_int8",
    "flops_efficiency_fp4",
)
#: Fractions of peak: must lie in (0, 1].
EFFICIENCY_CONSTANTS: tuple[str, ...] = (
    "flops_efficiency",
    "hbm_efficiency",
    "link_efficiency",
    "flops_efficiency_fp8",
    "flops_efficiency_int8",
    "flops_efficiency_fp4",
)
#: The matmul efficiency of each compute format: its own constant where the card has one (fitted
#: on cases in that format), else the bf16 ``flops_efficiency`` (docs/validation.md#formats).
FORMAT_EFFICIENCY: dict[str, str] = {
    "bf16": "flops_efficiency",
    "fp16": "flops_efficiency",
    "fp8": "flops_efficiency_fp8",
    "int8": "flops_efficiency_int8",
    "int4": "flops_efficiency_int8",
    "fp4": "flops_efficiency_fp4",
}

#: In-house cost inputs every price card must carry under ``fabricated`` (positive Quantities).
REQUIRED_FABRICATED: tuple[str, ...] = (
    "die_cost_usd",
    "hbm_usd_per_gb",
    "package_usd",
    "board_usd",
    "server_usd_per_device",
    "network_usd_per_device",
    "server_power_overhead_w_per_device",
)
#: Recorded for the paper's two baselines only: the v1 code's unused in-house TCO per device-hour.
OPTIONAL_FABRICATED: tuple[str, ...] = ("v1_inhouse_usd_per_device_hour",)

#: Number formats :meth:`DeviceCard.peak_flops` knows, and the constants it reads, in order.
#: fp16 runs at the bf16 rate on every device here. int4 uses ``peak_int4_ops`` and, when the
#: device has no int4 rate (Hopper, Blackwell, TPUs), falls back to ``peak_int8_ops``: 4-bit
#: operands are then unpacked to int8 and run on the int8 units. No other fallback exists: a device
#: without fp8 (A100, TPU v4) or fp4 raises rather than silently using its bf16 rate.
DTYPE_CONSTANTS: dict[str, tuple[str, ...]] = {
    "bf16": ("peak_bf16_flops",),
    "fp16": ("peak_bf16_flops",),
    "fp8": ("peak_fp8_flops",),
    "int8": ("peak_int8_ops",),
    "int4": ("peak_int4_ops", "peak_int8_ops"),
    "fp4": ("peak_fp4_flops",),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_quantities(
    v: dict[str, Quantity], required: tuple[str, ...], optional: tuple[str, ...]
) -> dict[str, Quantity]:
    """Every required key present, no unknown key, every value positive, fractions <= 1.

    Errors carry the offending key so that loading names the field as ``<section>.<key>``.
    """
    known = required + optional
    for key in required:
        if key not in v:
            raise _quantity_error(key, None, "required field is missing")
    for key, q in v.items():
        if key not in known:
            raise _quantity_error(key, key, "not a known key; known: " + ", ".join(known))
        if not 1e-30 <= q.value <= 1e30:  # beyond: the simulator's products overflow
            raise _quantity_error(key, q.value, "a positive value from 1e-30 to 1e30")
        if key in EFFICIENCY_CONSTANTS and q.value > 1:
            raise _quantity_error(key, q.value, "a fraction of peak in (0, 1]")
    return v


def _quantity_error(key: str, value: Any, reason: str) -> PydanticCustomError:
    return PydanticCustomError(
        "card_quantity", "{key}: {reason}", {"key": key, "value": value, "reason": reason}
    )


class DeviceCard(_Strict):
    """One accelerator: ``data/devices/<name>.json``."""

    name: str = Field(min_length=1)
    kind: Literal["gpu", "tpu"]
    description: str = Field(min_length=1)
    scale_up_topology: Literal["nvswitch", "torus3d", "torus2d", "full"]
    scale_up_domain: int = Field(ge=1, description="devices in one scale-up domain")
    default_stack: str | None = Field(
        default=None, description="software stack when none is named (data/stacks)"
    )
    constants: dict[str, Quantity]

    @field_validator("constants")
    @classmethod
    def _check_constants(cls, v: dict[str, Quantity]) -> dict[str, Quantity]:
        return _check_quantities(v, REQUIRED_CONSTANTS, OPTIONAL_CONSTANTS)

    def value(self, key: str) -> float:
        """The value of constant ``key`` (in the unit its card gives)."""
        if key not in self.constants:
            raise InputError(f"{self.name}.constants", key, ", ".join(sorted(self.constants)))
        return self.constants[key].value

    def flops_efficiency(self, dtype: str) -> float:
        """Achievable fraction of the ``dtype`` peak for matmuls: the format's own fitted
        constant (:data:`FORMAT_EFFICIENCY`), else the bf16 one."""
        key = FORMAT_EFFICIENCY.get(dtype, "flops_efficiency")
        q = self.constants.get(key) or self.constants["flops_efficiency"]
        return float(q.value)

    def with_values(self, values: dict[str, float], source: str | None = None) -> DeviceCard:
        """A copy with constants set (new keys get the unit of a fraction of peak or seconds),
        ``source`` recorded on each."""
        consts = with_quantities(
            self.constants,
            values,
            source,
            new_unit=lambda key: "s" if key.endswith("_s") else "fraction of peak",
        )
        return self.model_copy(update={"constants": consts})

    def dtypes(self) -> list[str]:
        """Number formats :meth:`peak_flops` answers for this device."""
        return [d for d, keys in DTYPE_CONSTANTS.items() if any(k in self.constants for k in keys)]

    def peak_flops(self, dtype: str) -> float:
        """Dense peak throughput (FLOP/s or OP/s) in number format ``dtype``.

        ``fp16`` is the bf16 rate; ``int4`` falls back to the int8 rate when the device has no
        int4 rate. Any other missing format raises :class:`InputError` (no silent fallback to a
        slower or faster format); see :data:`DTYPE_CONSTANTS`.
        """
        if dtype not in DTYPE_CONSTANTS:
            raise InputError("dtype", dtype, "one of " + ", ".join(DTYPE_CONSTANTS))
        for key in DTYPE_CONSTANTS[dtype]:
            if key in self.constants:
                return self.constants[key].value
        raise InputError(
            f"{self.name}.dtype", dtype, "a format this device has: " + ", ".join(self.dtypes())
        )


class RentedPrice(_Strict):
    """One public rental price for one device-hour, with who, when and on what terms."""

    usd_per_device_hour: float = Field(gt=0)
    provider: str = Field(min_length=1)
    date: str = Field(
        pattern=r"^\d{4}(-\d{2}(-\d{2})?)?$", description="YYYY, YYYY-MM or YYYY-MM-DD"
    )
    terms: str = Field(min_length=1)
    source: str = Field(min_length=1)


class PriceCard(_Strict):
    """Rental and in-house prices of one device: ``data/prices/<name>.json``."""

    name: str = Field(min_length=1)
    rented: list[RentedPrice] = Field(min_length=1)
    default_rented_index: int = Field(ge=0)
    fabricated: dict[str, Quantity]

    @field_validator("fabricated")
    @classmethod
    def _check_fabricated(cls, v: dict[str, Quantity]) -> dict[str, Quantity]:
        return _check_quantities(v, REQUIRED_FABRICATED, OPTIONAL_FABRICATED)

    @field_validator("default_rented_index")
    @classmethod
    def _index_in_range(cls, v: int, info: ValidationInfo) -> int:
        rows = info.data.get("rented")
        if rows is not None and v >= len(rows):
            raise ValueError(f"an index into rented, 0..{len(rows) - 1}")
        return v

    def rented_usd_per_device_hour(self, index: int | None = None) -> float:
        """USD per device-hour of rented row ``index`` (default: ``default_rented_index``)."""
        i = self.default_rented_index if index is None else index
        if not 0 <= i < len(self.rented):
            raise InputError(f"{self.name}.rented", index, f"an index 0..{len(self.rented) - 1}")
        return self.rented[i].usd_per_device_hour


# ----------------------------------------------------------------------------------------- loading


def _data_dir(kind: str) -> Any:
    return resources.files("chipletcloud").joinpath("data", kind)


@cache
def _names(kind: str) -> tuple[str, ...]:
    return tuple(
        sorted(
            e.name[: -len(".json")] for e in _data_dir(kind).iterdir() if e.name.endswith(".json")
        )
    )


def list_devices() -> list[str]:
    """Names of the built-in device cards, sorted."""
    return list(_names("devices"))


def list_price_cards() -> list[str]:
    """Devices with a built-in price card (``data/prices/<device>.json``), sorted.

    Other JSON files in ``data/prices`` (such as the literature baselines of the v1 comparison)
    are not price cards and are not listed.
    """
    return [n for n in _names("prices") if n in _names("devices")]


def _to_input_error(exc: ValidationError, where: str) -> InputError:
    err = exc.errors()[0]
    if err.get("type") == "card_quantity":
        ctx = err.get("ctx", {})
        loc = ".".join(str(p) for p in err.get("loc", ()))
        field = f"{loc}.{ctx.get('key')}" if loc else str(ctx.get("key"))
        return InputError(f"{where}: {field}", ctx.get("value"), str(ctx.get("reason")))
    inner = validation_to_input_error(exc)
    return InputError(f"{where}: {inner.field}", inner.value, inner.allowed)


def _read_json(path: Path, what: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise InputError(what, str(path), "an existing JSON file") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(what, str(path), f"a readable UTF-8 file ({type(exc).__name__})") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(what, str(path), f"valid JSON (line {exc.lineno})") from exc


def _validate(model: type[_Strict], data: Any, where: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _to_input_error(exc, where) from None


@cache
def _builtin(kind: str, name: str) -> Any:
    model = DeviceCard if kind == "devices" else PriceCard
    text = _data_dir(kind).joinpath(f"{name}.json").read_text(encoding="utf-8")
    return _validate(model, json.loads(text), f"{kind}/{name}.json")


def _load(kind: str, what: str, name_or_path: str | Path) -> Any:
    key = str(name_or_path)
    names = _names("devices") if kind == "devices" else tuple(list_price_cards())
    if key in names:
        return _builtin(kind, key).model_copy(deep=True)
    path = Path(key)
    if path.suffix == ".json" or path.is_file():
        model = DeviceCard if kind == "devices" else PriceCard
        return _validate(model, _read_json(path, f"{what} card"), str(path))
    raise InputError(
        what, key, "one of " + ", ".join(names) + f", or a path to a {what} card JSON file"
    )


def load_device(name_or_path: str | Path) -> DeviceCard:
    """A built-in device card by name (:func:`list_devices`) or a path to a device card JSON."""
    return _load("devices", "device", name_or_path)


def load_prices(name_or_path: str | Path) -> PriceCard:
    """A built-in price card by device name (:func:`list_price_cards`) or a path to one."""
    return _load("prices", "prices", name_or_path)
