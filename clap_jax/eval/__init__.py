"""Evaluation: the zero-shot task registry and sources, the jitted evaluator (with its batching and
multi-host helpers), the evaluators a training run builds from its config, metrics and report.

    from clap_jax import eval as clap_eval
    results = clap_eval.evaluate(model, variables, ["esc50", "clotho"], mesh, tokenizer=tok,
                                 batch_size=64)
"""
from clap_jax.eval.zeroshot import TaskResult, ZeroShotEvaluator, evaluate
from clap_jax.eval.tasks import TASKS, Task, paper_tasks
