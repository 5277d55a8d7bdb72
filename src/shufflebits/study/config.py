"""The study's one configuration: a frozen tree built once, validated once, recorded in ``results.json``.

Both CLI commands (``study``, ``attack``) and the Python API build a
``StudyConfig``; the stages read named fields of it (``profile.epochs``,
``seeds.training``), and only those fields enter their cache keys. Every
object in the tree is a frozen dataclass, so no stage can change what another
one reads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ShuffleBitsError
from .profiles import Profile, get_profile

DATASETS = ("market1501", "dukemtmc")
ATTRIBUTE_FILES = {"market1501": "market_attribute.mat", "dukemtmc": "duke_attribute.mat"}
ONNX_PREFIX = "onnx:"
# The keyword names of ``StudyConfig.from_profile``: refusals name these (the CLI spells them as flags).
PARAMETERS = (
    "profile",
    "victim",
    "weights",
    "pretrained",
    "train_victim",
    "dataset",
    "root",
    "attributes",
    "device",
    "via_http",
    "seed",
    "progress",
    "transfer",
)


class ConfigError(ShuffleBitsError):
    """A refused study input, on one line.

    ``template`` names parameters as ``{root}``: the message says ``root=``,
    ``worded({"root": "--root"})`` says it as the command line does.
    """

    def __init__(self, template: str, **values: object):
        self.template, self.values = template, values
        super().__init__(self.worded({}))

    def worded(self, names: Mapping[str, str]) -> str:
        spelled = {name: names.get(name, f"{name}=") for name in PARAMETERS}
        return self.template.format(**spelled, **self.values)


def study_seeds(seed: int) -> dict[str, int]:
    """Every seed a run uses, derived from the one the user gives (recorded in the report)."""
    return {
        "seed": seed,
        "victim_world": 2 * seed + 1,  # the MSMT17 stand-in
        "user_world": 2 * seed + 2,  # the Market-1501 stand-in, disjoint from the victim's
        "training": seed,
        "attacks": seed,
    }


def _absolute(path: str | Path | None) -> str | None:
    """Paths are kept absolute, so a cache key does not depend on the working folder."""
    return None if path is None else str(Path(path).resolve())


@dataclass(frozen=True)
class VictimConfig:
    """The victim: a zoo victim (``pretrained``), a registry model with ``weights``, ``onnx:PATH``, or trained here.

    Exactly one source: with neither ``pretrained``, ``weights`` nor an ONNX
    model, the study trains ``model`` on the victim world.
    """

    model: str
    weights: str | None = None
    pretrained: str | None = None  # a victim-zoo entry (``shufflebits.models.zoo``)
    untrained_zoo: str | None = None  # the profile's zoo victim, not installed yet, so one is trained in the run

    @property
    def onnx(self) -> str | None:
        """The ONNX file of an ``onnx:PATH`` victim, else ``None``."""
        return self.model[len(ONNX_PREFIX) :] if self.model.startswith(ONNX_PREFIX) else None

    @property
    def zoo_weights(self) -> str | None:
        """The zoo victim's weights file (its bytes enter the cache key), else ``None``."""
        if self.pretrained is None:
            return None
        from ..models.zoo import zoo_entry

        return str(zoo_entry(self.pretrained).weights_path)

    @property
    def trained_here(self) -> bool:
        """Whether the study trains the victim (no zoo victim, weights file or ONNX model given)."""
        return self.onnx is None and self.weights is None and self.pretrained is None

    def validate(self) -> None:
        if self.pretrained is not None:
            from ..models.zoo import read_card, zoo_entry

            if self.weights is not None or self.onnx is not None:
                raise ConfigError("a zoo victim carries its weights; drop {weights} or {pretrained}")
            entry = zoo_entry(self.pretrained)
            if entry.model != self.model:
                raise ConfigError(
                    "zoo victim {name} is a {kind}, not {model}", name=entry.name, kind=entry.model, model=self.model
                )
            read_card(self.pretrained)  # refuses a missing or unreadable card now, not after the worlds
        if self.onnx is not None:
            if self.weights is not None:
                raise ConfigError("an ONNX victim carries its weights; drop {weights}")
            if not Path(self.onnx).is_file():
                raise ConfigError("ONNX file {path} does not exist", path=self.onnx)
        if self.weights is not None and not Path(self.weights).is_file():
            raise ConfigError("weights file {path} does not exist", path=self.weights)


def _default_attribute_file(dataset: str, root: Path) -> str:
    """The dataset's attribute ``.mat`` file, inside or beside its folder."""
    name = ATTRIBUTE_FILES[dataset]
    for path in (root / name, root.parent / name):
        if path.is_file():
            return str(path)
    raise ConfigError(
        "no {file} in {folder} or {parent}; give it with {attributes}", file=name, folder=root, parent=root.parent
    )


