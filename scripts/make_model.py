#!/usr/bin/env python3
"""Build the embedded default base model, models/bloom-tiny (deterministic).

    .venv/bin/python scripts/make_model.py            # about 10-15 minutes on 2 CPU cores

Steps:
 1. Generate a pretraining corpus from text the project owns (scripts/make_dataset.py's vocabularies): copy
    drills in English and Chinese, task documents (one of many transformations of English or Chinese words,
    named by varied English and Chinese descriptors in varied framings) and general documents (English
    sentences about code, Python and JavaScript snippets, TODO comments, the files of examples/code-corpus/).
    The instruction template ("Human: ... Assistant: ") never appears, nor any held-out input of examples/.
 2. Train a byte-level BPE tokenizer (HF tokenizers: ByteLevel pre-tokenizer and decoder) with BLOOM's special
    tokens <unk>=0, <s>=1, </s>=2, <pad>=3 on the corpus's ASCII text, then append merges that make each common
    Chinese character one token; wrap it as PreTrainedTokenizerFast (left padding, like BLOOM checkpoints).
 3. Pretrain a small BloomForCausalLM on the corpus on CPU, save it as safetensors next to the tokenizer, and
    write a model card (README.md) with the measured numbers (scripts/eval_methods.py adds the method table).
 4. Sanity check: reload with AutoModelForCausalLM / AutoTokenizer, report held-out corpus loss,
    and show a greedy generation of a task prompt.
"""
from __future__ import annotations

import argparse
import math
import os
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_dataset as ds  # noqa: E402  (vocabulary and phrase generator)

SEED = 1234
VOCAB_SIZE = 3072  # the learned BPE part; the Chinese characters are added to it
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>"]  # ids 0..3, as in BLOOM
# Spaces and underscores are tokens of their own, so a word has the same token whether it
# follows a space, an underscore or a line start: "load hidden cache" -> load|Ġ|hidden|Ġ|cache and
# "load_hidden_cache" -> load|_|hidden|_|cache. Copying words between the two forms is then plain
# in-context copying, which a model this small learns quickly. Runs of spaces (indentation) stay
# one pre-token, so BPE can merge them.
SPLIT_PATTERN = r"_| +"
MODEL_DIR = ROOT / "models" / "bloom-tiny"

# Model and training shape (the defaults are what models/bloom-tiny was built with).
HIDDEN = 128
N_LAYER = 4
# 8 heads, not 4: BLOOM's ALiBi slopes for 8 heads start at 0.5, steep enough for a head to look at the
# previous token, which the copying ("induction") circuit is built on; with 4 heads (slopes from 0.25) the
# same run had not learned to copy after 2,000 steps, with 8 it copies from about step 1,300.
N_HEAD = 8
SEQ_LEN = 64
BATCH = 16
STEPS = 3500
# Curriculum: the copy drills and task documents first (optionally the drills alone before them; measured: 35% of
# 3,000 steps on the drills alone did not copy sooner), then everything with the general documents.
COPY_ONLY_FRACTION = 0.0
DRILL_FRACTION = 0.5
LR = 2e-3
WARMUP = 100
N_DOCS = 12000
N_DRILL_DOCS = 8000
N_ZH_DRILL_DOCS = 14000
N_TASK_DOCS = 40000
# Task framings: a role word before the descriptor and a marker before the answer. Never "Human" / "Assistant":
# the instruction template stays new to the model, so fine-tuning has real work to do.
TASK_ROLES = ["Task", "Instruction", "Q", "User", "Request", "Input", "指令", "任务", "问", "用户"]
TASK_MARKERS = ["Output", "Answer", "Result", "Response", "A", "Bot", "输出", "答", "回答", "结果"]


# ---------------------------------------------------------------------------------------------
# Corpus

def camel(words, upper_first=False):
    out = "".join(w.capitalize() for w in words)
    return out if upper_first else out[0].lower() + out[1:]


def sentence_case(text: str) -> str:
    return text[0].upper() + text[1:]


