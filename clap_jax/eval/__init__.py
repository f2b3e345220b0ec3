"""Zero-shot evaluation: task registry, sources, jitted evaluator, metrics and report.

    from clap_jax import eval as clap_eval
    results = clap_eval.evaluate(model, variables, ["esc50", "clotho"], mesh, tokenizer=tok,
                                 batch_size=64)
"""
from clap_jax.eval.evaluator import TaskResult, ZeroShotEvaluator, evaluate
from clap_jax.eval.tasks import TASKS, Task, paper_tasks
