"""Executors run a split run's job plan (`splitlm.train.jobs`): `local` (this machine, `--parallel N`
processes) or `ray` (one Ray task per job, anywhere on a Ray cluster). `schedule.run_plan` is the one
loop both use: it starts every job whose inputs exist, so branches start while pretraining goes on."""
