"""Test set-up: make src/ importable as the scripts see it, and keep progress bars quiet."""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
sys.path.insert(0, str(SRC))
os.environ.setdefault("CMT_NO_PROGRESS", "1")
