"""schemas/vectors/tokenizer.json is current, and the trainer's tokenizer (transformers) gives the same ids as the
tokenizer.json the engine loads: the TypeScript suite checks @huggingface/tokenizers against the same vectors."""
import importlib.util
import json

from bloom_peft.model_loading import load_tokenizer
from bloom_peft.paths import EMBEDDED_MODEL_DIR, PROJECT_ROOT, SCHEMAS_DIR

VECTORS = json.loads((SCHEMAS_DIR / "vectors" / "tokenizer.json").read_text(encoding="utf-8"))


def _script():
    spec = importlib.util.spec_from_file_location("make_tokenizer_vectors", PROJECT_ROOT / "scripts" / "make_tokenizer_vectors.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_vectors_are_current_for_the_embedded_tokenizer():
    assert VECTORS["model"] == "models/bloom-tiny"
    assert _script().build(EMBEDDED_MODEL_DIR) == VECTORS, "run scripts/make_tokenizer_vectors.py"


def test_vectors_cover_non_ascii_code_whitespace_and_special_tokens():
    texts = [c["text"] for c in VECTORS["cases"]]
    assert any("世界" in t for t in texts) and any("🌍" in t for t in texts) and any("é" in t for t in texts)
    assert any("def " in t for t in texts) and any("\t" in t for t in texts) and any("    " in t for t in texts)
    assert any("</s>" in t for t in texts)
    assert all(c["decoded"] == c["text"] for c in VECTORS["cases"] if "<" not in c["text"])  # byte-level round trip


def test_training_tokenizer_matches_the_vectors():
    tok = load_tokenizer("embedded")
    for case in VECTORS["cases"]:
        assert tok(case["text"])["input_ids"] == case["ids"], case["text"]
