"""Count testbed: a small native-Wan model trained on synthetic counting videos.

``testbed.model`` builds ComfyUI's own ``WanModel`` in pixel space; ``testbed.train`` trains it;
``testbed.evaluate`` measures count accuracy of sampling arms. These modules import ComfyUI's
``comfy`` package, so outside ComfyUI call :func:`devtools.comfyui.import_comfyui` first (the
command line ``python -m testbed`` does).
"""
