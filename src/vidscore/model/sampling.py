"""Sampling one compound-word field: softmax with temperature, then nucleus (top-p).

The per-field settings are the published ones (SPEC section 3).  Sampling is batched and
driven by NumPy ``Generator``s so that the same seed gives the same song: one shared by the
batch, or one per row (each song its own stream, so a song does not depend on the others).
"""
from __future__ import annotations

import numpy as np
import torch

# field -> (temperature, top_p); top_p None = sample from the whole distribution
SAMPLING = {
    "type": (1.0, 0.9),
    "barbeat": (1.2, None),
    "density": (1.0, 0.9),
    "pitch": (1.0, 0.9),
    "duration": (2.0, 0.9),
    "instr": (1.0, 0.9),
    "strength": (1.0, 0.9),
    # bmt fields (BMT publishes no settings; these follow the other fields)
    "tempo": (1.0, 0.9),
    "chord": (1.0, 0.9),
    "velocity": (1.0, 0.9),
}


def nucleus_mask(probs: np.ndarray, p: float) -> np.ndarray:
    """Boolean mask of the smallest set of top classes whose cumulative mass exceeds ``p``.

    ``probs`` is (batch, classes).  Classes are taken in order of decreasing probability
    up to and including the first one at which the running sum passes ``p``.
    """
    order = np.argsort(-probs, axis=-1, kind="stable")
    rows = np.arange(probs.shape[0])[:, None]   # (plain indexing: take/put_along_axis cost more here)
    sorted_p = probs[rows, order]
    cum = np.cumsum(sorted_p, axis=-1)
    # keep rank r when the mass before it has not yet exceeded p
    keep_sorted = (cum - sorted_p) <= p
    keep_sorted[:, 0] = True
    mask = np.empty_like(keep_sorted)
    mask[rows, order] = keep_sorted
    return mask


def sample(logits: torch.Tensor, field: str, rng,
           allowed: np.ndarray | None = None, settings: dict | None = None) -> np.ndarray:
    """Sample one class per row of ``logits`` (batch, classes) with the field's settings.

    ``rng``: a ``np.random.Generator`` (one draw per row, in order) or a sequence of them, one
    per row (each row draws once from its own).

    ``allowed`` (batch, classes) bool, optional: classes that the control rules permit; the
    others get zero probability before the nucleus is taken.

    ``settings``: field -> (temperature, top_p) overriding :data:`SAMPLING` (the hyperparameter
    block's ``sampling`` entry, via ``generation.Controls.sampling``).
    """
    temperature, top_p = (settings or SAMPLING)[field]
    if isinstance(rng, np.random.Generator):
        u = rng.random(logits.shape[0])
    else:
        u = np.array([g.random() for g in rng], dtype=np.float64)
    if logits.device.type != "cpu":
        # on a GPU the logits stay there: the same maths in torch (fast_sampling), only ids come back
        from vidscore.model import fast_sampling
        mask = None if allowed is None else torch.as_tensor(allowed, dtype=torch.bool, device=logits.device)
        ids = fast_sampling.sample(logits.detach(), mask, temperature, top_p,
                                   torch.as_tensor(u, dtype=torch.float64, device=logits.device))
        return ids.cpu().numpy()
    x = logits.detach().float().numpy().astype(np.float64)
    x /= temperature
    if allowed is not None:
        x[~allowed] = -np.inf
    x -= x.max(axis=-1, keepdims=True)
    probs = np.exp(x, out=x)
    probs /= probs.sum(axis=-1, keepdims=True)
    if top_p is not None:
        probs[~nucleus_mask(probs, top_p)] = 0.0
        probs /= probs.sum(axis=-1, keepdims=True)
    cum = np.cumsum(probs, axis=-1)
    u = u * cum[:, -1]
    # the first class whose cumulative mass passes u: always one with non-zero probability
    return (cum <= u[:, None]).sum(axis=-1)
