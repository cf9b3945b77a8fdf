"""The built-in model catalogue: one card per model under ``chipletcloud/data/models/`` (a name,
a source, the Hugging Face config keys and, for the paper's models, the authors' simplified shape),
and :func:`load_model`, which also reads a ``config.json`` or a card from a path.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from chipletcloud.errors import InputError
from chipletcloud.models.hf_config import read_config
from chipletcloud.models.llm import ModelSpec, PaperShape, StrictModel

PAPER_MODELS = ("gpt2", "megatron", "gpt3", "gopher", "mtnlg", "bloom", "palm", "llama2-70b")
#: the models served in 2026 (docs/models.md#model-sets): mixtures of experts with grouped or
#: latent attention, windowed layers and a dense 405B, with Llama-2-70B linking the two sets
MODELS_2026 = (
    "deepseek-v3",
    "qwen3-235b-a22b",
    "mixtral-8x7b",
    "mixtral-8x22b",
    "gpt-oss-120b",
    "llama3.1-405b",
    "llama2-70b",
)
#: the model sets ``--set`` names (compare, evaluate, reproduce)
MODEL_SETS = {"paper": PAPER_MODELS, "2026": MODELS_2026}


def model_set(name: str) -> tuple[str, ...]:
    """The models of set ``name`` (:data:`MODEL_SETS`); one line naming the sets otherwise."""
    if name not in MODEL_SETS:
        raise InputError("set", name, ", ".join(MODEL_SETS))
    return MODEL_SETS[name]


class Published(StrictModel):
    """What the model's authors state: total and active parameters, and whether their active
    count includes the input embedding table (publishers differ: gpt-oss counts the unembedding
    only; Mistral counts both)."""

    params: float
    active_params: float | None = None
    active_counts_embedding: bool = True
    #: the unit the figures are rounded to (1e9: "671B")
    precision: float = 0.0
    source: str


class ModelCard(StrictModel):
    """A catalogue card: ``{"name", "source", "config": {HF config.json keys}, "paper_shape",
    "published"}``."""

    name: str
    source: str
    config: dict[str, Any]
    paper_shape: PaperShape | None = None
    published: Published | None = None

    def spec(self) -> ModelSpec:
        """The ModelSpec this card describes (the real shape, with the paper shape attached)."""
        spec = ModelSpec.from_hf_config(self.config, name=self.name, source=self.source)
        if self.paper_shape is None:
            return spec
        return spec.model_copy(update={"paper_shape": self.paper_shape})


def _catalogue_dir() -> Any:
    return resources.files("chipletcloud").joinpath("data", "models")


@cache
def _catalogue_names() -> tuple[str, ...]:
    return tuple(
        sorted(
            entry.name[: -len(".json")]
            for entry in _catalogue_dir().iterdir()
            if entry.name.endswith(".json")
        )
    )


def published(name: str) -> Published | None:
    """The published counts of a built-in model's card (None when the card has none)."""
    if name not in _catalogue_names():
        return None
    text = _catalogue_dir().joinpath(f"{name}.json").read_text(encoding="utf-8")
    raw = json.loads(text).get("published")
    return None if raw is None else Published(**raw)


def list_models() -> list[str]:
    """Names of the built-in models, sorted."""
    return list(_catalogue_names())


def _card_from_dict(data: Mapping[str, Any], where: str) -> ModelSpec:
    try:
        return ModelCard(**data).spec()
    except InputError as exc:
        raise InputError(f"{where}: {exc.field}", exc.value, exc.allowed) from None


@cache
def _builtin(name: str) -> ModelSpec:
    text = _catalogue_dir().joinpath(f"{name}.json").read_text(encoding="utf-8")
    return _card_from_dict(json.loads(text), f"card {name}")


def load_model(name_or_path: str | Path) -> ModelSpec:
    """A built-in model by name (:func:`list_models`), or a path to a ``config.json`` or a card.

    A JSON file holding ``name`` and ``config`` keys is read as a catalogue card, any other JSON
    object as a Hugging Face config. Unknown names raise InputError listing the allowed ones.
    """
    key = str(name_or_path)
    if key in _catalogue_names():
        return _builtin(key)
    path = Path(key)
    if path.is_file() or (path.is_dir() and (path / "config.json").is_file()):
        data, where = read_config(path)
        if "config" in data and "name" in data:
            return _card_from_dict(data, str(where))
        return ModelSpec.from_hf_config(path)
    raise InputError(
        "model", key, "one of " + ", ".join(list_models()) + ", or a path to a config.json"
    )
