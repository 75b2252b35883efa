"""Bloom PEFT Studio trainer: PEFT fine-tuning of BLOOM models, streamed as JSON-lines events."""
__version__ = "0.1.0"
