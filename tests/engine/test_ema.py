"""EMA of the weights (src/engine/ema.py): updates against values computed by hand in numpy,
updates only when an optimizer update was applied, evaluation swapped in and out without
touching the raw weights, checkpoints that resume the average exactly, and eval.py --ema."""
import json
import math
import os
import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import mindspore as ms
from mindspore import Tensor, nn

from src.engine.checkpoint import (CheckpointError, ema_weights, load_pretrained, read_checkpoint,
                                   restore_training_state, save_checkpoint)
from src.engine.ema import EMA, ModelEMA, ema_decay_at, ema_update_callable
from src.engine.evaluate import evaluate
from src.engine.trainer import TrainState, Validation
from tests.helpers.training import make_tiny_dataset, run_py, tiny_config, tiny_eval_model

pytestmark = pytest.mark.usefixtures("pynative")  # the nets run op by op; the EMA update is jitted anyway


class TinyNet(nn.Cell):
    """Dense + BatchNorm: trainable weights and moving statistics, as the zoo's models have."""
    eval_output = "logits"

    def __init__(self, seed=0):
        super().__init__()
        self.fc = nn.Dense(4, 3)
        self.bn = nn.BatchNorm1d(3)
        set_params(self, np.random.default_rng(seed))

    def construct(self, x):
        return self.bn(self.fc(x))

    def train_mode(self, finetune="complete"):
        self.set_train(True)


def set_params(net, rng, skip=()):
    """Random values for every parameter (variances positive); returns them by name (float64)."""
    out = {}
    for p in net.get_parameters():
        if p.name in skip:
            out[p.name] = p.asnumpy().astype(np.float64)
            continue
        v = rng.uniform(0.5, 1.5, p.shape) if p.name.endswith("variance") else rng.normal(0, 1, p.shape)
        p.set_data(Tensor(v.astype(np.float32)))
        out[p.name] = v.astype(np.float32).astype(np.float64)
    return out


def values(params):
    return {p.name: p.asnumpy().copy() for p in params}


def shadows(ema):
    return {s.name[len("ema."):]: s.asnumpy().copy() for s in ema.shadows}


# ------------------------------------------------------------------------------ decay and update
def test_decay_formula_is_mindcvs_warmup():
    # 0.9999 * (1 - exp(-t / 2000)), values from bc -l
    assert ema_decay_at(1, 0.9999, 2000) == pytest.approx(0.000499825033328, rel=1e-9)
    assert ema_decay_at(2000, 0.9999, 2000) == pytest.approx(0.632057346773, rel=1e-9)
    assert ema_decay_at(7, 0.99, 0) == 0.99  # no warm-up: the decay itself


@pytest.mark.parametrize("decay,warmup,mode", [(0.9, 3.0, ms.GRAPH_MODE), (0.9, 3.0, ms.PYNATIVE_MODE),
                                               (0.6, 0.0, ms.GRAPH_MODE)])
def test_updates_match_a_numpy_computation_by_hand(decay, warmup, mode):
    ms.set_context(mode=mode)  # graph mode: one compiled update (train.py); the fixture restores the mode
    net = TinyNet()
    rng = np.random.default_rng(1)
    ref = {p.name: p.asnumpy().astype(np.float64) for p in net.get_parameters()}  # shadows start as copies
    ema = ModelEMA(net, decay=decay, warmup=warmup)
    for t in range(1, 5):
        w = set_params(net, rng, skip=("bn.gamma",))  # gamma never changes: like a frozen parameter
        assert int(ema().asnumpy()) == t
        d = decay * (1 - np.exp(-t / warmup)) if warmup else decay
        ref = {k: d * ref[k] + (1 - d) * w[k] for k in ref}
    got = shadows(ema)
    assert set(got) == set(ref) and all(s.dtype == np.float32 for s in got.values())
    for k in ref:  # BN moving statistics are averaged too (timm ModelEmaV2, mindcv)
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-6, atol=1e-6, err_msg=k)
    # an unchanged parameter keeps a bit-identical shadow (s + (1 - d)(w - s) with w == s)
    assert np.array_equal(got["bn.gamma"], net.bn.gamma.asnumpy())
    assert ema.num_updates == 4


