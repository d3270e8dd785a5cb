"""Where and how inference computes: the device, the weights' dtype and the CPU threads.

* :func:`inference_device`: ``auto`` is the GPU where torch sees one, else the CPU.
* :func:`prepare`: ``--dtype auto`` (the default) is a fixed function of the device and the
  model (:func:`default_precision`): int8 weights on any CPU (CMT.quantize_int8: the activations
  stay float32, and it moves the model's distributions far less than bfloat16 does,
  benchmarks/bench_precision.py), bfloat16 on a GPU that supports it, else float32.  It never
  depends on a timing, a cache or the load, so the same seed gives the same songs on every
  machine of a kind.  ``--dtype fastest`` is the explicit timed choice: it times a few
  generation steps of the actual model in each candidate and keeps the fastest, cached per
  (model size, batch, processor and its usable cores, torch) in ``<cache>/dtype.json`` (delete
  the file to measure again); its songs follow what that machine timed.
* :func:`thread_policy`: torch's default (one thread per core in every process) collapses
  when several processes share the cores: a thread waiting at every matrix product for a
  sibling that the scheduler gave to another process.  The policy takes only the cores
  that are idle when the work starts, and at least one.
"""
from __future__ import annotations

import copy
import json
import os
import platform
import time
from pathlib import Path

import torch

from vidscore import cli, paths

REPO_ROOT = paths.REPO
PRECISIONS = ("auto", "fastest", "float32", "bfloat16", "int8")


# ----------------------------------------------------------------------------- device
def inference_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """``--device``: ``auto`` is the GPU of this local rank (the first for inference) where torch
    sees one, else the CPU; ``cpu`` and ``cuda`` force one.  Training and inference both ask here."""
    if name not in ("auto", "cpu", "cuda"):
        raise cli.UserError(f"--device {name}: choose auto, cpu or cuda")
    if name == "cpu" or (name == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise cli.UserError("--device cuda asked for, but torch sees no GPU; use --device cpu or auto")
    return torch.device("cuda", local_rank % torch.cuda.device_count())


# ----------------------------------------------------------------------------- threads
def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. a container's or taskset's share)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


SAMPLE_S = 0.25       # how long busy_cores watches the CPUs, at least
LOOK_BACK_S = 2.0     # how far back busy_cores may start, from a reading taken earlier


def busy_share(before: str, after: str, own_ticks: float = 0.0) -> float | None:
    """The share of CPU time spent busy between two readings of /proc/stat's aggregate ``cpu``
    line (user nice system idle iowait irq softirq steal ...; idle and iowait are not busy;
    guest time is already inside user), less ``own_ticks`` (this process's own CPU time in the
    same clock ticks: the work of others only).  None when the readings show no time passing."""
    a = [int(v) for v in before.split()[1:9]]
    b = [int(v) for v in after.split()[1:9]]
    d = [y - x for x, y in zip(a, b)]
    total = sum(d)
    if total <= 0:
        return None
    return max(0.0, total - d[3] - d[4] - own_ticks) / total


def _cpu_lines() -> tuple[str, int]:
    lines = Path("/proc/stat").read_text().splitlines()
    return lines[0], sum(1 for ln in lines if ln.startswith("cpu") and ln[3:4].isdigit())


def cpu_reading():
    """(/proc/stat's cpu line, number of CPUs, monotonic seconds, this process's CPU seconds),
    or None where /proc is missing: one end of the window :func:`busy_cores` measures."""
    try:
        line, n_cpu = _cpu_lines()
    except (OSError, ValueError, IndexError):
        return None
    return line, n_cpu, time.monotonic(), time.process_time()


#: Taken when this module is imported: the thread policy looks back to it, so that the CPUs are
#: watched while the program imports and checks its inputs instead of in a pause of its own.
IMPORTED = cpu_reading()


