"""Run-time side of steps: what operators do, testable without a scheduler."""
