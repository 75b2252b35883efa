#!/usr/bin/env python3
"""Write the project's sample datasets under examples/ (deterministic, stdlib only).

    python scripts/make_dataset.py            # writes examples/code-tasks/ and examples/code-corpus/

examples/code-tasks/  an alpaca-style instruction dataset (instruction, input, output) with two
                      small code-flavoured copy-and-transform tasks that the embedded base model
                      (models/bloom-tiny) has not been taught in the instruction template:
                        "Convert to snake_case"   "get user name"  -> "get_user_name"
                        "Write a TODO comment"    "fix the login bug" -> "# TODO: fix the login bug"
                      train.jsonl / train.json / train.csv hold the same training rows;
                      heldout.jsonl holds rows whose inputs (as word sequences, ignoring case)
                      never occur in the training rows.
examples/code-corpus/ a handful of small source files (project-owned text) for the
                      "plain text / code corpus" data option.

The vocabulary and phrase generator live here and are imported by scripts/make_model.py, which
uses them to build the base model's pretraining corpus (held-out phrases excluded).
"""
from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path

SEED = 20240611
ROOT = Path(__file__).resolve().parent.parent
TASK_DIR = ROOT / "examples" / "code-tasks"
CORPUS_DIR = ROOT / "examples" / "code-corpus"

N_TRAIN_SNAKE = 300
N_TRAIN_TODO = 100
N_HELDOUT_SNAKE = 45
N_HELDOUT_TODO = 15

SNAKE_INSTRUCTION = "Convert to snake_case"
TODO_INSTRUCTION = "Write a TODO comment"

# A fixed English/code vocabulary: lowercase, alphabetic, no word repeated across lists.
VERBS = (
    "get set load save parse build read write update delete create find check send fetch "
    "render open close start stop reset clear add remove sort filter merge split format "
    "validate convert compute count print show hide enable disable apply handle"
).split()
ADJECTIVES = (
    "max min new old first last next previous total current default raw local remote active "
    "empty valid hidden global final base main full short long fast safe small large"
).split()
NOUNS = (
    "user name file path list item data value key table row column page request response error "
    "message config cache token model event order price index node tree graph queue stack buffer "
    "string number date time size color image button window screen account email password "
    "session client server port host query result record field label title header footer "
    "report score level step task job worker thread batch chunk line word char block frame "
    "layer weight"
).split()
VOCABULARY = VERBS + ADJECTIVES + NOUNS
assert len(set(VOCABULARY)) == len(VOCABULARY), "vocabulary words must be unique"
assert all(w.isalpha() and w.islower() for w in VOCABULARY)

# TODO task: short imperative notes built from the same vocabulary.
TODO_TAILS = ("bug", "test", "check", "logic", "docs", "handler", "format")


def make_phrase(rng: random.Random) -> tuple[str, ...]:
    """A 2-4 word identifier-like phrase: verb [adjective] noun [noun]."""
    shape = rng.choice(("vn", "vn", "van", "vnn", "vann", "van"))
    words = []
    for part in shape:
        if part == "v":
            words.append(rng.choice(VERBS))
        elif part == "a":
            words.append(rng.choice(ADJECTIVES))
        else:
            words.append(rng.choice([n for n in NOUNS if n not in words]))
    return tuple(words)


def make_todo(rng: random.Random) -> tuple[str, ...]:
    """A short TODO note: verb the [adjective] noun [tail]."""
    words = [rng.choice(VERBS), "the"]
    if rng.random() < 0.5:
        words.append(rng.choice(ADJECTIVES))
    words.append(rng.choice(NOUNS))
    if rng.random() < 0.5:
        words.append(rng.choice(TODO_TAILS))
    return tuple(words)


def snake_row(words: tuple[str, ...]) -> dict:
    return {"instruction": SNAKE_INSTRUCTION, "input": " ".join(words), "output": "_".join(words)}


def todo_row(words: tuple[str, ...]) -> dict:
    text = " ".join(words)
    return {"instruction": TODO_INSTRUCTION, "input": text, "output": "# TODO: " + text}


