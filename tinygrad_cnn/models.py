"""The networks of the course material, on either engine; the trainable ones in float64 (the default)
or float32 (``dtype=np.float32``, Tensor engine only). Initial weights are drawn in float64 and
rounded to the dtype, so a float32 model starts from its float64 twin's weights, rounded."""
import numpy as np

from .nn import Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential, Sigmoid, make_parameter

WORKED_KERNEL = [[1.0, -1.0], [-1.0, 1.0]]
WORKED_B1 = 1.0
WORKED_W4 = [-1.0, 1.0, -1.0, 1.0]
WORKED_B4 = 0.0


def _name_parameters(model, names, engine):
    """Give the parameters the short names of the worked examples (F, b1, w4, b4), in their dtype.

    A Value element is named by its index in the squeezed array: F[0,1], w4[2], b1.
    """
    for (key, param), short in zip(list(model.named_parameters()), names):
        data = np.asarray(model.state_dict()[key])
        if engine == "tensor":  # a Tensor parameter stays a leaf (a reshape would put a node before it)
            fresh = make_parameter(data, engine, short, data.dtype)
        else:
            fresh = make_parameter(data.reshape(data.squeeze().shape), engine, short).reshape(data.shape)
        module_name, _, attr = key.rpartition(".")
        setattr(model[int(module_name)], attr, fresh)


def _cnn(kernel, engine, rng, dtype=None):
    return Sequential(Conv2d(1, 1, kernel, engine=engine, rng=rng, dtype=dtype), ReLU(), MaxPool2d(2, 2), Flatten(),
                      Linear(4, 1, engine=engine, rng=rng, dtype=dtype), Sigmoid())


def tiny_cnn10(engine="tensor", kernel=WORKED_KERNEL, b1=WORKED_B1, w4=WORKED_W4, b4=WORKED_B4):
    """The 10-parameter CNN: (N, 1, 5, 5) -> conv 2x2 + ReLU -> max-pool 2x2 -> flatten 4 -> linear 4->1 -> sigmoid.

    Parameters default to the worked example's F, b1, w4, b4 (keys 0.weight, 0.bias, 4.weight, 4.bias).
    """
    model = _cnn(2, engine, np.random.default_rng(0))
    model.load_state_dict({"0.weight": np.reshape(kernel, (1, 1, 2, 2)), "0.bias": np.reshape(b1, (1,)),
                           "4.weight": np.reshape(w4, (1, 4)), "4.bias": np.reshape(b4, (1,))})
    _name_parameters(model, ("F", "b1", "w4", "b4"), engine)
    return model


def square_detector15(seed=0, engine="tensor", detector_init=False, dtype=None):
    """The 15-parameter square detector: (N, 1, 6, 6) -> conv 3x3 + ReLU -> max-pool 2x2 -> flatten 4
    -> linear 4->1 -> sigmoid, initialised as PyTorch would (uniform +-1/sqrt(fan_in)) from ``seed``
    (an int, or a numpy Generator to draw from).

    ``detector_init=True`` starts w4 and b1 at the absolute values of those draws. With w4 >= 0 the
    output rises with each pool window's strongest response, so the kernel learns the pattern whose
    presence makes class 1 (PyTorch's draws with a negative w4 mostly end in a minimum that looks
    for missing brightness instead); with b1 >= 0 the ReLU starts open. See the README, Training.
    ``dtype``: float64 (None) or float32, as the layers take it.
    """
    model = _cnn(3, engine, np.random.default_rng(seed), dtype)
    if detector_init:
        state = model.state_dict()
        model.load_state_dict({**state, "0.bias": np.abs(state["0.bias"]), "4.weight": np.abs(state["4.weight"])})
    _name_parameters(model, ("F", "b1", "w4", "b4"), engine)
    model.input_shape = (1, 6, 6)
    return model


def _two_conv_net(size, padding, flat, engine, seed, dtype):
    rng = np.random.default_rng(seed)
    model = Sequential(Conv2d(1, 8, 3, padding=padding, engine=engine, rng=rng, dtype=dtype), ReLU(), MaxPool2d(2),
                       Conv2d(8, 16, 3, padding=padding, engine=engine, rng=rng, dtype=dtype), ReLU(), MaxPool2d(2),
                       Flatten(), Linear(flat, 10, engine=engine, rng=rng, dtype=dtype))
    model.input_shape = (1, size, size)
    return model


def digits_cnn(seed=0, engine="tensor", dtype=None):
    """The small CNN for scikit-learn's 8x8 digits: (N, 1, 8, 8) -> conv 1->8 3x3 pad 1 + ReLU -> max-pool 2
    -> conv 8->16 3x3 pad 1 + ReLU -> max-pool 2 -> flatten 64 -> linear 64->10 (logits). 1,898 parameters,
    keyed as torch.nn.Sequential keys them (0.weight, 3.weight, 7.weight, ...), initialised as PyTorch
    would from ``seed`` (an int or a numpy Generator), in ``dtype`` (float64 when None, or float32)."""
    return _two_conv_net(8, 1, 64, engine, seed, dtype)


def mnist_cnn(seed=0, engine="tensor", dtype=None):
    """The LeNet-style CNN for 28x28 MNIST digits: (N, 1, 28, 28) -> conv 1->8 3x3 + ReLU -> max-pool 2 (13x13)
    -> conv 8->16 3x3 + ReLU -> max-pool 2 (5x5) -> flatten 400 -> linear 400->10 (logits). 5,258 parameters,
    in ``dtype`` (float64 when None, or float32)."""
    return _two_conv_net(28, 0, 400, engine, seed, dtype)
