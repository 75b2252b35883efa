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
examples/en-tasks/    English word tasks: "Turn these words into a URL slug" (stop main row ->
                      stop-main-row), "Wrap the words in double quotes" (stop main row -> "stop main row").
examples/zh-tasks/    the Chinese sample (alpaca-style, instruction/input/output): "把下面的词语用顿号连起来"
                      (苹果 香蕉 -> 苹果、香蕉), "请给下面的词语套上书名号" (苹果 香蕉 -> 《苹果 香蕉》).
examples/unseen-words/ "Write these words as a dotted name" (stop main row -> stop.main.row); the held-out
                      rows use only words that no training row (of this set or of en-tasks) contains.
                      Each of these three has train.jsonl and heldout.jsonl (inputs disjoint); their
                      instructions are phrased unlike anything in the base model's pretraining.

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
# Chinese: the common characters and a small word list (bilingual tasks and the pretraining corpus).

def common_chinese_chars() -> list[str]:
    """The 3,755 level-1 characters of GB 2312 (the standard's "commonly used" set), in its order."""
    chars = []
    for hi in range(0xB0, 0xD8):
        for lo in range(0xA1, 0xFF):
            try:
                chars.append(bytes([hi, lo]).decode("gb2312"))
            except UnicodeDecodeError:
                pass  # the row 0xD7 ends early
    return chars


CHINESE_PUNCTUATION = list("，。、：；？！“”‘’（）《》「」【】…—·")

# Two-character words from everyday topics; every character is in common_chinese_chars().
ZH_WORDS = (
    "苹果 香蕉 西瓜 葡萄 桃子 米饭 面条 包子 饺子 牛奶 咖啡 茶叶 面包 鸡蛋 白菜 "
    "老虎 狮子 熊猫 小狗 小猫 兔子 大象 猴子 鲸鱼 燕子 蝴蝶 蜜蜂 骆驼 "
    "红色 黄色 蓝色 绿色 白色 黑色 紫色 灰色 "
    "北京 上海 广州 南京 杭州 成都 武汉 西安 重庆 天津 长沙 "
    "学校 医院 银行 公园 车站 机场 商店 书店 工厂 农村 城市 广场 "
    "老师 学生 医生 工人 农民 司机 厨师 警察 律师 作家 演员 记者 "
    "桌子 椅子 电脑 手机 书包 钢笔 铅笔 雨伞 钥匙 镜子 杯子 盘子 "
    "春天 夏天 秋天 冬天 早上 晚上 今天 明天 昨天 周末 "
    "太阳 月亮 星星 天空 大海 河流 森林 沙漠 高山 草地 雪花 云朵 "
    "音乐 电影 足球 篮球 游泳 跑步 唱歌 跳舞 画画 读书 写字 旅行 "
    "朋友 家人 父亲 母亲 哥哥 姐姐 弟弟 妹妹 爷爷 奶奶 "
    "快乐 安静 美丽 聪明 勇敢 认真 温暖 干净 简单 重要 "
    "文件 数据 网络 系统 程序 代码 用户 密码 服务 窗口 按钮 页面"
).split()


def check_chinese_words() -> None:
    common = set(common_chinese_chars())
    missing = sorted({c for w in ZH_WORDS for c in w} - common)
    assert not missing, f"characters outside the common set: {missing}"
    assert len(set(ZH_WORDS)) == len(ZH_WORDS), "Chinese words must be unique"


# ---------------------------------------------------------------------------------------------
# Transformations: word lists -> text. Pretraining teaches them under many descriptors
# (scripts/make_model.py); the sample task sets below ask for some of them in the instruction template.

def _title(w: str) -> str:
    return w[:1].upper() + w[1:]


def _quote(ws: list[str], lang: str) -> str:
    return ("“%s”" if lang == "zh" else '"%s"') % " ".join(ws)


# Each takes the input's words and its language ("en" or "zh"); inputs are words separated by spaces.
TRANSFORMS = {
    "copy": lambda ws, lang: " ".join(ws),
    "snake": lambda ws, lang: "_".join(ws),
    "kebab": lambda ws, lang: "-".join(ws),
    "dots": lambda ws, lang: ".".join(ws),
    "slashes": lambda ws, lang: "/".join(ws),
    "commas": lambda ws, lang: ", ".join(ws),
    "dunhao": lambda ws, lang: "、".join(ws),
    "reverse": lambda ws, lang: " ".join(reversed(ws)),
    "upper": lambda ws, lang: " ".join(w.upper() for w in ws),
    "upper_snake": lambda ws, lang: "_".join(w.upper() for w in ws),
    "title": lambda ws, lang: " ".join(_title(w) for w in ws),
    "camel": lambda ws, lang: ws[0] + "".join(_title(w) for w in ws[1:]),
    "pascal": lambda ws, lang: "".join(_title(w) for w in ws),
    "first": lambda ws, lang: ws[0],
    "last": lambda ws, lang: ws[-1],
    "quote": _quote,
    "brackets": lambda ws, lang: "《" + " ".join(ws) + "》",
    "twice": lambda ws, lang: " ".join(ws) + " / " + " ".join(ws),
    "todo": lambda ws, lang: "# TODO: " + " ".join(ws),
}
ENGLISH_ONLY = {"upper", "upper_snake", "title", "camel", "pascal", "todo"}

