import pytest


@pytest.fixture(scope="session")
def tiny():
    """The 2-layer random Llama with the default model's tokenizer: (model, tokenizer)."""
    from agent.models import load_model

    return load_model("tiny-random", device="cpu")


@pytest.fixture(scope="session")
def smollm2():
    """The real embedded default model (converted once into the cache)."""
    from agent.models import load_model

    return load_model("smollm2-135m", device="cpu")