class CorpusMaker:
    def __init__(self, seed: int, exclude: set[str]):
        self.rng = random.Random(seed)
        self.exclude = exclude
        self.zh_chars = ds.common_chinese_chars()

    def phrase(self):
        while True:
            words = ds.make_phrase(self.rng)
            if " ".join(words) not in self.exclude:
                return words

    def todo(self):
        while True:
            words = ds.make_todo(self.rng)
            if " ".join(words) not in self.exclude:
                return words

    def noun(self):
        return self.rng.choice(ds.NOUNS)

    def adj(self):
        return self.rng.choice(ds.ADJECTIVES)

    def verb(self):
        return self.rng.choice(ds.VERBS)

    # -- documents -----------------------------------------------------------------------------

    def english(self) -> str:
        r = self.rng
        p = self.phrase()
        n1, n2, a, v = self.noun(), self.noun(), self.adj(), self.verb()
        text = " ".join(p)
        templates = [
            f"This function will {text} and return the {n1}.",
            f"We need to {v} the {a} {n1} before we {text}.",
            f"The {a} {n1} is stored in the {n2} table.",
            f"Call {'_'.join(p)}() to {text}.",
            f"The helper {camel(p)} is used to {text} in the browser.",
            f"First {v} the {n1}, then {text}.",
            f"If the {n1} is empty, the server returns an error message.",
            f"Each {n1} has a {a} {n2} and a {self.noun()}.",
            f"To {text}, open the {n1} file and check the {a} {n2}.",
            f"The method {'_'.join(p)} takes a {n1} and a {n2}.",
            f"Please {v} the {a} {n1} in the {n2}.",
            f"The {n1} {n2} was too {r.choice(['long', 'short', 'large', 'small'])}, so we {v} it.",
        ]
        k = r.randint(2, 5)
        return " ".join(sentence_case(r.choice(templates)) for _ in range(k))

    def python_function(self) -> str:
        r = self.rng
        p = self.phrase()
        arg = self.noun()
        other = self.phrase()
        lines = []
        if r.random() < 0.7:
            lines.append(f"# {' '.join(p)}")
        lines.append(f"def {'_'.join(p)}({arg}, {self.adj()}_{self.noun()}=None):")
        lines.append(f'    """{sentence_case(" ".join(p))}."""')
        if r.random() < 0.4:
            lines.append(f"    # TODO: {' '.join(self.todo())}")
        lines.append(f"    {self.noun()}_{self.noun()} = {'_'.join(other)}({arg})")
        if r.random() < 0.5:
            lines.append(f"    if not {arg}:")
            lines.append(f'        raise ValueError("{" ".join(self.phrase())} failed")')
        lines.append(f"    return {arg}")
        return "\n".join(lines) + "\n"

    def python_class(self) -> str:
        name = camel([self.adj(), self.noun()], upper_first=True)
        lines = [f"class {name}:", f'    """A {self.adj()} {self.noun()} {self.noun()}."""', ""]
        for _ in range(self.rng.randint(1, 3)):
            p = self.phrase()
            lines.append(f"    def {'_'.join(p)}(self):")
            if self.rng.random() < 0.3:
                lines.append(f"        # TODO: {' '.join(self.todo())}")
            lines.append(f"        return self.{self.noun()}_{self.noun()}")
            lines.append("")
        return "\n".join(lines)

    def js_function(self) -> str:
        r = self.rng
        p = self.phrase()
        arg = self.noun()
        lines = [f"// {sentence_case(' '.join(p))}."]
        kw = r.choice(["function", "export function", "async function"])
        lines.append(f"{kw} {camel(p)}({arg}, {camel([self.adj(), self.noun()])}) {{")
        if r.random() < 0.3:
            lines.append(f"  // TODO: {' '.join(self.todo())}")
        lines.append(f"  const {camel([self.noun(), self.noun()])} = {camel(self.phrase())}({arg});")
        lines.append(f"  return {arg};")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def identifier_notes(self) -> str:
        """Style-guide notes that show words next to their identifier spellings."""
        r = self.rng
        rows = []
        for _ in range(r.randint(3, 6)):
            p = self.phrase()
            style = r.random()
            if style < 0.4:
                rows.append(f"- the {' '.join(p)} helper is named `{'_'.join(p)}` in Python.")
            elif style < 0.6:
                rows.append(f"- the {' '.join(p)} helper is named `{camel(p)}` in JavaScript.")
            elif style < 0.7:
                rows.append(f"- the {' '.join(p)} type is named `{camel(p, upper_first=True)}`.")
            else:
                rows.append(f"- `{'_'.join(p)}`: {' '.join(p)}.")
        return "\n".join(rows) + "\n"

    def markdown_section(self) -> str:
        """A Markdown API section: Title Case heading, then the snake_case function."""
        p = self.phrase()
        title = " ".join(w.capitalize() for w in p)
        return (f"## {title}\n\nUse `{'_'.join(p)}({self.noun()})` to {' '.join(p)}. "
                f"It returns the {self.adj()} {self.noun()}.\n")

    def todo_block(self) -> str:
        """Code with TODO comments in it."""
        r = self.rng
        lines = []
        for _ in range(r.randint(1, 3)):
            indent = r.choice(["", "    ", "        "])
            if r.random() < 0.7:
                lines.append(f"{indent}# TODO: {' '.join(self.todo())}")
            else:
                lines.append(f"{indent}// TODO: {' '.join(self.todo())}")
            lines.append(f"{indent}{'_'.join(self.phrase())}({self.noun()})")
        return "\n".join(lines) + "\n"

    def shell_session(self) -> str:
        """Shell and REPL transcripts: commands whose output repeats or transforms their argument."""
        r = self.rng
        lines = []
        for _ in range(r.randint(2, 5)):
            style = r.random()
            words = " ".join(self.todo() if r.random() < 0.4 else self.phrase())
            if style < 0.3:
                lines += [f"$ echo {words}", words]
            elif style < 0.5:
                lines += [f'>>> print("{words}")', words]
            elif style < 0.6:
                lines += [f'> console.log("{words}")', words]
            elif style < 0.75:
                lines += [f'$ echo "# TODO: {words}" >> notes.txt', f"$ tail -1 notes.txt", f"# TODO: {words}"]
            else:
                p = self.phrase()
                lines += [f'>>> "_".join("{" ".join(p)}".split())', f"'{'_'.join(p)}'"]
        return "\n".join(lines) + "\n"

    def drill(self) -> str:
        """Copy drill, read alone at the start of pretraining (a curriculum): random word sequences (so only
        copying predicts them) written once and repeated, as plain text, as a snake_case name, after a TODO."""
        r = self.rng
        lines = []
        for _ in range(r.randint(2, 4)):
            while True:
                words = [r.choice(ds.VOCABULARY) for _ in range(r.randint(2, 5))]
                if " ".join(words) not in self.exclude:
                    break
            text, snake = " ".join(words), "_".join(words)
            style = r.random()
            if style < 0.3:
                lines += [f"$ echo {text}", text]
            elif style < 0.6:
                lines += [f"# {text}", f"def {snake}(x):", "    pass"]
            elif style < 0.8:
                lines += [f"- the {text} helper is named `{snake}`."]
            else:
                lines += [f"# TODO: {text}", f"{snake}()"]
        return "\n".join(lines) + "\n"

    # -- task documents: a transformation named by one of many descriptors, in varied framings ----------

    def task_words(self, lang: str) -> list[str]:
        r = self.rng
        while True:
            if lang == "en":
                words = list(self.phrase()) if r.random() < 0.3 else [r.choice(ds.VOCABULARY) for _ in range(r.randint(2, 4))]
            elif r.random() < 0.7:
                words = r.sample(ds.ZH_WORDS, r.randint(2, 4))
            else:  # random characters as words: every common character gets seen (and copied)
                words = ["".join(r.choice(self.zh_chars) for _ in range(r.randint(1, 3))) for _ in range(r.randint(2, 4))]
            if " ".join(words).lower() not in self.exclude:
                return words

    def task_instance(self, transform: str, lang: str, framing: int, role: str, marker: str) -> str:
        desc = self.rng.choice(ds.DESCRIPTORS[transform])
        words = self.task_words(lang)
        text, out = " ".join(words), ds.TRANSFORMS[transform](words, lang)
        if framing == 0:
            return f"{desc}\n{text}\n\n{marker}: {out}"
        if framing == 1:
            return f"{role}: {desc}\n{text}\n\n{marker}: {out}"
        if framing == 2:
            return f"{desc}: {text} => {out}"
        if framing == 3:
            return f"### {desc}\n{text}\n### {marker}\n{out}"
        if framing == 4:
            return f"{role}: {desc}\n{text}\n{marker}: {out}"
        return f"{text} ({desc}) -> {out}"

    def task(self) -> str:
        """One instance (most documents; the end of the document follows the answer) or a few of one task."""
        r = self.rng
        transform = r.choice(list(ds.TRANSFORMS))
        framing, role, marker = r.randrange(6), r.choice(TASK_ROLES), r.choice(TASK_MARKERS)
        n = 1 if r.random() < 0.75 else r.randint(2, 3)
        langs = ["en" if transform in ds.ENGLISH_ONLY or r.random() < 0.4 else "zh" for _ in range(n)]
        return "\n\n".join(self.task_instance(transform, lang, framing, role, marker) for lang in langs)

    def zh_drill(self) -> str:
        """Copy drill in Chinese: random common characters and words, repeated."""
        r = self.rng
        lines = []
        for _ in range(r.randint(2, 4)):
            if r.random() < 0.5:
                text = "".join(r.choice(self.zh_chars) for _ in range(r.randint(2, 6)))
            else:
                text = " ".join(r.sample(ds.ZH_WORDS, r.randint(2, 4)))
            style = r.random()
            if style < 0.4:
                lines += [f"$ echo {text}", text]
            elif style < 0.7:
                lines += [f"# {text}", f'print("{text}")']
            else:
                lines += [f"“{text}”", text]
        return "\n".join(lines) + "\n"

    def exports(self) -> str:
        """A module's imports and __all__ list (the same names twice)."""
        names = ["_".join(self.phrase()) for _ in range(self.rng.randint(2, 4))]
        quoted = ", ".join(f'"{n}"' for n in names)
        return (f"from .{self.noun()}_{self.noun()} import {', '.join(names)}\n\n"
                f"__all__ = [{quoted}]\n")

    def document(self) -> str:
        kind = self.rng.random()
        if kind < 0.10:
            return self.english()
        if kind < 0.32:
            return self.python_function()
        if kind < 0.37:
            return self.python_class()
        if kind < 0.45:
            return self.js_function()
        if kind < 0.57:
            return self.identifier_notes()
        if kind < 0.64:
            return self.markdown_section()
        if kind < 0.70:
            return self.todo_block()
        if kind < 0.90:
            return self.shell_session()
        return self.exports()

    def corpus(self, n_docs: int, code_files: list[str], file_repeats: int) -> list[str]:
        docs = [self.document() for _ in range(n_docs)]
        docs += code_files * file_repeats
        self.rng.shuffle(docs)
        return docs


