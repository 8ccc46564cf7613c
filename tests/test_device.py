import pytest
import torch

from engine.device import pick_device, pick_dtype
from engine.errors import InputError
from engine.sample_batch import Item, sample_batch
from engine.modelfile import load_model
from engine.settings import Settings

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_best_available_device_is_picked():
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert pick_device().type == expected
    assert pick_device("cpu").type == "cpu"


def test_unavailable_or_unknown_device_is_a_clear_error():
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="'cuda' is not available"):
            pick_device("cuda")
    with pytest.raises(InputError, match="unknown device 'gpu0'"):
        pick_device("gpu0")
    with pytest.raises(InputError, match="unknown precision"):
        pick_dtype("fp8", torch.device("cpu"))


@needs_gpu
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precision_on_gpu_stays_close_to_fp32(kit_model_file, precision):
    device = torch.device("cuda")
    items = [Item(s, class_index=1) for s in range(3)]
    full = sample_batch(load_model(kit_model_file, device), items, Settings(steps=4))
    half = sample_batch(load_model(kit_model_file, device, pick_dtype(precision, device)), items, Settings(steps=4))
    assert abs(half - full).max() < 0.05 * abs(full).max()
