"""HTSAT-22's pretraining (configs/audio_pretrain.py): audio tasks answered in text after the audio
prefix and the task's prompt. The rows the loop trains on hold exactly the prompt and the answer
(targets: the answer only); the evaluator's scores and metrics match hand computations; two steps
train, evaluate and initialise CLAP; a run killed with SIGKILL resumes to the uninterrupted run's
weights; and on real speech (FSDD) it answers held-out digit and speaker questions far above chance.

The objective's loss against msclap's ClapCaptionModel (with a prompt) is tests/test_prefix_lm.py's;
the task sampler's law and restarts are tests/test_data_multitask.py's.
"""
import pathlib
import signal
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from clap_jax import caption, text
from clap_jax.data import answers, sources, writer
from clap_jax.eval import answers as answers_eval, caption_metrics
from clap_jax.models import config as model_config
from clap_jax.models.clapcap import ClapCap
from clap_jax.train import checkpoint, init as pretrained, loop as train, objectives
from test_learning_fsdd import HELD_OUT_TAKES, WORDS
from test_resume import finish, saved_steps, wait_for_checkpoint
import multidevice
import test_configs
import trees

REPO = pathlib.Path(multidevice.REPO)
CONFIG = REPO / "configs" / "audio_pretrain.py"
# The synthetic tasks of test_data_multitask, one per answer form.
FORMS = {"birds": ("this bird is", "class", ("robin", "wren", "blackbird", "great tit", "jay")),
         "digits": ("generate audio caption", "caption", ()),
         "tags": ("this is a sound of", "classes",
                  ("rain", "wind", "dog barking", "engine", "speech", "music", "birdsong"))}


def load(arg=None):
  return test_configs.load(CONFIG, arg)


def write_classes(path: pathlib.Path, names) -> str:
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text("".join(n + "\n" for n in names))
  return str(path)


def synthetic_config(dirs: dict, tmp_path: pathlib.Path, arg: str = "smoke"):
  """configs/audio_pretrain.py's `arg` variant on test_data_multitask's tasks (FORMS)."""
  config = load(arg)
  tasks = {}
  for name in dirs:
    prompt, answer, classes = FORMS[name]
    tasks[name] = answers.task_config(
        prompt, answer, write_classes(tmp_path / name / "classes.txt", classes) if classes else "",
        1.0, "", name)
    tasks[name].train = tasks[name].heldout = str(dirs[name] / "clips-*.tfrecord")
  config.tasks = tasks
  config.evals.answers.tasks = tuple(tasks)
  return config


def test_configs_load_with_22_tasks():
  paper = load()
  assert len(paper.tasks) == 22 and set(paper.evals.answers.tasks) == set(paper.tasks)
  assert {t.answer for t in paper.tasks.values()} == set(answers.ANSWERS)
  assert paper.optim.frozen == "^model/gpt/" and paper.objective == "prefix_lm"
  for arg in ("local", "smoke"):
    config = load(arg)
    assert config.is_locked and set(config.tasks) == {"fsdd_digit", "fsdd_speaker"}


def test_prompted_rows_by_hand():
  rows = answers.prompted([[5, 6], [7], []], np.array([[1, 2, 9], [3, 9, 0], [4, 0, 0]]),
                          np.array([[1, 1, 1], [1, 1, 0], [1, 0, 0]]))
  np.testing.assert_array_equal(rows["input_ids"], [[5, 6, 1, 2, 9], [7, 3, 9, 0, 0],
                                                    [4, 0, 0, 0, 0]])
  np.testing.assert_array_equal(rows["attention_mask"], [[1] * 5, [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]])
  np.testing.assert_array_equal(rows["target_mask"], [[0, 0, 1, 1, 1], [0, 1, 1, 0, 0],
                                                      [1, 0, 0, 0, 0]])


def test_training_rows_hold_the_prompt_then_the_answer(task_dirs, tmp_path):
  """Every row of the loop's own batches decodes to its task's prompt (not a target), then its
  answer (the targets): the class name, the class names joined in class order, or the caption."""
  config = synthetic_config(task_dirs, tmp_path)
  config.input.global_batch = 24
  objective = objectives.get(config, None)
  tokenizer = text.Tokenizer.load()
  batch = next(objective.batches(start_step=0))
  names = sorted(task_dirs)
  seen = set()
  for i, t in enumerate(batch["task"]):
    name = names[t]
    prompt, answer, classes = FORMS[name]
    attended = batch["attention_mask"][i] > 0
    target = batch["target_mask"][i] > 0
    prompt_part = batch["input_ids"][i][attended & ~target]
    assert tokenizer.decode(prompt_part) == prompt
    assert np.all(np.flatnonzero(attended & ~target) < np.flatnonzero(target).min())
    said = tokenizer.decode(batch["input_ids"][i][target])
    seen.add(answer)
    assert said.endswith(" <|endoftext|>"), said
    said = said[:-len(" <|endoftext|>")]
    if answer == "caption":
      assert said.startswith("digits "), said  # the shards' captions are "digits {i}"
    elif answer == "class":
      assert said == classes[batch["label"][i]]
    else:
      assert said == ", ".join(c for c, on in zip(classes, batch["labels"][i]) if on)
  assert seen == set(answers.ANSWERS)