def busy_cores(sample_s: float = SAMPLE_S, since=None) -> float:
    """How many cores other work keeps busy now: the CPUs' busy share over at least
    ``sample_s`` seconds (/proc/stat) times their number, less this process's own CPU time, and
    at least the tasks runnable at this instant less this process (/proc/loadavg).  ``since``:
    an earlier :func:`cpu_reading` to start from when it is at most ``LOOK_BACK_S`` old (only
    the rest of ``sample_s`` is then waited).  Not the 1-minute load average, which lags: a job
    that has just finished still counts there (measured: a benchmark started right after
    another one got one thread on an idle 2-core machine, and generated 18 % slower).  Where
    /proc is missing, the load average is all there is."""
    start = since if since is not None and 0 <= time.monotonic() - since[2] <= LOOK_BACK_S else cpu_reading()
    share = n_cpu = None
    if start is not None:
        wait = sample_s - (time.monotonic() - start[2])
        if wait > 0:
            time.sleep(wait)
        end = cpu_reading()
        if end is not None:
            share, n_cpu = _others_share(start, end), end[1]
    try:
        running = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0]) - 1
    except (OSError, ValueError, IndexError):
        running = 0
    if share is None or not n_cpu:
        try:
            return max(os.getloadavg()[0], float(running))
        except (AttributeError, OSError):
            return float(running)
    return max(share * n_cpu, float(running))


def policy_threads(cores: int, busy: float) -> int:
    """Threads for one process: the cores not busy (rounded), at least 1, at most ``cores``."""
    return max(1, min(int(cores), int(cores - busy + 0.5)))


