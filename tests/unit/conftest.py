"""Unit tests share helpers from this folder (`run_support`)."""

import sys
from pathlib import Path

sys.path.append(str(Path(__file__).parent))
