"""Datasets: rows from JSON / JSONL / CSV / a text or code corpus / the hub, rendered through the template,
tokenised with the loss masked on the prompt, split into train and eval, and batched.

Default template (the tutorial's): prompt = ("Human: " + instruction + "\n" + input).strip() + "\n\nAssistant: ",
then the output and EOS; labels are -100 on the prompt tokens; everything is truncated to training.max_length.
Every bad row raises DataError naming the file, the 1-based line and the field, with a hint.
"""
from __future__ import annotations

import csv
import json
import os
import random
import re
from collections.abc import Sequence
from pathlib import Path

from .config import Config, DataSection, TemplateSection, parse_template
from .errors import DataError

IGNORE_INDEX = -100
SKIP_DIRS = {".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv", "dist", "build", ".mypy_cache"}
DEFAULT_TEMPLATE = parse_template()  # the tutorial's Human/Assistant form (the schema's defaults)


# ---------------------------------------------------------------- template

_PLACEHOLDER = re.compile(r"\{(instruction|input|prompt)\}")


def render_prompt(template: TemplateSection, instruction: str, input: str = "", prompt: str | None = None) -> str:
    """The template rule, as src/protocol/template.ts renders it (parity: schemas/vectors/templates.json): the
    placeholders replaced in one pass (no str.format, and a value's own "{input}" stays literal, so braces in code
    are safe), the result stripped, then the response prefix. {prompt} is instruction and input on two lines."""
    values = {"instruction": instruction, "input": input,
              "prompt": "\n".join([instruction, input]).strip() if prompt is None else prompt}
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template.prompt).strip() + template.response_prefix


def render_example(row: dict, template: TemplateSection = DEFAULT_TEMPLATE) -> tuple[str, str]:
    """(prompt_text, response_text) of a row {instruction, input, output} or {prompt, completion}.

    In completion rows {instruction} and {prompt} are the prompt and {input} is empty, so the default template
    works for both."""
    if "prompt" in row and "instruction" not in row:
        return render_prompt(template, row["prompt"], "", row["prompt"]), row.get("completion", "")
    return render_prompt(template, row.get("instruction", ""), row.get("input", "") or ""), row.get("output", "")


def char_budget(tokenizer, max_length: int) -> int:
    """How many characters of a text can matter for max_length tokens. No token stands for more characters than its
    byte-level form is long, so a text cut at (max_length + 8) * (the longest token) characters keeps its first
    max_length tokens: a row's tokenising cost is bounded by max_length, not by its size (a 50 MB row took 9.7 GB)."""
    longest = getattr(tokenizer, "_bloom_peft_longest_token", None)
    if longest is None:
        longest = max((len(t) for t in tokenizer.get_vocab()), default=1)
        try:
            tokenizer._bloom_peft_longest_token = longest
        except AttributeError:
            pass
    return (max_length + 8) * max(longest, 1)


def encode_example(tokenizer, prompt: str, response: str, template: TemplateSection, max_length: int) -> dict:
    """Token ids and labels of one example, as the tutorial builds them: prompt and response tokenised apart (so
    the mask boundary is exact), EOS appended, labels -100 on the prompt, then truncated to max_length.
    Texts longer than char_budget() are cut first ("cut": True): their tokens past max_length are never made."""
    budget = char_budget(tokenizer, max_length)
    cut = len(prompt) > budget or len(response) > budget
    prompt, response = prompt[:budget], response[:budget]
    p_ids = tokenizer(prompt)["input_ids"] if prompt else []
    r_ids = tokenizer(response, add_special_tokens=False)["input_ids"] if response else []
    if template.add_eos:
        r_ids = r_ids + [tokenizer.eos_token_id]
    ids = p_ids + r_ids
    labels = ([IGNORE_INDEX] * len(p_ids) if template.mask_prompt else list(p_ids)) + r_ids
    return {"input_ids": ids[:max_length], "labels": labels[:max_length], "prompt_tokens": len(p_ids),
            "truncated": cut or len(ids) > max_length, "cut": cut}


