"""Count words and lines in text files."""
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
