"""The numpy kernels' fast paths against plain references: scatter_windows adding whole runs,
first_argmax_mask over pooling cells, tensordot's per-image products, and the malloc settings."""
import itertools
import platform

import numpy as np
import pytest

import tinygrad_cnn.nn.functional as F
from tinygrad_cnn import Tensor
from tinygrad_cnn import backend as B


def scatter_reference(g, shape, kernel, stride, dilation):
    """Each window entry added back where it was read, one by one."""
    out = np.zeros(shape)
    counts = g.shape[-4:-2]
    for lead in itertools.product(*map(range, shape[:-2])):
        for r, c, i, j in itertools.product(*map(range, counts + tuple(kernel))):
            out[lead + (r * stride[0] + i * dilation[0], c * stride[1] + j * dilation[1])] += g[lead + (r, c, i, j)]
    return out


@pytest.mark.parametrize("lead, size, kernel, dilation", [
    ((2, 3), (6, 5), (3, 3), (1, 1)), ((1,), (7, 4), (2, 3), (2, 1)), ((), (5, 6), (3, 2), (1, 2)),
    ((0, 2), (4, 4), (3, 3), (1, 1)), ((2,), (3, 3), (3, 3), (1, 1))])
def test_scatter_windows_at_stride_1_adds_every_window_entry_back(lead, size, kernel, dilation):
    x = np.zeros(lead + size)
    windows = B.sliding_windows(x, kernel, (1, 1), dilation)
    g = np.random.default_rng(0).normal(size=windows.shape)
    out = B.scatter_windows(g, x.shape, kernel, (1, 1), dilation)
    np.testing.assert_allclose(out, scatter_reference(g, x.shape, kernel, (1, 1), dilation), rtol=1e-12, atol=1e-12)
    transposed = np.ascontiguousarray(np.moveaxis(g, (-2, -1), (0, 1)))  # the layout tensordot's adjoint gives
    assert np.array_equal(B.scatter_windows(np.moveaxis(transposed, (0, 1), (-2, -1)), x.shape, kernel, (1, 1),
                                            dilation), out)


def test_scatter_windows_float32_stays_float32_and_sums_exactly():
    g = np.ones((2, 3, 4, 4, 3, 3), np.float32)
    out = B.scatter_windows(g, (2, 3, 6, 6), (3, 3), (1, 1), (1, 1))
    assert out.dtype == np.float32
    per_axis = np.array([1, 2, 3, 3, 2, 1], np.float32)  # how many windows cover each row (and column)
    assert np.array_equal(out[1, 2], np.outer(per_axis, per_axis))


def argmax_mask_reference(x, axes):
    """The first (row-major) largest entry of each group, NaN counting as largest (np.argmax)."""
    order = tuple(a for a in range(x.ndim) if a not in axes) + tuple(axes)
    moved = x.transpose(order)
    flat = moved.reshape(moved.shape[:x.ndim - len(axes)] + (-1,))
    mask = np.arange(flat.shape[-1]) == flat.argmax(-1)[..., None]
    return mask.reshape(moved.shape).transpose(np.argsort(order))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, object])
def test_first_argmax_mask_over_pooling_cells_picks_the_first_largest(dtype):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 3, size=(4, 3, 12, 12)).astype(np.float64)  # many ties
    if dtype is not object:
        image[0, 0, :2, :2] = [[1, np.nan], [np.nan, 2]]  # a NaN max: the first NaN
    windows = B.sliding_windows(image.astype(dtype), (2, 2), (2, 2))
    assert B._by_slices(windows, (4, 5))
    mask = B.first_argmax_mask(windows, (4, 5))
    assert np.array_equal(mask, argmax_mask_reference(windows.astype(np.float64), (4, 5)))
    if dtype is not object:
        assert mask[0, 0, 0, 0].tolist() == [[False, True], [False, False]]


def test_first_argmax_mask_of_a_whole_small_array_by_slices(monkeypatch):
    monkeypatch.setattr(B, "_MANY", 1)
    x = np.array([[3.0, 5.0], [5.0, 1.0]])
    assert B.first_argmax_mask(x, (0, 1)).tolist() == [[False, True], [False, False]]


def test_conv2d_output_is_laid_out_image_by_image():
    x = Tensor(np.random.default_rng(2).normal(size=(4, 3, 9, 9)).astype(np.float32))
    w = Tensor(np.random.default_rng(3).normal(size=(5, 3, 3, 3)).astype(np.float32))
    out = F.conv2d(x, w)
    assert out.shape == (4, 5, 7, 7) and out.data.flags.c_contiguous and out.dtype == np.float32
    reference = np.einsum("nchwij,kcij->nkhw", B.sliding_windows(x.data.astype(np.float64), (3, 3), (1, 1)),
                          w.data.astype(np.float64))
    np.testing.assert_allclose(out.data, reference, rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_keep_freed_memory_is_taken_by_glibc():
    assert B.keep_freed_memory() is True