def build_corpus(seed: int):
    """(drill docs, task docs, general docs, held-out general docs)."""
    exclude = ds.all_heldout_inputs()
    code_files = list(ds.CODE_FILES.values())
    maker = CorpusMaker(seed, exclude)
    drill_docs = [maker.drill() for _ in range(N_DRILL_DOCS)] + [maker.zh_drill() for _ in range(N_ZH_DRILL_DOCS)]
    maker.rng.shuffle(drill_docs)
    task_docs = [maker.task() for _ in range(N_TASK_DOCS)]
    train_docs = maker.corpus(N_DOCS, code_files, 10)
    eval_maker = CorpusMaker(seed + 1, exclude)
    eval_docs = eval_maker.corpus(300, [], 0) + [eval_maker.task() for _ in range(300)]
    for doc in drill_docs + task_docs + train_docs + eval_docs:
        assert "Human:" not in doc and "Assistant:" not in doc
    return drill_docs, task_docs, train_docs, eval_docs


# ---------------------------------------------------------------------------------------------
# Tokenizer

NON_ASCII = re.compile(r"[^\x00-\x7f]")


def byte_level_alphabet() -> dict[int, str]:
    """GPT-2's byte -> printable character map (what the ByteLevel pre-tokenizer writes)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, n = printable[:], 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(printable, chars)}


def add_whole_characters(tok, characters: list[str]):
    """Append BPE merges (and tokens) that build each character from its UTF-8 bytes, after the learned merges."""
    import json
    from tokenizers import Tokenizer

    state = json.loads(tok.to_str())
    vocab, merges = state["model"]["vocab"], state["model"]["merges"]
    byte_char = byte_level_alphabet()
    for ch in characters:
        parts = [byte_char[b] for b in ch.encode("utf-8")]
        piece = parts[0]
        for part in parts[1:]:
            if piece + part not in vocab:
                merges.append([piece, part])
                vocab[piece + part] = len(vocab)
            piece += part
    return Tokenizer.from_str(json.dumps(state))


def train_tokenizer(docs: list[str]):
    """(the tokenizer, how many of its tokens BPE learned)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    # Like BLOOM: a Split pre-tokenizer, then ByteLevel (here with the GPT-2 regex for the rest).
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # BPE merges are learned on the corpus without its non-ASCII text; the Chinese characters come next, each
    # one token, so no merge ever joins two characters (a character is the same token in every context).
    tok.train_from_iterator([NON_ASCII.sub("", d) for d in docs], trainer=trainer)
    n_bpe = tok.get_vocab_size()
    tok = add_whole_characters(tok, ds.common_chinese_chars() + ds.CHINESE_PUNCTUATION)
    for i, t in enumerate(SPECIAL_TOKENS):
        assert tok.token_to_id(t) == i, (t, tok.token_to_id(t))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        padding_side="left",
        add_bos_token=False,
        add_eos_token=False,
        clean_up_tokenization_spaces=False,
        model_max_length=1024,
    )
    return fast, n_bpe


