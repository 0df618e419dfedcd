import pytest

from agent.models import ModelError, load_model, resolve


def test_tiny_random_is_two_layer_llama_with_default_tokenizer(tiny):
    model, tokenizer = tiny
    assert model.config.num_hidden_layers == 2
    assert tokenizer.eos_token == "<|im_end|>"
    assert model.config.vocab_size == len(tokenizer)


def test_real_model_loads_from_converted_cache(smollm2):
    model, tokenizer = smollm2
    assert model.config.num_hidden_layers == 30
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6
    assert (resolve("smollm2-135m") / "model.safetensors").is_file()


def test_local_folder_loads(tiny, tmp_path):
    folder = resolve("tiny-random")
    model, _ = load_model(str(folder), device="cpu")
    assert model.config.hidden_size == tiny[0].config.hidden_size


@pytest.mark.parametrize("spec, words", [
    ("/no/such/folder", "does not exist"),
    ("./missing-model", "does not exist"),
    ("missing.gguf", "does not exist"),
    ("not-a-model", "Unknown model"),
])
def test_bad_model_specs_say_what_to_do(spec, words):
    with pytest.raises(ModelError, match=words):
        resolve(spec)


def test_folder_without_config_is_rejected(tmp_path):
    with pytest.raises(ModelError, match="no config.json"):
        resolve(str(tmp_path))


def test_corrupt_weights_give_model_error(tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(resolve("tiny-random"), broken)
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelError):
        load_model(str(broken), device="cpu")


def test_gguf_conversion_says_so_on_stderr_not_stdout(tmp_path, monkeypatch, capsys):
    """stdout carries results (`agent.run --json`), which a first run's conversion must not break."""
    import transformers

    import agent.models as models

    class Loaded:
        @staticmethod
        def from_pretrained(*args, **kwargs):
            return None

    monkeypatch.setattr(transformers, "AutoTokenizer", Loaded)
    monkeypatch.setattr(transformers, "AutoModelForCausalLM", Loaded)
    monkeypatch.setattr(models, "_save_plain", lambda model, tokenizer, folder: None)
    assert models._convert_gguf(tmp_path / "model.gguf", tmp_path / "converted") == tmp_path / "converted"
    out, err = capsys.readouterr()
    assert out == "" and "Converting model.gguf once" in err
