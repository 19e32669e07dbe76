"""The pack's pure core as seen from the testbed, wherever the testbed is imported from."""

try:  # inside the pack, as ComfyUI imports it (a package named after the pack's folder)
    from ..numina_core import synthetic_counting
except ImportError:  # repository root on sys.path: ``python -m testbed``, the tests
    from numina_core import synthetic_counting

__all__ = ["synthetic_counting"]
