r"""Embeds a whole audio collection into an index folder that clap_jax.index / ClapEncoder.search read.

  python launch/embed.py --folder=/data/sounds --out=/data/sounds_index \
      --checkpoint=CLAP_weights_2023.pth
  python launch/embed.py --manifest=/data/clips.csv --out=/data/clips_index
  python launch/embed.py --shards='/data/shards/clotho-*.tfrecord' --out=/data/clotho_index

Run the same command again after an interruption (even kill -9): it skips every clip already
committed and embeds the rest; nothing is embedded twice or lost. Unusable files are skipped, listed
with their reason at the end and kept in the index (`clap_jax.index.load(out).bad`).
--checkpoint: whatever clap_jax.weights reads (an msclap file, a converted folder, a training
workdir, 'random'); none: the official file of --version from the hub.
Several processes: each runs this command with JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and
JAX_PROCESS_ID set (or --process_index/--process_count, no coordinator needed: processes never
communicate); each embeds its share on its own devices.
"""
from absl import app
from absl import flags

_FOLDER = flags.DEFINE_string("folder", None, "Every audio file under this folder (id: its relative path).")
_MANIFEST = flags.DEFINE_string("manifest", None, "A CSV/JSONL manifest (clap_jax.data.sources.manifest).")
_SHARDS = flags.DEFINE_string("shards", None, "A glob of launch/make_shards.py shards.")
_OUT = flags.DEFINE_string("out", None, "The index folder (created; resumed if it exists).",
                           required=True)
_VERSION = flags.DEFINE_enum("version", "2023", ["2023", "2022"], "msclap model.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Weights (see above).")
_DTYPE = flags.DEFINE_string("dtype", "float32", "Compute dtype (bfloat16 for speed).")
_LONG_AUDIO = flags.DEFINE_enum("long_audio", "windows", ["windows", "random"],
                                "A clip longer than the model's: average of windows, or one random.")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Windows per step, over this process's devices.")
_PART = flags.DEFINE_integer("part_size", 1024, "Clips per committed part (what a kill can lose).")
_WORKERS = flags.DEFINE_integer("workers", 4, "Audio decoding threads.")
_PROCESS_INDEX = flags.DEFINE_integer("process_index", None, "This process (default: JAX's).")
_PROCESS_COUNT = flags.DEFINE_integer("process_count", None, "Processes (default: JAX's).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  given = [f for f in (_FOLDER, _MANIFEST, _SHARDS) if f.value]
  if len(given) != 1:
    raise app.UsageError("give exactly one of --folder, --manifest, --shards")
  import os  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  if os.environ.get("JAX_COORDINATOR_ADDRESS"):
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize()
  from clap_jax import embed, encode  # pylint: disable=g-import-not-at-top
  from clap_jax.data import sources  # pylint: disable=g-import-not-at-top

  if _FOLDER.value:
    collection = embed.ListCollection(list(sources.folder(_FOLDER.value)))
  elif _MANIFEST.value:
    collection = embed.ListCollection(list(sources.manifest(_MANIFEST.value)))
  else:
    collection = embed.shard_collection(_SHARDS.value)
  clap = encode.load(_VERSION.value, _CHECKPOINT.value, dtype=_DTYPE.value,
                     long_audio=_LONG_AUDIO.value, seed=0)
  summary = embed.embed_collection(
      clap, collection, _OUT.value, batch_size=_BATCH.value, part_size=_PART.value,
      workers=_WORKERS.value, process_index=_PROCESS_INDEX.value,
      process_count=_PROCESS_COUNT.value)
  print(f"embedded {summary.embedded} clips ({summary.windows} windows) in {summary.seconds:.1f} s"
        f"; {summary.already_done} already done; {len(summary.bad)} unusable")
  for item_id, reason in summary.bad:
    print(f"  unusable: {item_id}: {reason}")
  if summary.bad:
    print(f"(every unusable file of the index: clap_jax.index.load({_OUT.value!r}).bad)")


if __name__ == "__main__":
  app.run(main)
