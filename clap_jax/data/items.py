"""`Item`: one recording, as every source yields it to the shard writer and to the evaluator."""
import dataclasses

import numpy as np


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
