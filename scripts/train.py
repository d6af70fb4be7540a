#!/usr/bin/env python
"""Fine-tune Qwen3-VL for listing spam with TRL SFT: the ``accelerate launch`` entry point.

    accelerate launch --config_file scripts/configs/accelerate/single_gpu.yaml \
        scripts/train.py --config scripts/configs/qwen3-vl-2b-qlora.yaml [--flag value ...]

Arguments: hf-spamguard's ``ProjectArgs`` + TRL's ``SFTConfig`` + TRL's ``ModelConfig`` (``--help`` lists
them all); ``--config`` reads a YAML file, flags on the command line override it. The logic lives in
``hf_spamguard.training``; this script only calls it.
"""

from __future__ import annotations

import sys

from hf_spamguard.training import main

if __name__ == "__main__":
    main(sys.argv[1:])
