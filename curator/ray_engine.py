"""``curator analyze --engine ray``: the per-image stage (decode, metrics, thumbnail,
embedding) as Ray Data ``map_batches`` on CPU or GPU workers, past one machine.

What runs where: the driver (this process) lists the pending items, sends their (item id,
path) rows to Ray, and writes every batch of results into the project exactly as the local
engine does (arrays flushed, then the metrics in one transaction), so a killed Ray run
resumes like a local one and only pending items are ever sent. Workers decode the images
(so they must see the image paths: a shared filesystem on a cluster) and run the backbone,
loaded once per worker. On the CPU the driver exports the ONNX model once (or finds it in
its cache) and ships its bytes to the workers: no worker needs a network, a cache or torch.

A Ray started here is private, quiet and tidy (``curator/ray_local.py``). A cluster given
with ``--address`` is joined and left running; the driver's curator package is shipped to
its workers so that they run the same code.
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
import threading
import time
import warnings
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .errors import CuratorError
from .per_image import Results, embed_records
from .ray_local import first_line

INSTALL_HINT = "pip install 'curator[ray]'"
MAX_BLOCKS = 2000  # pending rows are split into at most this many blocks (driver-side bookkeeping)


def import_ray():
    """The ``ray`` module with Ray Data, or one line saying how to install it."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # before the first import: no phoning home
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise CuratorError(f"--engine ray needs Ray Data, which is not installed: {INSTALL_HINT}") from None
    return ray


def check_options(opts):
    """Before analyze touches the project: Ray is installed, the options fit together, and
    the cluster at ``--address`` answers. Returns the ``ray`` module."""
    ray = import_ray()
    if opts.ray_cpus is not None and opts.ray_address:
        raise CuratorError("--ray-cpus sizes a Ray started on this machine; with --address the cluster decides")
    if opts.ray_cpus is not None and opts.ray_cpus < 1:
        raise CuratorError("--ray-cpus must be at least 1")
    if opts.ray_address:
        _check_reachable(opts.ray_address)
    return ray


class EmbedWorker:
    """A Ray Data worker: loads the backbone once, then turns batches of (id, path) rows into
    ids, embeddings, thumbnails and pickled metric dicts (exact, whatever their types)."""

    def __init__(self, spec: dict):
        from .backbones import tune_malloc

        tune_malloc()
        self.resolution = spec["resolution"]
        self.backbone, self.device = worker_backbone(spec)

    def __call__(self, batch: dict) -> dict:
        from .imaging import read_image

        recs = [read_image(str(p), resolution=self.resolution) for p in batch["path"]]
        res = embed_records(self.backbone, self.device, batch["id"], recs)
        metrics = np.empty(len(recs), dtype=object)
        metrics[:] = [pickle.dumps(m) for m in res.metrics]
        return {"id": res.ids, "embedding": res.embeddings, "thumbnail": res.thumbnails, "metrics": metrics,
                "forward_s": np.full(len(recs), res.forward_s / max(len(recs), 1))}


def worker_backbone(spec: dict):
    """(backbone, device) in a worker: the shipped ONNX model, or the torch backbone."""
    if spec.get("onnx_model") is not None:
        from .backbones import LITE_MEAN, LITE_STD
        from .onnx_backbone import OnnxBackbone

        return OnnxBackbone(spec["backbone"], spec["resolution"], LITE_MEAN, LITE_STD, spec["onnx_model"],
                            threads=spec.get("threads")), "cpu"
    from .backbones import load_embedder

    if spec.get("threads") and spec["device"] == "cpu":
        import torch

        torch.set_num_threads(int(spec["threads"]))
    return load_embedder(spec["backbone"], spec["resolution"], spec["device"], "torch")


def _probe_dim(spec: dict) -> int:
    return int(worker_backbone(spec)[0].dim)


def _check_reachable(address: str) -> None:
    """Fail in one line, within seconds, when ``host:port`` does not answer."""
    if address == "auto" or address.startswith("local"):
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise CuratorError(f"--address {address!r} is not HOST:PORT (or ray://HOST:PORT, or auto); "
                           f"`ray status` on the cluster's head node shows it")
    try:
        speaks_grpc = _speaks_http2(host.strip("[]"), int(port))
    except OSError as exc:
        raise CuratorError(f"no Ray cluster answers at {address} ({exc.strerror or exc}); check the address "
                           f"(`ray status` on the head node shows it) or leave out --address to run Ray on this machine"
                           ) from None
    if not speaks_grpc:  # Ray would retry for minutes
        raise CuratorError(f"something answers at {address}, but not a Ray cluster (its GCS port, 6379 by default, or "
                           f"ray://HOST:10001); the dashboard's port 8265 is not it")