def test_task_config_errors_name_the_task(tmp_path):
  config = load("smoke")
  config.tasks.fsdd_digit.answers = "class"
  with pytest.raises(ValueError, match=r"tasks\.fsdd_digit: .*unknown keys \['answers'\]"):
    objectives.get(config, None)
  config = load("smoke")
  config.tasks.fsdd_digit.answer = "label"
  with pytest.raises(ValueError, match=r"tasks\.fsdd_digit\.answer 'label'"):
    objectives.get(config, None)
  config = load("smoke")
  (tmp_path / "classes.txt").write_text("zero\n\ntwo\n")
  config.tasks.fsdd_digit.classes = str(tmp_path / "classes.txt")
  with pytest.raises(ValueError, match=r"tasks\.fsdd_digit\.classes=.*blank line\(s\) \[2\]"):
    objectives.get(config, None)
  config.tasks.fsdd_digit.classes = str(tmp_path / "absent.txt")
  with pytest.raises(ValueError, match=r"tasks\.fsdd_digit\.classes=.*absent\.txt: cannot read"):
    objectives.get(config, None)
  config = load("smoke")
  config.input.prompt = "this is"
  with pytest.raises(ValueError, match="each of config.tasks has its own prompt"):
    objectives.check_inputs(config)


# The evaluator -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny():
  config = load("smoke").model
  config.audio, config.embed_dim = model_config.tiny().audio, model_config.tiny().embed_dim
  model = ClapCap(config)
  variables = model.init({"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)},
                         jnp.zeros((1, config.audio.clip_samples)), jnp.zeros((1, 1), jnp.int32),
                         method=ClapCap.token_logits)
  # Perturbed so that the prefix and every token matter.
  variables = jax.tree.map(lambda x: x + 0.05 * jax.random.normal(jax.random.PRNGKey(2), x.shape),
                           variables)
  return model, variables


def test_candidate_scores_equal_teacher_forced_log_likelihoods(tiny):
  """The constrained decoder's score of each (clip, class) is the sum over that class's tokens of
  log softmax of the model's teacher-forced logits from the waveform, computed row by row."""
  model, variables = tiny
  tokenizer = text.Tokenizer.load()
  prompt = tokenizer.encode("this is a sound of")
  rows = answers_eval.candidate_rows(tokenizer, prompt,
                                     ["rain", "dog barking", "a very long class name indeed"])
  audio = np.asarray(jax.random.normal(jax.random.PRNGKey(3), (2, model.config.audio.clip_samples)))
  embeddings = model.apply(variables, audio, method=ClapCap.audio_embeddings)
  got = np.asarray(answers_eval.candidate_scores(model, variables, embeddings, rows))
  assert got.shape == (2, 3)
  for b in range(2):
    for c in range(3):
      ids = rows["input_ids"][c][rows["attention_mask"][c] > 0]
      logits = np.asarray(model.apply(variables, audio[b:b + 1], ids[None],
                                      method=ClapCap.token_logits)[0], np.float64)
      log_p = logits - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1, keepdims=True)) \
          - logits.max(-1, keepdims=True)
      targets = np.flatnonzero(rows["target_mask"][c][:len(ids)])
      want = log_p[targets, ids[targets]].sum()
      np.testing.assert_allclose(got[b, c], want, rtol=1e-5)


def test_greedy_answer_after_the_prompt_is_the_argmax_continuation(tiny):
  """caption.generate with a prompt: each greedy token is the argmax of the teacher-forced logits
  after the prefix, the prompt and the tokens before it."""
  model, variables = tiny
  prompt = tuple(text.Tokenizer.load().encode("this acoustic scene is"))
  audio = np.asarray(jax.random.normal(jax.random.PRNGKey(4), (2, model.config.audio.clip_samples)))
  embeddings = model.apply(variables, audio, method=ClapCap.audio_embeddings)
  tokens = np.asarray(caption.generate(model, variables, embeddings, beam_size=1, max_length=5,
                                       stop_token=-1, prompt_ids=prompt).tokens[:, 0])
  for b in range(2):
    ids = np.array([*prompt, *tokens[b]])
    logits = model.apply(variables, audio[b:b + 1], ids[None], method=ClapCap.token_logits)[0]
    np.testing.assert_array_equal(np.argmax(logits[len(prompt):], -1), tokens[b])


