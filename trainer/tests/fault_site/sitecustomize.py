"""Only tests put this folder on a trainer process's PYTHONPATH: Python imports sitecustomize at start-up, and this one
installs the faults named in BLOOM_PEFT_TEST_FAULTS (bloom_peft.testing.faults) into the trainer's one fault seam."""
from bloom_peft.testing.faults import install_from_environment

install_from_environment()