# ---------------------------------------------------------------- reading files

def _resolve(path: str, field: str, base_dir: str | os.PathLike | None) -> Path:
    p = Path(path).expanduser()
    if not p.is_absolute() and base_dir is not None and not p.exists() and (Path(base_dir) / p).exists():
        p = Path(base_dir) / p
    if not p.exists():
        raise DataError(f"{field.rsplit('/', 1)[-1]} not found: {p.resolve()}", file=str(p), field=field,
                        hint=f"Relative paths are resolved against {Path.cwd()}; use an absolute path.")
    return p


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 text ({e.reason} at byte {e.start})", file=str(path), line=line,
                        hint="Save the file as UTF-8, or leave its extension out of data.file_extensions.") from None
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror}", file=str(path), hint="Check the path and its permissions.") from None


class _DuplicateKeys:
    """json object_pairs_hook: keeps the last value, as json.loads does, and remembers (line, key) of each repeat.
    Duplicate keys are legal JSON and sometimes deliberate, so they are a warning, not an error."""

    def __init__(self):
        self.line = None
        self.found: list[tuple[int | None, str]] = []

    def __call__(self, pairs):
        obj = {}
        for key, value in pairs:
            if key in obj:
                self.found.append((self.line, key))
            obj[key] = value
        return obj

    def warn(self, path: Path, warnings: list | None) -> None:
        if self.found and warnings is not None:
            line, key = self.found[0]
            more = f" (and {len(self.found) - 1} more)" if len(self.found) > 1 else ""
            warnings.append(f"{_where(path, line)}: duplicate key '{key}' in one object{more}; the last value is used")


def _json_problem(e: json.JSONDecodeError) -> str:
    """json's message with its column: "Unterminated string starting at" already ends in "at" (no "at at column")."""
    msg = e.msg[:-3] if e.msg.endswith(" at") else e.msg
    return f"{msg} at column {e.colno}"


def _jsonl_records(path: Path, text: str, warnings: list | None = None) -> list[tuple[int, object]]:
    records, dupes = [], _DuplicateKeys()
    # "\n" only: str.splitlines() also splits at U+2028 and other characters a JSON string may hold raw
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        dupes.line = lineno
        try:
            records.append((lineno, json.loads(line, object_pairs_hook=dupes)))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{lineno}: not valid JSON ({_json_problem(e)})", file=str(path),
                            line=lineno, hint="Each line of a JSONL file must be one complete JSON object.") from None
    dupes.warn(path, warnings)
    return records


