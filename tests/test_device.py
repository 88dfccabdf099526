"""Nothing in the forward passes, the loss or analyze hard-codes the CPU or float32: the task's
tensors are CPU and are moved to where the model's parameters are; tensors made inside follow the
model's device and dtype. Checked with float64 copies, the meta device, and (for the MLP) parameters
on a simulated CUDA device (torch's fake tensors, which refuse any op that mixes devices)."""

import subprocess
import sys
import textwrap

import pytest
import torch

import grokinterp as gi
from grokinterp.models import answer_logits, answer_loss, as_weights, grid_activations
from grokinterp.metrics import train_loss
from grokinterp.models import stacked_mlp_logits


def _pair():
    task = gi.ModularArithmetic(23, frac_train=0.5, seed=0)
    mlp = gi.HookedMLP(gi.MLPConfig(23, d_embed=32, d_hidden=16, seed=0))
    tf = gi.make_transformer(gi.TransformerConfig(p=23, d_model=16, d_head=8, n_heads=2, d_mlp=16, seed=0))
    return task, mlp, tf


@pytest.mark.parametrize("kind", ["mlp", "transformer"])
def test_a_float64_copy_computes_in_float64(kind):
    task, mlp, tf = _pair()
    model = mlp if kind == "mlp" else tf
    double = (gi.HookedMLP(model.cfg) if kind == "mlp" else gi.make_transformer(model.grokinterp_config)).double()
    tokens = task.tokens("train")
    assert double(tokens).dtype == torch.float64
    assert answer_logits(double, task.train_inputs).dtype == torch.float64
    assert grid_activations(double).post.dtype == torch.float64
    loss = answer_loss(double, task)
    loss.backward()
    assert all(p.grad is None or p.grad.dtype == torch.float64 for p in double.parameters())
    torch.testing.assert_close(loss.detach(), answer_loss(model, task).detach(), atol=1e-5, rtol=1e-5)
    r64, r32 = gi.analyze(double, task), gi.analyze(model, task)
    assert r64.metrics == pytest.approx(r32.metrics, rel=1e-4, abs=1e-6)
    assert r64.key_frequencies == r32.key_frequencies


@pytest.mark.parametrize("kind", ["mlp", "transformer"])
def test_forward_and_loss_follow_the_meta_device(kind):
    task, mlp, tf = _pair()
    model = (mlp if kind == "mlp" else tf).to("meta")
    assert model(task.tokens("test")).device.type == "meta"  # CPU tokens in, meta out
    assert answer_loss(model, task).device.type == "meta"
    assert answer_logits(model, task.test_inputs).device.type == "meta"


FAKE_CUDA = textwrap.dedent("""
    import copy, torch, grokinterp as gi
    from torch import nn
    from torch._subclasses.fake_tensor import FakeTensorMode
    from grokinterp.models import answer_loss

    task = gi.ModularArithmetic(23, frac_train=0.5)
    model = gi.HookedMLP(gi.MLPConfig(23, d_embed=32, d_hidden=16))
    pairs = task.train_inputs  # a CPU tensor, made outside the fake mode
    with FakeTensorMode(allow_non_fake_inputs=True), torch.no_grad():
        fake = copy.deepcopy(model)
        for name, p in list(fake._parameters.items()):
            fake._parameters[name] = nn.Parameter(torch.empty(p.shape, device="cuda"), requires_grad=False)
        # CPU pairs in; a mixed-device op would raise FakeTensorDeviceMismatchError (the check that a
        # third token is "=" reads values, which fake tensors do not have, so only pairs go in here)
        print(fake(pairs).device, fake(pairs, weights={n: getattr(fake, n) for n in ("W_E", "W_U")}).device)
""")


def test_mlp_forward_runs_on_a_simulated_cuda_device():
    # a subprocess: fake CUDA tensors abort the interpreter if anything reaches a real CUDA kernel
    out = subprocess.run([sys.executable, "-c", FAKE_CUDA], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["cuda:0"] * 2


def test_weights_view_keeps_the_models_dtype():
    _, mlp, _ = _pair()
    w = as_weights(mlp.double())
    assert w.W_L.dtype == torch.float64 and grid_activations(w).logits.dtype == torch.float64



def test_the_stacked_training_step_follows_the_weights_device():
    task = gi.ModularArithmetic(23, frac_train=0.5)
    shapes = {"W_E": (23, 32), "W_in": (32, 16), "W_out": (16, 32), "W_U": (32, 23)}
    stacked = {n: torch.empty((4, *s), device="meta", requires_grad=True) for n, s in shapes.items()}
    losses = train_loss(task, stacked_mlp_logits("relu", stacked, task.train_inputs), task.train_labels)  # CPU data in
    losses.sum().backward()
    assert losses.device.type == "meta" and losses.shape == (4,)
    assert all(stacked[n].grad.device.type == "meta" and stacked[n].grad.shape == stacked[n].shape for n in shapes)
