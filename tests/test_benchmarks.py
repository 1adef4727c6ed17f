"""Smoke tests of the benchmark scripts: each `--quick` run writes its CSV.

Each script runs in a subprocess (as a user runs it) with `--quick` and a
CSV destination under `tmp_path`; the test checks the columns and that the
numbers are finite and positive. Runs that take more than ~30 s on a
2-core CPU are marked slow.
"""

import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pandas as pd
import pytest

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"

# The machine columns every benchmark CSV has (benchmarks/_common.py: machine).
MACHINE = ["cpu", "cpu_flags", "cores", "load_start", "load_end"]
CASES = {
    "attention": (
        ["--shapes", "2x16x32x4", "--repeats", "1", "--warmup", "1", "--cpu-allocator", "bfc"],
        [
            "shape",
            "dtype",
            "mode",
            "ours",
            "ours_ms",
            "keras_ms",
            "keras_hub_ms",
            "fastest_peer",
            "ratio",
            "gflops",
            "peak_gflops",
            "pct_of_peak",
            "cpu_allocator",
        ],
        ["ours_ms", "keras_ms", "keras_hub_ms", "ratio", "gflops", "peak_gflops"],
    ),
    "throughput": (
        [
            "--configs",
            "d2l",
            "--compile",
            "auto",
            "--steps",
            "2",
            "--rounds",
            "1",
            "--warmup-steps",
            "1",
        ],
        [
            "config",
            "compile",
            "batch",
            "num_steps",
            "ours_tokens_per_s",
            "keras_hub_tokens_per_s",
            "ratio",
            "ours_last_loss",
            "keras_hub_last_loss",
            "cpu_allocator",
        ],
        ["ours_tokens_per_s", "keras_hub_tokens_per_s", "ratio"],
    ),
    "decoding": (
        ["--tokens", "4"],
        [
            "search",
            "compile",
            "batch",
            "output_tokens",
            "cached_sent_per_s",
            "uncached_sent_per_s",
            "cache_speedup",
            "token_agreement",
            *MACHINE,
        ],
        ["cached_sent_per_s", "uncached_sent_per_s", "cache_speedup"],
    ),
    "mixed_precision": (
        ["--steps", "4", "--chunk", "2", "--batch-size", "8"],
        [
            "model",
            "mixed_policy",
            "float32_step_ms",
            "mixed_step_ms",
            "speedup",
            "float32_final_loss",
            "mixed_final_loss",
            "loss_difference",
        ],
        ["float32_step_ms", "mixed_step_ms", "speedup", "float32_final_loss", "mixed_final_loss"],
    ),
    "small_models": (
        ["--runs", "recipe-tensorflow,torch-loop-1t", "--steps", "8"],
        [
            "run",
            "backend",
            "steps",
            "import_s",
            "setup_s",
            "first_step_s",
            "steady_ms",
            "total_s",
            "val_loss",
            "after_fit_s",
            "files_s",
            "samples_s",
            "ratio",
            *MACHINE,
        ],
        ["import_s", "total_s", "val_loss", "ratio"],
    ),
    "serving": (
        ["--repeats", "1", "--batches", "1,2"],
        ["case", "unit", "batch", "p50_ms", "p99_ms", "per_s", *MACHINE],
        ["p50_ms", "p99_ms", "per_s"],
    ),
    "gpu_mfu": (
        ["--steps", "2"],
        [
            "device",
            "policy",
            "step_ms",
            "tokens_per_s",
            "model_tflop_per_step",
            "achieved_tflops",
            "peak_tflops",
            "peak_source",
            "mfu_pct",
            "matmul_bf16_tflops",
            "pct_of_matmul",
        ],
        ["step_ms", "achieved_tflops", "peak_tflops", "mfu_pct"],
    ),
    "variants": (
        ["--rows", "learned,rotary,rotary+ntk2x,mqa_kv1,lora_r4,int8", "--data", "corpus"],
        [
            "variant",
            "val_loss",
            "val_ppl",
            "loss_2x",
            "train_tokens_per_s",
            "decode_tokens_per_s",
            "infer_tokens_per_s",
            "kv_bytes_per_token",
            "params",
            "trainable_params",
            "model_bytes",
            "cpu",
            "cpu_flags",
        ],
        [
            "val_loss",
            "val_ppl",
            "loss_2x",
            "train_tokens_per_s",
            "decode_tokens_per_s",
            "kv_bytes_per_token",
            "params",
            "trainable_params",
            "model_bytes",
        ],
    ),
}
SLOW = {
    "attention",
    "throughput",
    "mixed_precision",
    "gpu_mfu",
    "variants",
    "small_models",
    "serving",
}


def run_quick(name, tmp_path):
    out = tmp_path / f"{name}.csv"
    extra, _, _ = CASES[name]
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{name}.py"), "--quick", "--out", str(out), *extra],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return pd.read_csv(out)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=[pytest.mark.slow] if n in SLOW else [])
        for n in CASES
        if n != "variants"
    ],
)
def test_quick_run_writes_csv(name, tmp_path):
    check_quick_run(name, run_quick(name, tmp_path), tmp_path)


def check_quick_run(name, frame, tmp_path):
    _, columns, positive = CASES[name]
    assert len(frame) >= 1
    assert set(columns) <= set(frame.columns), sorted(set(columns) - set(frame.columns))
    values = frame[positive].to_numpy(dtype=float)
    assert np.all(np.isfinite(values)) and np.all(values > 0)
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


