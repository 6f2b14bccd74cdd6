"""The catalogue of mistakes students (and course material) make, each a rule replayed on the engine.

A mistake changes one step of the chain rule (or the loss, the forward conv, the update). It is
made by working the backward pass layer by layer: each layer's d loss / d input comes from the
engine (a fresh graph of that one layer, ``backward(grad_output)``), except where the mistake's
rule replaces it. ``tinygrad-cnn check`` replays each entry and names the one whose numbers are
the student's; ``worked --mistake NAME`` prints a solution with it made.
"""
import math
from dataclasses import dataclass

import numpy as np

from .. import nn
from ..exact import EXACT
from ..nn import functional as F
from .network import batch_size


@dataclass(frozen=True)
class Mistake:
    name: str
    layers: tuple  # the layer types it acts on ("loss", "step" for the loss and the update)
    text: str      # what it does, in a sentence a student reads


CATALOGUE = {m.name: m for m in (
    Mistake("log10-loss", ("loss",), "the loss takes log10 where the natural log belongs (the gradients are still "
                                     "the natural log's, so the loss and its gradient are of two different functions)"),
    Mistake("loss-as-upstream-grad", ("loss",), "the loss value L is sent back as dL/d(output) where the loss's "
                                                "derivative belongs"),
    Mistake("missing-batch-mean", ("loss",), "the loss's mean over the batch is left out: the loss and every gradient "
                                             "are those of the sum, N times too large"),
    Mistake("double-batch-mean", ("Conv1d", "Conv2d", "ConvTranspose2d", "Linear"),
            "the parameter gradients are divided by the batch size N again, though the loss's mean already did it"),
    Mistake("weight-grad-as-input-grad", ("Linear",), "dL/dW = delta x (the gradient of the weights) is sent back "
                                                     "where dL/dx = delta W belongs"),
    Mistake("relu-for-relu-derivative", ("ReLU",), "dL/dx = dL/dout * ReLU(x), where the 0/1 mask ReLU'(x) belongs"),
    Mistake("sigmoid-derivative-as-sigmoid", ("Sigmoid",), "dL/dx = dL/dout * sigmoid(x), where sigmoid'(x) = "
                                                           "sigmoid(x)(1 - sigmoid(x)) belongs"),
    Mistake("pool-grad-to-all-ties", ("MaxPool2d",), "every entry tied for a window's max gets the window's gradient, "
                                                    "where only the first largest does"),
    Mistake("bias-grad-sum-of-input", ("Conv1d", "Conv2d"), "dL/db is taken as the sum of the layer's input, which "
                                                            "does not depend on the loss; the sum of dL/dout belongs"),
    Mistake("bias-grad-times-activation", ("Conv1d", "Conv2d", "ConvTranspose2d", "Linear"),
            "dL/db = dL/dout times the activation (as for the weights), where dL/db = the sum of dL/dout belongs"),
    Mistake("flipped-kernel", ("Conv1d", "Conv2d"), "the layer computes a true convolution (the kernel flipped), "
                                                    "where it cross-correlates"),
    Mistake("gradient-ascent", ("step",), "the step adds lr * dL/dp (gradient ascent), where p - lr * dL/dp belongs"),
)}


def check_names(names):
    for name in names:
        if name not in CATALOGUE:
            raise ValueError(f"mistake: {name!r} is not in the catalogue ({', '.join(CATALOGUE)})")


def applies(name, model, batch):
    """Whether mistake ``name`` changes anything for ``model`` (its layer types) with a batch of ``batch``."""
    m = CATALOGUE[name]
    if name in ("missing-batch-mean", "double-batch-mean") and batch < 2:
        return False
    kinds = {type(layer).__name__ for layer in model}
    if name in ("bias-grad-sum-of-input", "bias-grad-times-activation"):
        return any(type(layer).__name__ in m.layers and getattr(layer, "bias", None) is not None for layer in model)
    return bool(set(m.layers) & (kinds | {"loss", "step"}))


# --- the forward mistake ------------------------------------------------------------------------
def _flipped_forward(conv):
    nd = conv.nd
    fn = F.conv1d if nd == 1 else F.conv2d

    def forward(x):
        flipped = conv.weight[(Ellipsis,) + (slice(None, None, -1),) * nd]
        return fn(x, flipped, conv.bias, conv.stride, conv.padding, conv.padding_mode, dilation=conv.dilation,
                  groups=conv.groups)
    return forward


def prepare(net, mistakes):
    """Make the forward-pass mistakes in ``net`` (the exact copy being worked)."""
    if "flipped-kernel" in mistakes:
        for layer in net:
            if type(layer).__name__ in ("Conv1d", "Conv2d"):
                object.__setattr__(layer, "forward", _flipped_forward(layer))


