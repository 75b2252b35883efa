"""Bloom PEFT Studio trainer: PEFT fine-tuning of BLOOM models, streamed as JSON-lines events."""
import os as _os

# onnxruntime (the export's parity check) starts Microsoft telemetry when it loads unless this is set: no device id,
# no event database under ~/.cache/Microsoft, no /tmp/mat-debug-*.log by default (docs/reliability.md, "Privacy").
_os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

__version__ = "0.1.0"