# ---------------------------------------------------------------------------------------------
# Model

def pack(tokenizer, docs: list[str], seq_len: int, shuffle_seed: int | None = None):
    import torch

    if shuffle_seed is not None:
        docs = docs[:]
        random.Random(shuffle_seed).shuffle(docs)
    ids: list[int] = []
    for doc in docs:
        ids.extend(tokenizer(doc)["input_ids"])
        ids.append(tokenizer.eos_token_id)
    n = len(ids) // seq_len
    return torch.tensor(ids[: n * seq_len], dtype=torch.long).view(n, seq_len), len(ids)


def eval_loss(model, blocks, batch: int = 32) -> float:
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(blocks), batch):
            x = blocks[i : i + batch]
            total += model(input_ids=x, labels=x).loss.item() * len(x)
            count += len(x)
    model.train()
    return total / count


def copy_probe(model, tokenizer, n: int = 12) -> tuple[int, int, int]:
    """How many held-out phrases the model copies in plain code contexts (no instruction template).

    Returns hits for: "# phrase\ndef" -> " phrase_as_snake(", "$ echo phrase\n" -> "phrase",
    and the number of phrases tried. A diagnostic of in-context copying, which fine-tuning needs.
    """
    import torch

    rows = [r for r in ds.build_rows()[1] if r["instruction"] == ds.SNAKE_INSTRUCTION][:n]
    was_training = model.training
    model.eval()
    snake = echo = 0
    with torch.no_grad():
        for row in rows:
            phrase = row["input"].lower()
            for prompt, want in ((f"# {phrase}\ndef", f" {row['output']}("), (f"$ echo {phrase}\n", phrase + "\n")):
                enc = tokenizer(prompt, return_tensors="pt")
                out = model.generate(**enc, max_new_tokens=12, do_sample=False,
                                     pad_token_id=tokenizer.pad_token_id)
                text = tokenizer.decode(out[0, enc["input_ids"].shape[1]:])
                hit = text.startswith(want)
                if prompt.startswith("#"):
                    snake += hit
                else:
                    echo += hit
    model.train(was_training)
    return snake, echo, len(rows)


