"""The cluster launcher files validate against Ray's own schema and advertise what our
placement uses: GPUs and `gpu_node` on workers, `cpu_node` on the head."""

import json
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())


@pytest.mark.parametrize("name", ["ray_cluster.yaml", "launch/ray_cluster_aws.yaml"])
def test_cluster_file_matches_rays_launcher_schema(name):
    config = yaml.safe_load((ROOT / name).read_text())
    jsonschema.validate(config, SCHEMA)
    setup = " ".join(config["setup_commands"])
    assert "make -C ~/serket-ray setup" in setup  # installs this project on every node


def test_local_cluster_has_a_cpu_head_and_gpu_workers():
    config = yaml.safe_load((ROOT / "ray_cluster.yaml").read_text())
    assert config["provider"]["type"] == "local"
    head = " ".join(config["head_start_ray_commands"])
    workers = " ".join(config["worker_start_ray_commands"])
    assert "--num-gpus=0" in head and '"cpu_node": 1' in head
    assert '"gpu_node": 1' in workers
    assert config["provider"]["head_ip"].startswith("<")  # placeholders, clearly marked


def test_cloud_cluster_node_types_carry_our_resources():
    config = yaml.safe_load((ROOT / "launch/ray_cluster_aws.yaml").read_text())
    types = config["available_node_types"]
    head = types[config["head_node_type"]]["resources"]
    assert head["GPU"] == 0 and head["cpu_node"] == 1
    workers = [t["resources"] for name, t in types.items() if name != config["head_node_type"]]
    assert any(r["GPU"] >= 1 and r["gpu_node"] == 1 for r in workers)
