"""EndpointPickerConfig loading: parse, fill the EPP's defaults, validate, build plugins.

Every error is a :class:`ConfigError` whose one-line text names the file, the plugin and the
field, so the CLI can print it and exit 2 (the EPP refuses to start on a bad config too).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from scheduler_ref.params import ParamError, Params
from scheduler_ref.plugins import register as registry
from scheduler_ref.plugins.base import (
    DataLayerPlugin,
    Filter,
    Parser,
    Picker,
    Plugin,
    ProfileHandler,
    SaturationDetector,
    Scorer,
)
from scheduler_ref.plugins.datalayer import (
    CoreMetricsExtractor,
    FileDiscoveryPlugin,
    MetricsDataSource,
)

__all__ = [
    "API_VERSIONS",
    "DEFAULT_CONFIG",
    "ConfigError",
    "DataLayer",
    "Profile",
    "SchedulerConfig",
    "load_config",
    "load_config_file",
    "parse_config",
]

API_VERSIONS = ("inference.networking.x-k8s.io/v1alpha1", "llm-d.ai/v1alpha1")

# The EPP's built-in default since GAIE v1.2 / the guide's charts >= v1.2.
DEFAULT_CONFIG = """\
apiVersion: inference.networking.x-k8s.io/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: queue-scorer
- type: kv-cache-utilization-scorer
- type: prefix-cache-scorer
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: queue-scorer
    weight: 2
  - pluginRef: kv-cache-utilization-scorer
    weight: 2
  - pluginRef: prefix-cache-scorer
    weight: 3
