"""Fuzzing the input files through the CLI: YAML space files (``hardware --space``), Hugging Face
style ``config.json`` files (``models show`` and ``evaluate --model``) and device cards
(``simulate --hardware``).

Every generated input must either work (exit 0, complete outputs) or be refused with exit 2 and
one line on stderr: no traceback (an exception escaping ``main`` fails the test), no numpy warning
on top of the message, and no file left in the ``--out`` directory. Inputs mix valid documents,
documents with one or two fields mutated (wrong types, missing keys, NaN, infinities, huge and
tiny numbers, unicode), unknown keys, non-mappings, broken YAML/JSON and undecodable bytes.

Cases run: ``SPACE_CASES + MODEL_CASES + EVALUATE_CASES + DEVICE_CASES`` (see below).
"""

from __future__ import annotations

import itertools
import json
import os
import warnings
from collections import Counter
from importlib import resources
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chipletcloud.cli import main

#: Multiplies every case count below, for a longer campaign:
#: ``CHIPLETCLOUD_FUZZ_SCALE=20 pytest tests/test_fuzz.py``.
SCALE = float(os.environ.get("CHIPLETCLOUD_FUZZ_SCALE", "1"))
SPACE_CASES = int(600 * SCALE)
MODEL_CASES = int(600 * SCALE)
EVALUATE_CASES = int(150 * SCALE)
DEVICE_CASES = int(500 * SCALE)


def fuzz(n: int):
    return settings(
        max_examples=n,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.function_scoped_fixture,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )


_ids = itertools.count()
OUTCOMES: Counter = Counter()  # (command, exit code) -> cases


def _fresh(root: Path, name: str) -> Path:
    path = root / f"{name}-{next(_ids)}"
    path.mkdir()
    return path


# ------------------------------------------------------------------------------ strategies

