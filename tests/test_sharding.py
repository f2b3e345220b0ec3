"""Mesh construction, name-based partitioning rules and the batch's share per process."""
import jax
import jax.numpy as jnp
import ml_collections
import pytest
from jax.sharding import PartitionSpec as P

from clap_jax import sharding

MESH_2x4 = jax.sharding.AbstractMesh((2, 4), ("data", "fsdp"))


def _mesh(**axes):
  return ml_collections.ConfigDict(axes)


def test_mesh_rest_of_devices():
  mesh = sharding.make_mesh(_mesh(data=1, fsdp=-1))
  assert dict(mesh.shape) == {"data": 1, "fsdp": len(jax.devices())}
  assert all(t == jax.sharding.AxisType.Auto for t in mesh.axis_types)


@pytest.mark.parametrize("axes, match", [
    (dict(data=-1, fsdp=-1), "at most one"),
    (dict(data=3, fsdp=1), "does not divide"),
    (dict(data=1, fsdp=1, model=2), "unknown mesh axes"),
    (dict(data=0, fsdp=-1), "does not divide"),
])
def test_mesh_errors(axes, match):
  devices = [object()] * 8  # only counted before the error
  with pytest.raises(ValueError, match=match):
    sharding.make_mesh(_mesh(**axes), devices=devices)


def test_rules_first_match_fsdp_and_replicate():
  tree = {"params": {"model": {
      "audio_encoder": {"kernel": jnp.zeros((96, 384)), "bias": jnp.zeros((384,))},
      "caption_encoder": {"wte": jnp.zeros((50257, 64)), "odd": jnp.zeros((7, 9))},
      "logit_scale": jnp.zeros(())}}, "step": jnp.zeros((), jnp.int32)}
  rules = (("caption_encoder/wte", "replicate"), (".*", "fsdp"))
  specs = sharding.partition_specs(tree, rules, MESH_2x4, min_size=100)
  model = specs["params"]["model"]
  assert model["audio_encoder"]["kernel"] == P(None, "fsdp")  # largest divisible dimension
  assert model["audio_encoder"]["bias"] == P("fsdp")
  assert model["caption_encoder"]["wte"] == P()  # the earlier rule wins
  assert model["caption_encoder"]["odd"] == P()  # no dimension divides by 4
  assert model["logit_scale"] == P() and specs["step"] == P()  # below min_size


def test_min_size_keeps_small_arrays_whole():
  tree = {"bias": jnp.zeros((384,)), "kernel": jnp.zeros((96, 384))}
  specs = sharding.partition_specs(tree, ((".*", "fsdp"),), MESH_2x4, min_size=1000)
  assert specs == {"bias": P(), "kernel": P(None, "fsdp")}


def test_optimizer_state_names_match_the_same_rules():
  tree = {"opt_state": ({"mu": {"model": {"w": jnp.zeros((8, 4))}}},)}
  assert sharding.tree_names(tree) == ["opt_state/0/mu/model/w"]
  specs = sharding.partition_specs(tree, (("model/w$", "fsdp"),), MESH_2x4, min_size=0)
  assert specs["opt_state"][0]["mu"]["model"]["w"] == P("fsdp")


def test_rule_errors():
  tree = {"w": jnp.zeros((4, 4))}
  with pytest.raises(ValueError, match="no sharding rule matches w"):
    sharding.partition_specs(tree, (("^x$", "fsdp"),), MESH_2x4, min_size=0)
  with pytest.raises(ValueError, match="one of"):
    sharding.partition_specs(tree, ((".*", "tensor"),), MESH_2x4, min_size=0)


def test_local_batch_size():
  mesh = sharding.make_mesh(_mesh(data=-1, fsdp=1))
  n = len(jax.devices())
  assert sharding.local_batch_size(8 * n, mesh) == 8 * n  # one process feeds every device