"""


class ConfigError(Exception):
    """A config problem, rendered as one line: ``source: plugin 'x' (where): field: message``."""

    def __init__(
        self, source: str, message: str, *, plugin: str = "", where: str = "", field: str = ""
    ) -> None:
        parts = [source]
        if plugin:
            parts.append(f"plugin '{plugin}' ({where})" if where else f"plugin '{plugin}'")
        elif where:
            parts.append(where)
        if field:
            parts.append(field)
        text = ": ".join([*parts, " ".join(message.split())])
        super().__init__(text)


@dataclass
class Profile:
    """A scheduling profile: filters in order, weighted scorers, one picker."""

    name: str
    filters: list[Filter] = field(default_factory=list)
    scorers: list[tuple[Scorer, float]] = field(default_factory=list)
    picker: Picker | None = None


@dataclass
class DataLayer:
    """Where endpoints come from (None: flags decide) and how their metrics are read."""

    discovery: FileDiscoveryPlugin | None = None
    sources: list[tuple[MetricsDataSource, list[CoreMetricsExtractor]]] = field(
        default_factory=list)


@dataclass
class SchedulerConfig:
    """The validated config with its plugin instances (shared by every profile)."""

    plugins: dict[str, Plugin]
    profiles: list[Profile]
    handler: ProfileHandler
    saturation: SaturationDetector | None = None
    source: str = ""
    data_layer: DataLayer = field(default_factory=DataLayer)


# Top-level fields of EndpointPickerConfig (GAIE v1.5.0 decodes strictly; llm-d-router adds
# requestHandler). scheduler_ref reads plugins, schedulingProfiles, dataLayer, parser and
# saturationDetector; the others are accepted and have no effect here.
_TOP_LEVEL = {"apiVersion", "kind", "featureGates", "plugins", "schedulingProfiles",
              "saturationDetector", "dataLayer", "flowControl", "parser", "requestHandler"}
_DATA_LAYER = {"injectDefaults", "discovery", "sources"}


def _is_weight(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and v >= 0


def _build_plugins(src: str, raw: Any) -> dict[str, Plugin]:
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise ConfigError(src, f"must be a list, got {type(raw).__name__}", where="plugins")
    plugins: dict[str, Plugin] = {}
    for i, item in enumerate(raw):
        where = f"plugins[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(src, f"must be a mapping, got {item!r}", where=where)
        ptype = item.get("type")
        name = item.get("name") or ptype
        if not isinstance(ptype, str) or not ptype:
            raise ConfigError(src, "is required", plugin=str(name or "?"), where=where,
                              field="type")
        if not isinstance(name, str):
            raise ConfigError(src, f"must be a string, got {name!r}", plugin=ptype, where=where,
                              field="name")
        if name in plugins:
            raise ConfigError(src, "duplicate plugin name", plugin=name, where=where,
                              field="name")
        params = item.get("parameters")
        if params is not None and not isinstance(params, dict):
            raise ConfigError(src, f"must be a mapping, got {params!r}", plugin=name,
                              where=where, field="parameters")
        if registry.resolve(ptype) is None:
            raise ConfigError(src, f"unknown plugin type '{ptype}'", plugin=name, where=where,
                              field="type")
        try:
            plugins[name] = registry.create(ptype, name, Params(params))
        except ParamError as e:
            raise ConfigError(src, e.message, plugin=name, where=where,
                              field=f"parameters.{e.field}") from None
    return plugins


def _default_profile(plugins: dict[str, Plugin]) -> list[dict[str, Any]]:
    refs = [{"pluginRef": n} for n, p in plugins.items() if isinstance(p, Filter | Scorer | Picker)]
    return [{"name": "default", "plugins": refs}]


def _build_profile(src: str, i: int, raw: Any, plugins: dict[str, Plugin]) -> Profile:
    where = f"schedulingProfiles[{i}]"
    if not isinstance(raw, dict):
        raise ConfigError(src, f"must be a mapping, got {raw!r}", where=where)
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(src, "is required", where=where, field="name")
    refs = raw.get("plugins") or []
    if not isinstance(refs, list):
        raise ConfigError(src, "must be a list", where=where, field="plugins")
    profile = Profile(name)
    for j, ref in enumerate(refs):
        rwhere = f"{where}.plugins[{j}]"
        if not isinstance(ref, dict) or not isinstance(ref.get("pluginRef"), str):
            raise ConfigError(src, "needs a string 'pluginRef'", where=rwhere)
        pname = ref["pluginRef"]
        plugin = plugins.get(pname)
        if plugin is None:
            raise ConfigError(src, "refers to no plugin defined under 'plugins'", plugin=pname,
                              where=rwhere, field="pluginRef")
        weight = ref.get("weight", 1)
        if weight is None:
            weight = 1
        if not _is_weight(weight):
            raise ConfigError(src, f"must be a non-negative number, got {weight!r}",
                              plugin=pname, where=rwhere, field="weight")
        matched = False
        if isinstance(plugin, Filter):
            profile.filters.append(plugin)
            matched = True
        if isinstance(plugin, Scorer):
            profile.scorers.append((plugin, float(weight)))
            matched = True
        if isinstance(plugin, Picker):
            if profile.picker is not None:
                raise ConfigError(src, f"profile already has picker '{profile.picker.name}'",
                                  plugin=pname, where=rwhere, field="pluginRef")
            profile.picker = plugin
            matched = True
        if not matched:
            what = ("a data-layer plugin (reference it under dataLayer)"
                    if isinstance(plugin, DataLayerPlugin) else "not a filter, scorer or picker")
            raise ConfigError(src, f"a '{plugin.type_name}' is {what}",
                              plugin=pname, where=rwhere, field="pluginRef")
    if profile.picker is None:
        default_picker = plugins.get("max-score-picker")
        if not isinstance(default_picker, Picker):
            default_picker = registry.create("max-score-picker", "max-score-picker", Params())
            assert isinstance(default_picker, Picker)
            plugins.setdefault("max-score-picker", default_picker)
        profile.picker = default_picker
    return profile


def _list_field(src: str, raw: dict[str, Any], field: str, where: str) -> list[Any]:
    """``raw[field]`` as a list (absent = empty); anything else is a ConfigError there."""
    value = raw.get(field) or []
    if not isinstance(value, list):
        raise ConfigError(src, f"must be a list, got {value!r}", where=where, field=field)
    return value


def _ref(src: str, raw: Any, where: str, plugins: dict[str, Plugin]) -> tuple[str, Plugin]:
    if not isinstance(raw, dict) or not isinstance(raw.get("pluginRef"), str):
        raise ConfigError(src, f"needs a string 'pluginRef', got {raw!r}", where=where)
    name = raw["pluginRef"]
    plugin = plugins.get(name)
    if plugin is None:
        raise ConfigError(src, "refers to no plugin defined under 'plugins'", plugin=name,
                          where=where, field="pluginRef")
    return name, plugin


def _default_source(plugins: dict[str, Plugin]) -> tuple[MetricsDataSource,
                                                          list[CoreMetricsExtractor]]:
    """GAIE's injected data layer: the plugins named after their types, made if absent."""
    source = plugins.get(MetricsDataSource.type_name)
    if not isinstance(source, MetricsDataSource):
        source = MetricsDataSource(MetricsDataSource.type_name, Params())
        plugins.setdefault(source.name, source)
    extractor = plugins.get(CoreMetricsExtractor.type_name)
    if not isinstance(extractor, CoreMetricsExtractor):
        extractor = CoreMetricsExtractor(CoreMetricsExtractor.type_name, Params())
        plugins.setdefault(extractor.name, extractor)
    return source, [extractor]


