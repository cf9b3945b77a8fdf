"""Every YAML file goes through one safe, bounded loader (config.load_yaml_text): a 2 KB alias
bomb ("billion laughs", 10^9 nodes once expanded) is refused at once, not expanded."""

from __future__ import annotations

import time

import pytest

from chipletcloud import config
from chipletcloud.cli import main
from chipletcloud.config import (
    MAX_YAML_ALIASES,
    MAX_YAML_BYTES,
    load_space,
    load_yaml_text,
    read_yaml,
    resolve,
)
from chipletcloud.errors import InputError


def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """The billion laughs: ``width ** levels`` strings from ``levels * width`` aliases."""
    lines = ["a0: &a0 [" + ", ".join(['"lol"'] * width) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def test_the_bomb_is_small_and_under_the_alias_limit():
    text = alias_bomb()
    assert len(text) < 2048
    assert text.count("*") == 8 * 9 < MAX_YAML_ALIASES  # an alias count alone would let it in


def test_the_bomb_is_refused_at_once():
    t0 = time.perf_counter()
    with pytest.raises(InputError) as exc:
        load_yaml_text(alias_bomb(), "bomb.yaml", "space")
    assert time.perf_counter() - t0 < 2.0
    assert exc.value.field == "space" and exc.value.value == "bomb.yaml"
    assert str(exc.value) == (
        "space: got 'bomb.yaml'; allowed: a YAML document of at most 1,000,000 nodes, "
        "aliases expanded"
    )


def test_alias_limit_self_reference_size_and_depth():
    ok = "a: &a 1\n" + "".join(f"k{i}: *a\n" for i in range(MAX_YAML_ALIASES))
    assert load_yaml_text(ok, "ok.yaml")["k99"] == 1
    with pytest.raises(InputError, match=f"at most {MAX_YAML_ALIASES} aliases"):
        load_yaml_text(ok + "one_more: *a\n", "many.yaml")
    with pytest.raises(InputError, match="without an alias inside its own anchor"):
        load_yaml_text("x: &x [1, *x]\n", "loop.yaml")
    with pytest.raises(InputError, match=f"at most {MAX_YAML_BYTES:,} bytes"):
        load_yaml_text("#" * (MAX_YAML_BYTES + 1), "big.yaml")
    with pytest.raises(InputError, match="nested less deeply"):
        load_yaml_text("[" * 20_000 + "]" * 20_000, "deep.yaml")
    with pytest.raises(InputError, match=r"allowed: valid YAML \(line 3\)$"):
        load_yaml_text("a: 1\nb: [\n", "broken.yaml")
    with pytest.raises(InputError, match=r"allowed: valid YAML$"):  # a control character
        load_yaml_text("\x1f", "control.yaml")


def test_plain_yaml_anchors_and_merge_keys_still_load():
    text = "base: &b {die: 100, lanes: 8}\nrun:\n  <<: *b\n  die: 200\nlist: [*b, *b]\n"
    raw = load_yaml_text(text, "ok.yaml")
    assert raw["run"] == {"die": 200, "lanes": 8}
    assert raw["list"] == [{"die": 100, "lanes": 8}] * 2
    assert load_yaml_text("", "empty.yaml") is None
    assert load_yaml_text('{"a": [1, 2.5, null]}', "x.json") == {"a": [1, 2.5, None]}


def test_a_big_file_is_read_only_up_to_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "MAX_YAML_BYTES", 1000)
    big = tmp_path / "big.yaml"
    big.write_text("a: 1\n" + "#" * 5000 + "\n")
    with pytest.raises(InputError) as exc:
        read_yaml(big, "space")
    assert str(exc.value) == f"space: got {str(big)!r}; allowed: a YAML file of at most 1,000 bytes"
    small = tmp_path / "small.yaml"
    small.write_text("a: 1\n")
    assert read_yaml(small, "space") == {"a": 1}


def test_built_in_cards_and_presets_load_through_it():
    from chipletcloud.models import ccmem, thermal

    ccmem._default_params.cache_clear()
    thermal._default_params.cache_clear()
    assert ccmem._default_params() is not None and thermal._default_params() is not None
    for name in ("isca24", "v1", "authors", "ccmem"):
        assert resolve(name).preset.name == name
    assert load_space().die_area_mm2


@pytest.mark.parametrize("where", ["space", "preset"])
def test_cli_refuses_the_bomb_in_a_config_file(where, tmp_path, capsys):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb())
    out = tmp_path / "out"
    args = {
        "space": ["hardware", "--space", str(bomb), "--out", str(out)],
        "preset": ["hardware", "--preset", str(bomb), "--out", str(out)],
    }[where]
    t0 = time.perf_counter()
    code = main(args)
    elapsed = time.perf_counter() - t0
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and elapsed < 2.0
    assert len(err) == 1
    assert err[0].startswith(f"error: {where}: got '")
    assert err[0].endswith("allowed: a YAML document of at most 1,000,000 nodes, aliases expanded")
    assert not out.exists()
