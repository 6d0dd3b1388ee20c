"""mora: the data loop of the Mora paper (agents, dataset rounds, judges, review, shards, fine-tuning)."""

import os

# OpenMP (torch's CPU threads) spins after every parallel region unless told otherwise. A round shares its
# machine with its own Prefect server, judge servers and Ray workers, often with other work too: beside two
# busy processes on 2 cores the spinning made a tiny round's sets 2.7x slower; idle, sleeping costs up to
# ~13 % (bench/busy_machine.py, README "Scaling out"). Set here, before anything in the package imports
# torch; a value of the user's wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
