"""The zero-shot task registry: per task its labels, prompt templates, metric and data source.

The tasks of Elizalde, Deshmukh & Wang 2023 (Table 2, zero-shot), assembled from the paper and the
datasets' own documentation. Where we were unsure, the task's `note` says so and the report prints
it. A task's `source` is where its data is looked for by default (paths relative to the config's
`data_dir`); the config may override any field of it (clap_jax/eval/sources.py reads it).
"""
import dataclasses
from collections.abc import Mapping

from clap_jax import text

SINGLE_LABEL = "single_label"  # metric: top-1 (and top-5) accuracy
MULTI_LABEL = "multi_label"  # metric: macro mAP
RETRIEVAL = "retrieval"  # metric: R@1/5/10, mAP@10, audio-to-text and text-to-audio

DEFAULT_TEMPLATES = (text.DEFAULT_TEMPLATE,)


@dataclasses.dataclass(frozen=True)
class Task:
  name: str  # registry key, config key, results.json key
  title: str  # column header in the markdown table
  group: str  # the paper's task family
  kind: str  # SINGLE_LABEL | MULTI_LABEL | RETRIEVAL
  labels: tuple[str, ...]  # canonical class names, in index order; empty for retrieval
  source: Mapping  # default data source: {'kind': 'folder' | 'tfds' | 'shards', ...}
  templates: tuple[str, ...] = DEFAULT_TEMPLATES  # several -> prompt ensembling
  in_paper: bool = True
  note: str = ""

  def __post_init__(self):
    if self.kind not in (SINGLE_LABEL, MULTI_LABEL, RETRIEVAL):
      raise ValueError(f"{self.name}: unknown task kind {self.kind!r}")
    if (self.kind == RETRIEVAL) != (not self.labels):
      raise ValueError(f"{self.name}: retrieval tasks have no labels, classification tasks need them")
    if len(set(self.labels)) != len(self.labels):
      raise ValueError(f"{self.name}: duplicate labels")
    for template in self.templates:
      if template.count("{}") != 1:
        raise ValueError(f"{self.name}: template {template!r} needs exactly one '{{}}'")

  def prompts(self) -> list[list[str]]:
    """[class][template] prompt texts; '_' in a label reads as a space."""
    return [[t.format(label.replace("_", " ")) for t in self.templates] for label in self.labels]


def _words(text: str) -> tuple[str, ...]:
  return tuple(text.split())


def _shards(name: str) -> dict:
  """Tasks without a public download or TFDS builder are read from launch/make_shards.py output."""
  return {"kind": "shards", "pattern": f"shards/{name}/*.tfrecord"}


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

