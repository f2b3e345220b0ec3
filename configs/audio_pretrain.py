r"""The audio tower's multi-task pretraining (CLAP 2023's first stage): HTSAT learns 22 supervised
audio tasks at once, one head per task, and then initialises the contrastive model.

  python launch/train.py --config configs/audio_pretrain.py --workdir $AUDIO_PRETRAIN_WORKDIR \
      --config.tasks.audioset.train='/data/audio_tasks/audioset/train/*.tfrecord'   # any task
  python launch/train.py --config configs/pretrain.py --config.init.audio_from=$AUDIO_PRETRAIN_WORKDIR ...
  python launch/train.py --config configs/audio_pretrain.py:local --workdir /tmp/clap_audio_tasks
  python launch/train.py --config configs/audio_pretrain.py:smoke    # after the local shards

Each task's shards are launch/make_shards.py output with the task's name (`--task`) and labels,
by default under DATA_DIR/{task}/{train,heldout}/. The periodic evaluation scores each task's head
on its held-out shards: top-1 accuracy, or mAP for multi-label tasks.

The paper (Elizalde, Deshmukh & Wang 2023) gives the number of tasks (22), their domains (sound
events, music, speech, emotion, ...) and the idea, not the list, the heads or the schedule: the
task list below is chosen (public datasets of those domains; use their training splits only, since
several are also zero-shot evaluation tasks), and so is every value marked "chosen".

'local': a small model on tasks built from ../shared/data/fsdd-dev (two speakers, digits 0-9):
spoken digit (10 classes) and speaker (2) from the same files, takes 5-49 for training and 0-4
held out, written to LOCAL_DIR by `write_fsdd_tasks` of tests/test_audio_pretrain.py.
"""
import ml_collections

from clap_jax import schema
from clap_jax.models import config as model_config
from clap_jax.train.objectives import audio_multitask

DATA_DIR = "/data/audio_tasks"
LOCAL_DIR = "/tmp/clap_audio_tasks"

# name, classes, multi-label (chosen: see above)
PAPER_TASKS = (
    # sound events and scenes
    ("audioset", 527, True), ("fsd50k", 200, True), ("vggsound", 309, False),
    ("esc50", 50, False), ("urbansound8k", 10, False), ("dcase17_task4", 17, True),
    ("tut2017", 15, False), ("cochlscene", 13, False), ("vocalsound", 6, False),
    # music and instruments
    ("gtzan_genres", 10, False), ("magnatagatune", 50, True), ("nsynth_instrument", 11, False),
    ("nsynth_pitch", 128, False), ("nsynth_qualities", 10, True), ("mridangam_stroke", 10, False),
    ("beijing_opera", 4, False),
    # speech: keywords, emotion, speakers, language, counting
    ("speech_commands", 35, False), ("crema_d", 6, False), ("ravdess", 8, False),
    ("voxceleb1", 1251, False), ("voxlingua107", 107, False), ("libricount", 11, False),
)
LOCAL_TASKS = (("fsdd_digit", 10, False), ("fsdd_speaker", 2, False))


def get_config(arg: str | None = None):
  if arg not in (None, "local", "smoke"):
    raise ValueError(f"configs/audio_pretrain.py takes no argument, 'local' or 'smoke', got {arg!r}")
  c = schema.training("audio_multitask")
  c.model = model_config.clap_2023()  # its audio tower is trained; the text part is unused
  c.model.audio.spec_augment = True  # as HTSAT trains
  c.model.audio.remat = False
  c.tasks = audio_multitask.tasks_config(PAPER_TASKS, DATA_DIR)

  c.input.kind = "multitask"
  c.input.global_batch = 512  # chosen
  c.input.shuffle_buffer = 64  # per task: 22 buffers of 10 s clips
  # chosen: AudioSet's two million clips would crowd out the small tasks under 'proportional'
  c.input.sampling = "temperature"
  c.input.temperature = 3.0
  c.total_steps = 200_000  # chosen

  c.optim.lr = 1e-3  # chosen: HTSAT's AudioSet learning rate
  c.optim.warmup_steps = 5000  # chosen
  c.optim.b1, c.optim.b2, c.optim.eps = 0.9, 0.999, 1e-8  # HTSAT's
  c.optim.weight_decay = 0.05  # chosen
  c.optim.clip_norm = 1.0

  c.mesh.data, c.mesh.fsdp = -1, 1  # HTSAT's 30M parameters: plain data parallelism
  c.checkpoint.every_steps = 2000
  c.log.every_steps = 50
  c.evals.heads.every_steps = 10_000
  c.evals.heads.tasks = tuple(name for name, _, _ in PAPER_TASKS)
  c.evals.heads.batch_size = 256
  if arg in ("local", "smoke"):
    _local(c)
  if arg == "smoke":
    c.input.global_batch = 4
    c.total_steps = 2
    c.optim.warmup_steps = 1
    c.log.every_steps = 1
    c.evals.heads.batch_size = 4
  return c


def _local(c: ml_collections.ConfigDict) -> None:
  """The fsdd tasks on CPU in a few minutes (the learning test's settings)."""
  c.model = model_config.small()
  c.tasks = audio_multitask.tasks_config(LOCAL_TASKS, LOCAL_DIR)
  c.input.global_batch = 32
  c.input.shuffle_buffer = 256
  c.input.sampling = "uniform"
  c.total_steps = 600
  c.optim.lr = 2e-3
  c.optim.warmup_steps = 25
  c.optim.weight_decay = 1e-4
  c.checkpoint.every_steps = 600
  c.log.every_steps = 10
  c.evals.heads.every_steps = 200
  c.evals.heads.tasks = tuple(name for name, _, _ in LOCAL_TASKS)
  c.evals.heads.batch_size = 64
