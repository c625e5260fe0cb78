#!/usr/bin/env python
"""LatentSeek from the command line: python train_free.py --config configs/demo.yaml --output_dir OUT"""

from lightning_latentseek.cli import main

if __name__ == "__main__":
    main()