def thread_policy(requested: int = 0, share: int = 1) -> int:
    """Set torch's intra-op threads and return the number.  ``requested`` > 0 is taken as
    given; 0 means the policy, split between ``share`` processes of one job (training ranks),
    unless OMP_NUM_THREADS / MKL_NUM_THREADS already say (the user's choice, kept).  Where the
    policy chose, :func:`recheck_threads` may change the number later (generation calls it)."""
    _POLICY.update(last=None)
    if requested and requested > 0:
        n = int(requested)
    elif os.environ.get("OMP_NUM_THREADS") or os.environ.get("MKL_NUM_THREADS"):
        return torch.get_num_threads()
    else:
        n = max(1, policy_threads(usable_cores(), busy_cores(since=IMPORTED)) // max(1, share))
        _POLICY.update(share=max(1, share), last=cpu_reading())
    torch.set_num_threads(n)
    return n


RECHECK_S = 1.0   # how often, at most, a long generation looks at the other work again
_POLICY = {"share": 1, "last": None}   # last: the policy's last look (None: the user chose the threads)


def recheck_threads() -> int | None:
    """The thread policy again, during a long job (generation calls it every step; it looks at
    most every ``RECHECK_S``): the cores other work kept busy since the last look, from
    /proc/stat less this process's own CPU time, and the threads set to the cores left.  A
    policy decided once at start cannot see work that starts or ends later: two generations
    started together had 1 + 2 threads on 2 cores (the first to look saw the other still
    importing), and a job that starts beside a finishing one would keep 1 thread on a free
    machine.
    Returns the threads when it looked, None otherwise (or where the user set them)."""
    last = _POLICY["last"]
    if last is None or time.monotonic() - last[2] < RECHECK_S:
        return None
    now = cpu_reading()
    _POLICY["last"] = now
    if now is None or now[2] - last[2] > LOOK_BACK_S:   # (a long-idle server: start a new window)
        return None
    share = _others_share(last, now)
    if share is None:
        return None
    n = max(1, policy_threads(usable_cores(), share * now[1]) // _POLICY["share"])
    if n != torch.get_num_threads():
        torch.set_num_threads(n)
    return n


def _others_share(start, end) -> float | None:
    """:func:`busy_share` between two :func:`cpu_reading`\ s, less this process's CPU time."""
    return busy_share(start[0], end[0], (end[3] - start[3]) * _clock_ticks())


def _clock_ticks() -> int:
    try:
        return os.sysconf("SC_CLK_TCK")
    except (AttributeError, ValueError, OSError):
        return 100


# ----------------------------------------------------------------------------- dtype
def cache_file() -> Path:
    env = os.environ.get("CMT_CACHE_DIR")
    return (Path(env) if env else REPO_ROOT / ".cache") / "dtype.json"


def processor_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def dtype_key(model, batch: int, device: torch.device) -> str:
    c = model.config
    # not the thread count: it follows the load, and the choice (hence the songs) must not
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{processor_name()} x{usable_cores()}"
    return (f"{c.preset} L{c.n_layer} d{c.d_model} ff{c.d_ff} h{c.n_head} v{sum(c.n_class[:8])} b{batch} | "
            f"{where} | torch {torch.__version__} | traced step")   # (choices of the eager step are stale)


def time_steps(model, batch: int = 1, steps: int = 8, rounds: int = 3) -> float:
    """Median seconds of one generation step (the backbone and every head) at ``batch``."""
    device = next(model.parameters()).device
    c = model.config
    init = torch.zeros(batch, 7, len(c.init_n_class), dtype=torch.long, device=device)
    tok = torch.ones(batch, c.layout.n_cols, dtype=torch.long, device=device)
    times = []
    with torch.inference_mode():
        state = model.start(init)
        for i in range(2 + steps * rounds):
            if device.type == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            h, state = model.step(tok, state)
            model.predict_fields(h, model.predict_type(h).argmax(-1))
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= 2:   # two warm-up steps
                times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def _convert(model, name: str):
    """A copy of ``model`` in precision ``name`` (the model itself for float32 when it is float32)."""
    base = model if next(model.parameters()).dtype == torch.float32 else copy.deepcopy(model).float()
    if name == "float32":
        return base
    m = copy.deepcopy(base)
    return m.quantize_int8() if name == "int8" else m.to(getattr(torch, name))


def _frozen(model, name: str, batch: int):
    """:func:`_convert`, then traced for generation as :func:`prepare` leaves it (CMT.freeze)."""
    return _convert(model, name).freeze(batch)


def fastest(model, batch: int = 1, candidates=("float32", "bfloat16"), cache: Path | None | bool = None) -> str:
    """The name of the precision among ``candidates`` that runs ``model``'s generation step
    fastest here.  The model is not changed (the others are timed on copies).  ``cache``: a
    json file (default :func:`cache_file`), or False for no cache."""
    device = next(model.parameters()).device
    key = dtype_key(model, batch, device) + " | " + ",".join(candidates)
    path = None if cache is False else Path(cache or cache_file())
    known = {}
    if path is not None and path.is_file():
        try:
            known = json.loads(path.read_text())
            if known.get(key) in candidates:
                return known[key]
        except (OSError, ValueError, AttributeError):
            known = {}
    copies = {name: _frozen(model, name, batch) for name in candidates}
    times = {name: [] for name in candidates}
    for _ in range(3):   # short turns, interleaved, so a change of load hits all alike
        for name, m in copies.items():
            times[name].append(time_steps(m, batch, steps=4, rounds=1))
    del copies
    name = min(candidates, key=lambda n: min(times[n]))
    if path is not None:
        known = known if isinstance(known, dict) else {}
        known[key] = name
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            cli.write_text_atomic(path, json.dumps(known, indent=1, sort_keys=True))
        except OSError:   # a cache that cannot be written is not an error
            pass
    return name


def default_precision(device: torch.device) -> str:
    """``--dtype auto``: int8 on the CPU; on a GPU bfloat16 where it has it, else float32.  A
    function of the device alone (never of a timing), so a seed means the same songs on every
    machine of a kind."""
    if device.type != "cuda":
        return "int8"
    return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"


def prepare(model, name: str, batch: int = 1) -> str:
    """Put ``model`` in the precision ``--dtype`` names (auto: :func:`default_precision`; fastest:
    the fastest measured here, cached; float32, bfloat16, or int8: int8 weights on the CPU, see
    CMT.quantize_int8) and trace its generation step (CMT.freeze: the model is for generation
    only from then on); returns the precision used."""
    if name not in PRECISIONS:
        raise cli.UserError(f"--dtype {name}: choose {', '.join(PRECISIONS)}")
    device = next(model.parameters()).device
    on_cpu = device.type == "cpu"
    if name == "auto":
        name = default_precision(device)
    elif name == "fastest":
        name = fastest(model, batch, ("float32", "bfloat16", "int8") if on_cpu else ("float32", "bfloat16"))
    if name == "int8":
        if not on_cpu:
            raise cli.UserError("--dtype int8 runs on the CPU only: add --device cpu, or choose bfloat16 on a GPU")
        model.float().quantize_int8()
    else:
        model.to(getattr(torch, name))
    model.freeze(batch)
    return name