def unique(gen, rng: random.Random, n: int, taken: set) -> list[tuple[str, ...]]:
    out = []
    while len(out) < n:
        words = gen(rng)
        if words in taken:
            continue
        taken.add(words)
        out.append(words)
    return out


def build_rows(seed: int = SEED) -> tuple[list[dict], list[dict]]:
    rng = random.Random(seed)
    taken: set = set()
    # Held-out first so its phrases are reserved; train never repeats them.
    held_snake = unique(make_phrase, rng, N_HELDOUT_SNAKE, taken)
    held_todo = unique(make_todo, rng, N_HELDOUT_TODO, taken)
    train_snake = unique(make_phrase, rng, N_TRAIN_SNAKE, taken)
    train_todo = unique(make_todo, rng, N_TRAIN_TODO, taken)
    train = [snake_row(w) for w in train_snake] + [todo_row(w) for w in train_todo]
    heldout = [snake_row(w) for w in held_snake] + [todo_row(w) for w in held_todo]
    rng.shuffle(train)
    rng.shuffle(heldout)
    return train, heldout


def heldout_phrases(seed: int = SEED) -> set[str]:
    """Lowercased held-out inputs (space-joined words), for excluding them from pretraining."""
    _, heldout = build_rows(seed)
    return {row["input"].lower() for row in heldout}


# ---------------------------------------------------------------------------------------------
# Code corpus: small project-owned source files.

