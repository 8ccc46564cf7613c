import pytest

from tests.tiny_models import write_tiny_model

KIT_CLASSES = ("kick", "snare", "hihat_closed")


@pytest.fixture(scope="session")
def kit_model_file(tmp_path_factory):
    """A tiny class-conditional model file (random weights)."""
    return write_tiny_model(tmp_path_factory.mktemp("models") / "kit.safetensors", KIT_CLASSES)


@pytest.fixture(scope="session")
def plain_model_file(tmp_path_factory):
    """A tiny unconditional model file (random weights), like the seed's."""
    return write_tiny_model(tmp_path_factory.mktemp("models") / "plain.safetensors")
