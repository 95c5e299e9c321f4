"""Names in a run-history store (they are part of the API: widgets and notebooks read them).

A run is one zarr v3 group. Dimensions:

- ``epoch``: one row per finished epoch; coordinate ``epoch`` holds the epoch number (1, 2, …);
- ``snapshot``: one row per snapshot; coordinate ``snapshot_epoch`` holds the epoch it was taken at
  (0 = before training);
- ``particle``: the particles of a snapshot (fantasy particles, negative-phase states);
- ``bin`` / ``bin_edge``: energy-histogram bins and their ``bins + 1`` edges;
- ``<layer name>_unit``: the units of each layer (``visible_unit``, ``hidden_unit``, …).

Variables: ``metric_<name>`` (epoch), ``weights_<i>`` (snapshot, <layer i>_unit, <layer i+1>_unit),
``<layer name>_<parameter>`` (snapshot, <layer>_unit) for layer parameters such as ``visible_bias``,
``fantasy`` (snapshot, particle, visible_unit), ``fantasy_<layer name>`` (snapshot, particle,
<layer>_unit) for the other layers, ``negative_phase`` (snapshot, particle, visible_unit),
``energy_hist_data`` and ``energy_hist_fantasy`` (snapshot, bin), coordinate ``bin_edges``
(snapshot, bin_edge).

Particles are what their names say. ``fantasy`` always holds **true fantasy particles**: samples
of the model alone, from block-Gibbs chains the recorder keeps for itself (independent of the
training data and of the method), ``fantasy_<layer>`` their other layers. ``negative_phase``
holds the method's negative-phase states at the snapshot, whose ``kind`` attribute names them:
``"reconstructions"`` for CD (k Gibbs sweeps from the data batch: they look like data because
they start there, not because the model generates such samples), ``"persistent chains"`` for
PCD, ``"persistent chains (β = 1 replica)"`` for PT, ``"TAP magnetizations"`` for TAP; it is
absent for a method that keeps none. ``energy_hist_fantasy`` histograms the fantasy particles.
Stores written before format version 2 held the method's negative phase under ``fantasy``.
"""

from __future__ import annotations

FORMAT = "ebmlab.history"
FORMAT_VERSION = 2

# dimensions
EPOCH = "epoch"
SNAPSHOT = "snapshot"
PARTICLE = "particle"
BIN = "bin"
BIN_EDGE = "bin_edge"
RUN = "run"

# variables and coordinates
METRIC_PREFIX = "metric_"
WEIGHTS_PREFIX = "weights_"
SNAPSHOT_EPOCH = "snapshot_epoch"
FANTASY = "fantasy"
NEGATIVE = "negative_phase"
ENERGY_HIST_DATA = "energy_hist_data"
ENERGY_HIST_FANTASY = "energy_hist_fantasy"
BIN_EDGES = "bin_edges"
COORDINATES = (EPOCH, SNAPSHOT_EPOCH, BIN_EDGES)

# attributes
SPEC = "spec"
METHOD = "method"
OPTIMIZER = "optimizer"
SCHEDULER = "scheduler"
TRAINER = "trainer"
SEED = "seed"
DATASET = "dataset"
IMAGE_SHAPE = "image_shape"
NORMALIZATION = "normalization"
VERSIONS = "versions"
RECORDER = "recorder"
KIND = "kind"  # attribute of a particle variable: what its particles are
FANTASY_KIND = "fantasy particles"
STATUS = "status"
EPOCHS_DONE = "epochs_done"
SNAPSHOTS_DONE = "snapshots_done"
VARIABLES = "variables"
FORMAT_ATTR = "format"
FORMAT_VERSION_ATTR = "format_version"
ALL_CHUNKS = "all_chunks_written"  # True: every chunk of a committed row is on disk (a missing one is damage)
JSON_ATTRS = (SPEC, METHOD, OPTIMIZER, SCHEDULER, TRAINER, VERSIONS, RECORDER, VARIABLES)

# values of the status attribute: "running" while training (or after the process was killed)
RUNNING = "running"
FINISHED = "finished"
STOPPED = "stopped"
FAILED = "failed"
ERROR = "error"


def unit_dim(layer_name: str) -> str:
    """Dimension of the units of the layer called ``layer_name``: ``<name>_unit``."""
    return f"{layer_name}_unit"


def metric_var(name: str) -> str:
    """Variable holding metric ``name`` per epoch: ``metric_<name>`` ('/' and spaces become '_')."""
    return METRIC_PREFIX + name.replace("/", "_").replace(" ", "_")


def fantasy_var(layer_name: str) -> str:
    """Variable holding the fantasy chains' states of a layer other than the visible one: ``fantasy_<name>``."""
    return f"{FANTASY}_{layer_name}"


def weights_var(i: int) -> str:
    """Variable holding snapshots of W_{i+1}, which joins layers i and i+1: ``weights_<i>``."""
    return f"{WEIGHTS_PREFIX}{i}"


def param_var(layer_name: str, param: str) -> str:
    """Variable holding snapshots of a layer parameter: ``<layer name>_<parameter>``."""
    return f"{layer_name}_{param}"