def test_callback_updates_only_when_optimizer_steps_advance():
    net = TinyNet()
    rng = np.random.default_rng(2)
    ema = ModelEMA(net, decay=0.5, warmup=0)
    ref = {p.name: p.asnumpy().astype(np.float64) for p in net.get_parameters()}
    cb = EMA(ema)
    state = SimpleNamespace(global_step=10, optimizer_steps=4)  # a resumed run: 4 updates applied so far
    cb.on_train_begin(state)
    # optimizer_steps after each step: accumulation micro-step, update, overflow-skipped step, update
    for opt_steps, updated in ((4, False), (5, True), (5, False), (6, True)):
        w = set_params(net, rng)
        state.global_step += 1
        state.optimizer_steps = opt_steps
        cb.on_step_end(state, 0.0, 0.0, 0.0)
        if updated:
            ref = {k: 0.5 * ref[k] + 0.5 * w[k] for k in ref}
    assert ema.num_updates == 2
    for k, v in shadows(ema).items():
        np.testing.assert_allclose(v, ref[k], rtol=1e-6, atol=1e-6, err_msg=k)
    # a loop without optimizer_steps: every global step is an update
    plain = SimpleNamespace(global_step=0)
    cb2 = EMA(ModelEMA(net, decay=0.5, warmup=0))
    cb2.on_train_begin(plain)
    for _ in range(3):
        plain.global_step += 1
        cb2.on_step_end(plain, 0.0, 0.0, 0.0)
    assert cb2.ema.num_updates == 3


