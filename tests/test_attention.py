"""Causal linear attention: chunked parallel form, recurrent form, and the optional kernel."""
import pytest
import torch

from vidscore.model import attention as A

FT_SKIP = "pytorch-fast-transformers is not installed (its causal_product kernel cannot be imported)"


def naive(q, k, v, eps=A.EPS):
    """The definition, quadratic in length: explicit lower-triangular weights."""
    pq, pk = torch.nn.functional.elu(q) + 1, torch.nn.functional.elu(k) + 1
    w = (pq @ pk.transpose(-1, -2)).tril()
    return (w @ v) / (w.sum(-1, keepdim=True) + eps)


def rand_qkv(B=2, H=3, L=29, E=8, D=5, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(B, H, L, E, generator=g, dtype=dtype),
            torch.randn(B, H, L, E, generator=g, dtype=dtype),
            torch.randn(B, H, L, D, generator=g, dtype=dtype))


def test_hand_computed_running_mean():
    # q = k = 0 gives phi = 1 everywhere, so output i is the mean of v_0..v_i
    # (denominator i + 1 + eps).
    L = 4
    q = torch.zeros(1, 1, L, 2, dtype=torch.float64)
    k = torch.zeros(1, 1, L, 2, dtype=torch.float64)
    v = torch.tensor([1.0, 2.0, 3.0, 10.0], dtype=torch.float64).view(1, 1, L, 1)
    out = A.causal_linear_attention(q, k, v, chunk_size=3)
    # phi(q).phi(k) = 2 per pair, numerator 2 * sum v, denominator 2 * (i + 1) + eps
    expected = [2 * 1 / (2 + 1e-6), 2 * 3 / (4 + 1e-6), 2 * 6 / (6 + 1e-6), 2 * 16 / (8 + 1e-6)]
    assert out.flatten().tolist() == pytest.approx(expected, rel=1e-12)


def test_feature_map_values():
    x = torch.tensor([-1.0, 0.0, 2.0], dtype=torch.float64)
    assert A.feature_map(x).tolist() == pytest.approx([torch.e ** -1, 1.0, 3.0])


@pytest.mark.parametrize("chunk", [1, 4, 7, 29, 64])
def test_chunked_equals_definition(chunk):
    q, k, v = rand_qkv()
    out = A.causal_linear_attention(q, k, v, chunk_size=chunk)
    assert torch.allclose(out, naive(q, k, v), atol=1e-12, rtol=1e-10)


def test_final_state_is_the_plain_sums():
    q, k, v = rand_qkv(L=13)
    _, (S, Z) = A.causal_linear_attention(q, k, v, chunk_size=5, return_state=True)
    pk = A.feature_map(k)
    assert torch.allclose(S, torch.einsum("bhle,bhld->bhed", pk, v))
    assert torch.allclose(Z, pk.sum(2))


def test_recurrent_steps_equal_parallel():
    q, k, v = rand_qkv()
    ref = naive(q, k, v)
    state = A.empty_state(2, 3, 8, 5, dtype=torch.float64)
    for t in range(q.shape[2]):
        S_before = state[0].clone()
        out, new = A.recurrent_step(q[:, :, t], k[:, :, t], v[:, :, t], state)
        assert torch.equal(state[0], S_before)  # the input state is not modified
        state = new
        assert torch.allclose(out, ref[:, :, t], atol=1e-12)


def test_initial_state_continues_a_prefix():
    q, k, v = rand_qkv(L=30)
    head, st = A.causal_linear_attention(q[:, :, :11], k[:, :, :11], v[:, :, :11], chunk_size=4,
                                         return_state=True)
    tail, st2 = A.causal_linear_attention(q[:, :, 11:], k[:, :, 11:], v[:, :, 11:], chunk_size=4,
                                          initial_state=st, return_state=True)
    assert torch.allclose(torch.cat([head, tail], 2), naive(q, k, v), atol=1e-12)
    _, full = A.causal_linear_attention(q, k, v, return_state=True)
    assert torch.allclose(st2[0], full[0]) and torch.allclose(st2[1], full[1])


def test_gradients_match_definition():
    q, k, v = (t.requires_grad_() for t in rand_qkv(L=17))
    g_out = torch.randn(2, 3, 17, 5, dtype=torch.float64)
    grads = []
    for fn in (lambda: A.causal_linear_attention(q, k, v, chunk_size=6), lambda: naive(q, k, v)):
        (fn() * g_out).sum().backward()
        grads.append([t.grad.clone() for t in (q, k, v)])
        for t in (q, k, v):
            t.grad = None
    for a, b in zip(*grads):
        assert torch.allclose(a, b, atol=1e-10)


def test_backend_resolution():
    assert A.resolve_backend("torch") == "torch"
    auto = A.resolve_backend("auto", "cpu")
    assert auto == ("fast_transformers" if A.fast_transformers_available("cpu") else "torch")
    with pytest.raises(ValueError, match="unknown attention backend"):
        A.resolve_backend("flash")
    if not A.fast_transformers_available():
        with pytest.raises(ValueError, match="not installed"):
            A.resolve_backend("fast_transformers")


@pytest.mark.skipif(not A.fast_transformers_available(), reason=FT_SKIP)
def test_kernel_equals_torch_forward_and_backward():
    q, k, v = (t.float().requires_grad_() for t in rand_qkv(B=2, H=4, L=300, E=16, D=16))
    outs, grads = [], []
    for backend in ("torch", "fast_transformers"):
        out = A.causal_linear_attention(q, k, v, backend=backend)
        out.square().sum().backward()
        outs.append(out.detach())
        grads.append([t.grad.clone() for t in (q, k, v)])
        for t in (q, k, v):
            t.grad = None
    assert (outs[0] - outs[1]).abs().max() < 1e-5
    ref = naive(*(t.detach().double() for t in (q, k, v))).float()
    assert (outs[1] - ref).abs().max() < 1e-5
    for a, b in zip(*grads):
        assert (a - b).abs().max() < 1e-3 * max(1.0, a.abs().max().item())
