"""Test set-up: make src/ importable as the scripts see it, and keep progress bars quiet."""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
sys.path.insert(0, str(SRC))
os.environ.setdefault("CMT_NO_PROGRESS", "1")


import pytest  # noqa: E402


def tiny_config(**over) -> dict:
    """The size of the tests' small random models (a fresh dict: its lists are the caller's)."""
    return dict(d_model=32, n_head=2, d_ff=64, emb_sizes=[8, 4, 8, 16, 8, 4, 8], time_emb_size=8,
                init_emb_size=8, **over)


def save_tiny_checkpoint(path, instruments=(1, 2, 3, 4, 5), vocab=None, **config):
    """A one-layer model with random weights, saved in our format (for pipeline tests).
    ``preset="bmt"`` makes a bmt model (its full vocabulary, an emotion init field)."""
    import torch

    from vidscore import constants as D
    from vidscore.model.cmt import CMT, ModelConfig, save_checkpoint
    torch.manual_seed(0)
    cfg = tiny_config(n_layer=1, init_n_class=[7, 25, 6])
    if config.get("preset") == "bmt":
        P = D.preset("bmt")
        cfg.update(n_class=list(P.n_class), init_n_class=[7, 25, 6, 5], emb_sizes=P.emb_sizes(cfg["emb_sizes"]))
    cfg.update(config)
    save_checkpoint(path, CMT(ModelConfig(**cfg)), vocab={"instruments": list(instruments), **(vocab or {})})
    return path


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt")


@pytest.fixture(scope="module")
def tiny():
    """A two-layer cmt model with random weights, in memory (one per test module, which may
    change its vocab)."""
    import torch

    from vidscore.model.cmt import CMT, ModelConfig
    torch.manual_seed(0)
    cfg = ModelConfig(**tiny_config(n_layer=2, dropout=0.0))
    return CMT(cfg).eval()
