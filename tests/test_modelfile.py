import json
import pickle

import pytest
import torch
from safetensors.torch import save_file

from engine.errors import InputError
from engine.modelconfig import read_config
from engine.modelfile import copy_model, load_model, save_model
from tests.tiny_models import tiny_config, tiny_model


def velocity_of(model, seed=1):
    x = torch.randn(2, 2, 1024, generator=torch.Generator().manual_seed(seed))
    t = torch.tensor([0.3, 0.8])
    conditioning = model.conditioning(torch.tensor([0, 1]), 1.0) if model.config.conditional else {}
    return model.velocity(x, t, **conditioning)


@pytest.mark.parametrize("classes", [(), ("kick", "snare")])
def test_saved_model_loads_with_its_config_and_gives_the_same_output(tmp_path, classes):
    model = tiny_model(classes)
    path = save_model(model, tmp_path / "m.safetensors")
    loaded = load_model(path)
    assert loaded.config == model.config
    assert read_config(path).classes == classes
    with torch.no_grad():
        assert torch.equal(velocity_of(model), velocity_of(loaded))


def test_a_pickle_posing_as_a_model_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "code-ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps({"weights": Payload()}))
    with pytest.raises(InputError, match="not a readable safetensors"):
        load_model(path)
    assert not marker.exists()


def test_truncated_model_file_is_a_clear_error(tmp_path):
    path = save_model(tiny_model(), tmp_path / "m.safetensors")
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(InputError) as error:
        load_model(path)
    assert str(path) in str(error.value)


def test_missing_model_file_names_the_file(tmp_path):
    with pytest.raises(InputError, match="model file not found"):
        load_model(tmp_path / "nope.safetensors")


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path):
    weights = tiny_model().weights()
    weights.pop(next(iter(weights)))
    path = tmp_path / "m.safetensors"
    metadata = {"format": "noisepad-model", "format_version": "1", "config": tiny_config().to_json()}
    save_file(weights, str(path), metadata=metadata)
    with pytest.raises(InputError, match="weights do not fit the config: 1 missing"):
        load_model(path)


def test_config_that_does_not_hold_together_is_refused(tmp_path):
    data = json.loads(tiny_config().to_json())
    data["length"] = 1001
    path = tmp_path / "m.safetensors"
    save_file(tiny_model().weights(), str(path), metadata={"format": "noisepad-model", "config": json.dumps(data)})
    with pytest.raises(InputError, match="not a multiple of the UNet's downsampling"):
        load_model(path)


def test_plain_safetensors_without_our_config_is_refused(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(3)}, str(path))
    with pytest.raises(InputError, match="without a noisepad model config"):
        load_model(path)


def test_saving_into_a_missing_folder_writes_nothing(tmp_path):
    with pytest.raises(InputError, match="output folder does not exist"):
        save_model(tiny_model(), tmp_path / "missing" / "m.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_half_precision_storage_halves_the_file_and_keeps_the_output(tmp_path):
    model = tiny_model(("kick", "snare"))
    full = save_model(model, tmp_path / "full.safetensors")
    half = save_model(model, tmp_path / "half.safetensors", dtype=torch.float16)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded = load_model(half)
    assert next(loaded.parameters()).dtype == torch.float32
    with torch.no_grad():
        torch.testing.assert_close(velocity_of(loaded), velocity_of(model), atol=5e-3, rtol=5e-3)


def test_saving_over_a_folder_is_refused(tmp_path):
    (tmp_path / "m.safetensors").mkdir()
    with pytest.raises(InputError, match="is a folder; name a file to write"):
        save_model(tiny_model(), tmp_path / "m.safetensors")
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_a_saved_model_is_readable_by_others_like_any_output(tmp_path):
    path = save_model(tiny_model(), tmp_path / "m.safetensors")
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_copied_model_runs_and_trains_its_own_layers():
    """copy.deepcopy of a DrumDiffusion would keep running the original's layers (a_unet's
    closures); copy_model's copy is a model of its own."""
    original = tiny_model(("kick",)).float()
    copy = copy_model(original)
    x, t = torch.randn(1, 2, 1024), torch.full((1,), 0.5)
    conditioning = copy.conditioning(torch.zeros(1, dtype=torch.long))
    before = original.velocity(x, t, **conditioning).detach()
    torch.testing.assert_close(copy.velocity(x, t, **conditioning), before)
    copy.velocity(x, t, **conditioning).square().mean().backward()
    trained = [p for p in copy.net.parameters() if p.grad is not None and p.grad.abs().max() > 0]
    assert len(trained) > len(list(copy.net.parameters())) // 2
    assert all(p.grad is None for p in original.parameters())
    with torch.no_grad():
        for p in copy.net.parameters():
            p.add_(0.05)
    assert not torch.allclose(copy.velocity(x, t, **conditioning), before)
    torch.testing.assert_close(original.velocity(x, t, **conditioning).detach(), before)
