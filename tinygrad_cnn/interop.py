"""Moving to PyTorch and back: the same network, with the same weights, as a ``torch.nn.Module``.

    from tinygrad_cnn import interop
    net = interop.to_torch(model)        # torch.nn.Sequential, float64, same weights
    model = interop.from_torch(net)      # and back

Supported layers: Sequential, Conv1d, Conv2d, Linear, ReLU, LeakyReLU, Sigmoid, Tanh, Softmax,
LogSoftmax, MaxPool2d, AvgPool2d, Flatten and Dropout, with all their settings. torch is imported only in
this module, when one of its functions is called: the rest of tinygrad_cnn runs without it.
"""
from . import nn

SUPPORTED = ("Sequential, Conv1d, Conv2d, Linear, ReLU, LeakyReLU, Sigmoid, Tanh, Softmax, LogSoftmax, MaxPool2d, "
             "AvgPool2d, Flatten, Dropout")


def _torch():
    try:
        import torch
    except ImportError:
        raise ImportError("tinygrad_cnn.interop needs PyTorch: pip install torch "
                          "(or pip install 'tinygrad-cnn[parity]' for the tested version)") from None
    return torch


def _unsupported(fn, layer, why=None):
    if why:
        return TypeError(f"{fn}: {type(layer).__name__} with {why} has no equivalent here")
    return TypeError(f"{fn}: {type(layer).__name__} is not supported; supported layers: {SUPPORTED}")


# Layers without weights, rebuilt from these attributes (the same names in both libraries).
_PLAIN = {"ReLU": (), "Sigmoid": (), "Tanh": (), "LeakyReLU": ("negative_slope",), "Flatten": ("start_dim", "end_dim"),
          "Softmax": ("dim",), "LogSoftmax": ("dim",), "Dropout": ("p",),
          "MaxPool2d": ("kernel_size", "stride", "padding", "dilation", "return_indices", "ceil_mode"),
          "AvgPool2d": ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")}

def _plain(layer, library):
    name = type(layer).__name__
    return getattr(library, name)(*(getattr(layer, a) for a in _PLAIN[name]))


def _is(layer, library, names):
    """``layer`` is exactly (not a subclass of) one of ``library``'s layers called ``names``."""
    name = type(layer).__name__
    return name in names and type(layer) is getattr(library, name, None)


def _layer_to_torch(m, torch):
    tnn = torch.nn
    if _is(m, nn, _PLAIN):
        return _plain(m, tnn)
    if _is(m, nn, ("Sequential",)):
        return tnn.Sequential(*(_layer_to_torch(child, torch) for child in m))
    if _is(m, nn, ("Conv1d", "Conv2d")):
        return tnn.utils.skip_init(getattr(tnn, type(m).__name__), m.in_channels, m.out_channels, m.kernel_size,
                                   m.stride, m.padding, m.dilation, m.groups, m.bias is not None, m.padding_mode,
                                   dtype=torch.float64)
    if _is(m, nn, ("Linear",)):
        return tnn.utils.skip_init(tnn.Linear, m.in_features, m.out_features, bias=m.bias is not None,
                                   dtype=torch.float64)
    raise _unsupported("to_torch", m)


def to_torch(module):
    """An equivalent ``torch.nn.Module`` (float64) holding a copy of ``module``'s weights.

    Same layers, same state_dict keys, same outputs and gradients. For speed on a GPU,
    ``.float().to("cuda")`` the result as any PyTorch model.
    """
    torch = _torch()
    net = _layer_to_torch(module, torch)
    net.load_state_dict({k: torch.tensor(v, dtype=torch.float64) for k, v in module.state_dict().items()})
    return net


def _layer_from_torch(t, torch, engine):
    tnn = torch.nn
    if _is(t, tnn, ("Sequential",)):
        return nn.Sequential(*(_layer_from_torch(child, torch, engine) for child in t))
    if not _is(t, tnn, ("Conv1d", "Conv2d", "Linear", *_PLAIN)):
        raise _unsupported("from_torch", t)
    if _is(t, tnn, _PLAIN):
        return _plain(t, nn)
    if _is(t, tnn, ("Linear",)):
        return nn.Linear(t.in_features, t.out_features, bias=t.bias is not None, engine=engine)
    return getattr(nn, type(t).__name__)(t.in_channels, t.out_channels, t.kernel_size, t.stride, t.padding,
                                         t.padding_mode, t.bias is not None, engine, dilation=t.dilation,
                                         groups=t.groups)


def from_torch(torch_module, engine="tensor"):
    """A tinygrad_cnn Module equivalent to ``torch_module``, its weights copied as float64.

    ``engine="value"`` builds it from scalar Values (every number a graph node).
    Raises TypeError naming the first layer or setting that has no equivalent here.
    """
    torch = _torch()
    if engine not in nn.ENGINES:
        raise ValueError(f"from_torch: engine must be one of {nn.ENGINES}, got {engine!r}")
    model = _layer_from_torch(torch_module, torch, engine)
    model.load_state_dict({k: v.detach().cpu().double().numpy() for k, v in torch_module.state_dict().items()})
    return model
