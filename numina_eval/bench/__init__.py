"""CountBench runner: queue prompts over ComfyUI servers, collect videos, score counts.

    python -m numina_eval.bench run --bench countbench/ --workflow wan_api.json \
        --server http://gpu0:8188 --server http://gpu1:8188 --seeds 0,1,2,3 --out results/numina
    python -m numina_eval.bench score --bench countbench/ --out results/numina --protocol t2v-compbench
"""
from .dataset import BenchPrompt, load_prompts
from .runner import Job, generate, make_jobs
from .workflow import fill_workflow, load_workflow

__all__ = ["BenchPrompt", "Job", "fill_workflow", "generate", "load_prompts", "load_workflow", "make_jobs"]
