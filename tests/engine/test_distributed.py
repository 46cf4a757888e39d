"""Data-parallel training over 2 CPU processes (msrun, mccl): ranks agree with each other and with a
single process that averages the two shards' gradients over the same global batches."""
import os
import shutil
import socket
import subprocess
import threading

import numpy as np
import pytest
import mindspore as ms
from mindspore import Tensor

from src.config import load_config
from src.data import create_loader
from src.engine.checkpoint import read_checkpoint
from src.models import build_model
from src.registry import LOSSES, OPTIMIZERS, build_from_cfg
from tests.helpers.training import REPO, make_tiny_dataset, tiny_config

pytestmark = pytest.mark.skipif(shutil.which("msrun") is None, reason="msrun not installed")
STEPS = 3


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_tiny_dataset(str(tmp_path_factory.mktemp("dp")), num_classes=3, per_class=4)


def _run_dp_worker(cfg_path: str, tmp_path, steps: int, k: int = 1):
    """tests/engine/dp_worker.py on 2 msrun ranks; (final weights of both ranks, initial weights)."""
    out = str(tmp_path / "dp")
    os.makedirs(out)
    r = subprocess.run(["msrun", "--worker_num=2", "--local_worker_num=2", f"--master_port={free_port()}",
                        "--join=True", f"--log_dir={tmp_path / 'logs'}", "tests/engine/dp_worker.py", cfg_path, out,
                        str(steps), str(k)], cwd=REPO, capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, VIDEO_ZOO_LOCAL_WORKERS="2"))
    logs = "".join(open(tmp_path / "logs" / f).read()[-1500:] for f in os.listdir(tmp_path / "logs"))
    assert r.returncode == 0, logs
    final = [dict(np.load(os.path.join(out, f"rank{r_}_final.npz"))) for r_ in (0, 1)]
    return final, dict(np.load(os.path.join(out, "rank0_init.npz")))


def _assert_single_process_mean_matches(cfg_path: str, tmp_path, init, rank0, steps: int, k: int = 1) -> None:
    """One process from the same initial weights: each update applies the mean of the gradients of
    the two shards' ``k`` micro-batches. Float32 sums in another order (all-reduce; MindSpore's and
    the C++ kernels' reductions split by thread count, 1 per rank here against 2 in this process),
    grown through a few momentum steps and train-mode BatchNorms over 2-clip batches: up to ~6e-5
    measured. Bounded by 1 % of how far each parameter moved (floor 5e-5): a wrong gradient mean
    (summed, one shard only) would be off by half or more of the movement."""
    ms.set_context(mode=ms.GRAPH_MODE)
    cfg = load_config(cfg_path)
    shards = [list(create_loader(cfg, "train", num_shards=2, shard_id=s, output_dir=str(tmp_path / f"s{s}"),
                                 shuffle=False).dataset.create_tuple_iterator(num_epochs=1))[:steps * k]
              for s in (0, 1)]
    net = build_model(cfg.model)
    for p in net.trainable_params():
        p.set_data(Tensor(init[p.name]))
    loss_fn = build_from_cfg(cfg.loss, LOSSES)
    opt = build_from_cfg(cfg.optimizer, OPTIMIZERS, params=net.trainable_params(),
                         learning_rate=np.full(steps, 0.05, np.float32))

    def forward(video, label):
        return loss_fn(net(video), label)

    grad_fn = ms.jit(ms.value_and_grad(forward, None, opt.parameters))
    net.set_train(True)
    for step in range(steps):
        gs = [grad_fn(*shards[s][step * k + m])[1] for s in (0, 1) for m in range(k)]
        opt(tuple(sum(g) / len(gs) for g in zip(*gs)))
    for p in net.trainable_params():
        single = p.asnumpy()
        moved = float(np.abs(single - init[p.name]).max())
        np.testing.assert_allclose(rank0[p.name], single, rtol=0, atol=max(5e-5, 0.01 * moved),
                                   err_msg=f"{p.name} (moved {moved:.3g})")


def test_two_ranks_match_each_other_and_a_single_process_gradient_mean(data, tmp_path):
    cfg_path = tiny_config(str(tmp_path / "cfg.yaml"), data)
    final, init = _run_dp_worker(cfg_path, tmp_path, STEPS)
    assert final[0].keys() == final[1].keys()
    for name in final[0]:
        np.testing.assert_array_equal(final[0][name], final[1][name], err_msg=name)  # ranks identical
    assert any(not np.array_equal(final[0][n], init[n]) for n in init)  # and they did train
    _assert_single_process_mean_matches(cfg_path, tmp_path, init, final[0], STEPS)


def _launch(cfg_path: str, data: str, workers: int, out, logs, *overrides: str, **env) -> subprocess.Popen:
    """scripts/train_distribute.sh with one MindSpore thread per worker (the same float sums
    whatever the number of workers per node; see the multi-node test)."""
    return subprocess.Popen(["bash", "scripts/train_distribute.sh", cfg_path, data, str(workers),
                             f"train.output_dir={out}", "context.cpu_threads=1", *overrides],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, LOG_DIR=str(logs), **env))