_TASKS = [
    # Sound event classification
    Task("esc50", "ESC50", "Sound Event Classification", SINGLE_LABEL, ESC50_LABELS,
         {"kind": "folder", "layout": "esc50", "root": "ESC-50-master", "meta": "meta/esc50.csv"}),
    Task("fsd50k", "FSD50K", "Sound Event Classification", MULTI_LABEL, FSD50K_LABELS,
         {"kind": "folder", "layout": "fsd50k", "root": "FSD50K", "split": "eval"}),
    Task("urbansound8k", "US8K", "Sound Event Classification", SINGLE_LABEL, _words(
        "air_conditioner car_horn children_playing dog_bark drilling engine_idling gun_shot jackhammer "
        "siren street_music"), {"kind": "folder", "layout": "urbansound8k", "root": "UrbanSound8K"}),
    Task("dcase17_task4", "DCASE17 T4", "Sound Event Classification", MULTI_LABEL, (
        "Train horn", "Air horn, truck horn", "Car alarm", "Reversing beeps", "Ambulance (siren)",
        "Police car (siren)", "Fire engine, fire truck (siren)", "Civil defense siren", "Screaming",
        "Bicycle", "Skateboard", "Car", "Car passing by", "Bus", "Truck", "Motorcycle", "Train"),
         _shards("dcase17_task4"),
         note="metric unsure: scored here as multi-label mAP over the 17 weak labels"),
    # Vocal sound, surveillance, action, scene
    Task("vocalsound", "Vocal Sound", "Vocal Sound Classification", SINGLE_LABEL, _words(
        "laughter sigh cough throat_clearing sneeze sniff"), _shards("vocalsound")),
    Task("sesa", "SESA", "Surveillance Sound Classification", SINGLE_LABEL, _words(
        "casual gunshot explosion alarm_siren"), _shards("sesa"),
         note="'casual' is SESA's 'casual (not a threat)'"),
    Task("esc50_actions", "ESC50 Actions", "Action Recognition", SINGLE_LABEL, _words(
        "crying_baby sneezing clapping breathing coughing footsteps laughing brushing_teeth snoring "
        "drinking_sipping"), _shards("esc50_actions"),
         note="label set unsure: taken as ESC-50's 'human, non-speech sounds' group"),
    Task("tut2017", "TUT2017", "Acoustic Scene Classification", SINGLE_LABEL, _words(
        "beach bus cafe/restaurant car city_center forest_path grocery_store home library "
        "metro_station office park residential_area train tram"), _shards("tut2017")),
    # Music and instruments
    Task("gtzan_music_speech", "GTZAN Music Speech", "Music Classification", SINGLE_LABEL,
         ("music", "speech"), {"kind": "tfds", "name": "gtzan_music_speech", "split": "train"}),
    Task("gtzan_genres", "GTZAN Genres", "Music Classification", SINGLE_LABEL, _words(
        "blues classical country disco hiphop jazz metal pop reggae rock"),
         {"kind": "tfds", "name": "gtzan", "split": "train"}),
    Task("beijing_opera", "Beijing Opera", "Instrument Classification", SINGLE_LABEL, _words(
        "bangu daluo naobo xiaoluo"), _shards("beijing_opera")),
    Task("mridangam_stroke", "Mridangam Stroke", "Instrument Classification", SINGLE_LABEL, _words(
        "bheem cha dheem dhin num ta tha tham thi thom"), _shards("mridangam_stroke")),
    Task("mridangam_tonic", "Mridangam Tonic", "Instrument Classification", SINGLE_LABEL, _words(
        "B C C# D D# E"), _shards("mridangam_tonic")),
    Task("nsynth_instrument", "NS Instruments", "Instrument Classification", SINGLE_LABEL, _words(
        "bass brass flute guitar keyboard mallet organ reed string synth_lead vocal"),
         {**_NSYNTH, "label": "instrument/family"}),
    Task("nsynth_pitch", "NS Pitch", "Instrument Classification", SINGLE_LABEL,
         tuple(_note_name(m) for m in range(128)),
         {**_NSYNTH, "label": "pitch", "aliases": {str(m): _note_name(m) for m in range(128)}},
         templates=("this is a sound of the musical note {}",),
         note="class set unsure: all 128 MIDI pitches, named as notes"),
    Task("nsynth_velocity", "NS Velocity", "Instrument Classification", SINGLE_LABEL, _words(
        "25 50 75 100 127"), {**_NSYNTH, "label": "velocity"},
         templates=("this is a sound of a note played with velocity {}",)),
    Task("nsynth_qualities", "NS Qualities", "Instrument Classification", MULTI_LABEL, _words(
        "bright dark distortion fast_decay long_release multiphonic nonlinear_env percussive reverb "
        "tempo-synced"), {**_NSYNTH, "label": "qualities"}),
    # Speech
    Task("crema_d", "CREMA-D", "Emotion Recognition", SINGLE_LABEL, _words(
        "anger disgust fear happy neutral sad"),
         {"kind": "tfds", "name": "crema_d", "split": "test", "aliases": {
             "ANG": "anger", "DIS": "disgust", "FEA": "fear", "HAP": "happy", "NEU": "neutral",
             "SAD": "sad"}}),
    Task("ravdess", "RAVDESS", "Emotion Recognition", SINGLE_LABEL, _words(
        "neutral calm happy sad angry fearful disgust surprised"), _shards("ravdess")),
    Task("speech_commands", "Speech Commands", "Keyword Spotting", SINGLE_LABEL, _words(
        "backward bed bird cat dog down eight five follow forward four go happy house learn left marvin "
        "nine no off on one right seven sheila six stop three tree two up visual wow yes zero"),
         _shards("speech_commands"), note="class set unsure: the 35 words of Speech Commands v2"),
    Task("libricount", "LibriCount10", "Speaker Counting", SINGLE_LABEL,
         tuple(str(n) for n in range(11)), _shards("libricount"),
         templates=("this is a sound of {} people speaking",)),
    # Retrieval
    Task("audiocaps", "AudioCaps", "Retrieval", RETRIEVAL, (), _shards("audiocaps")),
    Task("clotho", "Clotho", "Retrieval", RETRIEVAL, (),
         {"kind": "folder", "layout": "clotho", "root": "clotho",
          "captions": "clotho_captions_evaluation.csv", "audio": "evaluation"}),
    # Not in the paper: a small real speech task whose data ships with the tests.
    Task("fsdd", "FSDD", "Keyword Spotting", SINGLE_LABEL, _DIGITS,
         {"kind": "folder", "layout": "fsdd", "root": "free-spoken-digit-dataset/recordings",
          "aliases": {str(d): name for d, name in enumerate(_DIGITS)}},
         templates=("this is a sound of someone saying {}",), in_paper=False),
]

TASKS: dict[str, Task] = {task.name: task for task in _TASKS}


def get(name: str) -> Task:
  if name not in TASKS:
    raise KeyError(f"unknown task {name!r}; known: {', '.join(TASKS)}")
  return TASKS[name]


def paper_tasks() -> list[str]:
  return [name for name, task in TASKS.items() if task.in_paper]