def _build_data_layer(src: str, raw: Any, plugins: dict[str, Plugin]) -> DataLayer:
    """``dataLayer``: absent -> GAIE's default metrics source; ``injectDefaults: false`` with
    no ``sources`` leaves scheduler_ref without metrics, which it refuses (every endpoint
    would stay stale)."""
    if raw is None:
        return DataLayer(sources=[_default_source(plugins)])
    if not isinstance(raw, dict):
        raise ConfigError(src, f"must be a mapping, got {raw!r}", where="dataLayer")
    for key in raw:
        if key not in _DATA_LAYER:
            known = ", ".join(sorted(_DATA_LAYER))
            raise ConfigError(src, f"unknown field {key!r} (known: {known})", where="dataLayer")
    inject = raw.get("injectDefaults", True)
    if not isinstance(inject, bool):
        raise ConfigError(src, f"must be true or false, got {inject!r}", where="dataLayer",
                          field="injectDefaults")
    layer = DataLayer()
    if raw.get("discovery") is not None:
        name, plugin = _ref(src, raw["discovery"], "dataLayer.discovery", plugins)
        if not isinstance(plugin, FileDiscoveryPlugin):
            raise ConfigError(src, f"a '{plugin.type_name}' is not a discovery plugin (want "
                              "file-discovery)", plugin=name, where="dataLayer.discovery",
                              field="pluginRef")
        layer.discovery = plugin
    for i, item in enumerate(_list_field(src, raw, "sources", "dataLayer")):
        where = f"dataLayer.sources[{i}]"
        name, plugin = _ref(src, item, where, plugins)
        if not isinstance(plugin, MetricsDataSource):
            raise ConfigError(src, f"a '{plugin.type_name}' is not a data source (want "
                              "metrics-data-source)", plugin=name, where=where, field="pluginRef")
        extractors: list[CoreMetricsExtractor] = []
        for j, ex in enumerate(_list_field(src, item, "extractors", where)):
            ewhere = f"{where}.extractors[{j}]"
            ename, extractor = _ref(src, ex, ewhere, plugins)
            if not isinstance(extractor, CoreMetricsExtractor):
                raise ConfigError(src, f"a '{extractor.type_name}' is not a metrics extractor "
                                  "(want core-metrics-extractor)", plugin=ename, where=ewhere,
                                  field="pluginRef")
            extractors.append(extractor)
        if len(extractors) != 1:
            raise ConfigError(src, "scheduler_ref needs exactly one extractor "
                              f"(core-metrics-extractor), got {len(extractors)}",
                              plugin=name, where=where, field="extractors")
        layer.sources.append((plugin, extractors))
    if len(layer.sources) > 1:
        raise ConfigError(src, "scheduler_ref reads one metrics source per endpoint; "
                          f"{len(layer.sources)} given", where="dataLayer", field="sources")
    if not layer.sources:
        if not inject:
            raise ConfigError(src, "no metrics source: scheduler_ref needs one (add a "
                              "metrics-data-source under dataLayer.sources, or drop "
                              "injectDefaults: false)", where="dataLayer", field="sources")
        layer.sources.append(_default_source(plugins))
    return layer