def _json_records(path: Path, text: str, warnings: list | None = None) -> Sequence[tuple[int | None, object]]:
    """Records of a JSON array, each with the line it starts on; a .json file holding JSON lines also works."""
    dupes = _DuplicateKeys()
    try:
        doc = json.loads(text, object_pairs_hook=dupes)
    except json.JSONDecodeError as e:
        if e.msg == "Extra data":  # several top-level values: it is JSON lines
            return _jsonl_records(path, text, warnings)
        raise DataError(f"{path}:{e.lineno}: not valid JSON ({_json_problem(e)})", file=str(path), line=e.lineno,
                        hint="A .json dataset is one array of objects: [{\"instruction\": ..., \"output\": ...}, ...].") from None
    positioned = True  # the rows are the text's top-level array, so their lines can be found
    if isinstance(doc, dict):
        lists = [v for v in doc.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise DataError(f"{path}:1: expected an array of rows, found an object", file=str(path), line=1,
                            hint="A .json dataset is one array of objects (or an object with exactly one array in it).")
        doc, positioned = lists[0], False
    if not isinstance(doc, list):
        raise DataError(f"{path}:1: expected an array of rows, found {type(doc).__name__}", file=str(path), line=1,
                        hint="A .json dataset is one array of objects.")
    if not positioned or not text.lstrip().startswith("["):
        dupes.warn(path, warnings)
        return [(None, r) for r in doc]
    # walk the array again to learn the line each element starts on (json.loads keeps no positions)
    dupes = _DuplicateKeys()
    dec, records, i, line, counted = json.JSONDecoder(object_pairs_hook=dupes), [], text.index("[") + 1, 1, 0
    ws = " \t\r\n"
    for _ in doc:
        while text[i] in ws + ",":
            i += 1
        line += text.count("\n", counted, i)
        counted = i
        dupes.line = line
        obj, i = dec.raw_decode(text, i)
        records.append((line, obj))
    dupes.warn(path, warnings)
    return records


def _csv_records(path: Path, text: str, required: dict[str, str], delimiter: str) -> list[tuple[int, dict]]:
    reader = csv.reader(text.splitlines(keepends=True), delimiter=delimiter)
    try:
        header = next(reader, None)
        if not header or not any(h.strip() for h in header):
            raise DataError(f"{path}:1: no header row", file=str(path), line=1,
                            hint=f"The first line must name the columns, e.g. {delimiter.join(required)}.")
        header = [h.strip() for h in header]
        blank = [i + 1 for i, h in enumerate(header) if not h]
        if blank:
            raise DataError(f"{path}:1: header column {blank[0]} has no name", file=str(path), line=1,
                            hint="Name every column in the header row.")
        dupes = sorted({h for h in header if header.count(h) > 1})
        if dupes:
            raise DataError(f"{path}:1: header names column '{dupes[0]}' twice", file=str(path), line=1, field=dupes[0],
                            hint="Column names must be unique.")
        missing = [c for c in required if c not in header]
        if missing:
            raise DataError(f"{path}:1: header has no column '{missing[0]}' (columns: {', '.join(header)})",
                            file=str(path), line=1, field=missing[0],
                            hint=f"Rename the column, or map it in data.columns (e.g. \"columns\": {{\"{required[missing[0]]}\": \"{header[-1]}\"}}).")
        records, start = [], reader.line_num + 1
        for values in reader:
            if values and any(v.strip() for v in values):
                if len(values) != len(header):
                    raise DataError(f"{path}:{start}: row has {len(values)} fields, the header has {len(header)}",
                                    file=str(path), line=start,
                                    hint="Quote fields that contain the delimiter, quotes or newlines (\"a, b\").")
                records.append((start, dict(zip(header, values))))
            start = reader.line_num + 1
    except csv.Error as e:
        raise DataError(f"{path}:{reader.line_num}: malformed CSV ({e})", file=str(path), line=reader.line_num,
                        hint="Check the quoting on that line.") from None
    return records


def _records(path: Path, required: dict[str, str], warnings: list | None = None) -> Sequence[tuple[int | None, object]]:
    ext = path.suffix.lower()
    text = _read_text(path)
    if ext in (".jsonl", ".ndjson"):
        return _jsonl_records(path, text, warnings)
    if ext == ".json":
        return _json_records(path, text, warnings)
    if ext in (".csv", ".tsv"):
        return _csv_records(path, text, required, "\t" if ext == ".tsv" else ",")
    raise DataError(f"{path}: unsupported file type '{ext or '(none)'}'", file=str(path), field="/data/train_file",
                    hint="Use .json, .jsonl or .csv for instruction/completion rows, or format 'text' for a corpus.")


def _value(record: dict, role: str, columns: dict, where: str, path: str, line, required: bool, nonempty: bool) -> str:
    column = columns[role]
    if column not in record:
        if not required:
            return ""
        keys = ", ".join(map(str, record)) or "none"
        raise DataError(f"{where}: row has no field '{column}' (fields: {keys})", file=path, line=line, field=column,
                        hint=f"Add '{column}' to every row, or map another field with data.columns.{role}.")
    v = record[column]
    if v is None:
        v = ""
    elif isinstance(v, (int, float)) and not isinstance(v, bool):
        # a bare 12345 or NaN would train as the text "12345" / "nan": almost always a broken export of the data
        shown = json.dumps(v) if v == v else "NaN"
        raise DataError(f"{where}: field '{column}' is the number {shown}, expected text", file=path, line=line,
                        field=column, hint=f"Write it as a JSON string (\"{column}\": \"{v}\") if the text is meant.")
    elif not isinstance(v, str):
        raise DataError(f"{where}: field '{column}' is a {type(v).__name__}, expected text", file=path, line=line,
                        field=column, hint=f"'{column}' must be a string.")
    if nonempty and not v.strip():
        raise DataError(f"{where}: field '{column}' is empty", file=path, line=line, field=column,
                        hint=f"Every row needs a non-empty '{column}'; remove the row or fill it in.")
    return v


def _row_dicts(records, fmt: str, columns: dict, path: str) -> list[dict]:
    """Role rows ({instruction, input, output} or {prompt, completion}) with their source line."""
    rows = []
    for n, (line, rec) in enumerate(records, 1):
        where = f"{path}:{line}" if line is not None else f"{path} row {n}"
        if not isinstance(rec, dict):
            raise DataError(f"{where}: row is a {type(rec).__name__}, expected an object", file=path, line=line,
                            hint="Each row must be an object such as {\"instruction\": ..., \"input\": ..., \"output\": ...}.")
        if fmt == "instruction":
            ins = _value(rec, "instruction", columns, where, path, line, True, False)
            inp = _value(rec, "input", columns, where, path, line, False, False)
            if not (ins.strip() or inp.strip()):
                raise DataError(f"{where}: fields '{columns['instruction']}' and '{columns['input']}' are both empty",
                                file=path, line=line, field=columns["instruction"], hint="Every row needs a prompt.")
            out = _value(rec, "output", columns, where, path, line, True, True)
            rows.append({"instruction": ins, "input": inp, "output": out, "_src": (path, line)})
        else:
            prompt = _value(rec, "prompt", columns, where, path, line, True, True)
            completion = _value(rec, "completion", columns, where, path, line, True, True)
            rows.append({"prompt": prompt, "completion": completion, "_src": (path, line)})
    return rows


def _required_columns(fmt: str, columns: dict) -> dict[str, str]:
    """{column name in the file: role} of the columns every row must have."""
    roles = ("instruction", "output") if fmt == "instruction" else ("prompt", "completion")
    return {columns[r]: r for r in roles}


SAVED_DATASET_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")


def is_saved_dataset(path) -> bool:
    """A folder written by `datasets`' save_to_disk (a Dataset, or a DatasetDict of splits)."""
    p = Path(path)
    return p.is_dir() and any((p / m).is_file() for m in SAVED_DATASET_MARKERS)


def saved_dataset_records(path: Path, field: str, split: str | None = None) -> list[tuple[int, dict]]:
    """(row number, record) of a save_to_disk folder. A DatasetDict gives `split`, else its train split, or for the
    eval file its validation / test split when it has one (the tutorial's alpaca_data_zh is a plain Dataset)."""
    try:
        import datasets
    except ImportError:
        raise DataError("the 'datasets' package is not installed", file=str(path), field=field,
                        hint="Run 'Set Up Training Environment'.") from None
    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as e:  # datasets raises FileNotFoundError, ValueError, pyarrow errors...
        raise DataError(f"{path}: could not load the saved dataset: {type(e).__name__}: {e}", file=str(path), field=field,
                        hint="Point at the folder save_to_disk wrote (it holds dataset_info.json or dataset_dict.json).") from None
    if isinstance(ds, datasets.DatasetDict):
        order = (split,) if split else ("validation", "test", "train") if field == "/data/eval_file" else ("train",)
        split = next((s for s in order if s in ds), None)
        if split is None:
            raise DataError(f"{path}: the saved DatasetDict has no '{order[0]}' split (splits: {', '.join(ds)})",
                            file=str(path), field=field, hint=f"Save the rows as a '{order[0]}' split, or save one Dataset.")
        ds = ds[split]
    return list(enumerate(ds, 1))


def read_rows(path, fmt: str, columns: dict, field: str = "/data/train_file", base_dir=None,
              warnings: list | None = None) -> list[dict]:
    p = _resolve(str(path), field, base_dir)
    if is_saved_dataset(p):
        rows = _row_dicts([(None, r) for _, r in saved_dataset_records(p, field)], fmt, columns, str(p))
        if not rows:
            raise DataError(f"{p}: no rows", file=str(p), field=field, hint="The saved dataset is empty.")
        return rows
    if p.is_dir():
        raise DataError(f"{p} is a folder; the '{fmt}' format reads one file or a save_to_disk folder", file=str(p), field=field,
                        hint="Point at a .json/.jsonl/.csv file or a folder written by datasets' save_to_disk, "
                             "or use format 'text' for a folder of files.")
    rows = _row_dicts(_records(p, _required_columns(fmt, columns), warnings), fmt, columns, str(p))
    if not rows:
        raise DataError(f"{p}: no rows", file=str(p), field=field, hint="The file is empty.")
    return rows


def corpus_files(path, extensions: Sequence[str], field: str = "/data/train_file", base_dir=None) -> list[Path]:
    """A file, or every file with one of the extensions under a folder (sorted; VCS/build folders skipped)."""
    p = _resolve(str(path), field, base_dir)
    if p.is_file():
        return [p]
    exts = {e.lower() for e in extensions}
    files = []
    for root, dirs, names in os.walk(p):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
        files += [Path(root, n) for n in sorted(names) if Path(n).suffix.lower() in exts]
    if not files:
        raise DataError(f"{p}: no files with extensions {', '.join(sorted(exts))}", file=str(p), field="/data/file_extensions",
                        hint="Add your files' extensions to data.file_extensions, or point at another folder.")
    return files


# ---------------------------------------------------------------- examples and splits

def split_rows(items: list, fraction: float, seed: int) -> tuple[list, list]:
    """Seeded hold-out: the same rows go to eval for the same seed and data; train keeps the file order."""
    n = len(items)
    k = min(max(1, round(n * fraction)), n - 1) if fraction > 0 and n >= 2 else 0
    order = list(range(n))
    random.Random(seed).shuffle(order)
    held = set(order[:k])
    return [x for i, x in enumerate(items) if i not in held], [x for i, x in enumerate(items) if i in held]


def _encode_rows(rows: list[dict], tokenizer, template: TemplateSection, max_length: int, warnings: list | None) -> list[dict]:
    out, dropped, cut = [], [], []
    budget = char_budget(tokenizer, max_length)
    for row in rows:
        prompt, response = render_example(row, template)
        ex = encode_example(tokenizer, prompt, response, template, max_length)
        if ex.pop("cut"):
            cut.append(row["_src"])
        if all(label == IGNORE_INDEX for label in ex["labels"]):
            dropped.append(row["_src"])  # the prompt alone fills max_length: nothing left to learn from
            continue
        ex.update(prompt=prompt[:budget], response=response[:budget], source=row["_src"])
        out.append(ex)
    if cut and warnings is not None:
        f, line = cut[0]
        warnings.append(f"{len(cut)} row(s) longer than {budget:,} characters were cut before tokenising (first: "
                        f"{_where(f, line)}); only the first training.max_length={max_length} tokens of a row are used")
    if dropped and warnings is not None:
        f, line = dropped[0]
        warnings.append(f"{len(dropped)} row(s) skipped: the prompt alone fills training.max_length={max_length} "
                        f"(first: {_where(f, line)}); raise max_length or shorten the prompts")
    return out


CORPUS_PIECE_CHARS = 1_000_000


def tokenize_long(tokenizer, text: str) -> list[int]:
    """The ids of a corpus text, tokenised in pieces of at most a million characters: every token of a corpus is
    training data, but the tokenizer's own working memory (offsets, encodings) then stays bounded by the piece, not
    the file. A piece ends just before a newline that follows a non-space character, where byte-level BPE starts a
    new token anyway (a newline merges with the whitespace after it, never with the word before)."""
    ids: list[int] = []
    start = 0
    while start < len(text):
        end = min(start + CORPUS_PIECE_CHARS, len(text))
        if end < len(text):
            nl = text.rfind("\n", start + 1, end)
            while nl > start and text[nl - 1].isspace():
                nl = text.rfind("\n", start + 1, nl)
            end = nl if nl > start else end
        ids += tokenizer(text[start:end], add_special_tokens=False)["input_ids"]
        start = end
    return ids


def _where(path, line) -> str:
    return f"{path}:{line}" if line is not None else str(path)


def _encode_corpus(files: list[Path], tokenizer, block: int, add_eos: bool) -> list[dict]:
    """The files tokenised one after another (EOS between them) and cut into blocks of `block` tokens."""
    stream: list[int] = []
    for f in files:
        text = _read_text(f)
        if text.strip():
            stream += tokenize_long(tokenizer, text) + ([tokenizer.eos_token_id] if add_eos else [])
    return _blocks(stream, block, str(files[0].parent if len(files) > 1 else files[0]))


def _hub_rows(data: DataSection, field: str = "/data/hub_id") -> tuple[list[dict], str]:
    """Rows of a hub dataset (or a local dataset folder); returns (records, detected format)."""
    hub_id = data.hub_id
    assert hub_id is not None  # the schema requires it with format hub
    try:
        import datasets
    except ImportError:
        raise DataError("the 'datasets' package is not installed", field=field, hint="Run 'Set Up Training Environment'.") from None
    if not os.path.exists(hub_id) and os.environ.get("HF_HUB_OFFLINE", "0") not in ("1", "true", "yes"):
        from .model_loading import _hub_reachable

        if not _hub_reachable():
            raise DataError(f"hub dataset '{hub_id}': the Hugging Face hub is unreachable", field=field,
                            hint="Download the dataset on a machine with internet and use its file with format "
                                 "instruction/completion, or set HF_HUB_OFFLINE=1 to use a copy in the local cache.")
    if is_saved_dataset(hub_id):  # load_dataset refuses save_to_disk folders ("Please use load_from_disk")
        return [r for _, r in saved_dataset_records(Path(hub_id), field, data.hub_split)], hub_id
    try:
        ds = datasets.load_dataset(hub_id, split=data.hub_split)
    except Exception as e:  # datasets raises many types (FileNotFoundError, ConnectionError, DatasetNotFoundError, ValueError)
        raise DataError(f"could not load hub dataset '{hub_id}' split '{data.hub_split}': {type(e).__name__}: {e}",
                        field=field, hint="Check the dataset id and data.hub_split (e.g. 'train').") from None
    return list(ds), hub_id


def _detect_hub_format(records: list, columns: dict, hub_id: str) -> str:
    keys = set(records[0]) if records else set()
    if {columns["instruction"], columns["output"]} <= keys:
        return "instruction"
    if {columns["prompt"], columns["completion"]} <= keys:
        return "completion"
    if "text" in keys:
        return "text"
    raise DataError(f"hub dataset '{hub_id}' has columns {sorted(keys)}: none fits instruction/output, prompt/completion or text",
                    field="/data/columns", hint="Map its columns with data.columns (e.g. {\"output\": \"response\"}).")


def _blocks(ids: list[int], block: int, source) -> list[dict]:
    """A token stream cut into blocks; a 1-token tail has no next token to predict and is dropped."""
    return [{"input_ids": ids[i:i + block], "labels": ids[i:i + block], "prompt_tokens": 0, "truncated": False,
             "prompt": "", "response": None, "source": (source, None)}
            for i in range(0, len(ids), block) if len(ids[i:i + block]) >= 2]


def load_examples(config: Config, tokenizer, *, warnings: list | None = None, base_dir=None) -> tuple[list[dict], list[dict]]:
    """(train, eval) examples with ids, labels and the texts behind them (preview shows these)."""
    data, template = config.data, config.template
    if data is None:
        raise DataError("the config has no data section", field="/data", hint="Choose a dataset (data.train_file).")
    fmt, cols, max_length, seed = data.format, data.columns, config.training.max_length, config.training.seed
    block = min(data.block_size or max_length, max_length)
    eos = [tokenizer.eos_token_id] if template.add_eos else []

    def corpus(path, field):
        files = corpus_files(path, data.file_extensions, field, base_dir)
        return _encode_corpus(files, tokenizer, block, template.add_eos)

    if fmt == "hub":
        records, source = _hub_rows(data)
        fmt = _detect_hub_format(records, cols, source)
        if fmt == "text":
            ids = [t for r in records if str(r.get("text") or "").strip()
                   for t in tokenize_long(tokenizer, str(r["text"])) + eos]
            items = _blocks(ids, block, source)
        else:
            items = _row_dicts([(i, r) for i, r in enumerate(records, 1)], fmt, cols, source)
    elif fmt == "text":  # the schema requires train_file unless the format is hub
        source, items = str(data.train_file), corpus(data.train_file, "/data/train_file")
    else:
        source, items = str(data.train_file), read_rows(data.train_file, fmt, cols, base_dir=base_dir, warnings=warnings)
    if not items:
        raise DataError(f"{source}: no training data", file=str(source), field="/data/train_file",
                        hint="The dataset is empty.")

    if data.max_samples:
        items = items[: data.max_samples]  # caps the rows read, before the eval split
    if data.eval_file:
        train_items = items
        eval_items = (corpus(data.eval_file, "/data/eval_file") if fmt == "text"
                      else read_rows(data.eval_file, fmt, cols, "/data/eval_file", base_dir, warnings))
    else:
        train_items, eval_items = split_rows(items, data.eval_split, seed)
    if fmt == "text":  # blocks are encoded already
        return train_items, eval_items
    train = _encode_rows(train_items, tokenizer, template, max_length, warnings)
    evals = _encode_rows(eval_items, tokenizer, template, max_length, warnings)
    if not train:
        raise DataError(f"{source}: no training rows left after truncation to max_length={max_length}", file=str(source),
                        field="/training/max_length", hint="Raise training.max_length or shorten the prompts.")
    if warnings is not None:
        from .language import language_warnings

        warnings += language_warnings([ex["prompt"] + ex["response"] for ex in train], tokenizer,
                                      config.model.name_or_path)
    return train, evals


def load_splits(config: Config, tokenizer, *, warnings: list | None = None, base_dir=None) -> tuple[list[dict], list[dict]]:
    """(train, eval) rows {"input_ids": [...], "labels": [...]}; pass a list as `warnings` to hear about
    skipped rows. Relative paths resolve against the working directory, then base_dir."""
    train, evals = load_examples(config, tokenizer, warnings=warnings, base_dir=base_dir)
    strip = lambda rows: [{"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows]
    return strip(train), strip(evals)


# ---------------------------------------------------------------- batching

def collate(batch: list[dict], pad_id: int) -> dict:
    """Right-padded tensors: input_ids (pad_id), labels (-100 on padding), attention_mask (0 on padding)."""
    import torch

    width = max(len(r["input_ids"]) for r in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, r in enumerate(batch):
        n = len(r["input_ids"])
        ids[i, :n] = torch.tensor(r["input_ids"], dtype=torch.long)
        labels[i, :n] = torch.tensor(r["labels"], dtype=torch.long)
        mask[i, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def length_grouped_batches(lengths: list[int], batch_size: int, seed: int, epoch: int, mega: int = 50) -> list[list[int]]:
    """Batches of indices with similar lengths (less padding), deterministic in (seed, epoch).

    As transformers' LengthGroupedSampler: shuffle, cut into megabatches of mega*batch_size, sort each by length,
    cut into batches; then the batch order is shuffled and the batch holding the longest row goes first, so an
    out-of-memory shows at step 1 rather than mid-epoch. Every index appears exactly once."""
    rng = random.Random(f"bloom-peft:{seed}:{epoch}")  # str seeds hash with sha512: stable across processes
    order = list(range(len(lengths)))
    rng.shuffle(order)
    size = mega * batch_size
    batches = []
    for start in range(0, len(order), size):
        chunk = sorted(order[start:start + size], key=lambda i: -lengths[i])
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    if batches:
        longest = max(range(len(batches)), key=lambda b: max(lengths[i] for i in batches[b]))
        batches.insert(0, batches.pop(longest))
    return batches
