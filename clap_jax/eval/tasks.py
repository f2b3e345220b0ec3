"""The task registry: per task its labels, prompt templates, metric and data source (the zero-shot
tasks, and the captioning tasks that clap_jax.eval.captioning scores).

The 26 tasks of Elizalde, Deshmukh & Wang 2023 (arXiv 2309.05767v2, Table 2): 20 classification
tasks, 2 captioning tasks and 2 retrieval datasets scored in both directions (4 tasks), and extra
tasks, which name no Table 2 rows (`in_paper` is False). Each task says in `provenance` where each
of its choices comes from ('data': dataset and split or folds, 'labels', 'metric', 'prompts'): the
paper, the 2022 paper (Elizalde et al., arXiv 2206.04769, Sec. 3.3), HEAR (the benchmark whose
protocol the paper follows for its HEAR tasks, hearbenchmark.com), an msclap example, or "ours" with
the reason. A task's `source` is where its data is looked for by default (paths relative to the
config's `data_dir`); the config may override any field of it (clap_jax/eval/sources.py reads it,
and each folder layout's docstring in clap_jax/eval/layouts.py gives the files it expects).
"""
import csv
import dataclasses
import pathlib
from collections.abc import Mapping

from clap_jax import text

SINGLE_LABEL = "single_label"  # metric: top-1 (and top-5) accuracy
MULTI_LABEL = "multi_label"  # metric: macro mAP, or F1 of thresholded decisions (`metric`)
RETRIEVAL = "retrieval"  # metric: R@1/5/10, mAP@10, audio-to-text and text-to-audio
CAPTIONING = "captioning"  # metric: SPIDEr, CIDEr-D, SPICE, BLEU-4, METEOR, ROUGE-L of generated captions
ZERO_SHOT = (SINGLE_LABEL, MULTI_LABEL, RETRIEVAL)  # the kinds clap_jax.eval.zeroshot scores

# The headline metric per kind; a multi-label task may say 'F1' instead (DCASE17 Task 4).
METRICS = {SINGLE_LABEL: ("accuracy",), MULTI_LABEL: ("mAP", "F1"), RETRIEVAL: ("R@1",),
           CAPTIONING: ("SPIDEr",)}
PROVENANCE = ("data", "labels", "metric", "prompts")

DEFAULT_TEMPLATES = (text.DEFAULT_TEMPLATE,)

PAPER = "paper (Table 2)"
PAPER_2022 = "2022 paper (Sec. 3.3)"
MSCLAP = "msclap example (zero-shot classification: 'this is a sound of {}')"
NO_PROMPTS = "none: captions are the queries and targets"


