"""What the CPU has (model, fast-path flags, bfloat16 units) and `--precision bf16`."""

import warnings

import keras
import pytest

from keras_attention.recipes import cpu, training

# Two processors of each kind, as /proc/cpuinfo lists them (abridged).
WITH_BF16 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse2 avx2 fma avx512f avx512_vnni avx512_bf16 avx_vnni

processor\t: 1
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse2 avx2 fma avx512f avx512_vnni avx512_bf16 avx_vnni
"""
WITH_AMX = (
    "model name\t: Intel(R) Xeon(R) Platinum 8488C\nflags\t\t: avx2 avx512f amx_tile amx_bf16\n"
)
WITHOUT_BF16 = "model name\t: Intel(R) Core(TM) i5-8250U\nflags\t\t: fpu sse2 avx2 fma\n"


@pytest.fixture
def fake_cpuinfo(tmp_path):
    def write(text):
        path = tmp_path / "cpuinfo"
        path.write_text(text)
        return str(path)

    return write


def test_cpu_info_reads_model_and_speed_flags(fake_cpuinfo):
    info = cpu.cpu_info(fake_cpuinfo(WITH_BF16))
    assert info["model"] == "AMD EPYC 9R14"
    assert info["flags"] == ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16")
    assert info["cores"] >= 1


@pytest.mark.parametrize(
    "text, expected", [(WITH_BF16, True), (WITH_AMX, True), (WITHOUT_BF16, False)]
)
def test_has_bf16_units(fake_cpuinfo, text, expected):
    assert cpu.has_bf16_units(fake_cpuinfo(text)) is expected


def test_unreadable_cpuinfo_is_unknown_not_an_error(tmp_path):
    missing = tmp_path / "no-such-file"
    assert cpu.cpu_info(missing)["flags"] is None
    assert cpu.has_bf16_units(missing) is None
    assert cpu.bf16_warning(missing) is None  # not Linux: allowed without a word


@pytest.mark.parametrize(
    "precision, policy",
    [("float32", "float32"), ("bf16", "mixed_bfloat16"), ("mixed_bfloat16", "mixed_bfloat16")],
)
def test_precision_policy(precision, policy):
    assert cpu.precision_policy(precision) == policy


@pytest.mark.parametrize("precision", ["fp16", "bfloat16", None, "BF16"])
def test_precision_policy_rejects_other_values(precision):
    with pytest.raises(ValueError, match=r"`precision` must be one of float32, bf16"):
        cpu.precision_policy(precision)


def test_bf16_without_units_warns_once_and_still_sets_the_policy(fake_cpuinfo):
    path = fake_cpuinfo(WITHOUT_BF16)
    with pytest.warns(
        UserWarning,
        match=r"this CPU \(Intel\(R\) Core\(TM\) i5-8250U\) has no "
        r"bfloat16 units.*slower than float32",
    ) as record:
        with training.precision_scope("bf16", cpuinfo=path) as policy:
            assert policy == "mixed_bfloat16"
            assert keras.config.dtype_policy().name == "mixed_bfloat16"
            assert keras.layers.Dense(2).compute_dtype == "bfloat16"
    assert len(record) == 1
    assert keras.config.dtype_policy().name == "float32"  # restored


@pytest.mark.parametrize("text", [WITH_BF16, WITH_AMX])
def test_bf16_with_units_is_silent(fake_cpuinfo, text):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with training.precision_scope("bf16", cpuinfo=fake_cpuinfo(text)):
            assert keras.layers.Dense(2).compute_dtype == "bfloat16"
    assert keras.config.dtype_policy().name == "float32"


def test_float32_never_warns_and_the_policy_is_restored_after_an_error(fake_cpuinfo):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RuntimeError, match="boom"):
            with training.precision_scope("float32", cpuinfo=fake_cpuinfo(WITHOUT_BF16)):
                raise RuntimeError("boom")
    with pytest.raises(RuntimeError):
        with training.precision_scope("bf16", cpuinfo=fake_cpuinfo(WITH_BF16)):
            raise RuntimeError("boom")
    assert keras.config.dtype_policy().name == "float32"
