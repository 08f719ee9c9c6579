"""cdk-nag acknowledgements: each one names the rule and says, in the code, why it does not apply."""

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
    logical_id = stack.resolve(stack.get_logical_id(bucket.node.default_child))
    acknowledge(
        policy,
        f"AwsSolutions-IAM5[Resource::<{logical_id}.Arn>/{prefix}*]",
        f"Objects under {prefix!r} in dropq's own bucket: their keys are the files users drop, known only at run time.",
    )
