"""Masked temperature + nucleus sampling in torch, for many rows (songs) and fields at once.

The same maths as :func:`sampling.sample`, step for step and in float64, so that the same
uniforms give the same classes:

1. ``softmax(logits / temperature)`` over the allowed classes (the others get probability 0);
2. nucleus: sort the distribution (stable, decreasing), keep the smallest prefix whose
   cumulative mass exceeds ``top_p`` (a class is kept when the mass before it is <= top_p;
   the first always), renormalise; no ``top_p`` keeps every class;
3. inverse CDF: the class is the first whose cumulative mass exceeds ``u * total``.

Here the uniforms ``u`` are an argument, not drawn, so the caller decides the random stream.
``logits`` may carry leading dimensions (fields, songs): one call samples the six
type-conditioned fields of every song together, each with its own temperature and top_p.
Fields of different vocabulary sizes are stacked by :func:`stack`, padding with disallowed
classes, which cannot be drawn (they have probability 0).
"""
from __future__ import annotations

import math

import torch


def sample(logits: torch.Tensor, mask: torch.Tensor | None, temperature, top_p, u: torch.Tensor) -> torch.Tensor:
    """Class ids (...) for logits (..., V).

    mask: bool (..., V) of allowed classes, or None (all allowed).  temperature: a number or a
    tensor of shape (...) or broadcastable to it (e.g. (F, 1) for one value per field);
    top_p likewise, None / inf / nan meaning no nucleus.  u: uniforms in [0, 1) of shape (...).
    Every row must allow at least one class.
    """
    x = logits.to(torch.float64)
    lead = x.shape[:-1]
    t = torch.as_tensor(temperature, dtype=torch.float64, device=x.device).expand(lead)
    x = x / t.unsqueeze(-1)
    if mask is not None:
        x = x.masked_fill(~mask, -math.inf)
    x = x - x.amax(-1, keepdim=True)
    probs = x.exp()
    probs = probs / probs.sum(-1, keepdim=True)
    if top_p is not None:
        p = torch.as_tensor(top_p, dtype=torch.float64, device=x.device).expand(lead)
        p = torch.where(torch.isnan(p), torch.full_like(p, math.inf), p)
        sorted_p, order = probs.sort(dim=-1, descending=True, stable=True)
        before = sorted_p.cumsum(-1) - sorted_p
        keep_sorted = before <= p.unsqueeze(-1)
        keep_sorted[..., 0] = True
        keep = torch.zeros_like(keep_sorted).scatter_(-1, order, keep_sorted)
        nucleus = torch.where(keep, probs, torch.zeros_like(probs))
        nucleus = nucleus / nucleus.sum(-1, keepdim=True)
        probs = torch.where(torch.isinf(p).unsqueeze(-1), probs, nucleus)   # rows without top_p: as they were
    cum = probs.cumsum(-1)
    target = u.to(torch.float64) * cum[..., -1]
    return (cum <= target.unsqueeze(-1)).sum(-1)


def stack(logits: list[torch.Tensor], masks: list[torch.Tensor | None]) -> tuple[torch.Tensor, torch.Tensor]:
    """Fields of different sizes (each (B, V_f)) as one (F, B, max V) tensor and its mask;
    the padding classes are disallowed."""
    V = max(x.shape[-1] for x in logits)
    B = logits[0].shape[0]
    out = logits[0].new_zeros((len(logits), B, V))
    allowed = torch.zeros((len(logits), B, V), dtype=torch.bool, device=logits[0].device)
    for f, (x, m) in enumerate(zip(logits, masks)):
        out[f, :, :x.shape[-1]] = x
        allowed[f, :, :x.shape[-1]] = True if m is None else m
    return out, allowed