@dataclasses.dataclass(frozen=True)
class Task:
  name: str  # registry key, config key, results.json key
  title: str  # column header in the markdown table
  group: str  # the paper's task family
  kind: str  # SINGLE_LABEL | MULTI_LABEL | RETRIEVAL | CAPTIONING
  labels: tuple[str, ...]  # canonical class names, in index order; empty for retrieval, captioning
  source: Mapping  # default data source: {'kind': 'folder' | 'tfds' | 'shards', ...}
  templates: tuple[str, ...] = DEFAULT_TEMPLATES  # several -> prompt ensembling
  note: str = ""
  metric: str = ""  # the headline metric (METRICS[kind]); '' is the kind's first
  # The task's rows in the paper's Table 2 (clap_jax/assets/paper/ms_clap_2023_table2.csv 'task'):
  # one per task; a retrieval dataset has its audio-to-text and its text-to-audio row.
  paper_rows: tuple[str, ...] = ()
  provenance: Mapping[str, str] = dataclasses.field(default_factory=dict)  # PROVENANCE -> source

  def __post_init__(self):
    if self.kind not in ZERO_SHOT + (CAPTIONING,):
      raise ValueError(f"{self.name}: unknown task kind {self.kind!r}")
    if (self.kind in (RETRIEVAL, CAPTIONING)) != (not self.labels):
      raise ValueError(f"{self.name}: retrieval tasks have no labels (nor captioning tasks), "
                       "classification tasks need them")
    if len(set(self.labels)) != len(self.labels):
      raise ValueError(f"{self.name}: duplicate labels")
    for template in self.templates:
      if template.count("{}") != 1:
        raise ValueError(f"{self.name}: template {template!r} needs exactly one '{{}}'")
    if self.metric and self.metric not in METRICS[self.kind]:
      raise ValueError(f"{self.name}: metric {self.metric!r}; a {self.kind} task has one of "
                       f"{METRICS[self.kind]}")
    if self.paper_rows and len(self.paper_rows) != (2 if self.kind == RETRIEVAL else 1):
      raise ValueError(f"{self.name}: a paper task names its rows of the paper's Table 2: one, two "
                       f"for a retrieval dataset (both directions), not {self.paper_rows}")
    unknown = set(self.provenance) - set(PROVENANCE)
    if unknown:
      raise ValueError(f"{self.name}: provenance of unknown choices {sorted(unknown)}")

  @property
  def in_paper(self) -> bool:
    """Whether the 2023 paper scores this task: it names its Table 2 rows."""
    return bool(self.paper_rows)

  @property
  def headline(self) -> str:
    return self.metric or METRICS[self.kind][0]

  def prompts(self) -> list[list[str]]:
    """[class][template] prompt texts; '_' in a label reads as a space."""
    return [[t.format(label.replace("_", " ")) for t in self.templates] for label in self.labels]


def _words(text: str) -> tuple[str, ...]:
  return tuple(text.split())


def _hear(task_folder: str) -> dict:
  """A HEAR 2021 task, in the folder layout its release unpacks to."""
  return {"kind": "folder", "layout": "hear", "root": f"hear-2021.0.6/tasks/{task_folder}"}


