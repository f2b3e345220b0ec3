"""`Item`: one recording, as every source yields it to the shard writer and to the evaluator."""
import dataclasses

import numpy as np

from clap_jax import audio as audio_lib


@dataclasses.dataclass(frozen=True)
class Item:
  """`item_id` names the clip in messages, plans and results and is stable across runs. `audio`: a
  file path, or waveform pieces at `rate` (a long clip stored as windows is several pieces; the
  evaluator averages all their windows into one embedding). `labels`: class indices."""
  item_id: str
  audio: str | tuple[np.ndarray, ...]
  rate: int | None = None
  captions: tuple[str, ...] = ()
  labels: tuple[int, ...] = ()
  task: str = ""

  def windows(self, sample_rate: int, clip_samples: int, long_mode: str,
              rng: np.random.Generator) -> list[np.ndarray]:
    """Its audio (a path, or pieces at `rate`) read through the audio contract at `sample_rate`
    and cut into `audio.Audio.windows`, decoded block by block; an unusable one raises
    audio.AudioError naming it (a damaged file fails while decoding)."""
    pieces = ([audio_lib.open_audio(self.audio, sample_rate)] if isinstance(self.audio, str)
              else [audio_lib.open_audio(p, sample_rate, rate=self.rate, name=self.item_id)
                    for p in self.audio])
    return [w for p in pieces for w in p.windows(clip_samples, long_mode, rng)]
