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


@pytest.fixture(autouse=True)
def fixed_threads_between_tests():
    """A CLI run in-process with --threads 0 leaves load-following threads on (agent/threads.py);
    turn that off after each test so later tests see a fixed thread count."""
    import torch

    from agent import threads

    before = torch.get_num_threads()
    yield
    threads.fixed(before)
