#!/usr/bin/env python
"""Fine-tune Qwen3-VL for listing spam with TRL SFT: the ``accelerate launch`` entry point.

    accelerate launch --config_file scripts/configs/accelerate/single_gpu.yaml \
        scripts/train.py --config scripts/configs/qwen3-vl-2b-qlora.yaml [--flag value ...]

Arguments: hf-spamguard's ``ProjectArgs`` + TRL's ``SFTConfig`` + TRL's ``ModelConfig`` (``--help`` lists
the common ones, ``--help-all`` all of them); ``--config`` reads a YAML file, flags on the command line
override it. The logic lives in
``hf_spamguard.training``; this script only calls it.
"""

from __future__ import annotations

import sys

if __name__ == "__main__":
    # Before anything imports transformers / trl: Unsloth's patches only reach classes created after it
    # is imported (a no-op unless --backend unsloth runs on CUDA).
    from hf_spamguard.training.backends import preimport_unsloth

    preimport_unsloth(sys.argv[1:])

    from hf_spamguard.training import main

    main(sys.argv[1:], prog="scripts/train.py")
