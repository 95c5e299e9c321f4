"""Devices that do not exist and sizes that do not fit: one clear error naming the argument.

CUDA's absence is simulated (torch.cuda.is_available patched to False), so these tests mean the
same on a machine with a GPU; the allocation limit is patched to a small number for the same reason.
"""

from __future__ import annotations

import pytest
import torch

import ebmlab
from ebmlab import BernoulliLayer, BoltzmannMachine, _checks
from ebmlab._checks import AllocationError, check_device
from ebmlab.cli import main
from ebmlab.data import as_dataset


@pytest.fixture
def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def rbm() -> BoltzmannMachine:
    return BoltzmannMachine([BernoulliLayer(4), BernoulliLayer(3)])


@pytest.mark.parametrize(
    "move",
    [
        lambda m: m.to("cuda"),
        lambda m: m.to("cuda:0"),
        lambda m: m.to(device="cuda"),
        lambda m: m.to(torch.device("cuda", 1)),
        lambda m: m.to("cuda", torch.float64),
        lambda m: m.cuda(),
    ],
)
def test_moving_a_model_to_absent_cuda_names_the_device(no_cuda: None, rbm: BoltzmannMachine, move) -> None:
    with pytest.raises(ValueError, match=r"device 'cuda(:\d)?' is not available: .*use 'cpu'"):
        move(rbm)
    assert rbm.device.type == "cpu"


def test_datasets_refuse_absent_devices_too(no_cuda: None) -> None:
    data = as_dataset(torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"device 'cuda' is not available"):
        data.to("cuda")
    with pytest.raises(ValueError, match=r"device 'gpu0' is not a device name"):
        data.to("gpu0")
    assert data.to("cpu", torch.float64).data.dtype == torch.float64


def test_unknown_device_names_are_refused(rbm: BoltzmannMachine) -> None:
    with pytest.raises(ValueError, match=r"device 'foo' is not a device name; expected 'cpu', 'cuda'"):
        rbm.to("foo")
    with pytest.raises(TypeError, match=r"device must be a device name"):
        check_device(1.5)


def test_a_cuda_index_beyond_the_gpus_present(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match=r"device 'cuda:3' is not available: this machine has 1 CUDA device"):
        check_device("cuda:3")
    assert check_device("cuda:0") == torch.device("cuda", 0)


def test_dtype_moves_and_cpu_still_work(rbm: BoltzmannMachine) -> None:
    assert rbm.to(torch.float64).dtype == torch.float64
    assert rbm.to("cpu", torch.float32).dtype == torch.float32
    assert rbm.to(device="cpu").device.type == "cpu"


def test_load_checks_the_device_before_reading(no_cuda: None, tmp_path, rbm: BoltzmannMachine) -> None:
    path = rbm.save(tmp_path / "m.safetensors")
    with pytest.raises(ValueError, match=r"device 'cuda' is not available"):
        ebmlab.load(path, device="cuda")
    with pytest.raises(ValueError, match=r"device 'foo' is not a device name"):
        ebmlab.load(tmp_path / "absent.safetensors", device="foo")  # the device error comes first
    torch.testing.assert_close(ebmlab.load(path, device="cpu").weights[0], rbm.weights[0])


@pytest.mark.parametrize(("device", "why"), [("foo", "is not a device name"), ("cuda", "is not available")])
def test_cli_device_errors_are_one_line_with_exit_code_2(
    no_cuda: None, tmp_path, capsys: pytest.CaptureFixture[str], device: str, why: str
) -> None:
    code = main(["train", "--device", device, "--epochs", "1", "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"ebmlab: error: --device '{device}' {why}")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "run" / "model.safetensors").exists()


@pytest.fixture
def small_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend the machine has 1 MB free, so that the refusals are exact and machine-independent."""
    monkeypatch.setattr(_checks, "available_bytes", lambda device: 1_000_000)


def test_a_model_too_large_for_memory_names_the_sizes_and_bytes(small_memory: None) -> None:
    with pytest.raises(
        AllocationError,
        match=r"^layers: the weights \(784×500\) would take 1\.6 MB \(1568000 bytes\), "
        r"but only 1\.0 MB are available on cpu",
    ):
        BoltzmannMachine([BernoulliLayer(784), BernoulliLayer(500)])
    with pytest.raises(MemoryError):  # AllocationError is a MemoryError too
        BoltzmannMachine([BernoulliLayer(784), BernoulliLayer(500)])
    assert BoltzmannMachine([BernoulliLayer(400), BernoulliLayer(500)]).sizes == [400, 500]  # 800 kB fits


def test_a_sample_count_too_large_for_memory_names_n_and_bytes(small_memory: None, rbm: BoltzmannMachine) -> None:
    # 2 × n × 7 units × 4 bytes: n = 40,000 needs 2.24 MB
    with pytest.raises(AllocationError, match=r"^n: 40000 chains of 7 units would take 2\.2 MB \(2240000 bytes\)"):
        rbm.sample(40_000, steps=1)
    assert rbm.sample(1000, steps=1)[0].shape == (1000, 4)


def test_format_bytes() -> None:
    assert [_checks.format_bytes(n) for n in (999, 1000, 1_568_000, 4e12)] == [
        "999 bytes",
        "1.0 kB",
        "1.6 MB",
        "4.0 TB",
    ]


def test_cgroup_memory_limits_bound_the_available_memory(tmp_path) -> None:
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "memory.max").write_text("3000000\n")
    (v2 / "memory.current").write_text("1000000\n")
    assert _checks.cgroup_free_bytes(v2) == 2_000_000
    (v2 / "memory.max").write_text("max\n")
    assert _checks.cgroup_free_bytes(v2) is None
    v1 = tmp_path / "v1" / "memory"
    v1.mkdir(parents=True)
    (v1 / "memory.limit_in_bytes").write_text("5000\n")
    (v1 / "memory.usage_in_bytes").write_text("7000\n")
    assert _checks.cgroup_free_bytes(tmp_path / "v1") == 0
    (v1 / "memory.limit_in_bytes").write_text(f"{2**63 - 4096}\n")
    assert _checks.cgroup_free_bytes(tmp_path / "v1") is None
    assert _checks.cgroup_free_bytes(tmp_path / "absent") is None


def test_available_memory_takes_the_cgroup_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_checks, "cgroup_free_bytes", lambda: 1234)
    assert _checks.available_bytes(torch.device("cpu")) == 1234
    monkeypatch.setattr(_checks, "cgroup_free_bytes", lambda: None)
    assert _checks.available_bytes(torch.device("cpu")) > 0
    assert _checks.available_bytes(torch.device("meta")) is None