# --- the backward pass, layer by layer ---------------------------------------------------------------
def _leaf(node, engine):
    """A fresh leaf with the numbers of ``node`` (exact when they are)."""
    exact = node.data.dtype == object if isinstance(node, nn.Tensor) else node.is_exact()
    from .network import _data
    return nn.make_parameter(_data(node), engine, "x", EXACT if exact else None)


def _vjp(module, engine, h, grad_out):
    """d loss / d input and d loss / d each parameter of one layer, from d loss / d output: the engine's
    backward on a fresh graph of that layer alone."""
    leaf = _leaf(h, engine)
    for p in module.parameters():
        p.zero_grad()
    out = module(leaf)
    out.backward(np.asarray(grad_out, dtype=np.float64))
    return leaf.grads(), {name: p.grads() for name, p in module.named_parameters()}


def _all_ties(module, x, grad_out):
    from .network import _data, pool_ties
    g = np.zeros(x.shape)
    for index, tied, _ in pool_ties(module, _data(x)):
        for t in tied:
            g[t] += grad_out[index]
    return g


# layer type -> (the mistake, its rule for d loss / d input from grad = d loss / d output, x, y = the
# layer's input and output numbers, the module, the input node)
_INPUT_GRADS = {
    "ReLU": ("relu-for-relu-derivative", lambda g, x, y, m, h: g * y),
    "Sigmoid": ("sigmoid-derivative-as-sigmoid", lambda g, x, y, m, h: g * y),
    "MaxPool2d": ("pool-grad-to-all-ties", lambda g, x, y, m, h: _all_ties(m, h, g)),
    "Linear": ("weight-grad-as-input-grad", lambda g, x, y, m, h: g.sum(axis=-1, keepdims=True) * x),
}


def _parameter_grads(own, kind, x, batch, mistakes):
    """A layer's parameter gradients with the mistakes that change them; the mistake made or None."""
    made = None
    if own.get("bias") is not None:
        if "bias-grad-sum-of-input" in mistakes and kind in CATALOGUE["bias-grad-sum-of-input"].layers:
            own["bias"], made = np.full(own["bias"].shape, x.sum()), "bias-grad-sum-of-input"
        if "bias-grad-times-activation" in mistakes and kind in CATALOGUE["bias-grad-times-activation"].layers:
            own["bias"] = own["weight"].reshape(own["weight"].shape[0], -1).sum(axis=1)
            made = "bias-grad-times-activation"
    if "double-batch-mean" in mistakes and own:
        own, made = {k: g / batch for k, g in own.items()}, "double-batch-mean"
    if "flipped-kernel" in mistakes and kind in CATALOGUE["flipped-kernel"].layers:
        made = "flipped-kernel"
    return own, made


def backward(net, engine, leaf, nodes, loss_node, loss_module, target, loss_options, mistakes):
    """The backward pass with ``mistakes`` made: (loss, d loss / d each layer's output, d loss / d x,
    {state_dict key: gradient}, {place: what the mistake did there})."""
    marks = {}
    loss = float(loss_node.numbers())
    summed = "missing-batch-mean" in mistakes and loss_options.get("reduction", "mean") == "mean"
    if summed:
        loss_module = type(loss_module)(**{**{a: getattr(loss_module, a) for a in loss_module.args},
                                           "reduction": "sum"})
    out_leaf = _leaf(nodes[-1][1], engine)
    loss_node = loss_module(out_leaf, target)
    loss_node.backward()
    grad = out_leaf.grads()
    if summed:
        loss = float(loss_node.numbers())
    for name in ("missing-batch-mean", "log10-loss", "loss-as-upstream-grad"):
        if name in mistakes:
            marks["loss"] = CATALOGUE[name].text
    if "log10-loss" in mistakes:
        loss = loss / math.log(10)
    if "loss-as-upstream-grad" in mistakes:
        grad = np.full(grad.shape, loss)
    batch = batch_size(net, nodes[0][0].shape)
    grads_out, param_grads = [None] * len(nodes), {}
    for i in reversed(range(len(nodes))):
        module, (h, out) = net[i], nodes[i]
        kind = type(module).__name__
        grads_out[i] = grad
        grad_in, own = _vjp(module, engine, h, grad)
        name, rule = _INPUT_GRADS.get(kind, (None, None))
        if name in mistakes:
            grad_in, marks[i] = rule(grad, h.numbers(), out.numbers(), module, h), CATALOGUE[name].text
        own, made = _parameter_grads(own, kind, h.numbers(), batch, mistakes)
        if made:
            marks[i] = CATALOGUE[made].text
        param_grads.update({f"{i}.{k}": g for k, g in own.items()})
        grad = grad_in
    if "gradient-ascent" in mistakes:
        marks["step"] = CATALOGUE["gradient-ascent"].text
    return loss, grads_out, grad, param_grads, marks
