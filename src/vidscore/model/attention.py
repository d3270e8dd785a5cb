"""Causal linear attention (Katharopoulos et al., 2020), as used by CMT (SPEC section 3).

With the feature map phi(x) = elu(x) + 1, output i of one head is

    out_i = phi(q_i) . S_i / (phi(q_i) . Z_i + eps),
    S_i = sum_{j<=i} phi(k_j) v_j^T   (E x D),   Z_i = sum_{j<=i} phi(k_j)   (E),

with eps = 1e-6 added to the denominator, as in pytorch-fast-transformers.
Three ways to compute it, which agree to float32 rounding:

* :func:`causal_linear_attention` with backend ``"torch"``: the chunked parallel form
  for training.  The sequence is cut into chunks of ``chunk_size`` tokens; inside a
  chunk a masked (C x C) product handles causality, across chunks the running state
  (S, Z) is carried.  Peak extra memory is B*H*L*(C + E*D/C) floats, never the
  (L, E, D) tensor of per-position states.
* backend ``"fast_transformers"``: the compiled ``causal_dot_product`` kernel of
  pytorch-fast-transformers for the numerator (the normaliser is a cumsum in torch),
  when that package is installed.
* :func:`recurrent_step`: one token at a time from the state (S, Z): constant work per
  token, for generation.

All tensors are laid out (batch, heads, length, head_dim); inputs are the projected
queries/keys/values *before* the feature map.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

EPS = 1e-6
DEFAULT_CHUNK = 64
BACKENDS = ("auto", "torch", "fast_transformers")


def feature_map(x: torch.Tensor) -> torch.Tensor:
    """phi(x) = elu(x) + 1 (positive, so the normaliser is positive)."""
    return F.elu(x) + 1.0


@functools.lru_cache(maxsize=1)
def _kernel_module():
    """fast_transformers.causal_product, or None when not importable."""
    try:
        import fast_transformers.causal_product as cp
    except Exception:  # ImportError, or a build whose extension fails to load
        return None
    return cp


def fast_transformers_available(device: torch.device | str | None = None) -> bool:
    """True when the kernel imports (and, given a device, was built for its type)."""
    cp = _kernel_module()
    if cp is None:
        return False
    if device is None:
        return True
    kind = torch.device(device).type
    return getattr(cp, f"causal_dot_product_{kind}", None) is not None


def available_backends(device: torch.device | str | None = None) -> list[str]:
    """Concrete backends usable here ("torch" always)."""
    return ["torch"] + (["fast_transformers"] if fast_transformers_available(device) else [])


def resolve_backend(name: str, device: torch.device | str | None = None) -> str:
    """Map a requested backend ("auto" | "torch" | "fast_transformers") to a concrete one.

    "auto" picks the fast-transformers kernel when it is installed for the device (as
    the original did: on GPU it is the fastest and leanest; on this 2-core CPU the two
    train at about the same speed, and the kernel keeps less memory for backward),
    else the chunked torch form.  Asking for "fast_transformers" when it is not
    installed raises ValueError.
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown attention backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if name == "fast_transformers" and not fast_transformers_available(device):
        where = "" if device is None else f" for {torch.device(device).type}"
        raise ValueError(f"attention backend 'fast_transformers' asked for, but pytorch-fast-transformers "
                         f"is not installed{where} (pip install pytorch-fast-transformers), or use 'torch'")
    if name != "auto":
        return name
    return "fast_transformers" if fast_transformers_available(device or "cpu") else "torch"


def causal_linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *,
                            backend: str = "torch", eps: float = EPS,
                            chunk_size: int = DEFAULT_CHUNK,
                            initial_state: tuple[torch.Tensor, torch.Tensor] | None = None,
                            return_state: bool = False):
    """Causal linear attention over a whole sequence.

    q, k: (B, H, L, E); v: (B, H, L, D); feature map not yet applied.
    ``initial_state`` (S0 (B,H,E,D), Z0 (B,H,E)) continues from an earlier prefix (torch
    backend only).  Returns out (B, H, L, D), and with ``return_state`` also the final
    state (S, Z) after the last position, ready for :func:`recurrent_step`.
    """
    backend = resolve_backend(backend, q.device)
    if (backend == "fast_transformers" and initial_state is None and not return_state
            and q.dtype == torch.float32):  # the kernel computes in float32 only
        return _kernel_attention(q, k, v, eps)
    return _chunked_attention(q, k, v, eps, chunk_size, initial_state, return_state)


