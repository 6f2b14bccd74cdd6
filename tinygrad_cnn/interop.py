"""Moving to PyTorch and back: the same network, with the same weights, as a ``torch.nn.Module``.

    from tinygrad_cnn import interop
    net = interop.to_torch(model)        # torch.nn.Sequential, float64, same weights
    model = interop.from_torch(net)      # and back

Supported layers: Sequential, Conv2d, Linear, ReLU, LeakyReLU, Sigmoid, Tanh, MaxPool2d,
AvgPool2d and Flatten (with the settings both libraries share). torch is imported only in
this module, when one of its functions is called: the rest of tinygrad_cnn runs without it.
"""
from . import nn

SUPPORTED = "Sequential, Conv2d, Linear, ReLU, LeakyReLU, Sigmoid, Tanh, MaxPool2d, AvgPool2d, Flatten"


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
_PLAIN = {"ReLU": (), "Sigmoid": (), "Tanh": (), "LeakyReLU": ("negative_slope",), "Flatten": ("start_dim",),
          "MaxPool2d": ("kernel_size", "stride"), "AvgPool2d": ("kernel_size", "stride")}
# Settings that PyTorch has and this package does not: a torch layer must leave them at these values.
_TORCH_ONLY = {"Conv2d": dict(dilation=1, groups=1), "Flatten": dict(end_dim=-1),
               "MaxPool2d": dict(padding=0, dilation=1, ceil_mode=False, return_indices=False),
               "AvgPool2d": dict(padding=0, ceil_mode=False, divisor_override=None)}


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
    if _is(m, nn, ("Conv2d",)):
        return tnn.utils.skip_init(tnn.Conv2d, m.in_channels, m.out_channels, m.kernel_size, m.stride,
                                   m.padding, padding_mode=m.padding_mode, bias=m.bias is not None,
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


def _conv_padding(t):
    """torch Conv2d padding as ints: "valid" is 0, "same" is k // 2 for odd kernels (stride 1)."""
    if t.padding == "valid":
        return 0
    if t.padding == "same":
        if any(k % 2 == 0 for k in t.kernel_size):
            raise _unsupported("from_torch", t, f"padding='same' and the even kernel {t.kernel_size}")
        return tuple(k // 2 for k in t.kernel_size)
    return t.padding


def _check(t):
    """Refuse a torch layer whose PyTorch-only settings are not at the values this package implements."""
    for name, value in _TORCH_ONLY.get(type(t).__name__, {}).items():
        setting = getattr(t, name)
        if setting != value and not (isinstance(setting, tuple) and set(setting) == {value}):
            raise _unsupported("from_torch", t, f"{name}={setting!r} (only {name}={value!r} is supported)")


def _layer_from_torch(t, torch, engine):
    tnn = torch.nn
    if _is(t, tnn, ("Sequential",)):
        return nn.Sequential(*(_layer_from_torch(child, torch, engine) for child in t))
    if not _is(t, tnn, ("Conv2d", "Linear", *_PLAIN)):
        raise _unsupported("from_torch", t)
    _check(t)
    if _is(t, tnn, _PLAIN):
        return _plain(t, nn)
    if _is(t, tnn, ("Linear",)):
        return nn.Linear(t.in_features, t.out_features, bias=t.bias is not None, engine=engine)
    if t.padding_mode not in ("zeros", "replicate"):
        raise _unsupported("from_torch", t, f"padding_mode={t.padding_mode!r} "
                                            "(only 'zeros' and 'replicate' are supported)")
    return nn.Conv2d(t.in_channels, t.out_channels, t.kernel_size, t.stride, _conv_padding(t), t.padding_mode,
                     bias=t.bias is not None, engine=engine)


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