def _check_ref(src: str, data: dict[str, Any], key: str, want: type[Plugin], what: str,
               plugins: dict[str, Plugin]) -> None:
    if data.get(key) is None:
        return
    name, plugin = _ref(src, data[key], key, plugins)
    if not isinstance(plugin, want):
        raise ConfigError(src, f"a '{plugin.type_name}' is not {what}", plugin=name, where=key,
                          field="pluginRef")


def parse_config(data: Any, source: str = "<config>") -> SchedulerConfig:
    """Validate an already-decoded YAML document and build the plugins."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, "must be a YAML mapping (an EndpointPickerConfig)")
    api = data.get("apiVersion")
    if api is not None and api not in API_VERSIONS:
        raise ConfigError(source, f"unsupported apiVersion {api!r} (want one of "
                          f"{', '.join(API_VERSIONS)})", field="apiVersion")
    kind = data.get("kind")
    if kind is not None and kind != "EndpointPickerConfig":
        raise ConfigError(source, f"must be EndpointPickerConfig, got {kind!r}", field="kind")
    for key in data:
        if key not in _TOP_LEVEL:
            raise ConfigError(source, f"unknown field (known: {', '.join(sorted(_TOP_LEVEL))})",
                              field=str(key))
    plugins = _build_plugins(source, data.get("plugins"))
    _check_ref(source, data, "parser", Parser, "a parser (want openai-parser)", plugins)
    _check_ref(source, data, "saturationDetector", SaturationDetector,
               "a saturation detector", plugins)
    data_layer = _build_data_layer(source, data.get("dataLayer"), plugins)
    raw_profiles = data.get("schedulingProfiles")
    if raw_profiles is None:
        raw_profiles = _default_profile(plugins)
    if not isinstance(raw_profiles, list) or not raw_profiles:
        raise ConfigError(source, "must be a non-empty list", field="schedulingProfiles")
    profiles = [_build_profile(source, i, p, plugins) for i, p in enumerate(raw_profiles)]
    names = [p.name for p in profiles]
    if len(set(names)) != len(names):
        raise ConfigError(source, f"duplicate profile names {names}", field="schedulingProfiles")
    handlers = [p for p in plugins.values() if isinstance(p, ProfileHandler)]
    if len(handlers) > 1:
        raise ConfigError(source, "more than one profile handler: "
                          + ", ".join(h.name for h in handlers), field="plugins")
    if handlers and handlers[0].type_name != "single-profile-handler":
        raise ConfigError(source, f"profile handler type '{handlers[0].type_name}' is not "
                          "supported", plugin=handlers[0].name)
    if len(profiles) > 1:
        why = ("single-profile-handler needs exactly one profile" if handlers
               else "several profiles need a profile handler (pd-profile-handler is not "
               "supported by scheduler_ref)")
        raise ConfigError(source, why, field="schedulingProfiles")
    handler = handlers[0] if handlers else registry.create(
        "single-profile-handler", "single-profile-handler", Params())
    assert isinstance(handler, ProfileHandler)
    detectors = [p for p in plugins.values() if isinstance(p, SaturationDetector)]
    return SchedulerConfig(plugins, profiles, handler, detectors[0] if detectors else None,
                           source, data_layer)


def load_config(text: str, source: str = "<config-text>") -> SchedulerConfig:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(source, f"invalid YAML: {e}") from None
    return parse_config(data, source)


def load_config_file(path: str | Path) -> SchedulerConfig:
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ConfigError(str(path), f"cannot read: {e.strerror or e}") from None
    return load_config(text, str(path))
