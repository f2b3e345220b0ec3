r"""The audio encoder's pretraining, CLAP 2023's HTSAT-22: HTSAT learns 22 audio tasks the way Pengi
is trained (objective 'prefix_lm', input 'multitask'): audio -> HTSAT -> projection -> normalised
embedding -> mapper -> 40 prefix embeddings of a frozen GPT-2, then the task's prompt, then the
answer text, learned by cross-entropy on the answer tokens. Its audio encoder then initialises CLAP.

  python launch/train.py --config configs/audio_pretrain.py --workdir $HTSAT22_WORKDIR \
      --config.init.decoder_from=clapcap_weights_2023.pth \
      --config.tasks.fsd50k_events.train='/data/audio_tasks/fsd50k_events/train/*.tfrecord'  # any task
  python launch/train.py --config configs/pretrain.py --config.init.audio_from=$HTSAT22_WORKDIR ...
  python launch/train.py --config configs/audio_pretrain.py:local --workdir /tmp/clap_fsdd_run
  python launch/train.py --config configs/audio_pretrain.py:smoke    # after the local shards

Each task's shards are launch/make_shards.py output written with GPT-2's tokenizer and the task's
name (`--task`), labels indexed as in its classes file (`--classes`, one class name per line,
which is also the answers' vocabulary), by default under DATA_DIR/{task}/{train,heldout}/ with
DATA_DIR/{task}/classes.txt. The periodic evaluation (clap_jax.eval.answers) scores every task on
its held-out shards: constrained and exact-match accuracy, mAP, or the caption metrics.

What the paper gives: 22 tasks, HTSAT, Pengi's method (its ref. [11]: audio encoder and mapper
prompting a frozen GPT-2, cross-entropy on the generated text). What it does not give is chosen
here and marked "chosen": the task list is ours, from the paper's training sources (their
training splits only: four of them, AudioSet, FSD50K, AudioCaps and Clotho, are also evaluation
sets, and no dataset that is only an evaluation set is used). The prompts 'generate audio
caption' and 'this is a sound of' are Pengi's (microsoft/Pengi wrapper.py, `describe`); the
others follow their 'this ... is' form (ours). GPT-2 frozen, the prefix of 40 and the prompt
after it as GPT-2 token embeddings are Pengi's configs/base_no_text_enc.yml.

'local': a small model on two tasks of ../shared/data/fsdd-dev (two speakers, digits 0-9, takes
5-49 train and 0-4 held out): the spoken digit (answer: the number as a word) and the speaker
(answer: the name), written to LOCAL_DIR by tests/test_audio_pretrain.py's `write_fsdd_tasks`.
"""
import ml_collections

from clap_jax import schema
from clap_jax.data import answers
from clap_jax.models import config as model_config

DATA_DIR = "/data/audio_tasks"
LOCAL_DIR = "/tmp/clap_fsdd_tasks"
CAPTION = "generate audio caption"  # Pengi's
SOUND = "this is a sound of"  # Pengi's

# name: (source, prompt, answer, weight); the list, the task prompts other than Pengi's two, and
# the weights are chosen (see above). 'class' numbers are written as words in the classes file.
PAPER_TASKS = {
    # sound events and scenes
    "audioset_events": ("AudioSet (balanced + unbalanced train)", SOUND, "classes", 1.0),
    "fsd50k_events": ("FSD50K (dev)", SOUND, "classes", 1.0),
    "cochlscene_scenes": ("CochlScene (train)", "this acoustic scene is", "class", 1.0),
    # captions
    "audiocaps_captions": ("AudioCaps (train)", CAPTION, "caption", 2.0),
    "clotho_captions": ("Clotho (development)", CAPTION, "caption", 2.0),
    "macs_captions": ("MACS", CAPTION, "caption", 1.0),
    "wavcaps_captions": ("WavCaps", CAPTION, "caption", 2.0),
    "sounddescs_captions": ("SoundDescs (train)", CAPTION, "caption", 1.0),
    # music and instruments
    "fma_genre": ("FMA (medium, train): top-level genre", "this music genre is", "class", 1.0),
    "fma_subgenres": ("FMA (medium, train): all genres", "this music is tagged as", "classes", 1.0),
    "nsynth_instrument": ("NSynth (train): instrument family", "this music note is produced by",
                          "class", 1.0),
    "nsynth_source": ("NSynth (train): instrument source", "this instrument's source is", "class",
                      0.5),
    "nsynth_pitch": ("NSynth (train): MIDI pitch as words", "this music note's pitch is", "class",
                     1.0),
    "nsynth_velocity": ("NSynth (train): MIDI velocity as words", "this music note's velocity is",
                        "class", 0.5),
    "nsynth_qualities": ("NSynth (train): note qualities", "this music note sounds", "classes", 1.0),
    # speech: emotion and sentiment
    "meld_emotion": ("MELD (train)", "this emotion is", "class", 1.0),
    "meld_sentiment": ("MELD (train)", "this sentiment is", "class", 0.5),
    "iemocap_emotion": ("IEMOCAP (sessions 1-4)", "this emotion is", "class", 1.0),
    "msp_podcast_emotion": ("MSP-Podcast (train)", "this emotion is", "class", 1.0),
    "msp_podcast_arousal": ("MSP-Podcast (train): arousal 1-7 as words", "this arousal is",
                            "class", 0.5),
    "msp_podcast_valence": ("MSP-Podcast (train): valence 1-7 as words", "this valence is",
                            "class", 0.5),
    "msp_podcast_dominance": ("MSP-Podcast (train): dominance 1-7 as words", "this dominance is",
                              "class", 0.5),
}
LOCAL_TASKS = {
    "fsdd_digit": ("FSDD digits (takes 5-49)", "this spoken digit is", "class", 1.0),
    "fsdd_speaker": ("FSDD speakers (takes 5-49)", "this speaker is", "class", 1.0),
}


