"""The stack writes every output `dropq --stack NAME` reads, from the resources they name."""

from __future__ import annotations

from dropq.deployment import BUCKET_OUTPUT, CLUSTER_OUTPUT, PREFIX_OUTPUT, service_output
from tests.stack.conftest import Synthesized


def test_the_outputs_the_cli_reads_name_the_bucket_cluster_and_each_pools_service(synthesized: Synthesized) -> None:
    outputs = {key: output["Value"] for key, output in synthesized.template.to_json()["Outputs"].items()}
    (bucket,) = [k for k in synthesized.of_type("AWS::S3::Bucket") if k.startswith("StorageBucket")]
    (cluster,) = synthesized.of_type("AWS::ECS::Cluster")
    assert outputs[BUCKET_OUTPUT] == {"Ref": bucket}
    assert outputs[CLUSTER_OUTPUT] == {"Ref": cluster}
    assert outputs[PREFIX_OUTPUT] == f"{synthesized.stack.stack_name}-"
    services = synthesized.of_type("AWS::ECS::Service")
    for pool in synthesized.stack.settings.topology.pools:
        (service,) = [k for k in services if k.startswith(f"Pool{pool.name}")]
        assert outputs[service_output(pool.name)] == {"Fn::GetAtt": [service, "Name"]}