EDGE = [
    0,
    -1,
    1,
    2**63,
    10**400,
    -(10**30),
    0.0,
    -0.0,
    5e-324,
    1e-300,
    1e300,
    1.7976931348623157e308,
    float("nan"),
    float("inf"),
    float("-inf"),
    True,
    False,
    None,
    "",
    "nan",
    "1e3",
    "\u00e9\u6f22\u0000",
    "\U0001f600",
]
weird = st.one_of(
    st.sampled_from(EDGE),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**40), 10**40),
    st.text(max_size=8),
)
numbers = st.one_of(
    st.sampled_from([0, 1, 2, 3, 7, 64, 10**6, 10**12, 2**53 + 1, 1e-9, 0.5, 0.999999, 1e9, 1e15]),
    st.integers(1, 10**13),
    st.floats(min_value=1e-300, max_value=1e300),
)
junk = st.recursive(
    weird,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def _mutated(base: dict, extra_keys: list[str]):
    """A document built from ``base``: valid, or with a few keys dropped, replaced by junk, or
    added."""

    @st.composite
    def build(draw):
        doc = dict(base)
        for _ in range(draw(st.sampled_from([0, 0, 1, 1, 1, 2, 3]))):
            action = draw(st.sampled_from(["drop", "replace", "add", "nest", "edge", "edge"]))
            keys = sorted(doc) or ["x"]
            key = draw(st.sampled_from(keys))
            if action == "drop":
                doc.pop(key, None)
            elif action == "replace":
                doc[key] = draw(junk)
            elif action == "add":
                doc[draw(st.sampled_from(extra_keys) | st.text(max_size=8))] = draw(junk)
            elif action == "nest":
                doc[key] = draw(st.lists(weird, max_size=3))
            else:  # a number at or past the edge of the plausible, alone or in a list
                doc[key] = draw(numbers | st.lists(numbers, min_size=1, max_size=3))
        return doc

    return build()


def _document(docs, dump, extreme=None):
    """Bytes of a file: a valid document with extreme but allowed numbers (``extreme``), a
    (possibly mutated) document, a non-mapping, or raw text / bytes."""
    branches = [] if extreme is None else [extreme.map(dump)] * 3
    return st.one_of(
        *branches,
        *[docs.map(dump)] * 3,
        junk.map(dump),
        st.text(max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.binary(max_size=40),
    )


def _extreme(base: dict, fields: dict):
    """``base`` with some fields replaced by values drawn from ``fields[name]``."""

    @st.composite
    def build(draw):
        doc = dict(base)
        for name in draw(st.lists(st.sampled_from(sorted(fields)), min_size=1, max_size=3)):
            doc[name] = draw(fields[name])
        return doc

    return build()


def _yaml(obj) -> bytes:
    return yaml.safe_dump(obj, allow_unicode=True).encode("utf-8")


def _json(obj) -> bytes:
    return json.dumps(obj, allow_nan=True).encode("utf-8")


# ---------------------------------------------------------------------------------- running


def run(args: list[str], capsys) -> tuple[int, str]:
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(args)  # an exception escaping main is a bug: the test fails with it
    err = capsys.readouterr().err
    OUTCOMES[(args[0], code)] += 1
    assert code in (0, 2), (code, err)
    assert "Traceback" not in err
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), err
        noisy = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
        assert not noisy, noisy
    return code, err


def assert_no_output(out: Path) -> None:
    left = [p for p in out.rglob("*")] if out.exists() else []
    assert not left, left


def assert_complete(out: Path, names: list[str]) -> None:
    for name in names:
        assert (out / name).is_file(), name
    assert not [p for p in out.rglob("*.tmp")]


# ------------------------------------------------------------------------------ space files

SPACE_BASE = {
    "die_area_mm2": [40, 200],
    "mac_ratio": 0.1,
    "operational_intensity": [1, 4],
    "packages_per_lane": [6, 12],
    "lanes_per_server": 8,
    "chips_per_package": [1, 2],
}
SPACE_EXTRA = list(SPACE_BASE) + ["die_area", "preset", "name", "\u00fcber"]
_area = st.sampled_from([1e-6, 1e-3, 0.5, 900.0, 5000.0, 1e6]) | st.floats(1e-6, 1e6)
_ratio = st.sampled_from([1e-300, 1e-9, 0.999999, 1 - 2**-52]) | st.floats(1e-9, 0.999)
_oi = st.sampled_from([1e-6, 1e-3, 1e3, 1e6]) | st.floats(1e-6, 1e6)
_count = st.sampled_from([1, 2, 100, 9999, 10000]) | st.integers(1, 10000)
SPACE_RANGES = {
    "die_area_mm2": st.lists(_area, min_size=1, max_size=3),
    "mac_ratio": st.lists(_ratio, min_size=1, max_size=2),
    "operational_intensity": st.lists(_oi, min_size=1, max_size=2),
    "packages_per_lane": st.lists(_count, min_size=1, max_size=3),
    "lanes_per_server": st.lists(_count, min_size=1, max_size=2),
    "chips_per_package": st.lists(_count, min_size=1, max_size=2),
}


@fuzz(SPACE_CASES)
@given(
    data=_document(_mutated(SPACE_BASE, SPACE_EXTRA), _yaml, _extreme(SPACE_BASE, SPACE_RANGES)),
    sharded=st.sampled_from([[], [], ["--shard-size", "5"], ["--resume"]]),
)
def test_fuzz_space_files(tmp_path, capsys, data, sharded):
    work = _fresh(tmp_path, "space")
    path, out = work / "space.yaml", work / "out"
    path.write_bytes(data)
    code, _ = run(["hardware", "--space", str(path), "--out", str(out), "--json", *sharded], capsys)
    if code == 0:
        assert_complete(out, ["servers.parquet", "manifest.json"])
    else:
        assert_no_output(out)


# ------------------------------------------------------------------------- model config.json

MODEL_BASES = [
    {
        "model_type": "llama",
        "num_hidden_layers": 4,
        "hidden_size": 256,
        "num_attention_heads": 8,
        "num_key_value_heads": 2,
        "intermediate_size": 688,
        "vocab_size": 1000,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-5,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
    },
    {
        "model_type": "gpt2",
        "n_layer": 4,
        "n_embd": 128,
        "n_head": 4,
        "vocab_size": 500,
        "n_positions": 256,
    },
    {
        "model_type": "mixtral",
        "num_hidden_layers": 2,
        "hidden_size": 128,
        "num_attention_heads": 4,
        "num_key_value_heads": 1,
        "intermediate_size": 256,
        "vocab_size": 500,
        "num_local_experts": 4,
        "num_experts_per_tok": 2,
    },
    {
        "model_type": "mpt",
        "n_layers": 2,
        "d_model": 128,
        "n_heads": 4,
        "expansion_ratio": 4,
        "vocab_size": 500,
    },
    {
        "text_config": {
            "model_type": "llama",
            "num_hidden_layers": 2,
            "hidden_size": 64,
            "num_attention_heads": 4,
            "intermediate_size": 128,
            "vocab_size": 100,
        }
    },
]
MODEL_EXTRA = [
    "head_dim",
    "num_key_value_heads",
    "n_head_kv",
    "multi_query",
    "new_decoder_architecture",
    "num_local_experts",
    "num_experts_per_tok",
    "moe_intermediate_size",
    "first_k_dense_replace",
    "n_shared_experts",
    "shared_expert_intermediate_size",
    "kv_lora_rank",
    "position_embedding_type",
    "norm_type",
    "layer_norm_eps",
    "tie_word_embeddings",
    "attention_bias",
    "no_bias",
    "parallel_attn",
    "word_embed_proj_dim",
    "text_config",
    "attn_config",
    "ffn_config",
    "_name_or_path",
    "sparsity_config",
    "quantization_config",
]
_size = st.sampled_from([1, 2, 3, 7, 4096, 10**6, 10**9, 10**12]) | st.integers(1, 10**12)
MODEL_RANGES = {
    "num_hidden_layers": st.sampled_from([1, 2, 7, 96, 99_991, 100_000]),
    "hidden_size": _size,
    "intermediate_size": _size,
    "vocab_size": _size,
    "max_position_embeddings": _size,
    "head_dim": _size,
    "num_key_value_heads": st.sampled_from([1, 2, 4, 8]),
}
model_files = _document(
    st.sampled_from(MODEL_BASES).flatmap(lambda b: _mutated(b, MODEL_EXTRA)),
    _json,
    _extreme(MODEL_BASES[0], MODEL_RANGES),
)


@fuzz(MODEL_CASES)
@given(data=model_files)
def test_fuzz_model_config_show(tmp_path, capsys, data):
    work = _fresh(tmp_path, "model")
    path = work / "config.json"
    path.write_bytes(data)
    run(["models", "show", str(path), "--json"], capsys)


@pytest.fixture(scope="module")
def tiny_hardware(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz-hw")
    space = root / "space.yaml"
    space.write_text(
        "die_area_mm2: [100, 400]\nmac_ratio: 0.1\noperational_intensity: 2\n"
        "packages_per_lane: [8, 16]\n"
    )
    assert main(["hardware", "--space", str(space), "--out", str(root / "hw")]) == 0
    return root / "hw"


@fuzz(EVALUATE_CASES)
@given(data=model_files)
def test_fuzz_model_config_evaluate(tmp_path, capsys, tiny_hardware, data):
    work = _fresh(tmp_path, "evaluate")
    path, out = work / "config.json", work / "out"
    path.write_bytes(data)
    args = ["evaluate", "--model", str(path), "--hardware", str(tiny_hardware)]
    code, _ = run([*args, "--out", str(out), "--json"], capsys)
    if code == 0:
        assert_complete(out, ["manifest.json"])
        assert list(out.glob("*/pareto.parquet")) and list(out.glob("*/optimal.json"))
    else:
        assert_no_output(out)


# ------------------------------------------------------------------------------ device cards


def _device_base() -> dict:
    text = resources.files("chipletcloud").joinpath("data", "devices", "a100-80gb.json")
    return json.loads(text.read_text(encoding="utf-8"))


@st.composite
def device_cards(draw):
    base = _device_base()
    card = draw(_mutated(base, ["name", "kind", "constants", "extra", "scale_up_domain"]))
    consts = card.get("constants")
    if isinstance(consts, dict) and draw(st.sampled_from([False, True, True])):
        consts = dict(consts)
        for _ in range(draw(st.integers(1, 3))):
            key = draw(st.sampled_from(sorted(consts) + ["peak_fp8_flops", "bogus"]))
            action = draw(st.sampled_from(["drop", "value", "quantity", "unit", "scale", "scale"]))
            q = consts.get(key, {"value": 1.0, "unit": "x", "source": "fuzz"})
            if action == "drop":
                consts.pop(key, None)
            elif action == "value" and isinstance(q, dict):
                consts[key] = {**q, "value": draw(weird)}
            elif action == "scale" and isinstance(q, dict) and isinstance(q.get("value"), float):
                factor = draw(st.sampled_from([1e-300, 1e-12, 1e-3, 0.5, 2.0, 1e3, 1e12, 1e300]))
                consts[key] = {**q, "value": q["value"] * factor}
            elif action == "unit" and isinstance(q, dict):
                consts[key] = {**q, "unit": draw(junk)}
            else:
                consts[key] = draw(junk)
        card["constants"] = consts
    return card


@st.composite
def scaled_device_cards(draw):
    """A valid card with up to four constants scaled by extreme factors."""
    card = _device_base()
    consts = dict(card["constants"])
    for key in draw(st.lists(st.sampled_from(sorted(consts)), min_size=1, max_size=4)):
        factor = draw(st.sampled_from([1e-300, 1e-12, 1e-3, 0.5, 2.0, 1e3, 1e12, 1e300]))
        consts[key] = {**consts[key], "value": consts[key]["value"] * factor}
    card["constants"] = consts
    card["scale_up_domain"] = draw(st.sampled_from([1, 2, 8, 64, 10**6]))
    return card


def _device_module_available() -> bool:
    try:
        import chipletcloud.baselines.devices  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _device_module_available(), reason="no device cards (baselines.devices)")
@fuzz(DEVICE_CASES)
@given(data=_document(device_cards(), _json, scaled_device_cards()))
def test_fuzz_device_cards(tmp_path, capsys, data):
    work = _fresh(tmp_path, "device")
    path = work / "device.json"
    path.write_bytes(data)
    args = ["simulate", "--hardware", str(path), "--devices", "8", "--model", "gpt2"]
    args += ["--tp", "8", "--pp", "1", "--batch", "4", "--input-tokens", "32"]
    run([*args, "--output-tokens", "8", "--json"], capsys)


def test_fuzz_case_count():
    """The generated inputs the fuzz tests above ran, by command and exit code (printed with
    ``pytest -s``; hypothesis may stop early when a strategy runs out of new inputs)."""
    print("\nfuzz cases (command, exit code):", dict(sorted(OUTCOMES.items())))
    assert SPACE_CASES + MODEL_CASES + EVALUATE_CASES + DEVICE_CASES == int(1850 * SCALE)
