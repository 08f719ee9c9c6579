"""What the template's two scanners report and dropq accepts: cdk-nag's rules at synthesis, checkov's checks on the
template (make test runs it); each acknowledgement names the rule or check and says, in the code, why it does not apply."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_s3 as s3
from constructs import IConstruct

# An acknowledgement says why the rule does not apply, in a sentence.
MIN_REASON_WORDS = 5


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    """Accept one cdk-nag finding (`AwsSolutions-XX` or `AwsSolutions-XX[finding]`) on `construct`, for `reason`."""
    if len(reason.split()) < MIN_REASON_WORDS:
        raise ValueError(f"acknowledging {rule} needs a reason a reviewer can check, not {reason!r}")
    cdk.Validations.of(construct).acknowledge(cdk.Acknowledgment(id=rule, reason=reason))


def acknowledge_objects(policy: IConstruct, bucket: s3.IBucket, prefix: str) -> None:
    """Accept a policy's grant on `<bucket>/<prefix>*`: object keys under a prefix are only known at run time."""
    stack = cdk.Stack.of(bucket)
    resource = bucket.node.default_child
    if isinstance(resource, s3.CfnBucket):
        arn = f"<{stack.resolve(stack.get_logical_id(resource))}.Arn>"
        whose = "dropq's own bucket"
    else:
        # An imported bucket (`-c bucket=NAME`): cdk-nag names its ARN as synthesized, the partition a pseudo parameter
        # unless the stack's region is known.
        partition = "<AWS::Partition>" if cdk.Token.is_unresolved(stack.partition) else stack.partition
        arn = f"arn:{partition}:s3:::{bucket.bucket_name}"
        whose = f"the bucket {bucket.bucket_name!r} dropq was given"
    acknowledge(
        policy,
        f"AwsSolutions-IAM5[Resource::{arn}/{prefix}*]",
        f"Objects under {prefix!r} in {whose}: their keys are the files users drop, known only at run time.",
    )


def acknowledge_check(construct: IConstruct, check: str, reason: str) -> None:
    """Accept one checkov finding (`CKV_AWS_NN`) on `construct`'s CloudFormation resource, for `reason`: checkov reads
    `Metadata.checkov.skip` on the resource."""
    if len(reason.split()) < MIN_REASON_WORDS:
        raise ValueError(f"acknowledging {check} needs a reason a reviewer can check, not {reason!r}")
    resource = construct if isinstance(construct, cdk.CfnResource) else construct.node.default_child
    if not isinstance(resource, cdk.CfnResource):
        raise TypeError(f"{construct.node.path} has no CloudFormation resource of its own to acknowledge {check} on")
    skips = [*(resource.get_metadata("checkov") or {}).get("skip", []), {"id": check, "comment": reason}]
    resource.add_metadata("checkov", {"skip": skips})
