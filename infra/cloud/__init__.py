"""The AWS deployment: a CDK app (`cdk synth`, `cdk deploy`) built from the same topology as the local cloud."""
