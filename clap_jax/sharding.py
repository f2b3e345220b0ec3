"""The device mesh, name-based partitioning of the train state, and the batch's sharding.

The mesh has two axes: 'data' (pure data parallelism: each slice holds the whole state) and 'fsdp'
(the state is split over it, ZeRO-3 style). The batch is split over both, so every device sees
B / num_devices examples. Parameters and optimizer state follow a list of (regex, rule) pairs from
the config, matched against names such as `params/model/audio_encoder/htsat/layers_0/...` or
`opt_state/0/mu/model/...`; the first match wins:

  'fsdp'       split the largest dimension divisible by the fsdp axis size; arrays with fewer than
               `min_size` elements (biases, norms, the temperature) stay replicated, where gathering
               them would cost more than keeping them.
  'replicate'  a full copy on every device.
"""
import re

import jax
import ml_collections
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

AXES = ("data", "fsdp")
BATCH_AXES = AXES  # the batch is split over both axes
RULES = ("fsdp", "replicate")


def make_mesh(mesh_config: ml_collections.ConfigDict, devices=None) -> jax.sharding.Mesh:
  """{'data': int, 'fsdp': int} -> Mesh over all devices of all processes; -1 means "the rest"."""
  devices = jax.devices() if devices is None else devices
  unknown = set(mesh_config) - set(AXES)
  if unknown:
    raise ValueError(f"unknown mesh axes {sorted(unknown)}: the mesh has axes {AXES}")
  sizes = [int(mesh_config.get(a, 1)) for a in AXES]
  if sizes.count(-1) > 1:
    raise ValueError(f"at most one mesh axis may be -1, got {dict(zip(AXES, sizes))}")
  known = int(np.prod([s for s in sizes if s != -1]))
  if any(s == 0 or s < -1 for s in sizes) or len(devices) % known:
    raise ValueError(f"mesh {dict(zip(AXES, sizes))} does not divide {len(devices)} devices")
  sizes = [len(devices) // known if s == -1 else s for s in sizes]
  if int(np.prod(sizes)) != len(devices):
    raise ValueError(f"mesh {dict(zip(AXES, sizes))} uses {int(np.prod(sizes))} of "
                     f"{len(devices)} devices; use -1 for 'the rest'")
  # Auto axes: XLA's partitioner places the collectives (FSDP gathers, gradient reductions).
  return jax.make_mesh(sizes, AXES, (jax.sharding.AxisType.Auto,) * len(AXES), devices=devices)


def tree_names(tree) -> list[str]:
  """'/'-joined key paths of the leaves of `tree`, in `jax.tree.leaves` order."""
  def name(path):
    return "/".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path)
  return [name(path) for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def _fsdp_spec(shape: tuple[int, ...], axis_size: int, min_size: int) -> P:
  if axis_size == 1 or int(np.prod(shape, dtype=np.int64)) < min_size:
    return P()
  for dim in sorted(range(len(shape)), key=lambda d: -shape[d]):  # largest first
    if shape[dim] % axis_size == 0:
      return P(*([None] * dim + ["fsdp"]))
  return P()  # no dimension divides: a copy is the only layout


def partition_specs(tree, rules, mesh: jax.sharding.Mesh, min_size: int):
  """A tree of PartitionSpecs for `tree` (arrays or ShapeDtypeStructs), by the first rule whose
  regex `re.search`es a leaf's name. A leaf that no rule matches is an error."""
  compiled = []
  for pattern, rule in rules:
    if rule not in RULES:
      raise ValueError(f"sharding rule {rule!r} for {pattern!r}: one of {RULES}")
    compiled.append((re.compile(pattern), rule))
  leaves, treedef = jax.tree.flatten(tree)
  specs = []
  for name, leaf in zip(tree_names(tree), leaves):
    rule = next((r for p, r in compiled if p.search(name)), None)
    if rule is None:
      raise ValueError(f"no sharding rule matches {name}; add a catch-all ('.*', ...) rule")
    shape = tuple(np.shape(leaf))
    specs.append(_fsdp_spec(shape, mesh.shape["fsdp"], min_size) if rule == "fsdp" else P())
  return jax.tree.unflatten(treedef, specs)


def shardings(tree, rules, mesh: jax.sharding.Mesh, min_size: int):
  """As `partition_specs`, as NamedShardings on `mesh`."""
  return jax.tree.map(lambda spec: NamedSharding(mesh, spec),
                      partition_specs(tree, rules, mesh, min_size),
                      is_leaf=lambda x: isinstance(x, P))


def batch_sharding(mesh: jax.sharding.Mesh) -> NamedSharding:
  """Leading (example) dimension split over every device."""
  return NamedSharding(mesh, P(BATCH_AXES))


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def local_batch_size(global_batch: int, mesh: jax.sharding.Mesh) -> int:
  """The examples this process feeds: its devices' share of the global batch."""
  devices = mesh.devices.size
  if global_batch % devices:
    raise ValueError(f"global batch {global_batch} does not split over {devices} devices")
  local = sum(d.process_index == jax.process_index() for d in mesh.devices.flat)
  return global_batch // devices * local