def _read_logs(folder) -> dict:
    return {f: open(os.path.join(folder, f)).read() for f in os.listdir(folder)}


@pytest.fixture(scope="module")
def script_run(data, tmp_path_factory):
    """One node, two workers, through scripts/train_distribute.sh (cores bound by default)."""
    tmp = tmp_path_factory.mktemp("script")
    cfg_path = tiny_config(str(tmp / "cfg.yaml"), data, epochs=1)
    proc = _launch(cfg_path, data, 2, tmp / "run", tmp / "logs", MASTER_PORT=str(free_port()))
    stdout, _ = proc.communicate(timeout=600)
    return {"cfg": cfg_path, "out": tmp / "run", "returncode": proc.returncode, "stdout": stdout,
            "logs": _read_logs(tmp / "logs")}


def test_train_distribute_script_runs_and_only_rank0_writes(script_run):
    out, logs = script_run["out"], script_run["logs"]
    assert script_run["returncode"] == 0, "\n".join(v[-1500:] for v in logs.values())
    assert {"worker_0.log", "worker_1.log"} <= set(logs)
    assert "2 process(es)" in logs["worker_0.log"] and "final validation top-1" in logs["worker_0.log"]
    assert "final validation" not in logs["worker_1.log"]
    # only rank 0 prints step and epoch lines (they used to interleave on the console)
    assert "epoch 1/1 step" in logs["worker_0.log"] and "epoch 1/1 done" in logs["worker_0.log"]
    assert "epoch 1/1 step" not in logs["worker_1.log"] and "epoch 1/1 done" not in logs["worker_1.log"]
    _, meta = read_checkpoint(str(out / "last.ckpt"))
    assert meta["epoch"] == 1 and meta["global_step"] == 3  # 12 clips / (2 ranks x batch 2)
    assert len(list(out.glob("*.ckpt"))) == 3  # last, best, epoch 1: written once, by rank 0


def test_the_launcher_binds_cores_unless_told_not_to(tmp_path):
    """BIND_CORE=1 (default) passes msrun --bind_core=True (MindSpore 2.10's msrun has it);
    BIND_CORE=0 leaves it out. DRY_RUN=1 prints the command instead of running it."""
    def command(**env):
        r = subprocess.run(["bash", "scripts/train_distribute.sh", "cfg.yaml", "/data", "2", "train.epochs=1"],
                           cwd=REPO, capture_output=True, text=True, timeout=120, env=dict(os.environ, DRY_RUN="1", **env))
        assert r.returncode == 0, r.stderr
        return r.stdout.split()
    bound = command()
    assert bound[:8] == ["msrun", "--worker_num=2", "--local_worker_num=2", "--master_addr=127.0.0.1",
                         "--master_port=8118", "--node_rank=0", "--log_dir=./output/msrun_logs", "--join=True"]
    assert bound[8:11] == ["--bind_core=True", "train.py", "--config"]
    assert "--bind_core=True" not in command(BIND_CORE="0")
    two_nodes = command(NUM_NODES="2", NODE_RANK="1", MASTER_ADDR="10.0.0.1")
    assert {"--worker_num=4", "--local_worker_num=2", "--node_rank=1", "--master_addr=10.0.0.1"} <= set(two_nodes)


def test_bound_workers_are_pinned(script_run):
    """msrun ran each worker under taskset with its own share of the cores (this machine has
    taskset and a cgroup cpuset file, which msrun's auto binding reads)."""
    if shutil.which("taskset") is None or not os.path.exists("/sys/fs/cgroup/cpuset/cpuset.cpus"):
        pytest.skip("msrun cannot bind cores here (no taskset or no cgroup v1 cpuset file)")
    assert script_run["returncode"] == 0
    pinned = [line.split("Execute command: taskset -c ")[1].split()[0] for line in script_run["stdout"].splitlines()
              if "Execute command: taskset -c" in line]
    assert len(pinned) == 2, script_run["stdout"][-3000:]
    cores = [set(_cpu_list(text)) for text in pinned]
    assert cores[0] and cores[1] and not cores[0] & cores[1]  # each worker its own cores
    assert cores[0] | cores[1] <= set(_cpu_list(open("/sys/fs/cgroup/cpuset/cpuset.cpus").read().strip()))


def _cpu_list(text: str) -> list:
    """'0-2,5' -> [0, 1, 2, 5] (taskset's and cgroup's spelling)."""
    out = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += range(int(lo), int(hi or lo) + 1)
    return out