def _kernel_attention(q, k, v, eps):
    phi_q, phi_k = feature_map(q), feature_map(k)
    num = _kernel_module().causal_dot_product(phi_q.contiguous(), phi_k.contiguous(), v.contiguous())
    den = (phi_q * phi_k.cumsum(2)).sum(-1) + eps
    return num / den.unsqueeze(-1)


def _chunked_attention(q, k, v, eps, chunk_size, initial_state, return_state):
    B, H, L, E = q.shape
    D = v.shape[-1]
    phi_q, phi_k = feature_map(q), feature_map(k)
    C = max(1, min(chunk_size, L))
    n = -(-L // C)
    pad = n * C - L
    if pad:  # zero keys/values at the end contribute nothing to any state or output kept
        phi_q = F.pad(phi_q, (0, 0, 0, pad))
        phi_k = F.pad(phi_k, (0, 0, 0, pad))
        v = F.pad(v, (0, 0, 0, pad))
    Qc = phi_q.reshape(B, H, n, C, E)
    Kc = phi_k.reshape(B, H, n, C, E)
    Vc = v.reshape(B, H, n, C, D)

    # inside each chunk: masked (C x C) scores, causal including the diagonal
    mask = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()
    A = (Qc @ Kc.transpose(-1, -2)).masked_fill(~mask, 0.0)       # (B,H,n,C,C)
    num = A @ Vc                                                   # (B,H,n,C,D)
    den = A.sum(-1)                                                # (B,H,n,C)

    # across chunks: state before chunk c = sum of the whole chunks before it
    KV = Kc.transpose(-1, -2) @ Vc                                 # (B,H,n,E,D)
    Ksum = Kc.sum(3)                                               # (B,H,n,E)
    S_incl = KV.cumsum(2)
    Z_incl = Ksum.cumsum(2)
    S_prev = torch.cat([torch.zeros_like(KV[:, :, :1]), S_incl[:, :, :-1]], dim=2)
    Z_prev = torch.cat([torch.zeros_like(Ksum[:, :, :1]), Z_incl[:, :, :-1]], dim=2)
    if initial_state is not None:
        S0, Z0 = initial_state
        S_prev = S_prev + S0.unsqueeze(2)
        Z_prev = Z_prev + Z0.unsqueeze(2)
    num = num + Qc @ S_prev
    den = den + (Qc @ Z_prev.unsqueeze(-1)).squeeze(-1)
    out = (num / (den + eps).unsqueeze(-1)).reshape(B, H, n * C, D)[:, :, :L]
    if not return_state:
        return out
    S_last, Z_last = S_incl[:, :, -1], Z_incl[:, :, -1]
    if initial_state is not None:
        S_last, Z_last = S_last + initial_state[0], Z_last + initial_state[1]
    return out, (S_last, Z_last)


def empty_state(batch: int, heads: int, dim_k: int, dim_v: int, *, device=None,
                dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """The state before any token: S = 0 (B,H,E,D), Z = 0 (B,H,E)."""
    return (torch.zeros(batch, heads, dim_k, dim_v, device=device, dtype=dtype),
            torch.zeros(batch, heads, dim_k, device=device, dtype=dtype))


def recurrent_step(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                   state: tuple[torch.Tensor, torch.Tensor], eps: float = EPS):
    """One token: q, k (B, H, E), v (B, H, D), state (S, Z).  Returns (out (B,H,D), new state).

    The input state is not modified (the new one is a fresh tensor).
    """
    S, Z = state
    B, H, E = q.shape
    D = v.shape[-1]
    phi_q, phi_k = feature_map(q), feature_map(k)
    S = torch.addcmul(S, phi_k.unsqueeze(-1), v.unsqueeze(-2))   # S + phi(k) v^T
    Z = Z + phi_k
    num = torch.bmm(phi_q.reshape(B * H, 1, E), S.reshape(B * H, E, D)).view(B, H, D)  # phi(q) . S
    den = (phi_q * Z).sum(-1, keepdim=True) + eps
    return num / den, (S, Z)