class _Given(answers_eval.AnswersEvaluator):
  """The evaluator's metrics over given greedy answers and scores (no model, no data)."""

  def __init__(self, gathered):
    self.tokenizer = text.Tokenizer.load()
    self.stop = self.tokenizer.encode(caption.STOP_TEXT)[0]
    self.gathered = gathered

  def _heldout_pass(self, variables, task, prompt, rows):
    return self.gathered


def _greedy(texts):
  """Greedy tokens that say `texts`: each text, then ' ' (the stop token) and <|endoftext|>."""
  return text.Tokenizer.load()(texts)["input_ids"][:, :12]


def test_metrics_by_hand():
  task = answers.AnswerTask("scenes", "this acoustic scene is", "class", ("park", "bus", "metro"),
                            1.0, "", "x")
  given = _Given({"label": np.array([0, 1, 2, 1]),
                  "scores": np.array([[0., -1, -2], [-3, -1, -2], [0, -1, -0.5], [-1, 0, -2]]),
                  "greedy": _greedy(["park", "metro", "metro", "the bus"])})
  # constrained argmax: park, bus, park, bus -> 3 of 4; exact: park, metro (no), metro, 'the bus'
  # (no) -> 2 of 4
  assert given.evaluate_task(None, task) == {"scenes/accuracy": 0.75, "scenes/exact": 0.5}
  tags = answers.AnswerTask("tags", "", "classes", ("rain", "wind", "dog"), 1.0, "", "x")
  hot = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0]], np.float32)
  scores = np.array([[0.9, 0.1, 0.8], [0.2, 0.7, 0.1], [0.6, 0.5, 0.3]])
  given = _Given({"label": hot, "scores": scores,
                  "greedy": _greedy(["dog, rain", "wind, dog", "rain, wind"])})
  values = given.evaluate_task(None, tags)
  # every class ranks its positives first: AP 1 each; exact: sets equal for clips 0 and 2
  assert values == {"tags/mAP": 1.0, "tags/exact": pytest.approx(2 / 3)}


def test_caption_task_scores_greedy_captions_against_all_references():
  if "CIDEr-D" in caption_metrics.unavailable():
    pytest.skip(f"caption metrics unavailable: {caption_metrics.unavailable()['CIDEr-D']}")
  task = answers.AnswerTask("caps", "generate audio caption", "caption", (), 1.0, "", "x")
  refs = text.Tokenizer.load()(["a dog barks", "a dog is barking", "rain falls", "heavy rain"])
  given = _Given({"greedy": _greedy(["a dog barks", "rain falls"]),
                  "captions_input_ids": refs["input_ids"].reshape(2, 2, -1),
                  "captions_attention_mask": refs["attention_mask"].reshape(2, 2, -1),
                  "caption_mask": np.ones((2, 2), bool)})
  values = given.evaluate_task(None, task)
  want, _ = caption_metrics.score({"0": "a dog barks", "1": "rain falls"},
                                  {"0": ["a dog barks", "a dog is barking"],
                                   "1": ["rain falls", "heavy rain"]})
  assert values == {f"caps/{k}": v for k, v in want.items()}


# Training -----------------------------------------------------------------------------------------

def test_smoke_trains_evaluates_and_initialises_clap(task_dirs, tmp_path):
  """Two steps over the three answer forms, evaluated per task; then the audio tower goes into
  configs/pretrain.py's model (init.audio_from) unchanged, and nothing else does."""
  results = train.main(synthetic_config(task_dirs, tmp_path), tmp_path / "tasks")
  want = {"birds/accuracy", "birds/exact", "tags/mAP", "tags/exact"}
  assert want <= set(results)
  assert all(0.0 <= results[k] <= 1.0 for k in want)
  if "CIDEr-D" not in caption_metrics.unavailable():
    assert "digits/CIDEr-D" in results
  _, trained = checkpoint.load_inference_variables(tmp_path / "tasks")

  clap_config = test_configs.load(REPO / "configs" / "pretrain.py", "smoke")
  clap_config.model.audio = load("smoke").model.audio
  clap_config.init.audio_from = str(tmp_path / "tasks")
  run = train.build(clap_config)
  state = run.init()
  fresh = {"params": state["params"]["model"], "batch_stats": state["batch_stats"]}
  loaded = pretrained.initialise(fresh, clap_config.init, clap_config.model)
  for collection in ("params", "batch_stats"):
    want_tree = jax.tree.map(np.asarray, trained[collection]["clap"]["htsat"])
    trees.assert_trees_equal(loaded[collection]["audio_encoder"]["htsat"], want_tree)
  for part in ("caption_encoder", "logit_scale"):
    trees.assert_trees_equal(loaded["params"][part], fresh["params"][part])
  trees.assert_trees_equal(loaded["params"]["audio_encoder"]["projection"],
                           fresh["params"]["audio_encoder"]["projection"])


