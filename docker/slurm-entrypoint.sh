#!/bin/sh
# Start the one-node cluster (munged, slurmctld, slurmd; state in /var/lib/overparam-slurm), then run the
# command with SLURM_CONF pointing at it: sinfo, sbatch and `python train.py -m hydra/launcher=slurm ...`.
set -e
eval "$(python /opt/overparam/local_slurm.py start /var/lib/overparam-slurm)"
export SLURM_CONF
exec "$@"