class Forwarder:
    """A TCP relay from ``listen`` to ``target`` (host, port) in threads: the "network" between
    two msrun nodes on one machine (see the multi-node test)."""

    def __init__(self, listen, target) -> None:
        self.target = target
        self.server = socket.create_server(listen)
        self.server.settimeout(0.5)
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                down, _ = self.server.accept()
            except OSError:  # timeout: check for stop
                continue
            try:
                up = socket.create_connection(self.target, timeout=5)
            except OSError:  # the scheduler is not listening yet: the node retries
                down.close()
                continue
            up.settimeout(None)
            for a, b in ((down, up), (up, down)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src, dst) -> None:
        try:
            while True:
                chunk = src.recv(65536)
                if not chunk:
                    break
                dst.sendall(chunk)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        self.stopped.set()
        self.server.close()


@pytest.mark.slow
def test_two_nodes_of_one_worker_match_one_node_of_two(data, script_run, tmp_path):
    """The multi-node path on one machine: two launcher invocations (NUM_NODES=2, NODE_RANK 0 and
    1, one worker each) on loopback addresses train the same weights as one node with two workers:
    the same ranks, shards, all-reduce and thread count (one per worker) in both runs.

    msrun (2.10) starts a scheduler on every node whose master address is one of its own, so two
    nodes given 127.0.0.1 on one machine start two schedulers and one of them fails. Node 1 gets
    127.0.0.2 instead (loopback, but not an address msrun counts as local) and a relay forwards it
    to node 0's scheduler on 127.0.0.1, as the network would from a second machine."""
    assert script_run["returncode"] == 0
    port = free_port()
    relay = Forwarder(("127.0.0.2", port), ("127.0.0.1", port))
    try:
        nodes = [_launch(script_run["cfg"], data, 1, tmp_path / "run", tmp_path / f"logs{k}", MASTER_PORT=str(port),
                         MASTER_ADDR=addr, NUM_NODES="2", NODE_RANK=str(k))
                 for k, addr in ((0, "127.0.0.1"), (1, "127.0.0.2"))]
        outputs = [p.communicate(timeout=900)[0] for p in nodes]
    finally:
        relay.close()
    assert "Start scheduler process" in outputs[0] and "Start scheduler process" not in outputs[1]
    logs = {**_read_logs(tmp_path / "logs0"), **{f"node1/{k}": v for k, v in _read_logs(tmp_path / "logs1").items()}}
    assert [p.returncode for p in nodes] == [0, 0], "\n".join(outputs + [v[-1500:] for v in logs.values()])
    assert "2 node(s) x 1 worker(s), this node 0" in outputs[0] and "this node 1" in outputs[1]
    two_nodes, meta = read_checkpoint(str(tmp_path / "run" / "last.ckpt"))
    one_node, meta1 = read_checkpoint(str(script_run["out"] / "last.ckpt"))
    assert meta["global_step"] == meta1["global_step"] == 3
    assert two_nodes.keys() == one_node.keys()
    # measured: 167 of the 371 tensors (weights, BN statistics, momenta) bit-identical, the rest a few
    # float32 ulps apart (largest 8.3e-7, on a moving variance of 2.3): the all-reduce between
    # nodes is not the one within a node. A wrong rank or shard would differ by the training
    # steps themselves (1e-3 and more).
    for name in one_node:
        np.testing.assert_allclose(two_nodes[name].asnumpy(), one_node[name].asnumpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=name)


def test_syncbn_on_cpu_processes_is_a_one_line_error(data, tmp_path):
    """model.norm=syncbn with two CPU workers: each worker stops with the one line naming the
    devices SyncBatchNorm needs (MindSpore 2.10 has no CPU kernel for it)."""
    cfg_path = tiny_config(str(tmp_path / "cfg.yaml"), data, epochs=1)
    proc = _launch(cfg_path, data, 2, tmp_path / "run", tmp_path / "logs", "model.norm=syncbn",
                   MASTER_PORT=str(free_port()), BIND_CORE="0")
    proc.communicate(timeout=600)
    assert proc.returncode != 0
    logs = _read_logs(tmp_path / "logs")
    line = ("model.norm=syncbn: SyncBatchNorm runs on GPU or Ascend (MindSpore has no CPU kernel), this run has "
            "2 CPU processes; use model.norm=bn")
    assert all(line in logs[f"worker_{k}.log"] for k in (0, 1)), "\n".join(v[-1500:] for v in logs.values())


@pytest.mark.slow  # a second two-process msrun job (the gradient mean itself is checked by the test above)
def test_gradient_accumulation_under_msrun_means_once_per_optimizer_step(data, tmp_path):
    """train.accumulate_steps=2 on 2 ranks (batch 1): each update is the mean over both ranks and
    both micro-batches (one all-reduce per optimizer step, inside the step's graph); ranks end
    identical and equal to a single process that averages the 4 gradients of each update."""
    k, steps = 2, 3
    cfg_path = tiny_config(str(tmp_path / "cfg.yaml"), data, batch_size=1)
    final, init = _run_dp_worker(cfg_path, tmp_path, steps, k)
    for name in final[0]:
        np.testing.assert_array_equal(final[0][name], final[1][name], err_msg=name)
    _assert_single_process_mean_matches(cfg_path, tmp_path, init, final[0], steps, k)