STEPS, EVERY = 6, 2


def _start(workdir, tasks: pathlib.Path) -> subprocess.Popen:
  args = ["--config", "configs/audio_pretrain.py:smoke", f"--config.total_steps={STEPS}",
          f"--config.checkpoint.every_steps={EVERY}", "--config.evals.answers.tasks=()",
          "--config.log.every_steps=1000"]
  for name in ("fsdd_digit", "fsdd_speaker"):
    args += [f"--config.tasks.{name}.{key}={tasks / name / value}"
             for key, value in (("train", "train/*.tfrecord"), ("heldout", "heldout/*.tfrecord"),
                                ("classes", "classes.txt"))]
  return subprocess.Popen([sys.executable, "launch/train.py", "--workdir", str(workdir), *args],
                          cwd=multidevice.REPO, env=multidevice.env(1), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


def test_kill_9_and_resume_equals_an_uninterrupted_run(shared_data, tmp_path):
  write_fsdd_tasks(shared_data / "fsdd-dev", tmp_path / "tasks", load("smoke").model.audio.sample_rate,
                   takes=(0, 1, 5, 6, 7))
  finish(_start(tmp_path / "straight", tmp_path / "tasks"))
  assert saved_steps(tmp_path / "straight")[-1] == STEPS
  process = _start(tmp_path / "killed", tmp_path / "tasks")
  wait_for_checkpoint(tmp_path / "killed", process)
  process.send_signal(signal.SIGKILL)
  process.wait(timeout=60)
  killed_at = saved_steps(tmp_path / "killed")[-1]
  assert killed_at < STEPS, "the run ended before it was killed; nothing was resumed"
  output = finish(_start(tmp_path / "killed", tmp_path / "tasks"))
  assert f"resuming at step {killed_at} of {STEPS}" in output
  got = checkpoint.load_inference_variables(tmp_path / "killed")[1]
  want = checkpoint.load_inference_variables(tmp_path / "straight")[1]
  trees.assert_trees_close(got, want, atol=1e-6)


# Real speech --------------------------------------------------------------------------------------

SPEAKERS = ("jackson", "nicolas")


def write_fsdd_tasks(root: pathlib.Path, out: pathlib.Path, sample_rate: int, takes=None) -> None:
  """Two tasks from the same FSDD files, {out}/fsdd_digit and {out}/fsdd_speaker, each with train
  (takes 5-49) and heldout (takes 0-4) shards and its classes.txt (digits as words; names)."""
  items = {}
  for path in sorted(root.glob("*.wav")):
    digit, speaker, take = path.stem.split("_")
    if takes is not None and int(take) not in takes:
      continue
    split = "heldout" if int(take) in HELD_OUT_TAKES else "train"
    for task, label, name in (("fsdd_digit", int(digit), WORDS[int(digit)]),
                              ("fsdd_speaker", SPEAKERS.index(speaker), speaker)):
      items.setdefault((task, split), []).append(sources.Item(
          item_id=path.name, audio=str(path), captions=(name,), labels=(label,), task=task))
  for task, names in (("fsdd_digit", WORDS), ("fsdd_speaker", SPEAKERS)):
    write_classes(out / task / "classes.txt", names)
  for (task, split), task_items in items.items():
    writer.write_shards(task_items, out / task / split, writer.WriterConfig(
        tokenizer=str(text.GPT2_FILES), prefix=task, sample_rate=sample_rate, shard_mb=4),
        progress=False)


@pytest.mark.slow
def test_fsdd_questions_answered_far_above_chance(shared_data, tmp_path):
  config = load("local")
  write_fsdd_tasks(shared_data / "fsdd-dev", tmp_path / "shards", config.model.audio.sample_rate)
  for name in config.tasks:
    for key, value in (("train", "train/*.tfrecord"), ("heldout", "heldout/*.tfrecord"),
                       ("classes", "classes.txt")):
      config.tasks[name][key] = str(tmp_path / "shards" / name / value)
  results = train.main(config, tmp_path / "run")
  print(f"FSDD held-out, per task: {results}")
  assert results["fsdd_digit/accuracy"] >= 0.3  # chance: 0.1
  assert results["fsdd_digit/exact"] >= 0.3
  assert results["fsdd_speaker/accuracy"] >= 0.9  # chance: 0.5
  assert results["fsdd_speaker/exact"] >= 0.9
