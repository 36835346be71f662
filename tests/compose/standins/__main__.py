"""`python -m tests.compose.standins`: build (or load, or pull) every image deploy/ names."""

from tests.compose.standins import ensure

for name, kind in ensure().items():
    print(f"{name}: {kind}")
