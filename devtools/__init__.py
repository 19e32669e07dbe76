"""Development helpers shared by scripts and tests (never shipped): where ComfyUI is, importing it and the
pack, and a real headless ComfyUI server."""