def _note_name(midi: int) -> str:
  names = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
  return names[midi % 12] + str(midi // 12 - 1)  # MIDI 60 = C4


ESC50_LABELS = _words("""
    dog rooster pig cow frog cat hen insects sheep crow rain sea_waves crackling_fire crickets
    chirping_birds water_drops wind pouring_water toilet_flush thunderstorm crying_baby sneezing
    clapping breathing coughing footsteps laughing brushing_teeth snoring drinking_sipping
    door_wood_knock mouse_click keyboard_typing door_wood_creaks can_opening washing_machine
    vacuum_cleaner clock_alarm clock_tick glass_breaking helicopter chainsaw siren car_horn engine
    train church_bells airplane fireworks hand_saw""")

# FSD50K vocabulary.csv (AudioSet names with ', ' written as '_and_'), in its index order.
FSD50K_LABELS = _words("""
    Accelerating_and_revving_and_vroom Accordion Acoustic_guitar Aircraft Alarm Animal Applause Bark
    Bass_drum Bass_guitar Bathtub_(filling_or_washing) Bell Bicycle Bicycle_bell Bird
    Bird_vocalization_and_bird_call_and_bird_song Boat_and_Water_vehicle Boiling Boom
    Bowed_string_instrument Brass_instrument Breathing Burping_and_eructation Bus Buzz Camera Car
    Car_passing_by Cat Chatter Cheering Chewing_and_mastication Chicken_and_rooster
    Child_speech_and_kid_speaking Chime Chink_and_clink Chirp_and_tweet Chuckle_and_chortle Church_bell
    Clapping Clock Coin_(dropping) Computer_keyboard Conversation Cough Cowbell Crack Crackle
    Crash_cymbal Cricket Crow Crowd Crumpling_and_crinkling Crushing Crying_and_sobbing
    Cupboard_open_or_close Cutlery_and_silverware Cymbal Dishes_and_pots_and_pans Dog
    Domestic_animals_and_pets Domestic_sounds_and_home_sounds Door Doorbell Drawer_open_or_close Drill
    Drip Drum Drum_kit Electric_guitar Engine Engine_starting Explosion Fart Female_singing
    Female_speech_and_woman_speaking Fill_(with_liquid) Finger_snapping Fire Fireworks
    Fixed-wing_aircraft_and_airplane Fowl Frog Frying_(food) Gasp Giggle Glass Glockenspiel Gong
    Growling Guitar Gull_and_seagull Gunshot_and_gunfire Gurgling Hammer Hands Harmonica Harp Hi-hat
    Hiss Human_group_actions Human_voice Idling Insect Keyboard_(musical) Keys_jangling Knock Laughter
    Liquid Livestock_and_farm_animals_and_working_animals Male_singing Male_speech_and_man_speaking
    Mallet_percussion Marimba_and_xylophone Mechanical_fan Mechanisms Meow Microwave_oven
    Motor_vehicle_(road) Motorcycle Music Musical_instrument Ocean Organ Packing_tape_and_duct_tape
    Percussion Piano Plucked_string_instrument Pour Power_tool Printer Purr Race_car_and_auto_racing
    Rail_transport Rain Raindrop Ratchet_and_pawl Rattle Rattle_(instrument) Respiratory_sounds Ringtone
    Run Sawing Scissors Scratching_(performance_technique) Screaming Screech Shatter Shout Sigh Singing
    Sink_(filling_or_washing) Siren Skateboard Slam Sliding_door Snare_drum Sneeze Speech
    Speech_synthesizer Splash_and_splatter Squeak Stream Strum Subway_and_metro_and_underground Tabla
    Tambourine Tap Tearing Telephone Thump_and_thud Thunder Thunderstorm Tick Tick-tock Toilet_flush
    Tools Traffic_noise_and_roadway_noise Train Trickle_and_dribble Truck Trumpet Typewriter Typing
    Vehicle Vehicle_horn_and_car_horn_and_honking Walk_and_footsteps Water Water_tap_and_faucet
    Waves_and_surf Whispering Whoosh_and_swoosh_and_swish Wild_animals Wind Wind_chime
    Wind_instrument_and_woodwind_instrument Wood Writing Yell Zipper_(clothing)""")

_DIGITS = _words("zero one two three four five six seven eight nine")
_NSYNTH = {"kind": "tfds", "name": "nsynth", "split": "test"}
# AudioCaps: the CSVs of cdjkim/audiocaps (dataset/) and the downloaded clips, beside them.
_AUDIOCAPS = {"kind": "folder", "layout": "audiocaps", "root": "audiocaps", "captions": "test.csv",
              "audio": "test", "audio_name": "{youtube_id}.wav"}
# VocalSound's labels are AudioSet mids (class_labels_indices_vs.csv; the same mids name these
# classes in AudioSet's class_labels_indices.csv).
VOCALSOUND_MIDS = {"/m/01j3sz": "laughter", "/m/07plz5l": "sigh", "/m/01b_21": "cough",
                   "/m/0dl9sf8": "throat_clearing", "/m/01hsr_": "sneeze", "/m/07ppn3j": "sniff"}
_ASSETS = pathlib.Path(__file__).resolve().parents[1] / "assets"


def _audioset_classes() -> list[dict]:
  """AudioSet's class_labels_indices.csv (index, mid, display_name), in index order."""
  with open(_ASSETS / "audioset" / "class_labels_indices.csv", newline="") as f:
    return list(csv.DictReader(f))


AUDIOSET_LABELS = tuple(row["display_name"] for row in _audioset_classes())
# ESC-50 Actions (Martín-Morató et al.), the columns of its annotation files, in their order.
ESC50_ACTIONS = _words("""
    blowing breaking calling crumpling dripping exhaling exploding gasping groaning pouring ringing
    rolling rotating scraping singing sizzling splashing tapping vibrating wailing""")
# HEAR's speech_commands (v0.0.2): ten words, silence and unknown; TFDS speech_commands' names.
SPEECH_COMMANDS_LABELS = _words("down go left no off on right stop up yes silence unknown")
NSYNTH_PITCHES = range(21, 109)  # HEAR's nsynth_pitch: the 88 piano keys, MIDI 21-108


def _provenance(data: str, labels: str, metric: str, prompts: str = MSCLAP) -> dict:
  return {"data": data, "labels": labels, "metric": metric, "prompts": prompts}


_ALL_FOLDS = "ours: every clip (all folds); zero-shot trains on none of them"

_TASKS = [
    # Sound event classification
    Task("esc50", "ESC50", "Sound Event Classification", SINGLE_LABEL, ESC50_LABELS,
         {"kind": "folder", "layout": "esc50", "root": "ESC-50-master", "meta": "meta/esc50.csv"},
         paper_rows=("ESC50",), provenance=_provenance(
             f"ESC-50, {_ALL_FOLDS}", "ESC-50's 50 categories (meta/esc50.csv)", "paper: accuracy")),
    Task("fsd50k", "FSD50K", "Sound Event Classification", MULTI_LABEL, FSD50K_LABELS,
         {"kind": "folder", "layout": "fsd50k", "root": "FSD50K", "split": "eval"},
         paper_rows=("FSD50K",), provenance=_provenance(
             "FSD50K eval split (the dataset's test set)", "FSD50K vocabulary.csv (200)",
             "paper: mAP")),
    Task("urbansound8k", "US8K", "Sound Event Classification", SINGLE_LABEL, _words(
        "air_conditioner car_horn children_playing dog_bark drilling engine_idling gun_shot jackhammer "
        "siren street_music"), {"kind": "folder", "layout": "urbansound8k", "root": "UrbanSound8K"},
         paper_rows=("US8K",), provenance=_provenance(
             f"UrbanSound8K, {_ALL_FOLDS}", "UrbanSound8K's 10 classes", "paper: accuracy")),
    Task("dcase17_task4", "DCASE17 T4", "Sound Event Classification", MULTI_LABEL, (
        "Train horn", "Air horn, truck horn", "Car alarm", "Reversing beeps", "Ambulance (siren)",
        "Police car (siren)", "Fire engine, fire truck (siren)", "Civil defense siren", "Screaming",
        "Bicycle", "Skateboard", "Car", "Car passing by", "Bus", "Truck", "Motorcycle", "Train"),
         {"kind": "folder", "layout": "dcase17_task4", "root": "dcase2017_task4",
          "labels": "groundtruth_release/groundtruth_weak_label_evaluation_set.csv",
          "audio": "audio/eval"}, metric="F1",
         paper_rows=("DCASE17 Task 4",), provenance=_provenance(
             "DCASE 2017 Task 4 evaluation set, weak (clip) labels",
             "DCASE 2017 Task 4's 17 classes",
             "paper: F1 (Sec. 2.3: sigmoid over the logits); the decision rule is ours and config "
             "(zeroshot settings `f1`, clap_jax.eval.metrics.decisions)"),
         note="F1 needs a decision per class: the rule is the config's `f1` (default: each clip's "
              "top-1 class, micro F1), since the paper gives no threshold"),
    Task("audioset", "AudioSet", "Sound Event Classification", MULTI_LABEL, AUDIOSET_LABELS,
         {"kind": "folder", "layout": "audioset", "root": "audioset", "segments": "eval_segments.csv",
          "audio": "eval_segments", "filename": "Y{ytid}.wav",
          "aliases": {row["mid"]: row["display_name"] for row in _audioset_classes()}},
         paper_rows=("AudioSet",), provenance=_provenance(
             "AudioSet evaluation segments (eval_segments.csv), the clips still obtainable",
             "AudioSet class_labels_indices.csv (527)", "paper: mAP")),
    # Vocal sound, surveillance, action, scene
    Task("vocalsound", "Vocal Sound", "Vocal Sound Classification", SINGLE_LABEL, _words(
        "laughter sigh cough throat_clearing sneeze sniff"),
         {"kind": "folder", "layout": "vocalsound", "root": "vs_release_16k",
          "datafile": "datafiles/te.json", "audio": "audio_16k", "aliases": VOCALSOUND_MIDS},
         paper_rows=("Vocal Sound",), provenance=_provenance(
             "VocalSound test split (datafiles/te.json, speaker-disjoint)", "VocalSound's 6 classes",
             "paper: accuracy")),
    Task("sesa", "SESA", "Surveillance Sound Classification", SINGLE_LABEL, _words(
        "casual gunshot explosion alarm_siren"),
         {"kind": "folder", "layout": "sesa", "root": "SESA", "split": "test",
          "aliases": {"siren": "alarm_siren"}}, paper_rows=("SESA",),
         provenance=_provenance("SESA test set (105 clips)", "SESA's 4 classes", "paper: accuracy"),
         note="'casual' is SESA's 'casual (not a threat)'; its files name class 3 'siren' (with "
              "alarms)"),
    Task("esc50_actions", "ESC50 Actions", "Action Classification", MULTI_LABEL, ESC50_ACTIONS,
         {"kind": "folder", "layout": "esc50_actions", "root": "ESC-50-master",
          "meta": "meta/esc50.csv",
          "annotations_path": "esc50_actions/actionvector_one_per_audiofile_sum.csv",
          "vote_threshold": 7},
         paper_rows=("ESC50 Actions",), provenance=_provenance(
             f"ESC-50 with the ESC-50 Actions annotations (the paper's ref. [33]), {_ALL_FOLDS}",
             "the annotations' 20 actions",
             "paper: mAP; a clip's actions are those with at least `vote_threshold` votes (ours)"),
         note="positive action: >= 7 of the 12 votes a clip can get (3 listeners rate each action "
              "0-4; actionvector_one_per_audiofile_sum.csv sums them). At 7, 4.8% of the "
              "clip-action pairs are positive, the nearest of any threshold to the paper's random "
              "mAP of 0.045 (a random scorer's mAP is the positive rate); 25% of the clips then "
              "have no action and count as negatives for all"),
    Task("tut2017", "TUT2017", "Acoustic Scene Classification", SINGLE_LABEL, _words(
        "beach bus cafe/restaurant car city_center forest_path grocery_store home library "
        "metro_station office park residential_area train tram"),
         {"kind": "folder", "layout": "tut2017", "root": "TUT-acoustic-scenes-2017-evaluation",
          "meta": "evaluation_setup/evaluate.txt"},
         paper_rows=("TUT 2017",), provenance=_provenance(
             "TUT Acoustic Scenes 2017 evaluation set",
             "TUT 2017's 15 scenes", "paper: accuracy")),
    # Music and instruments
    Task("gtzan_music_speech", "GTZAN Music Speech", "Music Classification", SINGLE_LABEL,
         ("music", "speech"), {"kind": "tfds", "name": "gtzan_music_speech", "split": "train"},
         paper_rows=("GTZAN Music Speech",), provenance=_provenance(
             "TFDS gtzan_music_speech, its one split (all 128 clips)", "music, speech",
             "paper: accuracy")),
    Task("gtzan_genres", "GTZAN Genres", "Music Classification", SINGLE_LABEL, _words(
        "blues classical country disco hiphop jazz metal pop reggae rock"),
         {"kind": "tfds", "name": "gtzan", "split": "train"}, paper_rows=("GTZAN Genres",),
         provenance=_provenance("TFDS gtzan, its one split (all 1000 clips)", "GTZAN's 10 genres",
                                "paper: accuracy")),
    Task("beijing_opera", "Beijing Opera", "Instrument Classification", SINGLE_LABEL, _words(
        "bangu daluo naobo xiaoluo"), _hear("beijing_opera-v1.0-hear2021-full"),
         paper_rows=("Beijing Opera",),
         provenance=_provenance("HEAR beijing_opera: all 5 folds",
                                "HEAR: the 4 instrument classes", "paper: accuracy")),
    Task("mridangam_stroke", "Mridangam Stroke", "Instrument Classification", SINGLE_LABEL, _words(
        "bheem cha dheem dhin num ta tha tham thi thom"), _hear("mridangam_stroke-v1.5-full"),
         provenance=_provenance(
             "HEAR mridangam_stroke: all folds", "HEAR: 10 strokes", "accuracy"),
         note="not in the 2023 paper: a task of the 2022 paper's HEAR table"),
    Task("mridangam_tonic", "Mridangam Tonic", "Instrument Classification", SINGLE_LABEL, _words(
        "B C C# D D# E"), _hear("mridangam_tonic-v1.5-full"),
         provenance=_provenance("HEAR mridangam_tonic: all folds", "HEAR: 6 tonics", "accuracy"),
         note="not in the 2023 paper: a task of the 2022 paper's HEAR table"),
    Task("nsynth_instrument", "NS Instruments", "Instrument Classification", SINGLE_LABEL, _words(
        "bass brass flute guitar keyboard mallet organ reed string synth_lead vocal"),
         {**_NSYNTH, "label": "instrument/family"}, paper_rows=("NS Instrument family",),
         provenance=_provenance("NSynth test split (TFDS nsynth)", "NSynth's 11 instrument families",
                                "paper: accuracy")),
    Task("nsynth_pitch", "NS Pitch", "Music Classification", SINGLE_LABEL,
         tuple(_note_name(m) for m in NSYNTH_PITCHES),
         {**_NSYNTH, "label": "pitch", "outside": "drop",
          "aliases": {str(m): _note_name(m) for m in NSYNTH_PITCHES}},
         templates=("this is a sound of the musical note {}",), paper_rows=("NS Pitch",),
         provenance=_provenance(
             "HEAR nsynth_pitch: NSynth test split (TFDS nsynth), notes of MIDI 21-108 only",
             "HEAR: MIDI 21-108 (88 classes), named as notes (MIDI 60 = C4)", "paper: accuracy",
             "ours: a note's name reads as text, its MIDI number does not")),
    Task("nsynth_velocity", "NS Velocity", "Music Classification", SINGLE_LABEL, _words(
        "25 50 75 100 127"), {**_NSYNTH, "label": "velocity"},
         templates=("this is a sound of a note played with velocity {}",),
         paper_rows=("NS Velocity",), provenance=_provenance(
             "NSynth test split (TFDS nsynth)", "NSynth's 5 velocities", "paper: accuracy",
             "ours: the generic prompt names no velocity")),
    Task("nsynth_qualities", "NS Qualities", "Music Classification", MULTI_LABEL, _words(
        "bright dark distortion fast_decay long_release multiphonic nonlinear_env percussive reverb "
        "tempo-synced"), {**_NSYNTH, "label": "qualities"}, paper_rows=("NS Qualities",),
         provenance=_provenance("NSynth test split (TFDS nsynth)", "NSynth's 10 note qualities",
                                "paper: mAP")),
    # Speech
    Task("crema_d", "CREMA-D", "Speech Emotion Classification", SINGLE_LABEL, _words(
        "anger disgust fear happy neutral sad"),
         {"kind": "tfds", "name": "crema_d", "split": "train+validation+test", "aliases": {
             "ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral",
             "SAD": "sad"}},
         templates=("this person is feeling {}",), paper_rows=("CREMA-D",),
         provenance=_provenance(
             "CREMA-D, all of TFDS crema_d's splits: the authors score the k-fold sets on all folds",
             "CREMA-D's 6 emotions", "paper: accuracy", PAPER_2022)),
    Task("ravdess", "RAVDESS", "Speech Emotion Classification", SINGLE_LABEL, _words(
        "neutral calm happy sad angry fearful disgust surprised"),
         {"kind": "folder", "layout": "ravdess", "root": "RAVDESS"},
         templates=("this person is feeling {}",), paper_rows=("RAVDESS",),
         provenance=_provenance("RAVDESS audio-only speech files, all 24 actors",
                                "RAVDESS's 8 emotions", "paper: accuracy", PAPER_2022)),
    Task("speech_commands", "Speech Commands", "Keyword Spotting", SINGLE_LABEL,
         SPEECH_COMMANDS_LABELS,
         {"kind": "tfds", "name": "speech_commands", "split": "test",
          "aliases": {"_silence_": "silence", "_unknown_": "unknown"}},
         templates=("{}",), paper_rows=("Speech Commands",), provenance=_provenance(
             "HEAR speech_commands: Speech Commands v0.0.2 test split (TFDS speech_commands)",
             "HEAR: 10 words, silence and unknown (12)", "paper: accuracy",
             f"{PAPER_2022}: the bare keyword")),
    Task("libricount", "LibriCount10", "Speaker Counting", SINGLE_LABEL,
         tuple(str(n) for n in range(11)),
         {"kind": "folder", "layout": "libricount", "root": "LibriCount10-0dB", "split": "test"},
         templates=("{} persons speaking",), paper_rows=("LibriCount10",), provenance=_provenance(
             "LibriCount10-0dB (its one set, test/: 5720 clips)", "0-10 speakers",
             "paper: accuracy", PAPER_2022)),
    # Retrieval: each dataset is two of the paper's tasks (audio-to-text, text-to-audio).
    Task("audiocaps", "AudioCaps", "Retrieval", RETRIEVAL, (), _AUDIOCAPS,
         paper_rows=("AudioCaps audio-to-text", "AudioCaps text-to-audio"), provenance=_provenance(
             "AudioCaps test split (test.csv, 5 captions a clip), the clips still obtainable", "none", "paper: R@1 and mAP@10",
             NO_PROMPTS)),
    Task("clotho", "Clotho", "Retrieval", RETRIEVAL, (),
         {"kind": "folder", "layout": "clotho", "root": "clotho",
          "captions": "clotho_captions_evaluation.csv", "audio": "evaluation"},
         paper_rows=("Clotho audio-to-text", "Clotho text-to-audio"), provenance=_provenance(
             "Clotho evaluation split (5 captions a clip)", "none", "paper: R@1 and mAP@10",
             NO_PROMPTS)),
    # Captioning (clap_jax.eval.captioning): each clip's caption against its 5 references.
    Task("audiocaps_captioning", "AudioCaps", "Audio Captioning", CAPTIONING, (),
         _AUDIOCAPS, paper_rows=("AudioCaps captioning",), provenance=_provenance(
             "AudioCaps test split", "none", "paper: SPIDEr", NO_PROMPTS),
         note="the test split, as the retrieval task reads it"),
    Task("clotho_captioning", "Clotho", "Audio Captioning", CAPTIONING, (),
         {"kind": "folder", "layout": "clotho", "root": "clotho",
          "captions": "clotho_captions_evaluation.csv", "audio": "evaluation"},
         paper_rows=("Clotho captioning",), provenance=_provenance(
             "Clotho evaluation split", "none", "paper: SPIDEr", NO_PROMPTS)),
    # Not in the paper: a small real speech task whose data ships with the tests.
    Task("fsdd", "FSDD", "Keyword Spotting", SINGLE_LABEL, _DIGITS,
         {"kind": "folder", "layout": "fsdd", "root": "free-spoken-digit-dataset/recordings",
          "aliases": {str(d): name for d, name in enumerate(_DIGITS)}},
         templates=("this is a sound of someone saying {}",),
         provenance=_provenance("Free Spoken Digit Dataset, all clips", "the 10 digits", "accuracy",
                                "ours: a spoken word is said by someone"),
         note="not in the 2023 paper: its data ships with the tests"),
]

TASKS: dict[str, Task] = {task.name: task for task in _TASKS}


def get(name: str) -> Task:
  if name not in TASKS:
    raise KeyError(f"unknown task {name!r}; known: {', '.join(TASKS)}")
  return TASKS[name]


def paper_tasks(kinds: tuple[str, ...] = ZERO_SHOT) -> list[str]:
  """The paper's tasks of `kinds` (by default the zero-shot ones)."""
  return [name for name, task in TASKS.items() if task.in_paper and task.kind in kinds]