def test_benchmark_callable_runs_one_update_per_call():
    net = TinyNet()
    update = ema_update_callable(net, decay=0.9, warmup=0)
    w = net.fc.weight.asnumpy().astype(np.float64)
    net.fc.weight.set_data(Tensor(np.zeros(w.shape, np.float32)))
    update()
    update()
    assert update.ema.num_updates == 2
    np.testing.assert_allclose(update.ema.shadows[0].asnumpy(), 0.81 * w, rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------------------------ evaluation
class EvalLoader:
    """Stands in for the eval loader: one view per video, (video, label, video_idx, view_idx) batches."""

    def __init__(self, x, labels, batch_size=4):
        self.x, self.labels, self.batch_size = x, labels, batch_size
        self.num_videos, self.num_classes = len(x), 3
        self.class_names = ["a", "b", "c"]
        self.steps_per_epoch = math.ceil(len(x) / batch_size)

    @property
    def dataset(self):
        return self

    def create_tuple_iterator(self, num_epochs=1, output_numpy=True):
        for i in range(0, len(self.x), self.batch_size):
            idx = np.arange(i, min(i + self.batch_size, len(self.x)))
            yield self.x[idx], self.labels[idx], idx, np.zeros_like(idx)


def numpy_forward(p, x):
    """Dense then eval-mode BatchNorm1d (eps 1e-5), by hand."""
    y = x @ p["fc.weight"].T + p["fc.bias"]
    return (y - p["bn.moving_mean"]) / np.sqrt(p["bn.moving_variance"] + 1e-5) * p["bn.gamma"] + p["bn.beta"]


def test_validation_evaluates_ema_weights_and_restores_the_raw_ones_bit_for_bit():
    net = TinyNet()
    ema = ModelEMA(net, decay=0.5, warmup=0)
    set_params(net, np.random.default_rng(3))
    ema()  # shadows: half old, half new; the raw weights are the new ones
    raw, avg = values(net.get_parameters()), shadows(ema)
    x = np.random.default_rng(4).normal(0, 1, (10, 4)).astype(np.float32)
    labels = numpy_forward(avg, x.astype(np.float64)).argmax(1)  # the EMA weights get every video right
    raw_top1 = float(np.mean(numpy_forward(raw, x.astype(np.float64)).argmax(1) == labels))
    assert raw_top1 < 1.0  # so the two evaluations are told apart

    state = TrainState(epoch=1, epochs=1)
    Validation(net, EvalLoader(x, labels), interval=1, finetune="complete", log=print, ema=ema).on_epoch_end(state)
    v = state.last_val
    assert v["ema_top1"] == 1.0 and v["top1"] == pytest.approx(raw_top1)
    after = values(net.get_parameters())
    assert all(after[k].tobytes() == raw[k].tobytes() for k in raw)
    # a net holding the shadows by hand scores what the EMA evaluation reported
    by_hand = TinyNet(seed=9)
    for p in by_hand.get_parameters():
        p.set_data(Tensor(avg[p.name]))
    m = evaluate(by_hand, EvalLoader(x, labels))
    assert (v["ema_top1"], v["ema_top5"], v["ema_mean_class_accuracy"]) == (m["top1"], m["top5"],
                                                                            m["mean_class_accuracy"])
    # an error inside the block still puts the raw weights back
    with pytest.raises(RuntimeError, match="boom"):
        with ema.swapped_in():
            assert np.array_equal(net.fc.weight.asnumpy(), avg["fc.weight"])
            raise RuntimeError("boom")
    assert all(values(net.get_parameters())[k].tobytes() == raw[k].tobytes() for k in raw)


# ------------------------------------------------------------------------------ checkpoints
def _trainer(seed):
    net = TinyNet(seed)
    loss = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
    opt = nn.Momentum(net.trainable_params(), learning_rate=0.1, momentum=0.9)
    cell = nn.TrainOneStepCell(nn.WithLossCell(net, loss), opt)
    cell.set_train(True)
    ema = ModelEMA(net, decay=0.8, warmup=2.0)
    return net, cell, ema, EMA(ema)


def _steps(cell, cb, state, batches):
    for x, y in batches:
        cell(Tensor(x), Tensor(y))
        state.global_step += 1
        state.optimizer_steps += 1  # no accumulation, no overflow: every step updates
        cb.on_step_end(state, 0.0, 0.0, 0.0)


def test_checkpoint_holds_the_shadows_and_resume_continues_them_exactly(tmp_path):
    rng = np.random.default_rng(5)
    batches = [(rng.normal(0, 1, (4, 4)).astype(np.float32), rng.integers(0, 3, 4).astype(np.int32))
               for _ in range(6)]
    mid = str(tmp_path / "mid.ckpt")
    # uninterrupted: 6 steps, a checkpoint after 3
    net, cell, ema, cb = _trainer(seed=0)
    state = SimpleNamespace(global_step=0, optimizer_steps=0)
    cb.on_train_begin(state)
    _steps(cell, cb, state, batches[:3])
    save_checkpoint(cell, mid, epoch=1, global_step=3, extra=ema.state())
    at_save = shadows(ema)
    _steps(cell, cb, state, batches[3:])
    params, _ = read_checkpoint(mid)
    assert all(np.array_equal(params["ema." + k].asnumpy(), v) for k, v in at_save.items())
    assert int(params["ema_updates"].asnumpy()) == 3

    # resumed: a fresh process state (other initial weights) restored from the checkpoint
    net2, cell2, ema2, cb2 = _trainer(seed=1)
    meta = restore_training_state(cell2, mid, ema=ema2)
    assert meta["ema_restored"] is True and ema2.num_updates == 3
    state2 = SimpleNamespace(global_step=3, optimizer_steps=3)
    cb2.on_train_begin(state2)
    _steps(cell2, cb2, state2, batches[3:])
    a, b = shadows(ema), shadows(ema2)
    assert ema2.num_updates == ema.num_updates == 6
    assert all(a[k].tobytes() == b[k].tobytes() for k in a), "shadows differ after resume"  # bit-identical
    assert all(v1.tobytes() == v2.tobytes()
               for v1, v2 in zip(values(net.get_parameters()).values(), values(net2.get_parameters()).values()))

    # weights for eval/infer/--pretrained: the ema.* keys are known, not "unexpected"
    plain = TinyNet(seed=2)
    assert load_pretrained(plain, mid) == []
    assert np.array_equal(plain.fc.weight.asnumpy(), params["fc.weight"].asnumpy())
    assert set(ema_weights(params, source=mid)) == {p.name for p in plain.get_parameters()}


def test_resume_from_a_checkpoint_without_ema_starts_from_the_resumed_weights(tmp_path):
    net, cell, _, _ = _trainer(seed=0)
    path = str(tmp_path / "noema.ckpt")
    save_checkpoint(cell, path, epoch=1, global_step=3)
    with pytest.raises(CheckpointError, match=r"noema\.ckpt: has no EMA weights .* run without --ema$"):
        ema_weights(read_checkpoint(path)[0], source=path)
    net2, cell2, ema2, _ = _trainer(seed=1)
    assert restore_training_state(cell2, path, ema=ema2)["ema_restored"] is False
    assert ema2.num_updates == 0
    assert all(np.array_equal(v, net.parameters_dict()[k].asnumpy()) for k, v in shadows(ema2).items())


# ------------------------------------------------------------------------------ eval.py --ema
@pytest.fixture(scope="module")
def ema_checkpoint(tmp_path_factory):
    """A training checkpoint of a tiny X3D whose EMA weights differ from its raw ones."""
    root = tmp_path_factory.mktemp("ema_eval")
    cfg, net = tiny_eval_model(root, num_val=1, eval_cfg={"num_clips": 1, "num_crops": 1, "short_side": 32,
                                                          "crop_size": 32, "batch_size": 3})
    ema = ModelEMA(net, decay=0.5, warmup=0)
    rng = np.random.default_rng(0)
    for p in net.get_parameters():  # new raw values; one update leaves the shadows halfway
        v = p.asnumpy()
        v = rng.uniform(0.5, 1.5, v.shape) if p.name.endswith("variance") else v + rng.normal(0, 0.3, v.shape)
        p.set_data(Tensor(v.astype(np.float32)))
    ema()
    cell = nn.TrainOneStepCell(nn.WithLossCell(net, nn.SoftmaxCrossEntropyWithLogits(sparse=True)),
                               nn.Momentum(net.trainable_params(), 0.1, 0.9))
    train_ckpt = str(root / "last.ckpt")
    save_checkpoint(cell, train_ckpt, epoch=1, global_step=1, extra=ema.state())
    return root, cfg, train_ckpt


def test_eval_with_ema_scores_the_shadow_weights(ema_checkpoint):
    from src.config import load_config
    from src.data import create_loader
    from src.models import build_model

    root, cfg, train_ckpt = ema_checkpoint
    out = root / "eval_ema"
    r = run_py(["eval.py", "--config", cfg, "--ckpt", train_ckpt, "--ema", "--output", str(out), "--no-progress"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "(EMA weights)" in r.stdout
    res = json.load(open(out / "eval_results.json"))
    assert res["weights"] == "ema"

    # by hand: a net given the stored shadows (read with MindSpore, not the code under test) scores
    # the same single view per video (X3D's eval output: probabilities)
    stored = ms.load_checkpoint(train_ckpt)
    c = load_config(cfg)
    net = build_model(c.model)
    assert any(not np.array_equal(stored["ema." + p.name].asnumpy(), stored[p.name].asnumpy())
               for p in net.get_parameters())  # the raw weights would score otherwise
    for p in net.get_parameters():
        p.set_data(Tensor(stored["ema." + p.name].asnumpy()))
    net.set_train(False)
    loader = create_loader(c, "eval", output_dir=str(root / "by_hand"), num_clips=1, num_crops=1, short_side=32,
                           crop_size=32, batch_size=3)
    probs = {}
    for video, _label, vid, _view in loader.dataset.create_tuple_iterator(num_epochs=1, output_numpy=True):
        for i, row in zip(vid, net(Tensor(video)).asnumpy()):
            probs[int(i)] = row
    assert len(res["videos"]) == len(probs) == 3
    for i, v in enumerate(res["videos"]):
        for t in v["top5"]:  # eval.py folds BN (float rounding) and rounds to 6 decimals
            assert t["prob"] == pytest.approx(float(probs[i][t["label"]]), abs=2e-6), (v["video"], t)


def test_ema_weights_of_a_checkpoint_without_any_is_one_line(ema_checkpoint, tmp_path):
    from src.config import load_config
    from src.engine.inference import load_inference_model
    from src.errors import UserError

    _, cfg, train_ckpt = ema_checkpoint
    plain = str(tmp_path / "plain.ckpt")  # the raw weights alone, as a converted or exported file
    stored = ms.load_checkpoint(train_ckpt)
    ms.save_checkpoint([{"name": k, "data": v} for k, v in stored.items() if not k.startswith(("ema", "meta."))],
                       plain)
    c = load_config(cfg)
    assert load_inference_model(c, ckpt=plain, fold_bn=False).kind == "checkpoint"
    with pytest.raises(UserError) as e:
        load_inference_model(c, ckpt=plain, ema=True)
    assert str(e.value) == (f"{plain}: has no EMA weights (no 'ema.*' entries: trained with train.ema=false, "
                            f"or not a training checkpoint); run without --ema")
    with pytest.raises(UserError, match=r"--ema needs a training checkpoint \(--ckpt\)"):
        load_inference_model(c, mindir=plain, ema=True)


# ------------------------------------------------------------------------------ train.py end to end
@pytest.mark.slow
def test_train_py_with_ema_validates_saves_and_resumes_it_exactly(tmp_path):
    """train.ema=true through train.py (graph mode): EMA top-1/top-5 beside the raw ones in the log
    and metrics.jsonl, best.ckpt chosen by the EMA top-1, and a run resumed from its epoch-1
    checkpoint ends with the same shadows, bit for bit, as the uninterrupted one
    (context.deterministic: the raw weights are bit-identical too). Then infer.py --ema scores
    with the shadows: the same as infer.py on a file holding them under the network's names."""
    data = make_tiny_dataset(str(tmp_path / "data"), num_classes=3, per_class=4)
    cfg = tiny_config(str(tmp_path / "cfg.yaml"), data, epochs=3, extra={
        "train.ema": True, "train.ema_decay": 0.9, "train.ema_warmup": 2.0, "context.deterministic": True,
        "infer": {"num_clips": 1, "num_crops": 1, "short_side": 32, "crop_size": 32, "batch_size": 1}})
    ref, res = tmp_path / "ref", tmp_path / "res"
    r = run_py(["train.py", "--config", cfg, "--output", str(ref)])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "EMA top-1" in r.stdout and "new best EMA val top-1" in r.stdout
    recs = [json.loads(line) for line in open(ref / "metrics.jsonl") if line.strip()]
    epochs = [e for e in recs if e["kind"] == "epoch"]
    assert len(epochs) == 3 and all({"val_top1", "val_ema_top1", "val_ema_top5"} <= set(e) for e in epochs)
    _, best = read_checkpoint(str(ref / "best.ckpt"))
    assert best["best_top1"] == pytest.approx(max(e["val_ema_top1"] for e in epochs))
    a, _ = read_checkpoint(str(ref / "last.ckpt"))
    assert int(a["ema_updates"].asnumpy()) == 18  # one per optimizer update: 3 epochs x 6 steps

    os.makedirs(res)
    shutil.copy(ref / "epoch0001.ckpt", res / "epoch0001.ckpt")
    r = run_py(["train.py", "--config", cfg, "--output", str(res), "--resume", "auto"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "EMA: 6 updates restored" in r.stdout
    b, _ = read_checkpoint(str(res / "last.ckpt"))
    assert set(a) == set(b)
    differ = [k for k in a if a[k].asnumpy().tobytes() != b[k].asnumpy().tobytes()]
    assert not differ, differ[:8]

    # infer.py --ema against the shadows written out by hand
    stored = ms.load_checkpoint(str(ref / "last.ckpt"))
    hand = str(tmp_path / "ema_by_hand.ckpt")
    ms.save_checkpoint([{"name": k[len("ema."):], "data": v} for k, v in stored.items() if k.startswith("ema.")],
                       hand)
    video = os.path.join(data, "val", "c1_4.mp4")
    out = {}
    for name, args in (("ema", ["--ckpt", str(ref / "last.ckpt"), "--ema"]), ("hand", ["--ckpt", hand]),
                       ("raw", ["--ckpt", str(ref / "last.ckpt")])):
        r = run_py(["infer.py", video, "--config", cfg, *args, "--json", str(tmp_path / f"{name}.json")])
        assert r.returncode == 0, r.stderr[-3000:]
        out[name] = [(t["label"], t["prob"]) for t in json.load(open(tmp_path / f"{name}.json"))["videos"][0]["topk"]]
    assert out["ema"] == out["hand"] and out["ema"] != out["raw"]  # (the hand file has no label map: names differ)