@dataclass(frozen=True)
class DataConfig:
    """The attacker/user images: the synthetic world (``dataset=None``) or a real dataset folder."""

    dataset: str | None = None
    root: str | None = None
    attributes: str | None = None  # the attribute ``.mat`` file; None: the dataset's, inside or beside ``root``

    @property
    def attribute_file(self) -> str | None:
        """The attribute file a real dataset is labelled by (found when not given); ``None`` for the synthetic world."""
        if self.dataset is None:
            return None
        return (
            self.attributes if self.attributes is not None else _default_attribute_file(self.dataset, Path(self.root))
        )

    def validate(self) -> None:
        if self.dataset is None:
            if self.root is not None or self.attributes is not None:
                raise ConfigError("{root} and {attributes} need {dataset} ({choices})", choices=" or ".join(DATASETS))
            return
        if self.dataset not in DATASETS:
            raise ConfigError(
                "unknown dataset {name!r}; choose one of {choices}", name=self.dataset, choices=", ".join(DATASETS)
            )
        if self.root is None:
            raise ConfigError("dataset {name!r} needs {root} (the dataset folder)", name=self.dataset)
        if not Path(self.root).is_dir():
            raise ConfigError("dataset folder {path} does not exist", path=self.root)
        if self.attributes is None:
            _default_attribute_file(self.dataset, Path(self.root))  # refuses now, not minutes later
        elif not Path(self.attributes).is_file():
            raise ConfigError("attribute file {path} does not exist", path=self.attributes)


@dataclass(frozen=True)
class StudyConfig:
    """Everything a study run depends on. ``from_profile`` is the usual way to build one."""

    profile: Profile  # sizes and budgets, with the attacks' nested ``AttackProfile``
    victim: VictimConfig
    data: DataConfig = field(default_factory=DataConfig)
    device: str = "cpu"
    via_http: bool = False  # query the victim through the real HTTP service on loopback
    seed: int = 0
    progress: bool = True  # progress bars and stage messages on stderr (never in a cache key)
    transfer: str | None = None  # the zoo entry that judges reconstructions besides the victim (``study.transfer``)

    @property
    def transfer_weights(self) -> str | None:
        """The transfer model's weights file (its bytes enter the cache key), else ``None``."""
        if self.transfer is None:
            return None
        from ..models.zoo import zoo_entry

        return str(zoo_entry(self.transfer).weights_path)

    @classmethod
    def from_profile(
        cls,
        profile: str | Profile = "default",
        *,
        victim: str | None = None,
        weights: str | Path | None = None,
        pretrained: str | None = None,
        train_victim: bool = False,
        dataset: str | None = None,
        root: str | Path | None = None,
        attributes: str | Path | None = None,
        device: str = "cpu",
        via_http: bool = False,
        seed: int = 0,
        progress: bool = True,
        transfer: str | None = None,
    ) -> StudyConfig:
        """A config from a profile name (``"quick"``...) and flat options.

        The victim: ``weights`` or an ``onnx:PATH`` ``victim`` if given, else the
        zoo victim ``pretrained`` (by default the profile's), else, with
        ``train_victim`` (or a profile without a zoo victim), one trained here.
        A profile's zoo victim that this installation does not hold yet is
        replaced by one trained here, recorded as ``victim.untrained_zoo``
        (and said in the log and the report). ``transfer``: the second re-ID
        model that judges reconstructions, a zoo entry (default: the first
        trained one that is not the victim; none when there is no other).
        """
        from ..models.zoo import is_trained
        from .transfer import default_transfer

        profile = get_profile(profile)
        model = victim or profile.victim_model
        if model.startswith(ONNX_PREFIX):
            model = ONNX_PREFIX + _absolute(model[len(ONNX_PREFIX) :])
        if train_victim and pretrained is not None:
            raise ConfigError("{train_victim} trains a victim; it cannot also use {pretrained}")
        given = weights is not None or model.startswith(ONNX_PREFIX)
        untrained_zoo = None
        if pretrained is None and not given and not train_victim and model == profile.victim_model:
            pretrained = profile.victim_pretrained
            if pretrained is not None and not is_trained(pretrained):
                pretrained, untrained_zoo = None, pretrained
        return cls(
            profile=profile,
            victim=VictimConfig(
                model=model, weights=_absolute(weights), pretrained=pretrained, untrained_zoo=untrained_zoo
            ),
            data=DataConfig(dataset=dataset, root=_absolute(root), attributes=_absolute(attributes)),
            device=str(device),
            via_http=bool(via_http),
            seed=seed,
            progress=bool(progress),
            transfer=transfer if transfer is not None else default_transfer(pretrained),
        )

    @property
    def seeds(self) -> dict[str, int]:
        return study_seeds(self.seed)

    def validate(self) -> StudyConfig:
        """Refuse bad paths and options at once, before any stage spends minutes; returns ``self``."""
        from ..runtime import check_device

        if not isinstance(self.profile, Profile):
            raise TypeError(f"profile must be a Profile, got {type(self.profile).__name__}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError("{seed} must be an integer, got {value!r}", value=self.seed)
        check_device(self.device)
        self.victim.validate()
        self.data.validate()
        if self.transfer is not None:
            from ..models.zoo import read_card

            if self.transfer == self.victim.pretrained:
                raise ConfigError("the {transfer} model must differ from the victim, {name}", name=self.transfer)
            read_card(self.transfer)
        return self

    def as_dict(self) -> dict:
        """Plain JSON types (recorded as ``results.json``'s ``config``)."""
        return dataclasses.asdict(self)


def checked(config: StudyConfig) -> StudyConfig:
    """``config`` validated; the study's entry points start with it (a profile name is not a config)."""
    if not isinstance(config, StudyConfig):
        raise TypeError(f"config must be a StudyConfig (StudyConfig.from_profile(...)), got {type(config).__name__}")
    return config.validate()
