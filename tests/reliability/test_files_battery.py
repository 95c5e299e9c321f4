"""A table-driven battery of damaged files, stores and bad CLI calls (issue 11, files half).

Every case asserts the exception type (or exit code 2 with one line ``ebmlab: error: …``) and that the
message names the file, store, variable or argument at fault.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, safe_open, save_file

import ebmlab
from ebmlab import BernoulliLayer, BoltzmannMachine, GaussianLayer, OneHotLayer
from ebmlab._safetensors_io import CHECKSUM_KEY, tensors_digest
from ebmlab.history import (
    Checkpoint,
    DamagedStoreError,
    Recorder,
    list_runs,
    load_checkpoint,
    open_run,
    resume,
    save_checkpoint,
)
from ebmlab.history.checkpoint import KEY
from ebmlab.train import CD, PCD, TAP, Trainer

# -- model files -------------------------------------------------------------------------------


def read_raw(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata() or {})
    return load_file(str(path)), meta


def write_raw(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, str], checksum: bool = True) -> None:
    meta = {k: v for k, v in meta.items() if k != CHECKSUM_KEY}
    if checksum:
        meta[CHECKSUM_KEY] = tensors_digest(tensors)
    save_file(tensors, str(path), metadata=meta)


def edit_spec(change: Callable[[dict[str, Any]], Any]) -> Callable[[Path], None]:
    def mutate(path: Path) -> None:
        tensors, meta = read_raw(path)
        spec = json.loads(meta["ebmlab_spec"])
        result = change(spec)
        meta["ebmlab_spec"] = json.dumps(spec if result is None else result)
        write_raw(path, tensors, meta)

    return mutate


def edit_tensors(change: Callable[[dict[str, torch.Tensor]], None], checksum: bool = True) -> Callable[[Path], None]:
    def mutate(path: Path) -> None:
        tensors, meta = read_raw(path)
        change(tensors)
        write_raw(path, tensors, meta, checksum)

    return mutate


def set_meta(key: str, value: str | None) -> Callable[[Path], None]:
    def mutate(path: Path) -> None:
        tensors, meta = read_raw(path)
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
        write_raw(path, tensors, meta)

    return mutate


def flip_last_byte(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0x10
    path.write_bytes(bytes(raw))


def flip_header_byte(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[12] = ord("\x01")  # inside the JSON header: no longer valid JSON
    path.write_bytes(bytes(raw))


def truncate(keep: int) -> Callable[[Path], None]:
    def mutate(path: Path) -> None:
        raw = path.read_bytes()
        path.write_bytes(raw[:keep])

    return mutate


def replace_with(data: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data)


def layer(i: int, **changes: Any) -> Callable[[dict[str, Any]], None]:
    def change(spec: dict[str, Any]) -> None:
        for k, v in changes.items():
            if v is ...:
                spec["layers"][i].pop(k, None)
            else:
                spec["layers"][i][k] = v

    return change


def spec_key(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(spec: dict[str, Any]) -> None:
        if value is ...:
            spec.pop(key, None)
        else:
            spec[key] = value

    return change


def to_int64(tensors: dict[str, torch.Tensor]) -> None:
    tensors["weights.0"] = tensors["weights.0"].round().to(torch.int64)


def put(key: str, index: tuple[int, ...], value: float) -> Callable[[dict[str, torch.Tensor]], None]:
    def change(tensors: dict[str, torch.Tensor]) -> None:
        tensors[key] = tensors[key].clone()
        tensors[key][index] = value

    return change


MODEL_CASES: dict[str, tuple[Callable[[Path], None], type[Exception], str]] = {
    "layers is a string": (
        edit_spec(spec_key("layers", "bernoulli:6,bernoulli:4")),
        ValueError,
        "'layers' must be a list",
    ),
    "layers missing": (edit_spec(spec_key("layers", ...)), ValueError, "'layers' must be a list"),
    "layers is a dict": (edit_spec(spec_key("layers", {"a": 1})), ValueError, "'layers' must be a list"),
    "one layer": (edit_spec(lambda s: s.__setitem__("layers", s["layers"][:1])), ValueError, "at least 2 layers"),
    "size is a float": (edit_spec(layer(0, n=6.5)), ValueError, r"layers\[0\]\.n must be a positive integer"),
    "size is an integral float": (edit_spec(layer(1, n=4.0)), ValueError, r"layers\[1\]\.n must be a positive integer"),
    "size is a string": (edit_spec(layer(0, n="6")), ValueError, r"layers\[0\]\.n must be a positive integer"),
    "size is a bool": (edit_spec(layer(1, n=True)), ValueError, r"layers\[1\]\.n must be a positive integer"),
    "size is zero": (edit_spec(layer(1, n=0)), ValueError, r"layers\[1\]\.n must be a positive integer"),
    "size is negative": (edit_spec(layer(0, n=-6)), ValueError, r"layers\[0\]\.n must be a positive integer"),
    "size is null": (edit_spec(layer(0, n=None)), ValueError, r"layers\[0\]\.n must be a positive integer"),
    "size missing": (edit_spec(layer(1, n=...)), ValueError, r"layers\[1\] \(bernoulli\) is missing its size 'n'"),
    "unknown layer type": (edit_spec(layer(1, type="tanh")), ValueError, "unknown layer type 'tanh'"),
    "layer type missing": (edit_spec(layer(0, type=...)), ValueError, "unknown layer type None"),
    "layer type upper case": (edit_spec(layer(0, type="Bernoulli")), ValueError, "unknown layer type 'Bernoulli'"),
    "layer is a string": (edit_spec(lambda s: s["layers"].__setitem__(0, "bernoulli")), ValueError, "must be a dict"),
    "onehot without states": (
        edit_spec(lambda s: s["layers"].__setitem__(1, {"type": "onehot", "sites": 2})),
        ValueError,
        "missing its size 'states'",
    ),
    "onehot with float sites": (
        edit_spec(lambda s: s["layers"].__setitem__(1, {"type": "onehot", "sites": 1.5, "states": 2})),
        ValueError,
        r"layers\[1\]\.sites must be a positive integer",
    ),
    "layer name is a number": (edit_spec(layer(0, name=3)), ValueError, r"layers\[0\]\.name must be a string"),
    "float16 spec over float32 tensors": (edit_spec(spec_key("dtype", "float16")), ValueError, "is float32 but"),
    "float64 spec over float32 tensors": (edit_spec(spec_key("dtype", "float64")), ValueError, "is float32 but"),
    "integer dtype in spec": (edit_spec(spec_key("dtype", "int64")), ValueError, "unknown dtype 'int64'"),
    "unknown dtype": (edit_spec(spec_key("dtype", "banana")), ValueError, "unknown dtype 'banana'"),
    "dtype not a string": (edit_spec(spec_key("dtype", 32)), ValueError, "unknown dtype 32"),
    "wrong format tag": (edit_spec(spec_key("format", "torch")), ValueError, "not an ebmlab model description"),
    "future version": (edit_spec(spec_key("version", 99)), ValueError, "version 99 is not supported"),
    "spec is a list": (edit_spec(lambda s: [s]), ValueError, "not an ebmlab model description"),
    "spec is not JSON": (set_meta("ebmlab_spec", "{layers: ["), ValueError, "corrupted model description"),
    "no spec": (set_meta("ebmlab_spec", None), ValueError, "not an ebmlab model"),
    "int64 tensors": (edit_tensors(to_int64), ValueError, "tensor weights.0 is int64 but the description says float32"),
    "float64 tensors": (
        edit_tensors(lambda t: t.__setitem__("weights.0", t["weights.0"].double())),
        ValueError,
        "weights.0 is float64",
    ),
    "NaN weight": (edit_tensors(put("weights.0", (1, 2), float("nan"))), ValueError, "weights.0 holds NaN or Inf"),
    "Inf weight": (edit_tensors(put("weights.0", (0, 0), float("inf"))), ValueError, "weights.0 holds NaN or Inf"),
    "NaN bias": (edit_tensors(put("layers.0.bias", (3,), float("nan"))), ValueError, "layers.0.bias holds NaN"),
    "missing tensor": (edit_tensors(lambda t: t.__delitem__("weights.0")), ValueError, r"missing \['weights.0'\]"),
    "extra tensor": (
        edit_tensors(lambda t: t.__setitem__("weights.1", torch.zeros(2, 2))),
        ValueError,
        r"unexpected \['weights.1'\]",
    ),
    "transposed weights": (
        edit_tensors(lambda t: t.__setitem__("weights.0", t["weights.0"].T.contiguous())),
        ValueError,
        r"weights.0 has shape \(4, 6\), expected \(6, 4\)",
    ),
    "flipped data byte": (flip_last_byte, ValueError, "corrupted: the checksum"),
    "changed weight, old checksum": (
        edit_tensors(put("weights.0", (0, 0), 0.5), checksum=False),
        ValueError,
        "",  # written without a checksum: loads (see test below); replaced in the battery by the next case
    ),
    "flipped header byte": (flip_header_byte, ValueError, "not a readable safetensors model file"),
    "truncated file": (truncate(-7), ValueError, "not a readable safetensors model file"),
    "header only": (truncate(40), ValueError, "not a readable safetensors model file"),
    "empty file": (replace_with(b""), ValueError, "not a readable safetensors model file"),
    "garbage file": (replace_with(b"\x00garbage" * 40), ValueError, "not a readable safetensors model file"),
    "json file": (replace_with(b'{"layers": []}'), ValueError, "not a readable safetensors model file"),
    "a pickle": (replace_with(b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00K\x01."), ValueError, "not a readable"),
}
del MODEL_CASES["changed weight, old checksum"]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "model.safetensors"
    BoltzmannMachine([BernoulliLayer(6), BernoulliLayer(4)], seed=1).save(path)
    return path


@pytest.mark.parametrize("case", sorted(MODEL_CASES))
def test_damaged_model_file_is_refused_naming_the_file(case: str, model_file: Path, tmp_path: Path) -> None:
    mutate, kind, message = MODEL_CASES[case]
    path = tmp_path / "m.safetensors"
    shutil.copy(model_file, path)
    mutate(path)
    with pytest.raises(kind, match=message) as info:
        ebmlab.load(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("what", ["missing file", "a folder"])
def test_model_path_that_is_no_file(what: str, tmp_path: Path) -> None:
    path = tmp_path / "nothing.safetensors"
    if what == "a folder":
        path.mkdir()
    with pytest.raises(FileNotFoundError, match="no model file at") as info:
        ebmlab.load(path)
    assert str(path) in str(info.value)


def test_file_without_a_checksum_still_loads(model_file: Path, tmp_path: Path) -> None:
    path = tmp_path / "old.safetensors"
    tensors, meta = read_raw(model_file)
    write_raw(path, tensors, meta, checksum=False)
    assert CHECKSUM_KEY not in read_raw(path)[1]
    loaded = ebmlab.load(path)
    assert torch.equal(loaded.weights[0].detach(), tensors["weights.0"])


@pytest.mark.parametrize(
    "model",
    [
        BoltzmannMachine([BernoulliLayer(6), BernoulliLayer(4)], seed=2),
        BoltzmannMachine([GaussianLayer(5), OneHotLayer(2, 3)], seed=2).double(),
        BoltzmannMachine([OneHotLayer(2, 3), BernoulliLayer(4), BernoulliLayer(3)], seed=2),
    ],
    ids=["rbm", "gaussian-onehot-float64", "dbm"],
)
def test_saved_models_round_trip_with_their_checksum(model: BoltzmannMachine, tmp_path: Path) -> None:
    path = model.save(tmp_path / "m.safetensors")
    meta = read_raw(path)[1]
    assert meta[CHECKSUM_KEY] == tensors_digest(read_raw(path)[0])
    loaded = ebmlab.load(path)
    assert loaded.spec() == model.spec()
    for a, b in zip(loaded.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert not list(tmp_path.glob("*.tmp"))


# -- checkpoints -------------------------------------------------------------------------------


def data() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return (torch.rand(40, 6, generator=g) < 0.4).float()


def make_trainer(layers: list[Any] | None = None, method: Any = None, optimizer: Any = torch.optim.Adam, **kw: Any):
    model = BoltzmannMachine(layers or [BernoulliLayer(6), BernoulliLayer(4)], seed=1)
    return Trainer(
        model,
        method or PCD(k=1, chains=8),
        optimizer=optimizer,
        lr=1e-2,
        batch_size=10,
        seed=0,
        progress=False,
        metrics={},
        **kw,
    )


@pytest.fixture(scope="module")
def checkpoint_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "checkpoint.safetensors"
    trainer = make_trainer()
    trainer.callbacks.append(Checkpoint(path))
    trainer.fit(data(), 2)
    return path


def edit_doc(change: Callable[[dict[str, Any]], Any]) -> Callable[[Path], None]:
    def mutate(path: Path) -> None:
        tensors, meta = read_raw(path)
        doc = json.loads(meta[KEY])
        result = change(doc)
        meta[KEY] = json.dumps(doc if result is None else result)
        write_raw(path, tensors, meta)

    return mutate


def state_key(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        for item in doc["state"]["__dict__"]:
            if item[0] == key:
                item[1] = value

    return change


CHECKPOINT_CASES: dict[str, tuple[Callable[[Path], None], type[Exception], str]] = {
    "broken JSON": (set_meta(KEY, '{"format": "ebmlab.checkpoint", '), ValueError, "not valid JSON"),
    "JSON list": (set_meta(KEY, "[1, 2]"), ValueError, "unsupported checkpoint format"),
    "wrong format": (edit_doc(lambda d: d.__setitem__("format", "other")), ValueError, "unsupported checkpoint format"),
    "future version": (edit_doc(lambda d: d.__setitem__("version", 2)), ValueError, "unsupported checkpoint format"),
    "negative epoch": (edit_doc(state_key("epoch", -3)), ValueError, "epoch must be a non-negative integer, got -3"),
    "float epoch": (edit_doc(state_key("epoch", 2.5)), ValueError, "epoch must be a non-negative integer, got 2.5"),
    "string epoch": (edit_doc(state_key("epoch", "2")), ValueError, "epoch must be a non-negative integer"),
    "bool epoch": (edit_doc(state_key("epoch", True)), ValueError, "epoch must be a non-negative integer"),
    "negative step": (edit_doc(state_key("step", -1)), ValueError, "step must be a non-negative integer"),
    "tensor reference to nothing": (
        edit_doc(state_key("generator", {"__tensor__": "t999"})),
        ValueError,
        "does not match its tensors",
    ),
    "state is a list": (edit_doc(lambda d: d.__setitem__("state", [1, 2])), ValueError, "not a trainer state"),
    "no checkpoint metadata": (set_meta(KEY, None), ValueError, "not an ebmlab checkpoint"),
    "flipped data byte": (flip_last_byte, ValueError, "corrupted: the checksum"),
    "truncated": (truncate(-5), ValueError, "not a readable safetensors checkpoint file"),
    "garbage": (replace_with(b"\xff" * 64), ValueError, "not a readable safetensors checkpoint file"),
    "empty": (replace_with(b""), ValueError, "not a readable safetensors checkpoint file"),
}


@pytest.mark.parametrize("case", sorted(CHECKPOINT_CASES))
def test_damaged_checkpoint_is_refused_naming_the_file(case: str, checkpoint_file: Path, tmp_path: Path) -> None:
    mutate, kind, message = CHECKPOINT_CASES[case]
    path = tmp_path / "c.safetensors"
    shutil.copy(checkpoint_file, path)
    mutate(path)
    with pytest.raises(kind, match=message) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
    trainer = make_trainer()
    with pytest.raises(kind, match=message):
        resume(trainer, path)
    assert trainer.epoch == 0


def test_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no checkpoint file at") as info:
        resume(make_trainer(), tmp_path / "none.safetensors")
    assert "none.safetensors" in str(info.value)


class StepLR:
    def __call__(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
        return torch.optim.lr_scheduler.StepLR(optimizer, 1)


MISMATCH_CASES: dict[str, tuple[Callable[[], Trainer], str]] = {
    "other hidden size": (lambda: make_trainer([BernoulliLayer(6), BernoulliLayer(5)]), "bernoulli:6,bernoulli:5"),
    "other visible size": (lambda: make_trainer([BernoulliLayer(7), BernoulliLayer(4)]), "bernoulli:7,bernoulli:4"),
    "gaussian visible": (lambda: make_trainer([GaussianLayer(6), BernoulliLayer(4)]), "gaussian:6,bernoulli:4"),
    "onehot hidden": (lambda: make_trainer([BernoulliLayer(6), OneHotLayer(1, 4)]), "onehot:1x4"),
    "deeper model": (
        lambda: make_trainer([BernoulliLayer(6), BernoulliLayer(4), BernoulliLayer(3)]),
        "bernoulli:6,bernoulli:4,bernoulli:3",
    ),
    "float64 model": (
        lambda: Trainer(
            BoltzmannMachine([BernoulliLayer(6), BernoulliLayer(4)]).double(),
            PCD(chains=8),
            lr=1e-2,
            batch_size=10,
            progress=False,
        ),
        "float64",
    ),
    "CD trainer": (lambda: make_trainer(method=CD(k=1)), "method 'pcd', but the trainer uses 'cd'"),
    "TAP trainer": (lambda: make_trainer(method=TAP()), "but the trainer uses 'tap'"),
    "SGD optimizer": (lambda: make_trainer(optimizer=torch.optim.SGD), "optimizer 'Adam', but the trainer has 'SGD'"),
    "RMSprop optimizer": (lambda: make_trainer(optimizer=torch.optim.RMSprop), "but the trainer has 'RMSprop'"),
    "with a scheduler": (lambda: make_trainer(scheduler=StepLR()), "scheduler None, but the trainer has 'StepLR'"),
    "other chain count": (lambda: make_trainer(method=PCD(k=1, chains=5)), "chains"),
}


@pytest.mark.parametrize("case", sorted(MISMATCH_CASES))
def test_checkpoint_of_another_model_method_or_optimizer_is_refused(case: str, checkpoint_file: Path) -> None:
    build, message = MISMATCH_CASES[case]
    trainer = build()
    with pytest.raises(ValueError, match=message) as info:
        resume(trainer, checkpoint_file)
    assert str(checkpoint_file) in str(info.value)
    assert trainer.epoch == 0


def legacy(checkpoint_file: Path, tmp_path: Path) -> Path:
    """The checkpoint without its ``info`` (as written before it was recorded)."""
    path = tmp_path / "legacy.safetensors"
    shutil.copy(checkpoint_file, path)
    edit_doc(lambda d: d.__delitem__("info"))(path)
    return path


LEGACY_CASES: dict[str, tuple[Callable[[], Trainer], str]] = {
    "other sizes": (
        lambda: make_trainer([BernoulliLayer(6), BernoulliLayer(5)]),
        r"model tensor [\w.]+ is \(.*\), the trainer's model has",
    ),
    "gaussian visible": (lambda: make_trainer([GaussianLayer(6), BernoulliLayer(4)]), "holds model tensors"),
    "SGD optimizer": (lambda: make_trainer(optimizer=torch.optim.SGD), "another kind of optimizer"),
    "CD trainer": (lambda: make_trainer(method=CD(k=1)), r"holds method state \['particles'\]"),
    "other chain count": (lambda: make_trainer(method=PCD(k=1, chains=5)), "chains=5"),
}


@pytest.mark.parametrize("case", sorted(LEGACY_CASES))
def test_checkpoint_without_info_is_still_checked_by_structure(
    case: str, checkpoint_file: Path, tmp_path: Path
) -> None:
    path = legacy(checkpoint_file, tmp_path)
    build, message = LEGACY_CASES[case]
    with pytest.raises(ValueError, match=message) as info:
        resume(build(), path)
    assert str(path) in str(info.value)


def test_checkpoint_without_info_resumes_a_matching_trainer(checkpoint_file: Path, tmp_path: Path) -> None:
    trainer = resume(make_trainer(), legacy(checkpoint_file, tmp_path))
    assert trainer.epoch == 2 and trainer.method.particles is not None


def test_save_checkpoint_records_what_it_belongs_to(tmp_path: Path) -> None:
    trainer = make_trainer()
    path = save_checkpoint(tmp_path / "c", trainer.state_dict())
    assert "info" not in json.loads(read_raw(path)[1][KEY])
    trainer.fit(data(), 1)
    Checkpoint(tmp_path / "d").save(trainer.state)
    info = json.loads(read_raw(tmp_path / "d")[1][KEY])["info"]
    assert info["method"]["name"] == "pcd" and info["optimizer"] == "Adam" and info["scheduler"] is None
    assert info["spec"] == trainer.model.spec()


# -- run stores --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("store") / "history.zarr"
    trainer = make_trainer()
    trainer.callbacks.append(Recorder(path, snapshot_every=1, particles=5, bins=4, energy_rows=20))
    trainer.fit(data(), 3)
    return path


def remove(rel: str) -> Callable[[Path], None]:
    def mutate(path: Path) -> None:
        target = path / rel
        shutil.rmtree(target) if target.is_dir() else target.unlink()

    return mutate


def overwrite(rel: str, payload: bytes) -> Callable[[Path], None]:
    return lambda path: (path / rel).write_bytes(payload)


def cut(rel: str, keep: int) -> Callable[[Path], None]:
    def mutate(path: Path) -> None:
        raw = (path / rel).read_bytes()
        (path / rel).write_bytes(raw[:keep])

    return mutate


def attr(key: str, value: Any) -> Callable[[Path], None]:
    def mutate(path: Path) -> None:
        meta = json.loads((path / "zarr.json").read_text())
        meta["attributes"][key] = value
        (path / "zarr.json").write_text(json.dumps(meta))

    return mutate


def array_meta(name: str, key: str, value: Any) -> Callable[[Path], None]:
    def mutate(path: Path) -> None:
        meta = json.loads((path / name / "zarr.json").read_text())
        meta[key] = value
        (path / name / "zarr.json").write_text(json.dumps(meta))

    return mutate


def both(*mutations: Callable[[Path], None]) -> Callable[[Path], None]:
    def mutate(path: Path) -> None:
        for m in mutations:
            m(path)

    return mutate


def drop_from_variables(name: str) -> Callable[[Path], None]:
    def mutate(path: Path) -> None:
        meta = json.loads((path / "zarr.json").read_text())
        meta["attributes"]["variables"]["nothere"] = meta["attributes"]["variables"][name]
        (path / "zarr.json").write_text(json.dumps(meta))

    return mutate


STORE_CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "deleted metric chunk": (remove("metric_loss/c/0"), "'metric_loss': chunk c/0"),
    "deleted epoch chunk": (remove("epoch/c/0"), "'epoch': chunk c/0"),
    "deleted weights chunk": (remove("weights_0/c/2/0/0"), "'weights_0': chunk c/2/0/0"),
    "deleted bias chunk": (remove("hidden_bias/c/0/0"), "'hidden_bias': chunk c/0/0"),
    "deleted fantasy chunk": (remove("fantasy/c/1/0/0"), "'fantasy': chunk c/1/0/0"),
    "deleted histogram chunk": (remove("energy_hist_data/c/3/0"), "'energy_hist_data': chunk c/3/0"),
    "deleted snapshot epoch chunk": (remove("snapshot_epoch/c/0"), "'snapshot_epoch': chunk c/0"),
    "garbage fantasy chunk": (overwrite("fantasy/c/0/0/0", b"\x01garbage" * 9), "'fantasy' cannot be read"),
    "truncated fantasy chunk": (cut("fantasy/c/0/0/0", 11), "'fantasy' cannot be read"),
    "empty fantasy chunk": (overwrite("fantasy/c/0/0/0", b""), "'fantasy' cannot be read"),
    "garbage bias chunk": (overwrite("visible_bias/c/1/0", b"zz" * 5), "'visible_bias' cannot be read"),
    "garbage metric chunk": (overwrite("metric_loss/c/0", b"\x00" * 13), "'metric_loss' cannot be read"),
    "truncated metric chunk": (cut("metric_loss/c/0", 100), "'metric_loss' cannot be read"),
    "truncated epoch chunk": (cut("epoch/c/0", 9), "'epoch' cannot be read"),
    "garbage weights chunk": (overwrite("weights_0/c/1/0/0", b"\x07" * 5), "'weights_0' cannot be read"),
    "removed variable": (remove("metric_loss"), "'metric_loss' is missing or unreadable"),
    "removed weights": (remove("weights_0"), "'weights_0' is missing or unreadable"),
    "removed epoch variable": (remove("epoch"), "'epoch' is missing or unreadable"),
    "removed array metadata": (remove("metric_lr/zarr.json"), "'metric_lr' is missing or unreadable"),
    "garbage array metadata": (overwrite("metric_lr/zarr.json", b"{nope"), "'metric_lr' is missing or unreadable"),
    "array metadata of another shape": (
        array_meta("fantasy", "shape", [16, 5]),
        "'fantasy'",
    ),
    "variable listed but absent": (drop_from_variables("metric_loss"), "'nothere' is missing"),
    "epochs_done raised": (attr("epochs_done", 5), "'epoch' does not hold 5 rising epoch numbers"),
    "epochs_done past the arrays": (attr("epochs_done", 900), "fewer than the 900"),
    "epochs_done negative": (attr("epochs_done", -1), "epochs_done must be a non-negative integer"),
    "epochs_done a string": (attr("epochs_done", "3"), "epochs_done must be a non-negative integer"),
    "epochs_done a float": (attr("epochs_done", 2.5), "epochs_done must be a non-negative integer"),
    "epochs_done null": (attr("epochs_done", None), "epochs_done must be a non-negative integer"),
    "snapshots_done raised": (attr("snapshots_done", 6), r"variable '\w+': chunk c/4 \(rows 4..4\) is missing"),
    "snapshots_done past the arrays": (attr("snapshots_done", 99), "fewer than the 99"),
    "snapshots_done negative": (attr("snapshots_done", -2), "snapshots_done must be a non-negative integer"),
    "legacy store, snapshots_done raised": (
        both(attr("all_chunks_written", None), attr("snapshots_done", 6)),
        "'snapshot_epoch' holds unwritten rows",
    ),
    "legacy store, deleted epoch chunk": (
        both(attr("all_chunks_written", None), remove("epoch/c/0")),
        r"'epoch' does not hold 3 rising epoch numbers \(got \[-1, -1, -1\]",
    ),
    "variables not a map": (attr("variables", ["metric_loss"]), "attribute 'variables' is not a map"),
    "variables with bad dims": (attr("variables", {"metric_loss": "epoch"}), "attribute 'variables' is not a map"),
}


@pytest.mark.parametrize("case", sorted(STORE_CASES))
def test_damaged_store_raises_one_error_naming_store_and_variable(case: str, store: Path, tmp_path: Path) -> None:
    mutate, message = STORE_CASES[case]
    path = tmp_path / "run.zarr"
    shutil.copytree(store, path)
    mutate(path)
    with pytest.raises(DamagedStoreError, match=message) as info:
        open_run(path).load()
    assert f"run store {path}" in str(info.value)


@pytest.mark.parametrize("case", ["group metadata deleted", "group metadata garbage", "not a run store"])
def test_store_whose_group_is_gone_is_not_a_run(case: str, store: Path, tmp_path: Path) -> None:
    path = tmp_path / "run.zarr"
    shutil.copytree(store, path)
    if case == "group metadata deleted":
        (path / "zarr.json").unlink()
    elif case == "group metadata garbage":
        (path / "zarr.json").write_text("{")
    else:
        attr("format", "something.else")(path)
    with pytest.raises(ValueError, match="is not a run-history store") as info:
        open_run(path)
    assert str(path) in str(info.value)
    assert list_runs(tmp_path) == []


def test_an_intact_copy_of_the_store_reads_back(store: Path, tmp_path: Path) -> None:
    path = tmp_path / "run.zarr"
    shutil.copytree(store, path)
    ds = open_run(path)
    np.testing.assert_array_equal(ds.epoch, [1, 2, 3])
    np.testing.assert_array_equal(ds.snapshot_epoch, [0, 1, 2, 3])
    assert not np.isnan(ds.metric_loss.values).any() and ds.attrs["status"] == "finished"


def test_lazily_read_arrays_name_the_variable_when_damaged(tmp_path: Path) -> None:
    path = tmp_path / "big.zarr"
    trainer = Trainer(
        BoltzmannMachine([BernoulliLayer(600), BernoulliLayer(500)]),
        CD(),
        lr=1e-3,
        batch_size=10,
        progress=False,
        metrics={},
        callbacks=[Recorder(path, snapshot_every=1, particles=2, bins=3, energy_rows=5)],
    )
    trainer.fit((torch.rand(20, 600) < 0.5).float(), 1)
    (path / "weights_0" / "c" / "1" / "0" / "0").write_bytes(b"\x00garbage")
    ds = open_run(path)  # weights are above 1 MiB: read lazily
    assert float(ds.metric_loss[0]) == trainer.history["loss"][0]
    with pytest.raises(DamagedStoreError, match=f"run store {path}: variable 'weights_0' cannot be read"):
        ds.weights_0.load()