CODE_FILES: dict[str, str] = {
    "user_store.py": '''"""A tiny in-memory user store."""
from dataclasses import dataclass, field


@dataclass
class User:
    user_id: int
    user_name: str
    email: str = ""
    active: bool = True


@dataclass
class UserStore:
    users: dict = field(default_factory=dict)

    def add_user(self, user: User) -> None:
        """Add a user to the store."""
        self.users[user.user_id] = user

    def get_user(self, user_id: int) -> User | None:
        """Get a user by id, or None."""
        return self.users.get(user_id)

    def find_user_by_name(self, user_name: str) -> User | None:
        """Find the first user with the given name."""
        for user in self.users.values():
            if user.user_name == user_name:
                return user
        return None

    def remove_user(self, user_id: int) -> bool:
        """Remove a user; return True when one was removed."""
        return self.users.pop(user_id, None) is not None

    def count_active_users(self) -> int:
        """Count the active users."""
        return sum(1 for user in self.users.values() if user.active)
''',
    "config_loader.py": '''"""Load and validate a small JSON config file."""
import json
from pathlib import Path

DEFAULT_CONFIG = {"max_size": 100, "cache_path": ".cache", "log_level": "info"}


def load_config(config_path: str) -> dict:
    """Load the config file and merge it over the default config."""
    path = Path(config_path)
    config = dict(DEFAULT_CONFIG)
    if path.exists():
        config.update(json.loads(path.read_text()))
    validate_config(config)
    return config


def validate_config(config: dict) -> None:
    """Check that the config values are valid."""
    if config["max_size"] <= 0:
        raise ValueError("max_size must be positive")
    if config["log_level"] not in ("debug", "info", "error"):
        raise ValueError("unknown log_level")


def save_config(config: dict, config_path: str) -> None:
    """Write the config file as formatted JSON."""
    Path(config_path).write_text(json.dumps(config, indent=2) + "\\n")
''',
    "text_stats.py": '''"""Count words and lines in text files."""
from collections import Counter


def read_lines(file_path: str) -> list[str]:
    """Read a file and return its lines without line breaks."""
    with open(file_path, encoding="utf-8") as handle:
        return handle.read().splitlines()


def count_words(lines: list[str]) -> Counter:
    """Count how often each word occurs."""
    counter = Counter()
    for line in lines:
        counter.update(line.lower().split())
    return counter


def top_words(counter: Counter, max_count: int = 10) -> list[tuple[str, int]]:
    """Return the most common words first."""
    return counter.most_common(max_count)


def print_report(file_path: str) -> None:
    """Print a short word report for one file."""
    lines = read_lines(file_path)
    counter = count_words(lines)
    print(f"{file_path}: {len(lines)} lines, {sum(counter.values())} words")
    for word, count in top_words(counter):
        print(f"  {word}: {count}")
''',
    "task_queue.ts": '''// A small task queue with a fixed number of workers.
export interface Task {
  taskId: number;
  taskName: string;
  run: () => Promise<void>;
}

export class TaskQueue {
  private readonly queue: Task[] = [];
  private activeCount = 0;

  constructor(private readonly maxWorkers: number) {}

  addTask(task: Task): void {
    this.queue.push(task);
    this.startNextTask();
  }

  getQueueSize(): number {
    return this.queue.length;
  }

  private startNextTask(): void {
    if (this.activeCount >= this.maxWorkers) {
      return;
    }
    const task = this.queue.shift();
    if (!task) {
      return;
    }
    this.activeCount += 1;
    task.run().finally(() => {
      this.activeCount -= 1;
      this.startNextTask();
    });
  }
}
''',
    "format_utils.ts": '''// Helpers that format values for display.
export function formatFileSize(sizeInBytes: number): string {
  const units = ["B", "KB", "MB", "GB"];
  let size = sizeInBytes;
  let unitIndex = 0;
  while (size >= 1024 && unitIndex < units.length - 1) {
    size /= 1024;
    unitIndex += 1;
  }
  return `${size.toFixed(1)} ${units[unitIndex]}`;
}

export function formatDuration(totalSeconds: number): string {
  const minutes = Math.floor(totalSeconds / 60);
  const seconds = Math.round(totalSeconds % 60);
  return minutes > 0 ? `${minutes}m ${seconds}s` : `${seconds}s`;
}

export function toSnakeCase(name: string): string {
  return name
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
    .replace(/[\\s-]+/g, "_")
    .toLowerCase();
}
''',
    "event_log.js": '''// Keep the last events in a ring buffer and render them as a list.
class EventLog {
  constructor(maxEvents = 100) {
    this.maxEvents = maxEvents;
    this.events = [];
  }

  addEvent(eventName, eventData) {
    this.events.push({ eventName, eventData, time: Date.now() });
    if (this.events.length > this.maxEvents) {
      this.events.shift();
    }
  }

  clearEvents() {
    this.events = [];
  }

  renderEventList() {
    return this.events
      .map((event) => `<li>${event.eventName}</li>`)
      .join("\\n");
  }
}

module.exports = { EventLog };
''',
    "fetch_client.js": '''// A small HTTP client with a response cache.
const responseCache = new Map();

async function fetchJson(requestUrl) {
  if (responseCache.has(requestUrl)) {
    return responseCache.get(requestUrl);
  }
  const response = await fetch(requestUrl);
  if (!response.ok) {
    throw new Error(`request failed: ${response.status}`);
  }
  const data = await response.json();
  responseCache.set(requestUrl, data);
  return data;
}

function clearResponseCache() {
  responseCache.clear();
}

module.exports = { fetchJson, clearResponseCache };
''',
}


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


def write_csv(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["instruction", "input", "output"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")


def main() -> None:
    train, heldout = build_rows()
    train_inputs = {row["input"].lower() for row in train}
    assert not train_inputs & {row["input"].lower() for row in heldout}

    TASK_DIR.mkdir(parents=True, exist_ok=True)
    write_jsonl(TASK_DIR / "train.jsonl", train)
    (TASK_DIR / "train.json").write_text(json.dumps(train, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    write_csv(TASK_DIR / "train.csv", train)
    write_jsonl(TASK_DIR / "heldout.jsonl", heldout)

    CORPUS_DIR.mkdir(parents=True, exist_ok=True)
    for name, text in CODE_FILES.items():
        (CORPUS_DIR / name).write_text(text, encoding="utf-8")

    print(f"wrote {len(train)} train rows and {len(heldout)} held-out rows to {TASK_DIR.relative_to(ROOT)}")
    print(f"wrote {len(CODE_FILES)} files to {CORPUS_DIR.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
