"""The NUMINA method, pure: no ComfyUI import anywhere in this package."""
