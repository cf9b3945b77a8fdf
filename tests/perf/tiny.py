"""A hand-computable transformer and chip system shared by the simulator tests.

The transformer: d = 4, 2 heads of dim 2, MLP 4 -> 16 -> 4 (plain), no embeddings; attention has
4 x (4 + 2 x kv_width) + 4 x 4 weights. The chips: 1 TFLOP/s, 100 GB/s of memory, 10 GB/s chip
links, 1 GB/s server links, 1 us a chip hop (each overridable).
"""

from __future__ import annotations

from chipletcloud.perf.workload import LayerShape, System


def tiny_shape(layers=2, kv_heads=2) -> LayerShape:
    kvw = kv_heads * 2
    return LayerShape(
        name="tiny",
        num_layers=layers,
        hidden=4,
        heads=2,
        kv_heads=kv_heads,
        head_dim=2,
        attn_params=4 * (4 + 2 * kvw) + 16,
        mlp_params_stored=128,
        mlp_params_per_token=128,
        experts=0,
        experts_per_tok=0,
        expert_params=0.0,
        moe_layer_share=0.0,
        head_params=0.0,
        head_matmul_params=0.0,
    )


def tiny_system(
    chips_per_server=2.0, chip_bw=1e10, server_bw=1e9, flops=1e12, alpha=1e-6, mem=1e9
) -> System:
    """One design row."""
    return System.broadcast(
        flops=flops,
        mem_bytes=mem,
        mem_bw=1e11,
        chip_link_bw=chip_bw,
        server_link_bw=server_bw,
        chips_per_server=chips_per_server,
        hop_latency_s=alpha,
        fma_j=1e-12,
        mem_j_per_byte=1e-12,
        act_j_per_byte=1e-12,
        static_w_per_chip=0.5,
        flops_eff=1.0,
        mem_eff=1.0,
        op_overhead_s=0.0,
        clock_hz=1e9,  # the v1 systolic array: 1 GHz, as the 7 nm card
    )
