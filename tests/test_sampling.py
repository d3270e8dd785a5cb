import numpy as np
import torch

from vidscore.model.sampling import nucleus_mask, sample


def test_nucleus_keeps_smallest_prefix_passing_p():
    probs = np.array([[0.1, 0.5, 0.3, 0.1]])
    # sorted: 0.5 (cum 0.5), 0.3 (cum 0.8), 0.1 (cum 0.9), 0.1: p=0.7 keeps 0.5 and 0.3
    assert nucleus_mask(probs, 0.7).tolist() == [[False, True, True, False]]
    # p=0.5: 0.5 alone does not exceed 0.5, so the next class is kept too (as the original)
    assert nucleus_mask(probs, 0.5).tolist() == [[False, True, True, False]]
    # p=0.49: the top class already exceeds it
    assert nucleus_mask(probs, 0.49).tolist() == [[False, True, False, False]]


def test_sample_respects_allowed_and_nucleus():
    rng = np.random.default_rng(0)
    logits = torch.log(torch.tensor([[0.05, 0.6, 0.3, 0.05]] * 2000))
    got = sample(logits, "pitch", rng)  # p = 0.9: the two 0.05 classes are cut
    assert set(np.unique(got)) == {1, 2}
    # the kept mass is renormalised: 0.6 / 0.9 = 2/3 for class 1
    assert abs((got == 1).mean() - 2 / 3) < 0.04
    allowed = np.zeros((2000, 4), bool)
    allowed[:, 3] = True
    assert (sample(logits, "pitch", rng, allowed) == 3).all()


def test_same_seed_same_samples():
    logits = torch.randn(8, 30)
    a = sample(logits, "barbeat", np.random.default_rng(5))
    b = sample(logits, "barbeat", np.random.default_rng(5))
    assert (a == b).all()
