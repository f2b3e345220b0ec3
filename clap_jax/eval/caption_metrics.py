"""Caption metrics with pycocoevalcap, the COCO caption toolkit that DCASE's audio-captioning
evaluation is built on: BLEU-4, METEOR, ROUGE-L, CIDEr-D, SPICE and SPIDEr = (CIDEr-D + SPICE) / 2.

    metrics, missing = score({"clip": "a dog barks"}, {"clip": ["a dog is barking", ...]})

As the toolkit's COCOEvalCap: every caption is PTB-tokenised first (lower case, punctuation
dropped), BLEU is the corpus BLEU with the closest reference length, and CIDEr is its CIDEr-D
(clipped counts, Gaussian length penalty, document frequencies from the scored references).

What runs where: the tokenizer, METEOR and SPICE are Java programs whose jars the package ships;
Java itself is Debian's default-jre-headless. SPICE also needs Stanford CoreNLP 3.6.0, which the
package does not ship but downloads from nlp.stanford.edu on first use. A metric that cannot run
is not computed: `missing` names it with the reason, and SPIDEr is never given without SPICE.
"""
import contextlib
import importlib.util
import io
import pathlib
import shutil
from collections.abc import Mapping, Sequence

METRICS = ("SPIDEr", "CIDEr-D", "SPICE", "BLEU-4", "METEOR", "ROUGE-L")
_JAVA = "java"


def unavailable() -> dict[str, str]:
  """Metric -> why it cannot be computed on this machine (empty when all can)."""
  if importlib.util.find_spec("pycocoevalcap") is None:
    return {m: "needs pycocoevalcap (pip install pycocoevalcap)" for m in METRICS}
  if shutil.which(_JAVA) is None:
    # The PTB tokenizer every metric starts from is Java, so nothing can be scored as the
    # toolkit scores it.
    return {m: "needs Java for the toolkit's PTB tokenizer (Debian: default-jre-headless)"
            for m in METRICS}
  lib = pathlib.Path(importlib.util.find_spec("pycocoevalcap.spice.spice").origin).parent / "lib"
  jars = [lib / "stanford-corenlp-3.6.0.jar", lib / "stanford-corenlp-3.6.0-models.jar"]
  absent = [j.name for j in jars if not j.is_file()]
  if absent:
    why = (f"SPICE needs Stanford CoreNLP 3.6.0 ({' and '.join(absent)} in {lib}), which "
           "pycocoevalcap downloads from nlp.stanford.edu on first use and does not ship")
    return {"SPICE": why, "SPIDEr": "needs SPICE: " + why}
  return {}


def score(candidates: Mapping[str, str], references: Mapping[str, Sequence[str]]
          ) -> tuple[dict[str, float], dict[str, str]]:
  """One candidate and its references per clip id -> ({metric: value}, {metric: why missing})."""
  if set(candidates) != set(references):
    raise ValueError(f"candidates and references name different clips: "
                     f"{sorted(set(candidates) ^ set(references))[:5]}")
  empty = [k for k, refs in references.items() if not refs]
  if not candidates or empty:
    raise ValueError(f"every clip needs a candidate and references; without references: {empty[:5]}")
  missing = unavailable()
  if set(missing) == set(METRICS):
    return {}, missing
  from pycocoevalcap.bleu.bleu import Bleu  # pylint: disable=g-import-not-at-top
  from pycocoevalcap.cider.cider import Cider  # pylint: disable=g-import-not-at-top
  from pycocoevalcap.meteor.meteor import Meteor  # pylint: disable=g-import-not-at-top
  from pycocoevalcap.rouge.rouge import Rouge  # pylint: disable=g-import-not-at-top
  from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer  # pylint: disable=g-import-not-at-top
  tokenizer = PTBTokenizer()
  res = tokenizer.tokenize({k: [{"caption": c}] for k, c in candidates.items()})
  gts = tokenizer.tokenize({k: [{"caption": r} for r in refs] for k, refs in references.items()})
  with contextlib.redirect_stdout(io.StringIO()):  # BLEU prints its n-gram counts
    values = {"BLEU-4": Bleu(4).compute_score(gts, res, verbose=0)[0][3]}
  values["METEOR"] = Meteor().compute_score(gts, res)[0]
  values["ROUGE-L"] = Rouge().compute_score(gts, res)[0]
  values["CIDEr-D"] = Cider().compute_score(gts, res)[0]
  if "SPICE" not in missing:
    from pycocoevalcap.spice.spice import Spice  # pylint: disable=g-import-not-at-top
    values["SPICE"] = Spice().compute_score(gts, res)[0]
    values["SPIDEr"] = (values["CIDEr-D"] + values["SPICE"]) / 2
  return {m: float(values[m]) for m in METRICS if m in values}, missing
