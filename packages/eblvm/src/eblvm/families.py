"""Every model family, each declared once: its name, what it is, the data sets it
trains on, the methods it serves, the settings it reads and how its task is built.

A run's family follows from its data set and method (:attr:`Settings.family`):
``task_for(settings)``, ``eblvm list`` and the settings a run records read it from
here. A new family is one declaration::

    register_family(
        Family(
            name="mine",
            description="my model on my data",
            datasets=("my-data",),
            reads=("model.h_dim",),
            task=lambda settings: MyTask(settings),
        )
    )
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from eblvm.loop import Task
    from eblvm.methods import Method
    from eblvm.settings import Settings


def _serves_every_method(method: Method) -> bool:
    return True


@dataclass(frozen=True)
class Family:
    """One model family.

    ``datasets``: the ``data.dataset`` names it trains on; ``serves(method)``: whether
    it trains that method (several families may share data sets and serve different
    methods: the deep EBLVM and the deep EBM); ``reads``: the dotted settings it reads
    beyond those every run reads; ``posterior_reads``: those it reads only for a method
    that fits q; ``task(settings)``: its task of the training loop, its data loaded."""

    name: str
    description: str
    datasets: tuple[str, ...]
    task: Callable[[Settings], Task]
    reads: tuple[str, ...] = ()
    posterior_reads: tuple[str, ...] = ()
    serves: Callable[[Method], bool] = _serves_every_method
    served: str = "every method"


FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Declare ``family`` under its name (a name is declared once)."""
    if not isinstance(family, Family):
        raise TypeError(f"family must be an eblvm.families.Family, got {type(family).__name__}")
    if not family.name or family.name in FAMILIES:
        raise ValueError(f"family name must be new and non-empty, got {family.name!r}")
    FAMILIES[family.name] = family
    return family


def datasets() -> tuple[str, ...]:
    """Every declared family's data sets, each once."""
    return tuple(dict.fromkeys(d for family in FAMILIES.values() for d in family.datasets))


def family_of(dataset: str, method: Method) -> Family:
    """The family that trains ``method`` on ``dataset``; ValueError naming the families
    of the data set and the methods each serves when none does."""
    candidates = [f for f in FAMILIES.values() if dataset in f.datasets]
    for family in candidates:
        if family.serves(method):
            return family
    offered = "; ".join(f"{f.name} trains {f.served}" for f in candidates)
    raise ValueError(f"no model family trains method {method.name} on {dataset} ({offered})")


# ----------------------------------------------------------------- the families


def _grbm_task(settings: Settings) -> Task:
    from eblvm.grbm.task import GRBMTask

    return GRBMTask(settings)


def _image_task(settings: Settings) -> Task:
    from eblvm.images.task import ImageTask

    return ImageTask(settings)


def _custom_task(settings: Settings) -> Task:
    raise ValueError("data.dataset 'custom' is a user's data: train it with an eblvm.ModelTask")


GRBM_DATASETS = ("checkerboard", "blobs", "swiss_roll", "moons", "rings", "digits", "frey_face")
IMAGE_DATASETS = ("mnist", "fashion_mnist", "cifar10", "celeba", "digits32", "random")
CUSTOM = "custom"  # a user's data, given by an eblvm.ModelTask
_IMAGE_READS = (
    "data.data_root",
    "data.n_train",
    "data.channels",
    "data.image_size",
    "data.hflip",
    "model.base_width",
    "model.blocks_per_stage",
    "objective.sigma0",  # the denoising step of the samples
    "sampling.hold_steps",
    "sampling.anneal_steps",
    "sampling.final_steps",
    "sampling.t_max",
    "sampling.step_size",
    "fid.samples",
    "fid.stats",
    "fid.weights",
    "amp",
)

GRBM = register_family(
    Family(
        name="grbm",
        description="Gaussian-Bernoulli RBMs with a Bernoulli q; exact log Z or AIS",
        datasets=GRBM_DATASETS,
        task=_grbm_task,
        reads=(
            "data.data_root",
            "data.n_train",
            "data.columns",
            "model.h_dim",
            "model.weight_std",
            "objective.sigma",  # the test split's DSM of the exact score
            "evaluation.log_z",
            "evaluation.exact_log_z_max_h",
            "evaluation.ais_chains",
            "evaluation.ais_steps",
        ),
        posterior_reads=("posterior.temperature",),
    )
)
DEEP_EBLVM = register_family(
    Family(
        name="deep-eblvm",
        description="deep EBLVMs on images with a convolutional Gaussian q; FID",
        datasets=IMAGE_DATASETS,
        task=_image_task,
        reads=(*_IMAGE_READS, "model.h_dim", "model.posterior_width"),
        serves=lambda method: method.posterior and method.objective,
        served="score-matching methods with a posterior",
    )
)
DEEP_EBM = register_family(
    Family(
        name="deep-ebm",
        description="deep EBMs on images, trained by their exact score; FID",
        datasets=IMAGE_DATASETS,
        task=_image_task,
        reads=_IMAGE_READS,
        serves=lambda method: method.exact_score,
        served="the exact score",
    )
)
CUSTOM_FAMILY = register_family(
    Family(
        name="custom",
        description="your own energy, posterior and data, given by an eblvm.ModelTask",
        datasets=(CUSTOM,),
        task=_custom_task,
    )
)
