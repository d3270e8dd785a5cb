"""Inference device, dtype and thread choices (compute.py), checked without a GPU."""
import contextlib
import json
import subprocess
import sys
import time

import pytest
import torch

from vidscore import cli
from vidscore import compute
from vidscore.model.cmt import CMT, ModelConfig


@contextlib.contextmanager
def spinning():
    """Another process keeping one core busy, for as long as the block runs (from 0.3 s in)."""
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        yield
    finally:
        spin.kill()
        spin.wait()


def test_thread_policy_takes_only_idle_cores():
    assert compute.policy_threads(2, 0.0) == 2        # an idle 2-core machine: both cores
    assert compute.policy_threads(2, 0.4) == 2
    assert compute.policy_threads(2, 1.0) == 1        # another generation running: one thread
    assert compute.policy_threads(2, 4.0) == 1        # loaded: one thread, never zero
    assert compute.policy_threads(16, 5.2) == 11
    assert compute.policy_threads(4, -1.0) == 4       # never more than the cores


def test_thread_policy_honours_a_request_and_the_environment(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
        assert compute.thread_policy(1) == 1 and torch.get_num_threads() == 1
        monkeypatch.setattr(compute, "busy_cores", lambda **k: 0.0)
        monkeypatch.setattr(compute, "usable_cores", lambda: 2)
        assert compute.thread_policy(0) == 2
        assert compute.thread_policy(0, share=2) == 1      # two training ranks share the cores
        monkeypatch.setattr(compute, "busy_cores", lambda **k: 3.0)
        assert compute.thread_policy(0) == 1
        torch.set_num_threads(1)
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        monkeypatch.setattr(compute, "busy_cores", lambda **k: 0.0)
        assert compute.thread_policy(0) == 1               # the user's OMP_NUM_THREADS is kept
    finally:
        torch.set_num_threads(before)


def test_busy_cores_reads_the_load():
    assert compute.busy_cores(0.05) >= 0.0
    assert 1 <= compute.usable_cores()


def test_busy_share_from_two_proc_stat_readings_by_hand():
    # user nice system idle iowait irq softirq steal: 100 ticks pass, 30 user + 10 system +
    # 5 irq busy, 50 idle + 5 iowait not -> 45 % busy
    before = "cpu  1000 0 500 9000 100 20 10 0 0 0"
    after = "cpu  1030 0 510 9050 105 25 10 0 0 0"
    assert compute.busy_share(before, after) == pytest.approx(0.45)
    assert compute.busy_share(before, before) is None          # no time passed
    # this process's own 30 ticks are not other work: 15 % busy; never below 0
    assert compute.busy_share(before, after, own_ticks=30) == pytest.approx(0.15)
    assert compute.busy_share(before, after, own_ticks=80) == 0.0
    # a spinning process on one of two cores, measured for real: about 1 busy core
    with spinning():
        assert compute.busy_cores(0.5) >= 0.7
        # from an earlier reading: only the rest of the window is waited, the spin still counts
        start = compute.cpu_reading()
        time.sleep(0.4)
        waits = []
        real_sleep = time.sleep
        time.sleep = lambda s: (waits.append(s), real_sleep(s))
        try:
            assert compute.busy_cores(0.5, since=start) >= 0.7
        finally:
            time.sleep = real_sleep
        assert len(waits) <= 1 and sum(waits) <= 0.1


def test_recheck_follows_work_that_starts_later(monkeypatch):
    """The policy chose 2 threads on a free machine; a process that starts spinning afterwards
    takes a core, and the next look (at most every RECHECK_S) leaves one thread.  A number the
    user gave is never changed."""
    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.setattr(compute, "usable_cores", lambda: 2)
    monkeypatch.setattr(compute, "busy_cores", lambda **k: 0.0)
    monkeypatch.setattr(compute, "RECHECK_S", 0.4)
    try:
        assert compute.thread_policy(0) == 2
        assert compute.recheck_threads() is None                  # too soon: no look
        with spinning():
            compute._POLICY["last"] = compute.cpu_reading()      # the window starts with the spin running
            time.sleep(0.6)
            assert compute.recheck_threads() == 1 and torch.get_num_threads() == 1
            compute.thread_policy(2)                              # the user's number: kept
            time.sleep(0.5)
            assert compute.recheck_threads() is None and torch.get_num_threads() == 2
    finally:
        compute._POLICY.update(last=None)
        torch.set_num_threads(before)


def test_inference_device_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert compute.inference_device("auto").type == "cpu"
    assert compute.inference_device("cpu").type == "cpu"
    with pytest.raises(cli.UserError):
        compute.inference_device("cuda")
    with pytest.raises(cli.UserError):
        compute.inference_device("gpu")


def test_inference_device_auto_takes_a_gpu_where_torch_sees_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert compute.inference_device("auto") == torch.device("cuda", 0)
    assert compute.inference_device("auto", local_rank=3) == torch.device("cuda", 1)   # training's rank 3 of 2 GPUs
    assert compute.inference_device("cpu").type == "cpu"


def tiny_model():
    torch.manual_seed(0)
    return CMT(ModelConfig(n_layer=1, d_model=32, n_head=2, d_ff=64, emb_sizes=[8, 4, 8, 16, 8, 4, 8],
                           time_emb_size=8, init_emb_size=8)).eval()


def test_fastest_is_the_faster_one_measured_and_cached(tmp_path, monkeypatch):
    model = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # make bfloat16 slower than float32 whatever the machine: the choice must follow the timing
    real = compute.time_steps
    slow16 = lambda m, batch=1, **kw: real(m, batch, **kw) + (1.0 if next(m.parameters()).dtype == torch.bfloat16 else 0.0)  # noqa: E731
    monkeypatch.setattr(compute, "time_steps", slow16)
    cache = tmp_path / "dtype.json"
    assert compute.fastest(model, cache=cache) == "float32"
    key = compute.dtype_key(model, 1, torch.device("cpu")) + " | float32,bfloat16"
    assert json.loads(cache.read_text()) == {key: "float32"}
    # the model itself is untouched (bfloat16 was timed on a copy)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert next(model.parameters()).dtype == torch.float32
    # the cached choice holds (no timing: a timing now would say bfloat16)
    monkeypatch.setattr(compute, "time_steps", lambda m, batch=1, **kw: 0.0 if next(m.parameters()).dtype == torch.bfloat16 else 1.0)
    assert compute.fastest(model, cache=cache) == "float32"
    assert compute.fastest(model, cache=False) == "bfloat16"
    assert compute.fastest(model, batch=8, cache=cache) == "bfloat16"   # another key
    assert len(json.loads(cache.read_text())) == 2


def test_a_damaged_cache_is_measured_again(tmp_path):
    cache = tmp_path / "dtype.json"
    cache.write_text("{not json")
    assert compute.fastest(tiny_model(), cache=cache) in ("float32", "bfloat16")
    assert len(json.loads(cache.read_text())) == 1


def test_time_steps_runs_the_real_step():
    assert compute.time_steps(tiny_model(), batch=2, steps=2, rounds=1) > 0.0


def test_named_precisions_and_bad_names():
    assert compute.prepare(tiny_model(), "float32") == "float32"
    assert compute.prepare(tiny_model(), "bfloat16") == "bfloat16"
    with pytest.raises(cli.UserError, match="choose auto, fastest, float32, bfloat16, int8"):
        compute.prepare(tiny_model(), "float16")


def test_int8_step_follows_the_float32_step():
    # int8 weights: the generation step's logits stay close to float32's and rank the classes alike
    torch.manual_seed(1)
    ref = CMT(ModelConfig(n_layer=2, d_model=64, n_head=4, d_ff=128, emb_sizes=[8, 4, 8, 16, 8, 4, 8],
                          time_emb_size=8, init_emb_size=8)).eval()
    q = CMT(ref.config)
    q.load_state_dict(ref.state_dict())
    assert compute.prepare(q.eval(), "int8") == "int8"
    init = torch.zeros(3, 7, 3, dtype=torch.long)
    toks = torch.randint(0, 3, (3, 5, 9))
    with torch.inference_mode():
        sa, sb = ref.start(init), q.start(init)
        for t in range(5):
            ha, sa = ref.step(toks[:, t], sa)
            hb, sb = q.step(toks[:, t], sb)
            la, lb = ref.predict_type(ha), q.predict_type(hb)
            fa, fb = ref.predict_fields(ha, la.argmax(-1)), q.predict_fields(hb, la.argmax(-1))
            for a, b in [(la, lb)] + [(fa[k], fb[k]) for k in fa]:
                pa, pb = a.softmax(-1), b.softmax(-1)
                assert (pa - pb).abs().max() < 0.05
        # the teacher-forced path runs too (module calls)
        out = q(toks[:, :4], toks[:, 1:], init)
        assert set(out) == set(ref(toks[:, :4], toks[:, 1:], init))
    assert set(ref.state_dict()) == set(CMT(ref.config).state_dict())   # the float model's keys unchanged


def test_fastest_on_the_cpu_chooses_among_three_by_timing(tmp_path, monkeypatch):
    order = {"int8": 0.1, "float32": 0.2, "bfloat16": 0.3}
    def fake(m, batch=1, **kw):
        if getattr(m, "int8", False):
            return order["int8"]
        return order[str(next(m.parameters()).dtype).removeprefix("torch.")]
    monkeypatch.setattr(compute, "time_steps", fake)
    monkeypatch.setenv("CMT_CACHE_DIR", str(tmp_path))
    m = tiny_model()
    assert compute.prepare(m, "fastest") == "int8" and getattr(m, "int8", False)
    order.update(int8=0.5)
    m = tiny_model()
    assert compute.prepare(m, "fastest", batch=8) == "float32"
    assert next(m.parameters()).dtype == torch.float32
    with pytest.raises(cli.UserError):
        compute.prepare(tiny_model(), "int4")


@pytest.mark.parametrize("remembered", ["float32", "bfloat16", "int8", "garbage"])
def test_auto_is_int8_on_any_cpu_whatever_the_cache_or_the_timing_says(tmp_path, monkeypatch, remembered):
    """--dtype auto is a function of the device: no timing runs and the cache is not read."""
    monkeypatch.setenv("CMT_CACHE_DIR", str(tmp_path))
    m = tiny_model()
    key = compute.dtype_key(m, 1, torch.device("cpu")) + " | float32,bfloat16,int8"
    (tmp_path / "dtype.json").write_text(json.dumps({key: remembered}))
    monkeypatch.setattr(compute, "time_steps", lambda *a, **k: pytest.fail("auto must not time anything"))
    assert compute.prepare(m, "auto") == "int8" and getattr(m, "int8", False)
    assert json.loads((tmp_path / "dtype.json").read_text()) == {key: remembered}   # untouched
    assert compute.default_precision(torch.device("cpu")) == "int8"
