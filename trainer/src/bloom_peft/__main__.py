"""Trainer command line: `python -m bloom_peft <command>` (the contract is in docs/contracts.md).

train   --run-dir DIR [--config FILE]   train; config from FILE (copied to DIR/config.json) or DIR/config.json
resume  --run-dir DIR                   continue from the newest complete checkpoint in DIR
export  --run-dir DIR | --model M --adapter A --out DIR   ONNX export for the completion engine
export-hf --run-dir DIR [--out DIR]     Hugging Face checkpoint (merged weights, or adapter + base name)
params  --config FILE | --json TEXT     trainable/total parameter counts without loading weights (JSON on stdout)
preview --config FILE [--rows N]        the first rows exactly as the model sees them (JSON on stdout)
evaluate --run-dir DIR [--rows N] [--max-new-tokens N] [--no-base]   greedy answers to held-out rows: exact match,
                                        character ROUGE-L, next to the base model (an `evaluation` event on stdout)
check [--config FILE]                   environment report (JSON on stdout); with a config, also what it would run into
serve                                   params / preview / check answered as JSON lines on stdin/stdout, until EOF
"""
from __future__ import annotations

import argparse
import importlib
import sys

# command -> module whose run(args) -> int implements it; modules are imported lazily so `check` works without torch
COMMANDS = {
    "train": "bloom_peft.train",
    "resume": "bloom_peft.train",
    "export": "bloom_peft.export",
    "export-hf": "bloom_peft.export_hf",
    "params": "bloom_peft.params",
    "preview": "bloom_peft.preview",
    "check": "bloom_peft.check",
    "serve": "bloom_peft.serve",
    "evaluate": "bloom_peft.evaluation",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bloom_peft", description="Bloom PEFT Studio trainer")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train a run")
    train.add_argument("--run-dir", required=True)
    train.add_argument("--config", help="config JSON (default: RUN_DIR/config.json)")
    resume = sub.add_parser("resume", help="resume a run from its newest complete checkpoint")
    resume.add_argument("--run-dir", required=True)
    export = sub.add_parser("export", help="export ONNX for the completion engine")
    export.add_argument("--run-dir", help="run directory (uses its config and adapter/)")
    export.add_argument("--model", help="base model (hub id, folder or 'embedded') when not exporting a run")
    export.add_argument("--adapter", help="peft adapter folder (or BitFit/full folder) when not exporting a run")
    export.add_argument("--out", help="output folder (default RUN_DIR/export)")
    export.add_argument("--quantize", choices=["none", "int8", "int4"], default=None)
    export.add_argument("--fp16", action="store_true")
    export_hf = sub.add_parser("export-hf", help="Hugging Face checkpoint of a run (merged, or adapter + base name)")
    export_hf.add_argument("--run-dir", required=True)
    export_hf.add_argument("--out", help="output folder (default RUN_DIR/hf)")
    params = sub.add_parser("params", help="trainable/total parameters of a config, without loading weights")
    src = params.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", help="config JSON file")
    src.add_argument("--json", help="config JSON text")
    preview = sub.add_parser("preview", help="show the first rows as the model sees them")
    psrc = preview.add_mutually_exclusive_group(required=True)
    psrc.add_argument("--config", help="config JSON file")
    psrc.add_argument("--json", help="config JSON text")
    preview.add_argument("--rows", type=int, default=3)
    check = sub.add_parser("check", help="environment report")
    check.add_argument("--config", help="also check this config JSON against the schema, the data files, the model "
                                        "folder and this machine (no model load)")
    sub.add_parser("serve", help="answer params/preview/check queries as JSON lines (stdin -> stdout) until EOF")
    evaluate = sub.add_parser("evaluate", help="answer a finished run's held-out rows: exact match and ROUGE-L vs the base model")
    evaluate.add_argument("--run-dir", required=True)
    evaluate.add_argument("--rows", type=int, default=32, help="held-out rows to answer (the first N)")
    evaluate.add_argument("--max-new-tokens", type=int, default=64, help="cap on generated tokens per answer")
    evaluate.add_argument("--no-base", action="store_true", help="skip the base model's answers")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module = importlib.import_module(COMMANDS[args.command])
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