# Task descriptors used in pretraining, several per transformation, English and Chinese. The sample
# datasets' instructions are written differently (EN_TASKS, ZH_TASKS, UNSEEN_TASK below), so a
# fine-tune must map a new phrasing and the instruction template onto a capability.
DESCRIPTORS = {
    "copy": ["Repeat the text", "Copy this", "Echo the input", "Say it again", "重复这段文字", "照抄", "原样输出"],
    "snake": ["Convert to snake_case", "snake case", "Make a Python name", "Join with underscores",
              "用下划线连接", "转成蛇形命名"],
    "kebab": ["Join with hyphens", "kebab-case", "Make a slug", "Use dashes between the words", "用连字符连接"],
    "dots": ["Join with dots", "Dotted name", "Make a dotted path", "用点号连接", "点号分隔"],
    "slashes": ["Join with slashes", "Make a path", "Separate with /", "用斜杠连接", "路径形式"],
    "commas": ["List with commas", "Comma separated", "Make a comma list", "用逗号分隔"],
    "dunhao": ["List with Chinese commas", "用顿号连接", "顿号分隔", "用、隔开"],
    "reverse": ["Reverse the order", "Reverse the words", "Backwards", "Last to first", "倒序", "顺序颠倒",
                "反过来说"],
    "upper": ["Uppercase", "Shout it", "ALL CAPS", "Make it upper case", "转成大写"],
    "upper_snake": ["Make a constant name", "UPPER_SNAKE_CASE", "Constant case", "常量命名"],
    "title": ["Title case", "Capitalize each word", "Make a heading", "首字母大写"],
    "camel": ["camelCase", "Make a JavaScript name", "Convert to camel case", "驼峰命名"],
    "pascal": ["PascalCase", "Make a class name", "Upper camel case", "类名形式"],
    "first": ["First word only", "Only the first item", "The first one", "第一个", "只要第一个词"],
    "last": ["Last word only", "Only the last item", "The last one", "最后一个", "只要最后一个词"],
    "quote": ["Quote it", "Put it in quotes", "Add quotation marks", "加上引号"],
    "brackets": ["Put it in title marks", "加上书名号", "用书名号括起来"],
    "twice": ["Say it twice", "Repeat two times", "Double it", "说两遍", "重复两次"],
    "todo": ["Make a TODO note", "Write a TODO", "TODO comment", "写成待办注释"],
}

# The sample task sets (instruction phrasings that pretraining never uses).
EN_TASKS = {  # instruction -> transformation
    "Turn these words into a URL slug": "kebab",
    "Wrap the words in double quotes": "quote",
}
ZH_TASKS = {
    "把下面的词语用顿号连起来": "dunhao",
    "请给下面的词语套上书名号": "brackets",
}
UNSEEN_TASK = ("Write these words as a dotted name", "dots")


N_TASK_TRAIN = 240  # rows per sample task set, split evenly over its instructions
N_TASK_HELDOUT = 40


def random_words(rng: random.Random, pool, lo: int = 2, hi: int = 4) -> tuple[str, ...]:
    return tuple(rng.sample(pool, rng.randint(lo, hi)))


def transform_row(instruction: str, transform: str, words, lang: str) -> dict:
    return {"instruction": instruction, "input": " ".join(words), "output": TRANSFORMS[transform](list(words), lang)}


def task_set_rows(tasks: dict, lang: str, train_pool, heldout_pool, seed: int) -> tuple[list[dict], list[dict]]:
    """Rows for each instruction of `tasks`; no held-out input (as a word sequence) is a training input."""
    rng = random.Random(seed)
    taken: set = set()
    train, heldout = [], []
    for instruction, transform in tasks.items():
        for words in unique(lambda r: random_words(r, heldout_pool), rng, N_TASK_HELDOUT // len(tasks), taken):
            heldout.append(transform_row(instruction, transform, words, lang))
    for instruction, transform in tasks.items():
        for words in unique(lambda r: random_words(r, train_pool), rng, N_TASK_TRAIN // len(tasks), taken):
            train.append(transform_row(instruction, transform, words, lang))
    rng.shuffle(train)
    rng.shuffle(heldout)
    return train, heldout


def unseen_split(seed: int = SEED) -> tuple[list[str], list[str]]:
    """The vocabulary in two halves: the unseen-words set trains on the first and is tested on the second."""
    words = sorted(VOCABULARY)
    random.Random(seed + 3).shuffle(words)
    half = len(words) // 2
    return words[:half], words[half:]


def sample_task_sets(seed: int = SEED) -> dict[str, tuple[list[dict], list[dict]]]:
    """examples/<name>/ -> (train rows, held-out rows) of the three sample task sets."""
    seen, unseen = unseen_split(seed)
    instruction, transform = UNSEEN_TASK
    return {
        # en-tasks draws from the same half as unseen-words' training rows, so a run trained on all three sets
        # together still never sees an unseen-words held-out word in a training row.
        "en-tasks": task_set_rows(EN_TASKS, "en", seen, seen, seed + 1),
        "zh-tasks": task_set_rows(ZH_TASKS, "zh", list(ZH_WORDS), list(ZH_WORDS), seed + 2),
        "unseen-words": task_set_rows({instruction: transform}, "en", seen, unseen, seed + 3),
    }


def all_heldout_inputs(seed: int = SEED) -> set[str]:
    """Every held-out input of every sample set, lowercased: pretraining never writes these word sequences."""
    out = heldout_phrases(seed)
    for _, heldout in sample_task_sets(seed).values():
        out |= {row["input"].lower() for row in heldout}
    return out


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
    check_chinese_words()
    for name, (set_train, set_heldout) in sample_task_sets().items():
        folder = ROOT / "examples" / name
        folder.mkdir(parents=True, exist_ok=True)
        write_jsonl(folder / "train.jsonl", set_train)
        write_jsonl(folder / "heldout.jsonl", set_heldout)
        print(f"wrote {len(set_train)} train rows and {len(set_heldout)} held-out rows to examples/{name}")
    print(f"wrote {len(CODE_FILES)} files to {CORPUS_DIR.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
