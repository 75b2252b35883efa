"""Session-wide test settings."""
import os
import tempfile

# The export cache (export_cache.default_cache_dir) of a test session lives in a temporary folder, never in the
# user's cache: one entry per base model is built by the first export and reused by the rest of the session.
os.environ.setdefault("BLOOM_PEFT_EXPORT_CACHE", tempfile.mkdtemp(prefix="bloom-peft-export-cache-"))