def _speaks_http2(host: str, port: int, timeout: float = 5.0) -> bool:
    """Whether ``host:port`` answers the HTTP/2 preface with a SETTINGS frame, as the gRPC
    servers of Ray (GCS, Ray Client) do; raises OSError when nothing listens."""
    with socket.create_connection((host, port), timeout=timeout) as conn:
        conn.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        head = b""
        try:
            while len(head) < 9:
                chunk = conn.recv(9 - len(head))
                if not chunk:
                    break
                head += chunk
        except socket.timeout:
            return False
    return len(head) == 9 and head[3] == 0x04  # frame type SETTINGS


def _quiet(ray) -> None:
    """No progress bars or INFO lines from Ray Data: the driver draws its own bar."""
    from ray.data import DataContext

    ctx = DataContext.get_current()
    for name, value in (("enable_progress_bars", False), ("print_on_execution_start", False),
                        ("enable_auto_log_stats", False)):
        if hasattr(ctx, name):
            setattr(ctx, name, value)
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)


class RayEngine:
    """Per-image stage on Ray Data; ``start`` joins or starts Ray, ``close`` leaves it as found."""

    name = "ray"

    def __init__(self, ray, spec: dict, dim: int, workers: int, gpu: bool, batch_size: int, cleanup):
        self.ray, self.spec, self.dim = ray, spec, dim
        self.workers, self.gpu, self.batch_size = workers, gpu, batch_size
        self._cleanup = cleanup

    def describe(self) -> str:
        """How the stage runs, for the progress bar."""
        return f"Ray, {self.workers} {'GPU' if self.gpu else 'CPU'} worker{'s' if self.workers != 1 else ''}"

    @classmethod
    def start(cls, opts, resolution: int, notes: list, status) -> "RayEngine":
        ray = check_options(opts)
        with status.stage("ray_start"):
            cleanup = _connect(ray, opts)
        try:
            _quiet(ray)
            resources = ray.cluster_resources()
            gpus, cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 0))
            if opts.device.startswith("cuda") and not gpus:
                raise CuratorError("--device cuda asked for GPU workers but the Ray cluster has no GPU (use --device cpu)")
            if opts.device not in ("auto", "cpu") and not opts.device.startswith("cuda"):
                raise CuratorError(f"unknown device {opts.device!r}: use auto, cpu or cuda")
            gpu = opts.device.startswith("cuda") or (opts.device == "auto" and gpus > 0)
            if not gpu and cpus < 1:
                raise CuratorError("the Ray cluster has no CPU for workers; give it CPUs or use --engine local")
            spec, dim = _worker_spec(opts, resolution, "cuda" if gpu else "cpu", notes, status)
            if dim is None:  # a torchvision backbone: one worker tells its width
                probe = ray.remote(num_cpus=1, num_gpus=1 if gpu else 0)(_probe_dim)
                dim = ray.get(probe.remote(spec))
            return cls(ray, spec, dim, gpus if gpu else cpus, gpu, opts.batch_size, cleanup)
        except BaseException:
            cleanup()
            raise

    def results(self, ids: Sequence[int], paths: Sequence[str]) -> Iterator[Results]:
        """Results for ``ids`` (files ``paths``), ``batch_size`` rows at a time, in the order
        the workers finish them (each row carries its item id)."""
        from ray.data import ActorPoolStrategy

        import pyarrow as pa

        if not len(ids):
            return
        # Arrow columns, not a dict per row: compact on the driver for millions of items;
        # sliced (without copying) into blocks so that every worker gets some
        table = pa.table({"id": pa.array(np.asarray(ids, dtype=np.int64)), "path": pa.array([str(p) for p in paths])})
        rows_per_block = max(self.batch_size, -(-len(table) // MAX_BLOCKS))
        ds = self.ray.data.from_arrow([table.slice(i, rows_per_block) for i in range(0, len(table), rows_per_block)])
        with warnings.catch_warnings():
            # max_restarts=0: a lost worker fails the run, which then resumes from the
            # database like any interrupted run (Ray's restart would log an error line
            # up front because the constructor arguments live in the object store)
            warnings.simplefilter("ignore")
            ds = ds.map_batches(EmbedWorker, fn_constructor_kwargs={"spec": self.spec}, batch_size=self.batch_size,
                                batch_format="numpy", compute=ActorPoolStrategy(size=self.workers),
                                num_cpus=1, num_gpus=1 if self.gpu else 0, max_restarts=0)
        before = set(threading.enumerate())
        batches = iter(ds.iter_batches(batch_size=self.batch_size, batch_format="numpy", prefetch_batches=1))
        try:
            while True:
                try:
                    b = next(batches)
                except StopIteration:
                    return
                except (KeyboardInterrupt, CuratorError):
                    raise
                except Exception as exc:  # a worker failed: Ray's errors carry whole remote tracebacks
                    raise CuratorError(f"the Ray engine failed: {first_line(exc)}") from None
                yield Results(np.asarray(b["id"], dtype=np.int64), np.asarray(b["embedding"], dtype=np.float32),
                              np.asarray(b["thumbnail"], dtype=np.uint8), [pickle.loads(m) for m in b["metrics"]],
                              float(np.sum(b["forward_s"])))
        finally:
            # stop Ray Data's iteration and wait for its threads (they fetch blocks in the
            # background): one still running when Ray is shut down touches the stopped core
            # worker, and Ray then ends the whole process (exit 1, output unflushed), as an
            # interrupted run in the test suite did
            batches.close()
            _join_new_threads(before, timeout=THREAD_WAIT_S, parked_stopped=_stop_prefetchers(before))

    def close(self) -> None:
        self._cleanup()


THREAD_WAIT_S = 30.0  # at most this long for Ray Data's iteration threads to end
# Ray Data's block prefetcher thread parks on a condition until its prefetcher is stopped,
# which only a finished iteration does; an interrupted one leaves it parked (or inside
# ray.wait, if blocks were just handed to it)
PARKED_THREADS = ("Prefetcher",)


def _stop_prefetchers(before: set) -> bool:
    """Stop the Ray Data ``WaitBlockPrefetcher`` objects whose threads started since
    ``before`` (this iteration's, not those of any other iteration in the process), so that
    their threads end instead of parking and can be waited for before Ray is shut down.
    False where this Ray version has none to find (then its threads are left parked)."""
    import gc

    try:
        from ray.data._internal.block_batching.util import WaitBlockPrefetcher
    except ImportError:
        return False
    for obj in gc.get_objects():
        if isinstance(obj, WaitBlockPrefetcher) and getattr(obj, "_thread", None) not in before:
            obj.stop()
    return True


def _join_new_threads(before: set, timeout: float, parked_stopped: bool = False) -> None:
    """Wait (at most ``timeout`` s in all) for the threads started since ``before`` to end;
    the ones known to park (``PARKED_THREADS``) too once their owners were stopped."""
    deadline = time.monotonic() + timeout
    for thread in set(threading.enumerate()) - before:
        if parked_stopped or thread.name not in PARKED_THREADS:
            thread.join(max(0.0, deadline - time.monotonic()))


def _worker_spec(opts, resolution: int, device: str, notes: list, status) -> tuple[dict, int | None]:
    """What every worker needs to load the backbone, and its width when known here.

    On the CPU the default backbone runs on onnxruntime where it can (as locally): the model
    is exported here once, or found in the cache, and its bytes travel to the workers."""
    from .backbones import DEFAULT_BACKBONE, load_embedder

    spec = {"backbone": opts.backbone, "resolution": resolution, "device": device, "onnx_model": None,
            "threads": 1 if device == "cpu" else None}
    onnx_possible = opts.backbone == DEFAULT_BACKBONE and device == "cpu"
    if opts.runtime == "onnx" or (opts.runtime == "auto" and onnx_possible):
        # the local engine's rules: errors and the fall-back note to torch are the same
        backbone, _ = load_embedder(opts.backbone, resolution, device, opts.runtime, notes, status)
        if getattr(backbone, "runtime", None) == "onnxruntime":
            spec["onnx_model"] = Path(backbone.model).read_bytes()
        return spec, int(backbone.dim)
    return spec, 1280 if opts.backbone == DEFAULT_BACKBONE else None


def _connect(ray, opts):
    """Join the cluster at ``opts.ray_address``, or start a private local Ray; returns the
    function that undoes it (a no-op for a Ray that was running before)."""
    if ray.is_initialized():  # a program that calls analyze() inside its own Ray session
        return lambda: None
    logging.getLogger("ray").setLevel(logging.ERROR)  # before init: its notes are not the user's business
    common = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR, configure_logging=True)
    if opts.ray_address:
        import curator

        try:
            # the driver's curator travels to the workers, so both run the same code
            ray.init(address=opts.ray_address, runtime_env={"py_modules": [str(Path(curator.__file__).parent)]},
                     **common)
        except Exception as exc:
            raise CuratorError(f"cannot join the Ray cluster at {opts.ray_address}: {first_line(exc)} (a cluster "
                               f"with token authentication also needs RAY_AUTH_MODE=token and its token in "
                               f"RAY_AUTH_TOKEN or ~/.ray/auth_token)") from None
        return ray.shutdown  # disconnects this driver; the cluster keeps running

    from .ray_local import start_private_ray

    return start_private_ray(ray, opts.ray_cpus, common)  # None: Ray counts the CPUs (cgroup limits included)
