"""Two models of one run never share a result (issue 17: two configs with the same derived
name collapsed into one result)."""

from __future__ import annotations

import json

from chipletcloud.cli import main

# a small llama-style config (fields as in a Hugging Face config.json)
CFG = {
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
}


def test_same_derived_name_gets_two_results(tmp_path, capsys, small_hardware_dir):
    paths = []
    for sub, layers in (("a", 4), ("b", 8)):  # two folders named "model": one derived name
        p = tmp_path / sub / "model" / "config.json"
        p.parent.mkdir(parents=True)
        p.write_text(json.dumps({**CFG, "num_hidden_layers": layers}))
        paths.append(str(p.parent))
    out = tmp_path / "run"
    argv = ["evaluate", "--hardware", str(small_hardware_dir), "--out", str(out), "--json"]
    assert main([*argv, "--model", paths[0], "--model", paths[1]]) == 0
    captured = capsys.readouterr()
    d = json.loads(captured.out)
    names = sorted(d["models"])
    assert names == ["model", "model-2"]
    assert "reported as model-2" in captured.err
    # each kept its own folder and result (4 and 8 layers: not the same optimum)
    a, b = (json.loads((out / n / "optimal.json").read_text()) for n in names)
    assert a != b