def pretrain(model, tokenizer, phases: list[tuple[float, "torch.Tensor"]], steps: int, lr: float,
             batch: int = BATCH, probe_every: int = 0) -> list[tuple[int, float]]:
    """AdamW with warmup and cosine decay over a curriculum: phases of (until this fraction of the steps, blocks)."""
    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.01)

    def lr_at(step: int) -> float:
        if step < WARMUP:
            return (step + 1) / WARMUP
        progress = (step - WARMUP) / max(1, steps - WARMUP)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    gen = torch.Generator().manual_seed(SEED)
    model.train()
    t0 = time.time()
    history = []
    ema = None
    source, order, pos = None, None, 0
    for step in range(steps):
        blocks = next(b for until, b in phases if step < until * steps or until >= 1.0)
        if blocks is not source or pos + batch > len(order):
            source, order, pos = blocks, torch.randperm(len(blocks), generator=gen), 0
        x = blocks[order[pos : pos + batch]]
        pos += batch
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        ema = loss.item() if ema is None else 0.95 * ema + 0.05 * loss.item()
        history.append((step, loss.item()))
        if step % 100 == 0 or step == steps - 1:
            msg = f"step {step:5d}  loss {loss.item():.4f}  avg {ema:.4f}  {time.time() - t0:.0f}s"
            if probe_every and (step % probe_every == 0 or step == steps - 1):
                snake, echo, n = copy_probe(model, tokenizer)
                msg += f"  copy probe: snake {snake}/{n} echo {echo}/{n}"
            print(msg, flush=True)
    return history


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=MODEL_DIR)
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--hidden", type=int, default=HIDDEN)
    ap.add_argument("--layers", type=int, default=N_LAYER)
    ap.add_argument("--heads", type=int, default=N_HEAD)
    ap.add_argument("--lr", type=float, default=LR)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (1: what models/bloom-tiny was built with; 2 threads are slower on a busy 2-core machine)")
    ap.add_argument("--batch", type=int, default=BATCH)
    ap.add_argument("--copy-only", type=float, default=COPY_ONLY_FRACTION, help="fraction of steps on the copy drills alone")
    ap.add_argument("--probe-every", type=int, default=0,
                    help="print an in-context copy probe every N steps (diagnostic)")
    args = ap.parse_args()

    t_start = time.time()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, BloomConfig, BloomForCausalLM

    torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    random.seed(SEED)
    torch.use_deterministic_algorithms(True)

    drill_docs, task_docs, general_docs, eval_docs = build_corpus(SEED)
    corpus_chars = sum(len(d) for d in drill_docs + task_docs + general_docs)
    tokenizer, n_bpe = train_tokenizer(drill_docs + task_docs + general_docs)
    drill_blocks, n_drill_tokens = pack(tokenizer, drill_docs, SEQ_LEN)
    task_blocks, n_task_tokens = pack(tokenizer, task_docs, SEQ_LEN)
    train_blocks, n_train_tokens = pack(tokenizer, general_docs, SEQ_LEN)
    n_drill_tokens += n_task_tokens
    phases = [(args.copy_only, drill_blocks), (DRILL_FRACTION, torch.cat([drill_blocks, task_blocks])),
              (1.0, torch.cat([drill_blocks, task_blocks, train_blocks]))]
    train_docs = general_docs
    eval_blocks, n_eval_tokens = pack(tokenizer, eval_docs, SEQ_LEN)
    print(f"corpus: {len(drill_docs)} drill + {len(task_docs)} task + {len(train_docs)} general docs, {corpus_chars} chars, "
          f"{n_drill_tokens} + {n_train_tokens} tokens; eval {n_eval_tokens} tokens; "
          f"tokenizer {len(tokenizer)} tokens")

    config = BloomConfig(
        # Padded to a multiple of 128 like BLOOM's 250880 (its tokenizer has 250680 tokens).
        vocab_size=-(-len(tokenizer) // 128) * 128,
        hidden_size=args.hidden,
        n_layer=args.layers,
        n_head=args.heads,
        layer_norm_epsilon=1e-5,
        initializer_range=0.02,
        use_cache=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        unk_token_id=tokenizer.unk_token_id,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        tie_word_embeddings=True,
    )
    model = BloomForCausalLM(config)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: hidden {args.hidden}, layers {args.layers}, heads {args.heads}, "
          f"vocab {config.vocab_size}, {n_params} parameters")

    t_train = time.time()
    pretrain(model, tokenizer, phases, args.steps, args.lr, args.batch, args.probe_every)
    train_seconds = time.time() - t_train
    final_train_loss = eval_loss(model, train_blocks[:512])
    final_eval_loss = eval_loss(model, eval_blocks)
    print(f"final loss: train {final_train_loss:.4f}, held-out corpus {final_eval_loss:.4f}")

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    fix_tokenizer_files(out, tokenizer)

    # Sanity check through the same loading path as a hub checkpoint.
    model2 = AutoModelForCausalLM.from_pretrained(out)
    tok2 = AutoTokenizer.from_pretrained(out)
    assert model2.config.model_type == "bloom", model2.config.model_type
    assert (tok2.unk_token_id, tok2.bos_token_id, tok2.eos_token_id, tok2.pad_token_id) == (0, 1, 2, 3)
    eval_blocks2, _ = pack(tok2, eval_docs, SEQ_LEN)
    assert torch.equal(eval_blocks2, eval_blocks)
    reloaded_eval_loss = eval_loss(model2, eval_blocks2)
    print(f"reloaded: model_type={model2.config.model_type}, held-out corpus loss {reloaded_eval_loss:.4f}")
    snake, echo, n = copy_probe(model2, tok2)
    print(f"copy probe (plain code contexts, held-out phrases): snake {snake}/{n}, echo {echo}/{n}")
    model2.eval()
    sample_rows = [r for r in ds.build_rows()[1]][:3]
    generations = []
    for row in sample_rows:
        prompt = "\n".join(["Human: " + row["instruction"], row["input"]]).strip() + "\n\nAssistant: "
        enc = tok2(prompt, return_tensors="pt")
        with torch.no_grad():
            out_ids = model2.generate(**enc, max_new_tokens=16, do_sample=False)
        text = tok2.decode(out_ids[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        generations.append((prompt, text, row["output"]))
        print(f"base model on task prompt {prompt!r}\n  -> {text!r} (wanted {row['output']!r})")

    size_mb = (out / "model.safetensors").stat().st_size / 1e6
    total_seconds = time.time() - t_start
    write_card(out, args, config, n_params, size_mb, len(tokenizer), len(drill_docs),
               len(task_docs), len(train_docs), corpus_chars, n_drill_tokens + n_train_tokens, final_train_loss,
               final_eval_loss, train_seconds, total_seconds, generations, (snake, echo, n), n_bpe)
    print(f"saved {out} ({size_mb:.2f} MB safetensors) in {total_seconds:.0f}s")


def fix_tokenizer_files(out: Path, tokenizer) -> None:
    """Name the tokenizer class as BLOOM checkpoints do and write special_tokens_map.json.

    transformers 5 writes tokenizer_class "TokenizersBackend", which transformers 4 cannot load;
    "BloomTokenizerFast" (what bigscience/bloom-560m names) loads in both.
    """
    import json

    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["tokenizer_class"] = "BloomTokenizerFast"
    cfg["add_prefix_space"] = False
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    special = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")


def write_card(out, args, config, n_params, size_mb, vocab, n_drill, n_task, n_docs, chars, tokens, train_loss,
               eval_loss_, train_seconds, total_seconds, generations, probe, n_bpe) -> None:
    n_zh, n_transforms = vocab - n_bpe, len(ds.TRANSFORMS)
    copy_pct, drill_pct = round(args.copy_only * 100), round(DRILL_FRACTION * 100)
    curriculum = (f"the first {copy_pct}% of the steps read the copy drills alone, up to {drill_pct}% the drills and the "
                  "task documents" if copy_pct else f"the first {drill_pct}% of the steps read the drills and the task documents")
    gen_lines = "\n".join(
        f"- `{p!r}` -> `{t!r}` (task answer: `{w}`)" for p, t, w in generations
    )
    card = f"""---
license: apache-2.0
library_name: transformers
pipeline_tag: text-generation
tags: [bloom, tiny, test-model]
---

# bloom-tiny

The embedded default base model of Bloom PEFT Studio: a small BLOOM causal language model
(`model_type: bloom`, `BloomForCausalLM`) built from scratch by `scripts/make_model.py`, so the
extension and its tests work offline with the same `from_pretrained` path as
`bigscience/bloom-560m`. It is a toy: it knows the project's generated corpus and nothing else.

## Regenerate

```
.venv/bin/python scripts/make_dataset.py
.venv/bin/python scripts/make_model.py
```

Deterministic (fixed seeds, `torch.use_deterministic_algorithms(True)`, 1 torch thread); float results
can still differ across CPUs and torch versions.

## Shape

| | |
|---|---|
| hidden_size | {config.hidden_size} |
| n_layer | {config.n_layer} |
| n_head | {config.n_head} |
| vocab_size | {config.vocab_size} |
| parameters | {n_params:,} (word embeddings tied with the LM head) |
| model.safetensors | {size_mb:.2f} MB (float32) |
| position encoding | ALiBi (as every BLOOM) |

## Tokenizer

Byte-level BPE, {vocab} tokens: {n_bpe} learned with HF `tokenizers` on the pretraining corpus without its
non-ASCII text, then {n_zh} tokens that build each of the 3,755 common Chinese characters (GB 2312 level 1, the
standard's "commonly used" set) and common Chinese punctuation from its UTF-8 bytes, appended as merges after
the learned ones: every such character is one token, in every context, and no merge joins two characters.
Anything else falls back to byte tokens (every byte is in the vocabulary). Pre-tokenizer: a Split that isolates
`_` and runs of spaces (pattern `{SPLIT_PATTERN}`), then ByteLevel (GPT-2 regex, no prefix space); ByteLevel
decoder. A word is therefore the same token after a space, an underscore or a line start (`load hidden cache` ->
`load|Ġ|hidden|Ġ|cache`, `load_hidden_cache` -> `load|_|hidden|_|cache`), so turning words into identifiers is
plain in-context copying. Special tokens as in BLOOM: `<unk>`=0, `<s>`=1, `</s>`=2, `<pad>`=3. No BOS/EOS is
added when encoding (as in BLOOM). `padding_side` is `left`, as in BLOOM checkpoints, so batched generation
works; training code that pads should set what it needs. Saved as `PreTrainedTokenizerFast` (tokenizer.json +
tokenizer_config.json).

## Pretraining

Corpus: {n_drill:,} copy-drill documents (English words, Chinese words and random common characters, written
and repeated), {n_task:,} task documents and {n_docs:,} general documents ({chars:,} characters, {tokens:,}
tokens). A task document applies one of {n_transforms} transformations (copy, join with `_ - . / , 、`, reverse the
order, upper case, Title Case, camelCase, PascalCase, UPPER_SNAKE, first or last word, quote, 《》, repeat, TODO
comment) to 2-4 English or Chinese words, named by one of several English or Chinese descriptors per
transformation (`Join with hyphens`, `用顿号连接`, `倒序`, ...) in one of six framings (`Task: ...` /
`Output: ...`, `指令：` / `答：`, `... => ...`, `### ...`); most documents hold one instance, so the document
ends after the answer. So a soft prompt or a prefix has capabilities to select. The instruction template
(`Human: ...\\n\\nAssistant: `) never occurs, nor does any held-out input of `examples/` (code-tasks, en-tasks,
zh-tasks, unseen-words), and the sample sets' instructions are phrased unlike any descriptor. Curriculum:
{curriculum}, then everything with the general documents: English
sentences about code, Python and JavaScript snippets whose identifiers come from a fixed ~140-word vocabulary
(`scripts/make_dataset.py`), TODO comments in code, and the files of `examples/code-corpus/`.

Training: {args.steps} steps, batch {BATCH} x {SEQ_LEN} tokens, AdamW (lr {args.lr}, warmup
{WARMUP}, cosine to 10%), on {args.threads} CPU thread(s) in {train_seconds:.0f} s (whole script
{total_seconds:.0f} s, on a machine shared with other work).

Final loss: {train_loss:.3f} on training blocks, {eval_loss_:.3f} on a held-out generated corpus.

In-context copying (outside the instruction template, on held-out phrases): `# stop main row\\ndef` ->
` stop_main_row(` for {probe[0]}/{probe[2]} phrases, `$ echo stop main row\\n` -> `stop main row` for {probe[1]}/{probe[2]}.

## What it can learn

<!-- methods-eval -->
Run `npm run eval:methods` (scripts/eval_methods.py) to measure every method here; the table goes to
docs/methods-eval.md and into this section.
<!-- /methods-eval -->

## What it cannot do

Its pretraining teaches copying best. Probed in its own framing (a pretraining descriptor, the input, `Output: `)
on 12 held-out inputs per transformation and language: copying, joining with a separator, quoting, 《》 and TODO
comments 11-12/12 in English and Chinese; case changes 7-10/12 (UPPER 10, PascalCase 9, UPPER_SNAKE 9, Title and
camelCase 7); reversing the order 4/12 (English) and 2/12 (Chinese), the last word 3-4/12. So the sample sets ask
for copy-like transformations; on a build of this recipe with less Chinese, LoRA answered 0 of 20 held-out
"reverse the words" rows after 150 steps. Chinese copying of two-character words that share their first
character (老师 老虎) is its weakest copying.

## What it does not know

It has never seen the instruction template (`Human: ...\\n\\nAssistant: `), nor the instructions of
examples/en-tasks, zh-tasks and unseen-words (the base model answers 5%, 32% and 0% of their held-out rows; the
table above). `Convert to snake_case`, the instruction of examples/code-tasks (the demo's data set), is one of its
pretraining descriptors, so it often answers those rows before any fine-tuning. Greedy generations of held-out
code-tasks prompts from the base model:

{gen_lines}
"""
    (out / "README.md").write_text(card, encoding="utf-8")


if __name__ == "__main__":
    main()
