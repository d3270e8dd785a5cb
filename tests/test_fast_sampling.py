"""fast_sampling gives the classes sampling.sample gives for the same uniforms."""
import numpy as np
import pytest
import torch

from vidscore.model import fast_sampling
from vidscore.model import sampling


class Replay:
    """A stand-in for one song's random stream whose random() returns a given uniform (what
    sampling.sample draws from each song's stream)."""

    def __init__(self, u):
        self.u = float(u)

    def random(self):
        return self.u


def reference(logits, field, mask, u):
    return sampling.sample(logits, field, [Replay(x) for x in u], None if mask is None else mask.numpy())


@pytest.mark.parametrize("field", list(sampling.SAMPLING))
def test_same_classes_as_sampling_sample(field):
    g = torch.Generator().manual_seed(hash(field) % 1000)
    rng = np.random.default_rng(1)
    temperature, top_p = sampling.SAMPLING[field]
    for trial in range(40):
        B, V = int(rng.integers(1, 9)), int(rng.integers(2, 140))
        logits = torch.randn(B, V, generator=g) * float(rng.choice([0.5, 2.0, 6.0]))
        mask = None
        if trial % 2:
            mask = torch.rand(B, V, generator=g) < 0.6
            mask[torch.arange(B), torch.randint(0, V, (B,), generator=g)] = True   # one allowed at least
        u = rng.random(B)
        got = fast_sampling.sample(logits, mask, temperature, top_p, torch.as_tensor(u))
        assert got.tolist() == reference(logits, field, mask, u).tolist(), (field, trial)


def test_the_maths_by_hand():
    # logits log(0.5), log(0.3), log(0.2): at temperature 1 and top_p 0.6 the nucleus is
    # {0, 1} (mass before class 1 is 0.5 <= 0.6; before class 2 it is 0.8 > 0.6): 0.625, 0.375
    logits = torch.tensor([[np.log(0.5), np.log(0.3), np.log(0.2)]] * 4)
    u = torch.tensor([0.0, 0.6, 0.63, 0.99])
    assert fast_sampling.sample(logits, None, 1.0, 0.6, u).tolist() == [0, 0, 1, 1]
    # no nucleus: cumulative 0.5, 0.8, 1.0
    assert fast_sampling.sample(logits, None, 1.0, None, u).tolist() == [0, 1, 1, 2]
    # class 0 disallowed: 0.6, 0.4 over classes 1, 2
    mask = torch.tensor([[False, True, True]] * 4)
    assert fast_sampling.sample(logits, mask, 1.0, None, u).tolist() == [1, 2, 2, 2]


def test_all_fields_at_once_equal_one_at_a_time():
    g = torch.Generator().manual_seed(3)
    rng = np.random.default_rng(3)
    fields = ["barbeat", "density", "pitch", "duration", "instr", "strength"]
    sizes = [18, 18, 129, 18, 6, 20]
    B = 8
    logits = [torch.randn(B, V, generator=g) * 3 for V in sizes]
    masks = [torch.rand(B, V, generator=g) < 0.7 for V in sizes]
    for m in masks:
        m[:, 1] = True
    u = rng.random((len(fields), B))
    X, M = fast_sampling.stack(logits, masks)
    t = torch.tensor([sampling.SAMPLING[f][0] for f in fields]).unsqueeze(1)
    p = torch.tensor([sampling.SAMPLING[f][1] or float("nan") for f in fields]).unsqueeze(1)
    together = fast_sampling.sample(X, M, t, p, torch.as_tensor(u))
    for i, f in enumerate(fields):
        assert together[i].tolist() == reference(logits[i], f, masks[i], u[i]).tolist(), f