@pytest.mark.slow
def test_variants_card_rows_measure_what_they_claim(tmp_path):
    frame = run_quick("variants", tmp_path)
    check_quick_run("variants", frame, tmp_path)
    frame = frame.set_index("variant")
    assert list(frame.index) == ["learned", "rotary", "mqa_kv1", "rotary+ntk2x", "lora_r4", "int8"]
    # Multi-query attention caches one head of the four: a quarter of the bytes.
    assert (
        frame.loc["mqa_kv1", "kv_bytes_per_token"] * 4 == frame.loc["learned", "kv_bytes_per_token"]
    )
    assert frame.loc["lora_r4", "trainable_params"] < frame.loc["learned", "trainable_params"] / 4
    assert frame.loc["int8", "model_bytes"] < frame.loc["learned", "model_bytes"] / 2
    assert frame.loc["int8", "logit_cosine"] > 0.99
    assert frame.loc["rotary+ntk2x", "params"] == frame.loc["rotary", "params"]


def test_attention_flops_formula():
    backend = os.environ.get("KERAS_BACKEND")
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import attention
        import gpu_mfu  # sets KERAS_BACKEND=jax for its own process: restored below
    finally:
        sys.path.remove(str(BENCHMARKS))
        if backend is None:
            os.environ.pop("KERAS_BACKEND", None)
        else:
            os.environ["KERAS_BACKEND"] = backend
    # B2 T4 D8 H2: projections 4 * 2*2*4*8*8 = 4096, attention 2 * 2*2*2*4*4*4 = 1024.
    assert attention.mha_flops(2, 4, 8, 2) == 3 * (4096 + 1024)
    # One block, D4 F8 V10 T2 B1: per token 2 * (64 + 64 + 40) + 2*2*2*4 = 368.
    assert gpu_mfu.step_flops(10, 4, 8, 1, 2, 1) == 3 * 368 * 2


def _import_benchmark(name):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_machine_columns_name_the_cpu_and_its_flags():
    common = _import_benchmark("_common")
    machine = common.machine()
    assert set(MACHINE) == set(machine)
    assert machine["cores"] >= 1 and machine["cpu"]
    frame = common.with_machine(pd.DataFrame({"x": [1.0, 2.0]}))
    assert list(frame.columns) == ["x", *MACHINE] and frame["cpu"].nunique() == 1
    assert machine["cpu"] in common.machine_line() and "load average" in common.machine_line()


def test_small_models_split_times_and_schedule():
    small_models = _import_benchmark("small_models")
    # Fit starts at 0; the first batch ends at 5 (compile), then 0.1 s per step; an epoch
    # boundary at 6.0 (validation) is not counted as a step; 2 epochs of 6 steps.
    stamps = [("epoch", 0.0)] + [(i, 5.0 + 0.1 * i) for i in range(6)]
    stamps += [("epoch", 6.0)] + [(i, 6.5 + 0.1 * i) for i in range(6)]  # Keras counts from 0
    first, steady = small_models.split_times(0.0, stamps)
    assert first == 5.0 and steady == pytest.approx(100.0)
    assert small_models.steps_done(stamps) == 12
    # steps_per_execution=4: one batch end per execution, at its last step's index.
    assert small_models.steps_done([("epoch", 0.0), (3, 1.0), (7, 2.0), (9, 3.0)]) == 10
    lr_at = small_models.cosine_schedule(1.0, 100)  # 5 warmup steps, then cosine to 0
    assert lr_at(0) == 0.0 and lr_at(5) == 1.0 and lr_at(100) == pytest.approx(0.0)
    assert lr_at(52) == pytest.approx(0.5, abs=0.02)


def test_small_models_torch_loop_matches_the_keras_gpt_size():
    pytest.importorskip("torch")
    import torch

    from keras_attention import models

    small_models = _import_benchmark("small_models")
    size = small_models.SIZES["small"]
    ours = models.gpt(
        31,
        size["num_hiddens"],
        size["ffn_num_hiddens"],
        size["num_heads"],
        size["num_blks"],
        0.1,
        max_len=small_models.SEQ_LEN,
        pad_id=None,
    )
    loop = small_models.TorchGPT(torch, 31, size)
    assert sum(p.numel() for p in loop.parameters()) == ours.count_params()
    assert loop(torch.zeros(2, 5, dtype=torch.long)).shape == (2, 5, 31)
    # Both start the position table like the token embeddings: U(-0.05, 0.05).
    initializer = ours.get_layer("positions").embeddings_initializer
    assert isinstance(initializer, keras.initializers.RandomUniform)
    assert (initializer.minval, initializer.maxval) == (-0.05, 0.05)
    assert float(loop.positions.detach().abs().max()) <= 0.05


@pytest.mark.tensorflow_only(reason="the IndexedSlices gradient is TensorFlow's")
def test_small_models_lockstep_ours_and_the_loop_see_the_same_numbers(monkeypatch):
    # Same start, same batches, no dropout: the recipe's model and optimizer
    # against the PyTorch loop, step by step. With the token table's gradient
    # left as TensorFlow's IndexedSlices (before `take_rows`), Keras' Adam
    # takes other steps for repeated ids and the losses part within steps.
    pytest.importorskip("torch")
    import torch

    import keras_attention.layers.embedding as embedding

    small_models = _import_benchmark("small_models")
    torch.set_num_threads(1)
    size = small_models.SIZES["quick"]
    ours, loop = small_models.lockstep(torch, size, 25, 2e-3, seed=0)
    np.testing.assert_allclose(ours, loop, atol=2e-4)
    assert ours[-1] < ours[0] - 0.1  # it learned something

    monkeypatch.setattr(
        embedding, "take_rows", lambda table, ids: keras.ops.take(table, ids, axis=0)
    )
    sparse, loop = small_models.lockstep(torch, size, 25, 2e-3, seed=0)
    assert max(abs(a - b) for a, b in zip(sparse, loop)) > 1e-3