def tasks_config(tasks: dict, data_dir) -> ml_collections.ConfigDict:
  """`config.tasks` for a table as PAPER_TASKS', classes at {data_dir}/{name}/classes.txt."""
  return ml_collections.ConfigDict({
      name: answers.task_config(prompt, answer, "" if answer == "caption" else
                                f"{data_dir}/{name}/classes.txt", weight, data_dir, name)
      for name, (_, prompt, answer, weight) in tasks.items()})


def get_config(arg: str | None = None):
  if arg not in (None, "local", "smoke"):
    raise ValueError(f"configs/audio_pretrain.py takes no argument, 'local' or 'smoke', got {arg!r}")
  c = schema.training("prefix_lm")
  c.model = model_config.clapcap()  # HTSAT-22's audio encoder and projection, mapper, GPT-2
  c.model.audio.spec_augment = True  # as HTSAT trains
  c.optim.frozen = "^model/gpt/"  # Pengi's: GPT-2 frozen, the audio encoder and mapper learn
  c.init.decoder_from = ""  # required: GPT-2 'gpt2' (clapcap_weights_2023.pth holds it)
  c.tasks = tasks_config(PAPER_TASKS, DATA_DIR)

  c.input.kind = "multitask"
  c.input.global_batch = 384  # chosen
  c.input.shuffle_buffer = 64  # per task: 22 buffers of 10 s clips
  c.input.caption_choice = "random"
  # chosen: AudioSet's two million clips would crowd out the small tasks under 'proportional'
  c.input.sampling = "temperature"
  c.input.temperature = 3.0
  c.total_steps = 200_000  # chosen

  c.optim.lr = 1e-4  # chosen
  c.optim.warmup_steps = 5000  # chosen
  c.optim.weight_decay = 0.01  # chosen
  c.optim.clip_norm = 1.0
  c.mesh.data, c.mesh.fsdp = -1, 1  # 30M trained parameters: plain data parallelism
  c.checkpoint.every_steps = 2000
  c.log.every_steps = 50
  c.evals.answers.every_steps = 10_000
  c.evals.answers.tasks = tuple(PAPER_TASKS)
  c.evals.answers.batch_size = 128
  c.evals.answers.max_length = 32
  if arg in ("local", "smoke"):
    _local(c)
  if arg == "smoke":
    c.input.global_batch = 4
    c.total_steps = 2
    c.optim.warmup_steps = 1
    c.log.every_steps = 1
    c.evals.answers.batch_size = 4
  return c


def _local(c: ml_collections.ConfigDict) -> None:
  """The FSDD tasks on CPU in about a minute (the learning test's settings)."""
  c.model = model = model_config.tiny_clapcap()
  small = model_config.small()
  model.audio, model.embed_dim, model.projection_dropout = small.audio, small.embed_dim, 0.0
  model.mapper.prefix_length = model.mapper.clip_length = 8
  model.decoder.vocab_size = 50257  # GPT-2's tokens: the answers' words
  model.decoder.n_positions = 64
  model.decoder.dropout = 0.0
  c.optim.frozen = ""  # nothing pretrained here: every part learns
  c.tasks = tasks_config(LOCAL_TASKS, LOCAL_DIR)
  c.input.global_batch = 32
  c.input.shuffle_buffer = 256
  c.input.sampling = "uniform"
  c.total_steps = 300
  c.optim.lr = 3e-3
  c.optim.warmup_steps = 25
  c.optim.weight_decay = 1e-4
  c.checkpoint.every_steps = 300
  c.log.every_steps = 10
  c.evals.answers.every_steps = 0
  c.evals.answers.tasks = tuple(LOCAL_TASKS)
  c.evals.answers.batch_size = 64
  c.evals.answers.max_length = 6
